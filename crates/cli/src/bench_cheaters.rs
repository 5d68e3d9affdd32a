//! Cheating solvers against the ledger's own challenge checks: each trial is a fresh dev chain
//! (the real ledger, the dev genesis's challenge rules) on which a node registers, is issued a
//! matrix challenge, answers it the way its cheat does (commitment, then the Merkle paths of the
//! tiles the next block draws) and is judged by the ledger: a challenge that fails (slash) or runs
//! late (a miss) caught the cheater; one that passes did not.
//!
//! The product starts from the provider's real solver, and the answer lands when a machine of
//! the capacity the challenge was sized for would send it; each cheat then changes what it
//! commits or when:
//! - `skip_tiles`: 2% of `C`'s tiles never computed (left zero);
//! - `lower_precision`: every entry rounded to 11 significant bits, what an FP16 accumulator
//!   keeps (kinder to the cheater than FP16 itself, which also overflows past 65,504);
//! - `reuse_earlier`: the commitment and paths of the previous trial's challenge, sent at once;
//! - `relay_past_deadline`: the true answer, relayed from another machine and landing 1 ms to
//!   one deadline's length after the deadline;
//! - `relay_within_deadline`: the same relay landing before the deadline. A challenge proves
//!   that the capacity answered, not where it sits, so this one is not observable: it is
//!   measured so that the figure says so.

use aicpw_ledger::challenge::{Challenge, ChallengeStatus, OPENINGS_PER_TX_MAX};
use aicpw_provider::challenge::solve_matrix;
use aicpw_sim::chain::Chain;
use aicpw_types::{Amount, Hardware, Hash32, Keypair, NodeId, TxBody};
use aicpw_verify::capacity::OPS_PER_SECOND_PER_UNIT;
use aicpw_verify::matrix::{commit_product, work};
use aicpw_verify::merkle::TileTree;
use aicpw_verify::MatrixChallenge;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

/// Share of tiles `skip_tiles` leaves uncomputed, in parts per million (2%).
pub const SKIPPED_PPM: u32 = 20_000;
/// Significant bits `lower_precision` keeps of every entry (FP16's mantissa and its hidden bit).
const PRECISION_BITS: u32 = 11;
/// Time of the block that registers the node.
const START_MS: u64 = 1_000;

/// How a cheating solver departs from the honest answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    SkipTiles,
    LowerPrecision,
    ReuseEarlier,
    RelayPastDeadline,
    RelayWithinDeadline,
}

impl Cheat {
    pub const ALL: [Cheat; 5] = [
        Cheat::SkipTiles,
        Cheat::LowerPrecision,
        Cheat::ReuseEarlier,
        Cheat::RelayPastDeadline,
        Cheat::RelayWithinDeadline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cheat::SkipTiles => "skip_tiles",
            Cheat::LowerPrecision => "lower_precision",
            Cheat::ReuseEarlier => "reuse_earlier",
            Cheat::RelayPastDeadline => "relay_past_deadline",
            Cheat::RelayWithinDeadline => "relay_within_deadline",
        }
    }

    /// Whether a capacity challenge can see this cheat at all.
    pub fn observable(self) -> bool {
        self != Cheat::RelayWithinDeadline
    }
}

/// How the ledger judged one cheating solver's trials.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Detection {
    pub trials: u32,
    /// Failed or late: the challenge did not pass.
    pub caught: u32,
    /// Openings refuted by the ledger: slashed.
    pub failed: u32,
    /// No valid commitment before the deadline: a miss.
    pub late: u32,
    pub passed: u32,
    pub detection_rate: f64,
    pub observable: bool,
    /// Edge of the challenges the ledger issued (sized for a node claiming nothing).
    pub n: u32,
    pub open_count: u32,
}

/// A deterministic stream of `u64`s for one trial.
struct Draws {
    key: Hash32,
    counter: u64,
}

impl Draws {
    fn new(cheat: Cheat, trial: u32) -> Draws {
        let key = Hash32::of(&[cheat.name().as_bytes(), &trial.to_le_bytes()].concat());
        Draws { key, counter: 0 }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        let hash = Hash32::of(&[self.key.0.as_slice(), &self.counter.to_le_bytes()].concat());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&hash.0[..8]);
        u64::from_le_bytes(bytes)
    }

    /// Uniform in `low..=high` (modulo bias below 2^-40 for the ranges used here).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One trial's chain: the dev genesis, one provider account, one node.
struct Trial {
    chain: Chain,
    key: Keypair,
    nonce: u64,
    node: NodeId,
}

impl Trial {
    fn new(seed: u64) -> Result<Trial> {
        let genesis = aicpw_node::dev_genesis();
        let key = Keypair::dev(1);
        let proposer = Keypair::dev(0).account();
        let chain = Chain::new(genesis.params, genesis.accounts, proposer, seed);
        let mut trial = Trial { chain, key, nonce: 0, node: NodeId(0) };
        trial.send(TxBody::Bond { amount: Amount::tokens(1_000) }, START_MS);
        let hardware = Hardware { cpu_cores: 8, memory_mb: 16_384, ..Hardware::default() };
        let register = TxBody::RegisterNode {
            hardware,
            x25519_key: trial.key.x25519_public(),
            endpoint: "bench-node".into(),
            price_per_hour: Amount(3_600_000),
        };
        trial.send(register, START_MS);
        let outcome = trial.chain.produce(START_MS);
        ensure!(outcome.rejected.is_empty(), "registration refused: {:?}", outcome.rejected);
        trial.node = *trial.chain.state.nodes.keys().next().context("a registered node")?;
        // A new node pulls its owner's round forward to the next block.
        trial.chain.produce(START_MS + 1);
        Ok(trial)
    }

    fn send(&mut self, body: TxBody, now: u64) {
        let tx = self.chain.transaction(self.key.account(), self.nonce, body);
        self.nonce += 1;
        self.chain.receive(tx, now);
    }

    fn matrix(&self) -> Result<Challenge> {
        let node = self.chain.state.nodes.get(&self.node).context("the node")?;
        node.capacity.matrix.clone().context("a matrix challenge")
    }

    /// Commits `tree`'s root at `at`, then opens the drawn tiles with its paths; returns the
    /// challenge as the ledger left it.
    fn answer(&mut self, tree: &TileTree, at: u64) -> Result<Challenge> {
        let issued = self.matrix()?;
        let root = Hash32(tree.root());
        self.send(TxBody::ChallengeCommit { challenge: issued.id, root }, at);
        let outcome = self.chain.produce(at);
        if !outcome.rejected.is_empty() {
            // Refused (past the deadline): the block after the deadline marks the round late.
            self.nonce -= 1;
            self.chain.produce(issued.deadline_ms.max(at) + 1);
            return self.matrix();
        }
        let mut now = at + 1;
        self.chain.produce(now);
        let drawn = self.matrix()?.drawn_tiles().context("tiles drawn after the commitment")?;
        for (chunk, tiles) in drawn.chunks(OPENINGS_PER_TX_MAX).enumerate() {
            let paths = tiles
                .iter()
                .map(|tile| Ok(tree.path(*tile)?.into_iter().map(Hash32).collect()))
                .collect::<Result<Vec<Vec<Hash32>>>>()?;
            let first = (chunk * OPENINGS_PER_TX_MAX) as u32;
            self.send(TxBody::ChallengeOpen { challenge: issued.id, first, paths }, now);
            now += 1;
            self.chain.produce(now);
            if self.matrix()?.status != ChallengeStatus::Opening {
                break;
            }
        }
        self.matrix()
    }
}

/// Zeroes `count` distinct tiles of `product`, drawn by `draws`.
fn skip_tiles(matrix: &MatrixChallenge, product: &mut [i32], draws: &mut Draws) {
    let tiles = matrix.tile_count();
    let count = (u64::from(tiles) * u64::from(SKIPPED_PPM)).div_ceil(1_000_000).max(1);
    let (n, tile, side) = (matrix.n as usize, matrix.tile as usize, matrix.tiles_per_side());
    let mut skipped = std::collections::BTreeSet::new();
    while (skipped.len() as u64) < count {
        skipped.insert((draws.next() % u64::from(tiles)) as u32);
    }
    for index in skipped {
        let (row0, column0) = ((index / side) as usize * tile, (index % side) as usize * tile);
        for row in row0..row0 + tile {
            product[row * n + column0..row * n + column0 + tile].fill(0);
        }
    }
}

/// `value` rounded to [`PRECISION_BITS`] significant bits, ties away from zero.
fn round_significant(value: i32) -> i32 {
    let magnitude = value.unsigned_abs();
    let bits = u32::BITS - magnitude.leading_zeros();
    if bits <= PRECISION_BITS {
        return value;
    }
    let shift = bits - PRECISION_BITS;
    let rounded = ((u64::from(magnitude) + (1 << (shift - 1))) >> shift) << shift;
    let rounded = i64::try_from(rounded).unwrap_or(i64::MAX);
    i32::try_from(if value < 0 { -rounded } else { rounded }).unwrap_or(value)
}

/// Milliseconds a machine of exactly the capacity `challenge` was sized for takes to solve it.
fn compute_ms(challenge: &Challenge) -> u64 {
    let ops_per_ms = u128::from(challenge.sized_for.0.max(1)) * (OPS_PER_SECOND_PER_UNIT / 1_000);
    u64::try_from(work(challenge.n).div_ceil(ops_per_ms)).unwrap_or(u64::MAX)
}

/// Runs `trials` trials of `cheat` on `threads` threads and counts what the ledger caught.
pub fn measure(cheat: Cheat, trials: u32, threads: usize) -> Result<Detection> {
    let mut detection = Detection { observable: cheat.observable(), ..Detection::default() };
    // The answer `reuse_earlier` sends: the previous trial's, or for the first one, that of a
    // challenge of the same size from another seed.
    let mut earlier: Option<TileTree> = None;
    for trial in 0..trials {
        let mut chain = Trial::new(u64::from(trial))?;
        let issued = chain.matrix()?;
        ensure!(issued.status == ChallengeStatus::Issued, "the round is issued");
        let matrix = issued.matrix().context("a valid matrix challenge")?;
        let mut draws = Draws::new(cheat, trial);
        let mut product = solve_matrix(&matrix, threads)?.product().to_vec();
        let deadline = issued.deadline_ms;
        // The answer lands when a machine of the capacity the challenge was sized for would have
        // it (this machine's own solve time would make the trials depend on its load).
        let honest_at = issued.issued_ms + compute_ms(&issued);
        let (tree, at) = match cheat {
            Cheat::SkipTiles => {
                skip_tiles(&matrix, &mut product, &mut draws);
                (commit_product(&matrix, &product)?, honest_at)
            }
            Cheat::LowerPrecision => {
                product.iter_mut().for_each(|entry| *entry = round_significant(*entry));
                (commit_product(&matrix, &product)?, honest_at)
            }
            Cheat::ReuseEarlier => {
                let own = commit_product(&matrix, &product)?;
                let previous = match earlier.replace(own) {
                    Some(previous) => previous,
                    None => {
                        let other = MatrixChallenge { seed: [0xEA; 32], ..matrix };
                        commit_product(&other, solve_matrix(&other, threads)?.product())?
                    }
                };
                (previous, issued.issued_ms + 1)
            }
            Cheat::RelayPastDeadline => {
                let span = deadline - issued.issued_ms;
                (commit_product(&matrix, &product)?, deadline + draws.between(1, span))
            }
            Cheat::RelayWithinDeadline => {
                (commit_product(&matrix, &product)?, draws.between(honest_at, deadline))
            }
        };
        let judged = chain.answer(&tree, at)?;
        detection.trials += 1;
        detection.n = judged.n;
        detection.open_count = judged.open_count;
        match judged.status {
            ChallengeStatus::Failed => detection.failed += 1,
            ChallengeStatus::Late => detection.late += 1,
            ChallengeStatus::Passed => detection.passed += 1,
            other => bail!("trial {trial} of {}: left {other:?}", cheat.name()),
        }
    }
    detection.caught = detection.failed + detection.late;
    detection.detection_rate = f64::from(detection.caught) / f64::from(detection.trials.max(1));
    Ok(detection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_eleven_significant_bits() {
        assert_eq!(round_significant(2_047), 2_047);
        assert_eq!(round_significant(4_099), 4_100);
        assert_eq!(round_significant(-4_099), -4_100);
        assert_eq!(round_significant(100_000), 100_032);
        assert_eq!(round_significant(i32::MIN), i32::MIN);
    }

    /// Every cheat runs through the ledger; the observable ones never pass, the honest relay
    /// always does (the challenge cannot tell where the capacity sits).
    #[test]
    fn the_ledger_catches_every_observable_cheat_and_passes_the_relay_in_time() {
        for cheat in Cheat::ALL {
            let detection = measure(cheat, 2, 2).expect("trials run");
            assert_eq!(detection.trials, 2, "{cheat:?}");
            assert_eq!(detection.open_count, 256, "{cheat:?}: the dev genesis's draw");
            let expected = match cheat {
                Cheat::RelayWithinDeadline => (0, 0, 2),
                Cheat::RelayPastDeadline => (0, 2, 0),
                _ => (2, 0, 0),
            };
            let counted = (detection.failed, detection.late, detection.passed);
            assert_eq!(counted, expected, "{cheat:?}: {detection:?}");
        }
    }
}
