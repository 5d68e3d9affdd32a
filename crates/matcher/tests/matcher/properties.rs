//! Property tests: every placement meets every hard requirement, no node is over-committed,
//! the index stays consistent, and the same inputs give the same placements.

use aicpw_matcher::{unmet, Capacity, MatchParams, Matcher, NodeOffer, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, ComputeUnits, Hardware, NodeId, Resources, TaskId};
use proptest::prelude::*;
use std::collections::BTreeMap;

const MODELS: [&str; 3] = ["H100", "h100", "RTX 4090"];

fn offer() -> impl Strategy<Value = NodeOffer> {
    (
        (0u64..12, 0usize..4, 0u32..5, 1u32..5, 1u64..5),
        (1u128..6, 0u16..1_100, 0u64..4, 0u64..20, any::<bool>(), any::<bool>(), 0u64..15),
    )
        .prop_map(
            |(
                (id, model, gpus, cores, memory),
                (price, reputation, units, stake, online, tee, completed),
            )| NodeOffer {
                id: NodeId(id),
                hardware: Hardware {
                    cpu_cores: cores * 4,
                    memory_mb: memory * 8_192,
                    disk_mb: 100_000,
                    bandwidth_mbps: 100,
                    gpu_model: if gpus == 0 || model == 3 {
                        String::new()
                    } else {
                        MODELS[model].to_string()
                    },
                    gpu_count: gpus,
                    gpu_vram_mb: 24_000 * (1 + u64::from(gpus % 2)),
                    region: ["eu-west", "us-east", ""][(id % 3) as usize].to_string(),
                    allows_network: completed % 2 == 0,
                    runs_containers: completed % 3 == 0,
                },
                price_per_hour: Amount(price * 10),
                reputation_permille: reputation,
                proven_units: ComputeUnits(units * 100),
                stake: Amount(u128::from(stake) * 10),
                online: online || id % 3 == 0,
                completed_tasks: completed,
                tee,
            },
        )
}

fn task() -> impl Strategy<Value = TaskRequest> {
    (
        (0usize..6, 0u32..3, 0u32..9, 0u64..4, 0u64..2, 0u64..2),
        (
            2u128..8,
            0u16..1_100,
            0u128..4,
            0usize..4,
            0u8..20,
            0usize..10,
            proptest::collection::vec(0u64..12, 0..4),
        ),
    )
        .prop_map(
            |(
                (model, gpus, cores, memory, vram, units),
                (price, floor, value, strategy, tee, allowed, listed),
            )| TaskRequest {
                id: TaskId(0),
                resources: Resources {
                    cpu_cores: cores,
                    memory_mb: memory * 4_096,
                    disk_mb: 1_000,
                    gpu_count: gpus,
                    gpu_model: if model >= 3 { String::new() } else { MODELS[model].to_string() },
                    gpu_vram_mb: vram * 30_000,
                    compute_units_min: units * 100,
                    region: ["", "", "EU-WEST", "us-east"][allowed % 4].to_string(),
                },
                max_price_per_hour: Amount(price * 10),
                reputation_min: if floor > 900 { floor - 300 } else { 0 },
                strategy: [
                    MatchStrategy::LowestPrice,
                    MatchStrategy::ReputationFirst,
                    MatchStrategy::BestFit,
                    MatchStrategy::Batch,
                ][strategy],
                value: Amount(value * 10),
                tee_required: tee == 0,
                network: tee % 3 == 1,
                container: tee % 4 == 2,
                allowed_nodes: (allowed == 0)
                    .then(|| listed.iter().map(|id| NodeId(id / 2)).collect()),
                excluded_nodes: if (1..3).contains(&allowed) {
                    listed.into_iter().map(NodeId).collect()
                } else {
                    Vec::new()
                },
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(NodeOffer),
    Remove(u64),
    Place(TaskRequest, u8),
    Batch(Vec<TaskRequest>, u8),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => offer().prop_map(Op::Upsert),
        1 => (0u64..12).prop_map(Op::Remove),
        4 => (task(), any::<u8>()).prop_map(|(t, r)| Op::Place(t, r)),
        2 => (proptest::collection::vec(task(), 1..6), any::<u8>()).prop_map(|(t, r)| Op::Batch(t, r)),
        3 => (0usize..64).prop_map(Op::Release),
    ]
}

/// What the test knows independently of the matcher: offers and running tasks per node.
#[derive(Default)]
struct Shadow {
    offers: BTreeMap<NodeId, NodeOffer>,
    running: Vec<(NodeId, Resources)>,
}

impl Shadow {
    fn free(&self, id: NodeId) -> Capacity {
        let mut free = Capacity::of(&self.offers[&id].hardware);
        for (_, need) in self.running.iter().filter(|(node, _)| *node == id) {
            free = free.saturating_sub(Capacity::used_by(need));
        }
        free
    }

    /// The tasks a batch added to each node fit what the node had free before it.
    fn check_batch_fits(
        &self,
        free_before: &BTreeMap<NodeId, Capacity>,
        added: &[(NodeId, Resources)],
    ) -> Result<(), TestCaseError> {
        for (id, free) in free_before {
            let mut left = *free;
            for (_, need) in added.iter().filter(|(node, _)| node == id) {
                prop_assert!(left.fits(need), "node {id} over-committed by the batch");
                left = left.saturating_sub(Capacity::used_by(need));
            }
        }
        Ok(())
    }

    fn eligible(&self, task: &TaskRequest, params: &MatchParams) -> Vec<NodeId> {
        self.offers
            .keys()
            .copied()
            .filter(|id| unmet(&self.offers[id], &self.free(*id), task, params).is_empty())
            .collect()
    }

    /// Checks a placement against every hard requirement, then records it.
    fn placed(
        &mut self,
        task: &TaskRequest,
        node: NodeId,
        params: &MatchParams,
    ) -> Result<(), TestCaseError> {
        let offer = self.offers.get(&node).ok_or_else(|| TestCaseError::fail("unknown node"))?;
        let failed = unmet(offer, &self.free(node), task, params);
        prop_assert!(
            failed.is_empty(),
            "task {:?} on node {node}: {:?}",
            task.resources,
            failed.iter().collect::<Vec<_>>()
        );
        self.running.push((node, task.resources.clone()));
        Ok(())
    }
}

fn play(ops: &[Op], params: &MatchParams) -> Result<Vec<String>, TestCaseError> {
    let mut matcher = Matcher::new(params.clone());
    let mut shadow = Shadow::default();
    let mut log = Vec::new();
    let mut next_task = 0u64;
    for op in ops {
        match op {
            Op::Upsert(offer) => {
                shadow.offers.insert(offer.id, offer.clone());
                matcher.upsert_node(offer.clone());
            }
            Op::Remove(id) => {
                shadow.offers.remove(&NodeId(*id));
                shadow.running.retain(|(node, _)| *node != NodeId(*id));
                matcher.remove_node(NodeId(*id));
            }
            Op::Place(task, seed) => {
                let task = TaskRequest { id: TaskId(next_task), ..task.clone() };
                next_task += 1;
                let eligible = shadow.eligible(&task, params);
                match matcher.place_one(&task, [*seed; 32]) {
                    Ok(node) => {
                        check_rank(&shadow, &task, node, &eligible)?;
                        shadow.placed(&task, node, params)?;
                        log.push(format!("{} -> {node}", task.id));
                    }
                    Err(why) => {
                        prop_assert!(
                            eligible.is_empty(),
                            "refused although {eligible:?} are eligible: {}",
                            why.message
                        );
                        log.push(format!("{} waits: {:?}", task.id, why.first_unmet));
                    }
                }
            }
            Op::Batch(tasks, seed) => {
                let tasks: Vec<TaskRequest> = tasks
                    .iter()
                    .map(|t| {
                        next_task += 1;
                        TaskRequest { id: TaskId(next_task), ..t.clone() }
                    })
                    .collect();
                // The batch places single-strategy tasks first, so judge each placement against
                // the node as a whole, then check that the batch fits what was free.
                let free_before: BTreeMap<NodeId, Capacity> =
                    shadow.offers.keys().map(|id| (*id, shadow.free(*id))).collect();
                let mut added = Vec::new();
                for (id, outcome) in matcher.place_batch(&tasks, [*seed; 32]) {
                    let task = tasks
                        .iter()
                        .find(|t| t.id == id)
                        .ok_or_else(|| TestCaseError::fail("unknown task"))?;
                    if let Ok(node) = outcome {
                        let offer = &shadow.offers[&node];
                        let failed = unmet(offer, &Capacity::of(&offer.hardware), task, params);
                        prop_assert!(failed.is_empty(), "batch task on node {node}: {failed:?}");
                        shadow.running.push((node, task.resources.clone()));
                        added.push((node, task.resources.clone()));
                    }
                    log.push(format!("{id} -> {:?}", outcome.ok()));
                }
                shadow.check_batch_fits(&free_before, &added)?;
            }
            Op::Release(index) => {
                if !shadow.running.is_empty() {
                    let (node, need) = shadow.running.remove(index % shadow.running.len());
                    matcher.release(node, &need);
                }
            }
        }
        if let Err(broken) = matcher.check_index() {
            return Err(TestCaseError::fail(broken));
        }
        for id in shadow.offers.keys() {
            let (free, _) =
                matcher.occupancy(*id).ok_or_else(|| TestCaseError::fail("node lost"))?;
            prop_assert_eq!(free, shadow.free(*id), "occupancy of node {}", id);
        }
    }
    Ok(log)
}

/// Lowest price and reputation-first placements take a best-ranked eligible node.
fn check_rank(
    shadow: &Shadow,
    task: &TaskRequest,
    node: NodeId,
    eligible: &[NodeId],
) -> Result<(), TestCaseError> {
    let price = |id: &NodeId| shadow.offers[id].price_per_hour;
    let band = |id: &NodeId| shadow.offers[id].reputation_permille / aicpw_matcher::REPUTATION_BAND;
    match task.strategy {
        MatchStrategy::LowestPrice => {
            let best = eligible.iter().map(price).min();
            prop_assert_eq!(Some(price(&node)), best, "lowest price");
        }
        MatchStrategy::ReputationFirst => {
            let best = eligible.iter().map(|id| (std::cmp::Reverse(band(id)), price(id))).min();
            prop_assert_eq!(
                Some((std::cmp::Reverse(band(&node)), price(&node))),
                best,
                "reputation first"
            );
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_placement_meets_every_requirement_and_replays_identically(ops in proptest::collection::vec(op(), 1..60)) {
        let params = MatchParams { new_provider_share_bps: 0, ..MatchParams::default() };
        let first = play(&ops, &params)?;
        let second = play(&ops, &params)?;
        prop_assert_eq!(first, second);
    }

    #[test]
    fn reserved_placements_meet_every_requirement_too(ops in proptest::collection::vec(op(), 1..40)) {
        let params = MatchParams { new_provider_share_bps: 5_000, new_provider_completed_max: 8, ..MatchParams::default() };
        let params_for_check = params.clone();
        // With a reserved share, placements need not take the best rank; requirements still hold.
        let mut ops = ops;
        for op in &mut ops {
            if let Op::Place(task, _) = op {
                task.strategy = MatchStrategy::BestFit;
            }
        }
        play(&ops, &params_for_check)?;
    }
}
