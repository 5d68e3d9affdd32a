//! Equal offers share work in proportion; new providers get a bounded share.

use crate::common::*;
use aicpw_matcher::synthetic::Rng;
use aicpw_matcher::{MatchParams, Matcher, NodeOffer};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{NodeId, TaskId};
use std::collections::{BTreeMap, VecDeque};

/// Places `count` tasks one after another with fresh randomness; a task ends after `running`
/// later placements, and the ledger then counts it as completed (as it does).
fn share_out(
    matcher: &mut Matcher,
    offers: &mut BTreeMap<NodeId, NodeOffer>,
    count: u64,
    running: usize,
    strategy: MatchStrategy,
) -> BTreeMap<NodeId, u64> {
    let mut rng = Rng::new(11);
    let mut placed: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut live = VecDeque::new();
    for id in 0..count {
        let task = with_strategy(gpu_task(id, "H100", 1, 1_000), strategy);
        let node = matcher.place_one(&task, rng.bytes32()).expect("room for every task");
        *placed.entry(node).or_default() += 1;
        live.push_back((node, task.resources));
        if live.len() > running {
            let (node, resources) = live.pop_front().expect("not empty");
            matcher.release(node, &resources);
            let offer = offers.get_mut(&node).expect("known");
            offer.completed_tasks += 1;
            matcher.upsert_node(offer.clone());
        }
    }
    placed
}

#[test]
fn ten_equal_offers_share_ten_thousand_placements_evenly() {
    for (running, strategy) in [
        (0, MatchStrategy::LowestPrice),
        (5, MatchStrategy::LowestPrice),
        (3, MatchStrategy::ReputationFirst),
        (0, MatchStrategy::Batch),
    ] {
        let mut offers: BTreeMap<NodeId, NodeOffer> =
            (0..10).map(|id| (NodeId(id), gpu_node(id, "H100", 8, 100))).collect();
        let mut m = matcher(&offers.values().cloned().collect::<Vec<_>>());
        let placed = share_out(&mut m, &mut offers, 10_000, running, strategy);
        let spread = placed.values().max().copied().unwrap_or(0)
            - placed.values().min().copied().unwrap_or(0);
        println!(
            "{strategy:?} with {running} running: per node {:?}, spread {spread}",
            placed.values().collect::<Vec<_>>()
        );
        assert_eq!(placed.len(), 10);
        assert!(placed.values().all(|n| n.abs_diff(1_000) <= 10), "{placed:?}");
    }
}

#[test]
fn equal_offers_share_work_even_before_any_task_completes() {
    let offers: Vec<_> = (0..10).map(|id| gpu_node(id, "H100", 8, 100)).collect();
    let mut m = matcher(&offers);
    let mut placed: BTreeMap<NodeId, u64> = BTreeMap::new();
    for id in 0..80 {
        let node = m.place_one(&gpu_task(id, "H100", 1, 1_000), RANDOMNESS).expect("room");
        *placed.entry(node).or_default() += 1;
    }
    let spread =
        placed.values().max().copied().unwrap_or(0) - placed.values().min().copied().unwrap_or(0);
    println!(
        "80 placements on 10 equal nodes, none finished: {:?}",
        placed.values().collect::<Vec<_>>()
    );
    assert!(placed.len() == 10 && spread <= 3, "the less served of tied nodes first: {placed:?}");
}

/// 20 established nodes at price 100 and 5 new ones at `new_price`.
fn market(new_price: u128, params: MatchParams) -> (Matcher, Vec<NodeId>) {
    let mut nodes: Vec<NodeOffer> = (0..20).map(|id| gpu_node(id, "H100", 8, 100)).collect();
    let new: Vec<NodeId> = (20..25).map(NodeId).collect();
    for id in &new {
        nodes.push(NodeOffer { completed_tasks: 0, ..gpu_node(id.0, "H100", 8, new_price) });
    }
    (matcher_with(params, &nodes), new)
}

fn new_share(matcher: &mut Matcher, new: &[NodeId], strategy: MatchStrategy) -> f64 {
    let mut rng = Rng::new(5);
    let mut to_new = 0;
    let count = 20_000;
    for id in 0..count {
        let task = with_strategy(gpu_task(id, "H100", 1, 1_000), strategy);
        let node = matcher.place_one(&task, rng.bytes32()).expect("room");
        matcher.release(node, &task.resources);
        if new.contains(&node) {
            to_new += 1;
        }
    }
    f64::from(to_new) / count as f64
}

#[test]
fn new_providers_get_their_reserved_share_and_no_more() {
    let params = MatchParams::default();
    let share = f64::from(params.new_provider_share_bps) / 10_000.0;
    let (mut m, new) = market(110, params.clone());
    let got = new_share(&mut m, &new, MatchStrategy::LowestPrice);
    println!("new providers 10 % dearer: {got:.4} of placements (share {share})");
    assert!((got - share).abs() < 0.01, "{got}");

    let (mut m, new) = market(130, params.clone());
    assert_eq!(new_share(&mut m, &new, MatchStrategy::LowestPrice), 0.0, "beyond the 20 % premium");

    let (mut m, new) = market(110, params.clone());
    assert_eq!(
        new_share(&mut m, &new, MatchStrategy::ReputationFirst),
        0.0,
        "reputation-first is never reserved"
    );

    let (mut m, new) = market(100, MatchParams { new_provider_share_bps: 0, ..params });
    let merit = new_share(&mut m, &new, MatchStrategy::LowestPrice);
    assert!(merit > 0.15, "equal offers win on merit, not by reservation: {merit}");
}

#[test]
fn task_ids_spread_ties_within_one_block() {
    let offers: Vec<_> = (0..4).map(|id| gpu_node(id, "H100", 1, 100)).collect();
    let m = matcher(&offers);
    let chosen: std::collections::BTreeSet<NodeId> =
        (0..64).filter_map(|id| m.select(&gpu_task(id, "H100", 1, 1_000), RANDOMNESS)).collect();
    assert_eq!(chosen.len(), 4, "the same block randomness still spreads tasks: {chosen:?}");
    let _ = TaskId(0);
}
