//! Tests of withheld reveals (`ledger::withheld`): a lease that misses its reveal window is
//! withheld, then cleared, slashed for its late hash, or slashed `reveal-withheld` when its late
//! reveal window ends unopened; its stake cannot leave before the verdict.

use crate::money::Offence;
use crate::state::{NodeStatus, Params, Round, Verdict};
use crate::tests::{key, Net};
use crate::verification_tests::{policy, slash_of, stake, verdict};
use crate::Event;
use aicpw_types::task::Verification;
use aicpw_types::{Amount, NodeId, Reject, TaskId, TaskState, TxBody};

/// A verified task in which `silent` committed to `silent_output` and withheld its reveal;
/// `upheld` revealed the result that stands.
struct Withheld {
    net: Net,
    id: TaskId,
    silent: NodeId,
    upheld: Vec<NodeId>,
}

/// The incremental state root equals the one a restarted node rebuilds from the tables.
fn assert_root(net: &mut Net) {
    let root = net.state.finalize_root().0;
    let mut rebuilt = net.rebuilt();
    assert_eq!(rebuilt.finalize_root().0, root, "the root covers the withheld state");
    assert_eq!(rebuilt.index.withheld, net.state.index.withheld);
    assert_eq!(rebuilt.index.node_withheld, net.state.index.node_withheld);
    assert_eq!(rebuilt.index.at_risk, net.state.index.at_risk);
}

/// An audited worker keeps its commitment closed after the auditor revealed; a referee sides
/// with the auditor: drawn blind before the reveals if the tags differed, after the missed
/// reveal if they were equal.
fn withheld_audit(net: Net, silent_output: &[u8]) -> Withheld {
    let mut net = net;
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, silent_output).expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    let blind = (net.task(id).round == Round::Referee).then(|| net.leased(id)[2]);
    let mut revealing: Vec<NodeId> = blind.into_iter().collect();
    revealing.push(auditor);
    if let Some(referee) = blind {
        net.commit(id, referee, b"right").expect("referee commits");
    }
    for node in &revealing {
        net.reveal(id, *node, b"right").expect("reveal");
    }
    let open = net.task(id).reveal_open_ms.expect("reveals open");
    net.wait(net.state.params.verification.reveal_window_ms);
    let lease = net.task(id).leases[0].clone();
    let late = net.state.params.verification.late_reveal_window_ms;
    assert_eq!(lease.verdict, Verdict::Withheld);
    assert_eq!(lease.withheld_until_ms, Some(open + 60_000 + late));
    let referee = blind.unwrap_or_else(|| {
        assert_eq!(net.task(id).round, Round::Referee, "judged on the reveals that came");
        assert_root(&mut net);
        let referee = net.leased(id)[1];
        net.commit(id, referee, b"right").expect("referee commits");
        net.reveal(id, referee, b"right").expect("referee reveals");
        referee
    });
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_root(&mut net);
    Withheld { net, id, silent: worker, upheld: vec![auditor, referee] }
}

/// Two of three replicas reveal the same hash; the third keeps its commitment closed.
fn withheld_replica(net: Net, silent_output: &[u8]) -> Withheld {
    let mut net = net;
    let id = net.submit(0, policy(Verification::Replicas(3)));
    let replicas = net.leased(id);
    let w = withheld_replica_of(net, id, b"right", silent_output);
    assert_eq!(w.net.task(id).state, TaskState::Verifying, "a majority without the silent one");
    assert_eq!(verdict(&w.net, id, replicas[2]), Verdict::Withheld);
    w
}

fn setup(verification: Verification, silent_output: &[u8]) -> Withheld {
    match verification {
        Verification::Audit => {
            withheld_audit(crate::verification_tests::net_with(3).0, silent_output)
        }
        // Five owners: room for a committee when the silent replica's tag differs.
        _ => {
            let mut net = Net::new();
            for i in 1..=5 {
                net.provider(i, 500_000 * u128::from(i));
            }
            withheld_replica(net, silent_output)
        }
    }
}

/// Reveals the silent lease's output late, before or after the task ends; returns the events
/// of the block that judged it.
fn reveal_late(w: &mut Withheld, output: &[u8], before_end: bool) -> Vec<Event> {
    let accept = TxBody::AcceptResult { task: w.id };
    if before_end {
        w.net.reveal(w.id, w.silent, output).expect("late reveal");
        let lease = w.net.task(w.id).leases.iter().find(|l| l.node == w.silent).cloned();
        let lease = lease.expect("lease");
        assert!(lease.withheld_until_ms.is_some(), "judged only when the task ends");
        assert_root(&mut w.net);
        w.net.run(0, accept).expect("accept").events
    } else {
        w.net.run(0, accept).expect("accept");
        w.net.reveal(w.id, w.silent, output).expect("late reveal").events
    }
}

#[test]
fn a_withheld_reveal_opened_late_with_the_upheld_hash_is_not_slashed() {
    for verification in [Verification::Audit, Verification::Replicas(3)] {
        for before_end in [true, false] {
            let case = format!("{verification:?}, opened before the end: {before_end}");
            let mut w = setup(verification, b"right");
            let events = reveal_late(&mut w, b"right", before_end);
            let cleared = Event::LateRevealCleared { task: w.id, node: w.silent };
            assert!(events.contains(&cleared), "{case}: {events:?}");
            let lease = w.net.task(w.id).leases.iter().find(|l| l.node == w.silent).cloned();
            let lease = lease.expect("lease");
            assert_eq!(
                (lease.verdict, lease.withheld_until_ms),
                (Verdict::Withheld, None),
                "{case}"
            );
            let node = &w.net.state.nodes[&w.silent];
            assert_eq!((node.reputation.offences, node.reputation.expired), (0, 1), "{case}");
            assert_eq!(node.status, NodeStatus::Active, "{case}");
            assert_eq!(w.net.state.meta.burned, Amount::ZERO, "{case}");
            assert_eq!(stake(&w.net, w.silent), Amount::tokens(1_000), "{case}: unpaid, unslashed");
            let owner = w.net.state.nodes[&w.silent].owner;
            assert!(!w.net.state.index.at_risk.contains_key(&owner), "{case}: nothing at risk");
            assert_root(&mut w.net);
        }
    }
}

#[test]
fn a_withheld_reveal_opened_late_with_another_hash_is_slashed_like_the_votes_loser() {
    let cases = [
        (Verification::Audit, Offence::AuditFailed),
        (Verification::Replicas(3), Offence::Minority),
    ];
    for (verification, offence) in cases {
        for before_end in [true, false] {
            let case = format!("{verification:?}, opened before the end: {before_end}");
            let mut w = setup(verification, b"forged");
            let slash = slash_of(&w.net, w.id, w.silent);
            let events = reveal_late(&mut w, b"forged", before_end);
            let penalized = events.iter().find_map(|e| match e {
                Event::Penalized { node, offence, amount, challengers, .. }
                    if *node == w.silent =>
                {
                    Some((*offence, *amount, challengers.clone()))
                }
                _ => None,
            });
            let owners: Vec<_> = w.upheld.iter().map(|n| w.net.state.nodes[n].owner).collect();
            assert_eq!(penalized, Some((offence, Amount(slash), owners)), "{case}");
            assert_eq!(verdict(&w.net, w.id, w.silent), Verdict::Overruled, "{case}");
            assert_eq!(stake(&w.net, w.silent).0, 1_000_000_000 - slash, "{case}");
            assert_eq!(w.net.state.nodes[&w.silent].status, NodeStatus::Frozen, "{case}");
            assert_eq!(w.net.task(w.id).state, TaskState::Completed, "{case}");
            assert_root(&mut w.net);
        }
    }
}

/// Lets time pass to the end of the silent lease's late reveal window, in one block.
fn end_late_window(w: &mut Withheld) -> Vec<Event> {
    let lease = w.net.task(w.id).leases.iter().find(|l| l.node == w.silent).cloned();
    let deadline = lease.and_then(|l| l.withheld_until_ms).expect("withheld");
    w.net.idle(deadline - w.net.time_ms);
    std::mem::take(&mut w.net.events)
}

#[test]
fn a_withheld_reveal_never_opened_is_slashed_reveal_withheld_when_the_late_window_ends() {
    let mut w = setup(Verification::Audit, b"forged");
    w.net.run(0, TxBody::AcceptResult { task: w.id }).expect("accept");
    let settle = TxBody::SettleExpired { task: w.id };
    assert_eq!(w.net.run(3, settle.clone()), Err(Reject::LeaseNotExpired), "not due yet");
    let owner = w.net.state.nodes[&w.silent].owner;
    let run = crate::market::run_price(
        w.net.task(w.id).leases[0].price_per_hour,
        &w.net.task(w.id).terms,
    );
    assert_eq!(w.net.state.index.at_risk.get(&owner), Some(&run.0), "still at risk once completed");
    let slash = slash_of(&w.net, w.id, w.silent);
    let treasury = w.net.state.params.verification.treasury;
    let treasury_before = w.net.state.accounts.get(&treasury).map_or(0, |a| a.balance.0);
    let events = end_late_window(&mut w);
    let split = w.net.state.params.verification.economics.split.split(slash).expect("split");
    // Nobody challenged but the ledger's clock: the challenger share is burned with the burn.
    let expected = Event::Penalized {
        task: Some(w.id),
        node: w.silent,
        owner,
        offence: Offence::RevealWithheld,
        amount: Amount(slash),
        burned: Amount(split.burn + split.challenger),
        challengers: vec![],
        treasury: Amount(split.treasury),
    };
    assert!(events.contains(&expected), "{events:?}");
    assert_eq!(w.net.state.meta.burned.0, split.burn + split.challenger);
    assert_eq!(w.net.state.accounts[&treasury].balance.0 - treasury_before, split.treasury);
    assert_eq!(split.burn + split.challenger + split.treasury, slash, "every unit accounted");
    assert_eq!(stake(&w.net, w.silent).0, 1_000_000_000 - slash);
    let node = &w.net.state.nodes[&w.silent];
    assert_eq!((node.status, node.reputation.offences), (NodeStatus::Frozen, 1));
    assert_eq!(verdict(&w.net, w.id, w.silent), Verdict::Overruled);
    assert!(
        w.net.state.index.withheld.is_empty() && !w.net.state.index.at_risk.contains_key(&owner)
    );
    assert_eq!(w.net.run(3, settle), Err(Reject::LeaseNotExpired), "settled once");
    assert_root(&mut w.net);
}

#[test]
fn a_late_reveal_must_open_the_commitment_and_comes_too_late_after_the_window() {
    let mut w = setup(Verification::Audit, b"forged");
    assert_eq!(w.net.reveal(w.id, w.silent, b"right"), Err(Reject::BadCommitment));
    let events = end_late_window(&mut w);
    assert!(events.iter().any(|e| matches!(e, Event::Penalized { .. })));
    assert_eq!(w.net.reveal(w.id, w.silent, b"forged"), Err(Reject::LateRevealClosed));
    assert_eq!(Reject::LateRevealClosed.code(), 628);
    assert_eq!(verdict(&w.net, w.id, w.silent), Verdict::Overruled, "slashed once, unopened");
}

#[test]
fn a_node_cannot_take_its_stake_out_of_reach_of_a_pending_late_verdict() {
    let mut net = Net::with_params(Params { unbonding_blocks: 3, ..Params::default() });
    let nodes: Vec<NodeId> = (1..=3).map(|i| net.provider(i, 1_000_000 * u128::from(i))).collect();
    let mut w = withheld_audit(net, b"forged");
    assert_eq!(w.silent, nodes[0]);
    let who = w.net.owner(w.silent);
    let slash = slash_of(&w.net, w.id, w.silent);
    let all = Amount::tokens(1_000);
    assert_eq!(w.net.run(who, TxBody::Unbond { amount: all }), Err(Reject::StakeLocked));
    // Deregistering frees the registration's lock, not the pending slash's.
    w.net.run(who, TxBody::DeregisterNode { node: w.silent }).expect("deregister");
    assert_eq!(w.net.run(who, TxBody::Unbond { amount: all }), Err(Reject::StakeLocked));
    w.net.run(who, TxBody::Unbond { amount: Amount(all.0 - slash) }).expect("the rest may go");
    for _ in 0..3 {
        w.net.idle(1_000);
    }
    w.net.run(who, TxBody::Withdraw).expect("what the slash does not need");
    assert_root(&mut w.net);
    w.net.run(0, TxBody::AcceptResult { task: w.id }).expect("accept");
    let events = end_late_window(&mut w);
    let taken = events.iter().find_map(|e| match e {
        Event::Penalized { amount, offence: Offence::RevealWithheld, .. } => Some(*amount),
        _ => None,
    });
    assert_eq!(taken, Some(Amount(slash)), "the whole slash was still there");
    assert_eq!(w.net.state.accounts[&key(who).account()].staked, Amount::ZERO);
    assert_root(&mut w.net);
}

#[test]
fn stake_of_a_committed_lease_awaiting_its_audit_cannot_be_unbonded() {
    let (mut net, _) = crate::verification_tests::net_with(2);
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"forged").expect("commit");
    net.keep_alive();
    assert_eq!(net.task(id).round, Round::Audit, "it knows it is audited");
    let who = net.owner(worker);
    net.run(who, TxBody::DeregisterNode { node: worker }).expect("nothing running");
    let all = TxBody::Unbond { amount: Amount::tokens(1_000) };
    assert_eq!(net.run(who, all), Err(Reject::StakeLocked), "its slash stays in reach");
}

/// Replicas 3: two reveal "wrong", the silent third committed `silent_output`; the requester
/// knew the answer "right" and reveals it once the wrong result is verified; the committee's
/// re-run confirms it.
fn known_answer_rejects(silent_output: &[u8]) -> Withheld {
    // Seven owners: the replicas' committee (if their tags split) and the dispute's are apart.
    let mut net = Net::new();
    for i in 1..=7 {
        net.provider(i, 500_000 * u128::from(i));
    }
    let salt = aicpw_types::Hash32::of(b"answer salt");
    let right = aicpw_types::Hash32::of(b"right");
    let answer_commitment = crate::dispute::answer_commitment(&key(0).account(), &right, &salt);
    let terms = policy(Verification::Replicas(3));
    let body = TxBody::SubmitTask { terms, answer_commitment };
    net.run(0, body).expect("submit");
    let id = *net.state.tasks.keys().last().expect("a task");
    let mut w = withheld_replica_of(net, id, b"wrong", silent_output);
    let reveal = TxBody::RevealAnswer { task: id, answer_hash: right, salt };
    w.net.keep_alive();
    w.net.run(0, reveal).expect("reveal the answer");
    let members = w.net.leased(id);
    for member in &members {
        w.net.commit(id, *member, b"right").expect("commit");
    }
    for member in &members {
        w.net.reveal(id, *member, b"right").expect("reveal");
    }
    assert_eq!(w.net.task(id).failure, Some(aicpw_types::task::FailureReason::ResultRejected));
    w
}

/// Three replicas; the third commits `silent_output` and keeps it closed. If its tag differs
/// from the others', a committee is drawn before the reveals and sides with `majority`.
fn withheld_replica_of(net: Net, id: TaskId, majority: &[u8], silent_output: &[u8]) -> Withheld {
    let mut net = net;
    let replicas = net.leased(id);
    for (i, node) in replicas.iter().enumerate() {
        net.commit(id, *node, if i == 2 { silent_output } else { majority }).expect("commit");
    }
    let members = net.leased(id)[3..].to_vec();
    for member in &members {
        net.commit(id, *member, majority).expect("member commits");
    }
    for node in members.iter().chain(&replicas[..2]) {
        net.reveal(id, *node, majority).expect("reveal");
    }
    net.idle(net.state.params.verification.reveal_window_ms);
    let upheld = replicas[..2].iter().chain(&members).copied().collect();
    Withheld { net, id, silent: replicas[2], upheld }
}

#[test]
fn a_late_reveal_is_slashed_only_for_a_hash_the_tasks_end_proves_wrong() {
    type Ends = fn(&[u8]) -> Withheld;
    let accepted: Ends = |output| {
        let mut w = setup(Verification::Audit, output);
        w.net.run(0, TxBody::AcceptResult { task: w.id }).expect("accept");
        w
    };
    let rejected: Ends = known_answer_rejects;
    // (case, how the task ends, what the silent lease committed to, the offence if any)
    let cases: [(&str, Ends, &[u8], Option<Offence>); 4] = [
        ("rejected, same hash", rejected, b"wrong", Some(Offence::KnownAnswerWrong)),
        ("rejected, another hash", rejected, b"right", None),
        ("completed, the result's hash", accepted, b"right", None),
        ("completed, another hash", accepted, b"other", Some(Offence::AuditFailed)),
    ];
    for (case, ends, output, offence) in cases {
        let mut w = ends(output);
        let events = w.net.reveal(w.id, w.silent, output).expect("late reveal").events;
        let penalized = events.iter().find_map(|e| match e {
            Event::Penalized { offence, challengers, .. } => Some((*offence, challengers.clone())),
            _ => None,
        });
        assert_eq!(penalized.as_ref().map(|p| p.0), offence, "{case}");
        if offence == Some(Offence::KnownAnswerWrong) {
            let challengers = penalized.map(|p| p.1).unwrap_or_default();
            let committee: Vec<_> = w
                .net
                .task(w.id)
                .leases
                .iter()
                .filter(|l| l.role == crate::state::Role::Committee)
                .map(|l| w.net.state.nodes[&l.node].owner)
                .collect();
            assert_eq!(challengers, committee, "{case}: the share of the re-run, not the claim");
        }
        let cleared = Event::LateRevealCleared { task: w.id, node: w.silent };
        assert_eq!(events.contains(&cleared), offence.is_none(), "{case}");
        assert_root(&mut w.net);
    }
}

#[test]
fn a_late_reveal_on_a_task_that_ended_with_no_result_is_cleared() {
    let mut net = crate::release_tests::net5();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"forged").expect("commit");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    // The requester cancels while the referee runs; the cancel waits for the verdict, which
    // finds no majority (the referee and the two judges its third tag brings each reveal a
    // hash of their own): no result will ever stand.
    net.run(0, TxBody::CancelTask { task: id }).expect("cancel");
    let referee = net.leased(id)[2];
    net.commit(id, referee, b"third").expect("referee commits");
    let nodes = net.leased(id);
    let judges = nodes[3..].iter().zip([&b"fourth"[..], b"fifth"]);
    for (judge, output) in judges.clone() {
        net.commit(id, *judge, output).expect("judge commits");
    }
    for (judge, output) in judges {
        net.reveal(id, *judge, output).expect("judge reveals");
    }
    net.reveal(id, referee, b"third").expect("referee reveals");
    net.reveal(id, auditor, b"right").expect("auditor reveals");
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, worker), Verdict::Withheld);
    assert_eq!(net.task(id).state, TaskState::Cancelled);
    let events = net.reveal(id, worker, b"forged").expect("late reveal").events;
    assert!(events.contains(&Event::LateRevealCleared { task: id, node: worker }), "{events:?}");
    assert_eq!(net.state.meta.burned, Amount::ZERO);
    assert_root(&mut net);
}

/// Pruning never takes what a later rule needs: an ended task stays while a withheld lease of it
/// awaits its late verdict, however short the retention, and goes once that verdict is in.
#[test]
fn a_task_is_not_pruned_while_a_withheld_lease_awaits_its_late_verdict() {
    let mut w = setup(Verification::Replicas(3), b"wrong");
    w.net.run(0, TxBody::AcceptResult { task: w.id }).expect("accept");
    assert_eq!(w.net.task(w.id).state, TaskState::Completed);
    w.net.state.params.task_retention_ms = 1_000;
    w.net.idle(10_000);
    assert!(w.net.state.tasks.contains_key(&w.id), "its late reveal window still needs it");
    let late = w.net.state.params.verification.late_reveal_window_ms;
    w.net.idle(late);
    let withheld =
        |e: &Event| matches!(e, Event::Penalized { offence: Offence::RevealWithheld, .. });
    assert!(w.net.log.iter().any(withheld), "slashed when its late window closed");
    w.net.idle(10_000);
    assert!(!w.net.state.tasks.contains_key(&w.id), "pruned once no rule needs it");
    assert_root(&mut w.net);
}

/// The withholding forger: a worker whose clean streak has brought its audit rate to the floor
/// keeps its audited forgery closed, and goes on forging while that lease waits for its late
/// window. Its streak starts again, and until the lease is judged every result of it is audited
/// (at the floor rate, 40 results would almost all go unaudited).
#[test]
fn a_withheld_reveal_resets_the_streak_and_audits_every_result_until_it_is_judged() {
    let (mut net, _) = crate::verification_tests::net_with(3);
    let id = net.submit(0, policy(Verification::Audit));
    let silent = net.worker(id);
    net.commit(id, silent, b"forged").expect("commit");
    net.keep_alive();
    assert_eq!(net.task(id).round, Round::Audit, "new node: audited");
    net.state.nodes.get_mut(&silent).expect("node").reputation.clean_streak = 1_000;
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("auditor commits");
    let referee = net.leased(id)[2];
    net.commit(id, referee, b"right").expect("referee commits");
    net.reveal(id, referee, b"right").expect("referee reveals");
    net.reveal(id, auditor, b"right").expect("auditor reveals");
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, silent), Verdict::Withheld);
    assert_eq!(net.state.nodes[&silent].reputation.clean_streak, 0, "the streak starts again");
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    for round in 0..40u64 {
        let next = net.submit(0, policy(Verification::Audit));
        assert_eq!(net.worker(next), silent, "the withholding node still takes work");
        net.state.nodes.get_mut(&silent).expect("node").reputation.clean_streak = 1_000;
        net.commit(next, silent, &round.to_le_bytes()).expect("commit");
        net.keep_alive();
        assert_eq!(net.task(next).round, Round::Audit, "result {round} audited");
        net.run(0, TxBody::CancelTask { task: next }).expect("cancel");
    }
    let deadline = net.task(id).leases[0].withheld_until_ms.expect("withheld");
    net.idle(deadline - net.time_ms);
    assert_eq!(verdict(&net, id, silent), Verdict::Overruled, "slashed when the window closed");
    assert!(net.state.index.node_withheld.is_empty(), "nothing left to hide");
}
