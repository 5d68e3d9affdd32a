//! AICPW verification: pure, deterministic checks that a provider's capacity and results are real.
//!
//! Everything here is a function of its arguments: no clock, no I/O, no threads, no floats in
//! anything that feeds ledger state. Callers pass time, randomness and identities in.
//!
//! - [`matrix`]: the INT8 matrix challenge (capacity proof) with a BLAKE3 tile Merkle commitment.
//! - [`merkle`]: the tile Merkle tree used by the matrix commitment.
//! - [`freivalds`]: Freivalds' check of a whole product, for whoever holds all of C.
//! - [`puzzle`]: the SHA-256 hash puzzle, a complement to the matrix challenge, never a substitute.
//! - [`capacity`]: compute units, the proven capacity median and the evidence rule for misses.
//! - [`audit`]: the adaptive spot-check policy and known-answer task injection.
//! - [`replication`]: commit-reveal of replica results and the quorum rule.
//! - [`economics`]: parameters that make cheating unprofitable, slash sizing and splitting.

pub mod audit;
pub mod capacity;
pub mod economics;
mod error;
pub mod freivalds;
pub mod matrix;
pub mod merkle;
pub mod puzzle;
pub mod replication;

pub use audit::{audited, AuditPolicy, KnownAnswerPolicy, PPM};
pub use capacity::{compute_units, ChallengeVerdict, ComputeUnits, ProvenCapacity, Sanction};
pub use economics::{cheating_is_unprofitable, slash_min, unaudited_work_max, EconomicParams};
pub use error::VerifyError;
pub use matrix::{
    detection_probability_ppm, open_indices, verify_opening, verify_openings, work,
    MatrixChallenge, TileOpening,
};
pub use merkle::TileTree;
pub use puzzle::{verify_puzzle, HashPuzzle};
pub use replication::{
    check_reveal, commitment, equality_tag, quorum, QuorumOutcome, RevealedOutput,
};
