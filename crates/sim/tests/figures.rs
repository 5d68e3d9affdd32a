//! The per-attempt figures (`aicpw sim --json`): every cheating attempt is counted, caught or
//! not, and what it earned; a cheater whose forgeries no check happened to meet comes out ahead,
//! so the figures can show a protocol losing.

use aicpw_sim::provider::{Behaviour, ProviderSpec};
use aicpw_sim::report::percentile;
use aicpw_sim::rng::SimRng;
use aicpw_sim::scenarios::{base_setup, run};
use aicpw_sim::setup::{hardware_cpu, RequesterSpec, UNITS_CPU};
use aicpw_sim::{run_scenario, scenario, RunReport, Summary};
use aicpw_types::{Amount, Verification};

fn runs(name: &str, seeds: std::ops::Range<u64>) -> Vec<RunReport> {
    let scenario = scenario(name).expect("a known scenario");
    seeds.map(scenario.run).collect()
}

/// A worker that forges half its results among honest providers, on a short run of `spot` tasks
/// (one result in twenty audited) that carry no known answers: in this seed no audit is drawn on
/// any of its forgeries, so nothing looks at them. (Before `spot`, `none` tasks were never
/// audited at all.)
fn unchecked_forger(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "test unchecked forger");
    let mut setup = base_setup(seed, &mut rng, 3);
    setup.providers.push(ProviderSpec {
        hardware: hardware_cpu(8),
        price_per_hour: Amount(800_000),
        speed_permille: 1_000,
        units: UNITS_CPU,
        stake: Amount::tokens(5_000),
        behaviour: Behaviour::Lazy { skip_ppm: 500_000, withholds: false, stalls: false },
    });
    setup.requesters = (0..2)
        .map(|_| RequesterSpec {
            known_answer_ppm: 0,
            cancel_ppm: 0,
            ..RequesterSpec::honest(12, vec![Verification::Spot])
        })
        .collect();
    run("unchecked-forger", &setup, None, None)
}

#[test]
fn a_forger_no_audit_meets_escapes_every_attempt_and_profits() {
    let report = unchecked_forger(3);
    let figures = &report.figures;
    assert_eq!(report.violations, 0, "{:?}", report.violation_messages);
    assert!(figures.attempts > 0, "the cheap forger got work: {figures:?}");
    assert_eq!(figures.caught_attempts, 0, "no audit met its results in this seed");
    assert_eq!(figures.observable_attempts, figures.attempts, "forgeries show in the result");
    assert_eq!(figures.uncaught_paid_attempts, figures.attempts, "each forgery was paid");
    assert_eq!(figures.cheater_slashed, 0);
    assert!(figures.cheater_net_profit > 0, "it kept the pay for work it skipped: {figures:?}");
}

#[test]
fn an_audited_forger_is_caught_on_every_forgery_and_loses_money() {
    for report in runs("lazy-provider", 0..3) {
        let figures = &report.figures;
        assert!(figures.caught_attempts <= figures.attempts);
        if figures.attempts > 0 {
            assert!(report.caught.is_some(), "seed {}: {figures:?}", report.seed);
            assert!(figures.cheater_slashed > 0, "seed {}: {figures:?}", report.seed);
            assert!(figures.cheater_net_profit < 0, "seed {}: {figures:?}", report.seed);
        }
    }
}

#[test]
fn a_lazy_auditors_copies_of_a_right_output_are_attempts_nothing_shows() {
    let reports = runs("lazy-auditor", 0..4);
    let attempts: u64 = reports.iter().map(|r| r.figures.attempts).sum();
    let observable: u64 = reports.iter().map(|r| r.figures.observable_attempts).sum();
    assert!(attempts > observable, "some audits were copies of its partner's output");
    for report in &reports {
        let figures = &report.figures;
        // Only guesses (observable) are ever caught; every guess is.
        assert_eq!(figures.caught_attempts, figures.caught_observable_attempts);
        assert_eq!(figures.caught_observable_attempts, figures.observable_attempts);
    }
}

#[test]
fn every_dispute_of_a_right_result_is_an_attempt_that_costs_its_bond() {
    for report in runs("dishonest-disputer", 0..2) {
        let figures = &report.figures;
        assert!(figures.attempts > 0, "seed {}", report.seed);
        assert_eq!(figures.caught_attempts, figures.attempts, "seed {}", report.seed);
        assert!(figures.cheater_net_profit < 0, "seed {}: {figures:?}", report.seed);
    }
}

#[test]
fn an_honest_network_has_no_attempts_and_short_outages_cost_honest_providers_nothing() {
    for report in runs("honest", 0..2) {
        assert_eq!(report.figures.attempts, 0);
        assert_eq!(report.figures.cheater_net_profit, 0);
        assert_eq!(report.figures.honest_pay_lost, 0, "seed {}", report.seed);
    }
}

#[test]
fn the_scenario_summary_counts_attempts_not_seeds() {
    let summary = run_scenario("lazy-provider-withholding", 2, 2).expect("known");
    let runs = runs("lazy-provider-withholding", 0..2);
    let attempts: u64 = runs.iter().map(|r| r.figures.attempts).sum();
    let caught: u64 = runs.iter().map(|r| r.figures.caught_attempts).sum();
    assert_eq!((summary.attempts, summary.caught_attempts), (attempts, caught));
    assert!(summary.attempts > summary.runs_with_attempts, "several attempts per seed");
    assert_eq!(summary.detection_per_attempt, Some(caught as f64 / attempts as f64));
    let net: i128 = runs.iter().map(|r| r.figures.cheater_net_profit).sum();
    assert_eq!(summary.cheater_net_profit, Some(net));
}

#[test]
fn percentiles_are_nearest_rank() {
    let values: Vec<u64> = (1..=100).rev().collect();
    assert_eq!(percentile(&values, 500), Some(50));
    assert_eq!(percentile(&values, 990), Some(99));
    assert_eq!(percentile(&[7], 990), Some(7));
    assert_eq!(percentile(&[], 500), None);
}

#[test]
fn the_top_level_figures_are_the_worst_of_the_scenarios() {
    let names = ["honest", "copying-replica", "dishonest-disputer"];
    let scenarios: Vec<_> = names.iter().map(|n| run_scenario(n, 1, 1).expect("known")).collect();
    let summary = Summary::of(1, scenarios.clone());
    assert_eq!(scenarios[0].detection_per_attempt, None, "the honest network has no attempts");
    assert!(summary.min_detection_per_attempt.is_some());
    let detections = scenarios.iter().filter_map(|s| s.detection_per_attempt);
    assert_eq!(summary.min_detection_per_attempt, detections.reduce(f64::min));
    let profits = scenarios.iter().filter_map(|s| s.cheater_net_profit);
    assert_eq!(summary.max_cheater_net_profit, profits.max());
    assert_eq!(
        summary.honest_slashed_total,
        scenarios.iter().map(|s| s.honest_slashed).sum::<u64>()
    );
    assert_eq!(summary.violations_total, scenarios.iter().map(|s| s.violations).sum::<u64>());
    assert_eq!(summary.honest_frozen_total, scenarios.iter().map(|s| s.honest_frozen).sum::<u64>());
}
