//! Table-driven tests of result verification: commit-reveal, audits, referees, replica quorums,
//! disputes, known answers, slashing and its split, graded responses, appeals, and the economics
//! the parameters promise (per-interval release and clawback: `release_tests`).

use crate::market::{budget_min, dispute_bond_min, run_price};
use crate::state::{DisputeOutcome, NodeStatus, Params, Role, Round, Verdict};
use crate::tests::{key, terms, Net};
use crate::Event;
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{Amount, Hash32, NodeId, Reject, TaskId, TaskState, TaskTerms, TxBody};

pub(crate) fn policy(verification: Verification) -> TaskTerms {
    let mut t = terms(0);
    t.verification = verification;
    t.budget = budget_min(&t);
    t
}

/// A net with providers 1..=count at rising prices (1 is cheapest).
pub(crate) fn net_with(count: u32) -> (Net, Vec<NodeId>) {
    let mut net = Net::new();
    let nodes = (1..=count).map(|i| net.provider(i, 1_000_000 * u128::from(i))).collect();
    (net, nodes)
}

pub(crate) fn stake(net: &Net, node: NodeId) -> Amount {
    let owner = net.state.nodes[&node].owner;
    net.state.accounts[&owner].staked
}

pub(crate) fn slash_of(net: &Net, id: TaskId, node: NodeId) -> u128 {
    let lease = net.task(id).leases.iter().find(|l| l.node == node).expect("lease").clone();
    run_price(lease.price_per_hour, &net.task(id).terms).0 * 20
}

pub(crate) fn verdict(net: &Net, id: TaskId, node: NodeId) -> Verdict {
    net.task(id).leases.iter().find(|l| l.node == node).expect("lease").verdict
}

#[test]
fn budgets_cover_every_execution_the_policy_may_need() {
    let one = run_price(Amount(3_600_000), &terms(0)).0;
    let cases = [
        (Verification::Spot, 3 * one),
        (Verification::Audit, 3 * one),
        (Verification::Replicas(2), 2 * one),
        (Verification::Replicas(5), 5 * one),
    ];
    for (verification, expected) in cases {
        let mut t = terms(0);
        t.verification = verification;
        assert_eq!(budget_min(&t), Amount(expected), "{verification:?}");
        let mut net = Net::new();
        t.budget = Amount(expected - 1);
        let body = TxBody::SubmitTask { terms: t, answer_commitment: Hash32::default() };
        assert_eq!(net.run(0, body), Err(Reject::BudgetTooLow), "{verification:?}");
    }
    assert_eq!(dispute_bond_min(&terms(0)), Amount(2 * one));
}

#[test]
fn a_reveal_waits_for_the_commitment_and_must_open_it() {
    let (mut net, nodes) = net_with(1);
    let id = net.submit(0, policy(Verification::Spot));
    let node = nodes[0];
    assert_eq!(net.reveal(id, node, b"out"), Err(Reject::RevealNotOpen), "nothing committed yet");
    net.commit(id, node, b"out").expect("commit");
    assert_eq!(net.commit(id, node, b"out"), Err(Reject::AlreadyCommitted));
    assert_eq!(net.reveal(id, node, b"other"), Err(Reject::BadCommitment), "another output");
    net.reveal(id, node, b"out").expect("reveal");
    assert_eq!(net.reveal(id, node, b"out"), Err(Reject::NotAssignedProvider), "judged already");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.result.as_ref().map(|r| r.output_hash), Some(Hash32::of(b"out")));
}

#[test]
fn a_new_node_is_always_audited_and_an_agreeing_auditor_is_paid() {
    let (mut net, nodes) = net_with(2);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"out").expect("commit");
    assert_eq!(net.task(id).round, Round::Drawing, "the draw waits for the next block");
    assert_eq!(net.reveal(id, worker, b"out"), Err(Reject::RevealNotOpen));
    let leased = net.leased(id);
    assert_eq!(net.task(id).round, Round::Audit, "clean streak 0: always audited");
    let auditor = leased[1];
    assert_ne!(net.state.nodes[&auditor].owner, net.state.nodes[&worker].owner);
    assert_eq!(net.task(id).leases[1].role, Role::Auditor);
    assert_eq!(net.reveal(id, worker, b"out"), Err(Reject::RevealNotOpen), "auditor not committed");
    net.commit(id, auditor, b"out").expect("auditor commits");
    net.reveal(id, worker, b"out").expect("worker reveals");
    net.reveal(id, auditor, b"out").expect("auditor reveals");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    let before = (net.balance(net.owner(worker)), net.balance(net.owner(auditor)));
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    assert!(task.leases.iter().all(|l| l.verdict == Verdict::Paid));
    assert!(
        net.balance(net.owner(worker)) > before.0 && net.balance(net.owner(auditor)) > before.1
    );
    for node in nodes {
        let reputation = &net.state.nodes[&node].reputation;
        assert_eq!((reputation.audits_passed, reputation.clean_streak), (1, 1));
    }
    assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0, "the referee's third unused");
}

#[test]
fn a_long_clean_streak_under_audit_and_any_node_under_spot_are_audited_at_the_floor_rate() {
    for (verification, streak) in [(Verification::Audit, 1_000), (Verification::Spot, 0)] {
        let (mut net, _) = net_with(2);
        let mut audited = 0;
        for round in 0..200u64 {
            let id = net.submit(0, policy(verification));
            let worker = net.worker(id);
            net.state.nodes.get_mut(&worker).expect("node").reputation.clean_streak = streak;
            net.commit(id, worker, &round.to_le_bytes()).expect("commit");
            net.keep_alive();
            if net.task(id).round == Round::Audit {
                audited += 1;
            }
            net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
        }
        assert!((3..=25).contains(&audited), "{verification:?}: about 5% of 200, got {audited}");
    }
}

/// Every seat of a network with one owner would be that owner's: nobody could audit its spot
/// results, so none is drawn (an audit drawn there would only fail the task after the seat wait).
#[test]
fn spot_results_are_not_drawn_for_audit_while_no_other_owner_has_a_node() {
    let (mut net, _) = net_with(1);
    for round in 0..100u64 {
        net.keep_alive();
        let id = net.submit(0, policy(Verification::Spot));
        let worker = net.worker(id);
        net.finish_lease(id, worker, &round.to_le_bytes());
        assert_eq!(net.task(id).state, TaskState::Verifying, "round {round}");
        net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    }
}

/// The selective forger: it forges only where it expects no audit, which used to be every task
/// without one (`none`). A spot task is audited at the floor rate whatever the node's streak,
/// so its forgeries are drawn like any other and slashed when drawn.
#[test]
fn a_forger_of_spot_results_is_drawn_at_the_floor_and_slashed() {
    let (mut net, _) = net_with(3);
    for round in 0..200 {
        let id = net.submit(0, policy(Verification::Spot));
        let worker = net.worker(id);
        net.commit(id, worker, b"forged").expect("commit");
        net.keep_alive();
        if net.task(id).round != Round::Audit {
            net.reveal(id, worker, b"forged").expect("reveal");
            net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
            continue;
        }
        assert!(round < 100, "drawn at 5% from the first result, not after a streak");
        let auditor = net.leased(id)[1];
        net.commit(id, auditor, b"right").expect("auditor commits");
        net.referee(id, [b"forged", b"right", b"right"]);
        let task = net.task(id);
        assert_eq!(task.result.as_ref().map(|r| r.node), Some(auditor), "the right result");
        let forger = &net.state.nodes[&worker];
        assert_eq!((forger.status, forger.reputation.offences), (NodeStatus::Frozen, 1));
        assert_eq!(stake(&net, worker).0, 1_000_000_000 - slash_of(&net, id, worker));
        return;
    }
    panic!("200 forged spot results and none drawn for an audit");
}

/// Worker `w` and auditor `a` disagree; the referee sides with `referee_output`.
fn audit_dispute(referee_output: &[u8]) -> (Net, TaskId, [NodeId; 3]) {
    let (mut net, _) = net_with(3);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"lazy").expect("commit");
    net.idle(0);
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    // The tags differ: the referee is drawn before anything is revealed.
    assert_eq!(net.task(id).round, Round::Referee);
    assert_eq!(net.reveal(id, worker, b"lazy"), Err(Reject::RevealNotOpen));
    let referee = net.leased(id)[2];
    assert_eq!(net.task(id).leases[2].role, Role::Referee);
    net.commit(id, referee, referee_output).expect("referee commits");
    assert_eq!(net.reveal(id, worker, b"lazy"), Err(Reject::RevealNotOpen), "the judge first");
    net.reveal(id, referee, referee_output).expect("referee reveals");
    net.reveal(id, worker, b"lazy").expect("worker reveals");
    net.reveal(id, auditor, b"right").expect("auditor reveals");
    (net, id, [worker, auditor, referee])
}

#[test]
fn a_referee_decides_an_audit_and_the_loser_is_slashed_and_frozen() {
    let cases: [(&[u8], usize); 2] = [(b"right", 0), (b"lazy", 1)];
    for (referee_output, loser) in cases {
        let (net, id, nodes) = audit_dispute(referee_output);
        let task = net.task(id);
        assert_eq!(task.state, TaskState::Verifying);
        let winner = nodes[1 - loser];
        assert_eq!(task.result.as_ref().map(|r| r.node), Some(winner), "the majority's result");
        assert_eq!(verdict(&net, id, nodes[loser]), Verdict::Overruled);
        let node = &net.state.nodes[&nodes[loser]];
        assert_eq!((node.status, node.reputation.audits_failed), (NodeStatus::Frozen, 1));
        assert_eq!(node.reputation.clean_streak, 0);
        assert_eq!(stake(&net, nodes[loser]).0, 1_000_000_000 - slash_of(&net, id, nodes[loser]));
    }
}

#[test]
fn slashed_stake_is_split_between_burn_challengers_and_treasury() {
    let (net, id, [worker, auditor, referee]) = audit_dispute(b"right");
    let slash = slash_of(&net, id, worker);
    assert_eq!(net.state.meta.burned.0, slash / 2, "half burned");
    let treasury = net.state.params.verification.treasury;
    assert_eq!(net.state.accounts[&treasury].balance.0, slash / 5, "a fifth to the treasury");
    // The auditor and the referee share the challenger's 30%.
    let share = slash * 3 / 10 / 2;
    for node in [auditor, referee] {
        let owner = net.owner(node);
        // Fees: bond, register, commit, reveal.
        let expected = 100_000_000_000 - 1_000_000_000 - 10 * 4 + share;
        assert_eq!(net.balance(owner).0, expected, "node {node} got its share");
    }
}

#[test]
fn unanimous_replicas_are_upheld_and_paid_without_a_committee() {
    let (mut net, _) = net_with(3);
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    assert_eq!(replicas.len(), 3, "all replicas leased at once");
    let owners: std::collections::BTreeSet<_> =
        replicas.iter().map(|n| net.state.nodes[n].owner).collect();
    assert_eq!(owners.len(), 3, "distinct owners");
    for node in &replicas {
        net.commit(id, *node, b"good").expect("commit");
    }
    for node in &replicas {
        net.reveal(id, *node, b"good").expect("reveal");
    }
    assert_eq!(net.task(id).state, TaskState::Verifying);
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let paid: Vec<Verdict> = replicas.iter().map(|n| verdict(&net, id, *n)).collect();
    assert_eq!(paid, vec![Verdict::Paid; 3]);
}

/// A replicated task (k = 3) over five owners whose replicas reveal `outputs`; a split goes to a
/// committee of the two other owners, which reveals `committee`.
fn replica_split(
    outputs: [&[u8]; 3],
    committee: [&[u8]; 2],
) -> (Net, TaskId, Vec<NodeId>, Vec<NodeId>) {
    let mut net = Net::new();
    for i in 1..=5 {
        net.provider(i, 500_000 * u128::from(i));
    }
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    for (node, output) in replicas.iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    let task = net.task(id);
    assert_eq!((task.round, task.seats), (Round::Referee, 0), "the split went to a committee");
    assert!(task.leases.iter().all(|l| l.reveal.is_none()), "before anything was revealed");
    assert_eq!(net.state.meta.burned, Amount::ZERO, "nobody is slashed before the committee");
    let members: Vec<NodeId> = net.leased(id)[3..].to_vec();
    assert_eq!(members.len(), 2);
    let replica_owners: Vec<_> = replicas.iter().map(|n| net.state.nodes[n].owner).collect();
    assert!(members.iter().all(|m| !replica_owners.contains(&net.state.nodes[m].owner)));
    for (node, output) in members.iter().zip(committee) {
        net.commit(id, *node, output).expect("member commits");
    }
    for (node, output) in members.iter().zip(committee).chain(replicas.iter().zip(outputs)) {
        net.reveal(id, *node, output).expect("reveal");
    }
    (net, id, replicas, members)
}

#[test]
fn a_colluding_replica_majority_is_outvoted_by_the_committee_and_slashed() {
    // Two colluders hold two of three replicas and agree on a wrong hash: they would win the
    // replicas' own vote. The committee sides with the honest one.
    let (mut net, id, replicas, members) = replica_split([b"bad", b"good", b"bad"], [b"good"; 2]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.result.as_ref().map(|r| r.output_hash), Some(Hash32::of(b"good")));
    for colluder in [replicas[0], replicas[2]] {
        assert_eq!(verdict(&net, id, colluder), Verdict::Overruled);
        assert_eq!(net.state.nodes[&colluder].reputation.offences, 1);
        assert_eq!(net.state.nodes[&colluder].status, NodeStatus::Frozen);
    }
    assert_eq!(net.state.nodes[&replicas[1]].reputation.offences, 0, "the honest one is safe");
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    assert_eq!(verdict(&net, id, replicas[1]), Verdict::Paid);
    assert!(members.iter().all(|m| verdict(&net, id, *m) == Verdict::Paid));
}

#[test]
fn a_lone_wrong_replica_is_slashed_only_once_the_committee_confirms_the_majority() {
    let (net, id, replicas, _) = replica_split([b"good", b"bad", b"good"], [b"good"; 2]);
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(verdict(&net, id, replicas[1]), Verdict::Overruled);
    assert_eq!(net.state.nodes[&replicas[1]].reputation.offences, 1);
    assert!(net.state.meta.burned > Amount::ZERO);
}

#[test]
fn a_split_nobody_can_settle_fails_the_task_with_a_full_refund_and_no_slash() {
    let mut net = Net::new();
    for i in 1..=7 {
        net.provider(i, 500_000 * u128::from(i));
    }
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let outputs: [&[u8]; 7] = [b"a", b"b", b"c", b"d", b"e", b"f", b"g"];
    for (node, output) in net.leased(id).iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    assert_eq!(net.task(id).round, Round::Referee);
    for judges in [3..5, 5..7] {
        // Five different tags after the committee: two more judges, blind.
        let nodes = net.leased(id);
        assert_eq!(nodes.len(), judges.end, "{judges:?} drawn");
        for index in judges {
            net.commit(id, nodes[index], outputs[index]).expect("judge commits");
        }
    }
    let nodes = net.leased(id);
    for index in [3, 4, 5, 6, 0, 1, 2] {
        net.reveal(id, nodes[index], outputs[index]).expect("reveal");
    }
    let task = net.task(id);
    assert_eq!((task.state, task.failure), (TaskState::Failed, Some(FailureReason::NoQuorum)));
    assert_eq!(task.refunded, task.terms.budget);
    assert_eq!(net.state.meta.burned, Amount::ZERO, "nobody is slashed without a majority");
}

#[test]
fn replicas_are_drawn_at_random_not_by_price() {
    let mut net = Net::new();
    let nodes: Vec<NodeId> = (1..=6).map(|i| net.provider(i, 500_000 * u128::from(i))).collect();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..16 {
        let id = net.submit(0, policy(Verification::Replicas(2)));
        let replicas = net.leased(id);
        assert_eq!(replicas.len(), 2);
        seen.extend(replicas);
        net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    }
    assert!(seen.len() >= 4, "replicas spread over the eligible nodes: {seen:?} of {nodes:?}");
}

#[test]
fn a_copying_replica_cannot_open_its_commitment_with_anothers_result() {
    let (mut net, _) = net_with(2);
    let id = net.submit(0, policy(Verification::Replicas(2)));
    let [honest, copier] = [net.leased(id)[0], net.leased(id)[1]];
    net.commit(id, honest, b"work").expect("commit");
    // The copier cannot see the honest output before committing: it commits a guess, under the
    // honest replica's tag (public) so that the round looks unanimous and opens.
    let tag = net.task(id).leases[0].tag;
    net.commit_tagged(id, copier, b"guess", &[], tag).expect("commit");
    net.reveal(id, honest, b"work").expect("reveal");
    // Now it sees the honest hash, but its commitment binds it to the guess.
    assert_eq!(net.reveal(id, copier, b"work"), Err(Reject::BadCommitment));
    assert_eq!(Reject::BadCommitment.code(), 602);
    // And the guess does not match the tag it copied: it cannot open its lease at all.
    assert_eq!(net.reveal(id, copier, b"guess"), Err(Reject::TagMismatch));
    assert_eq!(Reject::TagMismatch.code(), 670);
    // Copying the commitment itself does not help either: it is bound to the author's key.
    let copied = net.task(id).leases[0].commitment.expect("committed");
    let honest_account = key(net.owner(honest)).account();
    let copier_account = key(net.owner(copier)).account();
    let check = aicpw_verify::check_reveal(
        &copied.0,
        id.0,
        &copier_account.0,
        &Hash32::of(b"work").0,
        &[],
        &crate::tests::result_cid(honest),
        &crate::tests::salt(id, honest).0,
    );
    assert!(check.is_err() && honest_account != copier_account);
}

#[test]
fn a_reveal_cannot_name_another_cid_than_the_one_committed() {
    let (mut net, _) = net_with(1);
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.commit(id, worker, b"work").expect("commit");
    // The right hash and salt with a junk location for the result: refused.
    let junk = TxBody::RevealResult {
        task: id,
        node: worker,
        output_hash: Hash32::of(b"work"),
        salt: crate::tests::salt(id, worker),
        result_cid: "bafkreijunk".into(),
        summary: Vec::new(),
    };
    assert_eq!(net.run(net.owner(worker), junk), Err(Reject::BadCommitment));
    assert_eq!(net.task(id).state, TaskState::Running);
    net.reveal(id, worker, b"work").expect("the committed CID opens it");
    let result = net.task(id).result.as_ref().map(|r| r.result_cid.clone());
    assert_eq!(result, Some(crate::tests::result_cid(worker)));
}

#[test]
fn a_lone_worker_that_never_reveals_loses_its_lease_without_a_slash() {
    let (mut net, nodes) = net_with(2);
    net.spot_audits_off();
    let id = net.submit(0, policy(Verification::Spot));
    let first = net.worker(id);
    net.commit(id, first, b"x").expect("commit");
    net.keep_alive();
    assert!(net.task(id).reveal_open_ms.is_some(), "not audited: reveals open after the draw");
    net.wait(net.state.params.verification.reveal_window_ms);
    let task = net.task(id);
    assert_eq!(task.excluded, vec![first]);
    assert_eq!(net.leased(id), vec![nodes[1]], "placed again at once");
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

/// A `spot` task verified and disputed; the committee reveals `committee`.
fn disputed(committee: [&[u8]; 2]) -> (Net, TaskId, NodeId, Vec<NodeId>) {
    let (mut net, _) = net_with(3);
    let id = net.submit(0, policy(Verification::Spot));
    let worker = net.worker(id);
    net.finish_lease(id, worker, b"claimed");
    let bond = dispute_bond_min(&net.task(id).terms);
    let low = TxBody::DisputeResult { task: id, bond: Amount(bond.0 - 1) };
    assert_eq!(net.run(0, low), Err(Reject::BondTooLow));
    assert_eq!(net.run(1, TxBody::DisputeResult { task: id, bond }), Err(Reject::NotTaskRequester));
    net.run(0, TxBody::DisputeResult { task: id, bond }).expect("dispute");
    assert_eq!(net.run(0, TxBody::AcceptResult { task: id }), Err(Reject::DisputeOpen));
    let members = net.leased(id);
    assert_eq!(members.len(), 2);
    assert!(!members.contains(&worker));
    for (node, output) in members.iter().zip(committee) {
        net.commit(id, *node, output).expect("commit");
    }
    for (node, output) in members.iter().zip(committee) {
        net.reveal(id, *node, output).expect("reveal");
    }
    (net, id, worker, members)
}

#[test]
fn a_dispute_that_proves_the_result_wrong_slashes_the_worker_and_refunds_the_requester() {
    let before = Net::new().balance(0);
    let (net, id, worker, members) = disputed([b"true", b"true"]);
    let task = net.task(id);
    assert_eq!(
        (task.state, task.failure),
        (TaskState::Failed, Some(FailureReason::ResultRejected))
    );
    assert_eq!(task.dispute.as_ref().map(|d| d.outcome), Some(DisputeOutcome::Upheld));
    assert_eq!(task.refunded, task.terms.budget, "the worker is not paid");
    assert_eq!(net.state.nodes[&worker].reputation.offences, 1);
    // Bond back minus the committee's time; the challenger's 30% of the slash goes to the
    // members whose re-run proved the result wrong, never to the requester that claimed it.
    let committee_paid: u128 =
        task.leases.iter().filter(|l| l.role == Role::Committee).map(|l| l.cost.0).sum();
    let fees = 10 * 2;
    assert_eq!(net.balance(0).0, before.0 - fees - committee_paid);
    let penalized = net.log.iter().find_map(|e| match e {
        Event::Penalized { challengers, .. } => Some(challengers.clone()),
        _ => None,
    });
    let members: Vec<_> = members.iter().map(|n| net.state.nodes[n].owner).collect();
    assert_eq!(penalized, Some(members));
}

#[test]
fn a_dispute_of_a_correct_result_gives_the_bond_to_the_worker() {
    let (net, id, worker, members) = disputed([b"claimed", b"claimed"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.dispute.as_ref().map(|d| d.outcome), Some(DisputeOutcome::Rejected));
    let bond = dispute_bond_min(&task.terms).0;
    let committee_paid: u128 = members
        .iter()
        .map(|n| task.leases.iter().find(|l| l.node == *n).map_or(0, |l| l.cost.0))
        .sum();
    let owner = net.owner(worker);
    let expected = 100_000_000_000 - 1_000_000_000 - 10 * 4 + task.paid.0 + bond - committee_paid;
    assert_eq!(net.balance(owner).0, expected, "paid its work and the rest of the bond");
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

#[test]
fn a_split_committee_leaves_the_result_standing_and_slashes_the_dissenter() {
    let (net, id, worker, members) = disputed([b"claimed", b"other"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed, "two of three confirm the result");
    assert_eq!(verdict(&net, id, members[1]), Verdict::Overruled);
    assert_eq!(net.state.nodes[&worker].reputation.offences, 0);
}

/// A `spot` task whose requester committed to the known answer `answer`; the worker reveals
/// `output`, then the requester reveals its answer (checked first with a wrong salt).
fn known_answer(output: &[u8], answer: &[u8]) -> (Net, TaskId, NodeId) {
    let (mut net, _) = net_with(3);
    let answer = Hash32::of(answer);
    let salt = Hash32::of(b"kept secret by the submitter");
    let mut t = policy(Verification::Spot);
    t.name = "looks-normal".into();
    let commitment = crate::dispute::answer_commitment(&key(0).account(), &answer, &salt);
    let body = TxBody::SubmitTask { terms: t, answer_commitment: commitment };
    net.run(0, body).expect("submit");
    let id = TaskId(0);
    let worker = net.worker(id);
    net.finish_lease(id, worker, output);
    let wrong = TxBody::RevealAnswer { task: id, answer_hash: answer, salt: Hash32::default() };
    assert_eq!(net.run(0, wrong), Err(Reject::BadCommitment));
    net.run(0, TxBody::RevealAnswer { task: id, answer_hash: answer, salt }).expect("reveal");
    (net, id, worker)
}

/// The committee of the dispute a known-answer mismatch opened reveals `outputs`.
fn committee_reruns(net: &mut Net, id: TaskId, outputs: [&[u8]; 2]) -> Vec<NodeId> {
    let members = net.leased(id);
    assert_eq!(members.len(), 2, "a mismatch places a committee");
    for (node, output) in members.iter().zip(outputs) {
        net.commit(id, *node, output).expect("commit");
    }
    for (node, output) in members.iter().zip(outputs) {
        net.reveal(id, *node, output).expect("reveal");
    }
    members
}

#[test]
fn a_matching_known_answer_completes_the_task_and_credits_the_worker() {
    let (net, id, worker) = known_answer(b"answer", b"answer");
    assert_eq!(net.task(id).state, TaskState::Completed);
    assert!(net.task(id).dispute.is_none());
    assert_eq!(net.state.nodes[&worker].reputation.audits_passed, 1);
}

#[test]
fn a_known_answer_catch_slashes_the_forger_only_once_the_committee_reruns_it() {
    let before = Net::new().balance(0);
    let (mut net, id, worker) = known_answer(b"lazy", b"answer");
    // The requester's claim alone slashes nobody and refunds nothing: it opens a dispute.
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.dispute.as_ref().and_then(|d| d.claimed_answer), Some(Hash32::of(b"answer")));
    assert_eq!(net.state.nodes[&worker].reputation.offences, 0);
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    let members = committee_reruns(&mut net, id, [b"answer", b"answer"]);
    let task = net.task(id);
    assert_eq!(task.failure, Some(FailureReason::ResultRejected));
    let node = &net.state.nodes[&worker];
    assert_eq!((node.reputation.offences, node.status), (1, NodeStatus::Frozen));
    assert_eq!(task.refunded, task.terms.budget);
    let penalized = net.log.iter().find_map(|e| match e {
        Event::Penalized { offence, challengers, .. } => Some((*offence, challengers.clone())),
        _ => None,
    });
    let owners: Vec<_> = members.iter().map(|n| net.state.nodes[n].owner).collect();
    assert_eq!(penalized, Some((crate::money::Offence::KnownAnswerWrong, owners)));
    // The requester paid the committee from the bond and got no challenger share.
    let committee_paid: u128 =
        task.leases.iter().filter(|l| l.role == Role::Committee).map(|l| l.cost.0).sum();
    assert_eq!(net.balance(0).0, before.0 - 10 * 2 - committee_paid);
}

#[test]
fn a_requester_lying_about_its_known_answer_neither_slashes_nor_is_refunded() {
    let before = Net::new().balance(0);
    // The attack: download the honest result, then reveal a different (committed) answer.
    let (mut net, id, worker) = known_answer(b"honest work", b"a lie");
    let paid_before = net.balance(net.owner(worker));
    committee_reruns(&mut net, id, [b"honest work", b"honest work"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed, "the result stands");
    assert_eq!(task.dispute.as_ref().map(|d| d.outcome), Some(DisputeOutcome::Rejected));
    assert_eq!(net.state.nodes[&worker].reputation.offences, 0);
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    assert!(!net.log.iter().any(|e| matches!(e, Event::Penalized { .. })));
    assert_eq!(task.refunded.0 + task.paid.0, task.terms.budget.0);
    assert!(task.paid > Amount::ZERO, "the worker is paid");
    // The liar paid for the result and lost the bond (the committee's time, the rest to the
    // worker's owner).
    let bond = dispute_bond_min(&task.terms).0;
    assert_eq!(net.balance(0).0, before.0 - 10 * 2 - task.paid.0 - bond);
    assert!(net.balance(net.owner(worker)) > paid_before, "the bond went to the worker");
}

#[test]
fn a_committee_agreeing_on_a_third_answer_confirms_no_known_answer_claim() {
    let (mut net, id, worker) = known_answer(b"lazy", b"answer");
    committee_reruns(&mut net, id, [b"third", b"third"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed, "the claim was not confirmed");
    assert_eq!(task.dispute.as_ref().map(|d| d.outcome), Some(DisputeOutcome::Inconclusive));
    assert_eq!(net.state.nodes[&worker].reputation.offences, 0);
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

/// Places `cheat` among the 3 replicas of a task (drawn at random: submits until it holds one),
/// where it reveals a wrong result that the committee of two other owners outvotes: a proven
/// offence. Needs 5 providers of distinct owners.
pub(crate) fn catch_cheating(net: &mut Net, cheat: NodeId) {
    let id = loop {
        let id = net.submit(0, policy(Verification::Replicas(3)));
        if net.leased(id).contains(&cheat) {
            break id;
        }
        net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    };
    let output = |node: NodeId| -> &'static [u8] {
        if node == cheat {
            b"bad"
        } else {
            b"good"
        }
    };
    for node in net.leased(id) {
        net.commit(id, node, output(node)).expect("commit");
    }
    // The split goes to a committee of the two other owners, which confirms the majority.
    let members = net.leased(id)[3..].to_vec();
    assert_eq!(members.len(), 2);
    for node in &members {
        net.commit(id, *node, b"good").expect("member commits");
    }
    for node in members.iter().chain(&net.leased(id)[..3]) {
        net.reveal(id, *node, output(*node)).expect("reveal");
    }
}

#[test]
fn repeated_offences_freeze_then_eject_a_node() {
    let mut params = Params::default();
    params.verification.offences_eject = 2;
    params.verification.appeal_voting_ms = 60_000;
    let mut net = Net::with_params(params);
    let nodes: Vec<NodeId> = (1..=5).map(|i| net.provider(i, 500_000 * u128::from(i))).collect();
    let cheat = nodes[0];
    let mut statuses = Vec::new();
    for _ in 0..2 {
        catch_cheating(&mut net, cheat);
        statuses.push(net.state.nodes[&cheat].status);
        if net.state.nodes[&cheat].status == NodeStatus::Frozen {
            // Unfreeze by appeal so it can be caught again.
            net.run(1, TxBody::Appeal { node: cheat }).expect("appeal");
            net.run(2, TxBody::VoteAppeal { node: cheat, approve: true }).expect("vote");
            net.wait(net.state.params.verification.appeal_voting_ms);
            net.keep_alive();
        }
    }
    assert_eq!(statuses, vec![NodeStatus::Frozen, NodeStatus::Ejected]);
    assert_eq!(net.run(1, TxBody::Appeal { node: cheat }), Err(Reject::NodeNotFrozen));
    assert_eq!(net.state.accounts[&key(1).account()].nodes, 0, "its stake lock is gone");
}

#[test]
fn a_node_whose_score_collapses_is_frozen_without_a_slash() {
    let (mut net, nodes) = net_with(2);
    let flaky = nodes[0];
    for _ in 0..8 {
        if net.state.nodes[&flaky].status != NodeStatus::Active {
            break;
        }
        let id = net.submit(0, policy(Verification::Spot));
        let node = net.worker(id);
        let reason = FailureReason::ProviderError;
        net.run(net.owner(node), TxBody::ReportFailure { task: id, node, reason }).expect("fail");
        net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    }
    let node = &net.state.nodes[&flaky];
    assert_eq!(node.status, NodeStatus::Frozen);
    assert_eq!(node.reputation.offences, 0);
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    let id = net.submit(0, policy(Verification::Spot));
    assert_ne!(net.worker(id), flaky, "a frozen node gets no work");
}

#[test]
fn an_appeal_is_decided_by_the_stake_weighted_vote() {
    for (approve_stake, reject_stake, unfrozen) in
        [(3_000, 1_000, true), (1_000, 3_000, false), (0, 0, false)]
    {
        let (mut net, nodes) = net_with(3);
        let node = nodes[0];
        net.state.nodes.get_mut(&node).expect("node").status = NodeStatus::Frozen;
        assert_eq!(net.run(2, TxBody::Appeal { node }), Err(Reject::NotNodeOwner));
        net.run(1, TxBody::Appeal { node }).expect("appeal");
        assert_eq!(net.run(1, TxBody::Appeal { node }), Err(Reject::AppealOpen));
        assert_eq!(
            net.run(1, TxBody::VoteAppeal { node, approve: true }),
            Err(Reject::NotEligibleVoter)
        );
        assert_eq!(
            net.run(5, TxBody::VoteAppeal { node, approve: true }),
            Err(Reject::VoteStakeTooLow),
            "no stake"
        );
        for (voter, amount, approve) in [(4, approve_stake, true), (5, reject_stake, false)] {
            if amount == 0 {
                continue;
            }
            net.run(voter, TxBody::Bond { amount: Amount::tokens(amount) }).expect("bond");
            net.run(voter, TxBody::VoteAppeal { node, approve }).expect("vote");
            assert_eq!(
                net.run(voter, TxBody::VoteAppeal { node, approve }),
                Err(Reject::AlreadyVoted)
            );
            assert_eq!(
                net.run(voter, TxBody::Unbond { amount: Amount(1) }),
                Err(Reject::StakeLocked)
            );
        }
        net.idle(net.state.params.verification.appeal_voting_ms);
        let expected = if unfrozen { NodeStatus::Active } else { NodeStatus::Frozen };
        assert_eq!(net.state.nodes[&node].status, expected);
        assert!(net.state.nodes[&node].appeal.is_none());
        if approve_stake > 0 {
            net.run(4, TxBody::Unbond { amount: Amount(1) }).expect("free after the vote");
        }
    }
}

#[test]
fn ratings_weigh_the_raters_stake() {
    let (mut net, _) = net_with(1);
    let mut scores = Vec::new();
    for (rater, stake) in [(0u32, 0u64), (6, 9_000)] {
        if stake > 0 {
            net.run(rater, TxBody::Bond { amount: Amount::tokens(stake) }).expect("bond");
        }
        let id = net.submit(rater, policy(Verification::Spot));
        let worker = net.worker(id);
        net.finish_lease(id, worker, b"x");
        net.run(rater, TxBody::AcceptResult { task: id }).expect("accept");
        let stars = if stake > 0 { 5 } else { 1 };
        net.run(rater, TxBody::RateTask { task: id, stars }).expect("rate");
        scores.push(net.state.nodes[&worker].reputation.clone());
    }
    let last = scores.last().expect("rated");
    assert_eq!((last.rating_count, last.rating_weight), (2, 1 + 10));
    assert_eq!(last.rating_sum, 1 + 5 * 10, "the staked rater's 5 stars weigh ten times");
}

#[test]
fn the_default_economics_make_cheating_a_losing_bet() {
    let params = Params::default();
    params.verification.validate().expect("defaults are valid");
    let economics = params.verification.economics;
    for price in [1u128, 1_000, 3_600_000, 1_000_000_000_000] {
        // A cheat that saves the whole price and gains nothing else loses on average...
        assert!(aicpw_verify::cheating_is_unprofitable(&economics, price, price, 0));
        // ...because the slash is above the least slash that deters it at the audit floor.
        let least = aicpw_verify::slash_min(price, price, 0, economics.audit_rate_min_ppm)
            .expect("in range");
        assert!(economics.slash(price).expect("fits") >= least, "price {price}");
    }
    // The inequality the design states, in integers: savings + benefit < p·(price + slash).
    let (price, p_ppm) = (1_000_000u128, u128::from(economics.audit_rate_min_ppm));
    let slash = economics.slash(price).expect("fits");
    assert!(price * 1_000_000 < p_ppm * (price + slash));
}

#[test]
fn a_nodes_unverified_work_is_bounded_by_its_stake() {
    let mut net = Net::new();
    // 1,000 AIC of stake covers 1e9 / 20 = 5e7 of run value: 13 runs of 3.6e6, not 14.
    let node = net.provider(1, 3_600_000);
    let mut leased = 0;
    for _ in 0..15 {
        let mut t = policy(Verification::Spot);
        t.resources.cpu_cores = 0;
        t.resources.memory_mb = 0;
        let id = net.submit(0, t);
        if net.leased(id) == vec![node] {
            leased += 1;
        }
    }
    let limit =
        aicpw_verify::unaudited_work_max(1_000_000_000, &Params::default().verification.economics);
    assert_eq!(leased, limit / 3_600_000);
    assert_eq!(net.state.headroom(&key(1).account()), limit - 13 * 3_600_000);
}

#[test]
fn events_name_the_verification_steps() {
    let (mut net, _) = net_with(2);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"o").expect("commit");
    let receipt_free = net.block(&[]);
    assert!(receipt_free.is_empty());
    let drawn = net.task(id).round;
    assert_eq!(drawn, Round::Audit);
    let auditor = net.leased(id)[1];
    let events = net.commit(id, auditor, b"o").expect("commit").events;
    assert!(events.iter().any(|e| matches!(e, Event::RevealsOpened { .. })));
}

/// An audit whose worker forged and whose referee committed a third result (it guessed instead
/// of computing): the three could only end `no-quorum`, which would let the forger escape its
/// slash. Two more judges of other owners decide with them (`Net::referee_escalated`).
fn audit_escalated(referee: &[u8], judges: [&[u8]; 2]) -> (Net, TaskId, Vec<NodeId>) {
    let mut net = crate::release_tests::net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"lazy").expect("commit");
    net.idle(0);
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    let nodes = net.referee_escalated(id, [b"lazy", b"right", referee, judges[0], judges[1]]);
    let owners: std::collections::BTreeSet<_> =
        nodes.iter().map(|n| net.state.nodes[n].owner).collect();
    assert_eq!(owners.len(), 5, "every judge of another owner");
    (net, id, nodes)
}

#[test]
fn a_referee_matching_neither_side_brings_two_more_blind_judges_and_the_forger_is_slashed() {
    let (net, id, nodes) = audit_escalated(b"guess", [b"right", b"right"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.result.as_ref().map(|r| r.node), Some(nodes[1]), "the auditor's result");
    for cheat in [nodes[0], nodes[2]] {
        assert_eq!(verdict(&net, id, cheat), Verdict::Overruled);
        let node = &net.state.nodes[&cheat];
        assert_eq!((node.status, node.reputation.audits_failed), (NodeStatus::Frozen, 1));
        assert_eq!(stake(&net, cheat).0, 1_000_000_000 - slash_of(&net, id, cheat));
    }
    for honest in [nodes[1], nodes[3], nodes[4]] {
        assert_eq!(net.state.nodes[&honest].reputation.offences, 0);
    }
}

#[test]
fn five_different_answers_fail_an_audit_without_slashing() {
    let (net, id, _) = audit_escalated(b"third", [b"fourth", b"fifth"]);
    let task = net.task(id);
    assert_eq!((task.state, task.failure), (TaskState::Failed, Some(FailureReason::NoQuorum)));
    assert_eq!(task.refunded, task.terms.budget);
    assert_eq!(net.state.meta.burned, Amount::ZERO);
}

#[test]
fn an_audit_nobody_can_staff_fails_as_verification_unavailable() {
    let (mut net, _) = net_with(1);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"out").expect("commit");
    net.keep_alive();
    assert_eq!((net.task(id).round, net.task(id).seats), (Round::Audit, 1), "no other owner");
    let early = TxBody::SettleExpired { task: id };
    assert_eq!(net.run(3, early.clone()), Err(Reject::LeaseNotExpired));
    net.wait(net.state.params.verification.seat_wait_ms);
    let task = net.task(id);
    let failed = Some(FailureReason::VerificationUnavailable);
    assert_eq!((task.state, task.failure), (TaskState::Failed, failed));
    assert_eq!(task.refunded, task.terms.budget);
}

#[test]
fn an_expired_replica_is_replaced_and_the_round_still_reaches_quorum() {
    let (mut net, nodes) = net_with(3);
    let id = net.submit(0, policy(Verification::Replicas(2)));
    let replicas = net.leased(id);
    let spare = *nodes.iter().find(|n| !replicas.contains(n)).expect("a spare node");
    net.commit(id, replicas[0], b"same").expect("commit");
    // The second replica goes silent: its lease expires and a spare node takes its seat.
    net.idle(net.state.params.lease_ms);
    net.keep_alive();
    assert_eq!(net.leased(id), vec![replicas[0], spare]);
    assert_eq!(net.task(id).attempts, 3);
    net.commit(id, spare, b"same").expect("commit");
    net.reveal(id, replicas[0], b"same").expect("reveal");
    net.reveal(id, spare, b"same").expect("reveal");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(net.state.nodes[&replicas[1]].reputation.expired, 1);
}

#[test]
fn cancelling_during_an_audit_waits_for_the_audit_and_pays_only_the_judged() {
    let (mut net, _) = net_with(2);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"out").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    let before = net.balance(0);
    // The worker's commitment awaits its audit: a copier or a lazy worker must not escape the
    // audit by a cancellation (its own, or a partner requester's), so the audit runs on.
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    assert_eq!(net.task(id).state, TaskState::Running);
    assert!(net.task(id).cancel_requested());
    net.commit(id, auditor, b"out").expect("commit");
    net.reveal(id, worker, b"out").expect("reveal");
    net.reveal(id, auditor, b"out").expect("reveal");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Cancelled);
    let earned: u128 = task.leases.iter().map(|l| l.cost.0).sum();
    assert_eq!(task.paid.0, earned, "both judged right, paid their earnings");
    assert_eq!(task.refunded.0, task.terms.budget.0 - earned);
    assert_eq!(net.balance(0), Amount(before.0 + task.refunded.0 - 10));
    assert!(task.leases.iter().all(|l| l.verdict == Verdict::Paid));
    assert_eq!(net.state.nodes[&auditor].running, 0, "the auditor's capacity is free");
    assert_eq!(net.state.nodes[&worker].running, 0);
}

#[test]
fn cancelling_a_running_replicated_task_after_reveals_pays_nobody() {
    let (mut net, _) = net_with(3);
    let id = net.submit(0, policy(Verification::Replicas(2)));
    let replicas = net.leased(id);
    net.commit(id, replicas[0], b"work").expect("commit");
    net.commit(id, replicas[1], b"work").expect("commit");
    net.reveal(id, replicas[1], b"work").expect("reveal");
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    let task = net.task(id);
    assert_eq!((task.state, task.paid), (TaskState::Cancelled, Amount::ZERO));
    assert_eq!(task.refunded, task.terms.budget);
}

#[test]
fn cancelling_an_unverified_task_still_pays_the_worker_its_time() {
    let (mut net, _) = net_with(1);
    let id = net.submit(0, policy(Verification::Spot));
    net.wait(30_000);
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Cancelled);
    assert!(task.paid > Amount::ZERO, "the partial payment rule");
    assert_eq!(task.paid.0 + task.refunded.0, task.terms.budget.0);
}

#[test]
fn auditors_are_drawn_at_random_not_by_price() {
    // Every task audited, however long the cheapest worker's clean streak grows.
    let mut params = Net::new().state.params.clone();
    params.verification.audit_streak_always = 1_000;
    let mut net = Net::with_params(params);
    let nodes: Vec<NodeId> = (1..=5).map(|i| net.provider(i, 500_000 * u128::from(i))).collect();
    let mut auditors = std::collections::BTreeSet::new();
    for _ in 0..24 {
        let id = net.submit(0, policy(Verification::Audit));
        let worker = net.worker(id);
        net.commit(id, worker, b"out").expect("commit");
        net.keep_alive();
        let auditor = net.leased(id)[1];
        assert_ne!(net.state.nodes[&auditor].owner, net.state.nodes[&worker].owner);
        auditors.insert(auditor);
        net.commit(id, auditor, b"out").expect("commit");
        net.reveal(id, worker, b"out").expect("reveal");
        net.reveal(id, auditor, b"out").expect("reveal");
    }
    assert!(
        auditors.len() >= 3,
        "auditors spread over the eligible nodes: {auditors:?} of {nodes:?}"
    );
}

#[test]
fn a_task_nobody_can_take_fails_after_the_queue_timeout_with_a_full_refund() {
    let mut net = Net::new();
    let before = net.balance(0);
    let id = net.submit(0, policy(Verification::Spot));
    assert_eq!(net.task(id).state, TaskState::Queued, "no provider at all");
    let timeout = net.state.params.queue_timeout_ms;
    assert_eq!(timeout, 86_400_000);
    net.idle(timeout - 2_000);
    assert_eq!(net.task(id).state, TaskState::Queued, "not before the timeout");
    assert_eq!(net.run(0, TxBody::SettleExpired { task: id }), Err(Reject::LeaseNotExpired));
    net.idle(1_000);
    let task = net.task(id);
    let failed = Some(FailureReason::NoEligibleProvider);
    assert_eq!((task.state, task.failure), (TaskState::Failed, failed), "settled by the block");
    assert_eq!(task.refunded, task.terms.budget);
    assert_eq!(net.balance(0), Amount(before.0 - 10), "only the fee is spent");
    assert!(net.state.index.queued.is_empty() && net.state.index.leases.is_empty());
}

/// The patient forger's best move: on a task with a generous budget, hold the forged lease to
/// the end of the time limit's grace. Paid for that time, it would earn more than the slash's
/// basis (its price for the time limit), and forging would pay at the audit floor:
/// `pay·(1 − p) − (slash + pay)·p > 0` for a one-minute limit held 85 s (pay = 1.4 runs,
/// slash = 20 runs, p = 5%). A lease earns at most its price for the time limit.
#[test]
fn a_lease_held_into_the_grace_earns_no_more_than_its_price_for_the_time_limit() {
    let (mut net, _) = net_with(2);
    let mut t = policy(Verification::Audit);
    t.time_limit_secs = 60;
    t.budget = Amount(budget_min(&t).0 * 10);
    let id = net.submit(0, t);
    let worker = net.worker(id);
    let held = 60_000 + net.state.params.time_limit_grace_ms - 5_000;
    net.wait(held);
    let committed = net.commit(id, worker, b"forged");
    assert!(committed.is_ok(), "{committed:?} at {} of {:?}", net.time_ms, net.task(id).leases[0]);
    let task = net.task(id);
    let lease = &task.leases[0];
    let limit = run_price(lease.price_per_hour, &task.terms);
    assert_eq!(lease.cost, limit, "paid for the time limit, not the grace");
    let slash = u128::from(net.state.params.verification.economics.slash_multiple_of_price);
    let p = u128::from(net.state.params.verification.audit_policy().rate_min_ppm);
    let (pay, ppm) = (lease.cost.0, u128::from(aicpw_verify::PPM));
    assert!(pay * (ppm - p) < (slash * limit.0 + pay) * p, "forging loses at the floor");
}
