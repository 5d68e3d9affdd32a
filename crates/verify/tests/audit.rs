//! The adaptive audit policy and known-answer injection.

use aicpw_verify::audit::{draw_ppm, next_clean_streak, pick_auditor, AUDIT_CONTEXT};
use aicpw_verify::{audited, AuditPolicy, KnownAnswerPolicy, PPM};
use proptest::prelude::*;

#[test]
fn the_audit_rate_follows_the_streak() {
    let policy = AuditPolicy::default();
    let cases: [(u32, u32); 9] = [
        (0, PPM),
        (5, PPM),
        (9, PPM),
        (10, 100_000),
        (15, 66_666),
        (20, 50_000),
        (21, 50_000),
        (1_000, 50_000),
        (u32::MAX, 50_000),
    ];
    for (streak, rate) in cases {
        assert_eq!(policy.rate_ppm(streak), rate, "streak {streak}");
    }
}

#[test]
fn new_providers_are_always_audited_and_a_failure_resets_the_streak() {
    for streak in 0..10 {
        for task in 0..200 {
            assert!(
                audited(AuditPolicy::default().rate_ppm(streak), &[task as u8; 32], task),
                "streak {streak} task {task}"
            );
        }
    }
    assert_eq!(next_clean_streak(57, false), 0);
    assert_eq!(next_clean_streak(57, true), 58);
    assert_eq!(next_clean_streak(u32::MAX, true), u32::MAX);
}

fn audited_share_ppm(streak: u32, tasks: u64) -> u64 {
    let audited = (0..tasks)
        .filter(|&task| audited(AuditPolicy::default().rate_ppm(streak), &[7; 32], task))
        .count() as u64;
    audited * u64::from(PPM) / tasks
}

#[test]
fn long_streaks_are_audited_at_the_floor_and_middle_streaks_at_one_over_streak() {
    let floor = audited_share_ppm(20, 40_000); // 5%: sd ≈ 0.11%
    assert!((45_000..55_000).contains(&floor), "{floor}");
    let tenth = audited_share_ppm(10, 40_000); // 10%
    assert!((94_000..106_000).contains(&tenth), "{tenth}");
}

#[test]
fn known_answer_injection_is_within_one_to_two_percent() {
    let policy = KnownAnswerPolicy::default();
    assert_eq!(policy.validate(), Ok(()));
    let injected = (0..50_000u64).filter(|&slot| policy.should_inject(&[1; 32], slot)).count();
    assert!((600..900).contains(&injected), "{injected} of 50000 at 1.5%");
    assert!(KnownAnswerPolicy { injection_rate_ppm: 9_999 }.validate().is_err());
    assert!(KnownAnswerPolicy { injection_rate_ppm: 20_001 }.validate().is_err());
    assert!(AuditPolicy { streak_always: 10, rate_min_ppm: 0 }.validate().is_err());
    assert_eq!(AuditPolicy::default().validate(), Ok(()));
}

#[test]
fn auditors_are_picked_uniformly_among_candidates() {
    assert_eq!(pick_auditor(&[0; 32], 1, 0), None);
    let mut counts = [0u32; 3];
    for task in 0..3_000 {
        counts[pick_auditor(&[0; 32], task, 3).expect("3 candidates")] += 1;
    }
    assert!(counts.iter().all(|&count| (900..1_100).contains(&count)), "{counts:?}");
}

proptest! {
    #[test]
    fn draws_are_deterministic_and_in_range(randomness in any::<[u8; 32]>(), task in any::<u64>(), streak in any::<u32>()) {
        let draw = draw_ppm(AUDIT_CONTEXT, &randomness, task);
        prop_assert!(draw < PPM);
        prop_assert_eq!(draw, draw_ppm(AUDIT_CONTEXT, &randomness, task));
        prop_assert_eq!(audited(AuditPolicy::default().rate_ppm(streak), &randomness, task), audited(AuditPolicy::default().rate_ppm(streak), &randomness, task));
        prop_assert!(AuditPolicy::default().rate_ppm(streak) >= 50_000);
    }
}
