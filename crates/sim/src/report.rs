//! What a run found, and the summary over many seeds that `aicpw sim --json` prints.

use crate::detect::Caught;
use crate::world::World;
use aicpw_types::TaskState;
use serde::Serialize;

/// Whether a scenario could run against this ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The scenario ran.
    Ok,
    /// The ledger lacks a mechanism the scenario needs: nothing was measured.
    MechanismMissing,
}

/// The design's prediction of how soon a cheater is caught.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    /// The cheater must be caught within this many attempts (of `unit`)...
    pub attempts: u64,
    /// ...counted in this unit (tasks committed, challenges answered, disputes opened).
    pub unit: &'static str,
    /// Where the number comes from.
    pub rule: String,
}

/// One seeded run of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: &'static str,
    pub seed: u64,
    pub status: Status,
    /// What the ledger lacks, when `status` is `mechanism-missing`.
    pub missing: Vec<&'static str>,
    pub bound: Option<Bound>,
    pub caught: Option<Caught>,
    pub cheater_attempts: u64,
    pub honest_slashed: u64,
    pub violations: u64,
    pub violation_messages: Vec<String>,
    /// Honest nodes the ledger froze (no slash; no new work until an appeal passes).
    pub honest_frozen: u64,
    /// What each slash or freeze of an honest party was.
    pub honest_slash_messages: Vec<String>,
    pub tasks_submitted: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub tasks_cancelled: u64,
    pub requeues: u64,
    /// Leases whose released intervals were clawed back with their slash.
    pub clawbacks: u64,
    pub slashes: u64,
    pub freezes: u64,
    pub appeals: u64,
    pub appeals_approved: u64,
    pub crashes: u64,
    pub blocks: u64,
    pub txs_included: u64,
    pub txs_rejected: u64,
    pub messages_lost: u64,
    pub sim_time_ms: u64,
}

impl RunReport {
    pub fn missing(scenario: &'static str, seed: u64, missing: Vec<&'static str>) -> RunReport {
        RunReport {
            scenario,
            seed,
            status: Status::MechanismMissing,
            missing,
            bound: None,
            caught: None,
            cheater_attempts: 0,
            honest_slashed: 0,
            violations: 0,
            violation_messages: Vec::new(),
            honest_frozen: 0,
            honest_slash_messages: Vec::new(),
            tasks_submitted: 0,
            tasks_completed: 0,
            tasks_failed: 0,
            tasks_cancelled: 0,
            requeues: 0,
            clawbacks: 0,
            slashes: 0,
            freezes: 0,
            appeals: 0,
            appeals_approved: 0,
            crashes: 0,
            blocks: 0,
            txs_included: 0,
            txs_rejected: 0,
            messages_lost: 0,
            sim_time_ms: 0,
        }
    }

    /// The report of a finished world.
    pub fn of(scenario: &'static str, seed: u64, world: &World, bound: Option<Bound>) -> RunReport {
        let watch = &world.watch;
        let detector = world.detector.as_ref();
        RunReport {
            status: Status::Ok,
            missing: Vec::new(),
            bound,
            caught: detector.and_then(|d| d.caught.clone()),
            cheater_attempts: detector.map(|d| d.attempts).unwrap_or(0),
            honest_slashed: watch.honest_slashed,
            violations: watch.violations,
            violation_messages: watch.messages.clone(),
            honest_frozen: watch.honest_frozen,
            honest_slash_messages: watch.notes.clone(),
            tasks_submitted: watch.submitted,
            tasks_completed: watch.ended(TaskState::Completed),
            tasks_failed: watch.ended(TaskState::Failed),
            tasks_cancelled: watch.ended(TaskState::Cancelled),
            requeues: watch.requeues,
            clawbacks: watch.clawbacks,
            slashes: watch.slashes,
            freezes: watch.freezes,
            appeals: watch.appeals,
            appeals_approved: watch.appeals_approved,
            crashes: world.crashes,
            blocks: watch.blocks,
            txs_included: world.chain.txs_included,
            txs_rejected: world.chain.txs_rejected,
            messages_lost: world.net.lost,
            sim_time_ms: world.now,
            ..RunReport::missing(scenario, seed, Vec::new())
        }
    }

    /// Caught, within the bound the design predicts.
    pub fn caught_in_bound(&self) -> bool {
        match (&self.caught, &self.bound) {
            (Some(caught), Some(bound)) => caught.attempts <= bound.attempts,
            _ => false,
        }
    }
}

/// The summary of one scenario over many seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub status: Status,
    pub runs: u64,
    /// Share of runs in which the cheater was caught within the bound; `null` for a scenario
    /// without a cheater or one that could not run.
    pub detection_rate: Option<f64>,
    /// Mean attempts until caught (see `Caught::attempts`), over the runs that caught it.
    pub tasks_to_detection_mean: Option<f64>,
    /// Runs in which the cheater attempted at least once: the detection rate's denominator
    /// (a cheater that never got the chance to cheat was not missed).
    pub runs_with_attempts: u64,
    pub tasks_to_detection_max: Option<u64>,
    pub bound: Option<Bound>,
    pub honest_slashed: u64,
    pub honest_frozen: u64,
    pub violations: u64,
    pub missing: Vec<&'static str>,
    /// Seeds with a violation, an honest slash, or a cheater not caught in time (first 16).
    pub failing_seeds: Vec<u64>,
    pub violation_messages: Vec<String>,
    pub tasks_submitted: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub tasks_cancelled: u64,
    pub requeues: u64,
    /// Leases whose released intervals were clawed back with their slash.
    pub clawbacks: u64,
    pub appeals: u64,
    pub appeals_approved: u64,
    pub crashes: u64,
    pub txs_included: u64,
}

impl ScenarioReport {
    pub fn of(name: &'static str, runs: &[RunReport]) -> ScenarioReport {
        let first = runs.first();
        let status = first.map(|r| r.status.clone()).unwrap_or(Status::Ok);
        let ran: Vec<&RunReport> = runs.iter().filter(|r| r.status == Status::Ok).collect();
        let bound = ran.first().and_then(|r| r.bound.clone());
        let has_cheater = bound.is_some();
        let caught: Vec<u64> =
            ran.iter().filter_map(|r| r.caught.as_ref().map(|c| c.attempts)).collect();
        let attempted: Vec<&&RunReport> = ran.iter().filter(|r| r.cheater_attempts > 0).collect();
        let in_bound = attempted.iter().filter(|r| r.caught_in_bound()).count();
        let failing = |r: &&&RunReport| {
            let missed = has_cheater && r.cheater_attempts > 0 && !r.caught_in_bound();
            r.violations > 0 || r.honest_slashed > 0 || missed
        };
        let sum = |f: fn(&RunReport) -> u64| ran.iter().map(|r| f(r)).sum::<u64>();
        ScenarioReport {
            name,
            status,
            runs: ran.len() as u64,
            detection_rate: (has_cheater && !attempted.is_empty())
                .then(|| in_bound as f64 / attempted.len() as f64),
            runs_with_attempts: attempted.len() as u64,
            tasks_to_detection_mean: (has_cheater && !caught.is_empty())
                .then(|| caught.iter().sum::<u64>() as f64 / caught.len() as f64),
            tasks_to_detection_max: caught.iter().max().copied().filter(|_| has_cheater),
            bound,
            honest_slashed: sum(|r| r.honest_slashed),
            honest_frozen: sum(|r| r.honest_frozen),
            violations: sum(|r| r.violations),
            missing: first.map(|r| r.missing.clone()).unwrap_or_default(),
            failing_seeds: ran.iter().filter(failing).map(|r| r.seed).take(16).collect(),
            violation_messages: ran
                .iter()
                .flat_map(|r| {
                    r.violation_messages.iter().map(move |m| format!("seed {}: {m}", r.seed))
                })
                .take(16)
                .collect(),
            tasks_submitted: sum(|r| r.tasks_submitted),
            tasks_completed: sum(|r| r.tasks_completed),
            tasks_failed: sum(|r| r.tasks_failed),
            tasks_cancelled: sum(|r| r.tasks_cancelled),
            requeues: sum(|r| r.requeues),
            clawbacks: sum(|r| r.clawbacks),
            appeals: sum(|r| r.appeals),
            appeals_approved: sum(|r| r.appeals_approved),
            crashes: sum(|r| r.crashes),
            txs_included: sum(|r| r.txs_included),
        }
    }
}
