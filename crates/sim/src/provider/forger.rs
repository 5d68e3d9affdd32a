//! Forgers that choose where to forge from what a real one knows: the public ledger (its params,
//! its own node's clean streak and withheld leases, each task's terms, the public events of past
//! tasks) and the protocol's rules. They forge a worker's result where their expected profit
//! is positive, or, for the whitewasher, on a fixed share once an audit is no longer certain.

use super::{Behaviour, Provider};
use crate::party::Ctx;
use aicpw_ledger::state::{Lease, Task};
use aicpw_ledger::{market, verdict, Event, State};
use aicpw_types::{AccountId, TaskId, TaskTerms, Verification};
use aicpw_verify::{KnownAnswerPolicy, PPM};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Margin a forger that holds its lease for the pay leaves before the lease's end: time for its
/// commitment to land, and for one resend of it.
pub const COMMIT_MARGIN_MS: u64 = 8_000;
/// Pseudo-tasks of a requester's assumed known-answer rate (the CLI's default) that a forger
/// weighs against that requester's history: a requester with many tasks and no reveal is
/// taken for one that does not inject.
pub const PRIOR_TASKS: u64 = 20;

/// Where a forger departs from the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Forger {
    /// Works honestly while its clean streak grows, and forges an audited task's result wherever
    /// `E = pay·(1 − p) − (slash + pay)·p > 0`, from the public params (p: its audit rate by
    /// streak, and the known-answer rate the requester's public history shows). It holds a
    /// forged lease as long as the rules pay for, up to the end of the time limit's grace.
    Patient,
    /// As patient, on `spot` tasks too (audited at the floor rate, whatever its streak).
    Selective,
    /// Forges a share of its worker results once its streak makes an audit uncertain; after its
    /// owner is slashed, the next account of the chain (`after` is the party it succeeds)
    /// registers a fresh node with a fresh stake and does the same.
    Whitewasher { after: Option<usize>, skip_ppm: u32 },
    /// Forges, as patient, only on tasks it classifies as real rather than known-answer, from
    /// everything that could tell them apart: their terms, and how soon after the requester's
    /// previous submission they came.
    Spotter,
}

/// The visible features of a task a spotter compares: its terms but name and inputs, and
/// whether it came within a minute of the requester's previous submission.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Features {
    time_limit_secs: u64,
    budget: u128,
    max_price: u128,
    cpu_cores: u32,
    memory_mb: u64,
    verification: String,
    follows_within_minute: bool,
}

/// What a forger learned from the public events.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Per requester: tasks ended, and known answers revealed on them.
    ended: BTreeMap<AccountId, u64>,
    revealed: BTreeMap<AccountId, u64>,
    /// Per requester: the time of its last submission.
    last_submitted_ms: BTreeMap<AccountId, u64>,
    /// Features of every task submitted, as seen when it was submitted.
    features: BTreeMap<TaskId, Features>,
    /// Per feature vector: tasks ended, and known answers revealed on them.
    by_features: BTreeMap<Features, (u64, u64)>,
    /// Each task classified when it was submitted, from the history before it: known-answer
    /// (by its features) or not. The spotter forges only on the latter.
    pub classified: BTreeMap<TaskId, bool>,
    /// Tasks whose result was verified, and those of them whose known answer was revealed.
    pub verified: BTreeSet<TaskId>,
    pub known: BTreeSet<TaskId>,
}

fn features(terms: &TaskTerms, follows_within_minute: bool) -> Features {
    Features {
        time_limit_secs: terms.time_limit_secs,
        budget: terms.budget.0,
        max_price: terms.max_price_per_hour.0,
        cpu_cores: terms.resources.cpu_cores,
        memory_mb: terms.resources.memory_mb,
        verification: format!("{:?}", terms.verification),
        follows_within_minute,
    }
}

impl History {
    /// Reads one block's events, as anyone following the ledger can.
    pub fn observe(&mut self, state: &State, events: &[Event], now: u64) {
        for event in events {
            match event {
                Event::TaskSubmitted { task, .. } => {
                    let Some(record) = state.tasks.get(task) else { continue };
                    let last = self.last_submitted_ms.insert(record.requester, now);
                    let soon = last.is_some_and(|at| now.saturating_sub(at) < 60_000);
                    self.features.insert(*task, features(&record.terms, soon));
                    self.classified.insert(*task, self.looks_known(*task));
                }
                Event::TaskEnded { task, .. } => {
                    let Some(record) = state.tasks.get(task) else { continue };
                    *self.ended.entry(record.requester).or_default() += 1;
                    if let Some(f) = self.features.get(task) {
                        self.by_features.entry(f.clone()).or_default().0 += 1;
                    }
                }
                Event::ResultVerified { task, .. } => {
                    self.verified.insert(*task);
                }
                Event::KnownAnswerRevealed { task, .. } => {
                    self.known.insert(*task);
                    let Some(record) = state.tasks.get(task) else { continue };
                    *self.revealed.entry(record.requester).or_default() += 1;
                    if let Some(f) = self.features.get(task) {
                        self.by_features.entry(f.clone()).or_default().1 += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// The known-answer rate a requester's history shows, weighed against the default rate.
    fn known_answer_ppm(&self, requester: &AccountId) -> u128 {
        let prior = u128::from(KnownAnswerPolicy::default().injection_rate_ppm);
        let ended = u128::from(self.ended.get(requester).copied().unwrap_or(0));
        let revealed = u128::from(self.revealed.get(requester).copied().unwrap_or(0));
        let weight = u128::from(PRIOR_TASKS);
        (revealed * u128::from(PPM) + prior * weight) / (ended + weight)
    }

    /// Whether the task looks like a known-answer task: tasks with its features carried known
    /// answers at more than twice the rate of all tasks (each rate smoothed by one pseudo-task
    /// of each kind).
    fn looks_known(&self, task: TaskId) -> bool {
        let Some(f) = self.features.get(&task) else { return false };
        let (ended, revealed) = self.by_features.get(f).copied().unwrap_or((0, 0));
        let (all_ended, all_revealed) =
            self.by_features.values().fold((0, 0), |(e, r), (de, dr)| (e + de, r + dr));
        (revealed + 1) * (all_ended + 2) > 2 * (all_revealed + 1) * (ended + 2)
    }
}

/// The expected profit of forging, in base units times [`PPM`]: `pay·(1 − p) − (slash + pay)·p`
/// for a check probability `p_ppm`.
pub fn expected_profit(pay: u128, slash: u128, p_ppm: u128) -> i128 {
    let p = p_ppm.min(u128::from(PPM));
    let gain = pay.saturating_mul(u128::from(PPM) - p);
    let loss = slash.saturating_add(pay).saturating_mul(p);
    i128::try_from(gain).unwrap_or(i128::MAX) - i128::try_from(loss).unwrap_or(i128::MAX)
}

impl Provider {
    /// Whether this lease's result is forged, and if so how long the forger holds the lease.
    pub(super) fn forge_hold_ms(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: &Task,
        lease: &Lease,
        run_ms: u64,
    ) -> Option<u64> {
        let Behaviour::Forger(forger) = self.spec.behaviour else { return None };
        let state = ctx.state;
        let node = state.nodes.get(&lease.node)?;
        if matches!(task.terms.verification, Verification::Replicas(_)) {
            return None;
        }
        let streak = node.reputation.clean_streak;
        let audit_ppm = verdict::audit_rate_ppm(state, &task.terms, lease.node, streak);
        if let Forger::Whitewasher { skip_ppm, .. } = forger {
            let forges = audit_ppm < PPM && ctx.rng.chance(skip_ppm);
            return forges.then_some(run_ms / 10);
        }
        // It holds the lease as long as the rules pay for: to the end of the grace after the
        // time limit, less the margin its commitment needs.
        let limit_ms = task.terms.time_limit_secs.saturating_mul(1_000);
        let hold_ms =
            (limit_ms + state.params.time_limit_grace_ms).saturating_sub(COMMIT_MARGIN_MS);
        let pay = market::cost(task, lease, lease.started_ms + hold_ms).0;
        let run = market::run_price(lease.price_per_hour, &task.terms).0;
        let slash = state.params.verification.economics.slash(run).ok()?;
        let audit_ppm = u128::from(audit_ppm);
        if forger == Forger::Patient && task.terms.verification != Verification::Audit {
            return None;
        }
        let known_ppm = self.history.known_answer_ppm(&task.requester);
        if forger == Forger::Spotter && self.history.classified.get(&task.id) != Some(&false) {
            return None;
        }
        // Either check catches it: p = 1 − (1 − audit)·(1 − known answer).
        let ppm = u128::from(PPM);
        let missed = (ppm - audit_ppm.min(ppm)) * (ppm - known_ppm.min(ppm)) / ppm;
        let p = if forger == Forger::Spotter { audit_ppm } else { ppm - missed };
        (expected_profit(pay, slash, p) > 0).then_some(hold_ms)
    }

    /// A whitewasher registers only once the account it succeeds has been slashed.
    pub(super) fn may_register(&self, ctx: &Ctx<'_>) -> bool {
        let Behaviour::Forger(Forger::Whitewasher { after: Some(previous), .. }) =
            self.spec.behaviour
        else {
            return true;
        };
        let account = crate::setup::account(previous);
        ctx.state.accounts.get(&account).is_some_and(|a| a.offences > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forging_pays_at_the_floor_only_for_pay_above_the_slash_basis_over_twenty_one() {
        let run = 1_000_000u128;
        let slash = 20 * run;
        let floor = 50_000;
        // A 90 s task held to the end of its 30 s grace, less the commit margin: 112 s of pay.
        assert!(expected_profit(run * 112 / 90, slash, floor) > 0);
        // Paid at most its price for the time limit: a loss at the floor and above.
        assert!(expected_profit(run, slash, floor) < 0);
        assert!(expected_profit(run, slash, u128::from(PPM)) < 0);
        // An unverified task checked only by known answers at the CLI's default rate pays.
        assert!(expected_profit(run, slash, 15_000) > 0);
    }
}
