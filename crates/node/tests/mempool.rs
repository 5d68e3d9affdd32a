//! Mempool admission over the real HTTP API on loopback: one client floods the node with junk
//! (forged copies of another's transactions, transactions in its name, far nonces, unfunded and
//! failing transactions, duplicates) while another client's correctly signed transfers all commit.

mod support;

use aicpw_types::{AccountId, Amount, Keypair, Reject, SignedTx, TaskId, TxBody};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::{tx, Node};

const TRANSFERS: u64 = 25;
/// Threads sending junk at once.
const FLOODERS: u64 = 4;

fn transfer(from: &Keypair, nonce: u64, to: AccountId, amount: u128) -> SignedTx {
    from.sign(tx(from.account(), nonce, TxBody::Transfer { to, amount: Amount(amount) }))
}

fn account(node: &Node, who: AccountId) -> (u128, u64, u64) {
    let value = node.get(&format!("/v1/accounts/{who}"));
    let balance = value["balance"].as_str().and_then(|b| b.parse().ok()).expect("balance");
    let nonce = value["nonce"].as_u64().expect("nonce");
    (balance, nonce, value["next_nonce"].as_u64().expect("next nonce"))
}

/// The victim's transfer number `n`.
fn victims_transfer(victim: &Keypair, n: u64, payee: AccountId) -> SignedTx {
    transfer(victim, n, payee, 1_000 + u128::from(n))
}

/// One round of junk; returns the reject code each piece got (`None`: admitted).
fn flood_round(
    node: &Node,
    round: u64,
    (victim, payee, attacker): (&Keypair, AccountId, &Keypair),
) -> Vec<Option<Reject>> {
    let to = attacker.account();
    let mut answers = Vec::new();
    let mut send = |tx: &SignedTx| answers.push(node.submit(tx, false).err());
    let (_, victim_nonce, _) = account(node, victim.account());
    // Forged copies of the victim's next transfers, ahead of the real ones: same transaction,
    // another signature.
    for ahead in 0..3 {
        let mut forged = victims_transfer(victim, victim_nonce + ahead, payee);
        forged.signature[(round as usize + ahead as usize) % 64] ^= 0x21;
        send(&forged);
    }
    // Transactions in the victim's name ahead of it, which used to push its advertised next nonce.
    for ahead in [1 + round % 200, 1_000 + round] {
        let mut poison = transfer(victim, victim_nonce + ahead, to, 1);
        poison.signature[5] ^= 1;
        send(&poison);
    }
    // Correctly signed by keys that hold nothing.
    let nobody = Keypair::from_seed([round as u8; 32]);
    send(&transfer(&nobody, 0, to, 1));
    // The attacker's own key: far nonces, a fee below the minimum, and more than it owns.
    let (_, attacker_nonce, _) = account(node, attacker.account());
    send(&transfer(attacker, attacker_nonce + 100_000, to, 1));
    let mut cheap = tx(attacker.account(), attacker_nonce, TxBody::Withdraw);
    cheap.fee = Amount(1);
    send(&attacker.sign(cheap));
    send(&transfer(attacker, attacker_nonce, victim.account(), u128::MAX / 2));
    // A transaction that passes admission and fails in the block, then the attacker's next
    // ones: the failure drops them, and nobody else's.
    let failing = TxBody::CancelTask { task: TaskId(1_000_000 + round) };
    let failing = attacker.sign(tx(attacker.account(), attacker_nonce, failing));
    send(&failing);
    send(&failing);
    for next in 1..4 {
        send(&transfer(attacker, attacker_nonce + next, to, 1));
    }
    answers
}

#[test]
fn a_flood_of_junk_from_one_client_leaves_anothers_transfers_all_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Arc::new(Node::start(dir.path()));
    let (victim, attacker, payee) = (Keypair::dev(1), Keypair::dev(2), Keypair::dev(3).account());
    let (payee_before, _, _) = account(&node, payee);
    let (victim_before, _, _) = account(&node, victim.account());

    let done = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..FLOODERS)
        .map(|flooder| {
            let (node, done, victim, attacker) =
                (node.clone(), done.clone(), victim.clone(), attacker.clone());
            std::thread::spawn(move || {
                let mut codes: HashMap<Option<Reject>, usize> = HashMap::new();
                let mut round = flooder * 10_000;
                while !done.load(Ordering::SeqCst) || round < flooder * 10_000 + 5 {
                    for answer in flood_round(&node, round, (&victim, payee, &attacker)) {
                        *codes.entry(answer).or_default() += 1;
                    }
                    round += 1;
                }
                codes
            })
        })
        .collect();

    for n in 0..TRANSFERS {
        let (_, committed, next) = account(&node, victim.account());
        assert_eq!((committed, next), (n, n), "the victim's nonce is its own");
        let signed = victims_transfer(&victim, next, payee);
        let answer = node.submit(&signed, true).unwrap_or_else(|e| panic!("transfer {n}: {e}"));
        assert_eq!(answer["tx_id"], signed.id().to_string());
    }
    done.store(true, Ordering::SeqCst);
    let mut codes: HashMap<Option<Reject>, usize> = HashMap::new();
    for flood in floods {
        for (answer, n) in flood.join().expect("flood thread") {
            *codes.entry(answer).or_default() += n;
        }
    }

    let (payee_after, _, _) = account(&node, payee);
    let paid: u128 = (0..TRANSFERS).map(|n| 1_000 + u128::from(n)).sum();
    assert_eq!(payee_after, payee_before + paid, "every transfer committed once");
    let (victim_after, victim_nonce, victim_next) = account(&node, victim.account());
    assert_eq!((victim_nonce, victim_next), (TRANSFERS, TRANSFERS));
    let fees = u128::from(TRANSFERS) * 10;
    assert_eq!(victim_after, victim_before - paid - fees, "the victim paid nothing for the junk");

    let count = |reject| codes.get(&Some(reject)).copied().unwrap_or(0);
    assert!(count(Reject::BadSignature) >= 20, "forgeries refused at admission: {codes:?}");
    for reject in [Reject::InsufficientBalance, Reject::NonceTooFar, Reject::FeeTooLow] {
        assert!(count(reject) >= 5, "{reject} at admission: {codes:?}");
    }
    let repeats = count(Reject::DuplicateTransaction) + count(Reject::NoncePending);
    assert!(repeats >= 3, "repeats refused: {codes:?}");
}

#[test]
fn a_rejected_transaction_drops_its_signers_later_ones_and_tells_only_its_sender() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let (attacker, other) = (Keypair::dev(4), Keypair::dev(6));
    let failing = attacker.sign(tx(attacker.account(), 0, TxBody::CancelTask { task: TaskId(7) }));
    // Sent before the transaction they follow, so all three wait when the block is made: the
    // next one goes into the block behind it, the one after a gap stays in the mempool.
    let submit = |signed: SignedTx| node.shared.submit(signed, true).expect("admitted").1;
    let after_gap = submit(transfer(&attacker, 3, other.account(), 1));
    let next = submit(transfer(&attacker, 1, other.account(), 1));
    let failed = submit(failing);
    let answer = |waiter: Option<aicpw_node::service::CommitWaiter>| {
        waiter.expect("waits").blocking_recv().expect("answered").err()
    };
    assert_eq!(answer(failed), Some(Reject::UnknownTask));
    assert_eq!(answer(next), Some(Reject::NonceGap));
    assert_eq!(answer(after_gap), Some(Reject::EarlierRejected));
    let (_, nonce, next) = account(&node, attacker.account());
    assert_eq!((nonce, next), (0, 0), "nothing of the attacker's committed or waits");
    assert_eq!(node.shared.mempool_len(), 0);
    // The node still takes the attacker's corrected transactions, and everyone else's.
    node.submit(&transfer(&attacker, 0, other.account(), 1), true).expect("commits");
    node.submit(&transfer(&other, 0, attacker.account(), 1), true).expect("commits");
}

#[test]
fn each_signer_has_a_bounded_share_and_one_transaction_per_nonce() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let (signer, to) = (Keypair::dev(11), Keypair::dev(12).account());
    let window = aicpw_node::service::NONCE_WINDOW;
    // Nonce 0 is never sent: everything after it waits for it and fills the signer's window.
    for nonce in 1..window {
        node.submit(&transfer(&signer, nonce, to, 1), false).expect("admitted into the window");
    }
    let too_far = node.submit(&transfer(&signer, window, to, 1), false);
    assert_eq!(too_far.err(), Some(Reject::NonceTooFar));
    let same_nonce = node.submit(&transfer(&signer, 5, to, 2), false);
    assert_eq!(same_nonce.err(), Some(Reject::NoncePending));
    let (_, committed, next) = account(&node, signer.account());
    assert_eq!((committed, next), (0, 0), "a gap is not advertised as used");
    // Filling the gap commits the whole run.
    node.submit(&transfer(&signer, 0, to, 1), true).expect("commits");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while account(&node, signer.account()).1 < window {
        assert!(std::time::Instant::now() < deadline, "the run did not commit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Large transactions fill a signer's bytes before its window.
    let bulky = Keypair::dev(13);
    let opening = |nonce| {
        let paths = vec![vec![aicpw_types::Hash32::default(); 250]; 7];
        let body =
            TxBody::ChallengeOpen { challenge: aicpw_types::ChallengeId(1), first: 0, paths };
        bulky.sign(tx(bulky.account(), nonce, body))
    };
    let size = aicpw_types::codec::Encode::to_bytes(&opening(1)).len();
    let fits = aicpw_node::service::SIGNER_BYTES_MAX / size;
    let answers: Vec<Option<Reject>> =
        (1..fits as u64 + 5).map(|nonce| node.submit(&opening(nonce), false).err()).collect();
    assert!(answers[..fits].iter().all(Option::is_none), "{answers:?}");
    assert!(answers[fits..].iter().all(|a| *a == Some(Reject::SignerQuotaFull)), "{answers:?}");
    // Another signer was never in the way.
    node.submit(&transfer(&Keypair::dev(14), 0, to, 1), true).expect("commits");
}
