//! Placements by each strategy, capacity, occupancy and the node life cycle.

use crate::common::*;
use aicpw_matcher::Constraint;
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, NodeId, TaskId};

#[test]
fn lowest_price_picks_the_cheapest_eligible_node() {
    let mut m = matcher(&[
        gpu_node(1, "H100", 1, 300),
        gpu_node(2, "H100", 1, 200),
        gpu_node(3, "H100", 1, 250),
    ]);
    assert_eq!(m.place_one(&gpu_task(1, "H100", 1, 1_000), RANDOMNESS), Ok(NodeId(2)));
    assert_eq!(m.place_one(&gpu_task(2, "H100", 1, 1_000), RANDOMNESS), Ok(NodeId(3)));
}

#[test]
fn lowest_price_passes_over_cheaper_nodes_that_fail_a_requirement() {
    let mut cheap = gpu_node(1, "H100", 1, 100);
    cheap.reputation_permille = 400;
    let mut m = matcher(&[cheap, gpu_node(2, "H100", 1, 200)]);
    let mut task = gpu_task(1, "H100", 1, 1_000);
    task.reputation_min = 500;
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(2)));
}

#[test]
fn reputation_first_prefers_a_higher_band_then_the_lower_price() {
    let mut best = gpu_node(1, "H100", 1, 500);
    best.reputation_permille = 990;
    let mut same_band_cheaper = gpu_node(2, "H100", 1, 400);
    same_band_cheaper.reputation_permille = 960;
    let mut lower_band = gpu_node(3, "H100", 1, 100);
    lower_band.reputation_permille = 900;
    let mut m = matcher(&[best, same_band_cheaper, lower_band]);
    let task = with_strategy(gpu_task(1, "H100", 1, 1_000), MatchStrategy::ReputationFirst);
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(2)), "950-999 band, cheapest in it");
    let capped = TaskRequest { max_price_per_hour: Amount(450), ..task.clone() };
    assert_eq!(m.select(&capped, RANDOMNESS), Some(NodeId(3)), "the band's nodes are too dear");
}

use aicpw_matcher::TaskRequest;

#[test]
fn best_fit_fills_the_tightest_node_and_keeps_large_nodes_whole() {
    let mut m = matcher(&[gpu_node(1, "H100", 8, 100), gpu_node(2, "H100", 2, 900)]);
    let task = |id| with_strategy(gpu_task(id, "H100", 1, 1_000), MatchStrategy::BestFit);
    assert_eq!(m.place_one(&task(1), RANDOMNESS), Ok(NodeId(2)));
    assert_eq!(m.place_one(&task(2), RANDOMNESS), Ok(NodeId(2)));
    assert_eq!(m.place_one(&task(3), RANDOMNESS), Ok(NodeId(1)), "node 2 is full");
    let big = with_strategy(gpu_task(4, "H100", 7, 1_000), MatchStrategy::BestFit);
    assert_eq!(m.place_one(&big, RANDOMNESS), Ok(NodeId(1)), "7 of node 1's GPUs are still free");
}

#[test]
fn a_node_runs_several_tasks_until_its_capacity_is_used() {
    let mut m = matcher(&[gpu_node(1, "H100", 4, 100)]);
    for id in 0..4 {
        assert_eq!(m.place_one(&gpu_task(id, "H100", 1, 100), RANDOMNESS), Ok(NodeId(1)));
    }
    let refused = m.place_one(&gpu_task(4, "H100", 1, 100), RANDOMNESS).expect_err("full");
    assert_eq!(refused.first_unmet, Some(Constraint::Capacity));
    let (free, running) = m.occupancy(NodeId(1)).expect("registered");
    assert_eq!((free.gpus, running), (0, 4));
}

#[test]
fn released_capacity_takes_work_again() {
    let mut m = matcher(&[gpu_node(1, "H100", 1, 100)]);
    let task = gpu_task(1, "H100", 1, 100);
    assert!(m.place_one(&task, RANDOMNESS).is_ok());
    assert!(m.place_one(&task, RANDOMNESS).is_err());
    m.release(NodeId(1), &task.resources);
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(1)));
    m.check_index().expect("consistent");
}

#[test]
fn occupy_rebuilds_the_occupancy_of_a_restarted_ledger() {
    let mut m = matcher(&[gpu_node(1, "H100", 2, 100)]);
    let task = gpu_task(1, "H100", 2, 100);
    m.occupy(NodeId(1), &task.resources);
    assert!(m.place_one(&task, RANDOMNESS).is_err());
    m.occupy(NodeId(99), &task.resources); // unknown nodes are ignored
    m.release(NodeId(99), &task.resources);
    m.check_index().expect("consistent");
}

#[test]
fn an_updated_offer_keeps_the_node_busy() {
    let mut m = matcher(&[gpu_node(1, "H100", 1, 100)]);
    let task = gpu_task(1, "H100", 1, 100);
    assert!(m.place_one(&task, RANDOMNESS).is_ok());
    m.upsert_node(gpu_node(1, "H100", 1, 50));
    assert!(m.place_one(&task, RANDOMNESS).is_err(), "its only GPU is still busy");
    assert_eq!(m.node(NodeId(1)).map(|n| n.price_per_hour), Some(Amount(50)));
}

#[test]
fn offline_and_removed_nodes_get_no_work() {
    let mut offline = gpu_node(1, "H100", 1, 50);
    offline.online = false;
    let mut m = matcher(&[offline, gpu_node(2, "H100", 1, 60), gpu_node(3, "H100", 1, 70)]);
    m.remove_node(NodeId(2));
    assert_eq!(m.node_count(), 2);
    assert_eq!(m.place_one(&gpu_task(1, "H100", 1, 100), RANDOMNESS), Ok(NodeId(3)));
    m.upsert_node(gpu_node(1, "H100", 1, 50));
    assert_eq!(m.place_one(&gpu_task(2, "H100", 1, 100), RANDOMNESS), Ok(NodeId(1)), "back online");
    m.check_index().expect("consistent");
}

#[test]
fn allowed_and_excluded_nodes_limit_the_choice() {
    let nodes =
        [gpu_node(1, "H100", 1, 10), gpu_node(2, "H100", 1, 20), gpu_node(3, "H100", 1, 30)];
    let mut m = matcher(&nodes);
    let mut task = gpu_task(1, "H100", 1, 100);
    task.allowed_nodes = Some(vec![NodeId(3), NodeId(2), NodeId(3), NodeId(42)]);
    task.excluded_nodes = vec![NodeId(2)];
    assert_eq!(m.select(&task, RANDOMNESS), Some(NodeId(3)));
    task.allowed_nodes = Some(Vec::new());
    let refused = m.place_one(&task, RANDOMNESS).expect_err("no node allowed");
    assert_eq!(refused.first_unmet, Some(Constraint::NotAllowed));
}

#[test]
fn tee_tasks_go_to_tee_nodes_only() {
    let mut tee = gpu_node(2, "H100", 1, 500);
    tee.tee = true;
    let mut m = matcher(&[gpu_node(1, "H100", 1, 100), tee]);
    let mut task = gpu_task(1, "", 1, 1_000);
    task.tee_required = true;
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(2)));
}

/// A task that asks for network access is never placed on a node whose operator did not allow
/// it, however much cheaper that node is; with no such node it waits, and says why.
#[test]
fn network_tasks_go_only_to_nodes_that_allow_network() {
    let mut open = cpu_node(3, 8, 900);
    open.hardware.allows_network = true;
    let mut m = matcher(&[cpu_node(1, 8, 100), cpu_node(2, 8, 200), open]);
    let mut task = cpu_task(1, 2, 1_000);
    task.network = true;
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(3)));
    // The same task without network goes to the cheapest node.
    assert_eq!(m.place_one(&cpu_task(2, 2, 1_000), RANDOMNESS), Ok(NodeId(1)));
    // Once the only allowing node is gone, network tasks wait for one.
    m.remove_node(NodeId(3));
    task.id = TaskId(3);
    let refused = m.place_one(&task, RANDOMNESS).expect_err("no node allows network");
    assert_eq!(refused.first_unmet, Some(Constraint::Network));
    assert!(refused.message.contains("--allow-network"), "{}", refused.message);
}

#[test]
fn a_named_gpu_model_matches_whatever_the_case() {
    let mut m = matcher(&[gpu_node(1, "RTX 4090", 1, 100), gpu_node(2, "H100", 1, 900)]);
    assert_eq!(m.place_one(&gpu_task(1, "h100", 1, 1_000), RANDOMNESS), Ok(NodeId(2)));
    assert_eq!(m.place_one(&gpu_task(2, "rtx 4090", 1, 1_000), RANDOMNESS), Ok(NodeId(1)));
    let unknown = m.place_one(&gpu_task(3, "B200", 1, 1_000), RANDOMNESS).expect_err("no B200");
    assert_eq!(unknown.first_unmet, Some(Constraint::GpuModel));
}

#[test]
fn cpu_tasks_may_use_gpu_nodes_but_prefer_the_cheaper_cpu_ones() {
    let mut m = matcher(&[gpu_node(1, "H100", 1, 500), cpu_node(2, 8, 100), cpu_node(3, 4, 50)]);
    assert_eq!(
        m.place_one(&cpu_task(1, 8, 1_000), RANDOMNESS),
        Ok(NodeId(2)),
        "node 3 is too small"
    );
    assert_eq!(m.place_one(&cpu_task(2, 8, 1_000), RANDOMNESS), Ok(NodeId(1)));
}

#[test]
fn nodes_whose_stake_does_not_cover_the_value_are_passed_over() {
    let mut poor = gpu_node(1, "H100", 1, 10);
    poor.stake = Amount::tokens(1);
    let mut m = matcher(&[poor, gpu_node(2, "H100", 1, 20)]);
    let mut task = gpu_task(1, "H100", 1, 100);
    task.value = Amount::tokens(5);
    assert_eq!(m.place_one(&task, RANDOMNESS), Ok(NodeId(2)));
}

#[test]
fn place_batch_answers_in_input_order_for_every_strategy() {
    let nodes: Vec<_> =
        (1..=6).map(|id| gpu_node(id, "H100", 1, 100 * u128::from(id as u32))).collect();
    let mut m = matcher(&nodes);
    let tasks = vec![
        with_strategy(gpu_task(10, "H100", 1, 1_000), MatchStrategy::Batch),
        gpu_task(11, "H100", 1, 1_000),
        with_strategy(gpu_task(12, "H100", 1, 1_000), MatchStrategy::ReputationFirst),
        with_strategy(gpu_task(13, "H100", 1, 1_000), MatchStrategy::Batch),
        gpu_task(14, "A100", 1, 1_000),
    ];
    let outcomes = m.place_batch(&tasks, RANDOMNESS);
    let ids: Vec<TaskId> = outcomes.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, tasks.iter().map(|t| t.id).collect::<Vec<_>>());
    assert_eq!(outcomes[1].1, Ok(NodeId(1)), "single strategies go first, in order");
    assert_eq!(outcomes[2].1, Ok(NodeId(2)));
    let mut batch: Vec<NodeId> =
        [&outcomes[0].1, &outcomes[3].1].iter().map(|o| *o.as_ref().expect("placed")).collect();
    batch.sort();
    assert_eq!(batch, vec![NodeId(3), NodeId(4)], "the two cheapest nodes left");
    assert!(outcomes[4].1.is_err());
    m.check_index().expect("consistent");
}

#[test]
fn a_search_rules_out_a_bucket_that_cannot_hold_the_task_with_one_check() {
    // Five thousand CPU-only nodes, cheaper than the one GPU node, which has too few GPUs.
    let mut nodes: Vec<_> = (1..=5_000).map(|id| cpu_node(id, 16, 10)).collect();
    nodes.push(gpu_node(9_999, "H100", 1, 1_000));
    let mut m = matcher(&nodes);
    for strategy in [MatchStrategy::LowestPrice, MatchStrategy::ReputationFirst] {
        let task = with_strategy(gpu_task(1, "", 8, 100_000), strategy);
        let why = m.place_one(&task, RANDOMNESS).expect_err("no node has eight GPUs");
        assert_eq!(why.nodes_checked, 2, "{strategy:?}: one check for each bucket");
        assert_eq!((why.failing.hardware, why.failing.capacity), (5_000, 1), "{strategy:?}");
    }
}
