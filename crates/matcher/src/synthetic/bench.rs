//! The matcher benchmark: single placements on a large synthetic market with churn, a block of
//! batch tasks, and the batch optimizer's cost against the exact optimum.

use super::exact::{batch_ratio, RatioSummary};
use super::{nodes, tasks, Rng};
use crate::{MatchParams, Matcher, NodeOffer, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::NodeId;
use serde::Serialize;
use std::collections::BTreeMap;

/// Batch tasks in the timed block, and small instances compared with the exact optimum.
pub const BENCH_BATCH_TASKS: usize = 256;
pub const BENCH_RATIO_INSTANCES: usize = 200;

/// What `aicpw bench match` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub nodes: usize,
    pub tasks: usize,
    pub seed: u64,
    pub placed: usize,
    pub unplaced: usize,
    /// Placed tasks per second over the whole loop: placements, unplaced tasks' searches, churn
    /// and clock reads. Tasks left unplaced count as work, not as placements.
    pub placed_per_sec: f64,
    /// Tasks per second of time spent inside `place_one`, unplaced ones included (the churn
    /// applied between placements is not timed).
    pub placements_per_sec: f64,
    /// Placements per second over the whole loop: placements, churn and clock reads.
    pub placements_per_sec_with_churn: f64,
    pub p50_placement_us: f64,
    pub p99_placement_us: f64,
    pub max_placement_us: f64,
    /// Churn applied between placements: tasks ended, nodes going offline or online.
    pub churn_tasks_ended: u64,
    pub churn_nodes_flipped: u64,
    /// Why unplaced tasks wait (their first unmet requirement, as the quick explanation says).
    pub unplaced_by_reason: BTreeMap<String, u64>,
    pub build_ms: f64,
    /// One `place_batch` call with this many `Batch` tasks on the same market.
    pub batch_block_tasks: usize,
    pub batch_block_placed: usize,
    pub batch_block_us: f64,
    /// Batch cost over the exact optimum on small seeded instances.
    pub batch_cost_ratio: RatioSummary,
    /// The same without the exact searches (whole small groups, neighbourhoods of large ones).
    pub batch_cost_ratio_heuristic_only: RatioSummary,
}

/// Builds the market, then times `tasks` single placements with churn between them on one
/// thread. `clock` returns nanoseconds from any fixed origin.
pub fn run_benchmark(
    node_count: usize,
    task_count: usize,
    seed: u64,
    clock: &mut dyn FnMut() -> u64,
) -> BenchReport {
    let params = MatchParams::default();
    let build_start = clock();
    let mut offers = nodes(node_count, seed);
    let mut matcher = Matcher::new(params.clone());
    offers.iter().for_each(|offer| matcher.upsert_node(offer.clone()));
    matcher.refresh_hints();
    let build_ns = clock() - build_start;
    let work = tasks(task_count, node_count, seed ^ 0x7a5c);
    let mut rng = Rng::new(seed ^ 0xc4u64);
    let mut churn = Churn::default();
    let mut durations = Vec::with_capacity(task_count);
    let mut unplaced_by_reason = BTreeMap::new();
    let mut placed = 0;
    let loop_start = clock();
    for (index, task) in work.iter().enumerate() {
        churn.step(&mut rng, &mut matcher, &mut offers, &work);
        let randomness = rng.bytes32();
        let start = clock();
        let outcome = matcher.place_one(task, randomness);
        durations.push(clock() - start);
        match outcome {
            Ok(node) => {
                placed += 1;
                churn.running.push((node, index));
            }
            Err(why) => {
                let reason = why.first_unmet.map_or("none".to_string(), |c| format!("{c:?}"));
                *unplaced_by_reason.entry(reason).or_insert(0) += 1;
            }
        }
    }
    let loop_ns = clock() - loop_start;
    let placing_ns: u64 = durations.iter().sum();
    durations.sort_unstable();
    let (batch_block_placed, batch_block_ns) = batch_block(&mut matcher, node_count, seed, clock);
    BenchReport {
        nodes: node_count,
        tasks: task_count,
        seed,
        placed,
        unplaced: task_count - placed,
        placed_per_sec: per_second(placed, loop_ns),
        placements_per_sec: per_second(task_count, placing_ns),
        placements_per_sec_with_churn: per_second(task_count, loop_ns),
        p50_placement_us: micros(percentile(&durations, 50)),
        p99_placement_us: micros(percentile(&durations, 99)),
        max_placement_us: micros(durations.last().copied().unwrap_or(0)),
        churn_tasks_ended: churn.tasks_ended,
        churn_nodes_flipped: churn.nodes_flipped,
        unplaced_by_reason,
        build_ms: micros(build_ns) / 1_000.0,
        batch_block_tasks: BENCH_BATCH_TASKS,
        batch_block_placed,
        batch_block_us: micros(batch_block_ns),
        batch_cost_ratio: batch_ratio(BENCH_RATIO_INSTANCES, seed, &params),
        batch_cost_ratio_heuristic_only: batch_ratio(
            BENCH_RATIO_INSTANCES,
            seed,
            &MatchParams {
                batch_exact_tasks_max: 0,
                batch_neighbourhood_tasks_max: 0,
                ..params.clone()
            },
        ),
    }
}

/// Times one block of `Batch` tasks.
fn batch_block(
    matcher: &mut Matcher,
    node_count: usize,
    seed: u64,
    clock: &mut dyn FnMut() -> u64,
) -> (usize, u64) {
    let mut block = tasks(BENCH_BATCH_TASKS, node_count, seed ^ 0xb10c);
    for (k, task) in block.iter_mut().enumerate() {
        task.id.0 += 1 << 40 | k as u64;
        task.strategy = MatchStrategy::Batch;
    }
    let start = clock();
    let outcomes = matcher.place_batch(&block, Rng::new(seed).bytes32());
    let elapsed = clock() - start;
    (outcomes.iter().filter(|(_, outcome)| outcome.is_ok()).count(), elapsed)
}

/// Churn between placements: running tasks end (the ledger then counts a completed task), and
/// nodes go offline or come back.
#[derive(Default)]
struct Churn {
    /// Running tasks: the node and the task's index in the workload.
    running: Vec<(NodeId, usize)>,
    tasks_ended: u64,
    nodes_flipped: u64,
}

impl Churn {
    fn step(
        &mut self,
        rng: &mut Rng,
        matcher: &mut Matcher,
        offers: &mut [NodeOffer],
        work: &[TaskRequest],
    ) {
        if !self.running.is_empty() && rng.chance(600) {
            let index = rng.below(self.running.len() as u64) as usize;
            let (node, task) = self.running.swap_remove(index);
            matcher.release(node, &work[task].resources);
            let offer = &mut offers[node.0 as usize];
            offer.completed_tasks += 1;
            matcher.upsert_node(offer.clone());
            self.tasks_ended += 1;
        }
        if !offers.is_empty() && rng.chance(20) {
            let offer = &mut offers[rng.below(offers.len() as u64) as usize];
            offer.online = !offer.online;
            matcher.upsert_node(offer.clone());
            self.nodes_flipped += 1;
        }
    }
}

fn percentile(sorted: &[u64], percent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1_000.0
}

fn per_second(count: usize, nanos: u64) -> f64 {
    if nanos == 0 {
        return 0.0;
    }
    count as f64 * 1e9 / nanos as f64
}
