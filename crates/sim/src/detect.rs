//! Whether and when the cheater of a scenario was caught, by the rule the scenario names, and
//! how many attempts (tasks, challenges, disputes) it made until then.

use crate::chain::BlockOutcome;
use aicpw_ledger::challenge::ChallengeKind;
use aicpw_ledger::state::{DisputeOutcome, Role};
use aicpw_ledger::{Event, State};
use aicpw_types::{AccountId, ChallengeId, NodeId, TaskId};
use serde::Serialize;

/// What counts as catching the cheater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaughtWhen {
    /// The cheater's stake is slashed, or its node frozen or ejected by the ledger.
    ProviderSanctioned,
    /// The cheater's stake is slashed (for a withheld reveal: when its late reveal window
    /// closes unopened).
    ProviderSlashed,
    /// The cheater (a requester) loses the bond of a dispute.
    BondForfeited,
}

/// What the cheater's attempts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "role")]
pub enum Attempts {
    /// Results it committed holding a lease in this role.
    Commits(Role),
    /// Results it revealed that differ from the task's true output (the simulation knows it).
    ForgedReveals,
    /// Matrix challenges issued to its node.
    Challenges,
    /// Disputes it opened.
    Disputes,
}

impl Attempts {
    pub fn unit(self) -> &'static str {
        match self {
            Attempts::Commits(Role::Worker) => "tasks (results committed as worker)",
            Attempts::Commits(Role::Replica) => "tasks (results committed as replica)",
            Attempts::Commits(Role::Auditor) => "audits (results committed as auditor)",
            Attempts::Commits(_) => "results committed",
            Attempts::ForgedReveals => "tasks it revealed a wrong result on",
            Attempts::Challenges => "matrix challenges issued",
            Attempts::Disputes => "disputes opened",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Caught {
    pub at_ms: u64,
    /// The first of the cheater's attempts that a sanction was about (1 = its first attempt),
    /// over the whole run: judgements land out of order (a later task's audit may finish first),
    /// and the bound is about how many attempts it gets away with. A sanction that is not about
    /// one task (a freeze, a challenge slash) counts the attempts made so far.
    pub attempts: u64,
    /// Attempts it had made by the time of the first sanction.
    pub attempts_made: u64,
    /// The first sanction.
    pub how: String,
    pub sanctions: u64,
}

#[derive(Clone, Debug)]
pub struct Detector {
    pub cheater: AccountId,
    pub rule: CaughtWhen,
    pub counts: Attempts,
    pub attempts: u64,
    /// The task of each attempt about a task, in order.
    attempt_tasks: Vec<TaskId>,
    pub caught: Option<Caught>,
}

fn owned_by(state: &State, node: &NodeId, who: &AccountId) -> bool {
    state.nodes.get(node).is_some_and(|n| n.owner == *who)
}

/// Whether the node's current challenge `id` was sized for the capacity it claims (a node's
/// first challenge may come before its claim, sized for the floor: that one tests nothing).
pub(crate) fn sized_for_claim(state: &State, node: &NodeId, id: &ChallengeId) -> bool {
    let Some(node) = state.nodes.get(node) else { return false };
    let claimed = node.capacity.claimed_units;
    let current = node.capacity.matrix.as_ref().filter(|c| c.id == *id);
    claimed.0 > 0 && current.is_some_and(|c| c.sized_for >= claimed)
}

/// The task a sanction was about, if it was about one.
fn event_task(event: &Event) -> Option<TaskId> {
    match event {
        Event::Penalized { task, .. } => *task,
        Event::DisputeResolved { task, .. } => Some(*task),
        _ => None,
    }
}

fn requested_by(state: &State, task: &TaskId, who: &AccountId) -> bool {
    state.tasks.get(task).is_some_and(|t| t.requester == *who)
}

impl Detector {
    pub fn new(cheater: AccountId, rule: CaughtWhen, counts: Attempts) -> Detector {
        Detector { cheater, rule, counts, attempts: 0, attempt_tasks: Vec::new(), caught: None }
    }

    pub fn after_block(&mut self, state: &State, outcome: &BlockOutcome, now: u64) {
        let me = self.cheater;
        for event in &outcome.events {
            let attempt = match (self.counts, event) {
                (Attempts::Commits(want), Event::ResultCommitted { task, node, role }) => {
                    (*role == want && owned_by(state, node, &me)).then_some(Some(*task))
                }
                (Attempts::ForgedReveals, Event::ResultRevealed { task, node, output_hash }) => {
                    let right = state
                        .tasks
                        .get(task)
                        .is_some_and(|t| crate::work::is_right(&t.terms, output_hash));
                    (owned_by(state, node, &me) && !right).then_some(Some(*task))
                }
                (Attempts::Challenges, Event::ChallengeIssued { challenge, node, kind, .. }) => {
                    let sized =
                        *kind == ChallengeKind::Matrix && sized_for_claim(state, node, challenge);
                    (sized && owned_by(state, node, &me)).then_some(None)
                }
                (Attempts::Disputes, Event::DisputeOpened { task, .. }) => {
                    requested_by(state, task, &me).then_some(Some(*task))
                }
                _ => None,
            };
            if let Some(task) = attempt {
                self.attempts += 1;
                self.attempt_tasks.extend(task);
            }
        }
        let found: Vec<(String, Option<TaskId>)> = outcome
            .events
            .iter()
            .filter_map(|event| self.sanction(state, event).map(|how| (how, event_task(event))))
            .collect();
        for (how, task) in found {
            let place = task
                .and_then(|t| self.attempt_tasks.iter().position(|a| *a == t))
                .map_or(self.attempts, |i| i as u64 + 1);
            let caught = self.caught.get_or_insert(Caught {
                at_ms: now,
                attempts: place,
                attempts_made: self.attempts,
                how,
                sanctions: 0,
            });
            caught.attempts = caught.attempts.min(place);
            caught.sanctions += 1;
        }
    }

    fn sanction(&self, state: &State, event: &Event) -> Option<String> {
        let me = &self.cheater;
        let slashed = match event {
            Event::Penalized { owner, offence, .. } if owner == me => {
                let name = serde_json::to_string(offence).unwrap_or_default();
                Some(format!("slashed: {}", name.trim_matches('"')))
            }
            _ => None,
        };
        match (self.rule, event) {
            (CaughtWhen::ProviderSlashed, _) => slashed,
            (CaughtWhen::ProviderSanctioned, Event::NodeFrozen { node, .. })
                if owned_by(state, node, me) =>
            {
                Some("node frozen".into())
            }
            (CaughtWhen::ProviderSanctioned, _) => slashed,
            (CaughtWhen::BondForfeited, Event::DisputeResolved { task, outcome, .. })
                if *outcome == DisputeOutcome::Rejected && requested_by(state, task, me) =>
            {
                Some("dispute rejected: bond forfeited".into())
            }
            (CaughtWhen::BondForfeited, _) => None,
        }
    }
}
