//! Compute units, the proven capacity median and the evidence rule.

use aicpw_verify::capacity::{
    challenge_deadline_ms, challenge_size, judge, ChallengeAnswer, OpeningsCheck, CAPACITY_WINDOW,
    MISSES_FREEZE, MISSES_SLASH,
};
use aicpw_verify::matrix::N_MAX;
use aicpw_verify::{compute_units, work, ChallengeVerdict, ComputeUnits, ProvenCapacity, Sanction};
use proptest::prelude::*;

#[test]
fn compute_units_are_work_over_net_time_in_gops() {
    let cases: [(u128, u64, u64, u64); 7] = [
        (work(4096), 1_000, 0, 137),   // 1.37e11 ops in 1 s
        (work(4096), 1_000, 500, 274), // round trip subtracted
        (work(4096), 1_000, 900, 274), // round trip capped at half the response
        (work(4096), 0, 0, 137_438),   // at least 1 ms
        (1_000_000_000, 1_000, 0, 1),  // 1 GOPS is one unit
        (999_999_999, 1_000, 0, 0),    // rounded down
        (u128::MAX, 1, 0, u64::MAX),   // saturates
    ];
    for (work_ops, response_ms, round_trip_ms, units) in cases {
        assert_eq!(compute_units(work_ops, response_ms, round_trip_ms), ComputeUnits(units));
    }
}

#[test]
fn challenges_are_sized_to_about_a_second_of_the_claimed_capacity() {
    let cases: [(u64, u32); 6] = [
        (0, 16),      // nothing claimed: the smallest challenge
        (1, 784),     // 1 GOPS: 2·784³ ≈ 0.96·10^9
        (137, 4_080), // 2·4096³ = 1.374·10^11 is just above 137 GOPS·s
        (138, 4_096),
        (500, 6_288),       // a fast CPU
        (2_000_000, N_MAX), // an H100's INT8 peak: capped, it answers in milliseconds
    ];
    for (claimed, n) in cases {
        assert_eq!(challenge_size(ComputeUnits(claimed)), n, "{claimed} CU");
        assert!(n % 16 == 0);
    }
}

#[test]
fn deadlines_allow_three_times_the_claimed_compute_plus_round_trip_and_base() {
    assert_eq!(challenge_deadline_ms(work(4096), ComputeUnits(137), 40), 3 * 1_004 + 40 + 500);
    assert_eq!(challenge_deadline_ms(work(16), ComputeUnits(0), 0), 3 + 500);
    assert_eq!(challenge_deadline_ms(u128::MAX, ComputeUnits(1), 0), u64::MAX);
}

#[test]
fn the_evidence_rule_maps_answers_to_verdicts() {
    let valid = OpeningsCheck::Valid;
    let cases = [
        (ChallengeAnswer::Silent, ChallengeVerdict::Late),
        (
            ChallengeAnswer::Committed { response_ms: 5_001, openings: valid },
            ChallengeVerdict::Late,
        ),
        (
            ChallengeAnswer::Committed { response_ms: 5_000, openings: valid },
            ChallengeVerdict::Passed { units: ComputeUnits(27) },
        ),
        (
            ChallengeAnswer::Committed { response_ms: 900, openings: OpeningsCheck::Invalid },
            ChallengeVerdict::Failed,
        ),
        (
            ChallengeAnswer::Committed { response_ms: 900, openings: OpeningsCheck::Withheld },
            ChallengeVerdict::Failed,
        ),
    ];
    for (answer, verdict) in cases {
        assert_eq!(judge(work(4096), 5_000, 0, answer), verdict, "{answer:?}");
    }
}

#[test]
fn misses_lower_reputation_then_freeze_then_slash_and_a_pass_forgives() {
    let mut capacity = ProvenCapacity::default();
    let sanctions: Vec<Sanction> =
        (0..MISSES_SLASH).map(|_| capacity.record(ChallengeVerdict::Late)).collect();
    assert_eq!(sanctions[0], Sanction::LowerReputation);
    assert_eq!(sanctions[MISSES_FREEZE as usize - 1], Sanction::Freeze);
    assert_eq!(sanctions[MISSES_SLASH as usize - 1], Sanction::Slash);
    let passed = ChallengeVerdict::Passed { units: ComputeUnits(10) };
    assert_eq!(capacity.record(passed), Sanction::None);
    assert_eq!(capacity.consecutive_misses(), 0);
    assert_eq!(capacity.record(ChallengeVerdict::Failed), Sanction::Slash);
}

#[test]
fn proven_capacity_is_the_median_of_the_last_window_and_misses_count_as_zero() {
    let mut capacity = ProvenCapacity::default();
    assert_eq!(capacity.median(), ComputeUnits(0));
    for units in [100, 1, 100, 100, 1_000_000] {
        capacity.record(ChallengeVerdict::Passed { units: ComputeUnits(units) });
    }
    assert_eq!(capacity.median(), ComputeUnits(100)); // one outlier cannot inflate it
    for _ in 0..CAPACITY_WINDOW {
        capacity.record(ChallengeVerdict::Late);
    }
    assert_eq!(capacity.median(), ComputeUnits(0));
    assert_eq!(capacity.recent().len(), CAPACITY_WINDOW);
}

proptest! {
    #[test]
    fn the_window_stays_bounded_and_the_median_is_a_recent_score(scores in prop::collection::vec(0u64..1_000, 1..40)) {
        let mut capacity = ProvenCapacity::default();
        for &score in &scores {
            capacity.record(ChallengeVerdict::Passed { units: ComputeUnits(score) });
        }
        prop_assert!(capacity.recent().len() <= CAPACITY_WINDOW);
        let tail = &scores[scores.len().saturating_sub(CAPACITY_WINDOW)..];
        prop_assert!(tail.contains(&capacity.median().0));
    }

    #[test]
    fn a_longer_response_never_scores_higher(work_ops in 0u128..1 << 60, response in 0u64..100_000, extra in 0u64..1_000, round_trip in 0u64..1_000) {
        prop_assert!(compute_units(work_ops, response + extra, round_trip) <= compute_units(work_ops, response, round_trip) || extra == 0);
    }
}
