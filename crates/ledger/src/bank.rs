//! Balances and transfers. Tokens are created only at genesis and destroyed only by slashing.

use crate::delta::Delta;
use crate::event::Event;
use aicpw_types::{AccountId, Amount, Reject};

pub fn debit(delta: &mut Delta<'_>, id: AccountId, amount: Amount) -> Result<(), Reject> {
    let mut account = delta.account(&id);
    account.balance = account.balance.checked_sub(amount).ok_or(Reject::InsufficientBalance)?;
    delta.set_account(id, account);
    Ok(())
}

pub fn credit(delta: &mut Delta<'_>, id: AccountId, amount: Amount) -> Result<(), Reject> {
    let mut account = delta.account(&id);
    account.balance = account.balance.checked_add(amount).ok_or(Reject::AmountOverflow)?;
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
