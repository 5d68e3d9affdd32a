//! Bonded stake: bond, unbond with a delay, withdraw. Slashing is `money::slash`, called by the
//! ledger's own rules only.

use crate::delta::Delta;
use crate::event::Event;
use crate::state::{Unbonding, UNBONDING_ENTRIES_MAX};
use aicpw_types::{AccountId, Amount, Reject};

pub fn bond(delta: &mut Delta<'_>, who: AccountId, amount: Amount) -> Result<(), Reject> {
    let mut account = delta.account(&who);
    account.balance = account.balance.checked_sub(amount).ok_or(Reject::InsufficientBalance)?;
    account.staked = account.staked.checked_add(amount).ok_or(Reject::AmountOverflow)?;
    delta.set_account(who, account);
    delta.emit(Event::Bonded { account: who, amount });
    Ok(())
}

/// Stake that must stay bonded for the account's registered nodes.
pub fn stake_required(delta: &Delta<'_>, who: &AccountId) -> Amount {
    let nodes = delta.account(who).nodes;
    Amount(delta.base.params.node_stake_min.0.saturating_mul(u128::from(nodes)))
}

/// Stake held for what the account's leases may still cost before their verdict: the slashes of
/// those in flight (running, committed, awaiting acceptance) and of those withheld awaiting their
/// late verdict (`ledger::withheld`), plus the clawback of every interval released to them
/// (`ledger::release`). It may not leave (unbond, withdraw) before then, or a node that sees its
/// audit (or its late reveal window) going against it could take its stake out of reach before
/// the slash, and keep its prepaid intervals.
pub fn slash_locked(delta: &Delta<'_>, who: &AccountId) -> Amount {
    let index = &delta.base.index;
    let at_risk = index.at_risk.get(who).copied().unwrap_or(0);
    let clawback = index.clawback.get(who).copied().unwrap_or(0);
    let economics = &delta.base.params.verification.economics;
    let slashes = economics.slash(at_risk).unwrap_or(u128::MAX);
    Amount(slashes.saturating_add(clawback))
}

pub fn unbond(delta: &mut Delta<'_>, who: AccountId, amount: Amount) -> Result<(), Reject> {
    let required =
        Amount(stake_required(delta, &who).0.saturating_add(slash_locked(delta, &who).0));
    let mut account = delta.account(&who);
    let remaining = account.staked.checked_sub(amount).ok_or(Reject::InsufficientStake)?;
    if remaining < required || delta.env.time_ms < account.vote_locked_until_ms {
        return Err(Reject::StakeLocked);
    }
    if account.unbonding.len() >= UNBONDING_ENTRIES_MAX {
        return Err(Reject::UnbondingQueueFull);
    }
    let release_height = delta.env.height.saturating_add(delta.base.params.unbonding_blocks);
    account.staked = remaining;
    account.unbonding.push(Unbonding { amount, release_height });
    delta.set_account(who, account);
    delta.emit(Event::Unbonded { account: who, amount, release_height });
    Ok(())
}

pub fn withdraw(delta: &mut Delta<'_>, who: AccountId) -> Result<(), Reject> {
    let height = delta.env.height;
    let mut account = delta.account(&who);
    let (matured, waiting): (Vec<_>, Vec<_>) =
        account.unbonding.drain(..).partition(|u| u.release_height <= height);
    if matured.is_empty() {
        return Err(Reject::NothingToWithdraw);
    }
    // A slash takes stake, then unbonding entries: what stays must cover the pending ones.
    let staying = account.staked.0 + waiting.iter().map(|u| u.amount.0).sum::<u128>();
    if staying < slash_locked(delta, &who).0 {
        return Err(Reject::StakeLocked);
    }
    let amount = Amount(matured.iter().map(|u| u.amount.0).sum());
    account.unbonding = waiting;
    account.balance = account.balance.checked_add(amount).ok_or(Reject::AmountOverflow)?;
    delta.set_account(who, account);
    delta.emit(Event::Withdrawn { account: who, amount });
    Ok(())
}
