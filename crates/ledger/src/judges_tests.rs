//! The copying judge: a referee or replica committee member that does not run the task and
//! copies what it can see. Judging seats used to commit after the results they judge were
//! revealed, so a copier could side with a forger and have the honest auditor slashed. Now each
//! commitment carries an equality tag, a split is judged before anything is revealed, the judges
//! reveal first, and a judge that cannot open its commitment is replaced by another blind one.

use crate::money::Offence;
use crate::state::{NodeStatus, Role, Round, Verdict};
use crate::tests::Net;
use crate::verification_tests::{policy, verdict};
use crate::Event;
use aicpw_types::task::Verification;
use aicpw_types::{NodeId, Reject, TaskId, TaskState};

/// Six owners at prices within every task's maximum.
fn net6() -> Net {
    let mut net = Net::new();
    for i in 1..=6 {
        net.provider(i, 500_000 * u128::from(i));
    }
    net
}

/// Nothing of the task is revealed, and `node` cannot reveal yet.
fn assert_blind(net: &mut Net, id: TaskId, node: NodeId, output: &[u8]) {
    assert!(net.task(id).leases.iter().all(|l| l.reveal.is_none()), "no result is public");
    assert_eq!(net.reveal(id, node, output), Err(Reject::RevealNotOpen));
}

/// The copier's late reveal window closes unopened: slashed `reveal-withheld`.
fn assert_slashed_withheld(net: &mut Net, id: TaskId, copier: NodeId) {
    let deadline =
        net.task(id).leases.iter().find(|l| l.node == copier).and_then(|l| l.withheld_until_ms);
    let deadline = deadline.expect("the copier's lease awaits its late verdict");
    net.idle(deadline - net.time_ms);
    let slashed = |e: &Event| matches!(e, Event::Penalized { node, offence: Offence::RevealWithheld, .. } if *node == copier);
    assert!(net.log.iter().any(slashed), "the copier is slashed when its late window closes");
    assert_eq!(verdict(net, id, copier), Verdict::Overruled);
}

#[test]
fn a_copying_referee_sees_no_hash_and_the_honest_auditor_is_upheld() {
    let mut net = net6();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"forged").expect("the forger commits");
    net.keep_alive();
    let auditor = net.leased(id)[1];
    net.commit(id, auditor, b"right").expect("the honest auditor commits");
    // The tags differ: the referee is drawn before anything is revealed. The old attack (copy the
    // forger's revealed hash) has nothing to copy; the copier takes what is public, the forger's
    // tag, and commits to an output it can only guess.
    assert_eq!(net.task(id).round, Round::Referee);
    assert_blind(&mut net, id, worker, b"forged");
    let copier = net.leased(id)[2];
    assert_eq!(net.task(id).leases[2].role, Role::Referee);
    let forger_tag = net.task(id).leases[0].tag;
    net.commit_tagged(id, copier, b"guess", &[], forger_tag).expect("the copier commits");
    // The judge reveals first; its guess does not match the tag it copied.
    assert_blind(&mut net, id, worker, b"forged");
    assert_eq!(net.reveal(id, copier, b"guess"), Err(Reject::TagMismatch));
    assert_eq!(net.reveal(id, copier, b"forged"), Err(Reject::BadCommitment));
    // Its reveal window passes: it is withheld and another referee is drawn, still blind.
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, copier), Verdict::Withheld);
    let referee = net.leased(id)[2];
    assert_ne!(referee, copier, "a fresh referee");
    assert_blind(&mut net, id, auditor, b"right");
    net.referee(id, [b"forged", b"right", b"right"]);
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Verifying);
    assert_eq!(task.result.as_ref().map(|r| r.node), Some(auditor), "the honest result stands");
    assert_eq!(verdict(&net, id, auditor), Verdict::Upheld);
    assert_eq!(net.state.nodes[&auditor].reputation.offences, 0, "the honest auditor is safe");
    assert_eq!(verdict(&net, id, worker), Verdict::Overruled);
    let forger = &net.state.nodes[&worker];
    assert_eq!((forger.status, forger.reputation.audits_failed), (NodeStatus::Frozen, 1));
    assert_slashed_withheld(&mut net, id, copier);
    assert_eq!(net.state.nodes[&auditor].reputation.offences, 0);
}

#[test]
fn a_copying_committee_member_cannot_outvote_an_honest_replica() {
    // Two replicas split: the honest one and a forger. Copying the forger's hash after the
    // reveals, two members would have made it 3 of 4 and slashed the honest replica.
    let mut net = net6();
    net.provider(7, 1_750_000);
    let id = net.submit(0, policy(Verification::Replicas(2)));
    let [honest, forger] = [net.leased(id)[0], net.leased(id)[1]];
    net.commit(id, honest, b"right").expect("commit");
    net.commit(id, forger, b"forged").expect("commit");
    let task = net.task(id);
    assert_eq!((task.round, task.leases.len()), (Round::Referee, 4), "a committee, drawn blind");
    assert_blind(&mut net, id, honest, b"right");
    let [copier, member] = [net.leased(id)[2], net.leased(id)[3]];
    let forger_tag = net.task(id).leases[1].tag;
    net.commit_tagged(id, copier, b"guess", &[], forger_tag).expect("the copier commits");
    net.commit(id, member, b"right").expect("the honest member commits");
    // Two tags against two: no majority possible, so two more members are drawn, still blind.
    let task = net.task(id);
    assert_eq!((task.leases.len(), task.seats), (6, 0), "two more members");
    let more = [net.leased(id)[4], net.leased(id)[5]];
    for judge in more {
        net.commit(id, judge, b"right").expect("a later member commits");
    }
    net.reveal(id, member, b"right").expect("the honest member reveals");
    assert_blind_but(&mut net, id, forger, member);
    for judge in more {
        net.reveal(id, judge, b"right").expect("a later member reveals");
    }
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, copier), Verdict::Withheld);
    let fresh = *net.leased(id).last().expect("a fresh member");
    assert!(![honest, forger, copier, member, more[0], more[1]].contains(&fresh));
    net.commit(id, fresh, b"right").expect("the fresh member commits");
    net.reveal(id, fresh, b"right").expect("the fresh member reveals");
    net.reveal(id, honest, b"right").expect("reveal");
    net.reveal(id, forger, b"forged").expect("reveal");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(verdict(&net, id, honest), Verdict::Upheld);
    assert_eq!(net.state.nodes[&honest].reputation.offences, 0, "the honest replica is safe");
    assert_eq!(net.state.nodes[&forger].reputation.offences, 1, "the forger is slashed");
    assert_slashed_withheld(&mut net, id, copier);
}

/// Only `judge` has revealed; `judged` must still wait for the other judges.
fn assert_blind_but(net: &mut Net, id: TaskId, judged: NodeId, judge: NodeId) {
    let revealed: Vec<NodeId> =
        net.task(id).leases.iter().filter(|l| l.reveal.is_some()).map(|l| l.node).collect();
    assert_eq!(revealed, vec![judge]);
    assert_eq!(net.reveal(id, judged, b"forged"), Err(Reject::RevealNotOpen));
}

#[test]
fn a_lying_tag_is_caught_at_reveal_and_slashed_when_its_window_closes() {
    // A lazy auditor copies the worker's tag to skip the referee and commits to a guess.
    let mut net = net6();
    let id = net.submit(0, policy(Verification::Audit));
    let worker = net.worker(id);
    net.commit(id, worker, b"right").expect("commit");
    net.keep_alive();
    let liar = net.leased(id)[1];
    let tag = net.task(id).leases[0].tag;
    net.commit_tagged(id, liar, b"guess", &[], tag).expect("the tag is not checked yet");
    assert!(net.task(id).reveal_open_ms.is_some(), "equal tags: the reveals open");
    net.reveal(id, worker, b"right").expect("the worker reveals");
    let before = net.task(id).clone();
    assert_eq!(net.reveal(id, liar, b"guess"), Err(Reject::TagMismatch));
    assert_eq!(Reject::TagMismatch.code(), 670);
    assert_eq!(net.reveal(id, liar, b"right"), Err(Reject::BadCommitment), "nor a copy");
    assert_eq!(net.task(id), &before, "a refused reveal changes nothing");
    // Never opened: withheld, the round judged without it, slashed when its late window closes.
    net.wait(net.state.params.verification.reveal_window_ms);
    assert_eq!(verdict(&net, id, liar), Verdict::Withheld);
    let referee = net.leased(id)[1];
    net.finish_lease(id, referee, b"right");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(verdict(&net, id, worker), Verdict::Upheld);
    assert_eq!(net.reveal(id, liar, b"guess"), Err(Reject::TagMismatch), "late, still a lie");
    assert_slashed_withheld(&mut net, id, liar);
}
