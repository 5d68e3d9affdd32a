//! Explanations: why a task waits, and why a node gets no work.

use crate::eligibility::{Constraint, Need};
use crate::index::Order;
use crate::search::Probe;
use crate::strategy::strategy;
use crate::{Matcher, TaskRequest};
use aicpw_types::{Amount, NodeId, TaskId};
use serde::{Deserialize, Serialize};

/// Most pending tasks one node explanation looks at.
pub const EXPLAIN_TASKS_MAX: usize = 1_024;

/// How many nodes (or tasks) fail each requirement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintCounts {
    pub offline: usize,
    pub not_allowed: usize,
    pub excluded: usize,
    pub tee: usize,
    pub network: usize,
    pub runtime: usize,
    pub gpu_model: usize,
    pub region: usize,
    pub hardware: usize,
    pub compute_units: usize,
    pub reputation: usize,
    pub price: usize,
    pub stake: usize,
    pub capacity: usize,
}

impl ConstraintCounts {
    fn slot(&mut self, constraint: Constraint) -> &mut usize {
        match constraint {
            Constraint::Offline => &mut self.offline,
            Constraint::NotAllowed => &mut self.not_allowed,
            Constraint::Excluded => &mut self.excluded,
            Constraint::Tee => &mut self.tee,
            Constraint::Network => &mut self.network,
            Constraint::Runtime => &mut self.runtime,
            Constraint::GpuModel => &mut self.gpu_model,
            Constraint::Region => &mut self.region,
            Constraint::Hardware => &mut self.hardware,
            Constraint::ComputeUnits => &mut self.compute_units,
            Constraint::Reputation => &mut self.reputation,
            Constraint::Price => &mut self.price,
            Constraint::Stake => &mut self.stake,
            Constraint::Capacity => &mut self.capacity,
        }
    }
    pub fn get(&self, constraint: Constraint) -> usize {
        match constraint {
            Constraint::Offline => self.offline,
            Constraint::NotAllowed => self.not_allowed,
            Constraint::Excluded => self.excluded,
            Constraint::Tee => self.tee,
            Constraint::Network => self.network,
            Constraint::Runtime => self.runtime,
            Constraint::GpuModel => self.gpu_model,
            Constraint::Region => self.region,
            Constraint::Hardware => self.hardware,
            Constraint::ComputeUnits => self.compute_units,
            Constraint::Reputation => self.reputation,
            Constraint::Price => self.price,
            Constraint::Stake => self.stake,
            Constraint::Capacity => self.capacity,
        }
    }
    pub(crate) fn add(&mut self, constraint: Constraint, count: usize) {
        *self.slot(constraint) += count;
    }
}

/// Why a task waits (or where it would go).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskExplanation {
    pub task: TaskId,
    /// Registered nodes.
    pub nodes_total: usize,
    /// Nodes checked one by one (the rest were judged by whole buckets).
    pub nodes_checked: usize,
    pub nodes_eligible: usize,
    /// True: every node was checked against every requirement, and `failing` counts each
    /// requirement a node fails. False (a failed placement): only what the search looked at,
    /// and `failing` counts each node once, under its first failed requirement.
    pub exhaustive: bool,
    /// The placement stopped at `scan_nodes_max` examined nodes.
    pub search_bound_reached: bool,
    pub failing: ConstraintCounts,
    /// The requirement no node gets past: the last, in the order of [`Constraint`], that any
    /// node reaches while meeting all the earlier ones (in a quick explanation: the requirement
    /// most online, allowed nodes of the right model failed). `None` when some node is eligible.
    pub first_unmet: Option<Constraint>,
    /// The same, in words.
    pub message: String,
    /// The node a placement would choose now (tie-breaks from zero randomness).
    pub would_place_on: Option<NodeId>,
}

/// Why a node gets no work from the pending tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExplanation {
    pub node: NodeId,
    pub registered: bool,
    pub online: bool,
    pub new_provider: bool,
    pub free: Option<crate::Capacity>,
    pub tasks_running: u64,
    pub tasks_pending: usize,
    /// Pending tasks looked at (at most [`EXPLAIN_TASKS_MAX`]).
    pub tasks_checked: usize,
    /// Tasks the node meets every requirement of.
    pub tasks_eligible: usize,
    /// Eligible tasks that would go to this node now.
    pub tasks_first_in_line: usize,
    /// Eligible tasks that would go to a better-ranked node.
    pub tasks_outranked: usize,
    /// Per requirement, how many of the checked tasks this node fails it for.
    pub failing: ConstraintCounts,
    /// The reasons in words, in the order of [`Constraint`].
    pub reasons: Vec<String>,
}

/// The best value among nodes that got as far as a requirement, to show how close they came.
#[derive(Clone, Copy, Debug, Default)]
struct Closest {
    units_max: u64,
    reputation_max: u16,
    price_min: Option<Amount>,
    stake_max: Amount,
}

impl Matcher {
    /// Checks every node against every requirement of the task; O(nodes), for the API.
    pub fn explain_task(&self, task: &TaskRequest) -> TaskExplanation {
        let need = Need::new(task, &self.params);
        let mut failing = ConstraintCounts::default();
        let mut eligible = 0;
        let mut furthest: Option<Constraint> = None;
        let mut closest = Closest::default();
        for &slot in self.slots.values() {
            let node = self.slot(slot);
            let unmet = need.check(&node.offer, &node.free(), true);
            unmet.iter().for_each(|constraint| failing.add(constraint, 1));
            let Some(first) = unmet.first() else {
                eligible += 1;
                continue;
            };
            furthest = furthest.max(Some(first));
            let offer = &node.offer;
            match first {
                Constraint::ComputeUnits => {
                    closest.units_max = closest.units_max.max(offer.proven_units.0)
                }
                Constraint::Reputation => {
                    closest.reputation_max = closest.reputation_max.max(offer.reputation_permille)
                }
                Constraint::Price => {
                    let price = offer.price_per_hour;
                    closest.price_min = Some(closest.price_min.map_or(price, |p| p.min(price)));
                }
                Constraint::Stake => closest.stake_max = closest.stake_max.max(offer.stake),
                _ => {}
            }
        }
        let mut probe = Probe::default();
        let chosen = (eligible > 0).then(|| self.choose(task, &[0; 32], &mut probe)).flatten();
        let first_unmet = if eligible > 0 { None } else { furthest };
        let message = match (first_unmet, chosen) {
            (_, Some(entry)) => format!(
                "{eligible} node(s) meet every requirement; the task would be placed on node {}",
                entry.id
            ),
            (None, None) if eligible > 0 => format!(
                "{eligible} node(s) meet every requirement, but the search stopped after {} nodes \
                 (scan_nodes_max)",
                self.params.scan_nodes_max
            ),
            (None, None) => "no nodes are registered".to_string(),
            (Some(constraint), None) => describe(constraint, task, &need, Some(&closest)),
        };
        TaskExplanation {
            task: task.id,
            nodes_total: self.node_count(),
            nodes_checked: self.node_count(),
            nodes_eligible: eligible,
            exhaustive: true,
            search_bound_reached: probe.bound_reached,
            failing,
            first_unmet,
            message,
            would_place_on: chosen.map(|entry| entry.id),
        }
    }

    /// Explains a failed placement from what its search saw, without a scan of every node.
    pub(crate) fn quick_explanation(&self, task: &TaskRequest, probe: &Probe) -> TaskExplanation {
        let need = Need::new(task, &self.params);
        let mut failing = probe.counts.clone();
        let total = self.node_count();
        let mut rest = total.saturating_sub(probe.accounted);
        if task.allowed_nodes.is_some() {
            failing.add(Constraint::NotAllowed, rest);
        } else {
            failing.add(Constraint::Offline, self.offline);
            rest = rest.saturating_sub(self.offline);
            let beyond = match strategy(task.strategy).order() {
                Order::Price => Constraint::Price,
                Order::Reputation => Constraint::Reputation,
                Order::Fit => Constraint::Capacity,
            };
            failing.add(beyond, rest);
        }
        // What the search saw is partial: name the requirement most nodes failed, among the
        // nodes that could be candidates at all (online, allowed, of the model) if any.
        let most = |candidates: &[Constraint]| {
            candidates
                .iter()
                .copied()
                .filter(|constraint| failing.get(*constraint) > 0)
                .max_by_key(|constraint| failing.get(*constraint))
        };
        let outer = [Constraint::Offline, Constraint::NotAllowed, Constraint::GpuModel];
        let inner: Vec<Constraint> =
            Constraint::ALL.into_iter().filter(|c| !outer.contains(c)).collect();
        let first_unmet = most(&inner).or_else(|| most(&Constraint::ALL));
        let message = match first_unmet {
            _ if probe.bound_reached => format!(
                "no eligible node among the {} the search examined (scan_nodes_max); \
                 explain the task for a full account",
                probe.examined
            ),
            Some(constraint) => describe(constraint, task, &need, None),
            None => "no nodes are registered".to_string(),
        };
        TaskExplanation {
            task: task.id,
            nodes_total: total,
            nodes_checked: probe.examined as usize,
            nodes_eligible: 0,
            exhaustive: false,
            search_bound_reached: probe.bound_reached,
            failing,
            first_unmet,
            message,
            would_place_on: None,
        }
    }

    /// Says why a node gets no work from `pending` (at most [`EXPLAIN_TASKS_MAX`] looked at).
    pub fn explain_node(&self, node: NodeId, pending: &[TaskRequest]) -> NodeExplanation {
        let state = self.slots.get(&node).map(|slot| self.slot(*slot));
        let mut explanation = NodeExplanation {
            node,
            registered: state.is_some(),
            online: state.is_some_and(|s| s.offer.online),
            new_provider: state.is_some_and(|s| self.is_fresh(&s.offer)),
            free: state.map(|s| s.free()),
            tasks_running: state.map_or(0, |s| s.running),
            tasks_pending: pending.len(),
            tasks_checked: 0,
            tasks_eligible: 0,
            tasks_first_in_line: 0,
            tasks_outranked: 0,
            failing: ConstraintCounts::default(),
            reasons: Vec::new(),
        };
        let Some(state) = state else {
            explanation.reasons.push("the node is not registered (or was deregistered)".into());
            return explanation;
        };
        let mut words = NodeWords::default();
        for task in pending.iter().take(EXPLAIN_TASKS_MAX) {
            explanation.tasks_checked += 1;
            let need = Need::new(task, &self.params);
            let unmet = need.check(&state.offer, &state.free(), true);
            if unmet.is_empty() {
                explanation.tasks_eligible += 1;
                match self.select(task, [0; 32]) {
                    Some(chosen) if chosen == node => explanation.tasks_first_in_line += 1,
                    chosen => {
                        explanation.tasks_outranked += 1;
                        words.outranked_example.get_or_insert((task.id, chosen));
                    }
                }
            }
            for constraint in unmet.iter() {
                explanation.failing.add(constraint, 1);
                words.note(constraint, task, &need);
            }
        }
        explanation.reasons = words.reasons(&explanation, &state.offer);
        explanation
    }
}

/// The requirement no node gets past, in words.
fn describe(
    constraint: Constraint,
    task: &TaskRequest,
    need: &Need<'_>,
    closest: Option<&Closest>,
) -> String {
    let resources = &task.resources;
    let closest = closest.copied().unwrap_or_default();
    match constraint {
        Constraint::Offline => "no registered node is online".into(),
        Constraint::NotAllowed => {
            "no online node holds a key grant for this encrypted task (allowed nodes)".into()
        }
        Constraint::Excluded => {
            "every online node allowed to run the task has already failed it".into()
        }
        Constraint::Tee => "no suitable online node offers a TEE, which the task requires".into(),
        Constraint::Network => "the task asks for network access (`network: full`) and no \
                                suitable online node allows it (`aicpw provider start \
                                --allow-network`)"
            .into(),
        Constraint::Runtime => "the task runs in a container (`runtime: container`) and no \
                                suitable online node runs containers (`aicpw provider start \
                                --containers`)"
            .into(),
        Constraint::GpuModel => format!("no online node has GPU model {:?}", resources.gpu_model),
        Constraint::Region => format!("no online node is in region {:?}", resources.region),
        Constraint::Hardware => format!(
            "no node's hardware is large enough: the task needs {} CPU cores, {} MB memory, \
             {} MB disk and {} GPU(s) with {} MB VRAM",
            resources.cpu_cores,
            resources.memory_mb,
            resources.disk_mb,
            resources.gpu_count,
            resources.gpu_vram_mb
        ),
        Constraint::ComputeUnits => format!(
            "no node has proven {} compute units (the best of the rest proved {})",
            resources.compute_units_min, closest.units_max
        ),
        Constraint::Reputation => format!(
            "no node has a reputation of {} permille or more (the best of the rest has {})",
            task.reputation_min, closest.reputation_max
        ),
        Constraint::Price => match closest.price_min {
            Some(price) => format!(
                "no node asks at most {} per hour (the cheapest of the rest asks {price})",
                task.max_price_per_hour
            ),
            None => format!("no node asks at most {} per hour", task.max_price_per_hour),
        },
        Constraint::Stake => format!(
            "no node has the stake of {} that covers the task's value (the largest of the rest \
             is {})",
            need.stake_min, closest.stake_max
        ),
        Constraint::Capacity => "every node that meets the requirements is busy; the task waits \
                                 until one has enough free capacity"
            .into(),
    }
}

/// What the reasons of a node explanation quote.
#[derive(Default)]
struct NodeWords {
    price_limit_max: Option<Amount>,
    reputation_floor_min: Option<u16>,
    stake_needed_min: Option<Amount>,
    units_needed_min: Option<u64>,
    outranked_example: Option<(TaskId, Option<NodeId>)>,
}

impl NodeWords {
    fn note(&mut self, constraint: Constraint, task: &TaskRequest, need: &Need<'_>) {
        match constraint {
            Constraint::Price => {
                let limit = task.max_price_per_hour;
                self.price_limit_max = Some(self.price_limit_max.map_or(limit, |l| l.max(limit)));
            }
            Constraint::Reputation => {
                let floor = task.reputation_min;
                self.reputation_floor_min =
                    Some(self.reputation_floor_min.map_or(floor, |f| f.min(floor)));
            }
            Constraint::Stake => {
                let stake = need.stake_min;
                self.stake_needed_min = Some(self.stake_needed_min.map_or(stake, |s| s.min(stake)));
            }
            Constraint::ComputeUnits => {
                let units = task.resources.compute_units_min;
                self.units_needed_min = Some(self.units_needed_min.map_or(units, |u| u.min(units)));
            }
            _ => {}
        }
    }

    fn reasons(&self, e: &NodeExplanation, offer: &crate::NodeOffer) -> Vec<String> {
        let mut reasons = Vec::new();
        let n = e.tasks_checked;
        if n == 0 {
            reasons.push("no tasks are waiting".to_string());
        }
        let f = &e.failing;
        let free = e.free.unwrap_or_default();
        let mut say = |count: usize, text: String| {
            if count > 0 {
                reasons.push(text);
            }
        };
        say(f.offline, "offline: the node gets no work until it sends a heartbeat".into());
        say(
            f.not_allowed,
            format!("{} of {n} tasks are encrypted without a key grant for it", f.not_allowed),
        );
        say(f.excluded, format!("it already failed {} of {n} tasks", f.excluded));
        say(f.tee, format!("{} of {n} tasks require a TEE", f.tee));
        say(
            f.network,
            format!(
                "{} of {n} tasks ask for network access, which this node does not allow \
                 (`aicpw provider start --allow-network`)",
                f.network
            ),
        );
        say(
            f.runtime,
            format!(
                "{} of {n} tasks run in containers, which this node does not \
                 (`aicpw provider start --containers`)",
                f.runtime
            ),
        );
        say(f.gpu_model, format!("{} of {n} tasks want another GPU model", f.gpu_model));
        say(f.hardware, format!("its hardware is too small for {} of {n} tasks", f.hardware));
        say(
            f.compute_units,
            format!(
                "it proved {} compute units, fewer than {} of {n} tasks need (lowest minimum {})",
                offer.proven_units.0,
                f.compute_units,
                self.units_needed_min.unwrap_or_default()
            ),
        );
        say(
            f.reputation,
            format!(
            "its reputation {} permille is below the floor of {} of {n} tasks (lowest floor {})",
            offer.reputation_permille, f.reputation, self.reputation_floor_min.unwrap_or_default()
        ),
        );
        say(
            f.price,
            format!(
            "price too high: it asks {} per hour, more than {} of {n} tasks pay (highest limit {})",
            offer.price_per_hour, f.price, self.price_limit_max.unwrap_or_default()
        ),
        );
        say(
            f.stake,
            format!(
                "its stake {} does not cover the value of {} of {n} tasks (smallest needed {})",
                offer.stake,
                f.stake,
                self.stake_needed_min.unwrap_or_default()
            ),
        );
        say(
            f.capacity,
            format!(
                "capacity full for {} of {n} tasks: {} tasks running; free {} CPU cores, {} MB \
             memory, {} MB disk, {} GPUs",
                f.capacity,
                e.tasks_running,
                free.cpu_cores,
                free.memory_mb,
                free.disk_mb,
                free.gpus
            ),
        );
        if let Some((task, chosen)) = self.outranked_example {
            let to = chosen.map_or("no node (search bound)".to_string(), |n| format!("node {n}"));
            say(
                e.tasks_outranked,
                format!(
                    "outranked on {} eligible tasks by better offers (task {task} goes to {to})",
                    e.tasks_outranked
                ),
            );
        }
        say(e.tasks_first_in_line, format!("first in line for {} tasks", e.tasks_first_in_line));
        reasons
    }
}
