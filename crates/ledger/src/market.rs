//! The market: tasks with budgets in escrow, assignment leases, heartbeats, results, settlement,
//! refunds and reassignment. Every task ends `completed`, `failed` or `cancelled`, with a reason.
//!
//! Payment rule: a provider earns its price (fixed when it took the lease) for the time from
//! assignment to its result or to a failure caused by the task itself (time, memory, CPU or process
//! limit, or a non-zero exit), capped by the escrow. A provider that fails for its own reasons or
//! lets its lease expire earns nothing, and the task goes to another node. The requester gets back
//! whatever the provider did not earn.

use crate::bank;
use crate::delta::Delta;
use crate::event::Event;
use crate::reputation;
use crate::state::{Lease, ResultCommit, Task};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{AccountId, Amount, Hash32, NodeId, Reject, TaskId, TaskState, TaskTerms};

const MS_PER_HOUR: u128 = 3_600_000;

/// The least budget that covers the whole time limit at the maximum price.
pub fn budget_min(terms: &TaskTerms) -> Amount {
    let total = terms.max_price_per_hour.0.saturating_mul(u128::from(terms.time_limit_secs) * 1000);
    Amount(total.div_ceil(MS_PER_HOUR))
}

pub fn submit(
    delta: &mut Delta<'_>,
    requester: AccountId,
    terms: TaskTerms,
    key_grants: Vec<KeyGrant>,
) -> Result<TaskId, Reject> {
    if terms.budget < budget_min(&terms) {
        return Err(Reject::BudgetTooLow);
    }
    if !matches!(terms.verification, Verification::None) {
        // Audits and replication settle through the verification rules, which this ledger
        // version does not run yet; accepting such a task would take money for checks never made.
        return Err(Reject::InvalidField);
    }
    if delta.base.index.queued.len() >= delta.base.params.tasks_queued_max as usize {
        return Err(Reject::TasksPendingFull);
    }
    bank::debit(delta, requester, terms.budget)?;
    let mut meta = delta.meta();
    let id = TaskId(meta.next_task);
    meta.next_task += 1;
    delta.set_meta(meta);
    let budget = terms.budget;
    delta.set_task(Task {
        id,
        requester,
        escrow: budget,
        terms,
        key_grants,
        state: TaskState::Queued,
        paid: Amount::ZERO,
        refunded: Amount::ZERO,
        attempts: 0,
        lease: None,
        excluded: Vec::new(),
        result: None,
        failure: None,
        submitted_ms: delta.env.time_ms,
        rating: 0,
    });
    delta.emit(Event::TaskSubmitted { task: id, requester, budget });
    Ok(id)
}

fn requested_task(delta: &Delta<'_>, who: &AccountId, id: TaskId) -> Result<Task, Reject> {
    let task = delta.task(id)?;
    if task.requester != *who {
        return Err(Reject::NotTaskRequester);
    }
    Ok(task)
}

/// The task and its lease, checked to be running on `node` owned by `who`.
fn leased_task(
    delta: &Delta<'_>,
    who: &AccountId,
    id: TaskId,
    node: NodeId,
) -> Result<(Task, Lease), Reject> {
    let task = delta.task(id)?;
    let owner = delta.node(node)?.owner;
    match &task.lease {
        Some(lease) if lease.node == node && owner == *who => {
            if task.state != TaskState::Running {
                return Err(Reject::InvalidTaskState);
            }
            let lease = lease.clone();
            Ok((task, lease))
        }
        _ => Err(Reject::NotAssignedProvider),
    }
}

/// The provider's earnings for holding the lease until `now`, rounded up, capped by the escrow.
fn cost(task: &Task, lease: &Lease, now: u64) -> Amount {
    let elapsed = u128::from(now.saturating_sub(lease.started_ms));
    let earned = lease.price_per_hour.0.saturating_mul(elapsed).div_ceil(MS_PER_HOUR);
    Amount(earned).min(task.escrow)
}

fn pay(delta: &mut Delta<'_>, task: &mut Task, node: NodeId, amount: Amount) -> Result<(), Reject> {
    if amount.is_zero() {
        return Ok(());
    }
    let owner = delta.node(node)?.owner;
    task.escrow = task.escrow.checked_sub(amount).ok_or(Reject::AmountOverflow)?;
    task.paid = task.paid.checked_add(amount).ok_or(Reject::AmountOverflow)?;
    bank::credit(delta, owner, amount)?;
    delta.emit(Event::Paid { task: task.id, node, owner, amount });
    Ok(())
}

fn refund_rest(delta: &mut Delta<'_>, task: &mut Task) -> Result<(), Reject> {
    let amount = task.escrow;
    if amount.is_zero() {
        return Ok(());
    }
    task.escrow = Amount::ZERO;
    task.refunded = task.refunded.checked_add(amount).ok_or(Reject::AmountOverflow)?;
    bank::credit(delta, task.requester, amount)?;
    delta.emit(Event::Refunded { task: task.id, requester: task.requester, amount });
    Ok(())
}

/// Frees the node a running task held.
fn leave_node(delta: &mut Delta<'_>, task: &Task) -> Result<(), Reject> {
    if let (TaskState::Running, Some(lease)) = (task.state, &task.lease) {
        let mut node = delta.node(lease.node)?;
        node.running = node.running.saturating_sub(1);
        delta.set_node(node);
    }
    Ok(())
}

/// Ends a task: refunds what is left in escrow and records the terminal state and reason.
fn finish(
    delta: &mut Delta<'_>,
    mut task: Task,
    state: TaskState,
    reason: Option<FailureReason>,
) -> Result<(), Reject> {
    assert!(state.is_terminal(), "finish takes a terminal state");
    leave_node(delta, &task)?;
    refund_rest(delta, &mut task)?;
    task.state = state;
    task.failure = reason;
    delta.emit(Event::TaskEnded { task: task.id, state, reason });
    delta.set_task(task);
    Ok(())
}

pub fn cancel(delta: &mut Delta<'_>, who: AccountId, id: TaskId) -> Result<(), Reject> {
    let mut task = requested_task(delta, &who, id)?;
    match task.state {
        TaskState::Queued => {}
        TaskState::Running => {
            let lease = task.lease.clone().ok_or(Reject::InvalidTaskState)?;
            let earned = cost(&task, &lease, delta.env.time_ms);
            pay(delta, &mut task, lease.node, earned)?;
        }
        _ => return Err(Reject::InvalidTaskState),
    }
    finish(delta, task, TaskState::Cancelled, Some(FailureReason::CancelledByRequester))
}

pub fn grant_keys(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    grants: Vec<KeyGrant>,
) -> Result<(), Reject> {
    let mut task = requested_task(delta, &who, id)?;
    if task.state.is_terminal() {
        return Err(Reject::InvalidTaskState);
    }
    task.key_grants.retain(|old| grants.iter().all(|new| new.node != old.node));
    task.key_grants.extend(grants);
    if task.key_grants.len() > crate::check::KEY_GRANTS_MAX {
        return Err(Reject::TooManyKeyGrants);
    }
    delta.set_task(task);
    Ok(())
}

/// Records the matcher's placement of a queued task on a node.
pub fn assign(delta: &mut Delta<'_>, id: TaskId, node_id: NodeId) -> Result<(), Reject> {
    let mut task = delta.task(id)?;
    let mut node = delta.node(node_id)?;
    if task.state != TaskState::Queued {
        return Err(Reject::InvalidTaskState);
    }
    let now = delta.env.time_ms;
    task.state = TaskState::Running;
    task.attempts += 1;
    task.lease = Some(Lease {
        node: node_id,
        price_per_hour: node.price_per_hour,
        started_ms: now,
        last_heartbeat_ms: now,
        progress_permille: 0,
    });
    node.running += 1;
    delta.emit(Event::TaskAssigned { task: id, node: node_id, attempt: task.attempts });
    delta.set_node(node);
    delta.set_task(task);
    Ok(())
}

pub fn heartbeat(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    node: NodeId,
    progress_permille: u16,
) -> Result<(), Reject> {
    let (mut task, mut lease) = leased_task(delta, &who, id, node)?;
    lease.last_heartbeat_ms = delta.env.time_ms;
    lease.progress_permille = progress_permille;
    task.lease = Some(lease);
    delta.set_task(task);
    delta.emit(Event::TaskProgress { task: id, node, progress_permille });
    Ok(())
}

pub fn commit_result(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    node: NodeId,
    result_cid: String,
    output_hash: Hash32,
) -> Result<(), Reject> {
    let (mut task, lease) = leased_task(delta, &who, id, node)?;
    let now = delta.env.time_ms;
    let earned = cost(&task, &lease, now);
    leave_node(delta, &task)?;
    task.state = TaskState::Verifying;
    task.result = Some(ResultCommit {
        node,
        result_cid: result_cid.clone(),
        output_hash,
        committed_ms: now,
        cost: earned,
    });
    delta.set_task(task);
    delta.emit(Event::ResultCommitted { task: id, node, result_cid });
    Ok(())
}

/// Pays the provider for an accepted result and completes the task.
fn complete(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    let result = task.result.clone().ok_or(Reject::InvalidTaskState)?;
    pay(delta, &mut task, result.node, result.cost)?;
    let mut node = delta.node(result.node)?;
    reputation::record(&mut node.reputation, |r| r.completed += 1);
    delta.set_node(node);
    finish(delta, task, TaskState::Completed, None)
}

pub fn accept(delta: &mut Delta<'_>, who: AccountId, id: TaskId) -> Result<(), Reject> {
    let task = requested_task(delta, &who, id)?;
    if task.state != TaskState::Verifying {
        return Err(Reject::InvalidTaskState);
    }
    complete(delta, task)
}

pub fn report_failure(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    node: NodeId,
    reason: FailureReason,
) -> Result<(), Reject> {
    let (mut task, lease) = leased_task(delta, &who, id, node)?;
    if reason.is_task_fault() {
        let earned = cost(&task, &lease, delta.env.time_ms);
        pay(delta, &mut task, node, earned)?;
        return finish(delta, task, TaskState::Failed, Some(reason));
    }
    let mut provider = delta.node(node)?;
    reputation::record(&mut provider.reputation, |r| r.failed += 1);
    delta.set_node(provider);
    requeue(delta, task, reason)
}

/// Takes a running task off its node and queues it for another one, or fails it when it has
/// used all its attempts. The node earns nothing for the attempt.
fn requeue(delta: &mut Delta<'_>, mut task: Task, reason: FailureReason) -> Result<(), Reject> {
    let lease = task.lease.clone().ok_or(Reject::InvalidTaskState)?;
    delta.emit(Event::TaskRequeued { task: task.id, node: lease.node, reason });
    if task.attempts >= delta.base.params.attempts_max {
        return finish(delta, task, TaskState::Failed, Some(FailureReason::AttemptsExhausted));
    }
    leave_node(delta, &task)?;
    if !task.excluded.contains(&lease.node) {
        task.excluded.push(lease.node);
    }
    task.lease = None;
    task.state = TaskState::Queued;
    delta.set_task(task);
    Ok(())
}

/// A running task whose lease deadline passed goes to another node; a verifying task whose
/// acceptance window closed is accepted. Anyone may trigger this; blocks also do it on their own.
pub fn settle_expired(delta: &mut Delta<'_>, id: TaskId) -> Result<(), Reject> {
    let task = delta.task(id)?;
    let now = delta.env.time_ms;
    if delta.base.lease_deadline(&task).is_some_and(|deadline| deadline <= now) {
        let lease = task.lease.clone().ok_or(Reject::InvalidTaskState)?;
        let mut node = delta.node(lease.node)?;
        reputation::record(&mut node.reputation, |r| r.expired += 1);
        delta.set_node(node);
        return requeue(delta, task, FailureReason::LeaseExpired);
    }
    if delta.base.acceptance_deadline(&task).is_some_and(|deadline| deadline <= now) {
        return complete(delta, task);
    }
    Err(Reject::LeaseNotExpired)
}

pub fn rate(delta: &mut Delta<'_>, who: AccountId, id: TaskId, stars: u8) -> Result<(), Reject> {
    let mut task = requested_task(delta, &who, id)?;
    if task.state != TaskState::Completed {
        return Err(Reject::InvalidTaskState);
    }
    if task.rating != 0 {
        return Err(Reject::AlreadyRated);
    }
    let node_id = task.result.as_ref().map(|r| r.node).ok_or(Reject::InvalidTaskState)?;
    task.rating = stars;
    let mut node = delta.node(node_id)?;
    reputation::record(&mut node.reputation, |r| {
        r.rating_sum += u64::from(stars);
        r.rating_count += 1;
    });
    delta.set_node(node);
    delta.set_task(task);
    delta.emit(Event::TaskRated { task: id, node: node_id, stars });
    Ok(())
}
