//! The matcher's network parameters: every limit and share it applies, with defaults.

use serde::{Deserialize, Serialize};

/// Basis points in one whole: 10_000 bps = 100 %.
pub const BPS_ONE: u32 = 10_000;

/// Parameters every validator must share: they change placements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchParams {
    /// Stake coverage: a node may take a task only if its stake is at least the task's value ×
    /// `stake_cover_bps` / 10_000, so that slashing it can make the requester whole.
    pub stake_cover_bps: u32,
    /// A node with fewer completed tasks than this is a new provider.
    pub new_provider_completed_max: u64,
    /// Share of placements, in basis points, reserved for new providers so they can build a
    /// reputation. Each placement draws from the block randomness and the task id whether it is
    /// reserved, so the share holds in expectation without any history; a reserved placement
    /// still meets every hard requirement of the task. Tasks asking for `ReputationFirst` are
    /// never reserved.
    pub new_provider_share_bps: u32,
    /// A reserved placement goes to a new provider only if its price is at most the best offer's
    /// price × (10_000 + `new_provider_premium_bps`) / 10_000: requesters pay a bounded premium.
    pub new_provider_premium_bps: u32,
    /// Most index entries one placement may examine. Past it the placement takes the best node
    /// seen so far, or fails with `search_bound_reached`: a task with rare needs cannot make a
    /// block scan every node.
    pub scan_nodes_max: u32,
    /// Most `Batch` tasks optimized jointly per `place_batch` call; the rest are placed one by one.
    pub batch_tasks_max: u32,
    /// Candidate nodes per task the batch optimizer considers (the cheapest eligible ones).
    pub batch_candidates_max: u32,
    /// Work bound of the batch optimizer per call, in steps (path relaxations, task moves,
    /// branch-and-bound nodes): deterministic, not timed; a step takes about 10 ns, so the
    /// default bounds a block's optimization near 40 ms. When it runs out, the optimizer keeps
    /// what it has and the tasks it has not assigned are placed one by one.
    pub batch_work_max: u64,
    /// Longest chain of moves (a task displacing another) in one batch augmentation.
    pub batch_path_moves_max: u32,
    /// Groups of at most this many `Batch` tasks (tasks sharing candidate nodes only among
    /// themselves) are solved exactly by branch and bound after the heuristic, within the same
    /// work bound. 0 keeps the heuristic's answer everywhere.
    pub batch_exact_tasks_max: u32,
    /// Larger groups are improved by exact search over neighbourhoods (the tasks on a few nodes
    /// and the unplaced tasks that could go there) of at most this many tasks, within the same
    /// work bound. 0 keeps the heuristic's answer for them.
    pub batch_neighbourhood_tasks_max: u32,
    /// Score adjustment of the batch cost: a node with reputation r (permille) costs
    /// price × (1 + penalty × (1000 − r) / 1000), penalty in basis points. 0: price alone.
    pub batch_reputation_penalty_bps: u32,
    /// Most entries of a task's `allowed_nodes` examined.
    pub allowed_nodes_max: u32,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams {
            stake_cover_bps: BPS_ONE,
            new_provider_completed_max: 10,
            new_provider_share_bps: 1_000,
            new_provider_premium_bps: 2_000,
            scan_nodes_max: 2_048,
            batch_tasks_max: 256,
            batch_candidates_max: 8,
            batch_work_max: 4_000_000,
            batch_path_moves_max: 16,
            batch_exact_tasks_max: 8,
            batch_neighbourhood_tasks_max: 12,
            batch_reputation_penalty_bps: 0,
            allowed_nodes_max: 1_024,
        }
    }
}
