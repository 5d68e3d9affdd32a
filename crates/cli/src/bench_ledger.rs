//! `aicpw bench ledger`: signed transfers per second through the whole pipeline (decode, batch
//! signature verification, apply, durable group commit in redb) on a chain with many accounts.

use aicpw_ledger::{Genesis, Params};
use aicpw_node::Chain;
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{AccountId, Amount, Hash32, Keypair, SignedTx, Tx, TxBody};
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Instant;

/// Transactions per block: small enough that a block commits well inside the latency target.
const BLOCK_TXS: usize = 1_024;
/// Distinct signing accounts; each signs `txs / SENDERS` transfers with consecutive nonces.
const SENDERS: usize = 20_000;
const CHAIN_ID: &str = "aicpw-bench";

fn filler_account(i: usize) -> AccountId {
    AccountId(Hash32::of(&(i as u64).to_le_bytes()).0)
}

fn sender(i: usize) -> Keypair {
    Keypair::from_seed(Hash32::of(format!("bench sender {i}").as_bytes()).0)
}

/// Signs the workload on all cores; signing is the clients' work and is not measured.
fn signed_transfers(senders: &[Keypair], recipients: usize, txs: usize) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = txs.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t * per_thread..((t + 1) * per_thread).min(txs))
                        .map(|n| {
                            let (who, nonce) = (n % senders.len(), (n / senders.len()) as u64);
                            let to = filler_account((n * 7919) % recipients);
                            let body = TxBody::Transfer { to, amount: Amount(1) };
                            let key = &senders[who];
                            let tx = Tx {
                                chain_id: CHAIN_ID.into(),
                                signer: key.account(),
                                nonce,
                                fee: Amount(10),
                                body,
                            };
                            key.sign(tx).to_bytes()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing does not panic")).collect()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(accounts: usize, txs: usize) -> Result<Value> {
    let setup = Instant::now();
    let senders: Vec<Keypair> = (0..SENDERS.min(txs.max(1))).map(sender).collect();
    let funded = Amount::tokens(1_000);
    let fillers = accounts.saturating_sub(senders.len()).max(1);
    let mut genesis_accounts: Vec<(AccountId, Amount)> =
        senders.iter().map(|k| (k.account(), funded)).collect();
    genesis_accounts.extend((0..fillers).map(|i| (filler_account(i), funded)));
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        params: Params::default(),
        accounts: genesis_accounts,
    };
    let dir = tempfile::tempdir()?;
    let mut chain = Chain::open(dir.path(), Some(&genesis))?;
    let workload = signed_transfers(&senders, fillers, txs);
    let setup_ms = setup.elapsed().as_millis() as u64;
    let proposer = senders[0].account();
    // One unmeasured block warms the caches and the allocator, as every benchmark does.
    chain.produce(Vec::new(), 999, proposer)?;
    let mut block_ms = Vec::new();
    let started = Instant::now();
    let mut committed = 0usize;
    for (i, block) in workload.chunks(BLOCK_TXS).enumerate() {
        let begun = Instant::now();
        let decoded: Vec<SignedTx> =
            block.iter().filter_map(|b| SignedTx::from_bytes(b).ok()).collect();
        let outcome = chain.produce(decoded, 1_000 + i as u64, proposer)?;
        committed += outcome.receipts.len();
        let took = begun.elapsed().as_secs_f64() * 1000.0;
        block_ms.extend(std::iter::repeat_n(took, block.len()));
        anyhow::ensure!(
            outcome.rejected.is_empty(),
            "bench transfers were rejected: {:?}",
            &outcome.rejected[..1]
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    block_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "signed_tx_per_sec": (committed as f64 / seconds).round(),
        "commit_p50_ms": (percentile(&block_ms, 0.50) * 100.0).round() / 100.0,
        "commit_p99_ms": (percentile(&block_ms, 0.99) * 100.0).round() / 100.0,
        "txs": committed,
        "accounts": chain.state().accounts.len(),
        "block_txs": BLOCK_TXS,
        "blocks": chain.height(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "setup_ms": setup_ms,
        "state_root": chain.head().map(|h| h.state_root.to_string()),
    }))
}
