//! `place_batch`: single-strategy tasks one by one, then the `Batch` tasks jointly.

use crate::batch::{solve, Load, Problem};
use crate::eligibility::Need;
use crate::matcher::rotation;
use crate::params::MatchParams;
use crate::search::{Probe, Scope};
use crate::strategy::BatchCost;
use crate::{Matcher, NodeOffer, TaskExplanation, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{NodeId, Resources, TaskId};
use std::collections::BTreeMap;

/// Prices above this count as this in batch costs, so that sums of costs cannot overflow.
pub(crate) const COST_MAX: u128 = 1 << 80;

/// What a task pays per hour on a node, for the batch optimizer: the price, plus the
/// reputation penalty of `batch_reputation_penalty_bps` when it is set.
pub fn batch_cost(offer: &NodeOffer, params: &MatchParams) -> u128 {
    let price = offer.price_per_hour.0.min(COST_MAX);
    let shortfall = 1000u128.saturating_sub(u128::from(offer.reputation_permille.min(1000)));
    let penalty = u128::from(params.batch_reputation_penalty_bps);
    price + price * penalty * shortfall / 10_000_000
}

/// What a task occupies in the optimizer. CPU and memory count at least 1 so that no node is
/// given a task after it is saturated.
fn load(need: &Resources) -> Load {
    [
        u64::from(need.cpu_cores.max(1)),
        need.memory_mb.max(1),
        need.disk_mb,
        u64::from(need.gpu_count),
    ]
}

type Outcome = Result<NodeId, TaskExplanation>;

impl Matcher {
    pub(crate) fn batch_cost(&self, slot: u32) -> u128 {
        batch_cost(&self.slot(slot).offer, &self.params)
    }

    /// Places the tasks of a block. Tasks with a single-task strategy go first, one by one in
    /// the given order; then up to `batch_tasks_max` `Batch` tasks are assigned jointly at least
    /// total cost; `Batch` tasks left over (beyond the bound, out of optimizer work, or without a
    /// candidate the optimizer could fit) are then placed one by one. Results follow the input.
    #[allow(clippy::result_large_err)] // the ledger's contract returns explanations by value
    pub fn place_batch(
        &mut self,
        tasks: &[TaskRequest],
        randomness: [u8; 32],
    ) -> Vec<(TaskId, Result<NodeId, TaskExplanation>)> {
        let mut outcomes: Vec<Option<Outcome>> = (0..tasks.len()).map(|_| None).collect();
        let mut joint = Vec::new();
        for (index, task) in tasks.iter().enumerate() {
            if task.strategy != MatchStrategy::Batch {
                outcomes[index] = Some(self.place_one(task, randomness));
            } else if joint.len() < self.params.batch_tasks_max as usize {
                joint.push(index);
            }
        }
        self.place_jointly(tasks, &joint, &randomness, &mut outcomes);
        tasks
            .iter()
            .zip(outcomes)
            .map(|(task, outcome)| {
                let outcome = outcome.unwrap_or_else(|| self.place_one(task, randomness));
                (task.id, outcome)
            })
            .collect()
    }

    fn place_jointly(
        &mut self,
        tasks: &[TaskRequest],
        joint: &[usize],
        randomness: &[u8; 32],
        outcomes: &mut [Option<Outcome>],
    ) {
        let mut problem = Problem::default();
        let mut members = Vec::new();
        let mut locals: BTreeMap<u32, u32> = BTreeMap::new();
        let mut slots = Vec::new();
        let limit = self.params.batch_candidates_max.max(1) as usize;
        for &index in joint {
            let task = &tasks[index];
            let need = Need::new(task, &self.params);
            let rotation = rotation(randomness, task.id);
            let found =
                self.search(&need, &BatchCost, Scope::All, limit, rotation, &mut Probe::default());
            let Some(cheapest) =
                found.iter().min_by_key(|c| (self.batch_cost(c.entry.slot), c.key())).copied()
            else {
                continue;
            };
            if let Some(fresh) = self.reserved(&need, &cheapest, rotation) {
                self.commit(fresh.entry.slot, &task.resources);
                outcomes[index] = Some(Ok(fresh.entry.id));
                continue;
            }
            let mut candidates: Vec<(u32, i128)> = Vec::with_capacity(found.len());
            for candidate in &found {
                let slot = candidate.entry.slot;
                let local = *locals.entry(slot).or_insert_with(|| {
                    slots.push(slot);
                    slots.len() as u32 - 1
                });
                let cost = i128::try_from(self.batch_cost(slot)).unwrap_or(i128::MAX);
                candidates.push((local, cost));
            }
            candidates.sort_by_key(|(_, cost)| *cost);
            problem.needs.push(load(&task.resources));
            problem.candidates.push(candidates);
            members.push(index);
        }
        problem.free = slots
            .iter()
            .map(|slot| {
                let free = self.slot(*slot).free();
                [u64::from(free.cpu_cores), free.memory_mb, free.disk_mb, u64::from(free.gpus)]
            })
            .collect();
        let solution = solve(
            &problem,
            self.params.batch_work_max,
            self.params.batch_path_moves_max,
            self.params.batch_exact_tasks_max as usize,
            self.params.batch_neighbourhood_tasks_max as usize,
        );
        for (member, local) in solution.assigned.iter().enumerate() {
            let Some(local) = local else { continue };
            let (index, slot) = (members[member], slots[*local as usize]);
            let free = self.slot(slot).free();
            let task = &tasks[index];
            assert!(
                !free.is_saturated() && free.fits(&task.resources),
                "the batch optimizer over-committed node {}",
                self.slot(slot).offer.id
            );
            self.commit(slot, &task.resources);
            outcomes[index] = Some(Ok(self.slot(slot).offer.id));
        }
    }
}
