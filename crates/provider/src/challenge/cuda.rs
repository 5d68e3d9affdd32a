//! The GPU challenge solver (feature `cuda`): the product on an NVIDIA GPU's INT8 tensor cores.
//!
//! `A` and `B` are derived on the CPU by the same code the validators use (the derivation is
//! consensus-critical: one implementation), uploaded, multiplied by cuBLAS's `cublasGemmEx`
//! (INT8 operands, exact INT32 accumulation), downloaded, and committed on the CPU by the CPU
//! solver's own code. The CUDA driver and cuBLAS are loaded at run time (`cudarc`'s dynamic
//! loading), so a build needs no CUDA toolkit and a machine without them gets a clear error.
//!
//! A GPU's answer is checked before it leaves: [`Gpu::open`] solves a small challenge and compares
//! every entry with the naive reference, and every solve recomputes [`SELF_CHECK_TILES`] tiles from
//! the seed. A wrong product (a driver bug, failing memory) is then an error the caller answers on
//! the CPU, not a commitment the ledger would slash.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aicpw_verify::matrix::{compute_tile, fill_a_row, fill_b_column, reference_product};
use aicpw_verify::{open_indices, MatrixChallenge};
use cudarc::cublas::result::{gemm_ex, CublasError};
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError};

use super::{commit, join_or_resume, ChallengeError, Engine, MatrixResponse, SolveTimings};

/// Tiles of every GPU product recomputed from the seed before its commitment is returned.
pub const SELF_CHECK_TILES: u32 = 8;
/// Edge of the challenge solved and compared entry by entry when a GPU is opened.
pub const SELF_TEST_N: u32 = 256;

/// An opened GPU with its cuBLAS handle.
pub struct Gpu {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    device: GpuDevice,
}

/// What the driver says of a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability (major, minor): the architecture.
    pub compute_capability: (i32, i32),
    pub multiprocessors: u32,
    /// Highest clock the driver reports, kHz (0 if it reports none).
    pub clock_khz: u32,
    pub memory_bytes: u64,
}

impl GpuDevice {
    /// Dense INT8 tensor operations (2 per multiply-add) per clock per multiprocessor, from
    /// NVIDIA's data sheets: V100 62 TOPS (DP4A), T4 130, A100 624, A10 250, L40S 733, H100 SXM
    /// 1,979, B200 4,500 (all dense) over multiprocessors × boost clock. `None`: not in the table.
    pub fn int8_ops_per_clock_per_multiprocessor(&self) -> Option<u64> {
        match self.compute_capability {
            (7, 0) => Some(512),
            (7, 5) | (8, 6) | (8, 9) | (12, _) => Some(2_048),
            (8, 0) => Some(4_096),
            (9, 0) => Some(8_192),
            (10, _) => Some(16_384),
            _ => None,
        }
    }

    /// The vendor's INT8 peak at the driver's highest clock: multiprocessors × the per-clock rate
    /// of the architecture × clock. Operations per second; `None` if unknown.
    pub fn vendor_peak_ops_per_sec(&self) -> Option<f64> {
        let per_clock = self.int8_ops_per_clock_per_multiprocessor()?;
        (self.clock_khz > 0).then(|| {
            per_clock as f64 * f64::from(self.multiprocessors) * f64::from(self.clock_khz) * 1e3
        })
    }
}

fn driver(error: DriverError) -> ChallengeError {
    ChallengeError::Gpu(format!("CUDA driver: {error}"))
}

fn cublas(error: CublasError) -> ChallengeError {
    ChallengeError::Gpu(format!("cuBLAS: {error}"))
}

/// Whether the shared libraries are on the loader path. Loading one runs its initializers.
#[allow(unsafe_code)]
fn libraries_present() -> Result<(), ChallengeError> {
    // SAFETY: `is_culib_present` only tries `dlopen` on the CUDA libraries' names; their
    // initializers are NVIDIA's and run once per process.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(ChallengeError::Gpu("no CUDA driver library (libcuda.so) found".into()));
    }
    // SAFETY: as above.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(ChallengeError::Gpu("no cuBLAS library (libcublas.so) found".into()));
    }
    Ok(())
}

impl Gpu {
    /// Opens GPU `ordinal` and runs the self-test (a [`SELF_TEST_N`] challenge against the
    /// naive reference, on `threads` CPU threads for the CPU's share).
    pub fn open(ordinal: usize, threads: usize) -> Result<Self, ChallengeError> {
        libraries_present()?;
        let count = CudaContext::device_count().map_err(driver)?;
        if usize::try_from(count).unwrap_or(0) <= ordinal {
            return Err(ChallengeError::Gpu(format!("no CUDA device {ordinal} ({count} found)")));
        }
        let context = CudaContext::new(ordinal).map_err(driver)?;
        let attribute = |which| context.attribute(which).map_err(driver);
        let device = GpuDevice {
            ordinal,
            name: context.name().map_err(driver)?,
            compute_capability: context.compute_capability().map_err(driver)?,
            multiprocessors: attribute(
                CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )?
            .try_into()
            .unwrap_or(0),
            clock_khz: attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
                .ok()
                .and_then(|khz| khz.try_into().ok())
                .unwrap_or(0),
            memory_bytes: context.total_mem().map_err(driver)? as u64,
        };
        let stream = context.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cublas)?;
        let gpu = Self { context, stream, blas, device };
        let challenge =
            MatrixChallenge::new(*b"AICPW GPU solver self-test seed.", SELF_TEST_N, 16)?;
        let response = gpu.solve(&challenge, threads)?;
        if response.product() != reference_product(&challenge)?.as_slice() {
            return Err(ChallengeError::Gpu(format!(
                "{}: the self-test product differs from the reference",
                gpu.device.name
            )));
        }
        Ok(gpu)
    }

    /// The device.
    pub fn device(&self) -> &GpuDevice {
        &self.device
    }

    /// Solves `challenge`: derive on `threads` CPU threads, multiply on the GPU, commit on the CPU,
    /// then recompute [`SELF_CHECK_TILES`] tiles from the seed.
    pub fn solve(
        &self,
        challenge: &MatrixChallenge,
        threads: usize,
    ) -> Result<MatrixResponse, ChallengeError> {
        challenge.validate()?;
        let threads = threads.clamp(1, super::THREADS_MAX);
        let n = challenge.n as usize;
        let (free, _) = self.context.mem_get_info().map_err(driver)?;
        if free < 6 * n * n {
            return Err(ChallengeError::Gpu(format!(
                "{} bytes of GPU memory needed, {free} free",
                6 * n * n
            )));
        }
        let start = Instant::now();
        let (a, b_columns) = derive_operands(&challenge.seed, n, threads);
        let derive = start.elapsed();
        let start = Instant::now();
        let a = self.stream.clone_htod(&a).map_err(driver)?;
        let b_columns = self.stream.clone_htod(&b_columns).map_err(driver)?;
        let mut product = self.stream.alloc_zeros::<i32>(n * n).map_err(driver)?;
        self.stream.synchronize().map_err(driver)?;
        let upload = start.elapsed();
        let start = Instant::now();
        self.multiply(&a, &b_columns, &mut product, n)?;
        self.stream.synchronize().map_err(driver)?;
        let multiply = start.elapsed();
        let start = Instant::now();
        let host = self.stream.clone_dtoh(&product).map_err(driver)?;
        self.stream.synchronize().map_err(driver)?;
        let transfer = upload + start.elapsed();
        let start = Instant::now();
        let tree = commit(challenge, &host, threads)?;
        let response = MatrixResponse {
            challenge: *challenge,
            product: host,
            tree,
            engine: Engine::Gpu,
            timings: SolveTimings { derive, multiply, transfer, commit: Duration::ZERO },
        };
        self_check(&response)?;
        Ok(MatrixResponse {
            timings: SolveTimings { commit: start.elapsed(), ..response.timings },
            ..response
        })
    }

    /// `C = A·B` on the GPU, row-major `C` from row-major `A` and `B` stored column by column.
    #[allow(unsafe_code)]
    fn multiply(
        &self,
        a: &CudaSlice<u8>,
        b_columns: &CudaSlice<u8>,
        product: &mut CudaSlice<i32>,
        n: usize,
    ) -> Result<(), ChallengeError> {
        let shape = GemmShape::for_edge(n)?;
        let (alpha, beta) = (1i32, 0i32);
        let (first, _first_sync) = b_columns.device_ptr(&self.stream);
        let (second, _second_sync) = a.device_ptr(&self.stream);
        let (out, _out_sync) = product.device_ptr_mut(&self.stream);
        let operation = |transpose| {
            if transpose {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        // SAFETY: the three buffers live on this handle's stream and hold `n²` bytes, `n²` bytes
        // and `n²` `i32`s, exactly what `shape` (m = n = k = lda = ldb = ldc = n) addresses; the
        // scalars are host `i32`s (cuBLAS's default pointer mode), as `CUBLAS_COMPUTE_32I` asks.
        unsafe {
            gemm_ex(
                *self.blas.handle(),
                operation(shape.transpose_first),
                operation(shape.transpose_second),
                shape.m,
                shape.n,
                shape.k,
                (&alpha as *const i32).cast::<c_void>(),
                first as *const c_void,
                cudaDataType::CUDA_R_8I,
                shape.lda,
                second as *const c_void,
                cudaDataType::CUDA_R_8I,
                shape.ldb,
                (&beta as *const i32).cast::<c_void>(),
                out as *mut c_void,
                cudaDataType::CUDA_R_32I,
                shape.ldc,
                cublasComputeType_t::CUBLAS_COMPUTE_32I,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(cublas)
    }
}

/// The arguments of one column-major BLAS GEMM, `out = op(first) · op(second)`.
///
/// cuBLAS is column-major, so the row-major `C` is the column-major `Cᵀ = Bᵀ·A`, where
/// `Cᵀ[j][i] = Σ_k B[k][j]·A[i][k]`. `B` stored column by column is, read column-major, the
/// `k × n` matrix with `B[k][j]` at `(k, j)`: transposed, it is the `Bᵀ` operand (`op = T`,
/// `lda = n`). `A` stored row by row is, read column-major, the `k × n` matrix with `A[i][k]` at
/// `(k, i)`: the second operand as it is (`op = N`, `ldb = n`). Both operands are then read along
/// `k` in memory, the layout INT8 tensor-core kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GemmShape {
    transpose_first: bool,
    transpose_second: bool,
    m: c_int,
    n: c_int,
    k: c_int,
    lda: c_int,
    ldb: c_int,
    ldc: c_int,
}

impl GemmShape {
    fn for_edge(edge: usize) -> Result<Self, ChallengeError> {
        let edge = c_int::try_from(edge)
            .map_err(|_| ChallengeError::Gpu(format!("edge {edge} exceeds cuBLAS's range")))?;
        Ok(Self {
            transpose_first: true,
            transpose_second: false,
            m: edge,
            n: edge,
            k: edge,
            lda: edge,
            ldb: edge,
            ldc: edge,
        })
    }
}

/// `A` row by row and `B` column by column (`n²` bytes each), derived on `threads` threads.
fn derive_operands(seed: &[u8; 32], n: usize, threads: usize) -> (Vec<u8>, Vec<u8>) {
    let mut a = vec![0u8; n * n];
    let mut b_columns = vec![0u8; n * n];
    let rows_per_thread = n.div_ceil(threads);
    thread::scope(|scope| {
        let a_chunks = a.chunks_mut(rows_per_thread * n);
        let b_chunks = b_columns.chunks_mut(rows_per_thread * n);
        let handles: Vec<_> = a_chunks
            .zip(b_chunks)
            .enumerate()
            .map(|(chunk, (a_rows, b_columns))| {
                scope.spawn(move || {
                    let first = chunk * rows_per_thread;
                    for (offset, (row, column)) in
                        a_rows.chunks_exact_mut(n).zip(b_columns.chunks_exact_mut(n)).enumerate()
                    {
                        fill_a_row(seed, (first + offset) as u32, row);
                        fill_b_column(seed, (first + offset) as u32, column);
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(join_or_resume);
    });
    (a, b_columns)
}

/// Recomputes [`SELF_CHECK_TILES`] tiles, drawn from the root, from the seed alone.
fn self_check(response: &MatrixResponse) -> Result<(), ChallengeError> {
    let challenge = response.challenge();
    let count = SELF_CHECK_TILES.min(challenge.tile_count());
    let root = response.root();
    for index in open_indices(challenge, &root, &root, count)? {
        if challenge.tile_values(response.product(), index)? != compute_tile(challenge, index)? {
            return Err(ChallengeError::Gpu(format!(
                "tile {index} of the product differs from the seed's (n = {})",
                challenge.n
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column-major BLAS GEMM as the BLAS reference defines it, on INT8 bytes: what cuBLAS
    /// computes for these arguments.
    fn blas_reference(shape: &GemmShape, first: &[u8], second: &[u8]) -> Vec<i32> {
        let (m, n, k) = (shape.m as usize, shape.n as usize, shape.k as usize);
        let (lda, ldb, ldc) = (shape.lda as usize, shape.ldb as usize, shape.ldc as usize);
        let op_first = |row: usize, inner: usize| {
            let at = if shape.transpose_first { inner + row * lda } else { row + inner * lda };
            i32::from(first[at] as i8)
        };
        let op_second = |inner: usize, column: usize| {
            let at =
                if shape.transpose_second { column + inner * ldb } else { inner + column * ldb };
            i32::from(second[at] as i8)
        };
        let mut out = vec![0i32; ldc * n];
        for column in 0..n {
            for row in 0..m {
                out[row + column * ldc] =
                    (0..k).map(|inner| op_first(row, inner) * op_second(inner, column)).sum();
            }
        }
        out
    }

    #[test]
    fn the_cublas_arguments_yield_the_row_major_product_of_the_derived_operands() {
        for (n, threads) in [(16, 1), (48, 2), (64, 3), (96, 7)] {
            let challenge = MatrixChallenge::new([n as u8; 32], n, 16).expect("valid");
            let (a, b_columns) = derive_operands(&challenge.seed, n as usize, threads);
            let shape = GemmShape::for_edge(n as usize).expect("small");
            let out = blas_reference(&shape, &b_columns, &a);
            assert_eq!(out, reference_product(&challenge).expect("small"), "n {n}");
        }
    }

    #[test]
    fn a_wrong_tile_fails_the_self_check() {
        let challenge = MatrixChallenge::new([3; 32], 64, 16).expect("valid");
        let honest = super::super::solve_matrix(&challenge, 2).expect("solved");
        assert_eq!(self_check(&honest), Ok(()));
        let mut product = honest.product().to_vec();
        product.iter_mut().for_each(|value| *value = value.wrapping_add(1));
        let tree = commit(&challenge, &product, 2).expect("valid");
        let wrong = MatrixResponse { product, tree, ..honest };
        assert!(matches!(self_check(&wrong), Err(ChallengeError::Gpu(_))));
    }

    #[test]
    fn the_vendor_peak_of_an_h100_sxm_is_its_data_sheet_figure() {
        let h100 = GpuDevice {
            ordinal: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            compute_capability: (9, 0),
            multiprocessors: 132,
            clock_khz: 1_830_000,
            memory_bytes: 80 << 30,
        };
        let tops = h100.vendor_peak_ops_per_sec().expect("known") / 1e12;
        assert!((tops - 1_979.0).abs() < 1.0, "{tops}");
        let unknown = GpuDevice { compute_capability: (6, 1), ..h100 };
        assert_eq!(unknown.vendor_peak_ops_per_sec(), None);
    }

    /// Run on a machine with an NVIDIA GPU, the CUDA driver and cuBLAS:
    /// `cargo test -p aicpw-provider --features cuda --lib -- --ignored gpu`.
    #[test]
    #[ignore = "needs an NVIDIA GPU with its driver and cuBLAS"]
    fn the_gpu_solver_commits_to_the_cpu_solvers_product() {
        let gpu = Gpu::open(0, 4).expect("a GPU that passes its self-test");
        for n in [16, 1_024, 4_096] {
            let challenge = MatrixChallenge::new([n as u8; 32], n, 16).expect("valid");
            let on_gpu = gpu.solve(&challenge, 4).expect("solved on the GPU");
            let on_cpu = super::super::solve_matrix(&challenge, 4).expect("solved on the CPU");
            assert_eq!(on_gpu.root(), on_cpu.root(), "n {n}");
            assert_eq!(on_gpu.product(), on_cpu.product(), "n {n}");
            assert_eq!(on_gpu.engine(), Engine::Gpu);
        }
    }
}
