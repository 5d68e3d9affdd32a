//! The economics of cheating: parameters under which cheating does not pay, and slashing.
//!
//! A provider that skips the work saves `savings` and may gain an outside `benefit` (e.g. from a
//! corrupted result). It is caught with probability at least `p` (the audit floor) and then
//! forfeits the `price` and a `slash`. Cheating pays when `savings + benefit > p·(price + slash)`,
//! so a slash of at least `(savings + benefit)/p - price` removes the incentive: with `p = 5%` and
//! `savings = 0.8·price`, `slash ≥ 15·price`; with `p = 10%`, `slash ≥ 7·price`. This assumes an
//! audited cheat cannot dodge the slash by keeping its commitment closed: the ledger slashes a
//! reveal withheld past its late reveal window as it slashes a lost audit (`ledger::withheld`).
//!
//! It also assumes a caught cheat forfeits the *whole* price. The ledger pays every lease per
//! verified interval while it runs (`ledger::release`), so part of the price may be in the
//! cheat's hands before the audit; a caught cheat that kept it would forfeit only `price − kept`,
//! and cheating pays when `savings + benefit > p·(price − kept + slash)`
//! ([`cheating_is_unprofitable_keeping`]): with the defaults and everything prepaid, a cheat
//! saving the whole price breaks even. So the ledger claws the released money back from the
//! stake together with the slash (`kept = 0`) and keeps the stake backing that clawback.
//!
//! Defaults: audit floor 5%, slash 20× the task price, so `p·(price + slash) = 1.05·price`: cheating
//! is a loss for savings up to 100% of the price plus an outside benefit under 5% of it. All
//! amounts are `u128` base units; arithmetic is checked and an overflow is never read as "safe".

use serde::{Deserialize, Serialize};

use crate::audit::PPM;
use crate::VerifyError;

/// One in basis points.
pub const BPS: u32 = 10_000;
/// Largest slash multiple a parameter set may use.
pub const SLASH_MULTIPLE_MAX: u32 = 1_000;

/// How a slashed amount is divided, in basis points summing to [`BPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashSplit {
    /// Destroyed; also receives every rounding remainder.
    pub burn_bps: u32,
    /// Paid to whoever proved the misbehaviour (auditor, challenger, validator).
    pub challenger_bps: u32,
    /// Paid to the network treasury.
    pub treasury_bps: u32,
}

/// The parts of one slashed amount; they always sum to the amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashShares {
    pub burn: u128,
    pub challenger: u128,
    pub treasury: u128,
}

/// The published economic parameters of verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EconomicParams {
    /// The audit floor `p` (same as [`crate::AuditPolicy::rate_min_ppm`]).
    pub audit_rate_min_ppm: u32,
    /// Slash for a failed audit, as a multiple of the task's price.
    pub slash_multiple_of_price: u32,
    /// Savings of the worst cheat the parameters must deter, in basis points of the price.
    pub savings_max_bps: u32,
    /// Outside benefit the parameters must deter on top, in basis points of the price.
    pub benefit_max_bps: u32,
    /// Division of slashed stake.
    pub split: SlashSplit,
}

impl Default for EconomicParams {
    fn default() -> Self {
        Self {
            audit_rate_min_ppm: 50_000,
            slash_multiple_of_price: 20,
            savings_max_bps: BPS,
            benefit_max_bps: 0,
            split: SlashSplit { burn_bps: 5_000, challenger_bps: 3_000, treasury_bps: 2_000 },
        }
    }
}

/// Reference price for the scale-free checks of [`EconomicParams::validate`].
const PRICE_REFERENCE: u128 = 1_000_000_000;

impl EconomicParams {
    /// Checks ranges and that the worst cheat the parameters name is unprofitable.
    pub fn validate(&self) -> Result<(), VerifyError> {
        if self.audit_rate_min_ppm == 0 || self.audit_rate_min_ppm > PPM {
            return Err(VerifyError::ParamsInvalid("audit floor must be in 1..=1_000_000 ppm"));
        }
        if self.slash_multiple_of_price == 0 || self.slash_multiple_of_price > SLASH_MULTIPLE_MAX {
            return Err(VerifyError::ParamsInvalid("slash multiple must be in 1..=1000"));
        }
        self.split.validate()?;
        let savings = PRICE_REFERENCE * u128::from(self.savings_max_bps) / u128::from(BPS);
        let benefit = PRICE_REFERENCE * u128::from(self.benefit_max_bps) / u128::from(BPS);
        if !cheating_is_unprofitable(self, PRICE_REFERENCE, savings, benefit) {
            return Err(VerifyError::ParamsInvalid("the named worst cheat would be profitable"));
        }
        Ok(())
    }

    /// The slash for a failed audit of a task at `price`.
    pub fn slash(&self, price: u128) -> Result<u128, VerifyError> {
        price.checked_mul(u128::from(self.slash_multiple_of_price)).ok_or(VerifyError::Overflow)
    }
}

impl SlashSplit {
    /// Checks that the shares sum to [`BPS`].
    pub fn validate(&self) -> Result<(), VerifyError> {
        let sum = u64::from(self.burn_bps)
            + u64::from(self.challenger_bps)
            + u64::from(self.treasury_bps);
        if sum != u64::from(BPS) {
            return Err(VerifyError::ParamsInvalid("slash split must sum to 10000 bps"));
        }
        Ok(())
    }

    /// Splits `amount` with no loss: challenger and treasury are rounded down, burn takes the rest.
    pub fn split(&self, amount: u128) -> Result<SlashShares, VerifyError> {
        self.validate()?;
        let share = |bps: u32| {
            let (whole, part) = (amount / u128::from(BPS), amount % u128::from(BPS));
            whole * u128::from(bps) + part * u128::from(bps) / u128::from(BPS)
        };
        let (challenger, treasury) = (share(self.challenger_bps), share(self.treasury_bps));
        Ok(SlashShares { burn: amount - challenger - treasury, challenger, treasury })
    }
}

/// Whether `savings + benefit < p·(price + slash)` holds with `p` the audit floor and the slash
/// the parameters impose at this price: a caught cheat forfeits the whole price, every interval
/// released to it clawed back. `false` when the numbers overflow `u128` (unprovable).
pub fn cheating_is_unprofitable(
    params: &EconomicParams,
    price: u128,
    savings: u128,
    benefit: u128,
) -> bool {
    cheating_is_unprofitable_keeping(params, price, 0, savings, benefit)
}

/// Whether `savings + benefit < p·(price − kept + slash)` holds: as
/// [`cheating_is_unprofitable`] for a caught cheat that keeps `kept` (at most `price`) of what
/// it was prepaid per interval, the price being the honest provider's pay either way. `false`
/// when the numbers overflow `u128` or `kept` exceeds the price.
pub fn cheating_is_unprofitable_keeping(
    params: &EconomicParams,
    price: u128,
    kept: u128,
    savings: u128,
    benefit: u128,
) -> bool {
    let gain = savings.checked_add(benefit).and_then(|gain| gain.checked_mul(u128::from(PPM)));
    let loss = params
        .slash(price)
        .ok()
        .and_then(|slash| slash.checked_add(price.checked_sub(kept)?))
        .and_then(|forfeit| forfeit.checked_mul(u128::from(params.audit_rate_min_ppm)));
    matches!((gain, loss), (Some(gain), Some(loss)) if gain < loss)
}

/// The smallest slash at which cheating no longer pays: `⌈(savings + benefit)/p⌉ - price`, zero
/// if the price alone deters. At exactly this slash cheating breaks even; any more makes it a loss.
pub fn slash_min(
    price: u128,
    savings: u128,
    benefit: u128,
    p_ppm: u32,
) -> Result<u128, VerifyError> {
    if p_ppm == 0 || p_ppm > PPM {
        return Err(VerifyError::ParamsInvalid("audit probability must be in 1..=1_000_000 ppm"));
    }
    let gain = savings.checked_add(benefit).ok_or(VerifyError::Overflow)?;
    let scaled = gain.checked_mul(u128::from(PPM)).ok_or(VerifyError::Overflow)?;
    Ok(scaled.div_ceil(u128::from(p_ppm)).saturating_sub(price))
}

/// The most work, by total price in base units, a provider may hold unaudited at once.
///
/// After one failed audit every task in flight is audited (the streak resets), and each failure
/// costs `slash_multiple × price`. For that slash to be collectable the stake must cover it on all
/// the work in flight: `stake ≥ slash_multiple × in_flight`.
pub fn unaudited_work_max(stake: u128, params: &EconomicParams) -> u128 {
    stake / u128::from(params.slash_multiple_of_price.max(1))
}
