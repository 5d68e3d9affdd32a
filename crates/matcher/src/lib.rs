//! AICPW matcher: deterministic placement of tasks on provider nodes.
//!
//! The matcher is a pure part of block execution: no clock, no threads, no I/O, no floats and no
//! hash-order in any decision. Its decisions depend only on the nodes it holds (offers and
//! occupancy), the task and the caller's randomness, never on the order of past calls, so a
//! ledger that rebuilds it from its tables after a restart makes the same placements.
//!
//! The ledger keeps an incremental [`Matcher`] up to date as nodes change
//! ([`Matcher::upsert_node`], [`Matcher::remove_node`], [`Matcher::occupy`],
//! [`Matcher::release`]). Nodes live in buckets by GPU model, TEE, new-provider status and free GPU
//! count; inside a bucket one ordered set per [`Order`] lists them best-first, so a placement
//! touches a handful of buckets and nodes instead of scanning every node.

mod batch;
mod blocks;
mod joint;
pub mod eligibility;
pub mod explain;
mod index;
mod matcher;
mod offer;
pub mod params;
mod search;
pub mod strategy;
pub mod synthetic;

pub use eligibility::{unmet, Capacity, Constraint, Unmet};
pub use explain::{ConstraintCounts, NodeExplanation, TaskExplanation};
pub use index::{Order, Rank};
pub use matcher::Matcher;
pub use offer::{NodeOffer, TaskRequest};
pub use params::MatchParams;
pub use strategy::Strategy;
#[cfg(test)]
mod diag;
