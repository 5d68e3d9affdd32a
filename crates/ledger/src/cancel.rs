//! Cancelling a task (`CancelTask`, by its requester).
//!
//! A cancel stops the *work* the requester pays for, not the *judging* of results already
//! revealed against each other. Were it to end the judging too, a wrong reveal caught by an
//! audit or a replica split would never be judged: nobody slashed, and the cheater keeping the
//! intervals released to it, whether the requester cancelled at that moment by chance or
//! colluded with the cheater on purpose.
//!
//! - Queued: the task ends at once, its escrow refunded (all of the budget unless a dropped
//!   lease was released intervals).
//! - Running, with nothing revealed against each other and no committed result awaiting its
//!   audit: the task ends at once ([`settle`]). Only verified work is paid: an upheld lease gets
//!   its earnings, the worker of an unverified (`none`) task its time (the partial payment
//!   rule). Every other lease (running, committed, awaiting its reveal or its vote) keeps the
//!   intervals released to it and gets nothing more: paying its commitment would let a copier
//!   cancel its way out of the check, paid. The rest is refunded.
//! - Running, with a worker's committed result awaiting its audit draw or its audit, or revealed
//!   results that disagree and are being judged ([`under_judgement`]: a referee round after an
//!   audit split or a missed reveal, a replica committee after a split or a round without a
//!   majority, or a replica round whose reveals already differ): the cancel is
//!   deferred (`CancelDeferred { until: "verdict" }`, `Task::cancel_requested_ms`). The judging
//!   seats already placed, or still to be placed for that judgement within `seat_wait_ms`, run to
//!   their verdict and are released their intervals as before. The verdict slashes the loser as
//!   it would have (its released intervals clawed back into the escrow, which is refunded to the
//!   requester when the task ends), records the majority's result (a withheld lease of the round
//!   opened late is judged against it) and then, instead of waiting for acceptance, [`settle`]s:
//!   the upheld leases, judging seats included, are paid their earnings as on acceptance, and
//!   the task ends `cancelled` (`cancelled-by-requester`) with the rest refunded. A judgement
//!   that cannot complete (no majority, no seat within `seat_wait_ms`) ends the task cancelled,
//!   slashing nobody (`market::finish`).
//!
//! While a cancel is deferred no work lease runs: a round's reveals open only once every lease
//! of it has committed, so the only running leases are judging seats (an auditor included). A
//! partner requester cancelling the moment its worker's forgery is audited thus changes nothing. No work seat is opened
//! (a dropped work lease ends the task instead of requeuing it), and the result never awaits
//! acceptance, so no acceptance, dispute or known-answer reveal can follow. A disputed result
//! awaits acceptance (`verifying`), which a cancel never could end: its committee always runs to
//! its verdict. A second `CancelTask` meanwhile is `CancelPending` 510.

use crate::delta::Delta;
use crate::event::Event;
use crate::market::{self, finish};
use crate::money;
use crate::state::{Role, Round, Task, Verdict};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{AccountId, Reject, TaskId, TaskState};

/// What a deferred cancel waits for, in its event.
pub const UNTIL_VERDICT: &str = "verdict";

pub fn cancel(delta: &mut Delta<'_>, who: AccountId, id: TaskId) -> Result<(), Reject> {
    let task = market::requested_task(delta, &who, id)?;
    if task.cancel_requested() {
        return Err(Reject::CancelPending);
    }
    match task.state {
        TaskState::Queued => {
            finish(delta, task, TaskState::Cancelled, Some(FailureReason::CancelledByRequester))
        }
        TaskState::Running if under_judgement(&task) => defer(delta, task),
        TaskState::Running => settle(delta, task),
        _ => Err(Reject::InvalidTaskState),
    }
}

/// Whether the task's results are being judged: a worker's committed result awaits its audit
/// draw or its audit, or its round is a referee round (an audit split or a missed reveal, or a
/// replica split or a round without a majority, before a committee), or two leases still in its
/// round revealed different hashes (a replica round whose last reveals are still to come before
/// its committee).
pub fn under_judgement(task: &Task) -> bool {
    if task.state != TaskState::Running {
        return false;
    }
    if matches!(task.round, Round::Drawing | Round::Audit | Round::Referee) {
        return true;
    }
    let mut results =
        task.leases.iter().filter(|l| l.verdict == Verdict::Pending).filter_map(|l| {
            l.reveal.as_ref().map(|r| crate::compare::Ballot::of_reveal([0; 32], r))
        });
    results.next().is_some_and(|first| {
        results.any(|other| !crate::compare::agree(&task.terms, &first, &other))
    })
}

/// Marks the task cancel-requested; its judgement goes on.
fn defer(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    task.cancel_requested_ms = Some(delta.env.time_ms);
    delta.emit(Event::CancelDeferred { task: task.id, round: task.round, until: UNTIL_VERDICT });
    delta.set_task(task);
    Ok(())
}

/// Ends a running task cancelled, paying only verified work: an upheld lease its earnings, an
/// unverified task's worker its time. Every other lease keeps its released intervals and gets
/// nothing more; the rest is refunded. Called by a cancel at once, or by the verdict a deferred
/// cancel waited for.
pub(crate) fn settle(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    let now = delta.env.time_ms;
    let spot = task.terms.verification == Verification::Spot;
    for index in 0..task.leases.len() {
        let lease = task.leases[index].clone();
        let earned = match lease.verdict {
            Verdict::Upheld => lease.cost,
            Verdict::Pending if spot && lease.role == Role::Worker => {
                if lease.is_running() {
                    market::cost(&task, &lease, now)
                } else {
                    lease.cost
                }
            }
            _ => continue,
        };
        money::pay(delta, &mut task, lease.node, earned.saturating_sub(lease.released))?;
        if lease.is_running() {
            market::leave_node(delta, lease.node)?;
        }
        task.leases[index].verdict = Verdict::Paid;
    }
    finish(delta, task, TaskState::Cancelled, Some(FailureReason::CancelledByRequester))
}
