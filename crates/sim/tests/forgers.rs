//! Red team v2, the provider-side forgers (`scenarios::forgers`), a few seeds each: what each
//! one gets, and that honest providers lose nothing to the rules that stop them.

use aicpw_sim::scenarios::forgers::spotter_run;
use aicpw_sim::{scenario, RunReport};

fn runs(name: &str, seeds: u64) -> Vec<RunReport> {
    let scenario = scenario(name).expect("a known scenario");
    (0..seeds).map(scenario.run).collect()
}

fn assert_honest_unharmed(report: &RunReport) {
    let seed = report.seed;
    assert_eq!(report.violations, 0, "seed {seed}: {:?}", report.violation_messages);
    assert_eq!(report.honest_slashed, 0, "seed {seed}: {:?}", report.honest_slash_messages);
    let ended = report.tasks_completed + report.tasks_failed + report.tasks_cancelled;
    assert_eq!(ended, report.tasks_submitted, "seed {seed}: every task ends");
}

/// Holding a forged lease of a short task to the end of the time limit's grace paid 1.24 times
/// the slash's basis, so forging paid at the audit floor (clean streak 19 or more). A lease now
/// earns at most its price for the time limit, so every forgery's expected profit is negative
/// and the patient forger, which forges only where it is positive, works honestly.
#[test]
fn a_patient_forger_finds_no_task_worth_forging() {
    for report in runs("patient-forger", 1) {
        assert_honest_unharmed(&report);
        assert_eq!(report.figures.attempts, 0, "seed {}: it forged", report.seed);
        assert!(report.tasks_completed > 200, "seed {}: it had the work", report.seed);
    }
}

/// A withheld reveal resets the clean streak and, until the lease is judged, every result of its
/// node is audited: the withholding forger's later forgeries no longer slip through while it
/// waits for its late window (detection per attempt 0.300 before, over 200 seeds).
#[test]
fn a_withholding_forger_is_audited_on_every_result_until_its_withheld_lease_is_judged() {
    let reports = runs("lazy-provider-withholding", 2);
    let attempts: u64 = reports.iter().map(|r| r.figures.attempts).sum();
    let caught: u64 = reports.iter().map(|r| r.figures.caught_attempts).sum();
    for report in &reports {
        assert_honest_unharmed(report);
        assert!(report.figures.cheater_net_profit < 0, "seed {}", report.seed);
    }
    assert!(attempts > 0 && caught * 100 >= attempts * 85, "caught {caught} of {attempts}");
}

/// Each account of the whitewasher starts with a streak of 0 (every result audited) and a new
/// node's reputation, and each slash costs 20 times the price of the forged task: re-entry does
/// not make forging pay.
#[test]
fn a_whitewasher_loses_on_every_account_it_goes_through() {
    for report in runs("whitewasher", 2) {
        assert_honest_unharmed(&report);
        let figures = &report.figures;
        assert!(figures.attempts > 0 && figures.caught_attempts > 0, "seed {}", report.seed);
        assert!(figures.cheater_net_profit < 0, "seed {}: {figures:?}", report.seed);
    }
}

/// The spotter forges only on tasks it takes for real ones, weighing only the audit it cannot
/// dodge. The simulated requesters draw known-answer tasks like their real ones (terms, timing),
/// so it flags known-answer tasks no more often than real ones. It no longer matters: a spot
/// task is audited at the floor rate, at which a forgery loses even where no known answer can
/// be, so it forges nothing. (When these tasks could go unverified, it forged until its first
/// catch and lost over the runs, one run in nine ending ahead.)
#[test]
fn a_known_answer_spotter_cannot_tell_known_answer_tasks_and_forges_nothing() {
    let mut sum = [0; 4];
    for seed in 0..2 {
        let (report, counts) = spotter_run(seed, false);
        assert_honest_unharmed(&report);
        assert_eq!(report.figures.attempts, 0, "seed {seed}: {:?}", report.figures);
        sum.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
    }
    let [known, known_flagged, real, real_flagged] = sum;
    assert!(known > 20 && real > 200, "known {known}, real {real}");
    // Flag rates within 20 points of each other: no better than a coin weighted the same way.
    let (known_rate, real_rate) = (known_flagged * 100 / known, real_flagged * 100 / real);
    assert!(known_rate <= real_rate + 20, "flags {known_rate}% of known, {real_rate}% of real");
}

/// Known-answer tasks that keep their library entry's own terms (a 120 s limit where the
/// account's real tasks have 240 s), as the CLI injected them before it dressed them in the
/// terms of the task that drew them: the spotter flags them. With tasks that went unverified it
/// then forged real tasks only and profited; with spot audits at the floor it still forges
/// nothing, whatever it spots.
#[test]
fn a_known_answer_spotter_tells_library_terms_apart_and_still_forges_nothing() {
    let (report, [known, known_flagged, real, real_flagged]) = spotter_run(0, true);
    assert_honest_unharmed(&report);
    assert!(known > 10 && known_flagged * 10 >= known * 8, "flagged {known_flagged} of {known}");
    assert!(real_flagged * 10 <= real, "flagged {real_flagged} of {real} real tasks");
    assert_eq!(report.figures.attempts, 0, "{:?}", report.figures);
}

/// The selective forger forges wherever it predicts its expected profit is positive. When tasks
/// could ask for no verification (`none`), only the requester's own known answers checked them,
/// so it forged those and won (+257M base units over 200 seeds, 1% caught). A spot task is
/// audited at the floor rate from the ledger's randomness: no task is left where forging pays,
/// and it works honestly.
#[test]
fn a_selective_forger_finds_no_task_worth_forging() {
    for report in runs("selective-forger", 2) {
        assert_honest_unharmed(&report);
        assert_eq!(report.figures.attempts, 0, "seed {}: {:?}", report.seed, report.figures);
        assert!(report.tasks_completed > 200, "seed {}: it had the work", report.seed);
    }
}
