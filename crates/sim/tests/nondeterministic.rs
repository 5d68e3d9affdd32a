//! Honest providers whose outputs differ by machine: a task with floating-point reductions or
//! GPU kernels gives one output per class of machine (`work::OUTPUT_CLASSES`), the same within
//! a class. Such a task declares itself non-deterministic (`TaskTerms::nondeterministic`): its
//! results are compared by the final loss each run writes to its summary, within the declared
//! tolerance (`work::summary`: honest classes land within it), two requesters' tasks in
//! `tolerance` mode and one's in `committee` mode. Before tasks could declare it, the ledger compared exact
//! output hashes, and over these 20 seeds slashed honest providers 96 times, froze them 66 times
//! and failed 348 of 841 tasks.

use aicpw_ledger::state::Role;
use aicpw_sim::detect::{Attempts, CaughtWhen};
use aicpw_sim::provider::{Behaviour, ProviderSpec};
use aicpw_sim::rng::SimRng;
use aicpw_sim::scenarios::{base_setup, run};
use aicpw_sim::setup::{hardware_cpu, RequesterSpec, Setup, UNITS_CPU};
use aicpw_sim::RunReport;
use aicpw_types::task::CompareMode;
use aicpw_types::{Amount, Verification};

/// Seeds the test runs: enough to show what exact comparison cost honest providers.
const SEEDS: u64 = 20;

/// Honest requesters whose every task is non-deterministic, one per mode in `modes`.
fn nondeterministic_requesters(
    tasks: usize,
    policies: Vec<Verification>,
    modes: &[CompareMode],
) -> Vec<RequesterSpec> {
    let honest = RequesterSpec::honest(tasks, policies);
    let requester =
        |mode: &CompareMode| RequesterSpec { nondeterministic: Some(*mode), ..honest.clone() };
    modes.iter().map(requester).collect()
}

/// Six honest providers (two per output class) and honest requesters whose every task is
/// non-deterministic, under every verification policy, on the default network.
fn nondeterministic_network(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "test nondeterministic network");
    let mut setup = base_setup(seed, &mut rng, 6);
    let policies = vec![Verification::Spot, Verification::Audit, Verification::Replicas(3)];
    let modes = [CompareMode::Tolerance, CompareMode::Tolerance, CompareMode::Committee];
    setup.requesters = nondeterministic_requesters(14, policies, &modes);
    run("honest-nondeterministic", &setup, None, None)
}

#[test]
fn honest_providers_whose_outputs_differ_by_machine_are_never_slashed() {
    let reports: Vec<RunReport> = (0..SEEDS).map(nondeterministic_network).collect();
    let sum = |f: fn(&RunReport) -> u64| reports.iter().map(f).sum::<u64>();
    let lost: u128 = reports.iter().map(|r| r.figures.honest_pay_lost).sum();
    let (failed, submitted) = (sum(|r| r.tasks_failed), sum(|r| r.tasks_submitted));
    eprintln!(
        "over {SEEDS} seeds: {} honest slashes, {} honest freezes, pay lost {lost}, \
         {failed} of {submitted} tasks failed",
        sum(|r| r.honest_slashed),
        sum(|r| r.honest_frozen),
    );
    assert_eq!(sum(|r| r.violations), 0);
    // Different machines' outputs have different equality tags, so every replicated round of
    // these tasks draws its committee before the reveals; the committee is paid from what is
    // left of a budget that covers the k replicas' runs, so members near the maximum price may
    // get less than their time (`pay lost`). Nobody honest is slashed or frozen for it.
    assert_eq!((sum(|r| r.honest_slashed), sum(|r| r.honest_frozen)), (0, 0));
    // Only the tasks' own faults (3% exit with an error on every machine) fail them now, not
    // splits between machine classes.
    assert!(failed * 10 < submitted, "{failed} of {submitted} tasks failed");
}

/// A lazy worker that forges every result it is given as worker, without running it (so its
/// summary is a made-up loss outside the tolerance), among five honest providers, on audited
/// non-deterministic tasks in `mode`.
fn forger_on_nondeterministic_tasks(seed: u64, mode: CompareMode) -> RunReport {
    let mut rng = SimRng::new(seed, "test nondeterministic forger");
    let mut setup = base_setup(seed, &mut rng, 5);
    let cheater = setup.providers.len();
    setup.providers.push(ProviderSpec {
        hardware: hardware_cpu(8),
        price_per_hour: Amount(800_000),
        speed_permille: 1_000,
        units: UNITS_CPU,
        stake: Amount::tokens(5_000),
        behaviour: Behaviour::Lazy { skip_ppm: 1_000_000, withholds: false, stalls: false },
    });
    setup.requesters = nondeterministic_requesters(10, vec![Verification::Audit], &[mode; 3]);
    let detector =
        Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Worker));
    run("nondeterministic-forger", &setup, Some(detector), None)
}

#[test]
fn a_forger_outside_the_tolerance_is_still_caught_on_a_nondeterministic_task() {
    for seed in 0..5 {
        let report = forger_on_nondeterministic_tasks(seed, CompareMode::Tolerance);
        let figures = &report.figures;
        assert_eq!((report.violations, report.honest_slashed), (0, 0), "seed {seed}");
        assert!(figures.attempts > 0, "seed {seed}: the forger forged");
        // Its first forgery is audited (clean streak 0), outvoted by the referee and slashed.
        assert!(report.caught.is_some(), "seed {seed}: {figures:?}");
        assert!(figures.cheater_slashed > 0 && figures.cheater_net_profit < 0, "{figures:?}");
        assert_eq!(figures.uncaught_paid_attempts, 0, "seed {seed}: no forgery was paid");
    }
}

#[test]
fn in_committee_mode_a_forger_is_never_paid_though_never_slashed() {
    for seed in 0..3 {
        let report = forger_on_nondeterministic_tasks(seed, CompareMode::Committee);
        let figures = &report.figures;
        assert_eq!((report.violations, report.honest_slashed), (0, 0), "seed {seed}");
        assert!(figures.attempts > 0, "seed {seed}: the forger forged");
        // Every forgery is audited (each outvoted one ends its clean streak) and outvoted.
        assert_eq!(figures.uncaught_paid_attempts, 0, "seed {seed}: {figures:?}");
        assert_eq!(figures.cheater_slashed, 0, "committee mode slashes nobody");
    }
}

#[test]
fn honest_nodes_under_stress_end_every_task_and_nobody_is_slashed() {
    let scenario = aicpw_sim::scenario("honest-stress").expect("a known scenario");
    for report in (0..3).map(scenario.run) {
        let seed = report.seed;
        assert_eq!(report.violations, 0, "seed {seed}: {:?}", report.violation_messages);
        let ended = report.tasks_completed + report.tasks_failed + report.tasks_cancelled;
        assert_eq!(ended, report.tasks_submitted, "seed {seed}: every task ends");
        assert_eq!(report.honest_slashed, 0, "seed {seed}: {:?}", report.honest_slash_messages);
        // A freeze of an honest node here is only ever for the leases or capacity challenges it
        // missed while crashed or cut off, never for an offence (an honest difference).
        let causes: Vec<&str> = report.honest_frozen_causes.keys().copied().collect();
        let outage = |c: &&str| matches!(*c, "missed-challenges" | "lease-faults");
        assert!(causes.iter().all(outage), "seed {seed}: {causes:?}");
        assert!(report.figures.attempts == 0 && report.caught.is_none());
    }
}
