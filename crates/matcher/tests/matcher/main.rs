//! Integration tests of the matcher's public contract.

mod batch;
mod bench;
mod common;
mod determinism;
mod eligibility;
mod explain;
mod fairness;
mod placement;
mod properties;
