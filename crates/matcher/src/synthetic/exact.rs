//! An exact solver for small batch instances, and the batch optimizer's cost ratio against it.

use super::Rng;
use crate::eligibility::{unmet, Capacity};
pub use crate::joint::batch_cost;
use crate::{MatchParams, Matcher, NodeOffer, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, ComputeUnits, Hardware, NodeId, Resources, TaskId};
use serde::Serialize;

/// Most tasks and nodes the exact solver accepts: it tries every assignment.
pub const EXACT_TASKS_MAX: usize = 8;
pub const EXACT_NODES_MAX: usize = 8;

/// What an assignment achieves: tasks placed and their total batch cost (the best assignment
/// places most tasks, then costs least).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    pub placed: usize,
    pub cost: u128,
}

/// Solves a batch exactly by trying every assignment (with pruning), on empty nodes, under the
/// same requirements and costs as the matcher.
pub fn exact_batch(
    nodes: &[NodeOffer],
    tasks: &[TaskRequest],
    params: &MatchParams,
) -> BatchOutcome {
    assert!(tasks.len() <= EXACT_TASKS_MAX && nodes.len() <= EXACT_NODES_MAX, "instance too large");
    let mut free: Vec<Capacity> = nodes.iter().map(|n| Capacity::of(&n.hardware)).collect();
    let mut best = BatchOutcome { placed: 0, cost: 0 };
    let search = Search { nodes, tasks, params };
    search.descend(0, &mut free, 0, 0, &mut best);
    best
}

struct Search<'a> {
    nodes: &'a [NodeOffer],
    tasks: &'a [TaskRequest],
    params: &'a MatchParams,
}

impl Search<'_> {
    fn descend(
        &self,
        task: usize,
        free: &mut [Capacity],
        placed: usize,
        cost: u128,
        best: &mut BatchOutcome,
    ) {
        if task == self.tasks.len() {
            if placed > best.placed || (placed == best.placed && cost < best.cost) {
                *best = BatchOutcome { placed, cost };
            }
            return;
        }
        let reachable = placed + (self.tasks.len() - task);
        if reachable < best.placed
            || (reachable == best.placed && best.placed > 0 && cost >= best.cost)
        {
            return;
        }
        let request = &self.tasks[task];
        for (index, node) in self.nodes.iter().enumerate() {
            if !unmet(node, &free[index], request, self.params).is_empty() {
                continue;
            }
            let before = free[index];
            free[index] = before.saturating_sub(Capacity::used_by(&request.resources));
            let cost = cost + batch_cost(node, self.params);
            self.descend(task + 1, free, placed + 1, cost, best);
            free[index] = before;
        }
        self.descend(task + 1, free, placed, cost, best);
    }
}

/// A small seeded instance: 3 to 5 nodes that hold one to three tasks each, 3 to 6 `Batch`
/// tasks competing for the cheap ones.
pub fn small_batch_instance(seed: u64) -> (Vec<NodeOffer>, Vec<TaskRequest>) {
    batch_instance(seed, (3, 5), (3, 6))
}

/// Instances larger than the exact limits (this file's solver and `place_batch`'s polishing of
/// groups of at most 8 tasks): 6 to 10 such nodes, 9 to 14 tasks, so the batch optimizer
/// answers mostly with its heuristic. (Larger ones often keep the independent MILP solver of
/// `aicpw bench match` from proving its optimum within seconds.)
pub fn large_batch_instance(seed: u64) -> (Vec<NodeOffer>, Vec<TaskRequest>) {
    batch_instance(seed, (6, 10), (9, 14))
}

/// H100 nodes that hold one to three tasks each, and `Batch` tasks competing for the cheap
/// ones; node and task counts drawn from the inclusive ranges.
fn batch_instance(
    seed: u64,
    node_range: (u64, u64),
    task_range: (u64, u64),
) -> (Vec<NodeOffer>, Vec<TaskRequest>) {
    let mut rng = Rng::new(seed);
    let node_count = rng.between(node_range.0, node_range.1);
    let nodes = (0..node_count)
        .map(|id| {
            let gpus = rng.between(1, 4) as u32;
            NodeOffer {
                id: NodeId(id),
                hardware: Hardware {
                    cpu_cores: 8 * rng.between(1, 3) as u32,
                    memory_mb: 32_768 * rng.between(1, 3),
                    disk_mb: 1_000_000,
                    gpu_model: "H100".into(),
                    gpu_count: gpus,
                    gpu_vram_mb: 81_559,
                    ..Hardware::default()
                },
                price_per_hour: Amount(u128::from(rng.between(10, 100)) * 10_000),
                reputation_permille: 600 + rng.below(400) as u16,
                proven_units: ComputeUnits(2_000_000),
                stake: Amount::tokens(1_000_000),
                online: true,
                completed_tasks: 100,
                tee: false,
            }
        })
        .collect();
    let task_count = rng.between(task_range.0, task_range.1);
    let tasks = (0..task_count)
        .map(|id| TaskRequest {
            id: TaskId(id),
            resources: Resources {
                cpu_cores: 4 * rng.between(1, 3) as u32,
                memory_mb: 16_384 * rng.between(1, 3),
                disk_mb: 10_000,
                gpu_count: rng.between(0, 2) as u32,
                ..Resources::default()
            },
            max_price_per_hour: Amount(u128::from(rng.between(40, 110)) * 10_000),
            reputation_min: if rng.chance(200) { 800 } else { 0 },
            strategy: MatchStrategy::Batch,
            value: Amount::tokens(10),
            ..TaskRequest::default()
        })
        .collect();
    (nodes, tasks)
}

/// Ratios of the batch optimizer's total cost to the exact optimum over seeded instances.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RatioSummary {
    pub instances: usize,
    pub mean: f64,
    pub worst: f64,
    /// Instances where the optimizer placed fewer tasks than the optimum (ratio not counted).
    pub fewer_placed: usize,
    /// The seed of the worst instance.
    pub worst_seed: u64,
}

/// What `place_batch` achieves on an instance's empty nodes.
pub fn batch_placement(
    nodes: &[NodeOffer],
    tasks: &[TaskRequest],
    params: &MatchParams,
    seed: u64,
) -> BatchOutcome {
    let mut matcher = Matcher::new(params.clone());
    nodes.iter().for_each(|node| matcher.upsert_node(node.clone()));
    let mut outcome = BatchOutcome { placed: 0, cost: 0 };
    for (_, placed) in matcher.place_batch(tasks, Rng::new(seed).bytes32()) {
        if let Ok(id) = placed {
            let node = nodes.iter().find(|n| n.id == id).expect("placed on a node of the instance");
            outcome.placed += 1;
            outcome.cost += batch_cost(node, params);
        }
    }
    outcome
}

impl RatioSummary {
    /// Summarizes (instance seed, batch optimizer's outcome, optimum) triples.
    pub fn of(results: impl IntoIterator<Item = (u64, BatchOutcome, BatchOutcome)>) -> Self {
        let mut summary = RatioSummary { worst: 1.0, ..RatioSummary::default() };
        let mut total = 0.0;
        let mut counted = 0usize;
        for (seed, found, optimum) in results {
            summary.instances += 1;
            if found.placed < optimum.placed {
                summary.fewer_placed += 1;
                continue;
            }
            let ratio =
                if optimum.cost == 0 { 1.0 } else { found.cost as f64 / optimum.cost as f64 };
            total += ratio;
            counted += 1;
            if ratio > summary.worst {
                summary.worst = ratio;
                summary.worst_seed = seed;
            }
        }
        summary.mean = if counted == 0 { 1.0 } else { total / counted as f64 };
        summary
    }
}

/// Runs `place_batch` and the exact solver on `instances` seeded small instances.
pub fn batch_ratio(instances: usize, seed: u64, params: &MatchParams) -> RatioSummary {
    RatioSummary::of((0..instances as u64).map(|k| {
        let instance_seed = seed.wrapping_add(k);
        let (nodes, tasks) = small_batch_instance(instance_seed);
        let exact = exact_batch(&nodes, &tasks, params);
        (instance_seed, batch_placement(&nodes, &tasks, params, instance_seed), exact)
    }))
}
