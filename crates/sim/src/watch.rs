//! Invariants checked after every block, and the run's bookkeeping of what happened.
//!
//! Checked: the ledger's own invariants (`State::check_invariants`: tokens conserved, escrow
//! consistent), supply plus burned equal to the genesis supply (nothing minted), no escrow above
//! its budget, no lease judged wrong keeping the intervals released to it (clawed back with the
//! slash), every task ended by its deadline, every withheld lease judged by the end of its late
//! reveal window (and none left unjudged at the end), and no honest party slashed.

use crate::chain::BlockOutcome;
use aicpw_ledger::{Event, State};
use aicpw_types::{AccountId, NodeId, TaskId, TaskState};
use std::collections::{BTreeMap, BTreeSet};

/// Violation messages kept per run (all are counted).
pub const VIOLATION_MESSAGES_MAX: usize = 16;

/// The state-level invariants; `Err` names the first broken one.
pub fn check_state(state: &State, genesis_supply: u128) -> Result<(), String> {
    state.check_invariants()?;
    let accounted = state.meta.supply.0.checked_add(state.meta.burned.0);
    if accounted != Some(genesis_supply) {
        return Err(format!(
            "supply {} + burned {} != genesis supply {genesis_supply}: tokens created or lost",
            state.meta.supply, state.meta.burned
        ));
    }
    for task in state.tasks.values() {
        if task.escrow > task.terms.budget {
            return Err(format!("task {} holds more escrow than its budget", task.id.0));
        }
        if task.state == TaskState::Verifying && task.result.is_none() {
            return Err(format!("verifying task {} has no result", task.id.0));
        }
        kept_nothing(state, task)?;
    }
    Ok(())
}

/// A lease judged wrong keeps none of its released intervals: they were clawed back with the
/// slash, unless its owner had no stake left to take them from.
fn kept_nothing(state: &State, task: &aicpw_ledger::state::Task) -> Result<(), String> {
    let overruled = aicpw_ledger::state::Verdict::Overruled;
    for lease in task.leases.iter().filter(|l| l.verdict == overruled && !l.released.is_zero()) {
        let owner = state.nodes.get(&lease.node).map(|n| n.owner);
        let account = owner.and_then(|o| state.accounts.get(&o));
        let held = account.map_or(0, |a| a.staked.0 + a.unbonding_total().0);
        if held > 0 {
            return Err(format!(
                "node {} kept {} released on task {} after its result was judged wrong",
                lease.node.0, lease.released, task.id.0
            ));
        }
    }
    Ok(())
}

/// A withheld lease whose late reveal window closed at or before `now` must have been slashed by
/// the block at `now` (`begin_block` settles every deadline due).
pub fn check_withheld(state: &State, now: u64) -> Result<(), String> {
    match state.index.withheld.first() {
        Some((deadline, task)) if *deadline <= now => Err(format!(
            "a withheld lease of task {} outlived its late reveal window ({deadline} ms)",
            task.0
        )),
        _ => Ok(()),
    }
}

/// Why the ledger froze a node: `missed-challenges` (capacity challenges unanswered: its next
/// pass thaws it), `offence` (slashed), or `lease-faults` (its score fell with leases expired,
/// failed or withheld: it appeals).
fn freeze_cause(state: &State, node: &NodeId) -> &'static str {
    match state.nodes.get(node) {
        Some(node) if node.capacity.frozen => "missed-challenges",
        Some(node) if node.reputation.offences > 0 => "offence",
        _ => "lease-faults",
    }
}

#[derive(Debug, Default)]
pub struct Watch {
    genesis_supply: u128,
    /// Accounts that follow the protocol: a slash of one is a false positive.
    pub honest: BTreeSet<AccountId>,
    /// How long after submission a task must have ended.
    pub task_end_bound_ms: u64,
    deadlines: BTreeMap<TaskId, u64>,
    pub violations: u64,
    pub messages: Vec<String>,
    pub honest_slashed: u64,
    /// What honest slashes and freezes looked like.
    pub notes: Vec<String>,
    pub slashes: u64,
    pub freezes: u64,
    /// Honest nodes frozen (a freeze is no slash, but it stops their work until an appeal).
    pub honest_frozen: u64,
    /// The honest freezes by cause (`freeze_cause`).
    pub honest_frozen_causes: BTreeMap<&'static str, u64>,
    pub appeals: u64,
    pub appeals_approved: u64,
    owners: BTreeMap<NodeId, AccountId>,
    pub requeues: u64,
    /// Leases whose released intervals were clawed back (their results judged wrong).
    pub clawbacks: u64,
    pub submitted: u64,
    pub ended: BTreeMap<TaskState, u64>,
    pub blocks: u64,
}

impl Watch {
    pub fn new(genesis_supply: u128, honest: BTreeSet<AccountId>, task_end_bound_ms: u64) -> Watch {
        Watch { genesis_supply, honest, task_end_bound_ms, ..Watch::default() }
    }

    /// Keeps a message about something that is not an invariant violation but must be seen.
    pub fn note(&mut self, message: String) {
        if self.notes.len() < VIOLATION_MESSAGES_MAX {
            self.notes.push(message);
        }
    }

    pub fn violation(&mut self, message: String) {
        self.violations += 1;
        if self.messages.len() < VIOLATION_MESSAGES_MAX {
            self.messages.push(message);
        }
    }

    pub fn after_block(&mut self, state: &State, outcome: &BlockOutcome, now: u64) {
        self.blocks += 1;
        if let Some(broken) = &outcome.violation {
            self.violation(format!("block {}: {broken}", outcome.height));
        }
        if let Err(broken) = check_state(state, self.genesis_supply) {
            self.violation(format!("block {}: {broken}", outcome.height));
        }
        if let Err(broken) = check_withheld(state, now) {
            self.violation(format!("block {}: {broken}", outcome.height));
        }
        for event in &outcome.events {
            self.event(state, event, now);
        }
        let overdue: Vec<(TaskId, u64)> =
            self.deadlines.iter().filter(|(_, d)| **d < now).map(|(t, d)| (*t, *d)).collect();
        for (task, deadline) in overdue {
            self.deadlines.remove(&task);
            self.violation(format!("task {} had not ended by its deadline {deadline} ms", task.0));
        }
    }

    fn event(&mut self, state: &State, event: &Event, now: u64) {
        match event {
            Event::TaskSubmitted { task, .. } => {
                self.submitted += 1;
                self.deadlines.insert(*task, now + self.task_end_bound_ms);
            }
            Event::TaskEnded { task, state, .. } => {
                self.deadlines.remove(task);
                *self.ended.entry(*state).or_default() += 1;
            }
            Event::TaskRequeued { .. } => self.requeues += 1,
            Event::ClawedBack { .. } => self.clawbacks += 1,
            Event::Penalized { owner: account, .. } => {
                self.slashes += 1;
                if self.honest.contains(account) {
                    self.honest_slashed += 1;
                    let message = format!("honest account {account} slashed: {event:?}");
                    self.note(message);
                }
            }
            Event::NodeFrozen { node, score_permille } => {
                self.freezes += 1;
                let owner = self.owners.get(node);
                if owner.is_some_and(|o| self.honest.contains(o)) {
                    self.honest_frozen += 1;
                    *self.honest_frozen_causes.entry(freeze_cause(state, node)).or_default() += 1;
                    self.note(format!("honest node {} frozen at score {score_permille}", node.0));
                }
            }
            Event::AppealOpened { .. } => self.appeals += 1,
            Event::AppealClosed { approved, .. } => self.appeals_approved += u64::from(*approved),
            Event::NodeRegistered { node, owner } => {
                self.owners.insert(*node, *owner);
            }
            _ => {}
        }
    }

    /// At the end of a run: a task still open never ended, a withheld lease was never judged.
    pub fn finish(&mut self, state: &State) {
        let open: Vec<TaskId> = self.deadlines.keys().copied().collect();
        for task in open {
            self.violation(format!("task {} never ended", task.0));
        }
        self.deadlines.clear();
        let unjudged: Vec<TaskId> = state
            .tasks
            .values()
            .filter(|t| t.leases.iter().any(|l| l.is_withheld_pending()))
            .map(|t| t.id)
            .collect();
        for task in unjudged {
            self.violation(format!("a withheld lease of task {} was never judged", task.0));
        }
    }

    pub fn ended(&self, state: TaskState) -> u64 {
        self.ended.get(&state).copied().unwrap_or(0)
    }
}
