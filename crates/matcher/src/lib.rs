//! AICPW matcher: deterministic placement of tasks on provider nodes.
//!
//! The matcher is a pure part of block execution: no clock, no threads, no I/O, no floats and no
//! hash-order in any decision. Its decisions depend only on the nodes it holds (offers and
//! occupancy), the task and the caller's randomness, never on the order of past calls, so a
//! ledger that rebuilds it from its tables after a restart makes the same placements.
//!
//! The ledger keeps an incremental [`Matcher`] up to date as nodes change
//! ([`Matcher::upsert_node`], [`Matcher::remove_node`], [`Matcher::occupy`],
//! [`Matcher::release`]). Nodes live in buckets by GPU model; inside a bucket one ordered list per
//! [`Order`] lists them best-first, in blocks whose summaries (most free capacity, stake, units,
//! reputation; least price) let a search skip whole blocks of nodes that cannot take the task,
//! so a placement touches a few blocks instead of scanning every node. See `README.md`.

mod batch;
mod batch_exact;
mod blocks;
mod check;
pub mod eligibility;
pub mod explain;
mod index;
mod joint;
mod matcher;
mod offer;
pub mod params;
mod search;
pub mod strategy;
pub mod synthetic;
mod traits;

pub use eligibility::{unmet, Capacity, Constraint, Unmet};
pub use explain::{ConstraintCounts, NodeExplanation, TaskExplanation};
pub use index::{Order, Rank, REPUTATION_BAND};
pub use matcher::Matcher;
pub use offer::{NodeOffer, TaskRequest};
pub use params::MatchParams;
pub use search::{FIT_CHOICES, TIE_CHOICES};
pub use strategy::Strategy;

#[cfg(test)]
mod tests;
