//! The chain on a real redb file: blocks, checkpoints, restarts and replay.

use aicpw_ledger::state::{key_bytes, Account, EntryKey};
use aicpw_node::chain::CHECKPOINT_BLOCKS_MAX;
use aicpw_node::{dev_genesis, Chain};
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{Amount, Keypair, Tx, TxBody};
use redb::ReadableTable;

fn transfer(nonce: u64) -> aicpw_types::SignedTx {
    let (alice, bob) = (Keypair::dev(1), Keypair::dev(2));
    let body = TxBody::Transfer { to: bob.account(), amount: Amount(1) };
    alice.sign(Tx {
        chain_id: "aicpw-dev".into(),
        signer: alice.account(),
        nonce,
        fee: Amount(10),
        body,
    })
}

#[test]
fn a_reopened_chain_resumes_from_its_checkpoint_and_the_blocks_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proposer = Keypair::dev(0).account();
    let blocks = CHECKPOINT_BLOCKS_MAX + 40;
    let root = {
        let mut chain = Chain::open(dir.path(), Some(&dev_genesis())).expect("open");
        for nonce in 0..blocks {
            let outcome =
                chain.produce(vec![transfer(nonce)], 1_000 + nonce, proposer).expect("block");
            assert_eq!(outcome.receipts.len(), 1, "{:?}", outcome.rejected);
        }
        chain.head().expect("head").state_root
    };
    let chain = Chain::open(dir.path(), None).expect("reopen");
    assert_eq!(chain.height(), blocks);
    assert_eq!(chain.head().expect("head").state_root, root);
    let alice = &chain.state().accounts[&Keypair::dev(1).account()];
    assert_eq!(alice.nonce, blocks, "every committed transfer is in the reopened state");
    assert_eq!(chain.replay().expect("replay"), root);
}

#[test]
fn a_data_directory_of_another_chain_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Chain::open(dir.path(), Some(&dev_genesis())).expect("open"));
    let mut other = dev_genesis();
    other.chain_id = "elsewhere".into();
    let error = Chain::open(dir.path(), Some(&other)).err().expect("refused");
    assert!(error.to_string().contains("belongs to chain aicpw-dev"), "{error}");
    assert!(
        Chain::open(tempfile::tempdir().expect("dir").path(), None).is_err(),
        "no genesis, no chain"
    );
}

#[test]
fn a_database_file_whose_creation_was_cut_short_is_created_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    // What a power cut leaves while redb writes a new file: part of one, under its temporary name.
    std::fs::write(dir.path().join("chain.redb.new"), [0xa5; 4096]).expect("write");
    let mut chain = Chain::open(dir.path(), Some(&dev_genesis())).expect("created again");
    let outcome =
        chain.produce(vec![transfer(0)], 1_000, Keypair::dev(0).account()).expect("block");
    assert_eq!(outcome.receipts.len(), 1);
    assert!(!dir.path().join("chain.redb.new").exists());
    drop(chain);
    assert_eq!(Chain::open(dir.path(), None).expect("reopen").height(), 1);
}

#[test]
fn a_checkpoint_that_differs_from_its_blocks_root_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proposer = Keypair::dev(0).account();
    {
        let mut chain = Chain::open(dir.path(), Some(&dev_genesis())).expect("open");
        for nonce in 0..CHECKPOINT_BLOCKS_MAX {
            chain.produce(vec![transfer(nonce)], 1_000 + nonce, proposer).expect("block");
        }
    } // closed: the checkpoint at the head is written
      // One balance changed in the checkpoint, well encoded: what a bug or a bad sector redb's
      // checksums missed would leave. The head is the checkpoint, so no block re-executes over it.
    let entries: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("entries");
    let key = key_bytes(EntryKey::Account(Keypair::dev(2).account()));
    let state = redb::Database::open(dir.path().join("state.redb")).expect("state file");
    let write = state.begin_write().expect("write");
    {
        let mut table = write.open_table(entries).expect("entries");
        let stored =
            table.get(key.as_slice()).expect("read").expect("bob's entry").value().to_vec();
        let mut bob = Account::from_bytes(&stored).expect("an account");
        bob.balance = Amount(bob.balance.0 + 1);
        table.insert(key.as_slice(), bob.to_bytes().as_slice()).expect("insert");
    }
    write.commit().expect("commit");
    drop(state);
    let refused = Chain::open(dir.path(), None).err().expect("refused");
    assert!(refused.to_string().contains("differs from the root its block published"), "{refused}");
}

#[test]
fn a_closed_chain_has_every_block_in_its_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proposer = Keypair::dev(0).account();
    let blocks = 5;
    let mut chain = Chain::open(dir.path(), Some(&dev_genesis())).expect("open");
    for nonce in 0..blocks {
        chain.produce(vec![transfer(nonce)], 1_000 + nonce, proposer).expect("block");
    }
    let root = chain.head().expect("head").state_root;
    chain.close().expect("the last checkpoint is written");
    let loaded = aicpw_node::db::Db::open(dir.path()).expect("db").load().expect("load");
    let loaded = loaded.expect("a chain is stored");
    assert_eq!(loaded.checkpoint_height, blocks, "no block is left to re-execute");
    let mut state = loaded.state;
    assert_eq!(state.finalize_root().0, root);
}

/// Pipelined production (the next block's signatures checked while this one commits) makes the
/// blocks `produce` makes, forged signatures refused in their own block; an error of the
/// consumer stops it after the block it was given, durable, and the chain goes on from there.
#[test]
fn pipelined_blocks_are_the_blocks_made_one_at_a_time() {
    let proposer = Keypair::dev(0).account();
    let blocks: Vec<Vec<aicpw_types::SignedTx>> = (0..6u64)
        .map(|b| {
            (0..5)
                .map(|i| {
                    let mut tx = transfer(b * 4 + i.min(3));
                    // The last transaction of each block is forged (and takes no nonce).
                    tx.signature[0] ^= u8::from(i == 4);
                    tx
                })
                .collect()
        })
        .collect();
    let one_at_a_time = tempfile::tempdir().expect("temp dir");
    let mut chain = Chain::open(one_at_a_time.path(), Some(&dev_genesis())).expect("open");
    let roots: Vec<_> = blocks
        .iter()
        .enumerate()
        .map(|(i, txs)| {
            let outcome = chain.produce(txs.clone(), 1_000 + i as u64, proposer).expect("block");
            (outcome.header.state_root, outcome.receipts.len(), outcome.rejected.len())
        })
        .collect();
    assert!(roots.iter().all(|(_, ok, refused)| (*ok, *refused) == (4, 1)), "{roots:?}");

    let pipelined = tempfile::tempdir().expect("temp dir");
    let mut chain = Chain::open(pipelined.path(), Some(&dev_genesis())).expect("open");
    let tagged = blocks.iter().enumerate().map(|(i, txs)| (txs.clone(), 1_000 + i as u64, i));
    let mut made = Vec::new();
    let stopped = chain.produce_pipelined(tagged, proposer, |outcome, i| {
        made.push((outcome.header.state_root, outcome.receipts.len(), outcome.rejected.len()));
        if i == 3 {
            return Err(anyhow::anyhow!("the consumer stops at block {i}"));
        }
        Ok(())
    });
    assert!(stopped.is_err_and(|e| e.to_string().contains("stops at block 3")));
    assert_eq!(made, roots[..4], "the same blocks, up to the one the error came with");
    assert_eq!(chain.height(), 4, "nothing after the error was committed");
    let rest = blocks[4..].iter().enumerate().map(|(i, txs)| (txs.clone(), 1_004 + i as u64, ()));
    chain
        .produce_pipelined(rest, proposer, |outcome, ()| {
            made.push((outcome.header.state_root, outcome.receipts.len(), outcome.rejected.len()));
            Ok::<_, anyhow::Error>(())
        })
        .expect("production goes on");
    assert_eq!(made, roots);
    chain.close().expect("close");
    let chain = Chain::open(pipelined.path(), None).expect("reopen");
    assert_eq!(chain.replay().expect("replay"), roots[5].0);
}
