//! The published economic parameters and the inequality they must satisfy.

use aicpw_verify::economics::{cheating_is_unprofitable_keeping, SlashShares, SlashSplit, BPS};
use aicpw_verify::{cheating_is_unprofitable, slash_min, unaudited_work_max, EconomicParams};
use proptest::prelude::*;

const PRICE: u128 = 1_000_000_000_000_000_000; // one token of 18 decimals

#[test]
fn the_published_figures_hold() {
    // p = 5%, savings 0.8·price → slash ≥ 15·price; p = 10% → slash ≥ 7·price.
    let savings = PRICE * 8 / 10;
    assert_eq!(slash_min(PRICE, savings, 0, 50_000), Ok(15 * PRICE));
    assert_eq!(slash_min(PRICE, savings, 0, 100_000), Ok(7 * PRICE));
    assert_eq!(slash_min(PRICE, 0, 0, 50_000), Ok(0));
    assert!(slash_min(PRICE, savings, 0, 0).is_err());
    for (p_ppm, multiple) in [(50_000, 15), (100_000, 7)] {
        let at = EconomicParams {
            audit_rate_min_ppm: p_ppm,
            slash_multiple_of_price: multiple,
            ..EconomicParams::default()
        };
        let below = EconomicParams { slash_multiple_of_price: multiple - 1, ..at };
        let above = EconomicParams { slash_multiple_of_price: multiple + 1, ..at };
        assert!(!cheating_is_unprofitable(&at, PRICE, savings, 0), "break-even at {multiple}");
        assert!(!cheating_is_unprofitable(&below, PRICE, savings, 0));
        assert!(cheating_is_unprofitable(&above, PRICE, savings, 0));
    }
}

#[test]
fn the_default_parameters_deter_savings_up_to_the_whole_price() {
    let params = EconomicParams::default();
    assert_eq!(params.validate(), Ok(()));
    for savings_percent in 0..=100u128 {
        let savings = PRICE * savings_percent / 100;
        assert!(cheating_is_unprofitable(&params, PRICE, savings, 0), "{savings_percent}%");
        let needed = slash_min(PRICE, savings, 0, params.audit_rate_min_ppm).expect("valid");
        assert!(params.slash(PRICE).expect("fits") >= needed);
    }
    assert!(!cheating_is_unprofitable(&params, PRICE, PRICE, PRICE / 20)); // 5% outside benefit
}

#[test]
fn a_caught_cheat_must_not_keep_its_prepaid_intervals() {
    // Released per interval and clawed back when caught (kept = 0): the published inequality.
    // Kept, the forfeit shrinks to `price − kept + slash`, and at the defaults a cheat saving the
    // whole price that was prepaid all of it breaks even: the clawback is what keeps it a loss.
    let params = EconomicParams::default();
    let cases = [
        // (savings, kept, unprofitable)
        (PRICE, 0, true),
        (PRICE, PRICE / 2, true),
        (PRICE, PRICE, false),
        (PRICE * 8 / 10, PRICE, true),
        (PRICE / 2, PRICE, true),
    ];
    for (savings, kept, unprofitable) in cases {
        assert_eq!(
            cheating_is_unprofitable_keeping(&params, PRICE, kept, savings, 0),
            unprofitable,
            "savings {savings}, kept {kept}"
        );
    }
    for savings_percent in 0..=100u128 {
        let savings = PRICE * savings_percent / 100;
        assert_eq!(
            cheating_is_unprofitable_keeping(&params, PRICE, 0, savings, 0),
            cheating_is_unprofitable(&params, PRICE, savings, 0)
        );
    }
    assert!(!cheating_is_unprofitable_keeping(&params, PRICE, PRICE + 1, 0, 0), "kept ≤ price");
}

#[test]
fn parameter_sets_that_let_cheating_pay_are_invalid() {
    let weak = EconomicParams { slash_multiple_of_price: 10, ..EconomicParams::default() };
    assert!(weak.validate().is_err());
    let broken_split = EconomicParams {
        split: SlashSplit { burn_bps: 5_000, challenger_bps: 5_000, treasury_bps: 1 },
        ..EconomicParams::default()
    };
    assert!(broken_split.validate().is_err());
    assert!(EconomicParams { audit_rate_min_ppm: 0, ..EconomicParams::default() }
        .validate()
        .is_err());
}

#[test]
fn overflowing_amounts_are_never_called_unprofitable() {
    let params = EconomicParams::default();
    assert!(!cheating_is_unprofitable(&params, u128::MAX / 2, 1, 0));
    assert!(slash_min(1, u128::MAX, 1, 50_000).is_err());
}

#[test]
fn unaudited_work_is_bounded_by_stake_over_the_slash_multiple() {
    let params = EconomicParams::default();
    assert_eq!(unaudited_work_max(1_000 * PRICE, &params), 50 * PRICE);
    assert_eq!(unaudited_work_max(19, &params), 0);
    let in_flight = unaudited_work_max(1_000 * PRICE, &params);
    assert!(params.slash(in_flight).expect("fits") <= 1_000 * PRICE);
}

#[test]
fn a_slash_splits_as_published() {
    let split = EconomicParams::default().split;
    assert_eq!(
        split.split(10_000),
        Ok(SlashShares { burn: 5_000, challenger: 3_000, treasury: 2_000 })
    );
    // 7 · 30% = 2.1 → 2 and 7 · 20% = 1.4 → 1; burn takes the remaining 4.
    assert_eq!(split.split(7), Ok(SlashShares { burn: 4, challenger: 2, treasury: 1 }));
}

proptest! {
    #[test]
    fn a_split_never_loses_or_creates_tokens(amount in any::<u128>(), challenger in 0u32..=BPS, treasury_share in 0u32..=BPS) {
        let treasury = treasury_share.min(BPS - challenger);
        let split = SlashSplit { burn_bps: BPS - challenger - treasury, challenger_bps: challenger, treasury_bps: treasury };
        let shares = split.split(amount)?;
        prop_assert_eq!(shares.challenger.checked_add(shares.treasury).and_then(|sum| sum.checked_add(shares.burn)), Some(amount));
        prop_assert!(shares.challenger <= amount / u128::from(BPS) * u128::from(challenger) + u128::from(challenger));
    }

    #[test]
    fn slash_min_is_the_smallest_slash_at_which_cheating_does_not_pay(price in 1u128..1 << 80, savings in 0u128..1 << 80, benefit in 0u128..1 << 70, p in 1u32..=1_000_000) {
        let slash = slash_min(price, savings, benefit, p)?;
        let gain = (savings + benefit) * 1_000_000;
        prop_assert!(gain <= u128::from(p) * (price + slash));
        if slash > 0 {
            prop_assert!(gain > u128::from(p) * (price + slash - 1));
        }
    }
}
