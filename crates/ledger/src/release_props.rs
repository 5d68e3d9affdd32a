//! Property test of per-interval release and clawback: random conduct of every lease of a task
//! (how long it holds its seat, whether its result is right, whether it withholds its reveal and
//! opens it late) and random requester moves (accept, dispute, known answer, a cancel at a random
//! step: at once, or deferred to the verdict on results already revealed) under every policy.

use crate::state::{Params, Role, Verdict};
use crate::tests::{check_derived, key, Net};
use crate::verification_tests::policy;
use crate::Event;
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{Hash32, NodeId, TaskId, TaskState, TxBody};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// One lease's conduct: intervals it holds its seat before committing, whether its output is
/// the right one, and whether it withholds its reveal (then opens it late, or never).
#[derive(Clone, Copy, Debug)]
struct Conduct {
    intervals: u64,
    right: bool,
    withhold: Option<bool>,
}

fn conduct() -> impl Strategy<Value = Conduct> {
    let right = prop_oneof![3 => Just(true), 1 => Just(false)];
    let withhold = prop_oneof![5 => Just(None), 1 => any::<bool>().prop_map(Some)];
    (0..3u64, right, withhold).prop_map(|(intervals, right, withhold)| Conduct {
        intervals,
        right,
        withhold,
    })
}

fn output(right: bool) -> &'static [u8] {
    if right {
        b"right"
    } else {
        b"wrong"
    }
}

/// One move of every lease by its conduct (by placement order), then the requester's, then
/// 20 s of heartbeats. Refused moves (a reveal before the round opens, …) are simply skipped.
fn step(net: &mut Net, id: TaskId, conducts: &[Conduct], end: u8) {
    let task = net.task(id).clone();
    for (i, lease) in task.leases.iter().enumerate() {
        let c = conducts[i % conducts.len()];
        let held = net.time_ms.saturating_sub(lease.started_ms);
        if lease.is_running() && held >= c.intervals * 60_000 {
            let _ = net.commit(id, lease.node, output(c.right));
            continue;
        }
        let in_round = lease.verdict == Verdict::Pending && c.withhold.is_none();
        let late = lease.late_reveal_deadline().is_some() && c.withhold == Some(true);
        if in_round || late {
            let _ = net.reveal(id, lease.node, output(c.right));
        }
    }
    if net.task(id).state == TaskState::Verifying {
        let terms = net.task(id).terms.clone();
        let body = match end {
            0 => TxBody::AcceptResult { task: id },
            1 if net.task(id).dispute.is_none() => {
                TxBody::DisputeResult { task: id, bond: crate::market::dispute_bond_min(&terms) }
            }
            _ => TxBody::RevealAnswer { task: id, answer_hash: answer(), salt: salt() },
        };
        let _ = net.run(0, body);
    }
    net.wait(20_000);
}

fn answer() -> Hash32 {
    Hash32::of(output(true))
}

fn salt() -> Hash32 {
    Hash32::of(b"release props")
}

/// Per node of the task: its role and what the log paid it net of clawbacks.
fn net_paid(net: &Net, id: TaskId) -> BTreeMap<NodeId, (Role, u128)> {
    let mut nodes: BTreeMap<NodeId, (Role, u128)> = BTreeMap::new();
    for event in &net.log {
        match event {
            Event::TaskAssigned { task, node, role, .. } if *task == id => {
                nodes.insert(*node, (*role, 0));
            }
            Event::Paid { task, node, amount, .. } if *task == id => {
                nodes.entry(*node).or_insert((Role::Worker, 0)).1 += amount.0;
            }
            Event::ClawedBack { task, node, amount, .. } if *task == id => {
                nodes.entry(*node).or_insert((Role::Worker, 0)).1 -= amount.0;
            }
            _ => {}
        }
    }
    nodes
}

/// A cancel deferred to a verdict ends the task cancelled, and that verdict slashed exactly the
/// minority of every majority vote taken after it.
fn check_deferred_cancel(net: &Net, id: TaskId) -> Result<(), String> {
    let Some(at) = net.log.iter().position(|e| matches!(e, Event::CancelDeferred { .. })) else {
        return Ok(());
    };
    let task = net.task(id);
    let cancelled = (TaskState::Cancelled, Some(FailureReason::CancelledByRequester));
    if (task.state, task.failure) != cancelled {
        return Err(format!("a deferred cancel ended {:?} {:?}", task.state, task.failure));
    }
    let after = &net.log[at..];
    let penalized = |node: &NodeId| {
        after.iter().any(|e| matches!(e, Event::Penalized { node: n, .. } if n == node))
    };
    for event in after {
        if let Event::VoteDecided { output_hash: Some(_), minority, .. } = event {
            if let Some(node) = minority.iter().find(|n| !penalized(n)) {
                return Err(format!("the vote's loser {node} was not slashed"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn released_money_is_conserved_and_clawed_back_from_every_overruled_lease(
        verification in 0..4u8,
        conducts in proptest::collection::vec(conduct(), 8),
        end in 0..3u8,
        cancel in 0..3u8,
        cancel_at in 0..12usize,
    ) {
        let mut params = Params::default();
        params.verification.late_reveal_window_ms = 120_000;
        let mut net = Net::with_params(params);
        for i in 1..=5 {
            net.provider(i, 500_000 * u128::from(i));
        }
        let mut terms = policy(match verification {
            0 => Verification::Spot,
            1 => Verification::Audit,
            k => Verification::Replicas(k),
        });
        terms.time_limit_secs = 600;
        terms.budget = crate::market::budget_min(&terms);
        let answer_commitment =
            crate::dispute::answer_commitment(&key(0).account(), &answer(), &salt());
        net.run(0, TxBody::SubmitTask { terms, answer_commitment })
            .expect("submit");
        let id = TaskId(0);
        for at in 0..60 {
            let task = net.task(id);
            if task.state.is_terminal() && !task.leases.iter().any(|l| l.is_withheld_pending()) {
                break;
            }
            // Never, at a random step, or as soon as revealed results disagree (once).
            let judged = crate::cancel::under_judgement(task) && !task.cancel_requested();
            if (cancel == 1 && at == cancel_at) || (cancel == 2 && judged) {
                let _ = net.run(0, TxBody::CancelTask { task: id });
            }
            step(&mut net, id, &conducts, end);
            if let Err(broken) = check_derived(&net) {
                prop_assert!(false, "{}", broken);
            }
        }
        let task = net.task(id).clone();
        prop_assert!(task.state.is_terminal(), "ended: {:?}", task.state);
        if let Err(broken) = check_deferred_cancel(&net, id) {
            prop_assert!(false, "{}", broken);
        }
        prop_assert!(net.state.index.clawback.is_empty(), "nothing left to claw back");
        for lease in task.leases.iter().filter(|l| l.verdict == Verdict::Overruled) {
            prop_assert!(lease.released.is_zero(), "an overruled lease keeps nothing");
        }
        // The escrow paid, net of clawbacks, is what the task counts as paid; the rest (the
        // clawbacks included) was refunded. Committee members are paid from the bond.
        let paid = net_paid(&net, id);
        let from_escrow: u128 =
            paid.values().filter(|(role, _)| *role != Role::Committee).map(|(_, p)| p).sum();
        prop_assert_eq!(from_escrow, task.paid.0);
        prop_assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0);
        let root = net.state.finalize_root().0;
        let mut rebuilt = net.rebuilt();
        prop_assert_eq!(rebuilt.finalize_root().0, root);
        prop_assert_eq!(&rebuilt.index.clawback, &net.state.index.clawback);
    }
}
