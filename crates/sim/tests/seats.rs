//! Red team v2 for capacity and judging seats (`scenarios::seats`), a few seeds each: each test
//! runs the attack and asserts the figures the protocol changes brought about.

use aicpw_sim::{scenario, RunReport};

fn runs(name: &str, seeds: std::ops::Range<u64>) -> Vec<RunReport> {
    let scenario = scenario(name).expect("a known scenario");
    seeds.map(scenario.run).collect()
}

fn assert_clean(report: &RunReport) {
    assert_eq!(report.violations, 0, "seed {}: {:?}", report.seed, report.violation_messages);
    let ended = report.tasks_completed + report.tasks_failed + report.tasks_cancelled;
    assert_eq!(ended, report.tasks_submitted, "seed {}: every task ends", report.seed);
}

fn assert_no_honest_slash(report: &RunReport) {
    assert_eq!(
        report.honest_slashed, 0,
        "seed {}: {:?}",
        report.seed, report.honest_slash_messages
    );
}

#[test]
fn relay_sybils_sharing_one_machine_miss_most_rounds_and_lose_money() {
    // Under per-owner phases the hidden machine answered each sybil in turn: 3% of their
    // challenges failed and they gained (`relay-sybils`, 200 seeds: +60,150,994 base units).
    let reports = runs("relay-sybils", 0..3);
    let (mut attempts, mut caught, mut profit) = (0, 0, 0i128);
    for report in &reports {
        assert_clean(report);
        assert_no_honest_slash(report);
        attempts += report.figures.attempts;
        caught += report.figures.caught_attempts;
        profit += report.figures.cheater_net_profit;
        assert!(report.figures.cheater_frozen_loss > 0, "seed {}: sybils frozen", report.seed);
    }
    assert!(caught * 3 >= attempts, "one round for all: {caught} of {attempts} caught");
    assert!(profit < 0, "the sybils lose: {profit}");
}

#[test]
fn a_cpu_registered_as_an_h100_gets_no_h100_task_and_is_frozen() {
    for report in runs("hardware-liar", 0..3) {
        assert_clean(&report);
        assert_no_honest_slash(&report);
        let figures = &report.figures;
        // Its attempts are challenges sized for the H100 floor only: no GPU task reached it.
        assert_eq!(figures.observable_attempts, figures.attempts, "seed {}", report.seed);
        assert_eq!(figures.caught_attempts, figures.attempts, "seed {}", report.seed);
        assert!(report.caught_in_bound(), "seed {}: {:?}", report.seed, report.caught);
        assert!(figures.cheater_net_profit < 0, "seed {}: {figures:?}", report.seed);
    }
}

#[test]
fn a_majority_cartel_forging_only_unanimous_rounds_is_caught_only_by_known_answers() {
    let reports = runs("sybil-cartel-majority", 1..3);
    let (mut attempts, mut caught) = (0, 0);
    for report in &reports {
        assert_clean(report);
        assert_no_honest_slash(report);
        attempts += report.figures.attempts;
        caught += report.figures.caught_attempts;
    }
    assert!(attempts > 0, "the cartel held all seats of some tasks");
    // A unanimous round draws no committee: only a known answer (1.5% of tasks) re-runs it.
    assert!(caught * 5 < attempts, "{caught} of {attempts}");
    assert!(reports.iter().any(|r| r.figures.cheater_slashed > 0), "a known answer caught it");
}

#[test]
fn a_copying_judge_sees_only_tags_and_is_slashed_for_the_one_it_copied() {
    // Before equality tags, judges committed after the reveals: copying the forger's hash
    // slashed the honest auditor (64 times over 200 seeds).
    let reports = runs("copying-judge", 0..3);
    let slashed: u128 = reports.iter().map(|r| r.figures.cheater_slashed).sum();
    let copies: u64 = reports.iter().map(|r| r.figures.attempts).sum();
    for report in &reports {
        assert_clean(report);
        assert_no_honest_slash(report);
        if let Some(caught) = &report.caught {
            assert_eq!(caught.how, "slashed: reveal-withheld", "seed {}", report.seed);
        }
    }
    assert!(copies > 0 && slashed > 0);
    let profit: i128 = reports.iter().map(|r| r.figures.cheater_net_profit).sum();
    assert!(profit < 0, "{profit}");
}

#[test]
fn a_guessing_judge_is_outvoted_by_two_more_blind_judges_and_slashed_with_the_forger() {
    // Before, a guess made a third result: the task failed `no-quorum`, nobody slashed, and
    // the forger it judged escaped on that task.
    let reports = runs("guessing-judge", 0..3);
    let guesses: u64 = reports.iter().map(|r| r.figures.attempts).sum();
    for report in &reports {
        assert_clean(report);
        assert_no_honest_slash(report);
        let figures = &report.figures;
        assert_eq!(figures.caught_attempts, figures.attempts, "seed {}", report.seed);
        if let Some(caught) = &report.caught {
            assert_eq!(caught.how, "slashed: audit-failed", "seed {}", report.seed);
        }
        assert!(figures.cheater_net_profit <= 0, "seed {}: {figures:?}", report.seed);
    }
    assert!(guesses > 0, "the judge was drawn on some split");
}

#[test]
fn a_requester_cancelling_for_its_forging_worker_does_not_save_it_from_the_audit() {
    // Before, the cancel ended the task before the comparison: 3 of 2,886 forgeries caught.
    let reports = runs("colluding-cancel", 0..3);
    for report in &reports {
        assert_clean(report);
        assert_no_honest_slash(report);
        let caught = report.caught.as_ref().expect("the forger is slashed");
        assert_eq!(caught.how, "slashed: audit-failed", "seed {}", report.seed);
        assert!(report.figures.cheater_net_profit < 0, "seed {}", report.seed);
    }
    assert!(reports.iter().map(|r| r.tasks_cancelled).sum::<u64>() > 0, "the partner cancelled");
}

#[test]
fn a_requester_lying_about_known_answers_loses_every_bond_and_slashes_nobody() {
    for report in runs("lying-requester", 0..2) {
        assert_clean(&report);
        assert_no_honest_slash(&report);
        let figures = &report.figures;
        assert!(figures.attempts > 0, "seed {}", report.seed);
        assert_eq!(figures.caught_attempts, figures.attempts, "seed {}", report.seed);
        assert!(figures.cheater_net_profit < 0, "seed {}: {figures:?}", report.seed);
    }
}

#[test]
fn a_relay_frozen_for_late_answers_counts_the_work_it_lost_against_its_profit() {
    // It is never slashed: before, its net profit was exactly 0.
    for report in runs("late-challenge-answers", 0..2) {
        let figures = &report.figures;
        assert_eq!(figures.cheater_slashed, 0);
        assert!(figures.cheater_frozen_loss > 0, "seed {}: {figures:?}", report.seed);
        assert_eq!(figures.cheater_net_profit, -(figures.cheater_frozen_loss as i128));
    }
}
