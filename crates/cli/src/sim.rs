//! `aicpw sim`: runs the deterministic whole-network simulation (the honest network with faults
//! and the red-team suite) over many seeds and summarises what it found.

use anyhow::{bail, Result};
use serde_json::Value;

/// Runs seeds `0..seeds` of `scenario` (or of every scenario for `all`) on all cores and returns
/// `aicpw_sim::Summary`: each scenario's per-attempt figures (`attempts`, `caught_attempts`,
/// `detection_per_attempt`, `tasks_to_detection_p50`/`_p99`, `cheater_net_profit`,
/// `honest_frozen`, `honest_slashed`, `honest_pay_lost`, `violations`, with `status`:
/// `mechanism-missing` when the ledger lacks what it needs, then nothing was measured), and the
/// figures over all of them. The result depends on the seeds alone, not on the number of cores.
pub fn run(scenario: &str, seeds: u64) -> Result<Value> {
    if seeds == 0 || seeds > aicpw_sim::SEEDS_MAX {
        bail!("--seeds must be between 1 and {}", aicpw_sim::SEEDS_MAX);
    }
    let names: Vec<&str> = if scenario == "all" {
        aicpw_sim::SCENARIOS.iter().map(|s| s.name).collect()
    } else if aicpw_sim::scenario(scenario).is_some() {
        vec![scenario]
    } else {
        let known: Vec<&str> = aicpw_sim::SCENARIOS.iter().map(|s| s.name).collect();
        bail!("unknown scenario `{scenario}`; known: all, {}", known.join(", "));
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        let report = aicpw_sim::run_scenario(name, seeds, threads)
            .ok_or_else(|| anyhow::anyhow!("unknown scenario `{name}`"))?;
        reports.push(report);
    }
    Ok(serde_json::to_value(aicpw_sim::Summary::of(seeds, reports))?)
}
