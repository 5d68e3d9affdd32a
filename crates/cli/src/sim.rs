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

/// `aicpw sim --consensus`: seeds `0..seeds` of 4 validators on Commonware simplex (its
/// deterministic runtime and simulated network) with `faults` (`all`, `none`, or a comma list of
/// crash, partition, lossy, liar), each until every validator finalized 30 blocks; then seed 0 again,
/// which must give the same state hash. Returns `runs`, `violations` (summed over seeds), the
/// simulated finality percentiles and each seed's `state_hash`, heights, transactions and
/// refused proposals.
#[cfg(feature = "consensus")]
pub fn consensus(seeds: u64, faults: &str) -> Result<Value> {
    use aicpw_consensus::sim::{run, Faults, Scenario};
    if seeds == 0 || seeds > aicpw_sim::SEEDS_MAX {
        bail!("--seeds must be between 1 and {}", aicpw_sim::SEEDS_MAX);
    }
    let mut chosen = Faults::default();
    for fault in faults.split(',').map(str::trim) {
        match fault {
            "all" => chosen = Faults::ALL,
            "none" | "" => {}
            "crash" => chosen.crash = true,
            "partition" => chosen.partition = true,
            "lossy" => chosen.lossy = true,
            "liar" => chosen.liar = true,
            other => {
                bail!("unknown fault `{other}`; known: all, none, crash, partition, lossy, liar")
            }
        }
    }
    let scenario =
        |seed| Scenario { seed, validators: 4, blocks: 30, faults: chosen, txs_per_tick: 8 };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..seeds)
                        .step_by(threads as usize)
                        .map(|seed| run(&scenario(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    outcomes.sort_by_key(|o| o.seed);
    let repeat = run(&scenario(0));
    let violations: usize = outcomes.iter().map(|o| o.violations.len()).sum();
    let runs: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "seed": o.seed,
                "state_hash": o.state_hash,
                "violations": o.violations,
                "heights": o.heights,
                "txs": o.txs,
                "refused": o.refused,
                "liar_finalized": o.liar_finalized,
                "simulated_ms": o.simulated_ms,
            })
        })
        .collect();
    let finality: Vec<u64> = outcomes.iter().flat_map(|o| o.finality_ms.iter().copied()).collect();
    Ok(serde_json::json!({
        "runs": outcomes.len(),
        // From a block's time to its finalization, on the simulated network's clock and links.
        "simulated_finality_p50_ms": aicpw_sim::report::percentile(&finality, 500),
        "simulated_finality_p99_ms": aicpw_sim::report::percentile(&finality, 990),
        "faults": chosen,
        "violations": violations,
        "repeat_equal": outcomes.first().is_some_and(|o| o.state_hash == repeat.state_hash),
        "seeds": runs,
    }))
}

/// What the validators' commands say in an aicpw built without them.
#[cfg(not(feature = "consensus"))]
pub const WITHOUT_VALIDATORS: &str =
    "this aicpw was built without validators: cargo build -p aicpw-cli --features consensus";

/// Without the `consensus` feature the validators are not built in.
#[cfg(not(feature = "consensus"))]
pub fn consensus(_seeds: u64, _faults: &str) -> Result<Value> {
    bail!(WITHOUT_VALIDATORS)
}
