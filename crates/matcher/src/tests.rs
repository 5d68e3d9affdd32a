//! Unit tests of the internals: the block lists and the batch optimizer.

use crate::batch::{solve, Problem};
use crate::blocks::{Blocks, Pos, Traits};
use crate::index::{mix64, Entry, Rank};
use aicpw_types::NodeId;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn entry(rank: u64, id: u64) -> Entry {
    Entry { rank: Rank(rank), scramble: mix64(id), id: NodeId(id), slot: id as u32 }
}

fn traits(cpu: u32) -> Traits {
    Traits { cpu_cores: cpu, memory_mb: 1, price: u64::from(cpu), ..Traits::default() }
}

#[derive(Clone, Debug)]
enum ListOp {
    Insert(u64, u64, u32),
    Remove(usize),
    Update(usize, u32),
}

fn list_op() -> impl Strategy<Value = ListOp> {
    prop_oneof![
        3 => (0u64..40, 0u64..400, 0u32..64).prop_map(|(r, id, cpu)| ListOp::Insert(r, id, cpu)),
        2 => (0usize..1_000).prop_map(ListOp::Remove),
        2 => (0usize..1_000, 0u32..64).prop_map(|(i, cpu)| ListOp::Update(i, cpu)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The block list holds what a sorted map holds, with exact summaries, and its layout
    /// depends only on its contents.
    #[test]
    fn block_lists_match_a_sorted_map_and_are_laid_out_canonically(ops in proptest::collection::vec(list_op(), 1..400)) {
        let mut list = Blocks::default();
        let mut model: BTreeMap<Entry, Traits> = BTreeMap::new();
        for op in ops {
            match op {
                ListOp::Insert(rank, id, cpu) => {
                    if model.keys().any(|e| e.id.0 == id) {
                        continue;
                    }
                    let e = entry(rank, id);
                    let pos = list.insert(e, traits(cpu));
                    prop_assert_eq!(list.at(pos).map(|(x, _)| *x), Some(e));
                    model.insert(e, traits(cpu));
                }
                ListOp::Remove(index) if !model.is_empty() => {
                    let e = *model.keys().nth(index % model.len()).expect("not empty");
                    prop_assert!(list.remove(Pos::default(), &e));
                    model.remove(&e);
                }
                ListOp::Update(index, cpu) if !model.is_empty() => {
                    let e = *model.keys().nth(index % model.len()).expect("not empty");
                    prop_assert!(list.update(Pos::default(), &e, traits(cpu)).is_some());
                    model.insert(e, traits(cpu));
                }
                _ => {}
            }
            list.check().map_err(TestCaseError::fail)?;
            prop_assert_eq!(list.len(), model.len());
        }
        prop_assert_eq!(list.entries(), model.keys().copied().collect::<Vec<_>>());
        for (e, t) in &model {
            prop_assert_eq!(list.traits_of(e), Some(*t));
        }
        let mut rebuilt = Blocks::default();
        for (e, t) in model.iter().rev() {
            rebuilt.insert(*e, *t);
        }
        prop_assert_eq!(rebuilt.block_firsts(), list.block_firsts(), "the same contents, the same blocks");
    }

    /// Seeking finds the first entry at or after a key; counting and advancing agree.
    #[test]
    fn seeking_counting_and_advancing_agree_with_a_sorted_vector(ranks in proptest::collection::vec(0u64..50, 1..300), key in 0u64..52, skip in 0usize..300) {
        let mut list = Blocks::default();
        let mut sorted = Vec::new();
        for (id, rank) in ranks.into_iter().enumerate() {
            let e = entry(rank, id as u64);
            list.insert(e, traits(1));
            sorted.push(e);
        }
        sorted.sort();
        let probe = Entry::lowest(Rank(key), 0);
        let expected = sorted.partition_point(|e| *e < probe);
        let pos = list.seek(&probe);
        prop_assert_eq!(list.at(pos).map(|(e, _)| *e), sorted.get(expected).copied());
        let start = list.seek(&Entry::lowest(Rank(0), 0));
        prop_assert_eq!(list.count_between(start, pos), expected);
        let advanced = list.advance(start, skip);
        prop_assert_eq!(list.at(advanced).map(|(e, _)| *e), sorted.get(skip).copied());
    }
}

/// Tries every assignment of a small problem: (placed, cost) of the best.
fn brute_force(problem: &Problem) -> (usize, i128) {
    fn descend(
        p: &Problem,
        task: usize,
        load: &mut Vec<[u64; 4]>,
        placed: usize,
        cost: i128,
        best: &mut (usize, i128),
    ) {
        if task == p.needs.len() {
            if placed > best.0 || (placed == best.0 && cost < best.1) {
                *best = (placed, cost);
            }
            return;
        }
        for (node, price) in &p.candidates[task] {
            let n = *node as usize;
            if (0..4).all(|d| load[n][d] + p.needs[task][d] <= p.free[n][d]) {
                (0..4).for_each(|d| load[n][d] += p.needs[task][d]);
                descend(p, task + 1, load, placed + 1, cost + price, best);
                (0..4).for_each(|d| load[n][d] -= p.needs[task][d]);
            }
        }
        descend(p, task + 1, load, placed, cost, best);
    }
    let mut best = (0, 0);
    descend(problem, 0, &mut vec![[0; 4]; problem.free.len()], 0, 0, &mut best);
    best
}

fn problem(seed: u64, one_task_nodes: bool) -> Problem {
    let mut rng = crate::synthetic::Rng::new(seed);
    let nodes = rng.between(2, 5) as usize;
    let tasks = rng.between(2, 6) as usize;
    let free = (0..nodes)
        .map(|_| {
            if one_task_nodes {
                [1, 1, 1, 1]
            } else {
                [rng.between(2, 8), rng.between(2, 8), 10, rng.between(0, 4)]
            }
        })
        .collect();
    let needs = (0..tasks)
        .map(|_| {
            if one_task_nodes {
                [1, 1, 1, 1]
            } else {
                [rng.between(1, 4), rng.between(1, 4), 1, rng.between(0, 2)]
            }
        })
        .collect();
    let mut candidates = Vec::new();
    for _ in 0..tasks {
        let mut list: Vec<(u32, i128)> = Vec::new();
        for node in 0..nodes as u32 {
            if rng.chance(800) {
                list.push((node, i128::from(rng.between(1, 30) as u32)));
            }
        }
        list.sort_by_key(|(_, cost)| *cost);
        candidates.push(list);
    }
    Problem { needs, free, candidates }
}

fn outcome(problem: &Problem, assigned: &[Option<u32>]) -> (usize, i128) {
    let mut load = vec![[0u64; 4]; problem.free.len()];
    let mut cost = 0;
    for (task, node) in assigned.iter().enumerate() {
        let Some(node) = node else { continue };
        let (_, price) =
            problem.candidates[task].iter().find(|(n, _)| n == node).expect("a candidate");
        cost += price;
        (0..4).for_each(|d| load[*node as usize][d] += problem.needs[task][d]);
    }
    for (node, load) in load.iter().enumerate() {
        assert!((0..4).all(|d| load[d] <= problem.free[node][d]), "node {node} over-committed");
    }
    (assigned.iter().filter(|a| a.is_some()).count(), cost)
}

#[test]
fn with_one_task_per_node_the_optimizer_is_the_hungarian_method() {
    for seed in 0..500 {
        let p = problem(seed, true);
        let solved = solve(&p, u64::MAX, 16, 0, 0);
        assert_eq!(outcome(&p, &solved.assigned), brute_force(&p), "seed {seed}");
    }
}

#[test]
fn the_optimizer_matches_brute_force_on_small_multi_task_problems() {
    let (mut worst, mut total, mut counted): (f64, f64, u32) = (1.0, 0.0, 0);
    for seed in 0..500 {
        let p = problem(seed, false);
        let exact = brute_force(&p);
        if exact.0 == 0 {
            continue;
        }
        let heuristic = outcome(&p, &solve(&p, u64::MAX, 16, 0, 0).assigned);
        assert_eq!(heuristic.0, exact.0, "seed {seed}: as many placed");
        let ratio = heuristic.1 as f64 / exact.1.max(1) as f64;
        worst = worst.max(ratio);
        total += ratio;
        counted += 1;
        assert_eq!(
            outcome(&p, &solve(&p, u64::MAX, 16, 8, 12).assigned),
            exact,
            "seed {seed}: polished"
        );
    }
    let mean = total / f64::from(counted);
    println!("heuristic alone on random problems: mean cost ratio {mean:.4}, worst {worst:.4}");
    assert!(mean <= 1.01 && worst <= 1.3, "mean {mean}, worst {worst}");
}

#[test]
fn the_work_bound_stops_the_optimizer_with_a_valid_partial_answer() {
    for seed in 0..100 {
        let p = problem(seed, false);
        for work in [0, 1, 10, 100] {
            outcome(&p, &solve(&p, work, 16, 8, 12).assigned);
        }
    }
}

#[test]
fn refreshed_hints_point_at_every_index_entry() {
    let mut matcher = crate::Matcher::new(crate::MatchParams::default());
    crate::synthetic::nodes(3_000, 7).into_iter().for_each(|offer| matcher.upsert_node(offer));
    // Nodes inserted later moved the entries of earlier ones.
    assert!(matcher.stale_hints() > 1_000, "{} stale hints", matcher.stale_hints());
    matcher.refresh_hints();
    assert_eq!(matcher.stale_hints(), 0);
    matcher.check_index().expect("consistent");
}
