//! Withheld reveals: a lease that committed but did not reveal within its reveal window.
//!
//! Absence alone proves nothing (an honest node may be offline), but a worker that forged its
//! result and sees its audit coming could otherwise keep its commitment closed and lose only the
//! task's pay, never the slash, which would make forging pay (`savings + benefit <
//! p·(price + slash)` assumes every audited forgery is slashed). So a missed reveal does not end
//! the matter:
//!
//! - The lease becomes *withheld* (`RevealWithheld`): paid nothing beyond the intervals released
//!   to it while it ran (clawed back if it is slashed), a fault on record, its node's clean
//!   streak back to 0, excluded, and the round is judged on the reveals that came, as before.
//!   Until the lease is opened or slashed, every result of its node is audited
//!   (`verdict::draw_audits`): a forger cannot hide its caught forgery for the late window while
//!   a streak it keeps building lets its next forgeries through. It keeps `withheld_until_ms`, the end of
//!   its late reveal window (`late_reveal_window_ms`, 24 h, after its reveal window).
//! - Within that window the holder may still open its commitment with `RevealResult`; one that
//!   does not open it is `BadCommitment` 602, one after the window `LateRevealClosed` 628.
//! - An opened late reveal is judged against the result the task ends with (judged when the task
//!   ends, at once if it has): equal to a completed task's result, cleared (`LateRevealCleared`,
//!   no slash, keeping its released intervals, paid nothing more); different, slashed like the
//!   loser of the round's vote (`minority` for replicas, `audit-failed` for audits,
//!   `dispute-lost` for a committee member), its released intervals clawed back, the challenger
//!   share to the owners that revealed the result. A task failed `result-rejected`
//!   proved its result wrong: a late reveal of that hash is slashed (`dispute-lost`, or
//!   `known-answer-wrong`), the share to the committee members whose re-run proved it. A task cancelled after the verdict its
//!   cancel waited for (`ledger::cancel`) keeps that verdict's result: judged as if completed. A
//!   task that ended with no result standing (no quorum, cancelled before any verdict,
//!   verification unavailable, attempts exhausted) proves nothing either way: the opened lease is
//!   cleared.
//! - Unopened at the end of the window: slashed `reveal-withheld` (`Penalized`), the same amount
//!   and graded response as every proven offence (`penalty::penalize`). The ledger's own clock is
//!   the evidence, so nobody is paid a challenger share: it is burned with the burn share, the
//!   treasury gets its fifth (paying the round's other holders would pay them for keeping a node
//!   away or its late reveal out of blocks).
//!
//! Until the verdict the lease counts in its owner's stake at risk (`Index::at_risk`) like a
//! lease in flight: it uses up headroom for new work, and the slash it may cost cannot be
//! unbonded or withdrawn (`staking::slash_locked`), even after the node deregisters.

use crate::compare::{self, Ballot};
use crate::delta::Delta;
use crate::event::Event;
use crate::money::Offence;
use crate::penalty::{self, Fault};
use crate::state::{ResultCommit, Role, Task, Verdict};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{AccountId, Hash32, NodeId, Reject, TaskId, TaskState};

/// The earliest end of a late reveal window among the task's unopened withheld leases.
pub fn deadline(task: &Task) -> Option<u64> {
    task.leases.iter().filter_map(|l| l.late_reveal_deadline()).min()
}

/// Takes a silent lease out of its round: withheld until its late reveal window ends.
pub(crate) fn withhold(delta: &mut Delta<'_>, task: &mut Task, index: usize) -> Result<(), Reject> {
    let verification = &delta.base.params.verification;
    let window_end = task
        .reveal_open_ms
        .unwrap_or(delta.env.time_ms)
        .saturating_add(verification.reveal_window_ms);
    let deadline_ms = window_end.saturating_add(verification.late_reveal_window_ms);
    let lease = &mut task.leases[index];
    lease.verdict = Verdict::Withheld;
    lease.withheld_until_ms = Some(deadline_ms);
    let node = lease.node;
    if !task.excluded.contains(&node) {
        task.excluded.push(node);
    }
    penalty::fault(delta, node, Fault::Expired)?;
    // Not a clean result: the streak that lowers the node's audit rate starts again.
    let mut record = delta.node(node)?;
    crate::reputation::record(&mut record.reputation, |r| r.clean_streak = 0);
    delta.set_node(record);
    delta.emit(Event::RevealWithheld { task: task.id, node, deadline_ms });
    Ok(())
}

/// The lease `node` withheld in this task, if it has one that a reveal is about: still in its
/// late window, or slashed unopened when the window closed.
pub(crate) fn lease_of(task: &Task, node: NodeId) -> Option<usize> {
    task.leases.iter().position(|l| {
        l.node == node
            && l.commitment.is_some()
            && matches!(l.verdict, Verdict::Withheld | Verdict::Overruled)
            && (l.withheld_until_ms.is_some() || l.reveal.is_none())
    })
}

/// A late `RevealResult`: opens the withheld commitment and judges it once the task has ended.
pub(crate) fn reveal_late(
    delta: &mut Delta<'_>,
    who: AccountId,
    mut task: Task,
    index: usize,
    opening: crate::verdict::Opening,
) -> Result<(), Reject> {
    let lease = &task.leases[index];
    if delta.node(lease.node)?.owner != who {
        return Err(Reject::NotAssignedProvider);
    }
    if lease.reveal.is_some() {
        return Err(Reject::AlreadyCommitted);
    }
    let now = delta.env.time_ms;
    let (Some(commitment), Some(until)) = (lease.commitment, lease.late_reveal_deadline()) else {
        return Err(Reject::LateRevealClosed);
    };
    if now >= until {
        return Err(Reject::LateRevealClosed);
    }
    let (node, tag) = (lease.node, lease.tag);
    let reveal = opening.open(&task, &who, &commitment, &tag, now)?;
    let output_hash = reveal.output_hash;
    task.leases[index].reveal = Some(reveal);
    delta.emit(Event::ResultRevealed { task: task.id, node, output_hash });
    if task.state.is_terminal() {
        judge_opened(delta, &mut task)?;
    }
    delta.set_task(task);
    Ok(())
}

/// What the task's end says about a result revealed late.
enum Standing<'a> {
    /// The task completed with this result.
    Result(&'a ResultCommit),
    /// The task failed because this result was proven wrong.
    Rejected(&'a ResultCommit),
    /// No result stands, none was proven wrong.
    Nothing,
}

fn standing(task: &Task) -> Standing<'_> {
    match (task.state, task.failure, task.result.as_ref()) {
        (TaskState::Completed, _, Some(result)) => Standing::Result(result),
        // Only a cancel that waited for its verdict ends with a result: the round's majority,
        // which stands for its withheld leases as a completed task's result would.
        (TaskState::Cancelled, _, Some(result)) => Standing::Result(result),
        (TaskState::Failed, Some(FailureReason::ResultRejected), Some(result)) => {
            Standing::Rejected(result)
        }
        _ => Standing::Nothing,
    }
}

/// The offence of a late reveal that differs from the completed task's result: what losing the
/// round's vote would have been.
fn mismatch_offence(task: &Task, role: Role) -> Offence {
    match (role, task.terms.verification) {
        (Role::Committee, _) => Offence::DisputeLost,
        (_, Verification::Replicas(_)) => Offence::Minority,
        _ => Offence::AuditFailed,
    }
}

/// Owners of the leases that revealed `hash` and were upheld (or paid for it).
fn revealers_of(delta: &Delta<'_>, task: &Task, hash: Hash32) -> Result<Vec<AccountId>, Reject> {
    let mut owners = Vec::new();
    for lease in &task.leases {
        let upheld = matches!(lease.verdict, Verdict::Upheld | Verdict::Paid);
        if upheld && lease.reveal.as_ref().is_some_and(|r| r.output_hash == hash) {
            let owner = delta.node(lease.node)?.owner;
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
    }
    Ok(owners)
}

/// Judges every withheld lease that was opened late, now that the task has ended.
pub(crate) fn judge_opened(delta: &mut Delta<'_>, task: &mut Task) -> Result<(), Reject> {
    let opened: Vec<usize> = (0..task.leases.len())
        .filter(|i| task.leases[*i].is_withheld_pending() && task.leases[*i].reveal.is_some())
        .collect();
    for index in opened {
        let lease = &task.leases[index];
        let Some(reveal) = lease.reveal.as_ref() else { continue };
        // Equal hashes, or for a non-deterministic task summaries within its tolerance; a
        // difference is never slashed in its `committee` mode (`ledger::compare`).
        let same = |result: &ResultCommit| {
            let revealed = Ballot::of_reveal([0; 32], reveal);
            compare::agree(&task.terms, &Ballot::of_result([0; 32], result), &revealed)
        };
        let guilty = match standing(task) {
            Standing::Result(result)
                if !same(result) && compare::slashes_differences(&task.terms) =>
            {
                let challengers = revealers_of(delta, task, result.output_hash)?;
                Some((mismatch_offence(task, lease.role), challengers))
            }
            Standing::Rejected(result)
                if same(result) && compare::slashes_differences(&task.terms) =>
            {
                Some((crate::dispute::offence(task), crate::dispute::deciders(delta, task)?))
            }
            _ => None,
        };
        let node = lease.node;
        task.leases[index].withheld_until_ms = None;
        match guilty {
            Some((offence, challengers)) => {
                task.leases[index].verdict = Verdict::Overruled;
                penalty::penalize(delta, task, index, &challengers, offence)?;
            }
            None => delta.emit(Event::LateRevealCleared { task: task.id, node }),
        }
    }
    Ok(())
}

/// Slashes `reveal-withheld` every withheld lease of the task whose late reveal window closed
/// unopened; `LeaseNotExpired` if none is due.
pub fn expire(delta: &mut Delta<'_>, id: TaskId) -> Result<(), Reject> {
    let mut task = delta.task(id)?;
    let now = delta.env.time_ms;
    let due: Vec<usize> = (0..task.leases.len())
        .filter(|i| task.leases[*i].late_reveal_deadline().is_some_and(|d| d <= now))
        .collect();
    if due.is_empty() {
        return Err(Reject::LeaseNotExpired);
    }
    for index in due {
        task.leases[index].verdict = Verdict::Overruled;
        task.leases[index].withheld_until_ms = None;
        penalty::penalize(delta, &mut task, index, &[], Offence::RevealWithheld)?;
    }
    delta.set_task(task);
    Ok(())
}
