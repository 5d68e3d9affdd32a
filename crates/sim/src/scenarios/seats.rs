//! Red team v2, capacity and judging seats: cheaters that lie about the machine behind a node
//! (sybils sharing one hidden machine, a CPU registered as an H100), a cartel holding most seats,
//! a judge that copies what it can see (only tags, before the reveals), and requesters that
//! cancel for a forger or lie about known answers. Each plays the move that pays best given what
//! a real one would know.

use super::cheaters::cpu_cheater;
use super::{base_setup, run};
use crate::bounds;
use crate::detect::{Attempts, CaughtWhen};
use crate::provider::Behaviour;
use crate::report::{Bound, RunReport};
use crate::requester::RequesterBehaviour;
use crate::rng::SimRng;
use crate::setup::{hardware_h100, RequesterSpec, Setup, UNITS_H100};
use aicpw_ledger::state::Role;
use aicpw_types::{Amount, Verification};
use aicpw_verify::capacity::MISSES_FREEZE;
use aicpw_verify::{AuditPolicy, KnownAnswerPolicy};

/// Sybil nodes sharing one hidden machine in `relay-sybils`.
pub const SYBILS: usize = 6;
/// Cartel members among the ten providers of `sybil-cartel-majority`.
pub const CARTEL_MEMBERS: usize = 6;
/// Share of its partner's tasks the worker of `colluding-cancel` forges.
pub const PARTNER_SKIP_PPM: u32 = 500_000;
/// Tasks of the partner requester, and of each of the two honest ones, in `colluding-cancel`.
pub const PARTNER_TASKS: usize = 30;
pub const OTHER_TASKS: usize = 20;

/// Five honest providers, two of them H100s (so an H100 task can be audited by another owner).
fn gpu_setup(seed: u64, rng: &mut SimRng) -> Setup {
    let mut setup = base_setup(seed, rng, 5);
    for gpu in &mut setup.providers[..2] {
        gpu.hardware = hardware_h100();
        gpu.units = UNITS_H100;
    }
    setup
}

/// Two requesters of CPU tasks and one of H100 tasks, every task audited.
fn gpu_requesters(tasks: usize) -> Vec<RequesterSpec> {
    let mut requesters: Vec<RequesterSpec> =
        (0..2).map(|_| RequesterSpec::honest(tasks, vec![Verification::Audit])).collect();
    let mut gpu = RequesterSpec::honest(tasks, vec![Verification::Audit]);
    gpu.gpu_model = "H100".into();
    requesters.push(gpu);
    requesters
}

fn capacity_bound(rule: &str) -> Bound {
    Bound {
        attempts: u64::from(MISSES_FREEZE),
        unit: Attempts::Challenges.unit(),
        rule: format!(
            "{rule}; {MISSES_FREEZE} misses in a row freeze the node \
             (verify::capacity::MISSES_FREEZE)"
        ),
    }
}

pub fn relay_sybils(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario relay-sybils");
    let mut setup = gpu_setup(seed, &mut rng);
    let first = setup.providers.len();
    for _ in 0..SYBILS {
        // Each registers the hidden H100 and claims its capacity; its own box is a CPU.
        let mut sybil = cpu_cheater(&mut rng, Behaviour::RelaySybil { machine: 1 });
        sybil.hardware = hardware_h100();
        sybil.units = UNITS_H100;
        setup.providers.push(sybil);
    }
    setup.requesters = gpu_requesters(15);
    let bound = capacity_bound(
        "every node's round is issued in the same block, so the hidden machine must answer \
         all its sybils' challenges within one deadline, one after another",
    );
    let detector = Setup::detector(first, CaughtWhen::ProviderSanctioned, Attempts::Challenges);
    run("relay-sybils", &setup, Some(detector), Some(bound))
}

pub fn hardware_liar(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario hardware-liar");
    let mut setup = gpu_setup(seed, &mut rng);
    let liar = setup.providers.len();
    let mut spec = cpu_cheater(&mut rng, Behaviour::HardwareLiar);
    spec.hardware = hardware_h100();
    setup.providers.push(spec);
    setup.requesters = gpu_requesters(15);
    let bound = capacity_bound(
        "a node registering a GPU model is challenged for at least the model's floor \
         (verify::capacity::model_floor), which a CPU misses",
    );
    let detector = Setup::detector(liar, CaughtWhen::ProviderSanctioned, Attempts::Challenges);
    run("hardware-liar", &setup, Some(detector), Some(bound))
}

pub fn sybil_cartel_majority(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario sybil-cartel-majority");
    let mut setup = base_setup(seed, &mut rng, 10 - CARTEL_MEMBERS);
    let first = setup.providers.len();
    for _ in 0..CARTEL_MEMBERS {
        let mut member = cpu_cheater(&mut rng, Behaviour::Unanimous { cartel: 9 });
        member.price_per_hour = Amount(u128::from(rng.between(1_000_000, 3_000_000)));
        setup.providers.push(member);
    }
    setup.requesters =
        (0..3).map(|_| RequesterSpec::honest(40, vec![Verification::Replicas(3)])).collect();
    setup.submit_window_ms = 600_000;
    let rate = KnownAnswerPolicy::default().injection_rate_ppm;
    let bound = Bound {
        attempts: bounds::geometric(rate),
        unit: Attempts::ForgedReveals.unit(),
        rule: format!(
            "the cartel forges only when it holds all 3 replica seats, so the round is unanimous \
             and no committee is drawn; only a known answer ({}% of tasks) or a dispute re-runs \
             it",
            f64::from(rate) / 1e4
        ),
    };
    let detector = Setup::detector(first, CaughtWhen::ProviderSlashed, Attempts::ForgedReveals);
    run("sybil-cartel-majority", &setup, Some(detector), Some(bound))
}

pub fn copying_judge(seed: u64) -> RunReport {
    lazy_judge(
        seed,
        "copying-judge",
        Behaviour::CopyingJudge,
        "a split is judged before anything is revealed: the referee sees only the two equality \
         tags, copies one over a guess it cannot open, and is withheld, replaced and slashed when \
         its late reveal window closes",
    )
}

pub fn guessing_judge(seed: u64) -> RunReport {
    lazy_judge(
        seed,
        "guessing-judge",
        Behaviour::GuessingJudge,
        "a referee whose tag matches neither side leaves no majority possible: two more judges \
         are drawn before anything is revealed, and the five outvote the guess",
    )
}

/// A judge that never re-executes (`behaviour`) beside a lazy worker forging a quarter of its
/// results, which makes the splits it judges; caught when slashed, at its first referee commit.
fn lazy_judge(seed: u64, name: &'static str, behaviour: Behaviour, rule: &str) -> RunReport {
    let mut rng = SimRng::new(seed, &format!("scenario {name}"));
    let mut setup = base_setup(seed, &mut rng, 4);
    let lazy = Behaviour::Lazy { skip_ppm: 250_000, withholds: false, stalls: false };
    setup.providers.push(cpu_cheater(&mut rng, lazy));
    let judge = setup.providers.len();
    setup.providers.push(cpu_cheater(&mut rng, behaviour));
    setup.requesters =
        (0..3).map(|_| RequesterSpec::honest(30, vec![Verification::Audit])).collect();
    setup.submit_window_ms = 1_200_000;
    let bound =
        Bound { attempts: 1, unit: Attempts::Commits(Role::Referee).unit(), rule: rule.into() };
    let detector =
        Setup::detector(judge, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Referee));
    run(name, &setup, Some(detector), Some(bound))
}

pub fn colluding_cancel(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "scenario colluding-cancel");
    let mut setup = base_setup(seed, &mut rng, 5);
    let worker = setup.providers.len();
    // The partner requester is the first requester: party `providers + 0`.
    let partner = worker + 1;
    let forger = Behaviour::ForgesForPartner { skip_ppm: PARTNER_SKIP_PPM, requester: partner };
    setup.providers.push(cpu_cheater(&mut rng, forger));
    let mut colluder = RequesterSpec::honest(PARTNER_TASKS, vec![Verification::Audit]);
    colluder.behaviour = RequesterBehaviour::CancelsForPartner;
    colluder.known_answer_ppm = 0;
    setup.requesters = vec![colluder];
    let others = RequesterSpec::honest(OTHER_TASKS, vec![Verification::Audit]);
    setup.requesters.extend([others.clone(), others]);
    setup.submit_window_ms = 1_200_000;
    let policy = AuditPolicy::default();
    // It forges only on its partner's share of the tasks it works on.
    let share = PARTNER_TASKS as u64 * 1_000_000 / (PARTNER_TASKS + 2 * OTHER_TASKS) as u64;
    let skip_ppm = u64::from(PARTNER_SKIP_PPM) * share / 1_000_000;
    let bound = Bound {
        attempts: bounds::audit_tasks(u32::try_from(skip_ppm).unwrap_or(u32::MAX), &policy),
        unit: Attempts::Commits(Role::Worker).unit(),
        rule: "its partner cancels each audited forgery before worker and auditor reveal; the \
               cancel waits for the audit's verdict, which slashes the forger"
            .into(),
    };
    let detector =
        Setup::detector(worker, CaughtWhen::ProviderSlashed, Attempts::Commits(Role::Worker));
    run("colluding-cancel", &setup, Some(detector), Some(bound))
}

pub fn lying_requester(seed: u64) -> RunReport {
    let (setup, liar) = super::cheaters::requester_cheater(
        "lying-requester",
        seed,
        RequesterBehaviour::LiesAboutAnswers,
        1_000_000,
    );
    let bound = Bound {
        attempts: 1,
        unit: Attempts::Disputes.unit(),
        rule: "a known-answer mismatch is the requester's word: it opens a dispute with the \
               minimum bond, a committee of two other owners re-runs the task, the result wins \
               the vote and the bond goes to the committee and the provider"
            .into(),
    };
    let detector = Setup::detector(liar, CaughtWhen::BondForfeited, Attempts::Disputes);
    run("lying-requester", &setup, Some(detector), Some(bound))
}
