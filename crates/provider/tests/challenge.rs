//! The provider's challenge solver against the verifier: honest answers pass, cheats fail.

use std::collections::BTreeSet;

use aicpw_provider::challenge::{
    bench_challenge, measure_int_gemm_peak_with, solve_matrix, solve_matrix_with, ChallengeError,
    Engine, Isa, Solver,
};
use aicpw_verify::matrix::{commit_product, reference_product};
use aicpw_verify::merkle::TileTree;
use aicpw_verify::{open_indices, verify_opening, verify_openings, MatrixChallenge, VerifyError};

fn challenge(seed: u8, n: u32, tile: u32) -> MatrixChallenge {
    MatrixChallenge::new([seed; 32], n, tile).expect("valid challenge")
}

#[test]
fn every_instruction_set_computes_the_exact_product_and_root_for_any_shape_and_thread_count() {
    // Sizes that are and are not multiples of the micro-tiles (6×32, 6×16, 4×8), one to many
    // commitment blocks, one to many row panels per thread.
    let shapes = [(16, 16), (32, 32), (48, 16), (64, 64), (80, 16), (96, 32), (144, 16), (272, 16)];
    for isa in Isa::available() {
        for (n, tile) in shapes {
            let challenge = challenge(n as u8, n, tile);
            let product = reference_product(&challenge).expect("small");
            let root = commit_product(&challenge, &product).expect("valid").root();
            for threads in [1, 2, 3, 7] {
                let response = solve_matrix_with(&challenge, threads, isa).expect("available");
                assert_eq!(response.product(), &product[..], "{isa:?} n {n} threads {threads}");
                assert_eq!(response.root(), root, "{isa:?} n {n} threads {threads}");
                assert_eq!(response.engine(), Engine::Cpu(isa));
            }
        }
    }
}

#[test]
fn the_detected_solver_says_which_engine_it_uses_and_solves_exactly() {
    let solver = Solver::detect(2);
    let challenge = challenge(9, 64, 16);
    let response = solver.solve(&challenge).expect("solved");
    assert_eq!(response.product(), &reference_product(&challenge).expect("small")[..]);
    match solver.gpu_unavailable() {
        Some(why) => {
            assert!(!why.is_empty());
            assert!(matches!(response.engine(), Engine::Cpu(_)), "{:?}", response.engine());
        }
        None => assert!(!matches!(response.engine(), Engine::Cpu(_))),
    }
}

#[test]
fn extreme_entries_accumulate_exactly() {
    // Whatever the seed, every product is checked against the naive reference; a larger n makes
    // long runs of same-sign products likely enough to exercise the VNNI bias correction.
    let challenge = challenge(0xA5, 256, 16);
    let product = reference_product(&challenge).expect("small");
    for isa in Isa::available() {
        assert_eq!(
            solve_matrix_with(&challenge, 2, isa).expect("available").product(),
            &product[..]
        );
    }
}

#[test]
fn honest_openings_verify() {
    for (n, tile, k) in [(128, 16, 20), (16, 16, 1), (96, 32, 9), (320, 16, 400), (192, 64, 9)] {
        let challenge = challenge(7, n, tile);
        let response = solve_matrix(&challenge, 2).expect("valid");
        let randomness = [42; 32];
        let indices = open_indices(&challenge, &response.root(), &randomness, k).expect("valid");
        let openings = response.open(&indices).expect("in range");
        let verdict = verify_openings(&challenge, &response.root(), &randomness, k, &openings);
        assert_eq!(verdict, Ok(()), "n {n} tile {tile}");
    }
}

#[test]
fn a_solver_that_skips_tiles_is_caught_when_a_skipped_tile_is_drawn() {
    let challenge = challenge(9, 256, 16); // 256 tiles
    let honest = solve_matrix(&challenge, 2).expect("valid");
    let skipped: BTreeSet<u32> = [3, 77, 200].into();
    let mut product = honest.product().to_vec();
    for &index in &skipped {
        let (row0, column0) = ((index / 16) as usize * 16, (index % 16) as usize * 16);
        for row in row0..row0 + 16 {
            product[row * 256 + column0..row * 256 + column0 + 16].fill(0);
        }
    }
    let tree = commit_product(&challenge, &product).expect("valid");
    for index in 0..challenge.tile_count() {
        let opening = aicpw_verify::TileOpening {
            index,
            tile_values: challenge.tile_values(&product, index).expect("in range"),
            merkle_path: tree.path(index).expect("in range"),
        };
        let verdict = verify_opening(&challenge, &tree.root(), &opening);
        if skipped.contains(&index) {
            assert!(matches!(verdict, Err(VerifyError::TileMismatch { .. })), "tile {index}");
        } else {
            assert_eq!(verdict, Ok(()), "tile {index}");
        }
    }
}

#[test]
fn answers_that_do_not_match_the_commitment_fail() {
    let challenge = challenge(11, 64, 16);
    let response = solve_matrix(&challenge, 1).expect("valid");
    let root = response.root();
    let mut openings = response.open(&[0, 5, 15]).expect("in range");
    openings[0].tile_values[7] ^= 1; // altered after committing
    openings[1].merkle_path[1][3] ^= 1; // forged path
    openings[2].index = 14; // another tile's answer
    for opening in &openings {
        assert!(matches!(
            verify_opening(&challenge, &root, opening),
            Err(VerifyError::MerkleMismatch { .. })
        ));
    }
    let other = solve_matrix(&self::challenge(12, 64, 16), 1).expect("valid");
    let foreign = other.open(&[0]).expect("in range");
    assert!(verify_opening(&challenge, &root, &foreign[0]).is_err()); // another challenge's tile
    let stale: TileTree = commit_product(&challenge, &vec![0; 64 * 64]).expect("valid");
    let zeros = aicpw_verify::TileOpening {
        index: 0,
        tile_values: vec![0; 256],
        merkle_path: stale.path(0).expect("in range"),
    };
    assert!(matches!(
        verify_opening(&challenge, &stale.root(), &zeros),
        Err(VerifyError::TileMismatch { index: 0, .. })
    ));
}

#[test]
fn invalid_challenges_and_requests_are_refused() {
    let bad = MatrixChallenge { seed: [0; 32], n: 30, tile: 16 };
    assert!(matches!(
        solve_matrix(&bad, 1),
        Err(ChallengeError::Verify(VerifyError::SizeInvalid { .. }))
    ));
    let response = solve_matrix(&challenge(1, 32, 16), 0).expect("threads clamp to 1");
    assert!(matches!(response.open(&[4]), Err(VerifyError::TileIndexOutOfRange { .. })));
    assert!(matches!(response.open(&vec![0; 5_000]), Err(VerifyError::OpenCountInvalid { .. })));
    for isa in [Isa::Avx2, Isa::Avx512Vnni] {
        if !isa.is_available() {
            let result = solve_matrix_with(&challenge(1, 32, 16), 1, isa);
            assert!(matches!(result, Err(ChallengeError::IsaUnavailable(_))));
        }
    }
}

#[test]
fn the_peak_and_the_bench_report_sane_figures() {
    let peak = measure_int_gemm_peak_with(Isa::Portable, 1).expect("always available");
    assert!(peak.ops_per_sec > 0.0 && peak.register_ops_per_sec.is_none());
    let bench = bench_challenge(128, 2, 256).expect("valid");
    assert_eq!(bench.sampled_detection_rate, 1.0); // 64 tiles: k = 256 opens them all
    assert!(bench.efficiency > 0.0 && bench.capacity_overhead < 0.02);
    assert!(bench.solve_ms > 0.0 && bench.verify_ms > 0.0);
}
