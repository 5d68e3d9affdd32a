//! Tests of cancelling (`ledger::cancel`): a cancel ends the work at once, but waits for the
//! verdict on results already revealed against each other, which slashes the loser as it would
//! have; then the task ends cancelled.

use crate::money::Offence;
use crate::release_tests::{
    assert_rebuilt, forged_and_audited, lease, net5, paid_and_clawed, ONE_INTERVAL_MS, STAKE,
};
use crate::state::{Lease, Role, Round, Task, Verdict};
use crate::tests::Net;
use crate::verification_tests::{policy, slash_of, stake, verdict};
use crate::Event;
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{Amount, Hash32, NodeId, Reject, TaskId, TaskState, TxBody};

/// Fees of the requester's accepted transactions in these tests: submit and cancel.
const FEES: u128 = 20;
const CANCELLED: (TaskState, Option<FailureReason>) =
    (TaskState::Cancelled, Some(FailureReason::CancelledByRequester));

fn ended(net: &Net, id: TaskId) -> usize {
    net.log.iter().filter(|e| matches!(e, Event::TaskEnded { task, .. } if *task == id)).count()
}

/// The requester (account 0) cancels and the cancel is deferred: the task still runs, marked,
/// nothing is paid or refunded, and a second cancel is refused.
fn cancel_deferred(net: &mut Net, id: TaskId, round: Round) {
    let events = net.run(0, TxBody::CancelTask { task: id }).expect("cancel").events;
    assert!(events.contains(&Event::CancelDeferred { task: id, round, until: "verdict" }));
    let ends = |e: &Event| matches!(e, Event::TaskEnded { .. } | Event::Refunded { .. });
    assert!(!events.iter().any(ends), "the task waits for its verdict");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Running);
    assert_eq!(task.cancel_requested_ms, Some(net.time_ms));
    assert_eq!(check_deferred_cancel(task), Ok(()));
    assert_eq!(net.run(0, TxBody::CancelTask { task: id }), Err(Reject::CancelPending));
    assert_rebuilt(net);
}

/// The task ended cancelled after its verdict: `loser` slashed `offence` with its released
/// intervals clawed back, every `upheld` lease paid its earnings once, the rest refunded, and
/// the requester out of pocket only what the upheld leases earned.
fn assert_judged_then_cancelled(
    net: &mut Net,
    id: TaskId,
    loser: NodeId,
    upheld: &[NodeId],
    offence: Offence,
) {
    let task = net.task(id).clone();
    assert_eq!((task.state, task.failure), CANCELLED);
    assert_eq!(ended(net, id), 1);
    assert_eq!(task.result.as_ref().map(|r| r.output_hash), Some(Hash32::of(b"right")));
    let released = lease(net, id, loser).released.0;
    let (paid, clawed) = paid_and_clawed(net, id, loser);
    assert!(paid > 0, "the forger had been released intervals");
    assert_eq!((clawed, released), (paid, 0), "the forger keeps nothing");
    assert!(net.log.iter().any(|e| matches!(e,
        Event::ClawedBack { task, node, offence: o, .. }
            if *task == id && *node == loser && *o == offence)));
    assert_eq!(verdict(net, id, loser), Verdict::Overruled);
    assert_eq!(stake(net, loser).0, STAKE - slash_of(net, id, loser) - clawed);
    assert_eq!(net.state.nodes[&loser].reputation.offences, 1);
    let mut earned = 0;
    for node in upheld {
        let lease = lease(net, id, *node);
        assert_eq!(lease.verdict, Verdict::Paid, "node {node}");
        assert_eq!(paid_and_clawed(net, id, *node), (lease.cost.0, 0), "node {node}: once");
        earned += lease.cost.0;
    }
    assert_eq!(task.paid.0, earned, "only the upheld leases' earnings");
    assert_eq!(task.refunded.0, task.terms.budget.0 - earned);
    assert_eq!(net.balance(0).0, Amount::tokens(100_000).0 - FEES - earned);
    assert!(net.state.index.clawback.is_empty() && net.state.index.at_risk.is_empty());
    assert_rebuilt(net);
}

/// `forged_and_audited`, then the referee is placed and runs an interval. Returns worker,
/// auditor, referee.
fn audit_split(net: &mut Net) -> (TaskId, [NodeId; 3]) {
    let (id, worker, auditor) = forged_and_audited(net);
    let referee = net.leased(id)[2];
    assert_eq!(net.task(id).round, Round::Referee);
    assert_eq!(lease(net, id, referee).role, Role::Referee);
    net.wait(ONE_INTERVAL_MS);
    assert!(lease(net, id, referee).released > Amount::ZERO, "the referee is paid per interval");
    (id, [worker, auditor, referee])
}

#[test]
fn a_cancel_during_a_referee_round_after_an_audit_split_still_slashes_the_forger() {
    let mut net = net5();
    let (id, [worker, auditor, referee]) = audit_split(&mut net);
    cancel_deferred(&mut net, id, Round::Referee);
    net.wait(ONE_INTERVAL_MS);
    net.commit(id, referee, b"right").expect("the referee goes on");
    assert_rebuilt(&mut net);
    net.reveal(id, referee, b"right").expect("referee reveals");
    net.reveal(id, worker, b"forged").expect("worker reveals");
    net.reveal(id, auditor, b"right").expect("auditor reveals");
    assert_judged_then_cancelled(&mut net, id, worker, &[auditor, referee], Offence::AuditFailed);
}

/// Three replicas run an interval and commit a split (the middle one forged): their tags differ,
/// so a committee of the two other owners is drawn before anyone reveals, runs an interval and
/// confirms the majority. The requester cancels once the split shows: before the committee ran
/// (`early`), or while it runs.
fn replica_split_cancelled(early: bool) -> (Net, TaskId, Vec<NodeId>, Vec<NodeId>) {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    let outputs: [&[u8]; 3] = [b"right", b"forged", b"right"];
    net.wait(ONE_INTERVAL_MS);
    for (node, output) in replicas.iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    assert_eq!(net.task(id).round, Round::Referee, "the split goes to a committee");
    if early {
        cancel_deferred(&mut net, id, Round::Referee);
    }
    let members = net.leased(id)[3..].to_vec();
    assert_eq!(members.len(), 2, "the committee is placed despite the cancel");
    net.wait(ONE_INTERVAL_MS);
    if !early {
        cancel_deferred(&mut net, id, Round::Referee);
    }
    for member in &members {
        net.commit(id, *member, b"right").expect("member commits");
    }
    for member in &members {
        net.reveal(id, *member, b"right").expect("member reveals");
    }
    for (node, output) in replicas.iter().zip(outputs) {
        net.reveal(id, *node, output).expect("reveal");
    }
    (net, id, replicas, members)
}

#[test]
fn a_cancel_during_a_replica_committee_still_slashes_the_forger() {
    for early in [false, true] {
        let (mut net, id, replicas, members) = replica_split_cancelled(early);
        let upheld = [replicas[0], replicas[2], members[0], members[1]];
        assert_judged_then_cancelled(&mut net, id, replicas[1], &upheld, Offence::Minority);
    }
}

/// A task with nothing revealed against each other yet and no result awaiting its audit, after
/// an interval of work: queued (nobody can run it), or three replicas of which two revealed the
/// same hash.
fn before_disagreement(replicated: bool) -> (Net, TaskId) {
    let mut net = if replicated { net5() } else { Net::new() };
    let verification = if replicated { Verification::Replicas(3) } else { Verification::Spot };
    let id = net.submit(0, policy(verification));
    let nodes = net.leased(id);
    net.wait(ONE_INTERVAL_MS);
    if replicated {
        for node in &nodes {
            net.commit(id, *node, b"same").expect("commit");
        }
        net.reveal(id, nodes[0], b"same").expect("reveal");
        net.reveal(id, nodes[1], b"same").expect("reveal");
    }
    (net, id)
}

#[test]
fn a_cancel_before_any_disagreement_ends_at_once_as_before() {
    for replicated in [false, true] {
        let (mut net, id) = before_disagreement(replicated);
        let released: u128 = net.task(id).leases.iter().map(|l| l.released.0).sum();
        assert_eq!(released > 0, replicated);
        let events = net.run(0, TxBody::CancelTask { task: id }).expect("cancel").events;
        assert!(!events.iter().any(|e| matches!(e, Event::CancelDeferred { .. })));
        assert!(!events.iter().any(|e| matches!(e, Event::Paid { .. })));
        let task = net.task(id).clone();
        assert_eq!((task.state, task.failure), CANCELLED);
        assert_eq!(task.cancel_requested_ms, None);
        assert_eq!((task.paid.0, task.refunded.0), (released, task.terms.budget.0 - released));
        assert!(task.leases.iter().all(|l| l.verdict == Verdict::Pending), "unjudged");
        assert_eq!(net.state.meta.burned, Amount::ZERO);
        assert_rebuilt(&mut net);
    }
}

#[test]
fn a_cancel_while_a_committed_result_awaits_its_audit_still_slashes_the_forger() {
    // A requester colluding with a forging worker cancels once the audit is drawn, before
    // anything is revealed: the task used to end at once, the forgery never compared, the forger
    // unslashed and keeping its released intervals. (A cancel in the same block as the worker's
    // commitment, before the draw, finds the round `Drawing` and is deferred the same way.)
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    net.commit(id, worker, b"forged").expect("commit");
    net.keep_alive();
    assert_eq!(net.task(id).round, Round::Audit);
    cancel_deferred(&mut net, id, Round::Audit);
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("the auditor goes on");
    let referee = net.referee(id, [b"forged", b"right", b"right"]);
    assert_judged_then_cancelled(&mut net, id, worker, &[auditor, referee], Offence::AuditFailed);
}

/// Every lease of the task kept its released intervals and nothing more; nobody was slashed;
/// the rest was refunded.
fn assert_cancelled_unjudged(net: &mut Net, id: TaskId) {
    let task = net.task(id).clone();
    assert_eq!((task.state, task.failure), CANCELLED);
    assert_eq!(net.state.meta.burned, Amount::ZERO, "nobody is slashed without a verdict");
    assert!(!net
        .log
        .iter()
        .any(|e| matches!(e, Event::Penalized { .. } | Event::ClawedBack { .. })));
    let released: u128 = task.leases.iter().map(|l| l.released.0).sum();
    assert!(released > 0);
    assert_eq!((task.paid.0, task.refunded.0), (released, task.terms.budget.0 - released));
    assert!(task.leases.iter().all(|l| l.verdict != Verdict::Paid));
    assert!(net.state.index.at_risk.is_empty() && net.state.index.clawback.is_empty());
    assert_rebuilt(net);
}

#[test]
fn a_deferred_cancel_whose_judgement_finds_no_majority_ends_cancelled_slashing_nobody() {
    let mut net = net5();
    let (id, _) = audit_split(&mut net);
    cancel_deferred(&mut net, id, Round::Referee);
    net.referee_escalated(id, [b"forged", b"right", b"third", b"fourth", b"fifth"]);
    assert_cancelled_unjudged(&mut net, id);
}

#[test]
fn a_deferred_cancel_whose_referee_seat_nobody_fills_ends_cancelled_slashing_nobody() {
    // Two owners only: no third one can referee the split.
    let mut net = Net::new();
    net.provider(1, 500_000);
    net.provider(2, 1_000_000);
    let (id, _, _) = forged_and_audited(&mut net);
    assert_eq!((net.task(id).round, net.task(id).seats), (Round::Referee, 1));
    cancel_deferred(&mut net, id, Round::Referee);
    net.wait(net.state.params.verification.seat_wait_ms);
    assert_cancelled_unjudged(&mut net, id);
}

#[test]
fn a_withheld_reveal_of_a_deferred_cancel_is_judged_against_its_verdict() {
    // The auditor guesses and keeps its commitment closed; the referee sides with the worker.
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"right").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"guess").expect("auditor commits");
    cancel_deferred(&mut net, id, Round::Referee);
    let referee = net.leased(id)[2];
    net.commit(id, referee, b"right").expect("referee commits");
    net.reveal(id, referee, b"right").expect("reveal");
    net.reveal(id, worker, b"right").expect("reveal");
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, auditor), Verdict::Withheld);
    let task = net.task(id).clone();
    assert_eq!((task.state, task.failure), CANCELLED);
    assert_eq!(
        (verdict(&net, id, worker), verdict(&net, id, referee)),
        (Verdict::Paid, Verdict::Paid)
    );
    let events = net.reveal(id, auditor, b"guess").expect("late reveal").events;
    let slashed = |e: &Event| matches!(e, Event::Penalized { node, offence: Offence::AuditFailed, .. } if *node == auditor);
    assert!(events.iter().any(slashed), "judged against the verdict's result");
    assert_rebuilt(&mut net);
}

#[test]
fn the_cancel_request_is_encoded_with_the_task() {
    let mut net = net5();
    let (id, _) = audit_split(&mut net);
    let before = net.task(id).to_bytes();
    cancel_deferred(&mut net, id, Round::Referee);
    let task = net.task(id).clone();
    let bytes = task.to_bytes();
    assert_ne!(bytes, before, "the state root sees the request");
    assert_eq!(Task::from_bytes(&bytes).expect("decodes"), task);
}

/// A deferred cancel waits only for a judgement under way, and never for new work.
pub(crate) fn check_deferred_cancel(task: &Task) -> Result<(), String> {
    if task.state.is_terminal() || !task.cancel_requested() {
        return Ok(());
    }
    if !crate::cancel::under_judgement(task) {
        return Err(format!("task {} awaits a cancel with nothing to judge", task.id));
    }
    let work = |l: &Lease| matches!(l.role, Role::Worker | Role::Replica) && l.is_running();
    if task.leases.iter().any(work) {
        return Err(format!("task {} runs work after its cancel", task.id));
    }
    Ok(())
}
