//! The matrix challenge: derivation, commitment, openings and detection.

use aicpw_verify::matrix::{
    commit_product, compute_tile, fill_a_row, fill_b_column, reference_product, N_MAX,
    OPEN_COUNT_MAX, TILE_MAX, TILE_MIN,
};
use aicpw_verify::merkle::TileTree;
use aicpw_verify::{
    detection_probability_ppm, open_indices, verify_opening, verify_openings, work,
    MatrixChallenge, TileOpening, VerifyError,
};
use proptest::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn honest(challenge: &MatrixChallenge) -> (Vec<i32>, TileTree) {
    let product = reference_product(challenge).expect("valid challenge");
    let tree = commit_product(challenge, &product).expect("valid product");
    (product, tree)
}

fn opening(
    challenge: &MatrixChallenge,
    product: &[i32],
    tree: &TileTree,
    index: u32,
) -> TileOpening {
    TileOpening {
        index,
        tile_values: challenge.tile_values(product, index).expect("index in range"),
        merkle_path: tree.path(index).expect("index in range"),
    }
}

#[test]
fn a_row_zero_of_the_zero_seed_is_the_published_chacha20_keystream() {
    // RFC 7539 A.1 test vector 1: key 0, nonce 0, counter 0.
    let expected = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
                    da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";
    let mut row = [0u8; 64];
    fill_a_row(&[0; 32], 0, &mut row);
    let hex: String = row.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(hex, expected);
}

#[test]
fn rows_and_columns_use_distinct_streams_and_prefixes_agree() {
    let seed = [9u8; 32];
    let (mut row, mut column, mut longer) = ([0u8; 64], [0u8; 64], [0u8; 128]);
    fill_a_row(&seed, 3, &mut row);
    fill_b_column(&seed, 3, &mut column);
    fill_a_row(&seed, 3, &mut longer);
    assert_ne!(row, column);
    assert_eq!(row[..], longer[..64]);
}

#[test]
fn the_derivation_and_the_commitment_are_pinned() {
    let challenge = MatrixChallenge::new([7; 32], 32, 16).expect("valid");
    let (product, tree) = honest(&challenge);
    // Cross-checked with an independent ChaCha20 written from RFC 7539 (Python, outside the repo).
    assert_eq!(product[..4], [-38851, -6005, 46281, -12728]);
    let root: String = tree.root().iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(root, "4dc26252c81009042731b75e4f69a4b8a53cb10b89aba14217f74e7d49dd5d8e");
}

#[test]
fn challenge_shapes_are_validated() {
    let seed = [1; 32];
    let cases: [(u32, u32, bool); 12] = [
        (4096, 16, true),
        (16, 16, true),
        (N_MAX, 16, true),
        (N_MAX + 16, 16, false),
        (0, 16, false),
        (40, 16, false),
        (64, TILE_MIN / 2, false),
        (128, TILE_MAX * 2, false),
        (64, TILE_MAX, true),
        (96, 32, true),
        (96, 48, false), // a tile must be a power of two
        (96, 24, false),
    ];
    for (n, tile, valid) in cases {
        assert_eq!(MatrixChallenge::new(seed, n, tile).is_ok(), valid, "n {n} tile {tile}");
    }
}

#[test]
fn work_is_two_n_cubed() {
    assert_eq!(work(4096), 137_438_953_472);
    assert_eq!(MatrixChallenge::new([0; 32], 16, 16).expect("valid").work(), 8192);
}

#[test]
fn a_tile_with_a_wrong_value_committed_in_the_tree_fails_the_recomputation() {
    let challenge = MatrixChallenge::new([3; 32], 64, 16).expect("valid");
    let mut product = reference_product(&challenge).expect("valid");
    product[17 * 64 + 40] += 1; // tile (1, 2), index 6
    let tree = commit_product(&challenge, &product).expect("valid");
    let error = verify_opening(&challenge, &tree.root(), &opening(&challenge, &product, &tree, 6));
    assert_eq!(error, Err(VerifyError::TileMismatch { index: 6, position: 16 + 8 }));
    let clean = opening(&challenge, &product, &tree, 5);
    assert_eq!(verify_opening(&challenge, &tree.root(), &clean), Ok(()));
}

#[test]
fn wrong_paths_fail() {
    let challenge = MatrixChallenge::new([4; 32], 48, 16).expect("valid"); // 9 tiles: odd levels
    let (product, tree) = honest(&challenge);
    let root = tree.root();
    let good = opening(&challenge, &product, &tree, 4);
    let mut flipped = good.clone();
    flipped.merkle_path[0][0] ^= 1;
    let mut short = good.clone();
    short.merkle_path.pop();
    let mut long = good.clone();
    long.merkle_path.push([0; 32]);
    let mut other_index = good.clone();
    other_index.merkle_path = tree.path(5).expect("in range");
    let mut moved = good.clone();
    moved.index = 5;
    assert_eq!(verify_opening(&challenge, &root, &good), Ok(()));
    assert_eq!(
        verify_opening(&challenge, &root, &flipped),
        Err(VerifyError::MerkleMismatch { index: 4 })
    );
    assert!(matches!(
        verify_opening(&challenge, &root, &short),
        Err(VerifyError::PathLength { .. })
    ));
    assert!(matches!(
        verify_opening(&challenge, &root, &long),
        Err(VerifyError::PathLength { .. })
    ));
    assert_eq!(
        verify_opening(&challenge, &root, &other_index),
        Err(VerifyError::MerkleMismatch { index: 4 })
    );
    assert_eq!(
        verify_opening(&challenge, &root, &moved),
        Err(VerifyError::MerkleMismatch { index: 5 })
    );
    assert_eq!(
        verify_opening(&challenge, &[0; 32], &good),
        Err(VerifyError::MerkleMismatch { index: 4 })
    );
}

#[test]
fn malformed_openings_are_rejected_before_any_work() {
    let challenge = MatrixChallenge::new([5; 32], 32, 16).expect("valid");
    let (product, tree) = honest(&challenge);
    let mut truncated = opening(&challenge, &product, &tree, 1);
    truncated.tile_values.pop();
    let mut out_of_range = opening(&challenge, &product, &tree, 1);
    out_of_range.index = 4;
    assert!(matches!(
        verify_opening(&challenge, &tree.root(), &truncated),
        Err(VerifyError::TileLength { .. })
    ));
    assert!(matches!(
        verify_opening(&challenge, &tree.root(), &out_of_range),
        Err(VerifyError::TileIndexOutOfRange { index: 4, count: 4 })
    ));
}

#[test]
fn openings_must_answer_exactly_the_drawn_indices() {
    let challenge = MatrixChallenge::new([6; 32], 128, 16).expect("valid"); // 64 tiles
    let (product, tree) = honest(&challenge);
    let (root, randomness) = (tree.root(), [8; 32]);
    let indices = open_indices(&challenge, &root, &randomness, 5).expect("valid");
    let answer: Vec<TileOpening> =
        indices.iter().map(|&index| opening(&challenge, &product, &tree, index)).collect();
    assert_eq!(verify_openings(&challenge, &root, &randomness, 5, &answer), Ok(()));
    let unasked = (0..64).find(|index| !indices.contains(index)).expect("64 tiles, 5 drawn");
    let mut swapped = answer.clone();
    swapped[0] = opening(&challenge, &product, &tree, unasked);
    let result = verify_openings(&challenge, &root, &randomness, 5, &swapped);
    assert_eq!(result, Err(VerifyError::OpeningsMismatch));
    let result = verify_openings(&challenge, &root, &randomness, 5, &answer[1..]);
    assert_eq!(result, Err(VerifyError::OpeningsMismatch));
}

#[test]
fn open_indices_cover_everything_when_k_reaches_the_tile_count_and_refuse_too_many() {
    let challenge = MatrixChallenge::new([1; 32], 64, 16).expect("valid");
    assert_eq!(open_indices(&challenge, &[0; 32], &[0; 32], 16), Ok((0..16).collect()));
    assert_eq!(open_indices(&challenge, &[0; 32], &[0; 32], 99), Ok((0..16).collect()));
    let too_many = open_indices(&challenge, &[0; 32], &[0; 32], OPEN_COUNT_MAX + 1);
    assert!(matches!(too_many, Err(VerifyError::OpenCountInvalid { .. })));
}

#[test]
fn detection_probability_matches_the_published_figures() {
    let cases: [(u32, u32, std::ops::RangeInclusive<u32>); 7] = [
        (20_000, 256, 994_320..=994_330), // 1 - 0.98^256 = 0.994327
        (20_000, 1, 20_000..=20_000),
        (0, 256, 0..=0),
        (1_000_000, 1, 1_000_000..=1_000_000),
        (20_000, 0, 0..=0),
        (10_000, 460, 990_100..=990_200), // 1 - 0.99^460 = 0.990176
        (2_000_000, 3, 1_000_000..=1_000_000),
    ];
    for (skipped, k, expected) in cases {
        let found = detection_probability_ppm(skipped, k);
        assert!(expected.contains(&found), "x {skipped} k {k}: {found}");
    }
}

/// Draws `count` distinct tiles a cheater skips.
fn skipped_tiles(trial: u64, tiles: u32, count: usize) -> std::collections::BTreeSet<u32> {
    let mut rng = ChaCha20Rng::seed_from_u64(trial);
    let mut skipped = std::collections::BTreeSet::new();
    while skipped.len() < count {
        skipped.insert(rng.next_u32() % tiles);
    }
    skipped
}

#[test]
fn skipping_two_percent_of_tiles_is_caught_by_256_openings_in_99_percent_of_trials() {
    // The default challenge: n = 4096, 65,536 tiles of 16×16. Opening a skipped tile always fails
    // (the committed leaf is not the true tile, see the end-to-end test below), so a trial is
    // caught exactly when the draw meets the skipped set.
    let challenge = MatrixChallenge::new([0; 32], 4096, 16).expect("valid");
    let tiles = challenge.tile_count();
    let skipped_count = (tiles as usize * 2).div_ceil(100);
    let trials = 5_000u64;
    let caught = (0..trials)
        .filter(|&trial| {
            let skipped = skipped_tiles(trial, tiles, skipped_count);
            let root = *blake3::hash(&trial.to_le_bytes()).as_bytes();
            let randomness = *blake3::hash(&root).as_bytes();
            let drawn = open_indices(&challenge, &root, &randomness, 256).expect("valid");
            drawn.iter().any(|index| skipped.contains(index))
        })
        .count() as u64;
    assert!(caught * 100 >= trials * 99, "caught {caught} of {trials}");
}

#[test]
fn a_solver_that_skips_tiles_fails_verification_exactly_when_a_skipped_tile_is_drawn() {
    // 16 tiles, one skipped, 4 drawn: met in a quarter of the trials. Whether met or not, the
    // verdict must say so: a skipped tile always fails, a computed one always passes.
    let trials = 60u64;
    let mut caught = 0;
    for trial in 0..trials {
        let seed = *blake3::hash(&trial.to_le_bytes()).as_bytes();
        let challenge = MatrixChallenge::new(seed, 64, 16).expect("valid");
        let mut product = reference_product(&challenge).expect("valid");
        let skipped = skipped_tiles(trial, challenge.tile_count(), 1);
        for &index in &skipped {
            let (row0, column0) = ((index / 4) as usize * 16, (index % 4) as usize * 16);
            for row in row0..row0 + 16 {
                product[row * 64 + column0..row * 64 + column0 + 16].fill(0);
            }
        }
        let tree = commit_product(&challenge, &product).expect("valid");
        let randomness = [trial as u8; 32];
        let indices = open_indices(&challenge, &tree.root(), &randomness, 4).expect("valid");
        let answer: Vec<TileOpening> =
            indices.iter().map(|&index| opening(&challenge, &product, &tree, index)).collect();
        let verdict = verify_openings(&challenge, &tree.root(), &randomness, 4, &answer);
        let met = indices.iter().any(|index| skipped.contains(index));
        assert_eq!(verdict.is_err(), met, "trial {trial}");
        caught += u64::from(met);
    }
    assert!((5..30).contains(&caught), "caught {caught} of {trials}, expected about 15");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn an_honest_response_always_verifies(seed in any::<[u8; 32]>(), side in 1u32..5, tile in prop::sample::select(vec![16u32, 32])) {
        let challenge = MatrixChallenge::new(seed, side * tile, tile).expect("valid");
        let (product, tree) = honest(&challenge);
        for index in 0..challenge.tile_count() {
            prop_assert_eq!(compute_tile(&challenge, index)?, challenge.tile_values(&product, index)?);
            prop_assert_eq!(verify_opening(&challenge, &tree.root(), &opening(&challenge, &product, &tree, index)), Ok(()));
        }
    }

    #[test]
    fn a_tile_with_one_wrong_value_fails(seed in any::<[u8; 32]>(), index in 0u32..9, position in 0usize..256, delta in prop_oneof![i32::MIN..0, 1..i32::MAX]) {
        let challenge = MatrixChallenge::new(seed, 48, 16).expect("valid");
        let (product, tree) = honest(&challenge);
        let mut forged = opening(&challenge, &product, &tree, index);
        forged.tile_values[position] = forged.tile_values[position].wrapping_add(delta);
        prop_assert_eq!(verify_opening(&challenge, &tree.root(), &forged), Err(VerifyError::MerkleMismatch { index }));
    }

    #[test]
    fn open_indices_are_distinct_sorted_in_range_and_deterministic(seed in any::<[u8; 32]>(), root in any::<[u8; 32]>(), randomness in any::<[u8; 32]>(), k in 0u32..300) {
        let challenge = MatrixChallenge::new(seed, 512, 16).expect("valid"); // 1024 tiles
        let drawn = open_indices(&challenge, &root, &randomness, k)?;
        prop_assert_eq!(drawn.len(), k as usize);
        prop_assert!(drawn.windows(2).all(|pair| pair[0] < pair[1]));
        prop_assert!(drawn.iter().all(|&index| index < 1024));
        prop_assert_eq!(&drawn, &open_indices(&challenge, &root, &randomness, k)?);
        let mut other = randomness;
        other[0] ^= 1;
        if k >= 8 {
            prop_assert_ne!(&drawn, &open_indices(&challenge, &root, &other, k)?);
        }
    }

    #[test]
    fn detection_probability_grows_with_k_and_x(x in 0u32..1_000_000, k in 0u32..2_000) {
        prop_assert!(detection_probability_ppm(x, k) <= detection_probability_ppm(x, k + 1));
        prop_assert!(detection_probability_ppm(x, k) <= detection_probability_ppm(x + 1, k));
    }
}
