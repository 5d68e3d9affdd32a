//! The same inputs give the same placements, also in a matcher rebuilt after a restart.

use crate::common::*;
use aicpw_matcher::synthetic::{nodes, tasks, Rng};
use aicpw_matcher::{MatchParams, Matcher, NodeOffer, TaskRequest};
use aicpw_types::{NodeId, Resources, TaskId};
use std::collections::BTreeMap;

type Outcome = Vec<(TaskId, Option<NodeId>)>;

/// A market with churn: placements, tasks ending, offers changing, nodes leaving.
struct Run {
    matcher: Matcher,
    offers: BTreeMap<NodeId, NodeOffer>,
    running: Vec<(NodeId, Resources)>,
}

impl Run {
    fn new(params: MatchParams, offers: &[NodeOffer]) -> Run {
        let matcher = matcher_with(params, offers);
        Run {
            matcher,
            offers: offers.iter().map(|o| (o.id, o.clone())).collect(),
            running: Vec::new(),
        }
    }

    fn play(&mut self, work: &[TaskRequest], seed: u64) -> Outcome {
        let mut rng = Rng::new(seed);
        let mut outcome = Vec::new();
        for chunk in work.chunks(7) {
            let randomness = rng.bytes32();
            for (task, placed) in self.matcher.place_batch(chunk, randomness) {
                let node = placed.ok();
                if let Some(node) = node {
                    let resources =
                        chunk.iter().find(|t| t.id == task).map(|t| t.resources.clone());
                    self.running.push((node, resources.unwrap_or_default()));
                }
                outcome.push((task, node));
            }
            for _ in 0..3 {
                self.churn(&mut rng);
            }
        }
        outcome
    }

    fn churn(&mut self, rng: &mut Rng) {
        match rng.below(10) {
            0..=5 if !self.running.is_empty() => {
                let (node, resources) =
                    self.running.swap_remove(rng.below(self.running.len() as u64) as usize);
                self.matcher.release(node, &resources);
                if let Some(offer) = self.offers.get_mut(&node) {
                    offer.completed_tasks += 1;
                    self.matcher.upsert_node(offer.clone());
                }
            }
            6 | 7 => {
                let id = NodeId(rng.below(self.offers.len() as u64 + 5));
                if let Some(offer) = self.offers.get_mut(&id) {
                    offer.online = !offer.online;
                    offer.price_per_hour.0 += 10_000 * u128::from(rng.chance(300));
                    self.matcher.upsert_node(offer.clone());
                }
            }
            8 => {
                let id = NodeId(rng.below(self.offers.len() as u64 + 5));
                if self.offers.remove(&id).is_some() {
                    self.matcher.remove_node(id);
                    self.running.retain(|(node, _)| *node != id);
                }
            }
            _ => {}
        }
    }

    /// What a restarted ledger builds: the same nodes, registered in another order, and the
    /// running tasks recorded with `occupy`.
    fn rebuilt(&self, params: MatchParams) -> Matcher {
        let mut matcher = Matcher::new(params);
        for offer in self.offers.values().rev() {
            matcher.upsert_node(offer.clone());
        }
        for (node, resources) in self.running.iter().rev() {
            matcher.occupy(*node, resources);
        }
        matcher
    }
}

fn scenario(params: MatchParams) {
    let offers = nodes(400, 3);
    let work = tasks(700, 400, 4);
    let mut first = Run::new(params.clone(), &offers);
    let mut second = Run::new(params.clone(), &offers);
    let (a, b) = (first.play(&work[..500], 9), second.play(&work[..500], 9));
    assert_eq!(a, b, "same inputs, same placements");
    first.matcher.check_index().expect("consistent");

    let mut restarted = Run {
        matcher: first.rebuilt(params),
        offers: first.offers.clone(),
        running: first.running.clone(),
    };
    restarted.matcher.check_index().expect("consistent after rebuild");
    for task in &work[500..560] {
        assert_eq!(restarted.matcher.explain_task(task), first.matcher.explain_task(task));
    }
    let (after, after_restart) = (first.play(&work[500..], 10), restarted.play(&work[500..], 10));
    assert!(after.iter().any(|(_, node)| node.is_some()));
    assert_eq!(after, after_restart, "a rebuilt matcher places as the original does");
}

#[test]
fn the_same_inputs_give_the_same_placements_even_after_a_rebuild() {
    scenario(MatchParams::default());
}

#[test]
fn search_bounds_are_reached_identically_after_a_rebuild() {
    scenario(MatchParams { scan_nodes_max: 12, batch_work_max: 300, ..MatchParams::default() });
}
