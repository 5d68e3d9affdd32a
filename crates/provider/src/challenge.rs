//! Capacity challenges, provider side: solve the matrix challenge fast, commit, answer openings.
//!
//! [`solve_matrix`] derives `A` and `B` from the challenge's seed, computes `C = A·B` exactly with
//! the best integer multiply-add the CPU offers ([`Isa`]), commits to `C`'s tiles with the Merkle
//! tree of [`aicpw_verify::merkle`], and keeps `C` so that [`MatrixResponse::open`] can answer
//! whichever tiles the validator draws afterwards. [`measure_int_gemm_peak`] measures the machine's
//! multiply-add peak for the same instruction set, and [`bench_challenge`] reports how close the
//! solver gets, what a challenge costs the provider and the validator, and how often a cheat is
//! caught. [`Solver`] picks the engine: the CPU, or with the `cuda` feature an NVIDIA GPU
//! ([`cuda`]) when one is present and passes its self-test.

mod bench;
#[cfg(feature = "cuda")]
pub mod cuda;
mod gemm;
// The x86 kernels need Rust 1.89 (safe `#[target_feature]` functions, safe `std::arch` intrinsics
// and the AVX-512 ones), the workspace's minimum.
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;
use std::thread;
use std::time::{Duration, Instant};

use aicpw_verify::matrix::OPEN_COUNT_MAX;
use aicpw_verify::merkle::{block_count, lower_sibling_ranges, subtree_value, Digest, TileTree};
use aicpw_verify::{MatrixChallenge, TileOpening, VerifyError};

#[cfg(feature = "cuda")]
pub use bench::bench_challenge_gpu;
pub use bench::{
    bench_challenge, measure_int_gemm_peak, measure_int_gemm_peak_with, ChallengeBench, PeakReport,
    DETECTION_TRIALS, SKIPPED_PPM,
};
use gemm::MicroKernel;

/// Most threads a solve may use.
pub const THREADS_MAX: usize = 256;
/// The commitment is hashed in blocks of `2^COMMIT_BLOCK_HEIGHT` tiles (16 KiB at tile 16):
/// enough chunks per call for BLAKE3 to compress them side by side.
const COMMIT_BLOCK_HEIGHT: u32 = 4;

/// The instruction set a solve runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust; whatever the compiler makes of it for the build's target.
    Portable,
    /// x86-64 AVX2: `vpmaddwd` on `i16` pairs, 16 multiply-adds per instruction.
    Avx2,
    /// x86-64 AVX-512 VNNI on 256-bit vectors: `vpdpbusd`, 32 INT8 multiply-adds per instruction.
    Avx512Vnni,
}

impl Isa {
    /// The fastest instruction set this CPU runs.
    pub fn detect() -> Self {
        Self::available().into_iter().max().unwrap_or(Self::Portable)
    }

    /// Every instruction set this CPU runs, slowest first.
    pub fn available() -> Vec<Self> {
        [Self::Portable, Self::Avx2, Self::Avx512Vnni]
            .into_iter()
            .filter(|isa| isa.is_available())
            .collect()
    }

    /// Whether this CPU runs it.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => x86::Avx2Token::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => x86::VnniToken::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx2 | Self::Avx512Vnni => false,
        }
    }
}

/// What computed a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The CPU, on every thread a solve was given, with this instruction set.
    Cpu(Isa),
    /// An NVIDIA GPU (INT8 tensor cores through cuBLAS); derivation and commitment on the CPU.
    #[cfg(feature = "cuda")]
    Gpu,
}

/// Why a solve or a bench could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The challenge or an opening request is invalid.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The requested instruction set is not available on this CPU.
    #[error("instruction set {0:?} is not available on this CPU")]
    IsaUnavailable(Isa),
    /// The GPU failed, or its product did not match the seed's tiles.
    #[cfg(feature = "cuda")]
    #[error("GPU solver: {0}")]
    Gpu(String),
}

/// Where a solve spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SolveTimings {
    /// Deriving `A` and `B` from the seed and packing them.
    pub derive: Duration,
    /// The multiplication proper.
    pub multiply: Duration,
    /// Copies between the host and a GPU (zero on the CPU).
    pub transfer: Duration,
    /// Hashing the tiles and building the Merkle tree.
    pub commit: Duration,
}

impl SolveTimings {
    /// Time from challenge to commitment.
    pub fn total(&self) -> Duration {
        self.derive + self.multiply + self.transfer + self.commit
    }
}

/// A solved challenge: the commitment, and the product kept to answer openings.
#[derive(Clone)]
pub struct MatrixResponse {
    challenge: MatrixChallenge,
    product: Vec<i32>,
    tree: TileTree,
    engine: Engine,
    timings: SolveTimings,
}

impl std::fmt::Debug for MatrixResponse {
    /// Leaves the product out: it is up to 1 GiB.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MatrixResponse")
            .field("challenge", &self.challenge)
            .field("root", &self.root())
            .field("engine", &self.engine)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl MatrixResponse {
    /// The commitment to send before the deadline.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The challenge this answers.
    pub fn challenge(&self) -> &MatrixChallenge {
        &self.challenge
    }

    /// `C`, row-major.
    pub fn product(&self) -> &[i32] {
        &self.product
    }

    /// What computed the product.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Where the solve spent its time.
    pub fn timings(&self) -> SolveTimings {
        self.timings
    }

    /// Opens the tiles the validator drew (see [`aicpw_verify::open_indices`]).
    pub fn open(&self, indices: &[u32]) -> Result<Vec<TileOpening>, VerifyError> {
        if indices.len() > OPEN_COUNT_MAX as usize {
            let requested = u32::try_from(indices.len()).unwrap_or(u32::MAX);
            return Err(VerifyError::OpenCountInvalid { requested, max: OPEN_COUNT_MAX });
        }
        let mut bytes = Vec::new();
        let count = self.challenge.tile_count();
        indices
            .iter()
            .map(|&index| {
                let tile_values = self.challenge.tile_values(&self.product, index)?;
                let mut merkle_path = Vec::new();
                for range in lower_sibling_ranges(count, self.tree.height(), index) {
                    merkle_path.push(hash_tiles(
                        &self.challenge,
                        &self.product,
                        range,
                        false,
                        &mut bytes,
                    )?);
                }
                merkle_path.extend(self.tree.path(index)?);
                Ok(TileOpening { index, tile_values, merkle_path })
            })
            .collect()
    }
}

/// The engine a machine answers matrix challenges with: a GPU when the build has the `cuda`
/// feature and one passes its self-test, else every core of the CPU.
pub struct Solver {
    threads: usize,
    #[cfg(feature = "cuda")]
    gpu: Option<cuda::Gpu>,
    /// Why no GPU is used; `None` when one is.
    gpu_unavailable: Option<String>,
}

impl Solver {
    /// The CPU alone, on `threads` threads.
    pub fn cpu(threads: usize) -> Self {
        Self {
            threads,
            #[cfg(feature = "cuda")]
            gpu: None,
            gpu_unavailable: Some("the CPU solver was chosen".into()),
        }
    }

    /// The first GPU if it opens and passes its self-test, else the CPU on `threads` threads.
    #[cfg(feature = "cuda")]
    pub fn detect(threads: usize) -> Self {
        match cuda::Gpu::open(0, threads) {
            Ok(gpu) => Self { threads, gpu: Some(gpu), gpu_unavailable: None },
            Err(e) => Self { threads, gpu: None, gpu_unavailable: Some(e.to_string()) },
        }
    }

    /// The CPU on `threads` threads: this build has no GPU solver.
    #[cfg(not(feature = "cuda"))]
    pub fn detect(threads: usize) -> Self {
        Self { threads, gpu_unavailable: Some("built without the `cuda` feature".into()) }
    }

    /// The GPU in use, if any.
    #[cfg(feature = "cuda")]
    pub fn gpu(&self) -> Option<&cuda::Gpu> {
        self.gpu.as_ref()
    }

    /// Why no GPU is in use; `None` when one is.
    pub fn gpu_unavailable(&self) -> Option<&str> {
        self.gpu_unavailable.as_deref()
    }

    /// Solves on the GPU if there is one; on the CPU if not, or if the GPU failed (a wrong GPU
    /// product would be slashed, a slower CPU answer at worst scores lower).
    pub fn solve(&self, challenge: &MatrixChallenge) -> Result<MatrixResponse, ChallengeError> {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            match gpu.solve(challenge, self.threads) {
                Err(ChallengeError::Gpu(e)) => {
                    tracing::warn!("GPU solver: {e}; solving on the CPU")
                }
                solved => return solved,
            }
        }
        solve_matrix(challenge, self.threads)
    }
}

/// Solves a challenge on `threads` threads with the fastest instruction set of this CPU.
pub fn solve_matrix(
    challenge: &MatrixChallenge,
    threads: usize,
) -> Result<MatrixResponse, ChallengeError> {
    solve_matrix_with(challenge, threads, Isa::detect())
}

/// Solves a challenge with a chosen instruction set (tests and benches compare them).
pub fn solve_matrix_with(
    challenge: &MatrixChallenge,
    threads: usize,
    isa: Isa,
) -> Result<MatrixResponse, ChallengeError> {
    challenge.validate()?;
    let threads = threads.clamp(1, THREADS_MAX);
    let (product, derive, multiply) = match isa {
        Isa::Portable => compute(gemm::Portable, challenge, threads),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            let token = x86::Avx2Token::detect().ok_or(ChallengeError::IsaUnavailable(isa))?;
            compute(token, challenge, threads)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            let token = x86::VnniToken::detect().ok_or(ChallengeError::IsaUnavailable(isa))?;
            compute(token, challenge, threads)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512Vnni => return Err(ChallengeError::IsaUnavailable(isa)),
    };
    let start = Instant::now();
    let tree = commit(challenge, &product, threads)?;
    let timings =
        SolveTimings { derive, multiply, transfer: Duration::ZERO, commit: start.elapsed() };
    Ok(MatrixResponse { challenge: *challenge, product, tree, engine: Engine::Cpu(isa), timings })
}

/// Derives, packs and multiplies; returns `C` and the two phases' durations.
fn compute<K: MicroKernel>(
    kernel: K,
    challenge: &MatrixChallenge,
    threads: usize,
) -> (Vec<i32>, Duration, Duration) {
    let start = Instant::now();
    let packed = gemm::derive_and_pack::<K>(&challenge.seed, challenge.n as usize, threads);
    let derive = start.elapsed();
    let product = gemm::multiply(kernel, &packed, threads);
    (product, derive, start.elapsed() - derive)
}

/// The commitment value of the subtree made of tiles `tiles` (an aligned power-of-two block, or
/// the short last one); `whole` when it spans every tile.
fn hash_tiles(
    challenge: &MatrixChallenge,
    product: &[i32],
    tiles: Range<u32>,
    whole: bool,
    bytes: &mut Vec<u8>,
) -> Result<Digest, VerifyError> {
    bytes.clear();
    for index in tiles.clone() {
        challenge.append_tile_bytes(product, index, bytes)?;
    }
    let tile_bytes = u64::from(challenge.tile) * u64::from(challenge.tile) * 4;
    Ok(subtree_value(u64::from(tiles.start) * tile_bytes, bytes, whole))
}

/// Hashes the tiles in blocks on `threads` threads and builds the tree above the blocks.
fn commit(
    challenge: &MatrixChallenge,
    product: &[i32],
    threads: usize,
) -> Result<TileTree, VerifyError> {
    let count = challenge.tile_count();
    let blocks = block_count(count, COMMIT_BLOCK_HEIGHT);
    let whole = blocks == 1;
    let mut values = vec![[0u8; 32]; blocks as usize];
    let per_thread = values.len().div_ceil(threads);
    let results: Vec<Result<(), VerifyError>> = thread::scope(|scope| {
        let handles: Vec<_> = values
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(chunk_index, chunk)| {
                scope.spawn(move || {
                    let mut bytes = Vec::new();
                    for (offset, value) in chunk.iter_mut().enumerate() {
                        let first =
                            ((chunk_index * per_thread + offset) as u32) << COMMIT_BLOCK_HEIGHT;
                        let tiles = first..(first + (1 << COMMIT_BLOCK_HEIGHT)).min(count);
                        *value = hash_tiles(challenge, product, tiles, whole, &mut bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(join_or_resume).collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;
    TileTree::from_blocks(count, COMMIT_BLOCK_HEIGHT, values)
}

/// Joins a scoped thread, re-raising its panic in the caller if it panicked.
fn join_or_resume<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
