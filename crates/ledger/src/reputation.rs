//! Reputation: per-node counters and a score in permille that the matcher uses.
//!
//! good = completed + audits_passed + 1, bad = 3·(failed + expired) + 10·audits_failed,
//! record = 1000 · good / (good + bad), then blended 80/20 with the stake-weighted average rating
//! (stars scaled to 0–1000; a rating weighs 1 + the rater's bonded stake in 1,000-AIC units, at
//! most 10) once a node has ratings. A proven offence (a failed audit) weighs ten faults. A new
//! node starts at 500: neither trusted nor distrusted.

use crate::state::Reputation;

pub const NEW_SCORE_PERMILLE: u16 = 500;

pub fn score(r: &Reputation) -> u16 {
    let good = u128::from(r.completed) + u128::from(r.audits_passed) + 1;
    let bad = 3 * (u128::from(r.failed) + u128::from(r.expired)) + 10 * u128::from(r.audits_failed);
    let record = 1000 * good / (good + bad);
    let blended = if r.rating_weight == 0 {
        if good == 1 && bad == 0 {
            u128::from(NEW_SCORE_PERMILLE)
        } else {
            record
        }
    } else {
        let rating = u128::from(r.rating_sum) * 1000 / (5 * u128::from(r.rating_weight));
        (record * 8 + rating.min(1000) * 2) / 10
    };
    u16::try_from(blended.min(1000)).expect("at most 1000")
}

pub fn record(r: &mut Reputation, change: impl FnOnce(&mut Reputation)) {
    change(r);
    r.score_permille = score(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_rises_with_completions_and_falls_with_failures() {
        let new = Reputation::default();
        assert_eq!(score(&new), NEW_SCORE_PERMILLE);
        let good = Reputation { completed: 20, ..Default::default() };
        let bad = Reputation { completed: 20, expired: 5, ..Default::default() };
        assert!(score(&good) > score(&bad));
        assert_eq!(score(&good), 1000);
        let rated = Reputation {
            completed: 20,
            rating_sum: 5,
            rating_count: 5,
            rating_weight: 5,
            ..Default::default()
        };
        assert_eq!(score(&rated), 840);
        let audited = Reputation { completed: 20, audits_failed: 1, ..Default::default() };
        let late = Reputation { completed: 20, expired: 3, ..Default::default() };
        assert!(score(&audited) < score(&late), "one proven offence weighs more than 3 expiries");
    }
}
