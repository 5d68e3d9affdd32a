//! Attacks on the graded responses: a requester aiming failures it causes at one node, dust votes
//! filling an appeal's voter seats, and a node leaving and registering again to shed its record.

use crate::state::{NodeStatus, Params};
use crate::tests::{key, terms, Net};
use crate::verification_tests::{catch_cheating, policy};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{Amount, NodeId, Reject, SignedTx, TaskId, TaskState, TxBody};

const INPUTS: FailureReason = FailureReason::InputsUnavailable;

fn claim(net: &mut Net, id: TaskId, node: NodeId) {
    let body = TxBody::ReportFailure { task: id, node, reason: INPUTS };
    net.run(net.owner(node), body).expect("report");
}

#[test]
fn a_requester_aiming_bad_inputs_at_a_new_node_cannot_freeze_it_and_pays_for_its_time() {
    // The target is the cheapest node, so the requester's lowest-price tasks go to it first.
    let mut net = Net::new();
    let target = net.provider(1, 1_000_000);
    let other = net.provider(2, 2_000_000);
    let freeze_faults = net.state.params.verification.freeze_faults_min;
    let (requester, target_owner, other_owner) = (net.balance(0), net.balance(1), net.balance(2));
    let attacks = 2 * freeze_faults;
    for _ in 0..attacks {
        // Inputs nobody can open: the CID names nothing in any store.
        let mut t = terms(12_000_000);
        t.inputs_cid = "bafkreinothingatall".into();
        let id = net.submit(0, t);
        assert_eq!(net.worker(id), target, "the requester aims at the target");
        claim(&mut net, id, target);
        assert_eq!(net.task(id).failure, None, "one claim proves nothing");
        assert_eq!(net.worker(id), other, "the task went to another owner's node");
        claim(&mut net, id, other);
        let task = net.task(id);
        assert_eq!((task.state, task.failure), (TaskState::Failed, Some(INPUTS)));
        assert!(task.paid.0 > 0, "the requester pays the providers' time");
        assert_eq!(task.paid.0 + task.refunded.0, 12_000_000);
    }
    let node = &net.state.nodes[&target];
    assert_eq!(node.status, NodeStatus::Active, "{attacks} aimed failures do not freeze it");
    assert_eq!((node.reputation.failed, node.reputation.expired), (0, 0));
    assert_eq!(node.reputation.score_permille, crate::reputation::NEW_SCORE_PERMILLE);
    assert_eq!(net.state.nodes[&other].reputation.failed, 0);
    // Each claimant is paid its time (one block, 1 s, at its price) and the requester bears it.
    let fees = |txs: u64| Amount(u128::from(txs) * 10);
    let target_paid = Amount(net.balance(1).0 + fees(attacks).0 - target_owner.0);
    let other_paid = Amount(net.balance(2).0 + fees(attacks).0 - other_owner.0);
    assert_eq!(target_paid, Amount(u128::from(attacks) * 278), "1 s at 1,000,000 an hour");
    assert_eq!(other_paid, Amount(u128::from(attacks) * 556));
    let spent = requester.0 - net.balance(0).0;
    assert_eq!(spent, fees(attacks).0 + target_paid.0 + other_paid.0);
    let id = net.submit(0, terms(12_000_000));
    assert_eq!(net.worker(id), target, "it still gets work");
}

#[test]
fn one_unconfirmed_input_claim_moves_no_reputation_and_no_money() {
    let mut net = Net::new();
    let liar = net.provider(1, 1_000_000);
    let sibling = net.provider(1, 1_500_000);
    let honest = net.provider(2, 2_000_000);
    let id = net.submit(0, terms(12_000_000));
    net.wait(120_000);
    let released = net.task(id).leases[0].released;
    claim(&mut net, id, liar);
    // The same owner's other node cannot confirm its own claim.
    assert_eq!(net.worker(id), sibling);
    claim(&mut net, id, sibling);
    assert_eq!(net.task(id).failure, None);
    assert_eq!(net.worker(id), honest);
    net.finish_lease(id, honest, b"result");
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    let paid_to_liar = net
        .log
        .iter()
        .filter_map(|e| match e {
            crate::Event::Paid { node, amount, .. } if *node == liar => Some(amount.0),
            _ => None,
        })
        .sum::<u128>();
    assert_eq!(Amount(paid_to_liar), released, "only the intervals it was released");
    for node in [liar, sibling] {
        assert_eq!(net.state.nodes[&node].reputation.failed, 0);
        assert_eq!(net.state.nodes[&node].status, NodeStatus::Active);
    }
}

#[test]
fn an_input_claim_after_a_result_was_committed_cannot_fail_the_task() {
    let mut net = Net::new();
    let nodes: Vec<NodeId> = (1..=5).map(|i| net.provider(i, 1_000_000)).collect();
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let leased = net.leased(id);
    net.commit(id, leased[0], b"result").expect("commit");
    claim(&mut net, id, leased[1]);
    claim(&mut net, id, leased[2]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Running, "someone could open the inputs");
    assert_eq!(task.paid, Amount::ZERO);
    assert!(nodes.iter().all(|n| net.state.nodes[n].reputation.failed == 0));
}

/// A net whose node 1 is frozen with an appeal open, voting `voting_ms`.
fn appealing(params: Params) -> (Net, NodeId) {
    let mut net = Net::with_params(params);
    let node = net.provider(1, 1_000_000);
    net.state.nodes.get_mut(&node).expect("node").status = NodeStatus::Frozen;
    net.run(1, TxBody::Appeal { node }).expect("appeal");
    (net, node)
}

/// Sybil accounts (dev keys 100..100 + count), each funded and bonding `stake`.
fn sybils(net: &mut Net, count: u32, stake: Amount) -> Vec<u32> {
    let ids: Vec<u32> = (100..100 + count).collect();
    let funding: Vec<SignedTx> = ids
        .iter()
        .map(|i| {
            let body = TxBody::Transfer { to: key(*i).account(), amount: Amount(stake.0 + 100) };
            net.sign(0, body)
        })
        .collect();
    assert!(net.block(&funding).iter().all(|r| r.is_ok()));
    let bonds: Vec<SignedTx> =
        ids.iter().map(|i| net.sign(*i, TxBody::Bond { amount: stake })).collect();
    assert!(net.block(&bonds).iter().all(|r| r.is_ok()));
    ids
}

fn votes(net: &mut Net, voters: &[u32], node: NodeId, approve: bool) -> Vec<Option<Reject>> {
    let txs: Vec<SignedTx> =
        voters.iter().map(|v| net.sign(*v, TxBody::VoteAppeal { node, approve })).collect();
    net.block(&txs).into_iter().map(|r| r.err()).collect()
}

#[test]
fn dust_votes_cannot_fill_an_appeals_voter_seats() {
    let (mut net, node) = appealing(Params::default());
    let seats = crate::state::APPEAL_VOTERS_MAX as u32;
    let dust = sybils(&mut net, seats, Amount(1));
    let refused = votes(&mut net, &dust, node, false);
    assert!(refused.iter().all(|r| *r == Some(Reject::VoteStakeTooLow)));
    net.run(4, TxBody::Bond { amount: Amount::tokens(3_000) }).expect("bond");
    net.run(4, TxBody::VoteAppeal { node, approve: true }).expect("a real staker still votes");
    net.idle(net.state.params.verification.appeal_voting_ms);
    assert_eq!(net.state.nodes[&node].status, NodeStatus::Active);
}

#[test]
fn a_full_appeal_gives_its_seats_to_the_heaviest_stakes() {
    let mut params = Params::default();
    params.verification.vote_stake_min = Amount::tokens(10);
    let (mut net, node) = appealing(params);
    let seats = crate::state::APPEAL_VOTERS_MAX as u32;
    let light = sybils(&mut net, seats, Amount::tokens(10));
    assert!(votes(&mut net, &light, node, false).iter().all(Option::is_none));
    let appeal = net.state.nodes[&node].appeal.clone().expect("open");
    assert_eq!(appeal.reject, Amount::tokens(10 * u64::from(seats)));
    // One more vote no heavier than the lightest finds no seat.
    net.run(5, TxBody::Bond { amount: Amount::tokens(10) }).expect("bond");
    assert_eq!(
        net.run(5, TxBody::VoteAppeal { node, approve: true }),
        Err(Reject::AppealVotersFull)
    );
    // A heavier one takes the lightest's seat, and the stake-weighted vote decides.
    net.run(4, TxBody::Bond { amount: Amount::tokens(3_000) }).expect("bond");
    net.run(4, TxBody::VoteAppeal { node, approve: true }).expect("vote");
    let appeal = net.state.nodes[&node].appeal.clone().expect("open");
    assert_eq!(appeal.votes.len(), seats as usize);
    assert_eq!(appeal.reject, Amount::tokens(10 * u64::from(seats - 1)));
    assert_eq!(appeal.approve, Amount::tokens(3_000));
    assert!(net.events.iter().any(|e| matches!(e, crate::Event::AppealVoteDisplaced { .. })));
    net.idle(net.state.params.verification.appeal_voting_ms);
    assert_eq!(net.state.nodes[&node].status, NodeStatus::Active);
}

#[test]
fn deregistering_and_registering_again_keeps_the_owners_offences_and_freeze() {
    let mut params = Params::default();
    params.verification.offences_eject = 2;
    params.verification.appeal_voting_ms = 60_000;
    let mut net = Net::with_params(params);
    let nodes: Vec<NodeId> = (1..=5).map(|i| net.provider(i, 500_000 * u128::from(i))).collect();
    catch_cheating(&mut net, nodes[0]);
    assert_eq!(net.state.nodes[&nodes[0]].status, NodeStatus::Frozen);
    // Leave and come back under the same owner: the new node is frozen with the old offence.
    net.run(1, TxBody::DeregisterNode { node: nodes[0] }).expect("deregister");
    let again = net.provider(1, 500_000);
    let node = &net.state.nodes[&again];
    assert_eq!((node.status, node.reputation.offences), (NodeStatus::Frozen, 1));
    let id = net.submit(0, policy(Verification::Spot));
    assert_ne!(net.worker(id), again, "a frozen node gets no work");
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    // Thawed by the stakers, its next offence is its owner's second: ejected.
    net.run(1, TxBody::Appeal { node: again }).expect("appeal");
    net.run(2, TxBody::VoteAppeal { node: again, approve: true }).expect("vote");
    net.wait(net.state.params.verification.appeal_voting_ms);
    net.keep_alive();
    assert_eq!(net.state.nodes[&again].status, NodeStatus::Active);
    catch_cheating(&mut net, again);
    assert_eq!(net.state.nodes[&again].status, NodeStatus::Ejected);
    assert_eq!(net.state.accounts[&key(1).account()].offences, 2);
}
