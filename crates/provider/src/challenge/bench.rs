//! Measuring the solver against the machine: the multiply-add peak, the solver's share of it, what
//! a challenge costs the provider and the validator, and how often a cheat is caught. These are
//! reports for people (floating point is fine here); nothing in them feeds ledger state.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use aicpw_verify::matrix::TILE_DEFAULT;
use aicpw_verify::{
    detection_probability_ppm, open_indices, verify_openings, MatrixChallenge, TileOpening,
};

use super::gemm::{self, MicroKernel};
use super::{solve_matrix_with, ChallengeError, Engine, Isa, MatrixResponse};

/// Seed of the bench's challenge.
const BENCH_SEED: [u8; 32] = *b"AICPW bench matrix challenge v1.";
/// Seeded trials behind [`ChallengeBench::detection_rate`].
pub const DETECTION_TRIALS: u32 = 2_000;
/// Share of tiles the cheating solver skips, in parts per million (2%).
pub const SKIPPED_PPM: u32 = 20_000;
/// Depth of the L1-resident micro-kernel run: its panels take at most 10 KiB.
const L1_DEPTH: usize = 256;
/// Solves per bench; the fastest counts (the machine is shared, and noise only slows a run).
const SOLVE_REPEATS: usize = 3;
/// Target duration of one timed peak run.
const PEAK_RUN: Duration = Duration::from_millis(150);

/// The machine's integer multiply-add peak for one instruction set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakReport {
    pub isa: Isa,
    pub threads: usize,
    /// Register-resident loop of independent multiply-add instructions (none for `Portable`).
    pub register_ops_per_sec: Option<f64>,
    /// The solver's own micro-kernel on panels that stay in L1.
    pub kernel_l1_ops_per_sec: f64,
    /// The larger of the two: what the solver is measured against. Operations = 2 × multiply-adds.
    pub ops_per_sec: f64,
}

/// One bench of the whole challenge at size `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeBench {
    pub n: u32,
    /// CPU threads: the whole solve's on the CPU, derivation and commitment's on a GPU.
    pub threads: usize,
    pub engine: Engine,
    /// Challenge to commitment: derive + multiply + commit.
    pub solve_ms: f64,
    pub derive_ms: f64,
    pub multiply_ms: f64,
    /// Copies to and from a GPU.
    pub transfer_ms: f64,
    /// Hashing the tiles (and on a GPU, the self-check of a few tiles).
    pub commit_ms: f64,
    /// `2n³ / solve time`.
    pub ops_per_sec: f64,
    /// `2n³ / multiply time`.
    pub multiply_ops_per_sec: f64,
    /// The CPU's measured peak, or a GPU's vendor peak (0 when unknown: efficiencies are then
    /// infinite, `null` in JSON).
    pub peak_ops_per_sec: f64,
    /// `ops_per_sec / peak_ops_per_sec`.
    pub efficiency: f64,
    /// `multiply_ops_per_sec / peak_ops_per_sec`.
    pub multiply_efficiency: f64,
    pub k: u32,
    /// Opening the `k` drawn tiles.
    pub open_ms: f64,
    /// Share of an hour spent answering one challenge per hour (solve + open).
    pub capacity_overhead: f64,
    /// Share of seeded trials in which `k` drawn indices meet a random 2% of the tiles: the
    /// draw's sampling alone, no solver and no verifier (`aicpw bench challenge` runs cheating
    /// solvers through the ledger for that).
    pub sampled_detection_rate: f64,
    /// `1 - 0.98^k`, the rate the trials estimate.
    pub detection_expected: f64,
    /// The validator's cost: drawing and checking the `k` openings.
    pub verify_ms: f64,
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Runs `call` on `threads` threads, each `calls` times; returns the wall time.
fn timed(threads: usize, calls: u64, call: &(impl Fn() + Sync)) -> Duration {
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| (0..calls).for_each(|_| call()));
        }
    });
    start.elapsed()
}

/// Multiply-adds per second of `call` (doing `macs` each) on `threads` threads: calibrated to
/// about [`PEAK_RUN`], best of three runs.
fn mac_rate(threads: usize, macs: u64, call: impl Fn() + Sync) -> f64 {
    let mut calls = 1u64;
    while timed(1, calls, &call) < PEAK_RUN / 8 && calls < 1 << 40 {
        calls *= 2;
    }
    let calls = calls * 8;
    (0..3)
        .map(|_| {
            (threads as u64 * calls * macs) as f64 / timed(threads, calls, &call).as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// The micro-kernel `K` on L1-resident panels.
fn kernel_l1_rate<K: MicroKernel>(kernel: K, threads: usize) -> f64 {
    let a = vec![0x0102_0304; L1_DEPTH / K::DEPTH * K::ROWS];
    let b = vec![0x0506_0708; L1_DEPTH / K::DEPTH * K::COLUMNS];
    let bias = vec![0; K::COLUMNS];
    let macs = (K::ROWS * K::COLUMNS * L1_DEPTH) as u64;
    mac_rate(threads, macs, || {
        let mut tile = K::Tile::default();
        kernel.tile(black_box(&a), black_box(&b), &bias, &mut tile);
        black_box(&tile);
    })
}

/// The integer multiply-add peak of `isa` on `threads` threads.
pub fn measure_int_gemm_peak_with(isa: Isa, threads: usize) -> Result<PeakReport, ChallengeError> {
    const ITERATIONS: u64 = 20_000;
    let threads = threads.clamp(1, super::THREADS_MAX);
    let (register, kernel) = match isa {
        Isa::Portable => (None, kernel_l1_rate(gemm::Portable, threads)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            let token =
                super::x86::Avx2Token::detect().ok_or(ChallengeError::IsaUnavailable(isa))?;
            let macs = ITERATIONS * super::x86::AVX2_PEAK_MACS_PER_ITERATION;
            let register = mac_rate(threads, macs, || {
                black_box(token.peak(black_box(ITERATIONS)));
            });
            (Some(register), kernel_l1_rate(token, threads))
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            let token =
                super::x86::VnniToken::detect().ok_or(ChallengeError::IsaUnavailable(isa))?;
            let macs = ITERATIONS * super::x86::VNNI_PEAK_MACS_PER_ITERATION;
            let register = mac_rate(threads, macs, || {
                black_box(token.peak(black_box(ITERATIONS)));
            });
            (Some(register), kernel_l1_rate(token, threads))
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512Vnni => return Err(ChallengeError::IsaUnavailable(isa)),
    };
    let register_ops_per_sec = register.map(|macs| 2.0 * macs);
    let kernel_l1_ops_per_sec = 2.0 * kernel;
    let ops_per_sec = register_ops_per_sec.unwrap_or(0.0).max(kernel_l1_ops_per_sec);
    Ok(PeakReport { isa, threads, register_ops_per_sec, kernel_l1_ops_per_sec, ops_per_sec })
}

/// The integer multiply-add peak of this CPU's fastest instruction set on `threads` threads.
pub fn measure_int_gemm_peak(threads: usize) -> PeakReport {
    let isa = Isa::detect();
    measure_int_gemm_peak_with(isa, threads).unwrap_or(PeakReport {
        isa,
        threads,
        register_ops_per_sec: None,
        kernel_l1_ops_per_sec: 0.0,
        ops_per_sec: 0.0,
    })
}

/// Tiles a cheating solver skips in trial `trial`: `⌈2%⌉` of them, at least one.
fn skipped_tiles(trial: u32, tiles: u32) -> BTreeSet<u32> {
    let count = (u64::from(tiles) * u64::from(SKIPPED_PPM)).div_ceil(1_000_000).max(1) as usize;
    let mut reader = blake3::Hasher::new().update(&trial.to_le_bytes()).finalize_xof();
    let mut skipped = BTreeSet::new();
    while skipped.len() < count {
        let mut bytes = [0u8; 8];
        reader.fill(&mut bytes);
        skipped.insert((u64::from_le_bytes(bytes) % u64::from(tiles)) as u32);
    }
    skipped
}

/// Share of seeded trials in which `k` openings meet the tiles a cheater skipped. A met tile is
/// always caught: its committed leaf is not the true tile (see the provider's cheat tests).
fn detection_rate(challenge: &MatrixChallenge, k: u32) -> Result<f64, ChallengeError> {
    let mut caught = 0u32;
    for trial in 0..DETECTION_TRIALS {
        let skipped = skipped_tiles(trial, challenge.tile_count());
        let root = *blake3::hash(&trial.to_be_bytes()).as_bytes();
        let randomness = *blake3::hash(&root).as_bytes();
        let drawn = open_indices(challenge, &root, &randomness, k)?;
        caught += u32::from(drawn.iter().any(|index| skipped.contains(index)));
    }
    Ok(f64::from(caught) / f64::from(DETECTION_TRIALS))
}

/// Benches the challenge at size `n` (tile 16) on `threads` threads with `k` openings, against
/// this CPU's measured peak.
pub fn bench_challenge(n: u32, threads: usize, k: u32) -> Result<ChallengeBench, ChallengeError> {
    let isa = Isa::detect();
    // The machine may be shared: a peak measured while another process ran would flatter the
    // solver, so the peak is measured on both sides of the solves and the higher one counts.
    let peak = || measure_int_gemm_peak_with(isa, threads).map(|peak| peak.ops_per_sec);
    bench_solver(n, threads, k, peak, |challenge| solve_matrix_with(challenge, threads, isa))
}

/// Benches the GPU solver like [`bench_challenge`], against the GPU's vendor peak (0 if the
/// architecture is not in [`super::cuda::GpuDevice`]'s table).
#[cfg(feature = "cuda")]
pub fn bench_challenge_gpu(
    gpu: &super::cuda::Gpu,
    n: u32,
    threads: usize,
    k: u32,
) -> Result<ChallengeBench, ChallengeError> {
    let peak = || Ok(gpu.device().vendor_peak_ops_per_sec().unwrap_or(0.0));
    bench_solver(n, threads, k, peak, |challenge| gpu.solve(challenge, threads))
}

/// The best of [`SOLVE_REPEATS`] solves by `solve`, measured against the higher of two `peak`s
/// taken before and after them, then the openings and the validator's check.
fn bench_solver(
    n: u32,
    threads: usize,
    k: u32,
    peak: impl Fn() -> Result<f64, ChallengeError>,
    solve: impl Fn(&MatrixChallenge) -> Result<MatrixResponse, ChallengeError>,
) -> Result<ChallengeBench, ChallengeError> {
    let challenge = MatrixChallenge::new(BENCH_SEED, n, TILE_DEFAULT)?;
    let peak_before = peak()?;
    let mut response = solve(&challenge)?;
    for _ in 1..SOLVE_REPEATS {
        let again = solve(&challenge)?;
        if again.timings().total() < response.timings().total() {
            response = again;
        }
    }
    let peak = peak()?.max(peak_before);
    let timings = response.timings();
    let randomness = *blake3::hash(&response.root()).as_bytes();
    let start = Instant::now();
    let indices = open_indices(&challenge, &response.root(), &randomness, k)?;
    let openings: Vec<TileOpening> = response.open(&indices)?;
    let open = start.elapsed();
    let start = Instant::now();
    verify_openings(&challenge, &response.root(), &randomness, k, &openings)?;
    let verify = start.elapsed();
    let work = challenge.work() as f64;
    let (solve, multiply) = (timings.total().as_secs_f64(), timings.multiply.as_secs_f64());
    Ok(ChallengeBench {
        n,
        threads: threads.clamp(1, super::THREADS_MAX),
        engine: response.engine(),
        solve_ms: solve * 1e3,
        derive_ms: milliseconds(timings.derive),
        multiply_ms: multiply * 1e3,
        transfer_ms: milliseconds(timings.transfer),
        commit_ms: milliseconds(timings.commit),
        ops_per_sec: work / solve,
        multiply_ops_per_sec: work / multiply,
        peak_ops_per_sec: peak,
        efficiency: work / solve / peak,
        multiply_efficiency: work / multiply / peak,
        k,
        open_ms: milliseconds(open),
        capacity_overhead: (solve + open.as_secs_f64()) / 3_600.0,
        sampled_detection_rate: detection_rate(&challenge, k)?,
        detection_expected: f64::from(detection_probability_ppm(SKIPPED_PPM, k)) / 1e6,
        verify_ms: milliseconds(verify),
    })
}
