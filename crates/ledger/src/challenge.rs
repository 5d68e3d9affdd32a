//! Capacity challenges: a node's compute is what it proves, not what it claims.
//!
//! **Rounds.** Every `interval_ms` each challengeable node (active and online, or frozen by
//! missed challenges) gets a seeded INT8 matrix challenge ([`aicpw_verify::matrix`]) and, when
//! `puzzle_difficulty > 0`, a SHA-256 hash puzzle ([`aicpw_verify::puzzle`]: a liveness check
//! that complements the matrix challenge and never counts as capacity). Seeds are derived from the
//! randomness of the block that issues them and the node id. Every node is challenged in the
//! same block, at multiples of the interval (one phase for the whole network), so one machine
//! cannot answer for several nodes in turn, whoever owns them; a new node (or one back online)
//! pulls its owner's round forward to the next block, and then joins the network's rounds. The matrix edge is [`challenge_size`] of the larger of the
//! node's claim (`ClaimCapacity`), its proven capacity and `units_floor`, at most `n_max`; the
//! deadline is [`challenge_deadline_ms`] of that claim.
//!
//! **Answers.** `ChallengeCommit` carries the root of the tile tree over `C`
//! ([`aicpw_verify::merkle`]) before the deadline; the response time is the commit block's time
//! minus the issuing block's. The block *after* the commit's draws the tiles to open with its
//! own randomness ([`aicpw_verify::open_indices`] binds seed, root and that randomness), so the
//! node cannot know them when it commits. `ChallengeOpen` transactions carry the Merkle paths of
//! the drawn tiles in draw order, at most [`OPENINGS_PER_TX_MAX`] each (a transaction stays under
//! 64 KiB at the deepest tree); no tile values travel: the ledger recomputes each drawn tile from
//! the seed ([`aicpw_verify::matrix::compute_tile`], `O(n·tile²)`) and checks that its path
//! leads to the root. Checking costs at most `verify_work_per_block_max` (openings × n) per block;
//! an opening over the budget is refused with `ChallengeVerifyBusy` and sent again next block.
//! `SubmitPuzzle` carries a puzzle's nonce.
//!
//! **Results.** Every drawn tile verified: passed, scored by [`aicpw_verify::compute_units`], and
//! the node's `proven_units` become the median of its recent scores
//! ([`aicpw_verify::ProvenCapacity`]), which the matcher compares with `compute_units_min`. No
//! commit before the deadline, or openings not all in before the opening window closes: a miss
//! (a zero score; absence, never slashed). Openings wrong: failed (proof of false work).
//! `ProvenCapacity::record` grades misses: lower reputation, then freeze (thawed by the next
//! pass; where it would slash a long run of misses the node stays frozen instead); a failure is
//! slashed at once. A missed puzzle lowers reputation only. Every result carries a
//! machine-readable reason ([`ChallengeFailure`]).

mod answer;
mod index;
mod rounds;
mod sanction;
#[cfg(test)]
mod tests;

pub use answer::{claim, commit, open, submit_puzzle};
pub use index::ChallengeIndex;
pub use rounds::begin_block;

use crate::state::{Node, NodeStatus};
use aicpw_types::{
    codec_struct, codec_unit_enum, Amount, ChallengeId, ComputeUnits, Hardware, Hash32, NodeId,
};
use aicpw_verify::capacity::{challenge_deadline_ms, challenge_size, model_floor};
use aicpw_verify::matrix::{self, MatrixChallenge, N_MAX, OPEN_COUNT_MAX, TILE_DEFAULT};
use aicpw_verify::puzzle::DIFFICULTY_MAX;
use aicpw_verify::ProvenCapacity;
use serde::{Deserialize, Serialize};

/// Most drawn tiles one `ChallengeOpen` may open: 96 paths of 20 digests (a tree of 2^20 tiles)
/// encode to about 62,000 bytes, under the 64 KiB transaction limit.
pub const OPENINGS_PER_TX_MAX: usize = 96;
/// Nodes whose challenges expire, are drawn or are issued per block, each.
pub const CHALLENGES_PER_BLOCK_MAX: usize = 4_096;
/// Derive-key context of challenge seeds.
const SEED_CONTEXT: &str = "AICPW 2026-01 ledger capacity challenge seed v1";

/// The rules of capacity challenges. `interval_ms = 0` (the default) issues none: the ledger's
/// own tests of other rules see no challenges; the dev genesis and real networks set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChallengeParams {
    /// Each node is challenged this often; 0 turns challenges off.
    pub interval_ms: u64,
    /// Tiles drawn for opening (256: a node that skipped 2% of `C` is caught with 99.4%).
    pub open_count: u32,
    /// How long after the draw every drawn tile must be opened.
    pub open_window_ms: u64,
    /// Largest matrix edge asked of a node (a multiple of 16): bounds the node's memory and the
    /// ledger's cost of checking one tile.
    pub n_max: u32,
    /// Capacity a challenge is sized for at least, whatever the node claims.
    pub units_floor: ComputeUnits,
    /// Largest capacity a node may claim.
    pub claim_max: ComputeUnits,
    /// Round trip subtracted from every response time. The ledger cannot measure it, so 0 keeps
    /// the score a lower bound.
    pub round_trip_ms: u64,
    /// Work of checking openings per block, in openings × n (about 64 ns each on one core).
    pub verify_work_per_block_max: u64,
    /// Speed the deadline assumes for deriving the operands and hashing the commitment.
    pub setup_bytes_per_ms: u64,
    /// Nodes given a round per block (whole owners: one owner's nodes may go over it).
    pub issued_per_block_max: u32,
    /// Leading zero bits of the hash puzzle issued with each round; 0: no puzzles.
    pub puzzle_difficulty: u32,
    pub puzzle_deadline_ms: u64,
    /// Taken from the owner's stake when a node fails a challenge (proof of false work).
    pub slash_failed: Amount,
}

impl Default for ChallengeParams {
    fn default() -> Self {
        ChallengeParams {
            interval_ms: 0,
            open_count: matrix::OPEN_COUNT_DEFAULT,
            open_window_ms: 30_000,
            n_max: N_MAX,
            units_floor: ComputeUnits(1),
            claim_max: ComputeUnits(10_000_000),
            round_trip_ms: 0,
            verify_work_per_block_max: 1 << 21,
            setup_bytes_per_ms: 1_000_000,
            issued_per_block_max: 256,
            puzzle_difficulty: 16,
            puzzle_deadline_ms: 30_000,
            slash_failed: Amount::tokens(500),
        }
    }
}

impl ChallengeParams {
    /// Recommended interval on a real network: one round per node every 10 minutes.
    pub const INTERVAL_MS_NETWORK: u64 = 600_000;
    /// The interval of the dev genesis: short, so a new node proves itself within a minute.
    pub const INTERVAL_MS_DEV: u64 = 60_000;

    /// Challenges every `interval_ms`, everything else at its default.
    pub fn every(interval_ms: u64) -> Self {
        ChallengeParams { interval_ms, ..Self::default() }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms != 0 && self.interval_ms < 1_000 {
            return Err("challenges.interval_ms must be 0 (off) or at least 1000".into());
        }
        if !(1..=OPEN_COUNT_MAX).contains(&self.open_count) {
            return Err(format!("challenges.open_count must be in 1..={OPEN_COUNT_MAX}"));
        }
        if self.n_max < TILE_DEFAULT
            || self.n_max > N_MAX
            || !self.n_max.is_multiple_of(TILE_DEFAULT)
        {
            return Err(format!("challenges.n_max must be a multiple of 16 up to {N_MAX}"));
        }
        if self.puzzle_difficulty > DIFFICULTY_MAX {
            return Err(format!("challenges.puzzle_difficulty must be at most {DIFFICULTY_MAX}"));
        }
        if self.units_floor.0 == 0
            || self.verify_work_per_block_max == 0
            || self.setup_bytes_per_ms == 0
        {
            return Err(
                "challenges.units_floor, verify_work_per_block_max and setup_bytes_per_ms must be > 0"
                    .into(),
            );
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeKind {
    Matrix,
    Puzzle,
}
codec_unit_enum!(ChallengeKind { Matrix = 0, Puzzle = 1 });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeStatus {
    /// Waiting for the commitment (or the puzzle's nonce) until `deadline_ms`.
    Issued,
    /// Committed; the next block draws the tiles to open.
    Committed,
    /// Tiles drawn; waiting for their openings until `open_deadline_ms`.
    Opening,
    Passed,
    Late,
    Failed,
}
codec_unit_enum!(ChallengeStatus {
    Issued = 0,
    Committed = 1,
    Opening = 2,
    Passed = 3,
    Late = 4,
    Failed = 5
});

/// Why a challenge did not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeFailure {
    /// No commitment (or puzzle solution) before the deadline.
    Late,
    /// Committed, but the drawn tiles were not all opened before the opening window closed.
    OpeningsWithheld,
    /// An opened tile's path does not lead from the true tile to the committed root: the node
    /// committed to a product it did not compute.
    TileMismatch,
    /// A path has the wrong number of siblings for its tile.
    PathMalformed,
}
codec_unit_enum!(ChallengeFailure {
    Late = 0,
    OpeningsWithheld = 1,
    TileMismatch = 2,
    PathMalformed = 3
});

impl ChallengeFailure {
    /// Absence (no commitment in time, or openings missing when the window closed): a miss,
    /// graded like a late answer. Everything else is proof of false work.
    pub fn is_miss(self) -> bool {
        matches!(self, ChallengeFailure::Late | ChallengeFailure::OpeningsWithheld)
    }
}

/// What a challenge's result cost the node (`verify::Sanction`, as events show it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeSanction {
    None,
    LowerReputation,
    Freeze,
    Slash,
}

impl From<aicpw_verify::Sanction> for ChallengeSanction {
    fn from(sanction: aicpw_verify::Sanction) -> Self {
        match sanction {
            aicpw_verify::Sanction::None => ChallengeSanction::None,
            aicpw_verify::Sanction::LowerReputation => ChallengeSanction::LowerReputation,
            aicpw_verify::Sanction::Freeze => ChallengeSanction::Freeze,
            aicpw_verify::Sanction::Slash => ChallengeSanction::Slash,
        }
    }
}

/// One challenge to one node. Matrix fields are zero for a puzzle and the other way round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: ChallengeId,
    pub node: NodeId,
    pub kind: ChallengeKind,
    /// ChaCha20 key of `A` and `B`, or the puzzle's seed.
    pub seed: Hash32,
    pub n: u32,
    pub tile: u32,
    pub open_count: u32,
    pub difficulty: u32,
    /// The capacity the challenge was sized for.
    pub sized_for: ComputeUnits,
    pub issued_ms: u64,
    pub issued_height: u64,
    /// The commitment (or the nonce) must land at or before this time.
    pub deadline_ms: u64,
    pub status: ChallengeStatus,
    pub root: Option<Hash32>,
    /// Commit block time minus issue block time.
    pub response_ms: u64,
    pub committed_height: u64,
    /// Randomness of the block after the commitment's: it drew the tiles to open.
    pub open_randomness: Option<Hash32>,
    pub open_deadline_ms: u64,
    /// Drawn tiles opened and verified so far, in draw order.
    pub opened: u32,
    /// The score of a passed matrix challenge.
    pub units: ComputeUnits,
    pub failure: Option<ChallengeFailure>,
}
codec_struct!(Challenge {
    id,
    node,
    kind,
    seed,
    n,
    tile,
    open_count,
    difficulty,
    sized_for,
    issued_ms,
    issued_height,
    deadline_ms,
    status,
    root,
    response_ms,
    committed_height,
    open_randomness,
    open_deadline_ms,
    opened,
    units,
    failure
});

impl Challenge {
    /// Waiting for an answer from the node.
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            ChallengeStatus::Issued | ChallengeStatus::Committed | ChallengeStatus::Opening
        )
    }

    /// The matrix challenge as `verify` takes it.
    pub fn matrix(&self) -> Option<MatrixChallenge> {
        let challenge = MatrixChallenge { seed: self.seed.0, n: self.n, tile: self.tile };
        (self.kind == ChallengeKind::Matrix && challenge.validate().is_ok()).then_some(challenge)
    }

    /// The tiles to open, in draw order, once drawn.
    pub fn drawn_tiles(&self) -> Option<Vec<u32>> {
        let (challenge, root, randomness) = (self.matrix()?, self.root?, self.open_randomness?);
        aicpw_verify::open_indices(&challenge, &root.0, &randomness.0, self.open_count).ok()
    }

    /// When it next needs the ledger's attention by itself: its answer's or openings' deadline.
    pub(crate) fn deadline(&self) -> Option<u64> {
        match self.status {
            ChallengeStatus::Issued => Some(self.deadline_ms),
            ChallengeStatus::Opening => Some(self.open_deadline_ms),
            _ => None,
        }
    }
}

/// A node's challenge record: its claim, recent scores, schedule and current challenges.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// What the owner claims; sizes the matrix challenges and their deadlines.
    pub claimed_units: ComputeUnits,
    /// Recent scores, oldest first (a miss is a zero), and misses in a row: `ProvenCapacity`.
    pub recent_units: Vec<ComputeUnits>,
    pub misses: u32,
    /// When the node's next round is due; 0: at once.
    pub due_ms: u64,
    /// Frozen for missed challenges: the next pass thaws the node.
    pub frozen: bool,
    pub passed: u64,
    pub missed: u64,
    pub failed: u64,
    pub puzzles_solved: u64,
    pub puzzles_missed: u64,
    /// The latest matrix challenge and puzzle, open or resolved (replaced by the next round).
    pub matrix: Option<Challenge>,
    pub puzzle: Option<Challenge>,
}
codec_struct!(NodeCapacity {
    claimed_units,
    recent_units,
    misses,
    due_ms,
    frozen,
    passed,
    missed,
    failed,
    puzzles_solved,
    puzzles_missed,
    matrix,
    puzzle
});

impl NodeCapacity {
    /// The verify crate's view of the record.
    pub fn proven(&self) -> ProvenCapacity {
        let recent = self.recent_units.iter().map(|u| aicpw_verify::ComputeUnits(u.0)).collect();
        ProvenCapacity::from_parts(recent, self.misses)
    }

    fn store(&mut self, proven: &ProvenCapacity) {
        self.recent_units = proven.recent().iter().map(|u| ComputeUnits(u.0)).collect();
        self.misses = proven.consecutive_misses();
    }

    /// The current challenge of `kind`.
    pub fn current(&self, kind: ChallengeKind) -> Option<&Challenge> {
        match kind {
            ChallengeKind::Matrix => self.matrix.as_ref(),
            ChallengeKind::Puzzle => self.puzzle.as_ref(),
        }
    }

    /// Some challenge still waits for an answer.
    pub fn has_open(&self) -> bool {
        self.matrix.iter().chain(&self.puzzle).any(Challenge::is_open)
    }

    pub(crate) fn challenges(&self) -> impl Iterator<Item = &Challenge> {
        self.matrix.iter().chain(&self.puzzle)
    }
}

/// Whether a node takes part in challenge rounds.
pub fn challengeable(node: &Node) -> bool {
    match node.status {
        NodeStatus::Active => node.online,
        // Frozen for misses: it must be able to pass and thaw, whether or not it heartbeats.
        NodeStatus::Frozen => node.capacity.frozen,
        NodeStatus::Ejected => false,
    }
}

/// The capacity a node's next matrix challenge is sized for: its claim, its proven capacity,
/// the network's floor, and the floor of the GPU model it registers (registering a model claims
/// at least that much).
pub fn sizing_units(node: &Node, params: &ChallengeParams) -> ComputeUnits {
    let proven = ComputeUnits(node.capacity.proven().median().0);
    node.capacity.claimed_units.max(proven).max(params.units_floor).max(gpu_floor(&node.hardware))
}

/// What registering `hardware`'s GPU claims: its model's floor
/// (`verify::capacity::model_floor`); nothing for a node without a GPU.
pub fn gpu_floor(hardware: &Hardware) -> ComputeUnits {
    if hardware.gpu_model.is_empty() && hardware.gpu_count == 0 {
        return ComputeUnits(0);
    }
    ComputeUnits(model_floor(&hardware.gpu_model).0)
}

/// Whether the node stands on a proof of the GPU model it registers: its latest matrix challenge
/// passed, sized for at least the model's floor. Until then (or while a new round is open) the
/// matcher is offered the node without its GPU, so tasks asking for one are not placed on it.
pub fn proves_gpu(node: &Node) -> bool {
    let floor = gpu_floor(&node.hardware);
    node.capacity.matrix.as_ref().is_some_and(|challenge| {
        challenge.status == ChallengeStatus::Passed && challenge.sized_for >= floor
    })
}

/// Bytes a solve holds per entry of `C`: `C` itself (`i32`) and the packed `A` and `B`.
const SOLVE_BYTES_PER_ENTRY: u64 = 6;
/// Share of a node's registered memory a challenge may take: one quarter.
const MEMORY_SHARE_DIVISOR: u64 = 4;

/// Matrix edge and relative deadline for a node with `memory_mb` sized for `units`.
///
/// The edge is at most `n_max` and small enough that the solve takes at most a quarter of the
/// node's memory. The deadline is `verify::challenge_deadline_ms` for the claim, plus the time to
/// derive the operands and hash the commitment (`6n²` bytes at `setup_bytes_per_ms`): that
/// `O(n²)` work dominates the `O(n³)` product when a large claim meets the `n_max` cap.
pub fn matrix_shape(units: ComputeUnits, memory_mb: u64, params: &ChallengeParams) -> (u32, u64) {
    let claim = aicpw_verify::ComputeUnits(units.0);
    let memory = memory_mb.saturating_mul(1 << 20) / MEMORY_SHARE_DIVISOR;
    let memory_n = (memory / SOLVE_BYTES_PER_ENTRY).isqrt();
    let memory_n = u32::try_from(memory_n).unwrap_or(u32::MAX) / TILE_DEFAULT * TILE_DEFAULT;
    let n = challenge_size(claim).min(params.n_max).min(memory_n).max(TILE_DEFAULT);
    let entries = u64::from(n) * u64::from(n);
    let setup_ms = entries * SOLVE_BYTES_PER_ENTRY / params.setup_bytes_per_ms;
    let deadline = challenge_deadline_ms(matrix::work(n), claim, params.round_trip_ms);
    (n, deadline.saturating_add(setup_ms))
}

/// The seed of challenge `id` to `node` issued in a block with `randomness` at `time_ms`.
pub fn seed(randomness: &Hash32, time_ms: u64, node: NodeId, id: ChallengeId) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(SEED_CONTEXT);
    hasher.update(&randomness.0);
    hasher.update(&time_ms.to_le_bytes());
    hasher.update(&node.0.to_le_bytes());
    hasher.update(&id.0.to_le_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The next round after `now`: rounds fall at `k·interval` for every node of every owner, so
/// one machine relaying the challenges of several owners' nodes must answer them all within one
/// deadline (an owner's own nodes share its rounds anyway).
pub fn next_due(now: u64, interval_ms: u64) -> u64 {
    if interval_ms == 0 {
        return u64::MAX;
    }
    (now / interval_ms).saturating_add(1).saturating_mul(interval_ms)
}
