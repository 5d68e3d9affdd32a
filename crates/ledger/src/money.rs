//! Money: the one place tokens move. The rules decide who is owed what and when (`market`,
//! `release`, `dispute`, `cancel`, `penalty`, `challenge`); only this module changes a balance,
//! a stake, an escrow, a dispute bond, the supply or the burned total.
//!
//! - Transfers and fees move balance between accounts.
//! - [`pay`] moves escrow to a lease holder's owner, [`pay_from_bond`] a dispute's bond to a
//!   committee member's, [`refund_rest`] what is left of the escrow to the requester,
//!   [`close_bond`] what is left of a dispute's bond to whoever the verdict gives it.
//! - [`claw_back`] takes what a lease proven wrong was released back from its owner's stake into
//!   the escrow or bond it came from (to the requester once the task has ended).
//! - [`slash`] takes a penalty from an owner's stake (then its unbonding entries) and splits it
//!   (`verify::SlashSplit`): the challengers' share in equal parts, the treasury's share, and the
//!   rest (every rounding remainder, and the challengers' share when there are none) burned. It
//!   emits the one `Penalized` event of every slash, task offence or capacity challenge.
//!
//! Every sum is checked: an overflow is a bug and comes back as `AmountOverflow`, never a
//! saturated amount. Conservation is checked at the end of every block ([`check`], called by
//! `end_block`) from running totals the state keeps as entries change ([`Totals`]): supply +
//! burned = genesis supply, and supply = every account's balance, stake and unbonding + every
//! task's escrow + every open dispute's bond, with each task's escrow equal to its budget less
//! what it paid and refunded (nothing once it ended). A block that breaks it is an error the
//! node refuses to commit: the chain halts rather than sign money that does not add up.

use crate::delta::Delta;
use crate::event::Event;
use crate::state::{Account, DisputeOutcome, Role, State, Task};
use aicpw_types::{AccountId, Amount, NodeId, Reject, TaskId};
use serde::Serialize;

/// A proven offence: the node is slashed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Offence {
    /// Lost an audit: the referee sided with the other party.
    AuditFailed,
    /// A replica in the minority of the quorum.
    Minority,
    /// Its result differs from the answer of a known-answer task.
    KnownAnswerWrong,
    /// A dispute committee found its result wrong.
    DisputeLost,
    /// Never opened a withheld commitment within its late reveal window (`ledger::withheld`).
    RevealWithheld,
    /// Answered a capacity challenge with a wrong tile or a malformed path (`ledger::challenge`).
    CapacityChallengeFailed,
}

fn add(a: Amount, b: Amount) -> Result<Amount, Reject> {
    a.checked_add(b).ok_or(Reject::AmountOverflow)
}

fn sub(a: Amount, b: Amount) -> Result<Amount, Reject> {
    a.checked_sub(b).ok_or(Reject::AmountOverflow)
}

pub fn debit(delta: &mut Delta<'_>, id: AccountId, amount: Amount) -> Result<(), Reject> {
    let mut account = delta.account(&id);
    account.balance = account.balance.checked_sub(amount).ok_or(Reject::InsufficientBalance)?;
    delta.set_account(id, account);
    Ok(())
}

pub fn credit(delta: &mut Delta<'_>, id: AccountId, amount: Amount) -> Result<(), Reject> {
    let mut account = delta.account(&id);
    account.balance = add(account.balance, amount)?;
    delta.set_account(id, account);
    Ok(())
}

pub fn transfer(
    delta: &mut Delta<'_>,
    from: AccountId,
    to: AccountId,
    amount: Amount,
) -> Result<(), Reject> {
    debit(delta, from, amount)?;
    credit(delta, to, amount)?;
    delta.emit(Event::Transferred { from, to, amount });
    Ok(())
}

/// Pays a transaction's fee from its signer to the block's proposer.
pub(crate) fn pay_fee(delta: &mut Delta<'_>, signer: AccountId, fee: Amount) -> Result<(), Reject> {
    debit(delta, signer, fee)?;
    credit(delta, delta.env.proposer, fee)
}

/// Pays the storage fee of the `entries` a transaction creates from its signer to the proposer.
pub(crate) fn pay_storage(
    delta: &mut Delta<'_>,
    signer: AccountId,
    entries: u128,
) -> Result<(), Reject> {
    let per_entry = delta.base.params.storage_fee_per_entry.0;
    let fee = Amount(per_entry.checked_mul(entries).ok_or(Reject::AmountOverflow)?);
    if fee.is_zero() {
        return Ok(());
    }
    debit(delta, signer, fee).map_err(|_| Reject::StorageFeeUnpaid)?;
    credit(delta, delta.env.proposer, fee)
}

/// Pays up to `amount` from the task's escrow to the node's owner; returns what was paid.
pub(crate) fn pay(
    delta: &mut Delta<'_>,
    task: &mut Task,
    node: NodeId,
    amount: Amount,
) -> Result<Amount, Reject> {
    let amount = amount.min(task.escrow);
    if amount.is_zero() {
        return Ok(amount);
    }
    let owner = delta.node(node)?.owner;
    task.escrow = sub(task.escrow, amount)?;
    task.paid = add(task.paid, amount)?;
    credit(delta, owner, amount)?;
    delta.emit(Event::Paid { task: task.id, node, owner, amount });
    Ok(amount)
}

/// Pays a committee member up to `amount` from the open dispute's bond; returns what was paid.
pub(crate) fn pay_from_bond(
    delta: &mut Delta<'_>,
    task: &mut Task,
    node: NodeId,
    amount: Amount,
) -> Result<Amount, Reject> {
    let Some(dispute) = task.dispute.as_mut() else { return Ok(Amount::ZERO) };
    let amount = amount.min(dispute.bond);
    if amount.is_zero() {
        return Ok(amount);
    }
    dispute.bond = sub(dispute.bond, amount)?;
    let owner = delta.node(node)?.owner;
    credit(delta, owner, amount)?;
    delta.emit(Event::Paid { task: task.id, node, owner, amount });
    Ok(amount)
}

/// Refunds what is left in the task's escrow to its requester.
pub(crate) fn refund_rest(delta: &mut Delta<'_>, task: &mut Task) -> Result<(), Reject> {
    let amount = task.escrow;
    if amount.is_zero() {
        return Ok(());
    }
    task.escrow = Amount::ZERO;
    task.refunded = add(task.refunded, amount)?;
    credit(delta, task.requester, amount)?;
    delta.emit(Event::Refunded { task: task.id, requester: task.requester, amount });
    Ok(())
}

/// Hands what is left of an open dispute's bond to `to` (the requester unless given) and closes
/// the dispute with `outcome`. Nothing happens without an open dispute.
pub(crate) fn close_bond(
    delta: &mut Delta<'_>,
    task: &mut Task,
    outcome: DisputeOutcome,
    to: Option<AccountId>,
) -> Result<(), Reject> {
    let Some(dispute) = task.dispute.as_mut().filter(|d| d.outcome == DisputeOutcome::Open) else {
        return Ok(());
    };
    let rest = std::mem::take(&mut dispute.bond);
    dispute.outcome = outcome;
    credit(delta, to.unwrap_or(task.requester), rest)?;
    delta.emit(Event::DisputeResolved { task: task.id, outcome, returned: rest });
    Ok(())
}

/// Takes up to `amount` from the account's bonded stake, then from its unbonding entries (so
/// unbonding cannot dodge a penalty), and returns what was taken; the caller puts every unit
/// somewhere.
fn take_stake(delta: &mut Delta<'_>, who: AccountId, amount: Amount) -> Result<Amount, Reject> {
    let mut account = delta.account(&who);
    let mut taken = account.staked.min(amount);
    account.staked = sub(account.staked, taken)?;
    for entry in account.unbonding.iter_mut().rev() {
        let take = entry.amount.min(sub(amount, taken)?);
        entry.amount = sub(entry.amount, take)?;
        taken = add(taken, take)?;
    }
    account.unbonding.retain(|u| !u.amount.is_zero());
    delta.set_account(who, account);
    Ok(taken)
}

/// Takes what lease `index` was released back from its owner's stake (then its unbonding
/// entries), because `offence` proved its result wrong, and returns it where it came from, as if
/// it had never been released: a committee member's to the open dispute's bond, every other
/// lease's to the open task's escrow (which pays the leases upheld and refunds the rest); once the
/// dispute or the task has ended, to the requester (counted as refunded). Returns what was taken:
/// less than released only where the stake is short (a capacity-challenge slash may have taken
/// what backed it).
pub(crate) fn claw_back(
    delta: &mut Delta<'_>,
    task: &mut Task,
    index: usize,
    owner: AccountId,
    offence: Offence,
) -> Result<Amount, Reject> {
    let (node, role, released) =
        (task.leases[index].node, task.leases[index].role, task.leases[index].released);
    if released.is_zero() {
        return Ok(Amount::ZERO);
    }
    let taken = take_stake(delta, owner, released)?;
    if taken.is_zero() {
        return Ok(taken);
    }
    let open = task.dispute.as_mut().filter(|d| d.outcome == DisputeOutcome::Open);
    match (role, open) {
        (Role::Committee, Some(dispute)) => {
            dispute.bond = add(dispute.bond, taken)?;
            dispute.released = sub(dispute.released, taken)?;
        }
        (Role::Committee, None) => {
            if let Some(dispute) = task.dispute.as_mut() {
                dispute.released = sub(dispute.released, taken)?;
            }
            credit(delta, task.requester, taken)?;
        }
        _ => {
            task.paid = sub(task.paid, taken)?;
            if task.state.is_terminal() {
                task.refunded = add(task.refunded, taken)?;
                credit(delta, task.requester, taken)?;
            } else {
                task.escrow = add(task.escrow, taken)?;
            }
        }
    }
    let lease = &mut task.leases[index];
    lease.released = sub(lease.released, taken)?;
    delta.emit(Event::ClawedBack { task: task.id, node, owner, amount: taken, offence });
    Ok(taken)
}

/// One slash: who pays, for what, and who proved it.
pub(crate) struct Slash<'a> {
    /// The task whose result proved the offence; none for a capacity challenge.
    pub task: Option<TaskId>,
    pub node: NodeId,
    pub owner: AccountId,
    pub offence: Offence,
    pub amount: Amount,
    /// Paid the challengers' share in equal parts; none: the ledger itself proved it, and the
    /// share is burned.
    pub challengers: &'a [AccountId],
}

/// Takes up to `slash.amount` from the owner's stake (then its unbonding entries), pays the
/// challengers' and the treasury's shares, burns the rest and emits `Penalized`. Returns what was
/// taken.
pub(crate) fn slash(delta: &mut Delta<'_>, slash: Slash<'_>) -> Result<Amount, Reject> {
    let params = &delta.base.params.verification;
    let (treasury, split) = (params.treasury, params.economics.split);
    let taken = take_stake(delta, slash.owner, slash.amount)?;
    let shares = split.split(taken.0).map_err(|_| Reject::AmountOverflow)?;
    let count = slash.challengers.len() as u128;
    let each = shares.challenger.checked_div(count).unwrap_or(0);
    let paid_out = each.checked_mul(count).ok_or(Reject::AmountOverflow)?;
    let burn = add(Amount(shares.burn), sub(Amount(shares.challenger), Amount(paid_out))?)?;
    for challenger in slash.challengers {
        credit(delta, *challenger, Amount(each))?;
    }
    credit(delta, treasury, Amount(shares.treasury))?;
    let mut meta = delta.meta();
    meta.supply = sub(meta.supply, burn)?;
    meta.burned = add(meta.burned, burn)?;
    delta.set_meta(meta);
    delta.emit(Event::Penalized {
        task: slash.task,
        node: slash.node,
        owner: slash.owner,
        offence: slash.offence,
        amount: taken,
        burned: burn,
        challengers: slash.challengers.to_vec(),
        treasury: Amount(shares.treasury),
    });
    Ok(taken)
}

/// Where the supply sits, kept up to date by `State::commit` from each entry's old and new value
/// (so the end-of-block check costs nothing per entry it did not change), and the first entry
/// found inconsistent.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Σ balance + staked + unbonding over accounts.
    pub held: u128,
    /// Σ escrow over tasks.
    pub escrow: u128,
    /// Σ bonds of open disputes.
    pub bonds: u128,
    pub broken: Option<String>,
}

fn holding(account: &Account) -> Option<u128> {
    let unbonding =
        account.unbonding.iter().try_fold(0u128, |sum, entry| sum.checked_add(entry.amount.0))?;
    account.balance.0.checked_add(account.staked.0)?.checked_add(unbonding)
}

impl Totals {
    fn fail(&mut self, what: String) {
        self.broken.get_or_insert(what);
    }

    fn shift(total: u128, old: u128, new: u128) -> Option<u128> {
        total.checked_sub(old)?.checked_add(new)
    }

    /// An account entry changed from `old` to `new` (`None`: absent).
    pub(crate) fn account(&mut self, id: &AccountId, old: Option<&Account>, new: Option<&Account>) {
        let old = old.map_or(Some(0), holding);
        let new = new.map_or(Some(0), holding);
        match (old, new) {
            (Some(old), Some(new)) => match Self::shift(self.held, old, new) {
                Some(held) => self.held = held,
                None => self.fail("the sum of account holdings overflowed".into()),
            },
            _ => self.fail(format!("account {id} holds more than fits in an amount")),
        }
    }

    /// A task entry changed from `old` to `new` (`None`: absent); checks the new one's escrow.
    pub(crate) fn task(&mut self, old: Option<&Task>, new: Option<&Task>) {
        if let Some(task) = new {
            let remaining = task
                .terms
                .budget
                .0
                .checked_sub(task.paid.0)
                .and_then(|rest| rest.checked_sub(task.refunded.0));
            if remaining != Some(task.escrow.0) {
                self.fail(format!(
                    "task {} escrow is not its budget less paid and refunded",
                    task.id
                ));
            }
            if task.state.is_terminal() && !(task.escrow.is_zero() && task.bond_held().is_zero()) {
                self.fail(format!("task {} ended holding escrow or a bond", task.id));
            }
        }
        let escrow = |t: Option<&Task>| t.map_or(0, |t| t.escrow.0);
        let bond = |t: Option<&Task>| t.map_or(0, |t| t.bond_held().0);
        match (
            Self::shift(self.escrow, escrow(old), escrow(new)),
            Self::shift(self.bonds, bond(old), bond(new)),
        ) {
            (Some(escrow), Some(bonds)) => (self.escrow, self.bonds) = (escrow, bonds),
            _ => self.fail("the sum of escrow or bonds overflowed".into()),
        }
    }
}

/// Conservation does not hold: a bug in a rule. The block that broke it must not be committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("money is not conserved: {0}")]
pub struct Violation(pub String);

/// Checks conservation from the running totals: no entry found inconsistent, supply + burned =
/// genesis supply, and supply = accounts + escrow + open dispute bonds.
pub fn check(state: &State) -> Result<(), Violation> {
    let totals = &state.index.money;
    if let Some(broken) = &totals.broken {
        return Err(Violation(broken.clone()));
    }
    let meta = &state.meta;
    if meta.supply.0.checked_add(meta.burned.0) != Some(meta.genesis_supply.0) {
        return Err(Violation(format!(
            "supply {} + burned {} != genesis supply {}",
            meta.supply, meta.burned, meta.genesis_supply
        )));
    }
    let sum = totals.held.checked_add(totals.escrow).and_then(|s| s.checked_add(totals.bonds));
    if sum != Some(meta.supply.0) {
        return Err(Violation(format!(
            "supply {} != accounts {} + escrow {} + bonds {}",
            meta.supply, totals.held, totals.escrow, totals.bonds
        )));
    }
    Ok(())
}
