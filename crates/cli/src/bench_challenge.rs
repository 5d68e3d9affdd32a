//! `aicpw bench challenge`: what a capacity challenge costs a node and the validators, and how
//! surely it catches a node that cheats on it.
//!
//! - `capacity_overhead` (measured): a CPU-bound task runs on every thread for one dev-genesis
//!   interval (60 s) while the provider answers that interval's round as its challenger does
//!   (matrix challenge of the size the ledger gives this machine on every thread, the drawn tiles
//!   opened, the puzzle): time spent on the round over the wall time. `task_throughput_loss`: what
//!   the task's own rate lost. `overhead.rounds_late`: rounds whose commitment under that load
//!   came after the ledger's deadline. At most 2%.
//! - `capacity_overhead_sized` (the earlier figure, a ratio of parameters): an idle solve at the
//!   ledger's size plus the openings and a one-core puzzle, over the dev interval
//!   (`capacity_overhead_sized_network`: over the recommended network interval).
//! - `detection_rate` (measured): the lowest share, over the observable cheating solvers, of
//!   trials the ledger's own challenge checks caught (`detection`: per solver, trials, caught,
//!   failed, late, passed; see [`crate::bench_cheaters`]). Must be at least 0.99.
//! - `detection_rate_sampled` (the earlier figure): share of trials in which `k` drawn indices
//!   meet a random 2% of the tiles, no solver and no verifier involved (expected `1 - 0.98^k`).
//! - `efficiency`: the solver's operations per second (derive + multiply + commit) over this
//!   machine's measured INT8 multiply-add peak. Must be at least 0.5.
//! - `verify_ms`: a validator's cost of checking the `k` openings.
//! - `gpu`: the same figures for the GPU solver against the GPU's vendor INT8 peak, when the
//!   binary is built with `--features cuda` and a GPU passes its self-test; otherwise
//!   `{"available": false, "reason"}`.
//!
//! `n = 0` benches the size the ledger would give this machine (sized from a first solve; for
//! the GPU, from a first GPU solve).

use crate::bench_cheaters::{self, Cheat};
use aicpw_ledger::challenge::{matrix_shape, ChallengeParams, OPENINGS_PER_TX_MAX};
use aicpw_provider::challenge::{bench_challenge, ChallengeBench, Solver};
use aicpw_provider::challenger::OPENINGS_PER_TX;
use aicpw_types::codec::Encode;
use aicpw_types::ComputeUnits as LedgerUnits;
use aicpw_types::{Amount, ChallengeId, Hash32, Keypair, Tx, TxBody};
use aicpw_verify::capacity::challenge_size;
use aicpw_verify::matrix::detection_probability_ppm;
use aicpw_verify::matrix::{work, TILE_DEFAULT};
use aicpw_verify::merkle::path_length;
use aicpw_verify::puzzle::solve_puzzle;
use aicpw_verify::{ComputeUnits, HashPuzzle, MatrixChallenge};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Edge of the probe that sizes the bench when `n = 0`.
const PROBE_N: u32 = 1_024;
/// Puzzles solved to time the puzzle's share.
const PUZZLE_SAMPLES: u8 = 16;
const OVERHEAD_MAX: f64 = 0.02;
const DETECTION_MIN: f64 = 0.99;
const EFFICIENCY_MIN: f64 = 0.5;
/// Trials per cheating solver, each a fresh chain and challenge.
const CHEAT_TRIALS: u32 = 200;

/// The edge the ledger gives a node proving `ops_per_sec`.
fn ledger_size(ops_per_sec: f64, params: &ChallengeParams) -> u32 {
    challenge_size(ComputeUnits((ops_per_sec / 1e9) as u64)).min(params.n_max)
}

/// Mean milliseconds to solve a puzzle of the genesis's difficulty on one core.
fn puzzle_ms(difficulty: u32) -> Result<f64> {
    if difficulty == 0 {
        return Ok(0.0);
    }
    let start = Instant::now();
    for sample in 0..PUZZLE_SAMPLES {
        let puzzle = HashPuzzle { seed: [sample; 32], difficulty };
        solve_puzzle(&puzzle, 0, u64::MAX)?.context("a puzzle within u64 nonces")?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / f64::from(PUZZLE_SAMPLES))
}

/// Largest `ChallengeOpen` the provider sends for a challenge of edge `n`, in bytes.
fn open_tx_bytes(n: u32) -> Result<usize> {
    let challenge = MatrixChallenge::new([0; 32], n, TILE_DEFAULT)?;
    let depth = path_length(challenge.tile_count(), challenge.tile_count() - 1)
        .max(path_length(challenge.tile_count(), 0));
    let paths = vec![vec![Hash32([0; 32]); depth]; OPENINGS_PER_TX];
    let tx = Tx {
        chain_id: aicpw_node::DEV_CHAIN_ID.into(),
        signer: Keypair::dev(0).account(),
        nonce: u64::MAX,
        fee: Amount(u128::MAX),
        body: TxBody::ChallengeOpen { challenge: ChallengeId(u64::MAX), first: 0, paths },
    };
    Ok(Keypair::dev(0).sign(tx).to_bytes().len())
}

/// `n`, or when it is 0 the edge the ledger would give the machine `solver` runs on.
fn size(n: u32, solver: &Solver, params: &ChallengeParams) -> Result<u32> {
    if n > 0 {
        return Ok(n);
    }
    let probe = MatrixChallenge::new([7; 32], PROBE_N, TILE_DEFAULT)?;
    let seconds = solver.solve(&probe)?.timings().total().as_secs_f64();
    Ok(ledger_size(work(PROBE_N) as f64 / seconds, params))
}

/// Intervals of the dev genesis (60 s each) the measured overhead runs for.
const OVERHEAD_INTERVALS: u32 = 1;
/// Bytes the CPU-bound task hashes per unit of its work.
const TASK_CHUNK: usize = 1 << 16;

/// What answering challenges cost a provider busy with a CPU-bound task.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredOverhead {
    pub rounds: u32,
    pub n: u32,
    /// Rounds whose matrix commitment took longer than the ledger's deadline for the claim.
    pub rounds_late: u32,
    pub deadline_ms: u64,
    /// Mean wall time of one round under the task's load: solve, open, puzzle.
    pub round_ms: f64,
    pub wall_ms: f64,
    /// Time spent answering challenges over the stretch's wall time.
    pub capacity_overhead: f64,
    /// The share of the task's own throughput the challenges took: its rate over the stretch
    /// against its rate between the rounds.
    pub task_throughput_loss: f64,
}

/// The CPU-bound task: BLAKE3 over a buffer until stopped, counting chunks hashed.
fn task(stop: &AtomicBool, done: &AtomicU64) {
    let mut chunk = vec![0u8; TASK_CHUNK];
    while !stop.load(Ordering::Relaxed) {
        let digest = Hash32::of(&chunk);
        chunk[..32].copy_from_slice(&digest.0);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// One round as the provider's challenger answers it: the matrix challenge of edge `n` solved
/// on every thread, the `k` drawn tiles opened, then the puzzle on this thread. Returns the time
/// to the commitment and the whole round's.
fn answer_round(
    solver: &Solver,
    round: u32,
    n: u32,
    k: u32,
    difficulty: u32,
) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let seed = Hash32::of(&round.to_le_bytes()).0;
    let challenge = MatrixChallenge::new(seed, n, TILE_DEFAULT)?;
    let response = solver.solve(&challenge)?;
    let committed = start.elapsed();
    let randomness = Hash32::of(&response.root()).0;
    let drawn = aicpw_verify::open_indices(&challenge, &response.root(), &randomness, k)?;
    response.open(&drawn)?;
    if difficulty > 0 {
        let puzzle = HashPuzzle { seed, difficulty };
        solve_puzzle(&puzzle, 0, u64::MAX)?.context("a puzzle within u64 nonces")?;
    }
    Ok((committed, start.elapsed()))
}

/// Runs a CPU-bound task on `threads` threads for `intervals` intervals of `interval`, answering
/// one round (matrix challenge of edge `n` with `deadline_ms`, `k` openings, puzzle) at the start
/// of each, as a provider does; measures the time the rounds took and what the task lost.
pub fn measure_overhead(
    threads: usize,
    interval: Duration,
    intervals: u32,
    (n, deadline_ms): (u32, u64),
    k: u32,
    difficulty: u32,
) -> Result<MeasuredOverhead> {
    let solver = Solver::cpu(threads);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| task(&stop, &done));
        }
        let measured = (|| {
            let (start, before) = (Instant::now(), done.load(Ordering::Relaxed));
            let (mut busy, mut done_in_rounds, mut rounds_late) = (Duration::ZERO, 0, 0);
            for round in 0..intervals {
                let done_before = done.load(Ordering::Relaxed);
                let (committed, spent) = answer_round(&solver, round, n, k, difficulty)?;
                done_in_rounds += done.load(Ordering::Relaxed) - done_before;
                busy += spent;
                rounds_late += u32::from(committed.as_millis() > u128::from(deadline_ms));
                std::thread::sleep((interval * (round + 1)).saturating_sub(start.elapsed()));
            }
            let wall = start.elapsed().as_secs_f64();
            let total = done.load(Ordering::Relaxed) - before;
            let rate = total as f64 / wall;
            // The task's rate alone: between the rounds, in the same stretch (unknown, NaN, when
            // the rounds took all of it).
            let between = wall - busy.as_secs_f64();
            let alone = match between > 0.0 {
                true => (total - done_in_rounds) as f64 / between,
                false => f64::NAN,
            };
            Ok(MeasuredOverhead {
                rounds: intervals,
                n,
                rounds_late,
                deadline_ms,
                round_ms: busy.as_secs_f64() * 1e3 / f64::from(intervals.max(1)),
                wall_ms: wall * 1e3,
                capacity_overhead: busy.as_secs_f64() / wall,
                task_throughput_loss: 1.0 - rate / alone,
            })
        })();
        stop.store(true, Ordering::Relaxed);
        measured
    })
}

/// Where a solve went and how close it came to the peak, GOPS and milliseconds.
fn solver_figures(bench: &ChallengeBench) -> Value {
    json!({
        "engine": format!("{:?}", bench.engine),
        "solve_ms": bench.solve_ms,
        "derive_ms": bench.derive_ms,
        "multiply_ms": bench.multiply_ms,
        "transfer_ms": bench.transfer_ms,
        "commit_ms": bench.commit_ms,
        "open_ms": bench.open_ms,
        "solver_gops": bench.ops_per_sec / 1e9,
        "multiply_gops": bench.multiply_ops_per_sec / 1e9,
        "peak_gops": bench.peak_ops_per_sec / 1e9,
        "efficiency": bench.efficiency,
        "multiply_efficiency": bench.multiply_efficiency,
    })
}

/// The GPU solver's figures at the size the ledger would give it.
#[cfg(feature = "cuda")]
fn gpu(n: u32, threads: usize, k: u32, params: &ChallengeParams) -> Result<Value> {
    let solver = Solver::detect(threads);
    let Some(gpu) = solver.gpu() else {
        return Ok(json!({ "available": false, "reason": solver.gpu_unavailable() }));
    };
    let n = size(n, &solver, params)?;
    let bench = aicpw_provider::challenge::bench_challenge_gpu(gpu, n, threads, k)?;
    let device = gpu.device();
    let round_ms = bench.solve_ms + bench.open_ms;
    let mut figures = solver_figures(&bench);
    let extra = json!({
        "available": true,
        "device": device.name,
        "compute_capability": format!("{}.{}", device.compute_capability.0, device.compute_capability.1),
        "multiprocessors": device.multiprocessors,
        "clock_mhz": device.clock_khz / 1_000,
        "memory_bytes": device.memory_bytes,
        "peak_source": "vendor: multiprocessors x dense INT8 operations per clock x the driver's highest clock",
        "n": n,
        "k": k,
        "capacity_overhead_sized": round_ms / params.interval_ms.max(1) as f64,
        "capacity_overhead_sized_network": round_ms / ChallengeParams::INTERVAL_MS_NETWORK as f64,
        "detection_rate_sampled": bench.sampled_detection_rate,
        "verify_ms": bench.verify_ms,
    });
    if let (Some(map), Value::Object(more)) = (figures.as_object_mut(), extra) {
        map.extend(more);
    }
    Ok(figures)
}

/// This build has no GPU solver.
#[cfg(not(feature = "cuda"))]
fn gpu(_n: u32, threads: usize, _k: u32, _params: &ChallengeParams) -> Result<Value> {
    let solver = Solver::detect(threads);
    Ok(json!({ "available": false, "reason": solver.gpu_unavailable() }))
}

pub fn run(n: u32, threads: usize, k: u32) -> Result<Value> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = if threads == 0 { cores } else { threads };
    let dev = aicpw_node::dev_genesis().params.challenges;
    let gpu_n = n;
    let n = size(n, &Solver::cpu(threads), &dev)?;
    let bench = bench_challenge(n, threads, k)?;
    let ledger_n = ledger_size(bench.ops_per_sec, &dev);
    // One round: the matrix challenge at the ledger's size on all cores, the puzzle on one.
    let matrix_ms = work(ledger_n) as f64 / bench.ops_per_sec * 1e3 + bench.open_ms;
    let puzzle_ms = puzzle_ms(dev.puzzle_difficulty)?;
    let round_ms = matrix_ms + puzzle_ms / threads as f64;
    let interval_dev = dev.interval_ms.max(1) as f64;
    let interval_network = ChallengeParams::INTERVAL_MS_NETWORK as f64;
    let overhead = measure_overhead(
        threads,
        Duration::from_millis(dev.interval_ms),
        OVERHEAD_INTERVALS,
        matrix_shape(LedgerUnits((bench.ops_per_sec / 1e9) as u64), u64::MAX, &dev),
        dev.open_count,
        dev.puzzle_difficulty,
    )?;
    let cheaters = Cheat::ALL
        .into_iter()
        .map(|cheat| Ok((cheat, bench_cheaters::measure(cheat, CHEAT_TRIALS, threads)?)))
        .collect::<Result<Vec<_>>>()?;
    let detection_rate = cheaters
        .iter()
        .filter(|(cheat, _)| cheat.observable())
        .map(|(_, detection)| detection.detection_rate)
        .fold(1.0, f64::min);
    let detection: serde_json::Map<String, Value> = cheaters
        .iter()
        .map(|(cheat, detection)| Ok((cheat.name().to_string(), serde_json::to_value(detection)?)))
        .collect::<Result<_>>()?;
    let open_txs = (k as usize).div_ceil(OPENINGS_PER_TX);
    let open_bytes = open_tx_bytes(ledger_n.max(n))?;
    let pass = json!({
        "capacity_overhead": overhead.capacity_overhead <= OVERHEAD_MAX,
        "detection_rate": detection_rate >= DETECTION_MIN,
        "efficiency": bench.efficiency >= EFFICIENCY_MIN,
    });
    let mut figures = solver_figures(&bench);
    let rest = json!({
        "n": n,
        "ledger_n": ledger_n,
        "k": k,
        "threads": threads,
        "cores": cores,
        "puzzle_ms": puzzle_ms,
        "puzzle_difficulty": dev.puzzle_difficulty,
        "round_ms": round_ms,
        "interval_ms": dev.interval_ms,
        "capacity_overhead": overhead.capacity_overhead,
        "task_throughput_loss": overhead.task_throughput_loss,
        "overhead": {
            "intervals": overhead.rounds,
            "wall_ms": overhead.wall_ms,
            "n": overhead.n,
            "round_ms_under_load": overhead.round_ms,
            "deadline_ms": overhead.deadline_ms,
            "rounds_late": overhead.rounds_late,
            "task": "BLAKE3 over 64 KiB chunks on every thread",
        },
        "capacity_overhead_sized": round_ms / interval_dev,
        "capacity_overhead_sized_network": round_ms / interval_network,
        "interval_ms_network": ChallengeParams::INTERVAL_MS_NETWORK,
        "detection_rate": detection_rate,
        "detection": detection,
        "detection_expected_skip_tiles": f64::from(detection_probability_ppm(bench_cheaters::SKIPPED_PPM, dev.open_count)) / 1e6,
        "detection_rate_sampled": bench.sampled_detection_rate,
        "detection_expected": bench.detection_expected,
        "skipped_fraction": f64::from(aicpw_provider::challenge::SKIPPED_PPM) / 1e6,
        "detection_trials_sampled": aicpw_provider::challenge::DETECTION_TRIALS,
        "verify_ms": bench.verify_ms,
        "open_txs": open_txs,
        "open_tx_bytes_max": open_bytes,
        "openings_per_tx_ledger_max": OPENINGS_PER_TX_MAX,
        "pass": pass,
        "gpu": gpu(gpu_n, threads, k, &dev)?,
    });
    if let (Some(map), Value::Object(rest)) = (figures.as_object_mut(), rest) {
        map.extend(rest);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overhead is measured from the rounds a loaded machine really answered: the stretch
    /// lasts its intervals, every round is counted, and its time shows in the ratio.
    #[test]
    fn the_overhead_is_the_rounds_time_over_the_stretch() {
        let interval = Duration::from_millis(1_500);
        let measured =
            measure_overhead(2, interval, 2, (512, 60_000), 64, 8).expect("the stretch runs");
        assert_eq!((measured.rounds, measured.n, measured.rounds_late), (2, 512, 0));
        assert!(measured.wall_ms >= 3_000.0, "{measured:?}");
        assert!(measured.round_ms > 0.0, "{measured:?}");
        let busy = measured.round_ms * 2.0 / measured.wall_ms;
        assert!((measured.capacity_overhead - busy).abs() < 1e-9, "{measured:?}");
        assert!(measured.capacity_overhead < 1.0, "{measured:?}");
        // A deadline no solve can meet counts every round late.
        let late = measure_overhead(1, interval, 1, (512, 0), 64, 0).expect("the stretch runs");
        assert_eq!(late.rounds_late, 1);
    }
}
