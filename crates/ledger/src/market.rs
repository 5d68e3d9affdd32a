//! The market: tasks with budgets in escrow, leases, heartbeats, settlement, refunds and
//! reassignment. Every task ends `completed`, `failed` or `cancelled`, with a reason. How results
//! are committed, revealed and judged is `verdict`'s business; disputes and known answers are
//! `dispute`'s. The tokens move in `money`.
//!
//! Payment rule: a lease holder earns its price (fixed when it took the lease) for the time from
//! placement to its commitment, capped by its run's share of the budget. Every running lease, of
//! every policy and role, is paid per interval of at most 60 s that its capacity challenges vouch
//! for (`release`; heartbeats alone vouch for nothing); the rest is paid when the task completes, and only if its result was upheld. A
//! lease whose result is later judged wrong has its released intervals clawed back with the slash;
//! one that ends with no verdict against it (expired, provider error, reassigned, the task failed
//! or was cancelled) keeps them and gets nothing more. A failure caused by the task itself
//! (limits, a non-zero exit) ends an unverified task and pays only the time its challenges
//! vouch for: the provider's report proves no work. The requester gets
//! back whatever nobody earned. Cancelling is `cancel`'s business: it ends the work at once, but
//! waits for the verdict on results already revealed against each other.

use crate::delta::Delta;
use crate::event::Event;
use crate::money;
use crate::penalty::{self, Fault};
use crate::state::{InputClaim, Lease, Role, Round, Task, Verdict};
use crate::verdict;
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{AccountId, Amount, Hash32, NodeId, Reject, TaskId, TaskState, TaskTerms};

pub const MS_PER_HOUR: u128 = 3_600_000;
/// Nodes re-executing a disputed result.
pub const COMMITTEE_SIZE: u8 = 2;

/// Executions a verification policy may need: worker, auditor and referee; or the `k` replicas.
pub fn runs_max(verification: Verification) -> u128 {
    match verification {
        Verification::Spot | Verification::Audit => 3,
        Verification::Replicas(k) => u128::from(k.max(1)),
    }
}

/// Leases the matcher places to start a task's work.
pub fn seats_for_work(verification: Verification) -> u8 {
    match verification {
        Verification::Replicas(k) => k.max(1),
        _ => 1,
    }
}

/// What one run of the task is worth at `price_per_hour`: price × time limit, rounded up.
pub fn run_price(price_per_hour: Amount, terms: &TaskTerms) -> Amount {
    let total = price_per_hour.0.saturating_mul(u128::from(terms.time_limit_secs) * 1000);
    Amount(total.div_ceil(MS_PER_HOUR))
}

/// The least budget: every execution the policy may need, each for the whole time limit at the
/// maximum price. What is not used is refunded.
pub fn budget_min(terms: &TaskTerms) -> Amount {
    let run = run_price(terms.max_price_per_hour, terms);
    Amount(run.0.saturating_mul(runs_max(terms.verification)))
}

/// The least dispute bond: the committee's runs at the task's maximum price.
pub fn dispute_bond_min(terms: &TaskTerms) -> Amount {
    let run = run_price(terms.max_price_per_hour, terms);
    Amount(run.0.saturating_mul(u128::from(COMMITTEE_SIZE)))
}

pub fn submit(
    delta: &mut Delta<'_>,
    requester: AccountId,
    terms: TaskTerms,
    answer_commitment: Hash32,
) -> Result<TaskId, Reject> {
    if terms.budget < budget_min(&terms) {
        return Err(Reject::BudgetTooLow);
    }
    if delta.base.index.queued.len() >= delta.base.params.tasks_queued_max as usize {
        return Err(Reject::TasksPendingFull);
    }
    money::debit(delta, requester, terms.budget)?;
    let mut meta = delta.meta();
    let id = TaskId(meta.next_task);
    meta.next_task += 1;
    delta.set_meta(meta);
    let (budget, now) = (terms.budget, delta.env.time_ms);
    delta.set_task(Task {
        id,
        requester,
        escrow: budget,
        seats: seats_for_work(terms.verification),
        terms,
        key_grants: Vec::new(),
        state: TaskState::Queued,
        paid: Amount::ZERO,
        refunded: Amount::ZERO,
        attempts: 0,
        leases: Vec::new(),
        excluded: Vec::new(),
        result: None,
        failure: None,
        submitted_ms: now,
        rating: 0,
        round: Round::Work,
        seats_since_ms: now,
        reveal_open_ms: None,
        answer_commitment,
        dispute: None,
        seat_draw: None,
        cancel_requested_ms: None,
        ended_ms: 0,
        input_claims: Vec::new(),
    });
    delta.emit(Event::TaskSubmitted { task: id, requester, budget });
    Ok(id)
}

pub(crate) fn requested_task(
    delta: &Delta<'_>,
    who: &AccountId,
    id: TaskId,
) -> Result<Task, Reject> {
    let task = delta.task(id)?;
    if task.requester != *who {
        return Err(Reject::NotTaskRequester);
    }
    Ok(task)
}

/// The open task and the index of the current-round lease `node` (owned by `who`) holds in it.
pub(crate) fn leased(
    delta: &Delta<'_>,
    who: &AccountId,
    id: TaskId,
    node: NodeId,
) -> Result<(Task, usize), Reject> {
    let task = delta.task(id)?;
    let owner = delta.node(node)?.owner;
    match task.pending_lease(node) {
        Some(index) if owner == *who && !task.state.is_terminal() => Ok((task, index)),
        _ => Err(Reject::NotAssignedProvider),
    }
}

/// Like [`leased`], for a lease that has not committed yet.
pub(crate) fn running_lease(
    delta: &Delta<'_>,
    who: &AccountId,
    id: TaskId,
    node: NodeId,
) -> Result<(Task, usize), Reject> {
    let (task, index) = leased(delta, who, id, node)?;
    if !task.leases[index].is_running() {
        return Err(Reject::AlreadyCommitted);
    }
    Ok((task, index))
}

/// The most one lease may earn: its run's share of the budget (of the bond as it was before any
/// member's interval was released from it, for a committee).
fn run_cap(task: &Task, role: Role) -> Amount {
    match role {
        Role::Committee => Amount(task.committee_bond().0 / u128::from(COMMITTEE_SIZE)),
        _ => Amount(task.terms.budget.0 / runs_max(task.terms.verification)),
    }
}

/// A lease's earnings for holding it until `now`, rounded up, capped by its price for the task's
/// time limit and by its run's share. The grace after the limit is for settling, not for pay: a
/// lease paid for it would earn more than its slash's basis (`run_price` at the lease's price),
/// and a forger holding its lease to the end of the grace would profit at the audit floor.
pub fn cost(task: &Task, lease: &Lease, now: u64) -> Amount {
    let elapsed = u128::from(now.saturating_sub(lease.started_ms));
    let earned = lease.price_per_hour.0.saturating_mul(elapsed).div_ceil(MS_PER_HOUR);
    let limit = run_price(lease.price_per_hour, &task.terms);
    Amount(earned).min(limit).min(run_cap(task, lease.role))
}

/// A lease stopped running on its node (committed, dropped, or its task ended).
pub(crate) fn leave_node(delta: &mut Delta<'_>, node: NodeId) -> Result<(), Reject> {
    let mut node = delta.node(node)?;
    node.running = node.running.saturating_sub(1);
    delta.set_node(node);
    Ok(())
}

/// Ends a task: frees its running leases, refunds what is left in escrow (and an open dispute's
/// bond), and records the terminal state and reason.
pub(crate) fn finish(
    delta: &mut Delta<'_>,
    mut task: Task,
    state: TaskState,
    reason: Option<FailureReason>,
) -> Result<(), Reject> {
    assert!(state.is_terminal(), "finish takes a terminal state");
    // A cancel that waited for a verdict ends the task cancelled however its judgement ends
    // without one (no majority, no seat in time): the requester asked for it to end.
    let (state, reason) = if task.cancel_requested() {
        (TaskState::Cancelled, Some(FailureReason::CancelledByRequester))
    } else {
        (state, reason)
    };
    for node in task.leases.iter().filter(|l| l.is_running()).map(|l| l.node).collect::<Vec<_>>() {
        leave_node(delta, node)?;
    }
    money::refund_rest(delta, &mut task)?;
    crate::dispute::return_bond(delta, &mut task)?;
    task.state = state;
    task.failure = reason;
    task.seats = 0;
    task.ended_ms = delta.env.time_ms;
    delta.emit(Event::TaskEnded { task: task.id, state, reason });
    // Withheld leases opened late waited for the result the task ends with.
    crate::withheld::judge_opened(delta, &mut task)?;
    delta.set_task(task);
    Ok(())
}

/// The requester grants the content key to nodes placed on its task: only to a node holding an
/// open lease of it (`GrantWithoutLease` 545 otherwise), so inputs are readable by the nodes that
/// run or judge the task and by no other. A lease waits `grant_wait_ms` for its grant
/// (`verdict::expire`).
pub fn grant_keys(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    grants: Vec<KeyGrant>,
) -> Result<(), Reject> {
    let mut task = requested_task(delta, &who, id)?;
    if task.state.is_terminal() || !task.terms.encrypted {
        return Err(Reject::InvalidTaskState);
    }
    let leased = |node: NodeId| task.leases.iter().any(|l| l.node == node && l.is_running());
    if grants.iter().any(|g| !leased(g.node)) {
        return Err(Reject::GrantWithoutLease);
    }
    task.key_grants.retain(|old| grants.iter().all(|new| new.node != old.node));
    let granted: Vec<NodeId> = grants.iter().map(|g| g.node).collect();
    task.key_grants.extend(grants);
    if task.key_grants.len() > crate::check::KEY_GRANTS_MAX {
        return Err(Reject::TooManyKeyGrants);
    }
    delta.set_task(task);
    for node in granted {
        delta.emit(Event::KeyGranted { task: id, node });
    }
    Ok(())
}

/// Whether a lease still runs work on an encrypted task without its node's key grant.
pub(crate) fn awaits_grant(task: &Task, lease: &Lease) -> bool {
    task.terms.encrypted
        && lease.is_running()
        && !task.key_grants.iter().any(|g| g.node == lease.node)
}

/// The role of the next lease placed for a task's current round.
fn seat_role(task: &Task) -> Option<Role> {
    match (task.round, task.terms.verification) {
        (Round::Work, Verification::Replicas(_)) => Some(Role::Replica),
        (Round::Work, _) => Some(Role::Worker),
        (Round::Audit, _) => Some(Role::Auditor),
        (Round::Referee, _) => Some(Role::Referee),
        (Round::Dispute, _) => Some(Role::Committee),
        (Round::Drawing, _) => None,
    }
}

/// Records the matcher's placement of one of a task's open seats on a node.
pub fn assign(delta: &mut Delta<'_>, id: TaskId, node_id: NodeId) -> Result<(), Reject> {
    let mut task = delta.task(id)?;
    let mut node = delta.node(node_id)?;
    let role = seat_role(&task).ok_or(Reject::InvalidTaskState)?;
    if task.seats == 0 || task.state.is_terminal() || task.leases.iter().any(|l| l.node == node_id)
    {
        return Err(Reject::InvalidTaskState);
    }
    let now = delta.env.time_ms;
    if task.state == TaskState::Queued {
        task.state = TaskState::Running;
    }
    if matches!(role, Role::Worker | Role::Replica) {
        task.attempts += 1;
    }
    task.seats -= 1;
    task.seat_draw = None;
    task.leases.push(Lease {
        node: node_id,
        role,
        price_per_hour: node.price_per_hour,
        started_ms: now,
        last_heartbeat_ms: now,
        progress_permille: 0,
        released: Amount::ZERO,
        released_ms: now,
        commitment: None,
        tag: Hash32::default(),
        committed_ms: 0,
        committed_height: 0,
        cost: Amount::ZERO,
        reveal: None,
        verdict: Verdict::Pending,
        withheld_until_ms: None,
    });
    node.running += 1;
    delta.emit(Event::TaskAssigned { task: id, node: node_id, attempt: task.attempts, role });
    delta.set_node(node);
    delta.set_task(task);
    Ok(())
}

/// Freezes the candidates a task's random seats are drawn from in the next block.
pub fn freeze_seats(
    delta: &mut Delta<'_>,
    id: TaskId,
    candidates: Vec<NodeId>,
) -> Result<(), Reject> {
    let mut task = delta.task(id)?;
    if task.seats == 0 || task.state.is_terminal() {
        return Err(Reject::InvalidTaskState);
    }
    task.seat_draw = Some(crate::state::SeatDraw { height: delta.env.height, candidates });
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
    let (mut task, index) = running_lease(delta, &who, id, node)?;
    let now = delta.env.time_ms;
    let lease = &mut task.leases[index];
    lease.last_heartbeat_ms = now;
    lease.progress_permille = progress_permille;
    crate::release::interval(delta, &mut task, index, now)?;
    delta.set_task(task);
    delta.emit(Event::TaskProgress { task: id, node, progress_permille });
    Ok(())
}

/// Pays every upheld lease and completes the task.
pub(crate) fn complete(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    for index in 0..task.leases.len() {
        let lease = task.leases[index].clone();
        if lease.verdict != Verdict::Upheld {
            continue;
        }
        money::pay(delta, &mut task, lease.node, lease.cost.saturating_sub(lease.released))?;
        task.leases[index].verdict = Verdict::Paid;
        let mut node = delta.node(lease.node)?;
        crate::reputation::record(&mut node.reputation, |r| r.completed += 1);
        delta.set_node(node);
    }
    finish(delta, task, TaskState::Completed, None)
}

pub fn accept(delta: &mut Delta<'_>, who: AccountId, id: TaskId) -> Result<(), Reject> {
    let task = requested_task(delta, &who, id)?;
    if task.state != TaskState::Verifying {
        return Err(Reject::InvalidTaskState);
    }
    if !task.bond_held().is_zero() {
        return Err(Reject::DisputeOpen);
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
    let (mut task, index) = running_lease(delta, &who, id, node)?;
    if reason == FailureReason::InputsUnavailable {
        return claim_inputs(delta, task, index, who);
    }
    let lease = task.leases[index].clone();
    let spot_worker = task.terms.verification == Verification::Spot && lease.role == Role::Worker;
    if reason.is_task_fault() && spot_worker {
        // The provider's word that the task failed is no evidence of work, and neither are its
        // heartbeats: it keeps what was released and gets the time its capacity challenges vouch
        // for since, nothing more. The rest is refunded.
        let now = delta.env.time_ms;
        crate::release::vouched(delta, &mut task, index, now)?;
        leave_node(delta, node)?;
        task.leases[index].verdict = Verdict::Paid;
        return finish(delta, task, TaskState::Failed, Some(reason));
    }
    // Under audits or replicas one node's word that the task is at fault cannot end it for the others:
    // the seat goes to another node, without blame for a task fault.
    if !reason.is_task_fault() {
        penalty::fault(delta, node, Fault::Failed)?;
    }
    verdict::drop_lease(delta, task, index, reason)
}

/// A provider's claim that the task's inputs cannot be used: missing from the store, no key grant
/// or one that does not open, a malformed bundle or manifest. The requester causes these and can
/// aim them at one node, and the ledger cannot check them (it holds neither the store nor the
/// node's key), so one claim moves no reputation and no money: the lease ends without blame on
/// either side (keeping its released intervals), the node is excluded and the seat placed again
/// (attempts bounded as for any dropped lease). A claim by a node of a second owner, before any
/// lease of the task committed a result (which would show the inputs usable), confirms it: the
/// task fails `inputs-unavailable` and the requester pays each claimant its time, at most one
/// release interval (what fetching and opening inputs takes), and gets the rest back.
fn claim_inputs(
    delta: &mut Delta<'_>,
    mut task: Task,
    index: usize,
    owner: AccountId,
) -> Result<(), Reject> {
    let lease = task.leases[index].clone();
    let now = delta.env.time_ms;
    let interval = delta.base.params.verification.release_interval_ms;
    let earned = cost(&task, &lease, now.min(lease.started_ms.saturating_add(interval)))
        .saturating_sub(lease.released);
    if task.leases.iter().any(|l| l.commitment.is_some()) {
        return verdict::drop_lease(delta, task, index, FailureReason::InputsUnavailable);
    }
    // Before any commitment only work seats are placed, so the claims are bounded by attempts.
    let confirmed = task.input_claims.iter().any(|c| c.owner != owner);
    task.input_claims.push(InputClaim { node: lease.node, owner, pay: earned });
    if !confirmed {
        return verdict::drop_lease(delta, task, index, FailureReason::InputsUnavailable);
    }
    for claim in task.input_claims.clone() {
        money::pay(delta, &mut task, claim.node, claim.pay)?;
    }
    finish(delta, task, TaskState::Failed, Some(FailureReason::InputsUnavailable))
}

/// Whatever in a task is due now: a withheld lease's closed late reveal window (slashed), an
/// expired lease or reveal window, an unfilled verification seat, or a closed acceptance window
/// (accepted). Anyone may trigger this; blocks also do it.
pub fn settle_expired(delta: &mut Delta<'_>, id: TaskId) -> Result<(), Reject> {
    let now = delta.env.time_ms;
    let late = crate::withheld::deadline(&delta.task(id)?).is_some_and(|d| d <= now);
    if late {
        crate::withheld::expire(delta, id)?;
    }
    let task = delta.task(id)?;
    if delta.base.lease_deadline(&task).is_some_and(|deadline| deadline <= now) {
        return verdict::expire(delta, id);
    }
    if delta.base.acceptance_deadline(&task).is_some_and(|deadline| deadline <= now) {
        return complete(delta, task);
    }
    if late {
        return Ok(());
    }
    Err(Reject::LeaseNotExpired)
}

/// A rating's weight: 1 + the rater's bonded stake in `rating_stake_unit`s, bounded.
pub fn rating_weight(delta: &Delta<'_>, rater: &AccountId) -> u64 {
    let params = &delta.base.params.verification;
    let units = delta.account(rater).staked.0 / params.rating_stake_unit.0.max(1);
    let max = params.rating_weight_max.max(1);
    1 + u64::try_from(units).unwrap_or(u64::MAX).min(max - 1)
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
    let weight = rating_weight(delta, &who);
    task.rating = stars;
    let mut node = delta.node(node_id)?;
    crate::reputation::record(&mut node.reputation, |r| {
        r.rating_sum = r.rating_sum.saturating_add(u64::from(stars) * weight);
        r.rating_weight = r.rating_weight.saturating_add(weight);
        r.rating_count += 1;
    });
    delta.set_node(node);
    delta.set_task(task);
    delta.emit(Event::TaskRated { task: id, node: node_id, stars, weight });
    Ok(())
}
