//! Red team v2, the provider-side forgers: cheaters that choose where to forge from what a real
//! one knows (`provider::forger`), among five honest providers, for the whole traffic (not only
//! until their first slash).

use super::cheaters::cpu_cheater;
use super::{base_setup, horizon_ms, run};
use crate::bounds;
use crate::detect::{Attempts, CaughtWhen};
use crate::provider::forger::Forger;
use crate::provider::Behaviour;
use crate::report::{Bound, RunReport};
use crate::rng::SimRng;
use crate::setup::{RequesterSpec, Setup};
use aicpw_ledger::state::Role;
use aicpw_types::Verification;
use aicpw_verify::AuditPolicy;

/// Share of its worker results a whitewasher forges once an audit is no longer certain.
pub const WHITEWASH_SKIP_PPM: u32 = 250_000;
/// Accounts a whitewasher goes through: the first and two fresh ones.
pub const WHITEWASH_ACCOUNTS: usize = 3;

/// Five honest providers and `forgers` forger accounts; requesters submit over 40 minutes and
/// go on after the first catch.
fn setup(name: &str, seed: u64, forgers: &[Forger], requesters: Vec<RequesterSpec>) -> Setup {
    let mut rng = SimRng::new(seed, &format!("scenario {name}"));
    let mut setup = base_setup(seed, &mut rng, 5);
    for forger in forgers {
        setup.providers.push(cpu_cheater(&mut rng, Behaviour::Forger(*forger)));
    }
    setup.requesters = requesters;
    setup.submit_window_ms = 2_400_000;
    setup.base_window_ms = setup.submit_window_ms;
    setup
}

fn detector(cheater: usize) -> crate::detect::Detector {
    Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Worker))
}

fn floor_bound(rule: &str) -> Bound {
    let floor = AuditPolicy::default().rate_min_ppm;
    Bound {
        attempts: bounds::geometric(floor),
        unit: Attempts::Commits(Role::Worker).unit(),
        rule: format!(
            "{rule}; each forgery is audited with at least the floor's {}%",
            floor / 10_000
        ),
    }
}

/// Requesters of short tasks (a 90 s time limit), all audited, that rely on the audits and
/// inject no known answers.
pub fn patient_forger(seed: u64) -> RunReport {
    let short = |_| RequesterSpec {
        time_limit_secs: 90,
        known_answer_ppm: 0,
        ..RequesterSpec::honest(100, vec![Verification::Audit])
    };
    let setup = setup("patient-forger", seed, &[Forger::Patient], (0..3).map(short).collect());
    let bound = floor_bound("forges only near the audit floor (clean streak of 19 or more)");
    run("patient-forger", &setup, Some(detector(5)), Some(bound))
}

/// Requesters of spot-checked and audited tasks: two inject known answers at the CLI's default
/// rate, one never does.
pub fn selective_forger(seed: u64) -> RunReport {
    let mixed = || RequesterSpec::honest(100, vec![Verification::Spot, Verification::Audit]);
    let silent = RequesterSpec { known_answer_ppm: 0, ..mixed() };
    let requesters = vec![mixed(), mixed(), silent];
    let setup = setup("selective-forger", seed, &[Forger::Selective], requesters);
    let bound = floor_bound("forges where it predicts no check, on spot tasks too");
    run("selective-forger", &setup, Some(detector(5)), Some(bound))
}

/// Three accounts of one whitewasher: each registers once the previous one is slashed.
pub fn whitewasher(seed: u64) -> RunReport {
    let forgers: Vec<Forger> = (0..WHITEWASH_ACCOUNTS)
        .map(|i| Forger::Whitewasher {
            after: i.checked_sub(1).map(|previous| 5 + previous),
            skip_ppm: WHITEWASH_SKIP_PPM,
        })
        .collect();
    let requesters =
        (0..3).map(|_| RequesterSpec::honest(150, vec![Verification::Audit])).collect();
    let setup = setup("whitewasher", seed, &forgers, requesters);
    let bound = Bound {
        attempts: bounds::audit_tasks(WHITEWASH_SKIP_PPM, &AuditPolicy::default()),
        unit: Attempts::Commits(Role::Worker).unit(),
        rule: format!(
            "its first account forges {}% of its results once its clean streak makes an audit \
             uncertain; audited with max(5%, 1/streak)",
            WHITEWASH_SKIP_PPM / 10_000
        ),
    };
    run("whitewasher", &setup, Some(detector(5)), Some(bound))
}

/// The spotter's requesters: unverified tasks only, with one in ten a known-answer task (the
/// most the CLI injects without its test override), so that known answers are its only check.
fn spotter_setup(seed: u64, library_terms: bool) -> Setup {
    let spec = RequesterSpec {
        known_answer_ppm: 100_000,
        library_terms,
        ..RequesterSpec::honest(100, vec![Verification::Spot])
    };
    setup("known-answer-spotter", seed, &[Forger::Spotter], vec![spec; 3])
}

pub fn known_answer_spotter(seed: u64) -> RunReport {
    spotter_run(seed, false).0
}

/// One run of the spotter, and how well it told known-answer tasks from real ones: among the
/// tasks that reached a verdict, (known-answer tasks, of them flagged, real tasks, of them
/// flagged), each classified when it was submitted. A known-answer task is one whose answer
/// was revealed. With `library_terms`, known-answer tasks keep their library entry's terms, as
/// the CLI injected them before it dressed them as the account's real tasks.
pub fn spotter_run(seed: u64, library_terms: bool) -> (RunReport, [u64; 4]) {
    let bound = Bound {
        attempts: bounds::geometric(100_000),
        unit: Attempts::Commits(Role::Worker).unit(),
        rule: "forges only on tasks it takes for real ones; known-answer tasks look like the \
               requester's real ones, so one in ten of its forgeries meets a known answer"
            .into(),
    };
    let setup = spotter_setup(seed, library_terms);
    let mut world = setup.build();
    world.detector = Some(detector(5));
    world.run(horizon_ms(&setup));
    let report = RunReport::of("known-answer-spotter", seed, &world, Some(bound));
    let mut counts = [0; 4];
    if let Some(crate::world::Party::Provider(spotter)) = world.parties.get(5) {
        let history = &spotter.history;
        for (task, flagged) in &history.classified {
            if !history.verified.contains(task) {
                continue;
            }
            let slot = if history.known.contains(task) { 0 } else { 2 };
            counts[slot] += 1;
            counts[slot + 1] += u64::from(*flagged);
        }
    }
    (report, counts)
}
