//! Tasks that declare themselves non-deterministic: honest results that differ by machine agree
//! within the declared tolerance and are never slashed for it; a result outside the tolerance of
//! a strict majority still is (tolerance mode), never in committee mode.

use crate::market::dispute_bond_min;
use crate::state::{NodeStatus, Round, Verdict};
use crate::tests::{key, Net};
use crate::verification_tests::{net_with, policy, verdict};
use aicpw_types::task::{CompareMode, FailureReason, Nondeterminism, Verification};
use aicpw_types::{Amount, Hash32, NodeId, Reject, TaskId, TaskState, TaskTerms, TxBody};

/// Tolerance of the tests' tasks: 0.001 per number.
const TOLERANCE: u64 = 1_000;

fn nondeterministic(verification: Verification, mode: CompareMode) -> TaskTerms {
    let mut terms = policy(verification);
    terms.nondeterministic =
        Some(Nondeterminism { summary: "metrics.json".into(), tolerance_micros: TOLERANCE, mode });
    terms
}

/// Final loss 0.25 as one machine class writes it, and as others do within the tolerance.
const LOSS: i64 = 250_000;

/// An audited task whose worker, auditor and referee reveal these (output, summary) results.
/// Different output hashes make different tags, so the referee is drawn, blind, before anyone
/// reveals: the honest float differences of another machine never meet a copied result.
fn audited(results: [(&[u8], i64); 3]) -> (Net, TaskId, [NodeId; 3]) {
    let (mut net, _) = net_with(3);
    let id = net.submit(0, nondeterministic(Verification::Audit, CompareMode::Tolerance));
    let worker = net.worker(id);
    net.commit_summary(id, worker, results[0].0, &[results[0].1]).expect("commit");
    net.idle(0);
    assert_eq!(net.task(id).round, Round::Audit, "a new node is always audited");
    let auditor = net.leased(id)[1];
    net.commit_summary(id, auditor, results[1].0, &[results[1].1]).expect("auditor commits");
    assert_eq!(net.task(id).round, Round::Referee, "tags differ: a referee before any reveal");
    let referee = net.leased(id)[2];
    net.commit_summary(id, referee, results[2].0, &[results[2].1]).expect("referee commits");
    for i in [2, 0, 1] {
        let (node, (output, loss)) = ([worker, auditor, referee][i], results[i]);
        net.reveal_summary(id, node, output, &[loss]).expect("reveal");
    }
    (net, id, [worker, auditor, referee])
}

#[test]
fn honest_float_differences_within_the_tolerance_pass_an_audit_and_are_paid() {
    // Different output hashes (another GPU's reduction order), summaries within 0.0006.
    let results = [(&b"gpu-a"[..], LOSS), (b"gpu-b", LOSS + 400), (b"gpu-c", LOSS - 200)];
    let (mut net, id, nodes) = audited(results);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying, "all three agree within the tolerance");
    assert_eq!(task.result.as_ref().map(|r| r.summary.clone()), Some(vec![LOSS]));
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    for node in nodes {
        assert_eq!(verdict(&net, id, node), Verdict::Paid);
        let reputation = &net.state.nodes[&node].reputation;
        assert_eq!((reputation.audits_passed, reputation.offences), (1, 0));
    }
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

#[test]
fn a_forged_summary_outside_the_tolerance_loses_to_the_referee_and_is_slashed() {
    // The worker skipped the training and made up a loss; the honest auditor and referee run
    // on different machines and agree within the tolerance, not bit for bit.
    let results = [(&b"forged"[..], 900_000), (b"gpu-a", LOSS), (b"gpu-c", LOSS - 700)];
    let (net, id, [worker, auditor, referee]) = audited(results);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.result.as_ref().map(|r| r.node), Some(auditor), "the majority's result");
    assert_eq!(verdict(&net, id, worker), Verdict::Overruled);
    let forger = &net.state.nodes[&worker];
    assert_eq!((forger.status, forger.reputation.offences), (NodeStatus::Frozen, 1));
    for honest in [auditor, referee] {
        assert_eq!(verdict(&net, id, honest), Verdict::Upheld);
        assert_eq!(net.state.nodes[&honest].reputation.offences, 0);
    }
    assert!(net.state.meta.burned > Amount::ZERO);
}

/// A task of three replicas over five owners revealing `replicas`; a split goes to a committee
/// of the two other owners revealing `committee` (if any seat is placed).
fn replicated(
    mode: CompareMode,
    replicas: [(&[u8], i64); 3],
    committee: [(&[u8], i64); 2],
) -> (Net, TaskId, Vec<NodeId>) {
    let mut net = Net::new();
    for i in 1..=5 {
        net.provider(i, 500_000 * u128::from(i));
    }
    let id = net.submit(0, nondeterministic(Verification::Replicas(3), mode));
    let nodes = net.leased(id);
    for (node, (output, loss)) in nodes.iter().zip(replicas) {
        net.commit_summary(id, *node, output, &[loss]).expect("commit");
    }
    let members = if net.task(id).round == Round::Referee {
        let members = net.leased(id)[3..].to_vec();
        for (node, (output, loss)) in members.iter().zip(committee) {
            net.commit_summary(id, *node, output, &[loss]).expect("member commits");
        }
        members
    } else {
        Vec::new()
    };
    let judged_last = members.iter().zip(&committee).chain(nodes.iter().zip(&replicas));
    for (node, (output, loss)) in judged_last {
        net.reveal_summary(id, *node, output, &[*loss]).expect("reveal");
    }
    let all = net.task(id).leases.iter().map(|l| l.node).collect();
    (net, id, all)
}

#[test]
fn replicas_of_three_machine_classes_agree_within_the_tolerance_before_a_blind_committee() {
    // Three hashes, three tags: a committee is drawn before anyone reveals, and every result
    // within the tolerance of the winner is upheld and paid, nobody slashed.
    let replicas = [(&b"gpu-a"[..], LOSS), (b"gpu-b", LOSS - 900), (b"cpu", LOSS + 100)];
    let committee = [(&b"gpu-c"[..], LOSS - 300), (b"gpu-a", LOSS)];
    let (mut net, id, nodes) = replicated(CompareMode::Tolerance, replicas, committee);
    assert_eq!(nodes.len(), 5, "the committee was drawn");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    assert!(nodes.iter().all(|n| verdict(&net, id, *n) == Verdict::Paid));
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

#[test]
fn a_replica_outside_the_tolerance_of_the_majority_is_slashed_in_tolerance_mode() {
    let replicas = [(&b"gpu-a"[..], LOSS), (b"forged", LOSS + 50_000), (b"gpu-b", LOSS + 800)];
    let committee = [(&b"gpu-c"[..], LOSS + 300), (b"gpu-a", LOSS)];
    let (net, id, nodes) = replicated(CompareMode::Tolerance, replicas, committee);
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(verdict(&net, id, nodes[1]), Verdict::Overruled);
    assert_eq!(net.state.nodes[&nodes[1]].reputation.offences, 1, "the forger is slashed");
    for honest in [nodes[0], nodes[2], nodes[3], nodes[4]] {
        assert_eq!(verdict(&net, id, honest), Verdict::Upheld);
        assert_eq!(net.state.nodes[&honest].reputation.offences, 0);
    }
}

#[test]
fn a_result_within_the_tolerance_of_a_majority_is_never_slashed_even_outside_the_winners() {
    // Tolerance 0.001. The first replica wins (four results within tolerance of it, itself
    // included, and the first of those with most); the third drifted 0.0015 from it, but is
    // within the tolerance of a majority of the five (itself and both members at +0.0008):
    // overruled and unpaid, never slashed.
    let replicas = [(&b"a"[..], LOSS), (b"b", LOSS - 900), (b"drifted", LOSS + 1_500)];
    let committee = [(&b"c"[..], LOSS + 800), (b"d", LOSS + 800)];
    let (net, id, nodes) = replicated(CompareMode::Tolerance, replicas, committee);
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(net.task(id).result.as_ref().map(|r| r.node), Some(nodes[0]));
    assert_eq!(verdict(&net, id, nodes[2]), Verdict::Overruled, "outside the winner's tolerance");
    assert_eq!(net.state.nodes[&nodes[2]].reputation.offences, 0, "within a majority's");
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    for upheld in [nodes[0], nodes[1], nodes[3], nodes[4]] {
        assert_eq!(verdict(&net, id, upheld), Verdict::Upheld);
    }
}

#[test]
fn in_committee_mode_a_difference_beyond_the_tolerance_is_unpaid_but_never_slashed() {
    let replicas = [(&b"gpu-a"[..], LOSS), (b"diverged", LOSS + 90_000), (b"gpu-b", LOSS + 800)];
    let committee = [(&b"gpu-c"[..], LOSS + 300), (b"gpu-a", LOSS)];
    let (mut net, id, nodes) = replicated(CompareMode::Committee, replicas, committee);
    assert_eq!(net.task(id).state, TaskState::Verifying, "the committee's majority stands");
    assert_eq!(verdict(&net, id, nodes[1]), Verdict::Overruled);
    let outlier = &net.state.nodes[&nodes[1]];
    assert_eq!((outlier.status, outlier.reputation.offences), (NodeStatus::Active, 0));
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    let before = net.balance(net.owner(nodes[1]));
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    assert_eq!(net.balance(net.owner(nodes[1])), before, "its run is not paid");
    assert_eq!(verdict(&net, id, nodes[0]), Verdict::Paid);
}

#[test]
fn in_committee_mode_no_majority_within_the_tolerance_fails_with_a_refund_and_no_slash() {
    let replicas = [(&b"a"[..], LOSS), (b"b", LOSS + 10_000), (b"c", LOSS + 20_000)];
    let committee = [(&b"d"[..], LOSS + 30_000), (b"e", LOSS + 40_000)];
    for mode in [CompareMode::Committee, CompareMode::Tolerance] {
        let (net, id, nodes) = replicated(mode, replicas, committee);
        let task = net.task(id);
        assert_eq!((task.state, task.failure), (TaskState::Failed, Some(FailureReason::NoQuorum)));
        assert_eq!(task.refunded, task.terms.budget);
        assert_eq!(net.state.meta.burned, Amount::ZERO, "{mode:?}");
        assert!(nodes.iter().all(|n| net.state.nodes[n].reputation.offences == 0));
    }
}

#[test]
fn a_dispute_of_a_nondeterministic_result_compares_the_committee_by_tolerance() {
    for (members, upheld) in [([LOSS + 500, LOSS - 300], false), ([LOSS + 9_000; 2], true)] {
        let (mut net, _) = net_with(3);
        let id = net.submit(0, nondeterministic(Verification::Spot, CompareMode::Tolerance));
        let worker = net.worker(id);
        net.commit_summary(id, worker, b"gpu-a", &[LOSS]).expect("commit");
        net.reveal_summary(id, worker, b"gpu-a", &[LOSS]).expect("reveal");
        let bond = dispute_bond_min(&net.task(id).terms);
        net.run(0, TxBody::DisputeResult { task: id, bond }).expect("dispute");
        let committee = net.leased(id);
        for (node, loss) in committee.iter().zip(members) {
            net.commit_summary(id, *node, b"other-gpu", &[loss]).expect("commit");
        }
        for (node, loss) in committee.iter().zip(members) {
            net.reveal_summary(id, *node, b"other-gpu", &[loss]).expect("reveal");
        }
        let task = net.task(id);
        let expected = if upheld { TaskState::Failed } else { TaskState::Completed };
        assert_eq!(task.state, expected, "members {members:?}");
        assert_eq!(net.state.nodes[&worker].reputation.offences, u32::from(upheld));
    }
}

#[test]
fn summaries_are_bound_by_the_commitment_and_shaped_by_the_terms() {
    let (mut net, _) = net_with(1);
    let id = net.submit(0, nondeterministic(Verification::Spot, CompareMode::Tolerance));
    let worker = net.worker(id);
    net.commit_summary(id, worker, b"out", &[LOSS]).expect("commit");
    // Another summary than the one committed (copying a later-seen number): refused.
    assert_eq!(net.reveal_summary(id, worker, b"out", &[LOSS + 1]), Err(Reject::BadCommitment));
    assert_eq!(net.reveal(id, worker, b"out"), Err(Reject::SummaryInvalid), "none at all");
    assert_eq!(Reject::SummaryInvalid.code(), 681);
    net.reveal_summary(id, worker, b"out", &[LOSS]).expect("the committed summary");

    let deterministic = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(deterministic);
    net.commit_summary(deterministic, worker, b"out", &[LOSS]).expect("commit");
    let summary = net.reveal_summary(deterministic, worker, b"out", &[LOSS]);
    assert_eq!(summary, Err(Reject::SummaryInvalid), "a deterministic task has no summary");
    let body = TxBody::RevealResult {
        task: deterministic,
        node: worker,
        output_hash: Hash32::of(b"out"),
        salt: crate::tests::salt(deterministic, worker),
        result_cid: crate::tests::result_cid(worker),
        summary: vec![0; 9],
    };
    assert_eq!(net.run(net.owner(worker), body), Err(Reject::SummaryInvalid), "at most 8");
}

#[test]
fn a_nondeterministic_task_needs_a_summary_path_and_a_positive_tolerance() {
    let mut net = Net::new();
    let cases = [("metrics.json", 0), ("../metrics.json", 1), ("", 1), ("m.json", u64::MAX)];
    for (summary, tolerance_micros) in cases {
        let mut terms = nondeterministic(Verification::Audit, CompareMode::Tolerance);
        terms.nondeterministic = Some(Nondeterminism {
            summary: summary.into(),
            tolerance_micros,
            mode: CompareMode::Tolerance,
        });
        let body = TxBody::SubmitTask { terms, answer_commitment: Hash32::default() };
        assert_eq!(net.run(0, body), Err(Reject::NondeterminismInvalid), "{summary}");
    }
    assert_eq!(Reject::NondeterminismInvalid.code(), 680);
}

#[test]
fn a_nondeterministic_task_cannot_carry_a_known_answer() {
    let (mut net, _) = net_with(1);
    let (answer, salt) = (Hash32::of(b"gpu-a"), Hash32::of(b"salt"));
    let terms = nondeterministic(Verification::Spot, CompareMode::Tolerance);
    let commitment = crate::dispute::answer_commitment(&key(0).account(), &answer, &salt);
    net.run(0, TxBody::SubmitTask { terms, answer_commitment: commitment }).expect("submit");
    let id = TaskId(0);
    let worker = net.worker(id);
    net.commit_summary(id, worker, b"gpu-b", &[LOSS]).expect("commit");
    net.reveal_summary(id, worker, b"gpu-b", &[LOSS]).expect("reveal");
    // Another machine's honest hash is not wrong: the claim is refused, no dispute opens.
    let reveal = TxBody::RevealAnswer { task: id, answer_hash: answer, salt };
    assert_eq!(net.run(0, reveal), Err(Reject::KnownAnswerNondeterministic));
    assert_eq!(Reject::KnownAnswerNondeterministic.code(), 682);
    assert!(net.task(id).dispute.is_none());
    assert_eq!(net.state.nodes[&worker].reputation.offences, 0);
}
