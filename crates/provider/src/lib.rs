//! AICPW provider agent: registers a machine, runs assigned tasks in a sandbox, answers challenges.

pub mod agent;
pub mod cache;
pub mod challenge;
pub mod challenger;
pub mod client;
pub mod executor;
pub mod hardware;
