//! Placement strategies behind one trait, chosen per task by its [`MatchStrategy`].
//!
//! A strategy names the index order that lists nodes best-first for it and the part of each
//! bucket worth walking; the search does the rest. Ties (equal ranks) fall to the node that has
//! served least, then to the caller's randomness.

use crate::eligibility::Capacity;
use crate::index::{Order, Rank};
use crate::TaskRequest;
use aicpw_types::task::MatchStrategy;

/// How a task's strategy ranks the nodes that meet its hard requirements.
pub trait Strategy: Sync {
    fn kind(&self) -> MatchStrategy;
    /// The index order that lists nodes best-first for this strategy.
    fn order(&self) -> Order;
    /// Inclusive rank bounds worth walking: ranks outside cannot meet the task's requirements.
    fn range(&self, task: &TaskRequest) -> (Rank, Rank);
    /// For an order walked in segments, the last rank worth walking in the segment of `rank`
    /// (`None`: the order is one segment).
    fn segment_end(&self, _task: &TaskRequest, _rank: Rank) -> Option<Rank> {
        None
    }
    /// The first rank of the segment after the one holding `rank`.
    fn next_segment(&self, _rank: Rank) -> Option<Rank> {
        None
    }
    /// Whether a share of these placements is reserved for new providers.
    fn reserves_for_new_providers(&self) -> bool {
        true
    }
}

/// Cheapest eligible node.
pub struct LowestPrice;
/// Highest reputation band ([`crate::index::REPUTATION_BAND`] permille wide), then cheapest: the original
/// design's "reputation priority".
pub struct ReputationFirst;
/// The node the task fills most tightly (fewest free GPUs, then least free memory, CPU, disk,
/// by power-of-two classes, and exactly among the first [`crate::FIT_CHOICES`] of the
/// tightest class), keeping large nodes whole for large tasks.
pub struct BestFit;
/// Lowest (optionally reputation-adjusted) cost; jointly optimized by `place_batch`.
pub struct BatchCost;

fn price_range(task: &TaskRequest) -> (Rank, Rank) {
    (Rank::default(), Rank::price(task.max_price_per_hour.0))
}

impl Strategy for LowestPrice {
    fn kind(&self) -> MatchStrategy {
        MatchStrategy::LowestPrice
    }
    fn order(&self) -> Order {
        Order::Price
    }
    fn range(&self, task: &TaskRequest) -> (Rank, Rank) {
        price_range(task)
    }
}

impl Strategy for ReputationFirst {
    fn kind(&self) -> MatchStrategy {
        MatchStrategy::ReputationFirst
    }
    fn order(&self) -> Order {
        Order::Reputation
    }
    fn range(&self, task: &TaskRequest) -> (Rank, Rank) {
        (Rank::default(), Rank::band_last(task.reputation_min))
    }
    /// Each reputation band is walked up to the task's price limit only.
    fn segment_end(&self, task: &TaskRequest, rank: Rank) -> Option<Rank> {
        Some(rank.band_end(task.max_price_per_hour.0))
    }
    fn next_segment(&self, rank: Rank) -> Option<Rank> {
        rank.next_band()
    }
    fn reserves_for_new_providers(&self) -> bool {
        false
    }
}

impl Strategy for BestFit {
    fn kind(&self) -> MatchStrategy {
        MatchStrategy::BestFit
    }
    fn order(&self) -> Order {
        Order::Fit
    }
    /// Nodes whose classes are lexicographically below the task's needs cannot fit it.
    fn range(&self, task: &TaskRequest) -> (Rank, Rank) {
        (Rank::fit(&Capacity::used_by(&task.resources)), Rank::MAX)
    }
}

impl Strategy for BatchCost {
    fn kind(&self) -> MatchStrategy {
        MatchStrategy::Batch
    }
    fn order(&self) -> Order {
        Order::Price
    }
    fn range(&self, task: &TaskRequest) -> (Rank, Rank) {
        price_range(task)
    }
}

/// The strategy a task asks for.
pub fn strategy(kind: MatchStrategy) -> &'static dyn Strategy {
    match kind {
        MatchStrategy::LowestPrice => &LowestPrice,
        MatchStrategy::ReputationFirst => &ReputationFirst,
        MatchStrategy::BestFit => &BestFit,
        MatchStrategy::Batch => &BatchCost,
    }
}
