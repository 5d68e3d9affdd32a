//! `aicpw sim`: runs the deterministic whole-network simulation (the honest network with faults
//! and the red-team suite) over many seeds and summarises what it found.

use anyhow::{bail, Result};
use serde_json::{json, Value};

/// Runs seeds `0..seeds` of `scenario` (or of every scenario for `all`) on all cores and returns
/// `{"scenarios": [...], "seeds"}`; each scenario reports `name`, `runs`, `detection_rate`,
/// `tasks_to_detection_mean`, `honest_slashed` and `violations`, with the bound its detection is
/// measured against and `status` (`mechanism-missing` when the ledger lacks what it needs: then
/// nothing was measured). The result depends on the seeds alone, not on the number of cores.
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
        reports.push(serde_json::to_value(report)?);
    }
    Ok(json!({ "scenarios": reports, "seeds": seeds }))
}
