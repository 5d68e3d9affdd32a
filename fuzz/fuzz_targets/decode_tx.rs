//! Decoding untrusted transaction bytes never panics, and whatever decodes re-encodes to the same
//! bytes (one encoding per value) and passes or fails the stateless check without panicking.
#![no_main]

use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{Block, SignedTx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTx::from_bytes(data) {
        assert_eq!(tx.to_bytes(), data, "the codec is canonical");
        let _ = aicpw_ledger::check::stateless(&tx, "aicpw-dev");
        let _ = tx.verify_signature();
    }
    if let Ok(block) = Block::from_bytes(data) {
        assert_eq!(block.to_bytes(), data, "the codec is canonical");
    }
});
