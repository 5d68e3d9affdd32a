//! x86-64 micro-kernels: AVX-512 VNNI (`vpdpbusd`, INT8) and AVX2 (`vpmaddwd`, INT16).
//!
//! The kernels are plain safe Rust inside `#[target_feature]` functions: since Rust 1.87 the
//! `std::arch` value intrinsics are safe there, and vectors move in and out through fixed-size
//! `i32` arrays (`_mm256_setr_epi32` of eight consecutive elements, `_mm256_extract_epi32` into
//! eight consecutive slots), which LLVM merges into single vector loads and stores. The only
//! `unsafe` is the call into a `#[target_feature]` function, made through a token that can only
//! be built after `is_x86_feature_detected!` confirmed every feature the function enables.

use super::gemm::{pack_pair, MicroKernel};
use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_dpbusd_epi32, _mm256_extract_epi32, _mm256_madd_epi16,
    _mm256_set1_epi16, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_si256,
};

/// Rows of the VNNI micro-tile.
pub const VNNI_ROWS: usize = 6;
/// Columns of the VNNI micro-tile: four 8-lane vectors, 24 accumulators of the 32 registers.
pub const VNNI_COLUMNS: usize = 32;
/// Rows of the AVX2 micro-tile.
pub const AVX2_ROWS: usize = 6;
/// Columns of the AVX2 micro-tile: two 8-lane vectors, 12 accumulators of the 16 registers.
pub const AVX2_COLUMNS: usize = 16;

/// Proof that this CPU runs AVX2 code; only [`Avx2Token::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Avx2Token(());

/// Proof that this CPU runs AVX-512 VNNI code on 256-bit vectors; only
/// [`VnniToken::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct VnniToken(());

impl Avx2Token {
    pub fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx") && is_x86_feature_detected!("avx2")).then_some(Self(()))
    }
}

impl VnniToken {
    pub fn detect() -> Option<Self> {
        let features = is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        features.then_some(Self(()))
    }
}

#[target_feature(enable = "avx")]
#[inline]
fn load(lanes: &[i32; 8]) -> __m256i {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = *lanes;
    _mm256_setr_epi32(l0, l1, l2, l3, l4, l5, l6, l7)
}

#[target_feature(enable = "avx,avx2")]
#[inline]
fn store(vector: __m256i, lanes: &mut [i32; 8]) {
    *lanes = [
        _mm256_extract_epi32::<0>(vector),
        _mm256_extract_epi32::<1>(vector),
        _mm256_extract_epi32::<2>(vector),
        _mm256_extract_epi32::<3>(vector),
        _mm256_extract_epi32::<4>(vector),
        _mm256_extract_epi32::<5>(vector),
        _mm256_extract_epi32::<6>(vector),
        _mm256_extract_epi32::<7>(vector),
    ];
}

/// Splits a slice of `8·V` values into `V` lane arrays.
fn lanes<const V: usize>(values: &[i32]) -> [&[i32; 8]; V] {
    std::array::from_fn(|vector| {
        values[vector * 8..vector * 8 + 8].try_into().expect("eight lanes by construction")
    })
}

/// One VNNI micro-tile over the whole depth. `a`: per group of 4 `k`, `VNNI_ROWS` words of four
/// `u8` (A biased by +128); `b`: per group, `VNNI_COLUMNS` words of four `i8`; `bias`: added to
/// every row (`-128·Σ_k B[k][j]`, undoing A's bias).
#[target_feature(enable = "avx,avx2,avx512f,avx512vl,avx512vnni")]
fn vnni_tile(
    a: &[i32],
    b: &[i32],
    bias: &[i32; VNNI_COLUMNS],
    out: &mut [[i32; VNNI_COLUMNS]; VNNI_ROWS],
) {
    const V: usize = VNNI_COLUMNS / 8;
    let start: [__m256i; V] = lanes::<V>(bias).map(|lane| load(lane));
    let mut sums = [start; VNNI_ROWS];
    for (a_group, b_group) in a.chunks_exact(VNNI_ROWS).zip(b.chunks_exact(VNNI_COLUMNS)) {
        let columns: [__m256i; V] = lanes::<V>(b_group).map(|lane| load(lane));
        for (row_sums, &word) in sums.iter_mut().zip(a_group) {
            let row = _mm256_set1_epi32(word);
            for (sum, column) in row_sums.iter_mut().zip(columns) {
                *sum = _mm256_dpbusd_epi32(*sum, row, column);
            }
        }
    }
    for (row_sums, out_row) in sums.iter().zip(out.iter_mut()) {
        for (sum, chunk) in row_sums.iter().zip(out_row.chunks_exact_mut(8)) {
            store(*sum, chunk.try_into().expect("eight lanes by construction"));
        }
    }
}

/// One AVX2 micro-tile over the whole depth. `a`: per group of 2 `k`, `AVX2_ROWS` words of two
/// `i16`; `b`: per group, `AVX2_COLUMNS` words of two `i16`.
#[target_feature(enable = "avx,avx2")]
fn avx2_tile(a: &[i32], b: &[i32], out: &mut [[i32; AVX2_COLUMNS]; AVX2_ROWS]) {
    const V: usize = AVX2_COLUMNS / 8;
    let mut sums = [[_mm256_setzero_si256(); V]; AVX2_ROWS];
    for (a_group, b_group) in a.chunks_exact(AVX2_ROWS).zip(b.chunks_exact(AVX2_COLUMNS)) {
        let columns: [__m256i; V] = lanes::<V>(b_group).map(|lane| load(lane));
        for (row_sums, &word) in sums.iter_mut().zip(a_group) {
            let row = _mm256_set1_epi32(word);
            for (sum, column) in row_sums.iter_mut().zip(columns) {
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(row, column));
            }
        }
    }
    for (row_sums, out_row) in sums.iter().zip(out.iter_mut()) {
        for (sum, chunk) in row_sums.iter().zip(out_row.chunks_exact_mut(8)) {
            store(*sum, chunk.try_into().expect("eight lanes by construction"));
        }
    }
}

/// Register-resident VNNI loop for the peak: 12 independent accumulator chains, one cheap add
/// per iteration so the compiler cannot hoist the multiply-adds. Returns a value to keep.
#[target_feature(enable = "avx,avx2,avx512f,avx512vl,avx512vnni")]
fn vnni_peak(iterations: u64) -> i32 {
    let one = _mm256_set1_epi32(1);
    let mut right = _mm256_set1_epi32(0x0102_0304);
    let left: [__m256i; 12] = std::array::from_fn(|index| _mm256_set1_epi32(index as i32 + 5));
    let mut sums = [_mm256_setzero_si256(); 12];
    for _ in 0..iterations {
        for (sum, row) in sums.iter_mut().zip(left) {
            *sum = _mm256_dpbusd_epi32(*sum, row, right);
        }
        right = _mm256_add_epi32(right, one);
    }
    let total =
        sums.into_iter().fold(_mm256_setzero_si256(), |acc, sum| _mm256_add_epi32(acc, sum));
    _mm256_extract_epi32::<0>(total)
}

/// Register-resident AVX2 loop for the peak, as [`vnni_peak`] with `vpmaddwd` + `vpaddd`.
#[target_feature(enable = "avx,avx2")]
fn avx2_peak(iterations: u64) -> i32 {
    let one = _mm256_set1_epi16(1);
    let mut right = _mm256_set1_epi16(3);
    let left: [__m256i; 12] = std::array::from_fn(|index| _mm256_set1_epi16(index as i16 + 5));
    let mut sums = [_mm256_setzero_si256(); 12];
    for _ in 0..iterations {
        for (sum, row) in sums.iter_mut().zip(left) {
            *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(row, right));
        }
        right = _mm256_add_epi32(right, one);
    }
    let total =
        sums.into_iter().fold(_mm256_setzero_si256(), |acc, sum| _mm256_add_epi32(acc, sum));
    _mm256_extract_epi32::<0>(total)
}

/// Multiply-accumulates per iteration of [`vnni_peak`]: 12 instructions × 32 INT8 products.
pub const VNNI_PEAK_MACS_PER_ITERATION: u64 = 12 * 32;
/// Multiply-accumulates per iteration of [`avx2_peak`]: 12 instructions × 16 INT16 products.
pub const AVX2_PEAK_MACS_PER_ITERATION: u64 = 12 * 16;

#[allow(unsafe_code)]
impl VnniToken {
    fn run_tile(
        self,
        a: &[i32],
        b: &[i32],
        bias: &[i32; VNNI_COLUMNS],
        out: &mut [[i32; VNNI_COLUMNS]; VNNI_ROWS],
    ) {
        // SAFETY: a token exists only if `detect` found every feature `vnni_tile` enables.
        unsafe { vnni_tile(a, b, bias, out) }
    }

    pub fn peak(self, iterations: u64) -> i32 {
        // SAFETY: as above, for `vnni_peak`.
        unsafe { vnni_peak(iterations) }
    }
}

#[allow(unsafe_code)]
impl Avx2Token {
    fn run_tile(self, a: &[i32], b: &[i32], out: &mut [[i32; AVX2_COLUMNS]; AVX2_ROWS]) {
        // SAFETY: a token exists only if `detect` found AVX and AVX2, all `avx2_tile` enables.
        unsafe { avx2_tile(a, b, out) }
    }

    pub fn peak(self, iterations: u64) -> i32 {
        // SAFETY: as above, for `avx2_peak`.
        unsafe { avx2_peak(iterations) }
    }
}

impl MicroKernel for VnniToken {
    const ROWS: usize = VNNI_ROWS;
    const COLUMNS: usize = VNNI_COLUMNS;
    const DEPTH: usize = 4;
    const BIASED: bool = true;
    type Tile = [[i32; VNNI_COLUMNS]; VNNI_ROWS];

    /// Four `i8` of `A` shifted to `u8` (`+128`, a flip of the sign bit): `vpdpbusd` multiplies
    /// unsigned by signed bytes.
    fn pack_a(bytes: &[u8]) -> i32 {
        i32::from_le_bytes([bytes[0] ^ 0x80, bytes[1] ^ 0x80, bytes[2] ^ 0x80, bytes[3] ^ 0x80])
    }

    fn pack_b(bytes: &[u8]) -> i32 {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    fn tile(&self, a: &[i32], b: &[i32], bias: &[i32], out: &mut Self::Tile) {
        let bias = bias.try_into().expect("the driver passes COLUMNS bias values");
        self.run_tile(a, b, bias, out);
    }
}

impl MicroKernel for Avx2Token {
    const ROWS: usize = AVX2_ROWS;
    const COLUMNS: usize = AVX2_COLUMNS;
    const DEPTH: usize = 2;
    const BIASED: bool = false;
    type Tile = [[i32; AVX2_COLUMNS]; AVX2_ROWS];

    fn pack_a(bytes: &[u8]) -> i32 {
        pack_pair(bytes)
    }

    fn pack_b(bytes: &[u8]) -> i32 {
        pack_pair(bytes)
    }

    fn tile(&self, a: &[i32], b: &[i32], _bias: &[i32], out: &mut Self::Tile) {
        self.run_tile(a, b, out);
    }
}
