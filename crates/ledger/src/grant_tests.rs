//! Content keys go to the nodes placed on a task, after placement, and to no other; a lease
//! the requester does not grant in time is released without blame and paid its wait; keys of
//! small order are refused.

use crate::event::Event;
use crate::tests::{hardware, key, terms, Net};
use crate::Params;
use aicpw_types::task::FailureReason;
use aicpw_types::tx::KeyGrant;
use aicpw_types::{seal, Amount, Hash32, NodeId, Reject, TaskId, TxBody};

fn grant(node: NodeId) -> KeyGrant {
    let public = key(node.0 as u32).x25519_public();
    KeyGrant { node, sealed_key: seal::seal(&public, &[9; 32]).expect("a usable key") }
}

fn encrypted_task(net: &mut Net) -> TaskId {
    let mut t = terms(12_000_000);
    t.encrypted = true;
    net.submit(0, t)
}

#[test]
fn a_cheap_sybil_not_placed_on_the_task_is_refused_its_key() {
    let mut net = Net::new();
    let honest = net.provider(2, 1_000);
    // One owner's cheap sybils: registering costs little, and they fit every task.
    let sybils = [net.provider(1, 2_000), net.provider(1, 2_000)];
    let id = encrypted_task(&mut net);
    assert_eq!(net.leased(id), vec![honest], "placed with no grant at all");
    for sybil in sybils {
        let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(sybil)] };
        assert_eq!(net.run(0, body), Err(Reject::GrantWithoutLease));
    }
    // A grant naming one unplaced node is refused whole: nothing half-applied.
    let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(honest), grant(sybils[0])] };
    assert_eq!(net.run(0, body), Err(Reject::GrantWithoutLease));
    assert!(net.task(id).key_grants.is_empty());
    let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(honest)] };
    net.run(0, body).expect("the placed node gets the key");
    assert_eq!(net.task(id).key_grants.iter().map(|g| g.node).collect::<Vec<_>>(), vec![honest]);
    // The grant is announced to its node (whose agent wakes on it); refused ones are not.
    let announced: Vec<NodeId> = net
        .log
        .iter()
        .filter_map(|e| match e {
            Event::KeyGranted { task, node } if *task == id => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![honest]);
    // Only the requester grants.
    let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(honest)] };
    assert_eq!(net.run(1, body), Err(Reject::NotTaskRequester));
}

#[test]
fn a_lease_not_granted_in_time_is_released_without_blame_and_paid_its_wait() {
    let mut net = Net::new();
    let first = net.provider(2, 1_800_000);
    let second = net.provider(3, 3_600_000);
    let id = encrypted_task(&mut net);
    assert_eq!(net.leased(id), vec![first]);
    let reputation = net.state.nodes[&first].reputation.clone();
    // The node keeps its lease alive with heartbeats; the requester never grants.
    net.wait(Params::default().grant_wait_ms);
    let requeued = net.log.iter().any(|e| {
        matches!(e, Event::TaskRequeued { task, node, reason: FailureReason::KeysNotGranted }
            if *task == id && *node == first)
    });
    assert!(requeued, "the ungranted lease is released");
    assert_eq!(net.state.nodes[&first].reputation, reputation, "no blame to the node");
    let waited: u128 = net
        .log
        .iter()
        .filter_map(|e| match e {
            Event::Paid { task, node, amount, .. } if *task == id && *node == first => {
                Some(amount.0)
            }
            _ => None,
        })
        .sum();
    // 1.8M per hour is 500 per second: its 30 s of waiting, paid from the requester's budget.
    assert_eq!(waited, 15_000, "paid for its wait");
    assert_eq!(net.leased(id), vec![second], "the seat is refilled elsewhere");
    let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(first)] };
    assert_eq!(net.run(0, body), Err(Reject::GrantWithoutLease), "the released node gets none");
    let body = TxBody::GrantKeys { task: id, key_grants: vec![grant(second)] };
    net.run(0, body).expect("grant");
    net.wait(2 * Params::default().grant_wait_ms);
    assert_eq!(net.leased(id), vec![second], "a granted lease runs on");
}

#[test]
fn a_requester_that_never_grants_ends_its_task_after_the_attempts_and_pays_the_waits() {
    let mut net = Net::new();
    let nodes: Vec<NodeId> = (1..=4).map(|i| net.provider(i, 3_600_000)).collect();
    let id = encrypted_task(&mut net);
    net.wait(5 * Params::default().grant_wait_ms);
    let task = net.task(id);
    assert_eq!(task.failure, Some(FailureReason::AttemptsExhausted));
    assert!(task.key_grants.is_empty());
    assert!(task.paid.0 > 0 && task.paid.0 <= 3 * 31_000, "three waits paid: {}", task.paid);
    assert!(nodes.iter().all(|n| net.state.nodes[n].reputation.expired == 0));
}

#[test]
fn keys_of_small_order_are_refused_at_registration_and_submission() {
    let mut net = Net::new();
    net.run(1, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
    let mut p_minus_one = [0xff; 32];
    p_minus_one[0] = 0xec;
    p_minus_one[31] = 0x7f;
    let mut one = [0; 32];
    one[0] = 1;
    for weak in [[0; 32], one, p_minus_one] {
        let body = TxBody::RegisterNode {
            hardware: hardware(),
            x25519_key: weak,
            endpoint: "sybil".into(),
            price_per_hour: Amount(1),
        };
        assert_eq!(net.run(1, body), Err(Reject::WeakX25519Key));
        let mut t = terms(12_000_000);
        t.result_key = weak;
        let body = TxBody::SubmitTask { terms: t, answer_commitment: Hash32::default() };
        assert_eq!(net.run(0, body), Err(Reject::WeakX25519Key));
    }
    assert!(net.state.nodes.is_empty() && net.state.tasks.is_empty());
}
