//! The design's predictions of how soon each cheater is caught: the bounds detection rates are
//! measured against. Each is the smallest number of attempts after which a cheater escapes with
//! probability at most [`ESCAPE_PPM_MAX`] (1%).

use aicpw_verify::AuditPolicy;

/// The escape probability a bound allows, in ppm.
pub const ESCAPE_PPM_MAX: u32 = 10_000;
/// Largest bound computed (attempts).
pub const BOUND_MAX: u64 = 100_000;

/// Tasks within which a worker that forges `skip_ppm` of its results is audited on a forged one
/// with probability ≥ 99%, under the adaptive audit policy. Its clean streak after `i` results is
/// at most `i` (it grows only with passed audits), so task `i + 1` is audited with probability at
/// least `policy.rate_ppm(i)`: the escape probability after `k` tasks is at most
/// `Π_{i<k} (1 - skip · rate(i))`.
pub fn audit_tasks(skip_ppm: u32, policy: &AuditPolicy) -> u64 {
    let skip = f64::from(skip_ppm) / 1e6;
    let target = f64::from(ESCAPE_PPM_MAX) / 1e6;
    let mut escape = 1.0;
    for i in 0..BOUND_MAX {
        let streak = u32::try_from(i).unwrap_or(u32::MAX);
        escape *= 1.0 - skip * f64::from(policy.rate_ppm(streak)) / 1e6;
        if escape <= target {
            return i + 1;
        }
    }
    BOUND_MAX
}

/// Attempts within which an event of probability `ppm` per attempt happens at least once with
/// probability ≥ 99%: the smallest `k` with `(1 - p)^k ≤ 1%`.
pub fn geometric(ppm: u32) -> u64 {
    if ppm == 0 {
        return BOUND_MAX;
    }
    let p = f64::from(ppm) / 1e6;
    let k = (f64::from(ESCAPE_PPM_MAX) / 1e6).ln() / (1.0 - p).ln();
    (k.ceil() as u64).clamp(1, BOUND_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_forging_half_its_results_is_caught_within_its_first_always_audited_tasks() {
        // 0.5^7 < 1%: inside the 10 results that are always audited.
        assert_eq!(audit_tasks(500_000, &AuditPolicy::default()), 7);
    }

    #[test]
    fn rarer_forgery_needs_the_audit_floor_to_catch_it() {
        let bound = audit_tasks(250_000, &AuditPolicy::default());
        assert!((100..200).contains(&bound), "bound {bound}");
    }

    #[test]
    fn geometric_bound_matches_the_closed_form() {
        assert_eq!(geometric(1_000_000), 1);
        assert_eq!(geometric(500_000), 7);
        assert_eq!(geometric(15_000), 305);
    }
}
