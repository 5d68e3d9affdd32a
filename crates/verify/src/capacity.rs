//! Capacity in standard compute units, proven by challenges, and what a missed challenge costs.
//!
//! **1 compute unit (CU) = 1 GOPS of exact INT8 GEMM sustained**: `10^9` operations per second
//! where an operation is one multiply or one add of the matrix challenge (`2n³` per challenge,
//! [`crate::matrix::work`]). A score is a lower bound: elapsed time includes everything the node
//! did besides arithmetic.
//!
//! Evidence rule: a challenge answered late or not at all counts as a zero score and a miss;
//! misses lower reputation, then freeze the node, then slash it. A commitment whose openings are
//! wrong *or withheld* is a failure: withholding is what a node that skipped the drawn tiles would
//! do, so it is treated as proof and slashed at once.

use serde::{Deserialize, Serialize};

use crate::matrix::{work, N_MAX, TILE_DEFAULT};

/// Operations per second in one compute unit.
pub const OPS_PER_SECOND_PER_UNIT: u128 = 1_000_000_000;
/// Number of recent results whose median is the proven capacity (odd, so the median is a value).
pub const CAPACITY_WINDOW: usize = 9;
/// The round trip subtracted from a response is capped at this share of it (parts per million).
/// A node can inflate its measured round trip by delaying pings; the cap bounds the gain to 2×,
/// and validators size challenges so that computing dominates the response time.
pub const ROUND_TRIP_SHARE_MAX_PPM: u64 = 500_000;
/// Consecutive misses that freeze a node (no new assignments).
pub const MISSES_FREEZE: u32 = 3;
/// Consecutive misses that slash a node.
pub const MISSES_SLASH: u32 = 6;
/// Compute time a challenge is sized for, so that computing dominates round trips and setup.
pub const CHALLENGE_COMPUTE_MS_TARGET: u64 = 1_000;
/// A challenge's deadline allows this multiple of the compute time the claim implies (deriving
/// the operands and hashing the commitment add `O(n²)` on top of the `O(n³)` product).
pub const DEADLINE_SLACK: u64 = 3;
/// Fixed allowance added to every deadline.
pub const DEADLINE_MS_BASE: u64 = 500;

/// Proven capacity, in whole compute units (1 CU = 1 GOPS of INT8 GEMM).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ComputeUnits(pub u64);

/// Least capacity a node registering a GPU model is challenged for, by model (case-insensitive):
/// about half the model's dense INT8 peak, in CU, so that clocks and the host's share of a
/// challenge leave an honest card room. A model not in the table (or a GPU of no named model)
/// gets [`MODEL_FLOOR_UNLISTED`], the smallest listed floor.
pub const MODEL_FLOORS: &[(&str, u64)] = &[
    ("H200", 1_000_000),
    ("H100", 1_000_000),
    ("L40S", 360_000),
    ("RTX4090", 330_000),
    ("A100", 300_000),
    ("L4", 120_000),
];
/// The floor of a GPU model missing from [`MODEL_FLOORS`].
pub const MODEL_FLOOR_UNLISTED: u64 = 120_000;

/// The capacity a node registering a GPU of `gpu_model` must prove (see [`MODEL_FLOORS`]).
pub fn model_floor(gpu_model: &str) -> ComputeUnits {
    let listed = MODEL_FLOORS.iter().find(|(model, _)| model.eq_ignore_ascii_case(gpu_model));
    ComputeUnits(listed.map_or(MODEL_FLOOR_UNLISTED, |(_, floor)| *floor))
}

/// Score of one answered challenge: `work / (response - round_trip)` in CU, rounded down.
///
/// `round_trip_ms` must be the validator's own measurement; it is capped at half the response
/// ([`ROUND_TRIP_SHARE_MAX_PPM`]) and the elapsed time is at least 1 ms.
pub fn compute_units(work_ops: u128, response_ms: u64, round_trip_ms: u64) -> ComputeUnits {
    let round_trip_cap = u128::from(response_ms) * u128::from(ROUND_TRIP_SHARE_MAX_PPM) / 1_000_000;
    let round_trip = u128::from(round_trip_ms).min(round_trip_cap);
    let elapsed_ms = (u128::from(response_ms) - round_trip).max(1);
    let ops_per_millisecond_per_unit = OPS_PER_SECOND_PER_UNIT / 1_000;
    let units = work_ops / (elapsed_ms * ops_per_millisecond_per_unit);
    ComputeUnits(u64::try_from(units).unwrap_or(u64::MAX))
}

/// The largest challenge size (a multiple of the default tile, at most `N_MAX`) whose work a node
/// of `claimed` capacity computes in about [`CHALLENGE_COMPUTE_MS_TARGET`].
pub fn challenge_size(claimed: ComputeUnits) -> u32 {
    let ops_per_millisecond = u128::from(claimed.0) * (OPS_PER_SECOND_PER_UNIT / 1_000);
    let target = ops_per_millisecond * u128::from(CHALLENGE_COMPUTE_MS_TARGET);
    (1..=N_MAX / TILE_DEFAULT)
        .rev()
        .map(|multiple| multiple * TILE_DEFAULT)
        .find(|&n| work(n) <= target)
        .unwrap_or(TILE_DEFAULT)
}

/// The deadline of a challenge of `work_ops` for a node claiming `claimed`: the round trip, the
/// claimed compute time times [`DEADLINE_SLACK`], and [`DEADLINE_MS_BASE`].
pub fn challenge_deadline_ms(work_ops: u128, claimed: ComputeUnits, round_trip_ms: u64) -> u64 {
    let ops_per_millisecond = u128::from(claimed.0.max(1)) * (OPS_PER_SECOND_PER_UNIT / 1_000);
    let compute_ms = work_ops.div_ceil(ops_per_millisecond);
    let allowed = compute_ms.saturating_mul(u128::from(DEADLINE_SLACK));
    let total = allowed + u128::from(round_trip_ms) + u128::from(DEADLINE_MS_BASE);
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// What the validator saw of one challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeAnswer {
    /// No commitment arrived.
    Silent,
    /// A commitment arrived `response_ms` after the challenge was sent.
    Committed { response_ms: u64, openings: OpeningsCheck },
}

/// The fate of the openings that followed a commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpeningsCheck {
    /// Every drawn tile opened and verified.
    Valid,
    /// An opening did not verify (wrong value, wrong path, wrong indices).
    Invalid,
    /// The node committed but did not open the drawn tiles before the opening deadline.
    Withheld,
}

/// The verdict on one challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeVerdict {
    /// Answered in time and verified.
    Passed { units: ComputeUnits },
    /// No commitment before the deadline.
    Late,
    /// A commitment that does not hold: proof of false work.
    Failed,
}

/// What a verdict costs the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sanction {
    /// Nothing.
    None,
    /// Reputation goes down.
    LowerReputation,
    /// No new assignments until the node passes a challenge.
    Freeze,
    /// Stake is slashed.
    Slash,
}

/// Applies the evidence rule to one challenge.
pub fn judge(
    work_ops: u128,
    deadline_ms: u64,
    round_trip_ms: u64,
    answer: ChallengeAnswer,
) -> ChallengeVerdict {
    match answer {
        ChallengeAnswer::Silent => ChallengeVerdict::Late,
        ChallengeAnswer::Committed { response_ms, .. } if response_ms > deadline_ms => {
            ChallengeVerdict::Late
        }
        ChallengeAnswer::Committed { openings: OpeningsCheck::Valid, response_ms } => {
            ChallengeVerdict::Passed { units: compute_units(work_ops, response_ms, round_trip_ms) }
        }
        ChallengeAnswer::Committed { .. } => ChallengeVerdict::Failed,
    }
}

/// A node's recent challenge scores and its run of misses; part of ledger state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenCapacity {
    /// Most recent scores, oldest first, at most [`CAPACITY_WINDOW`]; a miss counts as zero.
    recent: Vec<ComputeUnits>,
    /// Misses and failures since the last pass.
    consecutive_misses: u32,
}

impl ProvenCapacity {
    /// Rebuilds a record from its parts, as a ledger stores them; keeps the newest
    /// [`CAPACITY_WINDOW`] scores.
    pub fn from_parts(mut recent: Vec<ComputeUnits>, consecutive_misses: u32) -> Self {
        if recent.len() > CAPACITY_WINDOW {
            recent.drain(..recent.len() - CAPACITY_WINDOW);
        }
        Self { recent, consecutive_misses }
    }

    /// Records a verdict and returns the sanction it earns.
    pub fn record(&mut self, verdict: ChallengeVerdict) -> Sanction {
        let units = match verdict {
            ChallengeVerdict::Passed { units } => units,
            ChallengeVerdict::Late | ChallengeVerdict::Failed => ComputeUnits(0),
        };
        if self.recent.len() >= CAPACITY_WINDOW {
            let excess = self.recent.len() + 1 - CAPACITY_WINDOW;
            self.recent.drain(..excess);
        }
        self.recent.push(units);
        match verdict {
            ChallengeVerdict::Passed { .. } => {
                self.consecutive_misses = 0;
                Sanction::None
            }
            ChallengeVerdict::Failed => {
                self.consecutive_misses = self.consecutive_misses.saturating_add(1);
                Sanction::Slash
            }
            ChallengeVerdict::Late => {
                self.consecutive_misses = self.consecutive_misses.saturating_add(1);
                match self.consecutive_misses {
                    misses if misses >= MISSES_SLASH => Sanction::Slash,
                    misses if misses >= MISSES_FREEZE => Sanction::Freeze,
                    _ => Sanction::LowerReputation,
                }
            }
        }
    }

    /// The proven capacity: the lower median of the recent scores (zero with no history).
    pub fn median(&self) -> ComputeUnits {
        let mut sorted: Vec<ComputeUnits> =
            self.recent.iter().rev().take(CAPACITY_WINDOW).copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or_default()
    }

    /// Misses and failures since the last pass.
    pub fn consecutive_misses(&self) -> u32 {
        self.consecutive_misses
    }

    /// Recent scores, oldest first.
    pub fn recent(&self) -> &[ComputeUnits] {
        &self.recent
    }
}
