//! The red-team suite: one cheater (or cartel) among honest parties per scenario, the rule that
//! says when it is caught, and the design's bound on how soon.

use super::{base_setup, run};
use crate::bounds;
use crate::detect::{Attempts, CaughtWhen};
use crate::provider::{Behaviour, FakeStrategy, ProviderSpec};
use crate::report::{Bound, RunReport};
use crate::requester::RequesterBehaviour;
use crate::rng::SimRng;
use crate::setup::{
    hardware_cpu, hardware_h100, honest_provider, RequesterSpec, Setup, UNITS_CPU, UNITS_H100,
};
use aicpw_ledger::state::Role;
use aicpw_types::{Amount, Verification};
use aicpw_verify::capacity::MISSES_FREEZE;
use aicpw_verify::AuditPolicy;

/// Share of its results a lazy provider forges.
pub const LAZY_SKIP_PPM: u32 = 250_000;

fn cheap(rng: &mut SimRng) -> Amount {
    Amount(u128::from(rng.between(700_000, 999_999)))
}

pub(super) fn cpu_cheater(rng: &mut SimRng, behaviour: Behaviour) -> ProviderSpec {
    ProviderSpec {
        hardware: hardware_cpu(8),
        price_per_hour: cheap(rng),
        speed_permille: 1_000,
        units: UNITS_CPU,
        stake: Amount::tokens(5_000),
        behaviour,
    }
}

fn requesters(count: usize, tasks: usize, verification: Verification) -> Vec<RequesterSpec> {
    (0..count).map(|_| RequesterSpec::honest(tasks, vec![verification])).collect()
}

pub fn lazy_provider(seed: u64) -> RunReport {
    lazy("lazy-provider", seed, false, false)
}

pub fn lazy_provider_withholding(seed: u64) -> RunReport {
    lazy("lazy-provider-withholding", seed, true, false)
}

pub fn lazy_provider_stalling(seed: u64) -> RunReport {
    lazy("lazy-provider-stalling", seed, false, true)
}

/// A lazy worker among five honest providers; if `withholds`, it keeps every audited forgery's
/// commitment closed, and is slashed `reveal-withheld` when the late reveal window closes; if
/// `stalls`, it sits on each forged lease for the run time, paid per interval until it commits.
fn lazy(name: &'static str, seed: u64, withholds: bool, stalls: bool) -> RunReport {
    let mut rng = SimRng::new(seed, &format!("scenario {name}"));
    let mut setup = base_setup(seed, &mut rng, 5);
    let cheater = setup.providers.len();
    let behaviour = Behaviour::Lazy { skip_ppm: LAZY_SKIP_PPM, withholds, stalls };
    setup.providers.push(cpu_cheater(&mut rng, behaviour));
    setup.requesters = requesters(3, 90, Verification::Audit);
    setup.submit_window_ms = 2_400_000;
    let policy = AuditPolicy::default();
    let caught = match (withholds, stalls) {
        (true, _) => {
            "withholds the reveal of every audited forgery: slashed reveal-withheld when its late \
             reveal window closes"
        }
        (false, true) => {
            "holds each forged lease for the run time, paid per interval, then reveals: the \
             referee sides with the auditor and its intervals are clawed back"
        }
        (false, false) => "reveals them: the referee sides with the auditor",
    };
    let bound = Bound {
        attempts: bounds::audit_tasks(LAZY_SKIP_PPM, &policy),
        unit: Attempts::Commits(Role::Worker).unit(),
        rule: format!(
            "forges {}% of results and {caught}; audited always below a clean streak of {}, \
             then with max({}%, 1/streak): escape after k tasks <= prod(1 - x*p_i) <= 1%",
            LAZY_SKIP_PPM / 10_000,
            policy.streak_always,
            policy.rate_min_ppm / 10_000
        ),
    };
    let detector =
        Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Worker));
    run(name, &setup, Some(detector), Some(bound))
}

fn capacity_bound(rule: &str) -> Bound {
    Bound {
        attempts: u64::from(MISSES_FREEZE),
        unit: Attempts::Challenges.unit(),
        rule: format!(
            "{rule}; a failed opening is slashed at once, {MISSES_FREEZE} misses in a row freeze \
             the node (verify::capacity::MISSES_FREEZE)"
        ),
    }
}

pub fn fake_capacity(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario fake-capacity");
    let mut setup = base_setup(seed, &mut rng, 5);
    // Two honest H100s, so that an H100 task's result can be audited by another owner.
    for gpu in &mut setup.providers[..2] {
        gpu.hardware = hardware_h100();
        gpu.units = UNITS_H100;
    }
    let strategy = if rng.chance(500_000) { FakeStrategy::Late } else { FakeStrategy::Bluff };
    let cheater = setup.providers.len();
    let mut fake =
        cpu_cheater(&mut rng, Behaviour::FakeCapacity { claimed_units: UNITS_H100, strategy });
    fake.hardware = hardware_h100();
    setup.providers.push(fake);
    setup.requesters = requesters(2, 15, Verification::Audit);
    let mut gpu_tasks = RequesterSpec::honest(15, vec![Verification::Audit]);
    gpu_tasks.gpu_model = "H100".into();
    setup.requesters.push(gpu_tasks);
    let bound = capacity_bound("challenges are sized for the claimed H100 capacity");
    let detector = Setup::detector(cheater, CaughtWhen::ProviderSanctioned, Attempts::Challenges);
    run("fake-capacity", &setup, Some(detector), Some(bound))
}

pub fn late_challenge_answers(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario late-challenge-answers");
    let mut setup = base_setup(seed, &mut rng, 5);
    let cheater = setup.providers.len();
    let relay = Behaviour::RelaysChallenges { relay_ms_min: 4_000, relay_ms_max: 10_000 };
    setup.providers.push(cpu_cheater(&mut rng, relay));
    setup.requesters = requesters(3, 12, Verification::Audit);
    let bound = capacity_bound("every answer arrives after its deadline (relay 4-10 s)");
    let detector = Setup::detector(cheater, CaughtWhen::ProviderSanctioned, Attempts::Challenges);
    run("late-challenge-answers", &setup, Some(detector), Some(bound))
}

pub fn copying_replica(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario copying-replica");
    let mut setup = base_setup(seed, &mut rng, 5);
    let cheater = setup.providers.len();
    setup.providers.push(cpu_cheater(&mut rng, Behaviour::CopyingReplica));
    setup.requesters = requesters(3, 12, Verification::Replicas(3));
    let bound = Bound {
        attempts: 1,
        unit: Attempts::Commits(Role::Replica).unit(),
        rule: "a commitment binds its author's key: a copied one cannot be opened, so the copy \
               is a withheld reveal (unpaid, excluded from the task, a fault on record) that is \
               never opened late either: slashed reveal-withheld when its late window closes"
            .into(),
    };
    let detector =
        Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Replica));
    run("copying-replica", &setup, Some(detector), Some(bound))
}

/// Two cartel members among four honest providers, every task replicated three times.
fn cartel_setup(seed: u64, rng: &mut SimRng, always: bool, tasks: usize) -> (Setup, usize) {
    let mut setup = base_setup(seed, rng, 4);
    let cheater = setup.providers.len();
    for _ in 0..2 {
        let mut member = cpu_cheater(rng, Behaviour::Colluding { cartel: 7, always });
        member.price_per_hour = Amount(u128::from(rng.between(1_000_000, 3_000_000)));
        setup.providers.push(member);
    }
    setup.requesters = requesters(3, tasks, Verification::Replicas(3));
    setup.submit_window_ms = 240_000 * tasks as u64 / 14;
    (setup, cheater)
}

/// The cartel's bound: it has two members and every task has three replicas, so a forged hash
/// never makes the task unanimous; the split goes to a committee of two random nodes of the
/// other owners, which sides with the honest replica.
fn cartel_bound(when: &str) -> Bound {
    Bound {
        attempts: 3,
        unit: Attempts::ForgedReveals.unit(),
        rule: format!(
            "replicas are drawn at random and the cartel ({when}) holds at most 2 of 3, so its \
             wrong hash always splits the task; a split goes to a committee of two random nodes \
             of other owners, and the strict majority of all 5 hashes slashes the cartel. Caught \
             on its first forged reveal whose committee is staffed (one that is not fails the \
             task verification-unavailable: unpaid, not caught)"
        ),
    }
}

pub fn colluding_replicas(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario colluding-replicas");
    let (setup, cheater) = cartel_setup(seed, &mut rng, true, 14);
    let bound = cartel_bound("lying on every replica lease");
    let detector = Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::ForgedReveals);
    run("colluding-replicas", &setup, Some(detector), Some(bound))
}

pub fn colluding_replicas_rational(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario colluding-replicas-rational");
    let (setup, cheater) = cartel_setup(seed, &mut rng, false, 150);
    let bound = cartel_bound("lying only when both members hold replicas of the task");
    let detector = Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::ForgedReveals);
    run("colluding-replicas-rational", &setup, Some(detector), Some(bound))
}

pub fn lazy_auditor(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario lazy-auditor");
    let mut setup = base_setup(seed, &mut rng, 4);
    let partner = setup.providers.len();
    let cheater = partner + 1;
    let mut worker = honest_provider(&mut rng);
    worker.behaviour = Behaviour::SharesOutputs { partner: cheater };
    setup.providers.push(worker);
    // Cheap, so that the matcher gives it audit seats.
    setup.providers.push(cpu_cheater(&mut rng, Behaviour::LazyAuditor));
    setup.requesters = requesters(3, 14, Verification::Audit);
    let bound = Bound {
        attempts: 1,
        unit: Attempts::ForgedReveals.unit(),
        rule: "an auditor commits before it can see the worker's hash (commit-reveal), so with \
               no partner to copy from it must guess; the guess disagrees with the worker and \
               the referee sides with the worker: its first blind approval is slashed. Copies of \
               a partner's correct hash are right, so nothing (known answers included) can or \
               needs to catch them"
            .into(),
    };
    let detector = Setup::detector(cheater, CaughtWhen::ProviderSlashed, Attempts::ForgedReveals);
    run("lazy-auditor", &setup, Some(detector), Some(bound))
}

/// A requester with `behaviour`, submitting unverified and audited tasks at `known_answer_ppm`,
/// beside two honest requesters and six honest providers; returns the setup and its party index.
pub fn requester_cheater(
    name: &str,
    seed: u64,
    behaviour: RequesterBehaviour,
    known_answer_ppm: u32,
) -> (Setup, usize) {
    let mut rng = SimRng::new(seed, &format!("scenario {name}"));
    let mut setup = base_setup(seed, &mut rng, 6);
    let cheater = setup.providers.len();
    let mut spec = RequesterSpec::honest(10, vec![Verification::Spot, Verification::Audit]);
    spec.behaviour = behaviour;
    spec.known_answer_ppm = known_answer_ppm;
    setup.requesters = vec![spec];
    setup.requesters.extend(requesters(2, 10, Verification::Audit));
    (setup, cheater)
}

pub fn dishonest_disputer(seed: u64) -> RunReport {
    let (setup, cheater) =
        requester_cheater("dishonest-disputer", seed, RequesterBehaviour::DisputesEverything, 0);
    let bound = Bound {
        attempts: 1,
        unit: Attempts::Disputes.unit(),
        rule: "a committee of two nodes of other owners re-executes; an honest result wins the \
               vote and the bond goes to the committee and the provider"
            .into(),
    };
    let detector = Setup::detector(cheater, CaughtWhen::BondForfeited, Attempts::Disputes);
    run("dishonest-disputer", &setup, Some(detector), Some(bound))
}
