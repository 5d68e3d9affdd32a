//! AICPW deterministic whole-network simulation: the real pure ledger driven by a seeded clock,
//! a seeded network (delay, loss, partitions) and simulated parties (requesters, honest providers
//! and cheaters), with invariants checked after every block. Same seed, same run.
//!
//! - [`world`]: the discrete-event loop; [`chain`]: mempool and blocks over `aicpw_ledger`.
//! - [`net`]: the seeded network; [`rng`]: seeded random streams.
//! - [`provider`], [`requester`]: the parties as state machines; [`work`]: simulated execution.
//! - [`watch`]: invariants after every block; [`detect`]: whether a cheater was caught;
//!   [`tally`]: every cheating attempt, whether it was caught, and what it earned.
//! - [`scenarios`]: the honest network and the red-team suite; [`report`]: what a run found.

pub mod bounds;
pub mod chain;
pub mod detect;
pub mod net;
pub mod party;
pub mod provider;
pub mod report;
pub mod requester;
pub mod rng;
pub mod scenarios;
pub mod setup;
pub mod tally;
pub mod watch;
pub mod work;
pub mod world;

pub use report::{RunReport, ScenarioReport, Status, Summary};
pub use scenarios::{scenario, Scenario, SCENARIOS};

/// Most seeds one call may run.
pub const SEEDS_MAX: u64 = 1_000_000;

/// Runs seeds `0..seeds` of scenario `name` on up to `threads` threads; `None` for an unknown
/// name. The report does not depend on the number of threads.
pub fn run_scenario(name: &str, seeds: u64, threads: usize) -> Option<ScenarioReport> {
    let scenario = scenario(name)?;
    let seeds = seeds.min(SEEDS_MAX);
    let threads = threads.clamp(1, 64) as u64;
    let mut runs: Vec<RunReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..seeds).filter(|s| s % threads == t).map(scenario.run).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    runs.sort_by_key(|r| r.seed);
    Some(ScenarioReport::of(scenario.name, scenario.attempt, &runs))
}
