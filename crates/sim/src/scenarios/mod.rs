//! The scenarios: the honest network with faults, and the red-team suite of cheaters. Each is a
//! function of its seed alone.

pub mod cheaters;
pub mod forgers;
pub mod seats;
pub mod stress;

use crate::detect::Detector;
use crate::net::{NetworkConfig, Partition};
use crate::report::{Bound, RunReport};
use crate::rng::SimRng;
use crate::setup::{honest_provider, sim_params, Crash, RequesterSpec, Setup};
use aicpw_types::Verification;

/// One scenario: its name on the command line, what it shows, and how to run one seed.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// What one cheating attempt is (`tally`), and why some of them cannot be caught.
    pub attempt: &'static str,
    pub run: fn(u64) -> RunReport,
}

const LAZY_ATTEMPT: &str =
    "a forged result committed as worker (a quarter of its tasks); not caught: forgeries \
                  the audit draw skipped once its clean streak reached 10 (audited at max(5%, \
                  1/streak): paid), and forgeries on tasks that failed or were cancelled before \
                  a verdict (unpaid). Audits sample, so detection per attempt stays below 0.99 \
                  unless every result is audited; what keeps forging a loss is the slash, 20 \
                  times the price, on the first forgery audited";

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "honest",
        about: "honest providers and requesters under every verification policy; provider \
                crashes, a partition, message loss, slow nodes: every task ends, nobody is \
                slashed, tokens are conserved",
        attempt: "none: no cheater",
        run: honest,
    },
    Scenario {
        name: "honest-long-outage",
        about: "as honest, but crashes and the partition last 70-180 s, longer than the 30 s \
                challenge opening window and the 60 s reveal window: a challenge not opened in \
                time is a miss (reputation), a reveal not sent in time is withheld (no pay), \
                and the provider opens it late when it is back, so nobody is slashed",
        attempt: "none: no cheater",
        run: honest_long_outage,
    },
    Scenario {
        name: "lazy-provider",
        about: "a worker skips the work on a quarter of its tasks and commits a forged hash; \
                adaptive spot-check audits catch it",
        attempt: LAZY_ATTEMPT,
        run: cheaters::lazy_provider,
    },
    Scenario {
        name: "lazy-provider-withholding",
        about: "the lazy worker keeps its commitment closed whenever a forged result is audited, \
                giving up the pay to dodge the referee; the withheld lease is slashed when its \
                late reveal window closes unopened",
        attempt:
            "a forged result committed as worker; it withholds the audited ones, slashed when \
                  their late reveal window closes (10 min here). A withheld reveal resets its \
                  clean streak, and until the lease is judged every result of it is audited. Not \
                  caught: forgeries the audit draw skipped before its first withheld reveal \
                  (audited at max(5%, 1/streak): paid), and forgeries on tasks that failed or \
                  were cancelled before a verdict (unpaid)",
        run: cheaters::lazy_provider_withholding,
    },
    Scenario {
        name: "lazy-provider-stalling",
        about: "the lazy worker holds each forged lease for the whole run time with heartbeats, \
                so escrow is released to it per interval as to an honest worker; the audit \
                catches it as before, and every interval released to a caught forgery is clawed \
                back from its stake with the slash",
        attempt: LAZY_ATTEMPT,
        run: cheaters::lazy_provider_stalling,
    },
    Scenario {
        name: "fake-capacity",
        about: "a node registers an H100 and claims its capacity but has a CPU: it misses the \
                matrix challenges sized for its claim, or bluffs a root it cannot open",
        attempt:
            "a matrix challenge sized for the H100 capacity it claims, judged by the end of the run",
        run: cheaters::fake_capacity,
    },
    Scenario {
        name: "copying-replica",
        about: "a replica copies another replica's commitment instead of computing; it cannot \
                open it (commitments bind their author): each copy is withheld, unpaid, and \
                slashed when its late reveal window closes unopened",
        attempt:
            "a copied commitment landed as a replica; not caught: a copy on a task its requester \
                  cancelled before the reveal window closed (never judged, it keeps its released \
                  intervals)",
        run: cheaters::copying_replica,
    },
    Scenario {
        name: "late-challenge-answers",
        about: "a node forwards its capacity challenges to another machine; the answers come \
                back after the deadline",
        attempt: "a matrix challenge it relays, judged by the end of the run",
        run: cheaters::late_challenge_answers,
    },
    Scenario {
        name: "colluding-replicas",
        about: "two nodes of a cartel commit the same wrong hash on every replicated task they \
                get; replicas are drawn at random and any split goes to a committee of other \
                owners, which outvotes the cartel whether it holds one replica or two",
        attempt: "a forged result committed as a replica, by either member; not caught (unpaid): \
                  forgeries on tasks that failed without a verdict (the task exits with an \
                  error on every machine, or no committee could be staffed)",
        run: cheaters::colluding_replicas,
    },
    Scenario {
        name: "colluding-replicas-rational",
        about: "the same cartel lies only when both hold replicas of one task, so it wins the \
                replicas' own vote; the split still goes to a committee of other owners, which \
                outvotes it",
        attempt: "a forged result committed as a replica, by either member; not caught (unpaid): \
                  forgeries on tasks that failed without a verdict (the task exits with an \
                  error on every machine, or no committee could be staffed)",
        run: cheaters::colluding_replicas_rational,
    },
    Scenario {
        name: "lazy-auditor",
        about: "an auditor never re-executes: it copies the hash its partner worker passes on, \
                and guesses otherwise",
        attempt: "an audit committed without re-executing: a guess (caught), or a copy of its \
                  partner worker's output: the right result, which nothing shows, so no rule \
                  can catch it and it keeps the pay",
        run: cheaters::lazy_auditor,
    },
    Scenario {
        name: "dishonest-disputer",
        about: "a requester disputes every honest result to get its money back; the committee \
                confirms the results and the requester loses its bonds",
        attempt: "a dispute of a right result",
        run: cheaters::dishonest_disputer,
    },
    Scenario {
        name: "patient-forger",
        about: "a worker builds a clean streak honestly, then forges an audited task wherever \
                pay·(1 − p) − (slash + pay)·p > 0 from the public params, p its audit rate \
                and the requester's known-answer rate from its history; requesters of short \
                (90 s) tasks, injecting no known answers, where holding a forged lease to the \
                end of the time limit's grace would pay more than the slash's basis",
        attempt: "a forged result committed as worker; none while every forgery's expected \
                  profit is negative (a lease earns at most its price for the time limit, the \
                  slash is 20 times that, the audit floor 5%): it works honestly",
        run: forgers::patient_forger,
    },
    Scenario {
        name: "selective-forger",
        about: "a worker forges where it predicts no check: unverified (`none`) tasks, checked \
                only by known answers, weighing each requester's known-answer rate from its \
                public history (one requester never injects), and audited tasks where its \
                audit rate makes forging pay",
        attempt: "a forged result committed as worker; none while every forgery's expected \
                  profit is negative: `spot` tasks are audited at the 5% floor whatever the \
                  node's streak (tasks with no audit, `none`, were forged at a profit before)",
        run: forgers::selective_forger,
    },
    Scenario {
        name: "whitewasher",
        about: "a lazy worker that, once slashed, registers a fresh account and node with a \
                fresh stake (offences are per owner) and forges again, three accounts in all; \
                each forges a quarter of its results once its clean streak of 10 makes an \
                audit uncertain",
        attempt: "a forged result committed as worker, by any of its accounts; not caught: \
                  forgeries the audit draw skipped at max(5%, 1/streak) (paid), and those on \
                  tasks that failed or were cancelled before a verdict (unpaid)",
        run: forgers::whitewasher,
    },
    Scenario {
        name: "known-answer-spotter",
        about: "a worker on unverified tasks forges only those it classifies as real rather \
                than known-answer, from every feature public history shows (terms, time since \
                the requester's previous submission); its requesters inject one task in ten",
        attempt: "a forged result committed as worker on a task it took for a real one; none \
                  while the audit floor alone makes a forgery's expected profit negative, \
                  whatever the known answers it spots",
        run: forgers::known_answer_spotter,
    },
    Scenario {
        name: "honest-stress",
        about: "as honest, with two slow disks (runs 2-4 times as long, within the time limit) \
                and two of the three requesters' tasks non-deterministic (outputs differ by \
                machine class, declared, compared by summary within tolerance: one requester in \
                tolerance mode, one in committee mode): nobody is slashed for an honest \
                difference",
        attempt: "none: no cheater",
        run: stress::honest_stress,
    },
    Scenario {
        name: "relay-sybils",
        about: "six sybil nodes of different owners each register one hidden H100 and claim its \
                capacity, relaying every challenge to it; the machine answers them one after \
                another and skips those it cannot finish in time",
        attempt: "a matrix challenge sized for the H100 a sybil claims (it has a share of one), \
                  judged by the end of the run, and a GPU task run on that share. Not caught: \
                  the challenges the machine answers in time (a challenge proves the capacity \
                  that answered, not whose it is: only the one deadline for every node limits \
                  how many sybils one machine answers for), and the GPU tasks a sybil got while \
                  its latest challenge stood passed (nothing in a result shows the hardware)",
        run: seats::relay_sybils,
    },
    Scenario {
        name: "hardware-liar",
        about: "a CPU node registers an H100 and claims (and proves) only its CPU capacity; H100 \
                tasks placed on it run four times slower, paid per time",
        attempt: "a GPU task it ran on a CPU (nothing in the result shows it, so never caught by \
                  itself), or a matrix challenge sized for more than its CPU",
        run: seats::hardware_liar,
    },
    Scenario {
        name: "sybil-cartel-majority",
        about: "six of ten providers (distinct owners) form a cartel that forges only when it \
                holds all three replica seats of a task, so the replicas are unanimous",
        attempt: "a forged result revealed as a replica, by any member; not caught: a unanimous \
                  round draws no committee, so only a known answer (1.5% of tasks) or a dispute \
                  re-runs it, and the cartel holds most seats of either",
        run: seats::sybil_cartel_majority,
    },
    Scenario {
        name: "copying-judge",
        about: "a referee (audit referee or replica committee member) never re-executes: it \
                copies what the round it judges shows. A split is judged before anything is \
                revealed, so it sees only equality tags: it copies the tag most seen (equal or \
                different, never the output) over a guess; a round judged after a missed reveal \
                shows a revealed hash, which it copies. A lazy worker forging a quarter of its \
                results makes the splits it judges",
        attempt: "a result committed as referee without re-executing, and the lazy worker's \
                  forgeries. Not caught: copies of the right hash after a missed reveal (nothing \
                  shows them). A copied tag cannot be opened: the judge is withheld, replaced by \
                  another blind one, and slashed when its late reveal window closes",
        run: seats::copying_judge,
    },
    Scenario {
        name: "guessing-judge",
        about: "a referee (audit referee or replica committee member) never re-executes: it \
                commits to a guess of its own, which it can open. A lazy worker forging a \
                quarter of its results makes the splits it judges; its guess makes a third \
                result, which alone would fail the task `no-quorum` and spare the forger",
        attempt: "a result committed as referee without re-executing. Two more judges are \
                  drawn blind whenever the tags leave no majority possible, and the five \
                  outvote it",
        run: seats::guessing_judge,
    },
    Scenario {
        name: "colluding-cancel",
        about: "a worker forges half of its partner requester's tasks and tells it; the partner \
                cancels each one as soon as it is audited, before worker and auditor reveal",
        attempt: "a forged result committed as worker on its partner's task; not caught: \
                  forgeries the audit draw skipped once its clean streak reached 10 (audited at \
                  max(5%, 1/streak): paid, and no cancel is needed)",
        run: seats::colluding_cancel,
    },
    Scenario {
        name: "lying-requester",
        about: "a requester commits to a wrong known answer on every task and reveals it, \
                claiming a mismatch to get the honest provider slashed; the committee re-runs",
        attempt: "a known-answer claim against a right result (a dispute)",
        run: seats::lying_requester,
    },
];

pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// The common base: `providers` honest providers at random prices and speeds, honest
/// requesters, the default network (delay 20-400 ms, 1% loss).
pub fn base_setup(seed: u64, rng: &mut SimRng, providers: usize) -> Setup {
    Setup {
        seed,
        params: sim_params(),
        network: NetworkConfig::default(),
        providers: (0..providers).map(|_| honest_provider(rng)).collect(),
        requesters: Vec::new(),
        submit_window_ms: 240_000,
        crashes: Vec::new(),
        slow_disks: Vec::new(),
        partitions: Vec::new(),
        horizon_ms: 0,
        base_window_ms: 240_000,
    }
}

/// Builds and runs a setup to its end; `detector` and `bound` describe the cheater, if any.
pub fn run(
    name: &'static str,
    setup: &Setup,
    detector: Option<Detector>,
    bound: Option<Bound>,
) -> RunReport {
    let mut world = setup.build();
    world.detector = detector;
    world.run(horizon_ms(setup));
    RunReport::of(name, setup.seed, &world, bound)
}

/// How long a setup runs: its horizon, or until every task could have ended.
pub fn horizon_ms(setup: &Setup) -> u64 {
    if setup.horizon_ms != 0 {
        return setup.horizon_ms;
    }
    // A withheld lease of the last task is judged up to a late reveal window after it ends.
    let late = setup.params.verification.late_reveal_window_ms;
    setup.submit_window_ms + setup.task_end_bound_ms() + late
}

/// A crash of a random provider during the busy period, back after `down_ms`.
fn random_crash(rng: &mut SimRng, providers: usize, down_ms: (u64, u64)) -> Crash {
    let at_ms = rng.between(20_000, 200_000);
    let provider = rng.below(providers as u64) as usize;
    Crash { provider, at_ms, restart_ms: at_ms + rng.between(down_ms.0, down_ms.1) }
}

/// Outages of honest providers (crashes, partitions) that end within every window the ledger
/// gives a node to answer: the shortest is the 30 s opening window of a capacity challenge
/// (`ChallengeParams::open_window_ms`), then the 60 s reveal window. A lease expires after 15 s
/// without a heartbeat, so these outages do cause reassignments.
pub const SHORT_OUTAGE_MS: (u64, u64) = (5_000, 25_000);
/// Outages longer than the reveal window: what the ledger does to an honest node that was away
/// between a commitment and its opening is measured by `honest-long-outage`.
pub const LONG_OUTAGE_MS: (u64, u64) = (70_000, 180_000);

fn honest(seed: u64) -> RunReport {
    honest_with("honest", seed, SHORT_OUTAGE_MS)
}

fn honest_long_outage(seed: u64) -> RunReport {
    honest_with("honest-long-outage", seed, LONG_OUTAGE_MS)
}

fn honest_with(name: &'static str, seed: u64, down_ms: (u64, u64)) -> RunReport {
    let (setup, _) = honest_setup(seed, down_ms);
    run(name, &setup, None, None)
}

/// The honest network of `honest`, with outages of `down_ms`, and the generator that drew it.
fn honest_setup(seed: u64, down_ms: (u64, u64)) -> (Setup, SimRng) {
    let mut rng = SimRng::new(seed, "scenario honest");
    let providers = 6;
    let mut setup = base_setup(seed, &mut rng, providers);
    let verifications = vec![
        Verification::Spot,
        Verification::Audit,
        Verification::Audit,
        Verification::Replicas(3),
    ];
    setup.requesters = (0..3).map(|_| RequesterSpec::honest(14, verifications.clone())).collect();
    // A rougher network than the default: up to 5% loss and 600 ms delay.
    setup.network = NetworkConfig {
        delay_ms_min: 20,
        delay_ms_max: rng.between(200, 600),
        loss_ppm: rng.between(5_000, 50_000) as u32,
    };
    setup.crashes = (0..2).map(|_| random_crash(&mut rng, providers, down_ms)).collect();
    let from_ms = rng.between(30_000, 200_000);
    setup.partitions = vec![Partition {
        party: rng.below(providers as u64) as usize,
        from_ms,
        until_ms: from_ms + rng.between(down_ms.0, down_ms.1),
    }];
    (setup, rng)
}
