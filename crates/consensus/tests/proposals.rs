//! What a validator refuses to vote for: each forged proposal is built and verified by the code
//! validators run (`block::verify`, which re-executes the block on its parent's state).

use aicpw_consensus::app::account_of;
use aicpw_consensus::block::{self, genesis_digest, Envelope, Expected, Invalid};
use aicpw_consensus::sim::deal_schemes;
use aicpw_consensus::Scheme;
use aicpw_ledger::{Genesis, Params, State};
use aicpw_types::tx::tx_root;
use aicpw_types::{Amount, Hash32, Keypair, SignedTx, Tx, TxBody};
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::Signer as _;
use commonware_runtime::{deterministic, Runner};
use commonware_utils::ordered::Set;

struct Fixture {
    scheme: Scheme,
    leader: PublicKey,
    genesis: State,
    txs: Vec<SignedTx>,
}

fn fixture() -> Fixture {
    let keys: Vec<PublicKey> = (0..4).map(|i| PrivateKey::from_seed(i).public_key()).collect();
    let participants = Set::from_iter_dedup(keys);
    let scheme = deterministic::Runner::default()
        .start(|mut context| async move { deal_schemes(&mut context, &participants).remove(0) });
    let leader = PrivateKey::from_seed(0).public_key();
    let user = Keypair::dev(1);
    let genesis = State::genesis(&Genesis {
        chain_id: "aicpw-proposals".into(),
        params: Params::default(),
        accounts: vec![(user.account(), Amount::tokens(10))],
    });
    let txs = (0..2)
        .map(|nonce| {
            user.sign(Tx {
                chain_id: "aicpw-proposals".into(),
                signer: user.account(),
                nonce,
                fee: Amount(10),
                body: TxBody::Transfer { to: Keypair::dev(2).account(), amount: Amount(5) },
            })
        })
        .collect();
    Fixture { scheme, leader, genesis, txs }
}

fn expected<'a>(parent: &'a aicpw_consensus::block::Digest, leader: &PublicKey) -> Expected<'a> {
    Expected {
        parent,
        parent_view: 0,
        parent_header: None,
        leader: account_of(leader),
        now_ms: 10_000,
    }
}

#[test]
fn a_validator_votes_only_for_a_block_that_re_executes_to_its_root() {
    let f = fixture();
    let parent = genesis_digest("aicpw-proposals");
    let (envelope, built) =
        block::build(&f.genesis, &expected(&parent, &f.leader), None, f.txs.clone())
            .expect("built");
    assert_eq!(envelope.block.txs.len(), 2);
    let (verified, _) =
        block::verify(&envelope, &expected(&parent, &f.leader), &f.genesis, &f.scheme)
            .expect("valid");
    let root = |mut s: State| s.finalize_root().0;
    assert_eq!(root(verified), root(built));

    let refused = |envelope: &Envelope, expect: Expected<'_>| {
        block::verify(envelope, &expect, &f.genesis, &f.scheme).err()
    };
    // A leader lying about the state its block leads to.
    let mut lie = envelope.clone();
    lie.block.header.state_root = Hash32([9; 32]);
    assert_eq!(refused(&lie, expected(&parent, &f.leader)), Some(Invalid::StateRoot));
    // A leader choosing its own randomness (to steer audits and seats).
    let mut grind = envelope.clone();
    grind.block.header.randomness = Hash32([1; 32]);
    assert_eq!(refused(&grind, expected(&parent, &f.leader)), Some(Invalid::Randomness));
    // A transaction with a forged signature slipped in.
    let mut forged = envelope.clone();
    let mut tx = forged.block.txs[1].clone();
    tx.signature[0] ^= 1;
    forged.block.txs[1] = tx;
    forged.block.header.tx_root = tx_root(&forged.block.txs);
    assert!(matches!(
        refused(&forged, expected(&parent, &f.leader)),
        Some(Invalid::Transaction(_))
    ));
    // Transactions swapped after the root was computed.
    let mut swapped = envelope.clone();
    swapped.block.txs.reverse();
    assert_eq!(refused(&swapped, expected(&parent, &f.leader)), Some(Invalid::TxRoot));
    // Another validator's block replayed in a view it does not lead.
    let other = PrivateKey::from_seed(1).public_key();
    assert_eq!(refused(&envelope, expected(&parent, &other)), Some(Invalid::Proposer));
    // A time far ahead of the verifier's clock (to run deadlines out early).
    let mut early = expected(&parent, &f.leader);
    early.now_ms = envelope.block.header.time_ms - block::CLOCK_SKEW_MAX_MS - 1;
    assert_eq!(refused(&envelope, early), Some(Invalid::Time));
    // A block built on another parent than the one consensus names.
    let elsewhere = genesis_digest("another chain");
    assert_eq!(refused(&envelope, expected(&elsewhere, &f.leader)), Some(Invalid::Parent));
}
