//! Every scenario, a few seeds each: the cheaters are caught within the design's bound, honest
//! parties are never slashed, tokens are conserved and every task ends; runs are reproducible.

use aicpw_sim::setup::RequesterSpec;
use aicpw_sim::{run_scenario, scenario, RunReport, Status};
use aicpw_types::Verification;

const SEEDS: u64 = 3;

fn runs(name: &str) -> Vec<RunReport> {
    let scenario = scenario(name).expect("a known scenario");
    (0..SEEDS).map(scenario.run).collect()
}

fn assert_clean(report: &RunReport) {
    assert_eq!(report.status, Status::Ok, "{}: {:?}", report.scenario, report.missing);
    assert_eq!(report.violations, 0, "seed {}: {:?}", report.seed, report.violation_messages);
    let ended = report.tasks_completed + report.tasks_failed + report.tasks_cancelled;
    assert_eq!(ended, report.tasks_submitted, "seed {}: every task ends", report.seed);
}

fn assert_caught_in_bound(name: &str) {
    for report in runs(name) {
        assert_clean(&report);
        assert_eq!(
            report.honest_slashed, 0,
            "seed {}: {:?}",
            report.seed, report.honest_slash_messages
        );
        if report.cheater_attempts > 0 {
            assert!(
                report.caught_in_bound(),
                "{name} seed {}: {:?} vs {:?}",
                report.seed,
                report.caught,
                report.bound
            );
        }
    }
}

#[test]
fn every_provider_registers_its_node() {
    // Each registers a usable X25519 key (one of small order is refused: `WeakX25519Key`).
    let mut rng = aicpw_sim::rng::SimRng::new(1, "test registration");
    let mut setup = aicpw_sim::scenarios::base_setup(1, &mut rng, 6);
    // A task to run, or the world ends at its first block with nothing to do.
    setup.requesters = vec![RequesterSpec::honest(1, vec![Verification::Spot])];
    setup.submit_window_ms = 20_000;
    let mut world = setup.build();
    world.run(60_000);
    assert_eq!(world.chain.state.nodes.len(), 6, "every provider has a node");
}

#[test]
fn honest_network_ends_every_task_reassigns_after_crashes_and_slashes_nobody() {
    let reports = runs("honest");
    for report in &reports {
        assert_clean(report);
        assert_eq!(report.honest_slashed, 0, "{:?}", report.honest_slash_messages);
        assert!(report.caught.is_none() && report.bound.is_none());
        assert!(report.tasks_submitted >= 40);
    }
    assert!(reports.iter().map(|r| r.requeues).sum::<u64>() > 0, "crashes cause reassignments");
}

#[test]
fn lazy_provider_is_caught_by_audits_within_the_bound() {
    assert_caught_in_bound("lazy-provider");
}

#[test]
fn a_lazy_provider_withholding_its_audited_forgeries_is_slashed_when_the_late_window_closes() {
    assert_caught_in_bound("lazy-provider-withholding");
}

#[test]
fn a_lazy_provider_stalling_for_its_intervals_is_caught_and_keeps_none_of_them() {
    assert_caught_in_bound("lazy-provider-stalling");
    // Its forgeries were paid per interval before the audit caught them; `kept_nothing` (a
    // violation otherwise) checks every block that a caught one kept none of it.
    let clawbacks: u64 = runs("lazy-provider-stalling").iter().map(|r| r.clawbacks).sum();
    assert!(clawbacks > 0, "caught forgeries had intervals to claw back");
}

#[test]
fn fake_capacity_is_caught_by_matrix_challenges_within_three() {
    assert_caught_in_bound("fake-capacity");
}

#[test]
fn copying_replica_is_slashed_for_its_first_copy_it_cannot_open() {
    assert_caught_in_bound("copying-replica");
}

#[test]
fn late_challenge_answers_freeze_the_node() {
    assert_caught_in_bound("late-challenge-answers");
}

#[test]
fn lazy_auditor_is_slashed_on_its_first_blind_approval() {
    assert_caught_in_bound("lazy-auditor");
}

#[test]
fn a_lazy_auditor_is_slashed_even_when_the_requester_cancels_while_it_audits() {
    // Seed 35: a requester cancels a task while the lazy auditor runs its audit, and the auditor
    // is still slashed for that guess (the seed moves with any change to the draws; the exact
    // interleavings, a cancel while the auditor or a referee runs, are pinned by the ledger's
    // `a_cancel_while_a_committed_result_awaits_its_audit_still_slashes_the_forger` and
    // `a_cancel_during_a_referee_round_after_an_audit_split_still_slashes_the_forger`).
    let report = (scenario("lazy-auditor").expect("a known scenario").run)(35);
    assert_clean(&report);
    assert!(report.tasks_cancelled > 0, "the requester cancelled");
    let caught = report.caught.as_ref().expect("caught despite the cancel");
    assert_eq!((caught.attempts, caught.how.as_str()), (1, "slashed: audit-failed"));
}

#[test]
fn dishonest_disputer_loses_its_bond_and_no_provider_is_slashed() {
    assert_caught_in_bound("dishonest-disputer");
}

#[test]
fn an_honest_provider_away_longer_than_every_window_is_never_slashed() {
    for report in runs("honest-long-outage") {
        assert_clean(&report);
        assert_eq!(report.honest_slashed, 0, "{:?}", report.honest_slash_messages);
    }
}

#[test]
fn colluding_replicas_are_outvoted_by_a_committee_within_the_bound() {
    assert_caught_in_bound("colluding-replicas");
    assert_caught_in_bound("colluding-replicas-rational");
}

#[test]
fn the_same_seed_gives_the_same_report() {
    for name in ["honest", "lazy-provider", "fake-capacity"] {
        let scenario = scenario(name).expect("known");
        let first = serde_json::to_string(&(scenario.run)(11)).expect("serializes");
        let second = serde_json::to_string(&(scenario.run)(11)).expect("serializes");
        assert_eq!(first, second, "{name} is not reproducible");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let scenario = scenario("honest").expect("known");
    let a = (scenario.run)(1);
    let b = (scenario.run)(2);
    assert_ne!((a.txs_included, a.sim_time_ms), (b.txs_included, b.sim_time_ms));
}

#[test]
fn the_summary_does_not_depend_on_the_number_of_threads() {
    let one = run_scenario("dishonest-disputer", 2, 1).expect("known");
    let two = run_scenario("dishonest-disputer", 2, 2).expect("known");
    let json = |r| serde_json::to_string(&r).expect("serializes");
    assert_eq!(json(one.clone()), json(two));
    assert_eq!(one.runs, 2);
    assert_eq!(one.detection_rate, Some(1.0));
    assert_eq!(one.honest_slashed, 0);
    assert!(run_scenario("no-such-scenario", 1, 1).is_none());
}
