//! The hash puzzle: solve, verify, refuse.

use aicpw_verify::puzzle::{leading_zero_bits, puzzle_hash, solve_puzzle, DIFFICULTY_MAX};
use aicpw_verify::{verify_puzzle, HashPuzzle, VerifyError};

#[test]
fn a_found_nonce_verifies_and_a_nonce_short_of_the_difficulty_does_not() {
    let puzzle = HashPuzzle { seed: [3; 32], difficulty: 12 };
    let nonce = solve_puzzle(&puzzle, 0, 1 << 20).expect("valid").expect("found in 2^20 tries");
    assert_eq!(verify_puzzle(&puzzle, nonce), Ok(()));
    assert!(leading_zero_bits(&puzzle_hash(&puzzle.seed, nonce)) >= 12);
    let bad = (0..).find(|&n| leading_zero_bits(&puzzle_hash(&puzzle.seed, n)) < 12).expect("some");
    assert!(matches!(
        verify_puzzle(&puzzle, bad),
        Err(VerifyError::PuzzleUnsolved { required: 12, .. })
    ));
}

#[test]
fn leading_zero_bits_count_across_bytes() {
    let cases: [([u8; 3], u32); 5] = [
        ([0x80, 0, 0], 0),
        ([0x01, 0, 0], 7),
        ([0, 0x40, 0], 9),
        ([0, 0, 0x01], 23),
        ([0, 0, 0], 256),
    ];
    for (prefix, bits) in cases {
        let mut digest = [0u8; 32];
        digest[..3].copy_from_slice(&prefix);
        assert_eq!(leading_zero_bits(&digest), bits, "{prefix:?}");
    }
}

#[test]
fn difficulty_zero_accepts_anything_and_above_the_limit_is_refused() {
    assert_eq!(verify_puzzle(&HashPuzzle { seed: [0; 32], difficulty: 0 }, 42), Ok(()));
    let hard = HashPuzzle { seed: [0; 32], difficulty: DIFFICULTY_MAX + 1 };
    assert!(matches!(verify_puzzle(&hard, 0), Err(VerifyError::DifficultyInvalid { .. })));
    assert!(solve_puzzle(&hard, 0, 10).is_err());
    assert_eq!(solve_puzzle(&HashPuzzle { seed: [0; 32], difficulty: 40 }, 0, 100), Ok(None));
}
