//! The batch strategy against an exact solver.

use crate::common::*;
use aicpw_matcher::synthetic::{
    batch_placement, batch_ratio, exact_batch, large_batch_instance, small_batch_instance,
    BatchOutcome, Rng,
};
use aicpw_matcher::{MatchParams, NodeOffer};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, NodeId};

#[test]
fn batch_cost_is_within_two_percent_of_the_exact_optimum() {
    let params = MatchParams { new_provider_share_bps: 0, ..MatchParams::default() };
    let summary = batch_ratio(1_000, 1, &params);
    println!("batch / exact optimum over {} instances: mean {:.5}, worst {:.5} (seed {}), fewer placed {}",
        summary.instances, summary.mean, summary.worst, summary.worst_seed, summary.fewer_placed);
    assert_eq!(summary.fewer_placed, 0, "the batch places as many tasks as the optimum");
    assert!(summary.worst <= 1.02, "worst ratio {}", summary.worst);
}

#[test]
fn the_batch_heuristic_alone_stays_close_to_the_optimum() {
    // Without the exact searches: the chains and local moves alone.
    let params = MatchParams {
        new_provider_share_bps: 0,
        batch_exact_tasks_max: 0,
        batch_neighbourhood_tasks_max: 0,
        ..MatchParams::default()
    };
    let summary = batch_ratio(1_000, 1, &params);
    println!("heuristic alone / exact optimum over {} instances: mean {:.5}, worst {:.5} (seed {}), fewer placed {}",
        summary.instances, summary.mean, summary.worst, summary.worst_seed, summary.fewer_placed);
    assert_eq!(summary.fewer_placed, 0);
    assert!(summary.mean <= 1.005 && summary.worst <= 1.15, "{summary:?}");
}

#[test]
fn neighbourhood_search_improves_large_batches_and_never_worsens_them() {
    // Instances above the exact limit: every group is larger than `batch_exact_tasks_max`.
    let with = MatchParams { new_provider_share_bps: 0, ..MatchParams::default() };
    let without = MatchParams { batch_neighbourhood_tasks_max: 0, ..with.clone() };
    let mut improved = 0;
    for seed in 0..100 {
        let (nodes, tasks) = large_batch_instance(seed);
        let better = batch_placement(&nodes, &tasks, &with, seed);
        let plain = batch_placement(&nodes, &tasks, &without, seed);
        let key = |o: &BatchOutcome| (std::cmp::Reverse(o.placed), o.cost);
        assert!(key(&better) <= key(&plain), "seed {seed}: {better:?} worse than {plain:?}");
        improved += usize::from(key(&better) < key(&plain));
    }
    assert!(improved >= 5, "improved only {improved} of 100 instances");
}

#[test]
fn batch_on_one_task_nodes_is_the_exact_assignment() {
    // Every node holds one task: the optimizer is then exactly the Hungarian method.
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let nodes: Vec<NodeOffer> = (0..rng.between(2, 6))
            .map(|id| gpu_node(id, "H100", 1, u128::from(rng.between(1, 50)) * 10))
            .collect();
        let tasks: Vec<_> = (0..rng.between(2, 6))
            .map(|id| {
                let mut task = with_strategy(
                    gpu_task(id, "H100", 1, u128::from(rng.between(10, 500))),
                    MatchStrategy::Batch,
                );
                task.excluded_nodes =
                    (0..nodes.len() as u64).filter(|_| rng.chance(200)).map(NodeId).collect();
                task
            })
            .collect();
        let params = MatchParams {
            batch_exact_tasks_max: 0,
            batch_neighbourhood_tasks_max: 0,
            ..plain_params()
        };
        let exact = exact_batch(&nodes, &tasks, &params);
        let mut m = matcher_with(params, &nodes);
        let placed: Vec<NodeId> =
            m.place_batch(&tasks, rng.bytes32()).into_iter().filter_map(|(_, r)| r.ok()).collect();
        let cost: u128 = placed.iter().map(|id| nodes[id.0 as usize].price_per_hour.0).sum();
        assert_eq!((placed.len(), cost), (exact.placed, exact.cost), "seed {seed}");
    }
}

#[test]
fn a_tiny_work_bound_still_gives_valid_placements() {
    let params =
        MatchParams { batch_work_max: 1, new_provider_share_bps: 0, ..MatchParams::default() };
    for seed in 0..50 {
        let (nodes, tasks) = small_batch_instance(seed);
        let mut m = matcher_with(params.clone(), &nodes);
        for (_, outcome) in m.place_batch(&tasks, [0; 32]) {
            let _ = outcome;
        }
        m.check_index().expect("consistent");
        for node in &nodes {
            let (free, _) = m.occupancy(node.id).expect("registered");
            assert!(free.cpu_cores <= node.hardware.cpu_cores);
        }
    }
    let _ = Amount::ZERO;
}
