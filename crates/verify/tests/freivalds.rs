//! Freivalds' check of a whole product.

use aicpw_verify::freivalds::freivalds_check;
use aicpw_verify::matrix::reference_product;
use aicpw_verify::{MatrixChallenge, VerifyError};

#[test]
fn a_true_product_passes_and_any_single_wrong_entry_fails() {
    let challenge = MatrixChallenge::new([2; 32], 48, 16).expect("valid");
    let product = reference_product(&challenge).expect("valid");
    assert_eq!(freivalds_check(&challenge, &product, &[1; 32], 2), Ok(()));
    for position in [0, 17, 48 * 48 - 1] {
        let mut wrong = product.clone();
        wrong[position] -= 3;
        let result = freivalds_check(&challenge, &wrong, &[1; 32], 2);
        assert_eq!(result, Err(VerifyError::FreivaldsMismatch { round: 0 }), "entry {position}");
    }
    let short = freivalds_check(&challenge, &product[1..], &[1; 32], 1);
    assert!(matches!(short, Err(VerifyError::ProductLength { .. })));
}
