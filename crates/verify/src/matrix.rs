//! The matrix challenge: prove INT8 multiply-accumulate capacity by computing `C = A·B` exactly.
//!
//! A validator sends a fresh `seed` and a size `n`. The provider derives `A` and `B` (both `n×n`,
//! INT8) from the seed, computes `C = A·B` with exact `i32` accumulation, and commits to `C` with
//! the BLAKE3 Merkle root of its `tile×tile` tiles (see [`crate::merkle`]) before the deadline.
//! Only then does the validator draw `k` tile indices from randomness the provider could not know
//! ([`open_indices`]) and check each opened tile ([`verify_opening`]) at a cost of `O(n·tile²)`
//! instead of `O(n³)`. A provider that skipped a fraction `x` of `C` escapes with probability at
//! most `(1-x)^k` ([`detection_probability_ppm`]).
//!
//! # Derivation of A and B (consensus-critical; pinned by a test vector)
//! Every row of `A` and every *column* of `B` is its own ChaCha20 stream, so a validator derives a
//! tile's row band and column band without deriving the whole matrices:
//! - row `i` of `A`: stream id `i`;
//! - column `j` of `B`: stream id `2^32 + j`;
//! - entry `k` of a row (column) = byte `k` of that stream's keystream, read as two's-complement
//!   `i8`. The keystream is the original ChaCha20 (20 rounds, 64-bit block counter from 0, 64-bit
//!   nonce = stream id little-endian) keyed with the 32-byte seed: `rand_chacha` 0.3's
//!   `ChaCha20Rng::from_seed(seed)` after `set_stream(id)`, filled in one call.
//!
//! Entries span the whole `i8` range; `|C[i][j]| ≤ n·2^14 ≤ 2^28` for `n ≤ N_MAX`, so `i32`
//! accumulation is exact.

use std::collections::BTreeSet;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::merkle::{self, Digest, TileTree};
use crate::VerifyError;

/// Default tile edge.
pub const TILE_DEFAULT: u32 = 16;
/// Smallest tile edge. Tile edges are powers of two from 16 to 64, so that a tile is a power-of-two
/// number of 1 KiB BLAKE3 chunks and a whole subtree of the commitment (see [`crate::merkle`]).
pub const TILE_MIN: u32 = 16;
/// Largest tile edge: an opening carries at most 16 KiB of values.
pub const TILE_MAX: u32 = 64;
/// Largest matrix edge: `C` is then 1 GiB of `i32`, the most a challenge may ask a node to hold.
pub const N_MAX: u32 = 16_384;
/// Default matrix edge: `2·4096³ ≈ 1.4·10^11` operations.
pub const N_DEFAULT: u32 = 4_096;
/// Default number of opened tiles: a node that skipped 2% of `C` is caught with 99.4%.
pub const OPEN_COUNT_DEFAULT: u32 = 256;
/// Most tiles a validator may ask to open at once.
pub const OPEN_COUNT_MAX: u32 = 4_096;
/// Stream id offset of `B`'s columns (rows of `A` use `0..n`).
pub const B_STREAM_OFFSET: u64 = 1 << 32;
/// Largest `n` that [`reference_product`] accepts: it is `O(n³)` and meant for tests.
pub const REFERENCE_N_MAX: u32 = 1_024;
/// Derive-key context of the opening draw.
pub const OPEN_CONTEXT: &str = "AICPW 2026-01 verify matrix open indices v1";
const PPM: u64 = 1_000_000;

/// One capacity challenge: the seed and the shape. Sent by a validator, untrusted by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatrixChallenge {
    /// Fresh randomness from the validator; the ChaCha20 key of `A` and `B`.
    pub seed: [u8; 32],
    /// Matrix edge; a multiple of `tile`, at most [`N_MAX`].
    pub n: u32,
    /// Tile edge: 16, 32 or 64.
    pub tile: u32,
}

/// One opened tile: its values and the Merkle path to the committed root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileOpening {
    /// Tile index in row-major tile order.
    pub index: u32,
    /// `tile²` values of `C`, row-major inside the tile.
    pub tile_values: Vec<i32>,
    /// Siblings from the leaf up (see [`crate::merkle`]).
    pub merkle_path: Vec<Digest>,
}

/// Operations of an `n×n` by `n×n` product: one multiply and one add per term, `2n³`.
pub fn work(n: u32) -> u128 {
    2 * u128::from(n).pow(3)
}

impl MatrixChallenge {
    /// A checked challenge.
    pub fn new(seed: [u8; 32], n: u32, tile: u32) -> Result<Self, VerifyError> {
        let challenge = Self { seed, n, tile };
        challenge.validate()?;
        Ok(challenge)
    }

    /// Checks the shape limits; every entry point calls it, since challenges cross the network.
    pub fn validate(&self) -> Result<(), VerifyError> {
        if !(TILE_MIN..=TILE_MAX).contains(&self.tile) || !self.tile.is_power_of_two() {
            return Err(VerifyError::TileInvalid { tile: self.tile, min: TILE_MIN, max: TILE_MAX });
        }
        if self.n == 0 || self.n > N_MAX || !self.n.is_multiple_of(self.tile) {
            return Err(VerifyError::SizeInvalid { n: self.n, tile: self.tile, max: N_MAX });
        }
        Ok(())
    }

    /// Tiles along one edge.
    pub fn tiles_per_side(&self) -> u32 {
        self.n / self.tile
    }

    /// Number of tiles, the Merkle tree's leaf count.
    pub fn tile_count(&self) -> u32 {
        self.tiles_per_side() * self.tiles_per_side()
    }

    /// Operations of this challenge, [`work`]`(n)`.
    pub fn work(&self) -> u128 {
        work(self.n)
    }

    /// Copies tile `index` out of a full row-major `C`.
    pub fn tile_values(&self, product: &[i32], index: u32) -> Result<Vec<i32>, VerifyError> {
        self.validate()?;
        check_product_length(self, product)?;
        let (row0, column0) = self.tile_origin(index)?;
        let (n, tile) = (self.n as usize, self.tile as usize);
        let mut values = Vec::with_capacity(tile * tile);
        for row in row0..row0 + tile {
            values.extend_from_slice(&product[row * n + column0..row * n + column0 + tile]);
        }
        Ok(values)
    }

    /// Appends tile `index` of a full row-major `C` in the commitment's layout (`i32` LE).
    pub fn append_tile_bytes(
        &self,
        product: &[i32],
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), VerifyError> {
        check_product_length(self, product)?;
        let (row0, column0) = self.tile_origin(index)?;
        let (n, tile) = (self.n as usize, self.tile as usize);
        for row in row0..row0 + tile {
            merkle::append_le_bytes(&product[row * n + column0..row * n + column0 + tile], out);
        }
        Ok(())
    }

    /// First row and first column of tile `index`.
    fn tile_origin(&self, index: u32) -> Result<(usize, usize), VerifyError> {
        let count = self.tile_count();
        if index >= count {
            return Err(VerifyError::TileIndexOutOfRange { index, count });
        }
        let side = self.tiles_per_side();
        let tile = self.tile as usize;
        Ok(((index / side) as usize * tile, (index % side) as usize * tile))
    }
}

/// Fills `out` with the keystream of one stream; `out.len()` entries of a row or column.
fn fill_stream(seed: &[u8; 32], stream: u64, out: &mut [u8]) {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(stream);
    rng.fill_bytes(out);
}

/// Row `row` of `A` as raw bytes (entry = `byte as i8`); `out.len()` must be `n`.
pub fn fill_a_row(seed: &[u8; 32], row: u32, out: &mut [u8]) {
    fill_stream(seed, u64::from(row), out);
}

/// Column `column` of `B` as raw bytes (entry = `byte as i8`); `out.len()` must be `n`.
pub fn fill_b_column(seed: &[u8; 32], column: u32, out: &mut [u8]) {
    fill_stream(seed, B_STREAM_OFFSET + u64::from(column), out);
}

/// Exact dot product of two INT8 vectors stored as raw bytes.
fn dot(left: &[u8], right: &[u8]) -> i32 {
    left.iter().zip(right).map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8)).sum()
}

/// Recomputes tile `index` of `C` from `A`'s row band and `B`'s column band: `O(n·tile²)`.
pub fn compute_tile(challenge: &MatrixChallenge, index: u32) -> Result<Vec<i32>, VerifyError> {
    challenge.validate()?;
    let (row0, column0) = challenge.tile_origin(index)?;
    let (n, tile) = (challenge.n as usize, challenge.tile as usize);
    let mut rows = vec![0u8; tile * n];
    let mut columns = vec![0u8; tile * n];
    for (offset, (row, column)) in
        rows.chunks_exact_mut(n).zip(columns.chunks_exact_mut(n)).enumerate()
    {
        fill_a_row(&challenge.seed, (row0 + offset) as u32, row);
        fill_b_column(&challenge.seed, (column0 + offset) as u32, column);
    }
    let mut values = Vec::with_capacity(tile * tile);
    for row in rows.chunks_exact(n) {
        values.extend(columns.chunks_exact(n).map(|column| dot(row, column)));
    }
    Ok(values)
}

/// The whole of `C`, row-major, computed naively. `O(n³)`: for tests and `n ≤ REFERENCE_N_MAX`.
pub fn reference_product(challenge: &MatrixChallenge) -> Result<Vec<i32>, VerifyError> {
    challenge.validate()?;
    if challenge.n > REFERENCE_N_MAX {
        return Err(VerifyError::SizeInvalid {
            n: challenge.n,
            tile: challenge.tile,
            max: REFERENCE_N_MAX,
        });
    }
    let n = challenge.n as usize;
    let mut rows = vec![0u8; n * n];
    let mut columns = vec![0u8; n * n];
    for (index, (row, column)) in
        rows.chunks_exact_mut(n).zip(columns.chunks_exact_mut(n)).enumerate()
    {
        fill_a_row(&challenge.seed, index as u32, row);
        fill_b_column(&challenge.seed, index as u32, column);
    }
    let mut product = Vec::with_capacity(n * n);
    for row in rows.chunks_exact(n) {
        product.extend(columns.chunks_exact(n).map(|column| dot(row, column)));
    }
    Ok(product)
}

fn check_product_length(challenge: &MatrixChallenge, product: &[i32]) -> Result<(), VerifyError> {
    let expected = challenge.n as usize * challenge.n as usize;
    if product.len() != expected {
        return Err(VerifyError::ProductLength { expected, actual: product.len() });
    }
    Ok(())
}

/// Builds the commitment tree over a full row-major `C` (single-threaded; the provider's solver
/// hashes leaves in parallel and calls [`TileTree::from_leaves`] itself).
pub fn commit_product(
    challenge: &MatrixChallenge,
    product: &[i32],
) -> Result<TileTree, VerifyError> {
    challenge.validate()?;
    check_product_length(challenge, product)?;
    let count = challenge.tile_count();
    let leaves = (0..count)
        .map(|index| Ok(merkle::leaf_value(index, count, &challenge.tile_values(product, index)?)))
        .collect::<Result<Vec<_>, VerifyError>>()?;
    TileTree::from_leaves(leaves)
}

/// The `k` distinct tile indices to open, ascending.
///
/// Drawn from `BLAKE3-derive-key(OPEN_CONTEXT, seed || n || tile || root || randomness || k)` read
/// as a stream of little-endian `u64`s, each reduced modulo the tile count by rejection (no
/// bias), repeats skipped. `randomness` must be fixed only after the commitment arrived (e.g. the
/// hash of the block that recorded it); binding the root as well means a provider that could
/// predict it still cannot grind roots for a favourable draw without redoing the whole product.
/// If `k` reaches the tile count, every tile is opened.
pub fn open_indices(
    challenge: &MatrixChallenge,
    root: &Digest,
    randomness: &[u8; 32],
    k: u32,
) -> Result<Vec<u32>, VerifyError> {
    challenge.validate()?;
    if k > OPEN_COUNT_MAX {
        return Err(VerifyError::OpenCountInvalid { requested: k, max: OPEN_COUNT_MAX });
    }
    let count = challenge.tile_count();
    if k >= count {
        return Ok((0..count).collect());
    }
    let mut hasher = blake3::Hasher::new_derive_key(OPEN_CONTEXT);
    hasher.update(&challenge.seed);
    hasher.update(&challenge.n.to_le_bytes());
    hasher.update(&challenge.tile.to_le_bytes());
    hasher.update(root);
    hasher.update(randomness);
    hasher.update(&k.to_le_bytes());
    let mut reader = hasher.finalize_xof();
    let modulus = u64::from(count);
    let limit = u64::MAX - u64::MAX % modulus;
    let mut chosen = BTreeSet::new();
    while chosen.len() < k as usize {
        let mut bytes = [0u8; 8];
        reader.fill(&mut bytes);
        let draw = u64::from_le_bytes(bytes);
        if draw < limit {
            chosen.insert((draw % modulus) as u32);
        }
    }
    Ok(chosen.into_iter().collect())
}

/// Checks one opened tile: its path leads to `root`, and its values are the true product.
///
/// The Merkle check (cheap) runs first; then the tile is recomputed (`O(n·tile²)`).
pub fn verify_opening(
    challenge: &MatrixChallenge,
    root: &Digest,
    opening: &TileOpening,
) -> Result<(), VerifyError> {
    challenge.validate()?;
    let expected = challenge.tile as usize * challenge.tile as usize;
    if opening.tile_values.len() != expected {
        return Err(VerifyError::TileLength { expected, actual: opening.tile_values.len() });
    }
    let count = challenge.tile_count();
    if opening.index >= count {
        return Err(VerifyError::TileIndexOutOfRange { index: opening.index, count });
    }
    let leaf = merkle::leaf_value(opening.index, count, &opening.tile_values);
    let computed_root = merkle::root_from_path(count, opening.index, leaf, &opening.merkle_path)?;
    if &computed_root != root {
        return Err(VerifyError::MerkleMismatch { index: opening.index });
    }
    let truth = compute_tile(challenge, opening.index)?;
    match truth.iter().zip(&opening.tile_values).position(|(want, got)| want != got) {
        Some(position) => Err(VerifyError::TileMismatch { index: opening.index, position }),
        None => Ok(()),
    }
}

/// Checks a whole answer: the openings are exactly the drawn indices, in order, and each verifies.
pub fn verify_openings(
    challenge: &MatrixChallenge,
    root: &Digest,
    randomness: &[u8; 32],
    k: u32,
    openings: &[TileOpening],
) -> Result<(), VerifyError> {
    let indices = open_indices(challenge, root, randomness, k)?;
    let asked = openings.iter().map(|opening| opening.index);
    if openings.len() != indices.len() || !asked.eq(indices.iter().copied()) {
        return Err(VerifyError::OpeningsMismatch);
    }
    openings.iter().try_for_each(|opening| verify_opening(challenge, root, opening))
}

/// Probability, in parts per million, that `k` openings catch a node that skipped a fraction
/// `skipped_fraction_ppm` of the tiles: `1 - (1 - x)^k`, assuming independent draws (drawing
/// without repetition only raises it). Computed in fixed point on 62 fractional bits, rounding the
/// escape probability up at every step (error below `10^-15`), then to the nearest ppm.
pub fn detection_probability_ppm(skipped_fraction_ppm: u32, k: u32) -> u32 {
    const ONE: u128 = 1 << 62;
    let kept_ppm = PPM - u64::from(skipped_fraction_ppm).min(PPM);
    let multiply = |left: u128, right: u128| (left * right).div_ceil(ONE);
    let mut base = (u128::from(kept_ppm) * ONE).div_ceil(u128::from(PPM));
    let (mut escape, mut exponent) = (ONE, k);
    while exponent > 0 {
        if exponent & 1 == 1 {
            escape = multiply(escape, base);
        }
        base = multiply(base, base);
        exponent >>= 1;
    }
    let escape_ppm = (escape * u128::from(PPM) + ONE / 2) / ONE;
    (u128::from(PPM) - escape_ppm.min(u128::from(PPM))) as u32
}
