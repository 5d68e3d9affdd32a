//! `aicpw bench challenge`: what a capacity challenge costs a node and the validators, and how
//! surely it catches a node that skips part of it.
//!
//! - `capacity_overhead`: the share of the node's time spent on challenges: one matrix challenge
//!   of the size the ledger gives this machine (solve + opening the drawn tiles, all cores) and
//!   one hash puzzle (one core) per round, at the dev genesis's interval
//!   (`capacity_overhead_network`: at the recommended network interval). At most 2%.
//! - `detection_rate`: share of seeded trials in which a node that skipped 2% of `C` is caught
//!   by `k` openings (expected `1 - 0.98^k`). Must be at least 0.99.
//! - `efficiency`: the solver's operations per second (derive + multiply + commit) over this
//!   machine's measured INT8 multiply-add peak. Must be at least 0.5.
//! - `verify_ms`: a validator's cost of checking the `k` openings.
//! - `gpu`: the same figures for the GPU solver against the GPU's vendor INT8 peak, when the
//!   binary is built with `--features cuda` and a GPU passes its self-test; otherwise
//!   `{"available": false, "reason"}`.
//!
//! `n = 0` benches the size the ledger would give this machine (sized from a first solve; for
//! the GPU, from a first GPU solve).

use aicpw_ledger::challenge::{ChallengeParams, OPENINGS_PER_TX_MAX};
use aicpw_provider::challenge::{bench_challenge, ChallengeBench, Solver};
use aicpw_provider::challenger::OPENINGS_PER_TX;
use aicpw_types::codec::Encode;
use aicpw_types::{Amount, ChallengeId, Hash32, Keypair, Tx, TxBody};
use aicpw_verify::capacity::challenge_size;
use aicpw_verify::matrix::{work, TILE_DEFAULT};
use aicpw_verify::merkle::path_length;
use aicpw_verify::puzzle::solve_puzzle;
use aicpw_verify::{ComputeUnits, HashPuzzle, MatrixChallenge};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::time::Instant;

/// Edge of the probe that sizes the bench when `n = 0`.
const PROBE_N: u32 = 1_024;
/// Puzzles solved to time the puzzle's share.
const PUZZLE_SAMPLES: u8 = 16;
const OVERHEAD_MAX: f64 = 0.02;
const DETECTION_MIN: f64 = 0.99;
const EFFICIENCY_MIN: f64 = 0.5;

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
        "capacity_overhead": round_ms / params.interval_ms.max(1) as f64,
        "capacity_overhead_network": round_ms / ChallengeParams::INTERVAL_MS_NETWORK as f64,
        "detection_rate": bench.detection_rate,
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
    let capacity_overhead = round_ms / interval_dev;
    let open_txs = (k as usize).div_ceil(OPENINGS_PER_TX);
    let open_bytes = open_tx_bytes(ledger_n.max(n))?;
    let pass = json!({
        "capacity_overhead": capacity_overhead <= OVERHEAD_MAX,
        "detection_rate": bench.detection_rate >= DETECTION_MIN,
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
        "capacity_overhead": capacity_overhead,
        "capacity_overhead_network": round_ms / interval_network,
        "interval_ms_network": ChallengeParams::INTERVAL_MS_NETWORK,
        "detection_rate": bench.detection_rate,
        "detection_expected": bench.detection_expected,
        "skipped_fraction": f64::from(aicpw_provider::challenge::SKIPPED_PPM) / 1e6,
        "detection_trials": aicpw_provider::challenge::DETECTION_TRIALS,
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
