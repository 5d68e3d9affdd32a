//! What a run found, and the summary over many seeds that `aicpw sim --json` prints.

use crate::detect::Caught;
use crate::tally::Figures;
use crate::world::World;
use aicpw_types::TaskState;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub honest_frozen_causes: BTreeMap<&'static str, u64>,
    /// Every cheating attempt and what became of it, and what honest providers lost.
    #[serde(flatten)]
    pub figures: Figures,
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
            honest_frozen_causes: BTreeMap::new(),
            figures: Figures::default(),
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
            honest_frozen_causes: watch.honest_frozen_causes.clone(),
            figures: Figures::of(world),
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

/// The summary of one scenario over many seeds. Detection is counted per cheating attempt
/// (`tally`), summed over seeds; `detection_rate` is the design check per run.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub status: Status,
    pub runs: u64,
    /// What a cheating attempt is in this scenario, and why some cannot be caught.
    pub attempt: &'static str,
    pub attempts: u64,
    pub caught_attempts: u64,
    /// `caught_attempts / attempts`; `null` without attempts.
    pub detection_per_attempt: Option<f64>,
    /// Attempts whose result shows the cheat, and the share of them caught.
    pub observable_attempts: u64,
    pub detection_per_observable_attempt: Option<f64>,
    /// Attempts not caught on which the cheater kept pay (or won its dispute).
    pub uncaught_paid_attempts: u64,
    /// Attempts (in the unit of `bound`) until the first sanction, over the runs that caught
    /// the cheater: nearest-rank percentiles and the largest.
    pub tasks_to_detection_p50: Option<u64>,
    pub tasks_to_detection_p99: Option<u64>,
    pub tasks_to_detection_max: Option<u64>,
    /// Σ over seeds of what the cheaters kept for work they did not do (their compute valued at
    /// the pay, as if an honest margin were nil) and won in disputes, less their slashes, in
    /// base units; `null` without a cheater.
    pub cheater_net_profit: Option<i128>,
    pub cheater_slashed: u128,
    /// Challenger shares of the cheaters' slashes that went back to cheating accounts.
    pub cheater_shares_back: u128,
    /// What freezes cost the cheaters in work (`tally::Figures::cheater_frozen_loss`).
    pub cheater_frozen_loss: u128,
    /// Share of runs in which the cheater was caught within the bound, of those where it
    /// attempted; `null` for a scenario without a cheater or one that could not run.
    pub detection_rate: Option<f64>,
    /// Runs in which the cheater attempted at least once (a cheater that never got the chance
    /// to cheat was not missed).
    pub runs_with_attempts: u64,
    pub bound: Option<Bound>,
    pub honest_slashed: u64,
    pub honest_frozen: u64,
    pub honest_frozen_causes: BTreeMap<&'static str, u64>,
    /// Pay honest providers were owed for right results and did not keep, in base units.
    pub honest_pay_lost: u128,
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

/// The nearest-rank percentile `permille` of `values`; `None` if there are none.
pub fn percentile(values: &[u64], permille: u64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() as u64 * permille).div_ceil(1_000).max(1);
    sorted.get(rank as usize - 1).copied()
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl ScenarioReport {
    pub fn of(name: &'static str, attempt: &'static str, runs: &[RunReport]) -> ScenarioReport {
        let first = runs.first();
        let status = first.map(|r| r.status.clone()).unwrap_or(Status::Ok);
        let ran: Vec<&RunReport> = runs.iter().filter(|r| r.status == Status::Ok).collect();
        let bound = ran.first().and_then(|r| r.bound.clone());
        let has_cheater = bound.is_some();
        let caught: Vec<u64> = ran
            .iter()
            .filter_map(|r| r.caught.as_ref().map(|c| c.attempts))
            .filter(|_| has_cheater)
            .collect();
        let attempted: Vec<&&RunReport> = ran.iter().filter(|r| r.cheater_attempts > 0).collect();
        let in_bound = attempted.iter().filter(|r| r.caught_in_bound()).count();
        let failing = |r: &&&RunReport| {
            let missed = has_cheater && r.cheater_attempts > 0 && !r.caught_in_bound();
            r.violations > 0 || r.honest_slashed > 0 || missed
        };
        let sum = |f: fn(&RunReport) -> u64| ran.iter().map(|r| f(r)).sum::<u64>();
        let sum_wide = |f: fn(&RunReport) -> u128| {
            ran.iter().map(|r| f(r)).fold(0u128, |a, b| a.saturating_add(b))
        };
        let mut honest_frozen_causes = BTreeMap::new();
        for (cause, count) in ran.iter().flat_map(|r| &r.honest_frozen_causes) {
            *honest_frozen_causes.entry(*cause).or_default() += count;
        }
        let attempts = sum(|r| r.figures.attempts);
        let caught_attempts = sum(|r| r.figures.caught_attempts);
        let observable = sum(|r| r.figures.observable_attempts);
        let net: i128 = ran.iter().map(|r| r.figures.cheater_net_profit).sum();
        ScenarioReport {
            name,
            status,
            runs: ran.len() as u64,
            attempt,
            attempts,
            caught_attempts,
            detection_per_attempt: share(caught_attempts, attempts),
            observable_attempts: observable,
            detection_per_observable_attempt: share(
                sum(|r| r.figures.caught_observable_attempts),
                observable,
            ),
            uncaught_paid_attempts: sum(|r| r.figures.uncaught_paid_attempts),
            tasks_to_detection_p50: percentile(&caught, 500),
            tasks_to_detection_p99: percentile(&caught, 990),
            tasks_to_detection_max: caught.iter().max().copied(),
            cheater_net_profit: has_cheater.then_some(net),
            cheater_slashed: sum_wide(|r| r.figures.cheater_slashed),
            cheater_shares_back: sum_wide(|r| r.figures.cheater_shares_back),
            cheater_frozen_loss: sum_wide(|r| r.figures.cheater_frozen_loss),
            detection_rate: (has_cheater && !attempted.is_empty())
                .then(|| in_bound as f64 / attempted.len() as f64),
            runs_with_attempts: attempted.len() as u64,
            bound,
            honest_slashed: sum(|r| r.honest_slashed),
            honest_frozen: sum(|r| r.honest_frozen),
            honest_frozen_causes,
            honest_pay_lost: sum_wide(|r| r.figures.honest_pay_lost),
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

/// What `aicpw sim --json` prints: every scenario's summary, and the figures over all of them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub seeds: u64,
    /// The least `detection_per_attempt` (and per observable attempt) of any scenario.
    pub min_detection_per_attempt: Option<f64>,
    pub min_detection_per_observable_attempt: Option<f64>,
    /// The largest `cheater_net_profit` of any scenario with a cheater.
    pub max_cheater_net_profit: Option<i128>,
    pub honest_frozen_total: u64,
    pub honest_frozen_causes: BTreeMap<&'static str, u64>,
    pub honest_slashed_total: u64,
    pub honest_pay_lost_total: u128,
    pub violations_total: u64,
    pub scenarios: Vec<ScenarioReport>,
}

fn least(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.reduce(f64::min)
}

impl Summary {
    pub fn of(seeds: u64, scenarios: Vec<ScenarioReport>) -> Summary {
        let mut honest_frozen_causes = BTreeMap::new();
        for (cause, count) in scenarios.iter().flat_map(|s| &s.honest_frozen_causes) {
            *honest_frozen_causes.entry(*cause).or_default() += count;
        }
        Summary {
            seeds,
            min_detection_per_attempt: least(
                scenarios.iter().filter_map(|s| s.detection_per_attempt),
            ),
            min_detection_per_observable_attempt: least(
                scenarios.iter().filter_map(|s| s.detection_per_observable_attempt),
            ),
            max_cheater_net_profit: scenarios.iter().filter_map(|s| s.cheater_net_profit).max(),
            honest_frozen_total: scenarios.iter().map(|s| s.honest_frozen).sum(),
            honest_frozen_causes,
            honest_slashed_total: scenarios.iter().map(|s| s.honest_slashed).sum(),
            honest_pay_lost_total: scenarios
                .iter()
                .map(|s| s.honest_pay_lost)
                .fold(0u128, |a, b| a.saturating_add(b)),
            violations_total: scenarios.iter().map(|s| s.violations).sum(),
            scenarios,
        }
    }
}
