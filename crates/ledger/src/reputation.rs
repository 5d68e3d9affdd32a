//! Reputation: per-node counters and a score in permille that the matcher uses.
//!
//! score = 1000 · (completed + 1) / (completed + 1 + 3·(failed + expired + audits_failed)),
//! then blended 80/20 with the average rating (stars scaled to 0–1000) once a node has ratings.
//! A new node starts at 500: neither trusted nor distrusted.

use crate::state::Reputation;

pub const NEW_SCORE_PERMILLE: u16 = 500;

pub fn score(r: &Reputation) -> u16 {
    let good = u128::from(r.completed) + 1;
    let bad = 3 * (u128::from(r.failed) + u128::from(r.expired) + u128::from(r.audits_failed));
    let record = 1000 * good / (good + bad);
    let blended = if r.rating_count == 0 {
        if r.completed == 0 && bad == 0 {
            u128::from(NEW_SCORE_PERMILLE)
        } else {
            record
        }
    } else {
        let rating = u128::from(r.rating_sum) * 1000 / (5 * u128::from(r.rating_count));
        (record * 8 + rating * 2) / 10
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
        let rated =
            Reputation { completed: 20, rating_sum: 5, rating_count: 5, ..Default::default() };
        assert_eq!(score(&rated), 840);
    }
}
