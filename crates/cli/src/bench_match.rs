//! `aicpw bench match`: times the matcher on a seeded synthetic market, one thread, then weighs
//! the batch optimizer's cost on instances above its exact limit against the optimum an
//! independent MILP solver (microlp) finds.

use aicpw_matcher::synthetic::{
    batch_cost, batch_placement, large_batch_instance, BatchOutcome, RatioSummary,
};
use aicpw_matcher::{unmet, Capacity, MatchParams, NodeOffer, TaskRequest};
use anyhow::{ensure, Result};
use microlp::{ComparisonOp, OptimizationDirection, Problem};
use serde_json::json;
use std::time::{Duration, Instant};

/// Instances above the exact limit compared with the MILP optimum.
pub const LARGE_INSTANCES: u64 = 200;
/// A MILP solve that has not proved its optimum in this long is left out, and counted.
const MILP_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Builds a market of `nodes` nodes, places `tasks` tasks one at a time with churn between
/// placements, and returns the figures as JSON (see `aicpw_matcher::synthetic::BenchReport`),
/// plus `cpu_share`: the share of the wall time this thread ran on a core (below 1 when other
/// processes competed for the CPU, which lowers the figures), and `batch_cost_ratio_large`.
pub fn run(nodes: usize, tasks: usize, seed: u64) -> Result<serde_json::Value> {
    let origin = Instant::now();
    let cpu_before = thread_cpu_ns();
    let mut clock = move || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let report = aicpw_matcher::synthetic::run_benchmark(nodes, tasks, seed, &mut clock);
    let wall = origin.elapsed().as_nanos() as f64;
    let mut json = serde_json::to_value(&report)?;
    let object = json.as_object_mut().expect("a report is an object");
    if let (Some(before), Some(after)) = (cpu_before, thread_cpu_ns()) {
        let share = after.saturating_sub(before) as f64 / wall.max(1.0);
        object.insert("cpu_share".into(), json!(share));
    }
    object.insert("batch_cost_ratio_large".into(), large_ratio(LARGE_INSTANCES, seed)?);
    Ok(json)
}

/// `place_batch` (default parameters) against the MILP optimum on `instances` seeded instances
/// larger than the exact limit.
pub fn large_ratio(instances: u64, seed: u64) -> Result<serde_json::Value> {
    let params = MatchParams::default();
    let started = Instant::now();
    let (mut results, mut unproven, mut tasks_min, mut tasks_max) = (Vec::new(), 0, usize::MAX, 0);
    for k in 0..instances {
        let instance_seed = seed.wrapping_add(k);
        let (nodes, tasks) = large_batch_instance(instance_seed);
        tasks_min = tasks_min.min(tasks.len());
        tasks_max = tasks_max.max(tasks.len());
        match milp_optimum(&nodes, &tasks, &params)? {
            Some(optimum) => {
                let found = batch_placement(&nodes, &tasks, &params, instance_seed);
                results.push((instance_seed, found, optimum));
            }
            None => unproven += 1,
        }
    }
    let mut summary = serde_json::to_value(RatioSummary::of(results))?;
    let object = summary.as_object_mut().expect("a summary is an object");
    object.insert("unproven".into(), json!(unproven));
    object.insert("tasks_min".into(), json!(tasks_min));
    object.insert("tasks_max".into(), json!(tasks_max));
    object.insert("solver".into(), json!("microlp"));
    object.insert("solve_ms".into(), json!(started.elapsed().as_millis() as u64));
    Ok(summary)
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The optimum of a batch instance on empty nodes, by MILP: a binary x(t, n) for every task and
/// node whose hard requirements hold on the empty node; each task on at most one node; each
/// node's CPU cores, memory, disk and GPUs hold what its tasks take. The objective
/// Σ (cost − big)·x with `big` above every task's dearest cost summed makes one more task
/// placed outweigh any cost. Exact for tasks that take at least one core and some memory (the
/// matcher's rule that a saturated node takes nothing then adds no constraint). `None` when
/// the solver did not prove optimality within its time limit.
pub fn milp_optimum(
    nodes: &[NodeOffer],
    tasks: &[TaskRequest],
    params: &MatchParams,
) -> Result<Option<BatchOutcome>> {
    ensure!(
        tasks.iter().all(|t| t.resources.cpu_cores > 0 && t.resources.memory_mb > 0),
        "the MILP model needs every task to take a core and memory"
    );
    let pairs: Vec<(usize, usize, u128)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(t, task)| {
            nodes.iter().enumerate().filter_map(move |(n, node)| {
                let empty = Capacity::of(&node.hardware);
                unmet(node, &empty, task, params)
                    .is_empty()
                    .then(|| (t, n, batch_cost(node, params)))
            })
        })
        .collect();
    // Costs in units of their greatest common divisor, so the solver sees small integers.
    let unit = pairs.iter().fold(0, |g, (_, _, cost)| gcd(g, *cost)).max(1);
    let dearest = |t: usize| pairs.iter().filter(|p| p.0 == t).map(|p| p.2 / unit).max();
    let big: u128 = (0..tasks.len()).filter_map(dearest).sum::<u128>() + 1;
    ensure!(big < 1 << 40, "costs too spread for an exact objective in f64");
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    problem.set_time_limit(MILP_TIME_LIMIT);
    let vars: Vec<_> = pairs
        .iter()
        .map(|(_, _, cost)| problem.add_binary_var((cost / unit) as f64 - big as f64))
        .collect();
    for t in 0..tasks.len() {
        let row: Vec<_> =
            pairs.iter().zip(&vars).filter(|(p, _)| p.0 == t).map(|(_, v)| (*v, 1.0)).collect();
        problem.add_constraint(&row, ComparisonOp::Le, 1.0);
    }
    for (n, node) in nodes.iter().enumerate() {
        let capacity = dimensions(&Capacity::of(&node.hardware));
        for (d, limit) in capacity.into_iter().enumerate() {
            let row: Vec<_> = pairs
                .iter()
                .zip(&vars)
                .filter(|(p, _)| p.1 == n)
                .map(|(p, v)| (*v, dimensions(&Capacity::used_by(&tasks[p.0].resources))[d]))
                .filter(|(_, coefficient)| *coefficient > 0.0)
                .collect();
            if !row.is_empty() {
                problem.add_constraint(&row, ComparisonOp::Le, limit);
            }
        }
    }
    let outcome = problem.solve()?;
    if !outcome.is_optimal() {
        return Ok(None);
    }
    let Ok(solution) = outcome.into_solution() else { return Ok(None) };
    // The assignment read back exactly, and checked against the instance with integers.
    let chosen: Vec<(usize, usize, u128)> = pairs
        .iter()
        .zip(&vars)
        .filter(|(_, v)| solution.var_value(**v).round() == 1.0)
        .map(|(p, _)| *p)
        .collect();
    let mut free: Vec<Capacity> = nodes.iter().map(|n| Capacity::of(&n.hardware)).collect();
    let mut placed = vec![false; tasks.len()];
    for (t, n, _) in &chosen {
        ensure!(!placed[*t] && free[*n].fits(&tasks[*t].resources), "the MILP answer does not fit");
        placed[*t] = true;
        free[*n] = free[*n].saturating_sub(Capacity::used_by(&tasks[*t].resources));
    }
    Ok(Some(BatchOutcome {
        placed: chosen.len(),
        cost: chosen.iter().map(|(_, _, cost)| cost).sum(),
    }))
}

/// CPU cores, memory, disk and GPUs, as the MILP model's coefficients.
fn dimensions(capacity: &Capacity) -> [f64; 4] {
    [
        f64::from(capacity.cpu_cores),
        capacity.memory_mb as f64,
        capacity.disk_mb as f64,
        f64::from(capacity.gpus),
    ]
}

/// Nanoseconds this thread has run on a CPU (Linux; `None` elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicpw_matcher::synthetic::{exact_batch, small_batch_instance};

    #[test]
    fn the_milp_optimum_agrees_with_exhaustive_search_on_small_instances() {
        let params = MatchParams::default();
        for seed in 0..200 {
            let (nodes, tasks) = small_batch_instance(seed);
            let milp = milp_optimum(&nodes, &tasks, &params).expect("solves").expect("proved");
            assert_eq!(milp, exact_batch(&nodes, &tasks, &params), "seed {seed}");
        }
    }

    #[test]
    fn the_batch_heuristic_never_beats_the_milp_optimum_on_large_instances() {
        let params = MatchParams::default();
        for seed in 0..20 {
            let (nodes, tasks) = large_batch_instance(seed);
            assert!(tasks.len() > params.batch_exact_tasks_max as usize);
            let optimum = milp_optimum(&nodes, &tasks, &params).expect("solves").expect("proved");
            let found = batch_placement(&nodes, &tasks, &params, seed);
            assert!(
                found.placed < optimum.placed
                    || (found.placed == optimum.placed && found.cost >= optimum.cost),
                "seed {seed}: heuristic {found:?} beats the optimum {optimum:?}"
            );
        }
    }
}
