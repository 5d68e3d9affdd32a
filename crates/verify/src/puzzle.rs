//! The SHA-256 hash puzzle of the original design.
//!
//! Find a `nonce` with `SHA-256(seed || nonce as u64 LE)` starting with at least `difficulty`
//! zero bits; checking costs one hash. It measures *hashing*, not AI arithmetic: an ASIC hashes
//! about 10,000× faster than a GPU, so a puzzle result may only complement the matrix challenge
//! ([`crate::matrix`]) — e.g. as a cheap liveness or anti-spam gate — and never stands in for
//! capacity.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::VerifyError;

/// Hardest puzzle a validator may pose: `2^40` expected hashes is hours on a CPU.
pub const DIFFICULTY_MAX: u32 = 40;

/// One puzzle: fresh seed and the required leading zero bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashPuzzle {
    /// Fresh randomness from the validator.
    pub seed: [u8; 32],
    /// Required leading zero bits of the hash, at most [`DIFFICULTY_MAX`].
    pub difficulty: u32,
}

/// `SHA-256(seed || nonce LE)`.
pub fn puzzle_hash(seed: &[u8; 32], nonce: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed);
    hasher.update(nonce.to_le_bytes());
    hasher.finalize().into()
}

/// Leading zero bits of a digest, most significant bit of byte 0 first.
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        bits += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    bits
}

fn check_difficulty(puzzle: &HashPuzzle) -> Result<(), VerifyError> {
    if puzzle.difficulty > DIFFICULTY_MAX {
        return Err(VerifyError::DifficultyInvalid {
            bits: puzzle.difficulty,
            max: DIFFICULTY_MAX,
        });
    }
    Ok(())
}

/// Checks a claimed solution with one hash.
pub fn verify_puzzle(puzzle: &HashPuzzle, nonce: u64) -> Result<(), VerifyError> {
    check_difficulty(puzzle)?;
    let found = leading_zero_bits(&puzzle_hash(&puzzle.seed, nonce));
    if found < puzzle.difficulty {
        return Err(VerifyError::PuzzleUnsolved { required: puzzle.difficulty, found });
    }
    Ok(())
}

/// Searches `attempts` nonces from `nonce_first` on; bounded so a caller controls the time spent.
pub fn solve_puzzle(
    puzzle: &HashPuzzle,
    nonce_first: u64,
    attempts: u64,
) -> Result<Option<u64>, VerifyError> {
    check_difficulty(puzzle)?;
    let last = nonce_first.saturating_add(attempts);
    Ok((nonce_first..last)
        .find(|&nonce| leading_zero_bits(&puzzle_hash(&puzzle.seed, nonce)) >= puzzle.difficulty))
}
