//! Exact INT8 GEMM for the matrix challenge: derive, pack, and multiply on several threads.
//!
//! `C[i][j] = Σ_k A[i][k]·B[k][j]` where row `i` of `A` and column `j` of `B` are each one ChaCha20
//! stream ([`aicpw_verify::matrix`]), so both operands arrive "k-contiguous". They are packed once
//! into panels: `ROWS` rows of `A` (or `COLUMNS` columns of `B`) interleaved by groups of `DEPTH`
//! consecutive `k` in one `i32` word, the shape a broadcast-and-multiply-add micro-kernel reads
//! sequentially. A micro-kernel computes a `ROWS × COLUMNS` tile of `C` over the whole depth in
//! registers; a thread owns a contiguous band of row panels of `C`, walks it in blocks of
//! `BLOCK_PANELS` panels that stay in L2, and streams every column panel of `B` past each block.

use std::thread;

use aicpw_verify::matrix::{fill_a_row, fill_b_column};

/// Row panels of `A` a thread keeps hot while all of `B` streams past (`16·6` rows).
const BLOCK_PANELS: usize = 16;

/// A packed-panel micro-kernel.
pub(super) trait MicroKernel: Copy + Send + Sync {
    /// Rows of one micro-tile.
    const ROWS: usize;
    /// Columns of one micro-tile.
    const COLUMNS: usize;
    /// Consecutive `k` packed into one `i32` word.
    const DEPTH: usize;
    /// Whether `A` is packed biased by +128, so that `bias` must undo `128·Σ_k B[k][j]`.
    const BIASED: bool;
    /// The micro-tile's output, `ROWS` rows of `COLUMNS` values.
    type Tile: Default + TileRows;
    /// Packs `DEPTH` raw bytes of a row of `A`.
    fn pack_a(bytes: &[u8]) -> i32;
    /// Packs `DEPTH` raw bytes of a column of `B`.
    fn pack_b(bytes: &[u8]) -> i32;
    /// Computes one tile from an `A` panel and a `B` panel over the whole depth.
    fn tile(&self, a: &[i32], b: &[i32], bias: &[i32], out: &mut Self::Tile);
}

/// Row access to a micro-tile buffer.
pub(super) trait TileRows {
    fn row(&self, index: usize) -> &[i32];
}

impl<const R: usize, const C: usize> TileRows for [[i32; C]; R] {
    fn row(&self, index: usize) -> &[i32] {
        &self[index]
    }
}

/// Both operands, packed for kernel `K`.
pub(super) struct Packed {
    n: usize,
    a: Vec<i32>,
    b: Vec<i32>,
    bias: Vec<i32>,
}

/// Splits `0..count` items into at most `threads` contiguous chunks of equal size (last shorter).
fn chunk_size(count: usize, threads: usize) -> usize {
    count.div_ceil(threads.max(1)).max(1)
}

/// How one operand is derived and packed: `fill` derives a line (row of `A`, column of `B`),
/// `pack` turns `depth` of its bytes into a word. Generic, so both inline into the loops.
#[derive(Clone, Copy)]
struct Operand<F, P> {
    width: usize,
    depth: usize,
    fill: F,
    pack: P,
}

/// Derives and packs panels `first_panel..` of one operand into `out`, and fills `sums` with each
/// line's sum of entries (used for `B`'s bias).
fn pack_panels<F, P>(
    seed: &[u8; 32],
    n: usize,
    operand: Operand<F, P>,
    first_panel: usize,
    out: &mut [i32],
    sums: &mut [i32],
) where
    F: Fn(&[u8; 32], u32, &mut [u8]),
    P: Fn(&[u8]) -> i32,
{
    let Operand { width, depth, fill, pack } = operand;
    let groups = n / depth;
    let mut lines = vec![0u8; width * n];
    for (offset, (panel, panel_sums)) in
        out.chunks_exact_mut(groups * width).zip(sums.chunks_exact_mut(width)).enumerate()
    {
        for (line_index, (line, sum)) in
            lines.chunks_exact_mut(n).zip(panel_sums.iter_mut()).enumerate()
        {
            let index = (first_panel + offset) * width + line_index;
            if index < n {
                fill(seed, index as u32, line);
            } else {
                line.fill(0);
            }
            *sum = line.iter().map(|&byte| i32::from(byte as i8)).sum();
        }
        for (group, words) in panel.chunks_exact_mut(width).enumerate() {
            for (word, line) in words.iter_mut().zip(lines.chunks_exact(n)) {
                *word = pack(&line[group * depth..(group + 1) * depth]);
            }
        }
    }
}

/// Derives and packs one operand on `threads` threads; returns the panels and the line sums.
fn pack_operand<F, P>(
    seed: &[u8; 32],
    n: usize,
    operand: Operand<F, P>,
    threads: usize,
) -> (Vec<i32>, Vec<i32>)
where
    F: Fn(&[u8; 32], u32, &mut [u8]) + Copy + Send,
    P: Fn(&[u8]) -> i32 + Copy + Send,
{
    let (width, depth) = (operand.width, operand.depth);
    let panels = n.div_ceil(width);
    let panel_len = (n / depth) * width;
    let mut out = vec![0i32; panels * panel_len];
    let mut sums = vec![0i32; panels * width];
    let per_thread = chunk_size(panels, threads);
    thread::scope(|scope| {
        let chunks =
            out.chunks_mut(per_thread * panel_len).zip(sums.chunks_mut(per_thread * width));
        for (index, (out, sums)) in chunks.enumerate() {
            scope.spawn(move || {
                let first = index * per_thread;
                pack_panels(seed, n, operand, first, out, sums);
            });
        }
    });
    (out, sums)
}

/// Derives `A` and `B` from the seed and packs them for kernel `K`.
pub(super) fn derive_and_pack<K: MicroKernel>(seed: &[u8; 32], n: usize, threads: usize) -> Packed {
    let rows = Operand { width: K::ROWS, depth: K::DEPTH, fill: fill_a_row, pack: K::pack_a };
    let columns =
        Operand { width: K::COLUMNS, depth: K::DEPTH, fill: fill_b_column, pack: K::pack_b };
    let (a, _) = pack_operand(seed, n, rows, threads);
    let (b, sums) = pack_operand(seed, n, columns, threads);
    let bias =
        if K::BIASED { sums.iter().map(|sum| -128 * sum).collect() } else { vec![0; sums.len()] };
    Packed { n, a, b, bias }
}

/// `C = A·B`, row-major `n×n`, on `threads` threads.
pub(super) fn multiply<K: MicroKernel>(kernel: K, packed: &Packed, threads: usize) -> Vec<i32> {
    let n = packed.n;
    let a_panel_len = (n / K::DEPTH) * K::ROWS;
    let mut product = vec![0i32; n * n];
    let mut bands: Vec<(&mut [i32], &[i32])> =
        product.chunks_mut(K::ROWS * n).zip(packed.a.chunks_exact(a_panel_len)).collect();
    let per_thread = chunk_size(bands.len(), threads);
    thread::scope(|scope| {
        for band in bands.chunks_mut(per_thread) {
            scope.spawn(move || multiply_band(kernel, packed, band));
        }
    });
    product
}

/// One thread's share: its row panels, in L2-sized blocks, against every column panel.
fn multiply_band<K: MicroKernel>(kernel: K, packed: &Packed, band: &mut [(&mut [i32], &[i32])]) {
    let n = packed.n;
    let b_panel_len = (n / K::DEPTH) * K::COLUMNS;
    let mut tile = K::Tile::default();
    for block in band.chunks_mut(BLOCK_PANELS) {
        let b_panels = packed.b.chunks_exact(b_panel_len).zip(packed.bias.chunks_exact(K::COLUMNS));
        for (panel, (b, bias)) in b_panels.enumerate() {
            let column = panel * K::COLUMNS;
            let width = K::COLUMNS.min(n - column);
            for (rows, a) in block.iter_mut() {
                kernel.tile(a, b, bias, &mut tile);
                for (index, row) in rows.chunks_exact_mut(n).enumerate() {
                    row[column..column + width].copy_from_slice(&tile.row(index)[..width]);
                }
            }
        }
    }
}

/// The portable micro-kernel: `i16` pairs (the AVX2 packing), scalar code the compiler may
/// vectorize for whatever the target offers. Used where no x86 kernel applies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Portable;

/// Two consecutive `i8` widened to `i16` in one word, low `k` in the low half.
pub(super) fn pack_pair(bytes: &[u8]) -> i32 {
    let low = i32::from(bytes[0] as i8 as i16 as u16);
    let high = i32::from(bytes[1] as i8 as i16 as u16);
    low | (high << 16)
}

fn unpack_pair(word: i32) -> (i32, i32) {
    (i32::from(word as i16), word >> 16)
}

impl MicroKernel for Portable {
    const ROWS: usize = 4;
    const COLUMNS: usize = 8;
    const DEPTH: usize = 2;
    const BIASED: bool = false;
    type Tile = [[i32; 8]; 4];

    fn pack_a(bytes: &[u8]) -> i32 {
        pack_pair(bytes)
    }

    fn pack_b(bytes: &[u8]) -> i32 {
        pack_pair(bytes)
    }

    fn tile(&self, a: &[i32], b: &[i32], _bias: &[i32], out: &mut Self::Tile) {
        let mut sums = [[0i32; 8]; 4];
        for (a_group, b_group) in a.chunks_exact(4).zip(b.chunks_exact(8)) {
            for (row, &word) in sums.iter_mut().zip(a_group) {
                let (a0, a1) = unpack_pair(word);
                for (sum, &column) in row.iter_mut().zip(b_group) {
                    let (b0, b1) = unpack_pair(column);
                    *sum += a0 * b0 + a1 * b1;
                }
            }
        }
        *out = sums;
    }
}
