//! Escrow released per verified interval, and clawed back from a lease judged wrong.
//!
//! The design's settlement (VERIFICATION.md §4): "escrow is released per verified interval, the
//! rest on acceptance". Every running lease that does work — worker, replica, auditor, referee,
//! dispute committee member, under every verification policy — is paid on its first heartbeat at
//! least `release_interval_ms` (at most 60 s) after its last release, for the time since, capped
//! by its run's share (`market::cost`), while
//! - the node's capacity challenges vouch for it ([`vouches_for_interval`]): it passed a
//!   matrix challenge in the last two rounds and missed none since. A heartbeat
//!   only says that the lease is alive, which a provider doing nothing can say too; so while
//!   capacity challenges are off (the ledger's default) nothing is released per interval and
//!   the time is paid for a verified result only; and
//! - its owner's stake can still take the release back ([`backed`]): it covers the slash of
//!   everything the owner has at risk, every earlier release that could be clawed back, and this
//!   one.
//!
//! Otherwise the time waits for the commitment and is paid on acceptance. A committee member's
//! interval comes from the dispute's bond (which pays the committee's time), every other lease's
//! from the task's escrow.
//!
//! A release is final only once its lease can no longer be judged wrong. A lease overruled
//! (`audit-failed`, `minority`, `dispute-lost`, `known-answer-wrong`, a late reveal slashed like
//! the loser, `reveal-withheld`) has it clawed back from its owner's stake together with the slash
//! (`money::claw_back`, called by `penalty::penalize`), back into the escrow (or bond) it came from
//! while the task is open, to the requester once it has ended. So a caught cheater keeps nothing
//! it was prepaid and forfeits price + slash, as `verify::economics` assumes, and everyone else
//! is paid as if it had never been released. Leases that end with no verdict against them
//! (expired, provider error, reassigned, the task failed for its own reasons or was cancelled, a
//! late reveal cleared) keep their released intervals: the heartbeats and challenges were the
//! evidence of service. Acceptance pays each upheld lease `cost − released`, never twice.
//!
//! The stake backing a possible clawback stays put: `Index::clawback` (the releases of every
//! lease still at risk, per owner) is locked with the slashes (`staking::slash_locked`) and taken
//! off the headroom for new work (`State::headroom`), so with [`backed`] the stake covers every
//! slash and clawback at risk; only a capacity-challenge slash, which takes stake outside this
//! bookkeeping, can leave it short.

use crate::challenge::ChallengeStatus;
use crate::delta::Delta;
use crate::market;
use crate::money;
use crate::state::{Node, NodeStatus, Role, Task};
use aicpw_types::{AccountId, Amount, Reject};

/// Whether a node's capacity challenges vouch for its service now (the design's "passed
/// heartbeat and challenge window"): it is active and not frozen, has passed a matrix challenge
/// and missed none since, and its latest one, passed or still open, was issued within the last
/// two rounds (`2 × max(challenges.interval_ms, release_interval_ms)`), so the pass is current.
/// Heartbeats alone vouch for nothing: with capacity challenges off (the ledger's default) no
/// node is vouched for, and time is paid for a verified result only.
pub fn vouches_for_interval(delta: &Delta<'_>, node: &Node) -> bool {
    let params = &delta.base.params;
    let round = params.challenges.interval_ms.max(params.verification.release_interval_ms);
    let window = round.saturating_mul(2);
    let current = node.capacity.matrix.as_ref().is_some_and(|challenge| {
        let standing = !matches!(challenge.status, ChallengeStatus::Late | ChallengeStatus::Failed);
        standing && challenge.issued_ms.saturating_add(window) >= delta.env.time_ms
    });
    let active = node.status == NodeStatus::Active && !node.capacity.frozen;
    active && node.capacity.passed > 0 && node.capacity.misses == 0 && current
}

/// Whether the owner's stake and unbonding entries could still take `due` back if it were
/// released now, on top of everything they already back (`staking::slash_locked`: the slashes of
/// its leases at risk and the clawback of their releases). A release it could not take back would
/// let a cheater keep prepaid money when caught; an honest owner at the edge of its stake is paid
/// the interval on acceptance instead.
pub fn backed(delta: &Delta<'_>, owner: &AccountId, due: Amount) -> bool {
    let account = delta.account(owner);
    let held = account.staked.0.saturating_add(account.unbonding_total().0);
    let locked = crate::staking::slash_locked(delta, owner).0;
    locked.checked_add(due.0).is_some_and(|needed| held >= needed)
}

/// Pays running lease `index` of `task` for the time since its last release, once that is at
/// least `release_interval_ms` (see [`vouched`]).
pub(crate) fn interval(
    delta: &mut Delta<'_>,
    task: &mut Task,
    index: usize,
    now: u64,
) -> Result<(), Reject> {
    let since = task.leases[index].released_ms;
    if now.saturating_sub(since) < delta.base.params.verification.release_interval_ms {
        return Ok(());
    }
    vouched(delta, task, index, now)
}

/// Pays running lease `index` of `task` for the time since its last release if its node
/// [`vouches_for_interval`] and the release is [`backed`]. Time that does not qualify is paid by
/// a later release, or for a verified result, or never.
pub(crate) fn vouched(
    delta: &mut Delta<'_>,
    task: &mut Task,
    index: usize,
    now: u64,
) -> Result<(), Reject> {
    let lease = task.leases[index].clone();
    let node = delta.node(lease.node)?;
    let due = market::cost(task, &lease, now).saturating_sub(lease.released);
    if due.is_zero() || !vouches_for_interval(delta, &node) || !backed(delta, &node.owner, due) {
        return Ok(());
    }
    let paid = if lease.role == Role::Committee {
        let paid = money::pay_from_bond(delta, task, lease.node, due)?;
        if let Some(dispute) = task.dispute.as_mut() {
            dispute.released = dispute.released.checked_add(paid).ok_or(Reject::AmountOverflow)?;
        }
        paid
    } else {
        money::pay(delta, task, lease.node, due)?
    };
    let lease = &mut task.leases[index];
    lease.released = lease.released.checked_add(paid).ok_or(Reject::AmountOverflow)?;
    lease.released_ms = now;
    Ok(())
}
