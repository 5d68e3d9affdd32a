//! Freivalds' check: verifies a whole claimed product `C = A·B` in `O(n²)` per round.
//!
//! For a random vector `r`, compare `C·r` with `A·(B·r)`. Over the integers with `r` uniform in
//! `[0, 2^16)^n`, a wrong `C` passes one round with probability at most `2^-16` (Schwartz–Zippel on
//! the linear form of a nonzero row of `C - A·B`). This is the tool when all of `C` is at hand
//! (a provider checking its own solver, an auditor holding a full answer); the network's
//! challenge protocol opens tiles instead, since shipping `C` would cost `4n²` bytes.
//! All sums are exact in `i64`: `|C| < 2^31`, `|A|, |B| ≤ 2^7`, `r < 2^16`, `n ≤ 2^14`.

use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::matrix::{fill_a_row, fill_b_column, MatrixChallenge};
use crate::VerifyError;

/// Most rounds per check (each round costs one pass over `C`).
pub const FREIVALDS_ROUNDS_MAX: u32 = 16;
/// Derive-key context of the random vectors.
pub const FREIVALDS_CONTEXT: &str = "AICPW 2026-01 verify matrix freivalds vector v1";

/// Checks `product` (row-major `C`) against the challenge in `rounds` independent rounds.
pub fn freivalds_check(
    challenge: &MatrixChallenge,
    product: &[i32],
    randomness: &[u8; 32],
    rounds: u32,
) -> Result<(), VerifyError> {
    challenge.validate()?;
    let n = challenge.n as usize;
    if product.len() != n * n {
        return Err(VerifyError::ProductLength { expected: n * n, actual: product.len() });
    }
    if rounds > FREIVALDS_ROUNDS_MAX {
        return Err(VerifyError::ParamsInvalid("freivalds rounds above FREIVALDS_ROUNDS_MAX"));
    }
    let mut rows = vec![0u8; n * n];
    let mut columns = vec![0u8; n * n];
    for (index, (row, column)) in
        rows.chunks_exact_mut(n).zip(columns.chunks_exact_mut(n)).enumerate()
    {
        fill_a_row(&challenge.seed, index as u32, row);
        fill_b_column(&challenge.seed, index as u32, column);
    }
    let key = blake3::derive_key(FREIVALDS_CONTEXT, randomness);
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(key);
    for round in 0..rounds {
        let vector: Vec<i64> = (0..n).map(|_| i64::from(rng.next_u32() >> 16)).collect();
        if !round_holds(&rows, &columns, product, &vector) {
            return Err(VerifyError::FreivaldsMismatch { round });
        }
    }
    Ok(())
}

/// One round: `C·r == A·(B·r)`, with `B` given by columns.
fn round_holds(rows: &[u8], columns: &[u8], product: &[i32], vector: &[i64]) -> bool {
    let n = vector.len();
    let mut b_times_r = vec![0i64; n];
    for (column, weight) in columns.chunks_exact(n).zip(vector) {
        for (sum, &entry) in b_times_r.iter_mut().zip(column) {
            *sum += i64::from(entry as i8) * weight;
        }
    }
    rows.chunks_exact(n).zip(product.chunks_exact(n)).all(|(row, product_row)| {
        let left: i64 = product_row.iter().zip(vector).map(|(&c, r)| i64::from(c) * r).sum();
        let right: i64 = row.iter().zip(&b_times_r).map(|(&a, br)| i64::from(a as i8) * br).sum();
        left == right
    })
}
