//! Verification seats cannot be steered: the candidates are frozen before the randomness that
//! draws from them is known. The attack below is run against the ledger as a worker with sybils
//! would run it, knowing each block's randomness one block ahead.

use crate::state::{Role, Round};
use crate::tests::{hardware, key, Net};
use crate::verification_tests::policy;
use aicpw_types::task::Verification;
use aicpw_types::{Amount, NodeId, TaskId, TxBody};

/// The attacker's worker (dev account 1, the cheapest node, so it is every task's worker).
const WORKER: u32 = 1;
/// The attacker's sybils: nodes of other accounts it controls.
const SYBILS: [u32; 2] = [2, 3];
/// Honest accounts, one node each.
const HONEST: std::ops::RangeInclusive<u32> = 8..=17;
/// Prices the attacker may give its first sybil: one below every honest node, one between each
/// pair of them, one above them all, and one above the task's maximum (out of every draw).
fn moves() -> Vec<u128> {
    let mut prices: Vec<u128> = (0..=10).map(|i| 1_950_000 + i * 100_000).collect();
    prices.push(4_000_000);
    prices
}

fn honest_price(account: u32) -> u128 {
    2_000_000 + u128::from(account - 8) * 100_000
}

/// A market where the attacker's worker is the cheapest node; `blocks` empty blocks first, so
/// each trial meets other randomness.
fn market(blocks: u64) -> (Net, NodeId, Vec<NodeId>) {
    let mut net = Net::new();
    net.settle_draws = false;
    for account in HONEST {
        let fund = TxBody::Transfer { to: key(account).account(), amount: Amount::tokens(5_000) };
        net.run(0, fund).expect("fund");
        net.provider(account, honest_price(account));
    }
    let worker = net.provider(WORKER, 100_000);
    let sybils = SYBILS.iter().map(|s| net.provider(*s, 2_525_000)).collect();
    for _ in 0..blocks {
        net.idle(1_000);
    }
    (net, worker, sybils)
}

/// The auditor of the task, once placed.
fn auditor(net: &Net, id: TaskId) -> Option<NodeId> {
    net.task(id).leases.iter().find(|l| l.role == Role::Auditor).map(|l| l.node)
}

fn set_price(net: &Net, node: NodeId, price: u128) -> (u32, TxBody) {
    let who = net.owner(node);
    let body = TxBody::UpdateNode {
        node,
        hardware: hardware(),
        x25519_key: key(who).x25519_public(),
        endpoint: format!("node{who}"),
        price_per_hour: Amount(price),
    };
    (who, body)
}

/// One audited task of the attacker's worker, attacked: before every block until the auditor
/// is placed, the attacker (who knows that block's randomness) dry-runs each price of its first
/// sybil and sends the one that puts a sybil in the auditor's seat, if any. Returns whether a
/// sybil audits its worker.
fn attack(blocks: u64) -> bool {
    let (mut net, worker, sybils) = market(blocks);
    let id = net.submit(0, policy(Verification::Audit));
    assert_eq!(net.worker(id), worker);
    net.commit(id, worker, b"forged").expect("commit");
    for _ in 0..5 {
        let steering =
            moves().into_iter().map(|price| set_price(&net, sybils[0], price)).find(|tx| {
                let mut trial = net.clone();
                trial.block_after(1_000, vec![tx.clone()]);
                auditor(&trial, id).is_some_and(|node| sybils.contains(&node))
            });
        net.block_after(1_000, steering.into_iter().collect());
        if let Some(node) = auditor(&net, id) {
            assert_eq!(net.task(id).round, Round::Audit);
            return sybils.contains(&node);
        }
    }
    panic!("no auditor was placed");
}

#[test]
fn a_worker_cannot_steer_its_sybil_into_its_auditor_seat() {
    let trials = 24;
    let steered = (0..trials).filter(|blocks| attack(*blocks)).count();
    // Two sybils among twelve candidates: a fair draw seats one about one time in six. With the
    // candidates chosen in the block that also drew from them, the attacker seated one every time.
    assert!(
        steered * 3 <= trials as usize,
        "a sybil audited its worker {steered} times of {trials}"
    );
}

#[test]
fn random_seats_are_drawn_in_the_block_after_their_candidates_are_frozen() {
    let (mut net, worker, sybils) = market(0);
    let id = net.submit(0, policy(Verification::Audit));
    net.commit(id, worker, b"work").expect("commit");
    net.idle(1_000);
    let task = net.task(id);
    assert_eq!((task.round, task.seats), (Round::Audit, 1), "the audit was drawn");
    let draw = task.seat_draw.clone().expect("candidates frozen");
    assert_eq!(draw.height, net.height);
    assert_eq!(draw.candidates.len(), 12, "every eligible owner but the worker's");
    assert!(
        sybils.iter().all(|s| draw.candidates.contains(s)) && !draw.candidates.contains(&worker)
    );
    assert_eq!(auditor(&net, id), None, "nothing is drawn from randomness known while freezing");
    // Changing a candidate now changes nothing but its own eligibility.
    let (who, body) = set_price(&net, sybils[0], 4_000_000);
    net.block_after(1_000, vec![(who, body)]);
    let seat = auditor(&net, id).expect("drawn in the next block");
    assert!(draw.candidates.contains(&seat) && seat != sybils[0]);
    assert!(net.task(id).seat_draw.is_none(), "a placed seat keeps no draw");
}
