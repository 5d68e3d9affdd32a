//! Tests of per-interval release and clawback (`ledger::release`): every running lease of every
//! policy and role is paid per verified interval; a lease judged wrong has it clawed back with
//! the slash; any other lease keeps it; the stake backing a clawback stays put.

use crate::money::Offence;
use crate::state::{Lease, Role, Round, Verdict};
use crate::tests::{key, Net};
use crate::verification_tests::{policy, slash_of, stake};
use crate::Event;
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{Amount, Hash32, NodeId, Reject, TaskId, TaskState, TxBody};

/// Heartbeats for this long cover one released interval (60 s) and not two.
pub(crate) const ONE_INTERVAL_MS: u64 = 70_000;
pub(crate) const STAKE: u128 = 1_000_000_000;

/// Five providers of five owners (1..=5), all under the tests' maximum price.
pub(crate) fn net5() -> Net {
    let mut net = Net::new();
    for i in 1..=5 {
        net.provider(i, 500_000 * u128::from(i));
    }
    net
}

pub(crate) fn lease(net: &Net, id: TaskId, node: NodeId) -> Lease {
    net.task(id).leases.iter().find(|l| l.node == node).expect("lease").clone()
}

/// The incremental state root and the indices equal those a restarted node rebuilds.
pub(crate) fn assert_rebuilt(net: &mut Net) {
    let root = net.state.finalize_root().0;
    let mut rebuilt = net.rebuilt();
    assert_eq!(rebuilt.finalize_root().0, root, "the root covers releases, clawbacks, cancels");
    let (a, b) = (&rebuilt.index, &net.state.index);
    assert_eq!((&a.queued, &a.leases, &a.verifying), (&b.queued, &b.leases, &b.verifying));
    assert_eq!((&a.draws, &a.node_leases), (&b.draws, &b.node_leases));
    assert_eq!((&a.at_risk, &a.clawback), (&b.at_risk, &b.clawback));
    assert_eq!((&a.withheld, &a.node_withheld), (&b.withheld, &b.node_withheld));
}

/// What the log paid to `node` on task `id`, and what it clawed back from it.
pub(crate) fn paid_and_clawed(net: &Net, id: TaskId, node: NodeId) -> (u128, u128) {
    let (mut paid, mut clawed) = (0, 0);
    for event in &net.log {
        match event {
            Event::Paid { task, node: n, amount, .. } if *task == id && *n == node => {
                paid += amount.0
            }
            Event::ClawedBack { task, node: n, amount, .. } if *task == id && *n == node => {
                clawed += amount.0
            }
            _ => {}
        }
    }
    (paid, clawed)
}

/// What the log paid to `node` on task `id`.
fn paid_to(net: &Net, id: TaskId, node: NodeId) -> u128 {
    paid_and_clawed(net, id, node).0
}

/// The lease seats a test can reach running.
#[derive(Clone, Copy, Debug)]
enum Seat {
    UnverifiedWorker,
    AuditedWorker,
    Auditor,
    Referee,
    Replica,
    ReplicaCommittee,
    DisputeCommittee,
}

/// A task whose `seat` leases were just placed and run; every earlier lease has committed.
fn placed(seat: Seat) -> (Net, TaskId, Vec<NodeId>) {
    let mut net = net5();
    let id = match seat {
        Seat::UnverifiedWorker | Seat::DisputeCommittee => {
            net.submit(0, policy(Verification::Spot))
        }
        Seat::AuditedWorker | Seat::Auditor | Seat::Referee => {
            net.submit(0, policy(Verification::Audit))
        }
        Seat::Replica => net.submit(0, policy(Verification::Replicas(2))),
        Seat::ReplicaCommittee => net.submit(0, policy(Verification::Replicas(3))),
    };
    let first = net.leased(id);
    match seat {
        Seat::UnverifiedWorker | Seat::AuditedWorker | Seat::Replica => {}
        Seat::Auditor | Seat::Referee => {
            net.commit(id, first[0], b"worker").expect("commit");
            net.keep_alive();
            if let Seat::Referee = seat {
                let auditor = net.leased(id)[1];
                net.commit(id, auditor, b"auditor").expect("auditor commits");
            }
        }
        Seat::ReplicaCommittee => {
            let outputs: [&[u8]; 3] = [b"a", b"b", b"a"];
            for (node, output) in first.iter().zip(outputs) {
                net.commit(id, *node, output).expect("commit");
            }
        }
        Seat::DisputeCommittee => {
            net.finish_lease(id, first[0], b"claimed");
            let bond = crate::market::dispute_bond_min(&net.task(id).terms);
            net.run(0, TxBody::DisputeResult { task: id, bond }).expect("dispute");
        }
    }
    let running = net.task(id).leases.iter().filter(|l| l.is_running()).map(|l| l.node).collect();
    (net, id, running)
}

#[test]
fn escrow_is_released_per_interval_under_every_policy_and_role() {
    let cases = [
        (Seat::UnverifiedWorker, Role::Worker, 1),
        (Seat::AuditedWorker, Role::Worker, 1),
        (Seat::Auditor, Role::Auditor, 1),
        (Seat::Referee, Role::Referee, 1),
        (Seat::Replica, Role::Replica, 2),
        (Seat::ReplicaCommittee, Role::Referee, 2),
        (Seat::DisputeCommittee, Role::Committee, 2),
    ];
    for (seat, role, count) in cases {
        let (mut net, id, nodes) = placed(seat);
        assert_eq!(nodes.len(), count, "{seat:?}");
        let paid_before = net.task(id).paid;
        net.wait(50_000);
        assert!(nodes.iter().all(|n| lease(&net, id, *n).released.is_zero()), "{seat:?}: < 60 s");
        net.wait(20_000);
        let mut released = 0;
        for node in &nodes {
            let lease = lease(&net, id, *node);
            assert_eq!(lease.role, role, "{seat:?}");
            assert!(lease.is_running(), "{seat:?}: paid while it runs");
            // Released on the first heartbeat 60 s or more after the start, for all of it.
            let held = lease.released_ms - lease.started_ms;
            assert!((60_000..70_000).contains(&held), "{seat:?}: {held}");
            let due = crate::market::cost(net.task(id), &lease, lease.released_ms);
            assert!(due > Amount::ZERO && lease.released == due, "{seat:?}");
            assert_eq!(paid_to(&net, id, *node), due.0, "{seat:?}: a `Paid` event");
            released += due.0;
        }
        let task = net.task(id);
        if role == Role::Committee {
            // From the dispute's bond, which pays the committee; the escrow is untouched.
            assert_eq!(task.dispute.as_ref().map(|d| d.released.0), Some(released));
            assert_eq!(task.paid, paid_before);
        } else {
            assert_eq!(task.paid.0, paid_before.0 + released, "{seat:?}: from the escrow");
        }
        let owner = net.state.nodes[&nodes[0]].owner;
        let clawback = net.state.index.clawback.get(&owner).copied();
        assert_eq!(clawback, Some(lease(&net, id, nodes[0]).released.0), "{seat:?}: at risk");
        assert_rebuilt(&mut net);
    }
}

/// Runs the task honestly to its verified result: every running lease holds its seat for
/// `hold_ms` (heartbeats included), commits `out` and reveals it.
fn work_honestly(net: &mut Net, id: TaskId, hold_ms: u64) {
    for _ in 0..8 {
        if net.task(id).state != TaskState::Running {
            return;
        }
        net.wait(hold_ms);
        let leases = net.task(id).leases.clone();
        for lease in leases.iter().filter(|l| l.is_running()) {
            net.commit(id, lease.node, b"out").expect("commit");
        }
        net.keep_alive();
        if net.task(id).reveal_open_ms.is_none() {
            continue;
        }
        let leases = net.task(id).leases.clone();
        let unrevealed = leases.iter().filter(|l| l.verdict == Verdict::Pending);
        for lease in unrevealed.filter(|l| l.commitment.is_some() && l.reveal.is_none()) {
            net.reveal(id, lease.node, b"out").expect("reveal");
        }
    }
    panic!("task {id} still running");
}

#[test]
fn an_honest_lease_keeps_its_intervals_and_gets_the_rest_on_acceptance_exactly_once() {
    for verification in [Verification::Spot, Verification::Audit, Verification::Replicas(2)] {
        let mut net = net5();
        let id = net.submit(0, policy(verification));
        work_honestly(&mut net, id, 2 * ONE_INTERVAL_MS);
        let task = net.task(id).clone();
        assert_eq!(task.state, TaskState::Verifying, "{verification:?}");
        assert!(task.leases.iter().all(|l| l.released > Amount::ZERO), "{verification:?}");
        assert!(task.leases.iter().all(|l| l.released < l.cost), "{verification:?}: a rest");
        net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
        let task = net.task(id).clone();
        let cost: u128 = task.leases.iter().map(|l| l.cost.0).sum();
        assert_eq!(task.paid.0, cost, "{verification:?}: released + rest = the cost, once");
        for lease in &task.leases {
            assert_eq!(lease.verdict, Verdict::Paid);
            assert_eq!(paid_to(&net, id, lease.node), lease.cost.0, "{verification:?}");
        }
        assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0);
        assert!(net.state.index.clawback.is_empty(), "{verification:?}: nothing left at risk");
        assert_rebuilt(&mut net);
    }
}

/// The clawback cases: a task whose lease `offender` was released intervals and then judged
/// wrong for `offence`.
struct Caught {
    net: Net,
    id: TaskId,
    offender: NodeId,
    offence: Offence,
}

/// An audited worker runs an interval and forges its result; the auditor commits the right
/// one. Their tags differ, so a referee is drawn before either reveals. Returns the task, worker
/// and auditor.
pub(crate) fn forged_and_audited(net: &mut Net) -> (TaskId, NodeId, NodeId) {
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    net.commit(id, worker, b"forged").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    (id, worker, auditor)
}

fn lazy_audited_worker() -> Caught {
    let mut net = net5();
    let (id, worker, _) = forged_and_audited(&mut net);
    net.referee(id, [b"forged", b"right", b"right"]);
    Caught { net, id, offender: worker, offence: Offence::AuditFailed }
}

fn lazy_auditor() -> Caught {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"right").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.wait(ONE_INTERVAL_MS);
    net.commit(id, auditor, b"guess").expect("commit");
    net.referee(id, [b"right", b"guess", b"right"]);
    Caught { net, id, offender: auditor, offence: Offence::AuditFailed }
}

/// Three replicas run an interval; `outputs` are committed and revealed; the committee (two
/// other owners) reveals `right`. Returns the replicas too.
fn replicas_judged(outputs: [&[u8]; 3]) -> (Net, TaskId, Vec<NodeId>) {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    net.wait(ONE_INTERVAL_MS);
    for (node, output) in replicas.iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    for member in net.leased(id)[3..].to_vec() {
        net.commit(id, member, b"right").expect("commit");
    }
    for member in net.leased(id)[3..].to_vec() {
        net.reveal(id, member, b"right").expect("reveal");
    }
    for (node, output) in replicas.iter().zip(outputs) {
        net.reveal(id, *node, output).expect("reveal");
    }
    (net, id, replicas)
}

fn minority_replica() -> Caught {
    let (net, id, replicas) = replicas_judged([b"right", b"wrong", b"right"]);
    Caught { net, id, offender: replicas[1], offence: Offence::Minority }
}

fn disputed_worker() -> Caught {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    net.finish_lease(id, worker, b"claimed");
    let bond = crate::market::dispute_bond_min(&net.task(id).terms);
    net.run(0, TxBody::DisputeResult { task: id, bond }).expect("dispute");
    let members = net.leased(id);
    for member in &members {
        net.commit(id, *member, b"true").expect("commit");
    }
    for member in &members {
        net.reveal(id, *member, b"true").expect("reveal");
    }
    Caught { net, id, offender: worker, offence: Offence::DisputeLost }
}

fn known_answer_worker() -> Caught {
    let mut net = net5();
    let (answer, salt) = (Hash32::of(b"answer"), Hash32::of(b"salt"));
    let answer_commitment = crate::dispute::answer_commitment(&key(0).account(), &answer, &salt);
    let terms = policy(Verification::Spot);
    let body = TxBody::SubmitTask { terms, answer_commitment };
    net.run(0, body).expect("submit");
    let id = TaskId(0);
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    net.finish_lease(id, worker, b"lazy");
    net.run(0, TxBody::RevealAnswer { task: id, answer_hash: answer, salt }).expect("reveal");
    let members = net.leased(id);
    for member in &members {
        net.commit(id, *member, b"answer").expect("commit");
    }
    for member in &members {
        net.reveal(id, *member, b"answer").expect("reveal");
    }
    Caught { net, id, offender: worker, offence: Offence::KnownAnswerWrong }
}

fn dissenting_committee_member() -> Caught {
    let (mut net, id, members) = placed(Seat::DisputeCommittee);
    net.wait(ONE_INTERVAL_MS);
    let outputs: [&[u8]; 2] = [b"claimed", b"other"];
    for (node, output) in members.iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    for (node, output) in members.iter().zip(outputs) {
        net.reveal(id, *node, output).expect("reveal");
    }
    Caught { net, id, offender: members[1], offence: Offence::DisputeLost }
}

/// A replica withholds its reveal; the task completes; it opens `late` (or never does).
fn withheld_replica(late: Option<&[u8]>) -> Caught {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    net.wait(ONE_INTERVAL_MS);
    for (i, node) in replicas.iter().enumerate() {
        let output: &[u8] = if i == 2 { b"wrong" } else { b"right" };
        net.commit(id, *node, output).expect("commit");
    }
    // The tags differ: a committee is drawn and commits before anyone reveals.
    let members = net.leased(id)[3..].to_vec();
    for member in &members {
        net.commit(id, *member, b"right").expect("member commits");
    }
    for node in members.iter().chain(&replicas[..2]) {
        net.reveal(id, *node, b"right").expect("reveal");
    }
    net.idle(net.state.params.verification.reveal_window_ms);
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    assert!(lease(&net, id, replicas[2]).released > Amount::ZERO, "kept until judged");
    let requester = net.balance(0);
    let offence = match late {
        Some(output) => {
            net.reveal(id, replicas[2], output).expect("late reveal");
            Offence::Minority
        }
        None => {
            net.idle(net.state.params.verification.late_reveal_window_ms);
            // The ended task's only movement in that block: the clawback, to the requester.
            let clawed = paid_to(&net, id, replicas[2]);
            assert_eq!(net.balance(0).0, requester.0 + clawed, "back to the requester");
            Offence::RevealWithheld
        }
    };
    Caught { net, id, offender: replicas[2], offence }
}

#[test]
fn a_lease_judged_wrong_has_its_released_intervals_clawed_back_and_is_slashed() {
    type Setup = fn() -> Caught;
    let cases: [(&str, Setup); 8] = [
        ("audited worker", lazy_audited_worker),
        ("auditor", lazy_auditor),
        ("minority replica", minority_replica),
        ("disputed worker", disputed_worker),
        ("known-answer worker", known_answer_worker),
        ("dispute committee member", dissenting_committee_member),
        ("withheld, never opened", || withheld_replica(None)),
        ("withheld, opened late with another hash", || withheld_replica(Some(b"wrong"))),
    ];
    for (case, setup) in cases {
        let Caught { mut net, id, offender, offence } = setup();
        let owner = net.state.nodes[&offender].owner;
        let released = paid_to(&net, id, offender);
        assert!(released > 0, "{case}: it was paid an interval");
        let position = |want: &dyn Fn(&Event) -> bool| net.log.iter().position(want);
        let clawed = position(&|e| {
            let expected = Event::ClawedBack {
                task: id,
                node: offender,
                owner,
                amount: Amount(released),
                offence,
            };
            *e == expected
        });
        let slashed = position(
            &|e| matches!(e, Event::Penalized { node, offence: o, .. } if *node == offender && *o == offence),
        );
        assert!(clawed.is_some() && clawed < slashed, "{case}: clawed back, then slashed");
        assert_eq!(lease(&net, id, offender).released, Amount::ZERO, "{case}: kept nothing");
        let slash = slash_of(&net, id, offender);
        assert_eq!(stake(&net, offender).0, STAKE - released - slash, "{case}: from its stake");
        if net.task(id).state == TaskState::Verifying {
            // Back in the escrow, as if never released: it pays the upheld leases' rest.
            let task = net.task(id);
            let released: u128 = task.leases.iter().map(|l| l.released.0).sum();
            assert_eq!(task.escrow.0 + released, task.terms.budget.0, "{case}");
            net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
        }
        let task = net.task(id).clone();
        assert!(task.state.is_terminal(), "{case}");
        // Every lease is paid its cost, its kept intervals, or (the offender) nothing: the rest
        // of the budget, the clawback included, went back to the requester.
        let kept: u128 = task
            .leases
            .iter()
            .filter(|l| l.role != Role::Committee)
            .map(|l| if l.verdict == Verdict::Paid { l.cost.0 } else { l.released.0 })
            .sum();
        assert_eq!(task.paid.0, kept, "{case}");
        assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0, "{case}");
        if let Some(dispute) = &task.dispute {
            let members = task.leases.iter().filter(|l| l.role == Role::Committee);
            let released: u128 = members.map(|l| l.released.0).sum();
            assert_eq!(dispute.released.0, released, "{case}: the bond got its own back");
        }
        assert!(!net.state.index.clawback.contains_key(&owner), "{case}: no longer at risk");
        assert_rebuilt(&mut net);
    }
}

#[test]
fn an_expired_lease_keeps_its_released_intervals() {
    for seat in [Seat::UnverifiedWorker, Seat::Replica, Seat::Auditor, Seat::DisputeCommittee] {
        let (mut net, id, nodes) = placed(seat);
        net.wait(ONE_INTERVAL_MS);
        let silent = nodes[0];
        for other in &nodes[1..] {
            net.commit(id, *other, b"out").expect("commit");
        }
        let released = lease(&net, id, silent).released;
        assert!(released > Amount::ZERO, "{seat:?}");
        net.idle(net.state.params.lease_ms);
        net.keep_alive();
        let task = net.task(id).clone();
        assert!(task.leases.iter().all(|l| l.node != silent), "{seat:?}: dropped");
        assert!(task.excluded.contains(&silent));
        assert_eq!(net.state.nodes[&silent].reputation.expired, 1);
        assert_eq!(paid_to(&net, id, silent), released.0, "{seat:?}: kept, nothing more");
        assert!(!net.log.iter().any(|e| matches!(e, Event::ClawedBack { .. })), "{seat:?}");
        let owner = net.state.nodes[&silent].owner;
        assert!(!net.state.index.clawback.contains_key(&owner), "{seat:?}: no verdict can come");
        assert_rebuilt(&mut net);
    }
}

#[test]
fn a_cancel_pays_unjudged_leases_nothing_beyond_their_released_intervals() {
    // A committee judging a replica split, or an audit of a committed result, is not among
    // them: a cancel waits for its verdict (`cancel_tests`).
    let (mut net, id, nodes) = placed(Seat::Replica);
    net.wait(ONE_INTERVAL_MS);
    // One lease of the round commits; the others are still running.
    net.commit(id, nodes[0], b"out").expect("commit");
    let released: u128 = net.task(id).leases.iter().map(|l| l.released.0).sum();
    assert!(released > 0);
    let events = net.run(0, TxBody::CancelTask { task: id }).expect("cancel").events;
    assert!(!events.iter().any(|e| matches!(e, Event::Paid { .. })), "no more");
    let task = net.task(id);
    assert_eq!((task.state, task.paid.0), (TaskState::Cancelled, released));
    assert_eq!(task.refunded.0, task.terms.budget.0 - released);
    assert!(task.leases.iter().all(|l| l.verdict == Verdict::Pending), "unjudged");
    assert!(net.state.index.clawback.is_empty(), "no verdict can come");
    assert_rebuilt(&mut net);
}

#[test]
fn the_stake_backing_a_possible_clawback_cannot_be_unbonded() {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    let who = net.owner(worker);
    let extra = 100_000_000;
    net.run(who, TxBody::Bond { amount: Amount(extra) }).expect("bond");
    net.wait(ONE_INTERVAL_MS);
    net.finish_lease(id, worker, b"out");
    let released = lease(&net, id, worker).released.0;
    assert!(released > 0);
    // Verified, awaiting acceptance: a dispute or a known answer may still claw it back.
    let slash = slash_of(&net, id, worker);
    let free = extra - slash - released;
    let unbond = |amount| TxBody::Unbond { amount: Amount(amount) };
    assert_eq!(net.run(who, unbond(free + 1)), Err(Reject::StakeLocked), "the clawback's stake");
    net.run(who, unbond(free)).expect("what backs nothing may go");
    let account = &net.state.accounts[&key(who).account()];
    assert_eq!(account.staked.0, STAKE + slash + released);
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    net.run(who, unbond(slash + released)).expect("free once paid");
    assert_rebuilt(&mut net);
}

#[test]
fn a_release_waits_while_the_owners_stake_could_not_take_it_back() {
    let mut net = Net::new();
    // One run at this price is worth exactly what the stake can slash: no room for a clawback.
    let price = STAKE / 20;
    let node = net.provider(1, price);
    let mut terms = policy(Verification::Spot);
    terms.max_price_per_hour = Amount(price);
    terms.budget = crate::market::budget_min(&terms);
    let id = net.submit(0, terms);
    assert_eq!(net.worker(id), node);
    net.wait(2 * ONE_INTERVAL_MS);
    assert_eq!(net.task(id).paid, Amount::ZERO, "the time waits for acceptance");
    net.run(1, TxBody::Bond { amount: Amount(STAKE / 100) }).expect("bond");
    net.wait(ONE_INTERVAL_MS);
    let lease = lease(&net, id, node);
    assert!(lease.released > Amount::ZERO, "backed again: all the time since");
    assert_eq!(lease.released, crate::market::cost(net.task(id), &lease, lease.released_ms));
    // New work sees the stake that backs the clawback as taken.
    let owner = key(1).account();
    let headroom = (STAKE + STAKE / 100 - lease.released.0) / 20 - price;
    assert_eq!(net.state.headroom(&owner), headroom);
    assert_rebuilt(&mut net);
}

#[test]
fn a_short_stake_pays_the_clawback_to_the_requester_before_the_slash() {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    net.commit(id, worker, b"lazy").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    assert_eq!(net.task(id).round, Round::Referee);
    // Another offence (a failed capacity challenge) takes all but the clawback and a little.
    let released = lease(&net, id, worker).released.0;
    let owner = net.state.nodes[&worker].owner;
    let env = net.env();
    let mut delta = crate::delta::Delta::new(&net.state, &env);
    let slash = crate::money::Slash {
        task: None,
        node: worker,
        owner,
        offence: Offence::CapacityChallengeFailed,
        amount: Amount(STAKE - released - 1_000),
        challengers: &[],
    };
    crate::money::slash(&mut delta, slash).expect("slash");
    let changes = delta.into_changes();
    net.state.commit(changes);
    net.referee(id, [b"lazy", b"right", b"right"]);
    let clawed = net.log.iter().find_map(|e| match e {
        Event::ClawedBack { node, amount, .. } if *node == worker => Some(amount.0),
        _ => None,
    });
    let slashed = net.log.iter().find_map(|e| match e {
        Event::Penalized { node, amount, .. } if *node == worker => Some(amount.0),
        _ => None,
    });
    assert_eq!((clawed, slashed), (Some(released), Some(1_000)), "the requester first");
    assert_eq!(stake(&net, worker), Amount::ZERO);
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0);
    assert_eq!(task.paid, Amount(task.leases[1].cost.0 + task.leases[2].cost.0));
}

/// The attack of a provider paid without working, part 1: while capacity challenges are off (the
/// ledger's default), a lease that only sends heartbeats is released nothing per interval.
#[test]
fn heartbeats_alone_release_nothing_per_interval() {
    let mut net = net5();
    net.vouching = false;
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.wait(5 * ONE_INTERVAL_MS);
    assert!(net.task(id).leases[0].is_running());
    assert_eq!(paid_to(&net, id, worker), 0, "five intervals of heartbeats, no evidence of work");
    assert!(lease(&net, id, worker).released.is_zero());
    // A capacity challenge passed since the last release vouches for the time: it is released.
    net.vouching = true;
    net.wait(ONE_INTERVAL_MS);
    assert!(paid_to(&net, id, worker) > 0, "a passed challenge is evidence");
}

/// A pass older than two rounds vouches for nothing: the time since waits for a verified result.
#[test]
fn a_stale_pass_vouches_for_nothing() {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS);
    assert!(paid_to(&net, id, worker) > 0);
    net.vouching = false;
    // Within two rounds (2 × 60 s) of the last pass its heartbeats are still vouched for...
    net.wait(2 * ONE_INTERVAL_MS);
    let vouched = paid_to(&net, id, worker);
    // ...and none after.
    net.wait(3 * ONE_INTERVAL_MS);
    assert!(net.task(id).leases[0].is_running());
    assert_eq!(paid_to(&net, id, worker), vouched, "no current pass");
}

/// The attack of a provider paid without working, part 2: heartbeat until the time limit, then
/// report `TimeLimitExceeded`. Its word and its heartbeats are no evidence of work: it is paid
/// nothing, and the requester gets the whole budget back.
#[test]
fn idling_to_the_time_limit_and_reporting_it_pays_nothing() {
    let mut net = net5();
    net.vouching = false;
    let terms = policy(Verification::Spot);
    let (budget, limit_ms) = (terms.budget, terms.time_limit_secs * 1_000);
    let before = net.balance(0);
    let id = net.submit(0, terms);
    let worker = net.worker(id);
    net.wait(limit_ms - 5_000);
    let owner = net.owner(worker);
    let reason = FailureReason::TimeLimitExceeded;
    net.run(owner, TxBody::ReportFailure { task: id, node: worker, reason }).expect("report");
    let task = net.task(id);
    assert_eq!((task.state, task.failure), (TaskState::Failed, Some(reason)));
    assert_eq!(paid_to(&net, id, worker), 0, "paid for idling");
    assert_eq!((task.paid, task.refunded), (Amount::ZERO, budget));
    assert_eq!(net.balance(0), Amount(before.0 - 10), "only the submission's fee is spent");
}

/// An honest provider whose task really fails keeps the time its challenges vouched for,
/// including the stretch since its last release.
#[test]
fn a_task_fault_pays_the_vouched_time_up_to_the_report() {
    let mut net = net5();
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.wait(ONE_INTERVAL_MS + 20_000);
    let released = lease(&net, id, worker).released.0;
    assert!(released > 0);
    net.pass_challenges();
    let owner = net.owner(worker);
    let reason = FailureReason::TaskExitedWithError;
    net.run(owner, TxBody::ReportFailure { task: id, node: worker, reason }).expect("report");
    assert!(paid_to(&net, id, worker) > released, "the last stretch is vouched for too");
    assert_eq!(net.task(id).state, TaskState::Failed);
}
