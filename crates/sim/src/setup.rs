//! Building a world from a description: genesis, parties, their plans, faults and the network.

use crate::chain::Chain;
use crate::detect::{Attempts, CaughtWhen, Detector};
use crate::net::{Network, NetworkConfig, Partition};
use crate::party::Wallet;
use crate::provider::{Behaviour, HiddenMachine, Provider, ProviderSpec};
use crate::requester::{Planned, Requester, RequesterBehaviour, QUEUE_PATIENCE_MS};
use crate::rng::SimRng;
use crate::watch::Watch;
use crate::work;
use crate::world::{Party, World};
use aicpw_ledger::challenge::ChallengeParams;
use aicpw_ledger::{market, Params};
use aicpw_types::task::{CompareMode, MatchStrategy, Runtime, TaskKind};
use aicpw_types::{AccountId, Amount, Hardware, Keypair, Resources, TaskTerms, Verification};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Tokens every simulated account starts with.
pub const GENESIS_TOKENS: u64 = 1_000_000;
/// Time limit of every simulated task.
pub const TASK_TIME_LIMIT_SECS: u64 = 240;
/// Most a simulated task pays per hour.
pub const TASK_PRICE_MAX_PER_HOUR: u128 = 3_600_000;
/// Slack on top of the computed bound on a task's life.
pub const TASK_END_SLACK_MS: u64 = 60_000;
/// Capacity of an honest CPU machine and of an H100, in compute units (1 CU = 1 GOPS INT8).
pub const UNITS_CPU: u64 = 4_000;
pub const UNITS_H100: u64 = 2_000_000;

/// The genesis parameters of a simulated network: the ledger's defaults, with capacity
/// challenges every minute on small matrices (edge 64: the sim computes them for real), a
/// round trip allowance that covers polling and the simulated network, and short appeals.
pub fn sim_params() -> Params {
    // Appeals are voted on, and withheld reveals may be opened late, for minutes instead of a
    // day, so that they end within a run; escrow is released every few seconds instead of every
    // minute, so that the simulated tasks (seconds of work) are paid per interval and a caught
    // cheater's intervals are clawed back.
    let verification = aicpw_ledger::state::VerificationParams {
        appeal_voting_ms: APPEAL_VOTING_MS,
        late_reveal_window_ms: LATE_REVEAL_WINDOW_MS,
        release_interval_ms: RELEASE_INTERVAL_MS,
        ..Default::default()
    };
    Params {
        verification,
        challenges: ChallengeParams {
            interval_ms: 60_000,
            n_max: 64,
            round_trip_ms: 3_000,
            puzzle_difficulty: 8,
            ..ChallengeParams::default()
        },
        ..Params::default()
    }
}

/// Escrow release interval in the simulation: two of a provider's 3 s heartbeats.
pub const RELEASE_INTERVAL_MS: u64 = 6_000;
/// How long stakers vote on an appeal in the simulation.
pub const APPEAL_VOTING_MS: u64 = 300_000;
/// How long a withheld reveal may be opened late in the simulation: longer than every outage
/// the scenarios stage (`scenarios::LONG_OUTAGE_MS`), so an honest provider always makes it.
pub const LATE_REVEAL_WINDOW_MS: u64 = 600_000;

/// A crash of provider `provider` (index among providers) at `at_ms`, back at `restart_ms`.
#[derive(Clone, Debug)]
pub struct Crash {
    pub provider: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
}

/// One requester: its behaviour and how its tasks are verified.
#[derive(Clone, Debug)]
pub struct RequesterSpec {
    pub behaviour: RequesterBehaviour,
    pub tasks: usize,
    /// Verification of each task, drawn uniformly from this list.
    pub verifications: Vec<Verification>,
    /// Share of its tasks whose answer it knows (known-answer tasks), in ppm.
    pub known_answer_ppm: u32,
    /// Share of its tasks it cancels some time after submitting them, in ppm.
    pub cancel_ppm: u32,
    pub gpu_model: String,
    /// Its tasks' outputs depend on the machine and they declare it
    /// (`TaskTerms::nondeterministic`, `work::nondeterminism`); none of them carries a known
    /// answer, which the ledger refuses on such a task.
    pub nondeterministic: Option<CompareMode>,
    /// Time limit of its tasks.
    pub time_limit_secs: u64,
    /// Its known-answer tasks keep their library entry's own terms (a time limit of
    /// [`LIBRARY_TIME_LIMIT_SECS`]) instead of its real tasks' terms: how the CLI injected them
    /// before it dressed each one in the terms of the real task that drew it.
    pub library_terms: bool,
}

/// Time limit of a library entry's own terms (`RequesterSpec::library_terms`).
pub const LIBRARY_TIME_LIMIT_SECS: u64 = 120;

impl RequesterSpec {
    pub fn honest(tasks: usize, verifications: Vec<Verification>) -> RequesterSpec {
        RequesterSpec {
            behaviour: RequesterBehaviour::Honest,
            tasks,
            verifications,
            known_answer_ppm: aicpw_verify::KnownAnswerPolicy::default().injection_rate_ppm,
            cancel_ppm: 20_000,
            gpu_model: String::new(),
            nondeterministic: None,
            time_limit_secs: TASK_TIME_LIMIT_SECS,
            library_terms: false,
        }
    }
}

/// A provider whose slow disk stretches each of its runs by `factor_permille` (within the
/// task's time limit, `work::slowed`): an honest node that heartbeats on, only late.
#[derive(Clone, Copy, Debug)]
pub struct SlowDisk {
    pub provider: usize,
    pub factor_permille: u32,
}

/// Everything a run is made of.
#[derive(Clone, Debug)]
pub struct Setup {
    pub seed: u64,
    pub params: Params,
    pub network: NetworkConfig,
    pub providers: Vec<ProviderSpec>,
    pub requesters: Vec<RequesterSpec>,
    /// Tasks are submitted at random times in `[0, submit_window_ms)`.
    pub submit_window_ms: u64,
    pub crashes: Vec<Crash>,
    /// Providers whose disk is slow: their runs take longer than their speed says.
    pub slow_disks: Vec<SlowDisk>,
    /// Partitions by party index (providers first, then requesters).
    pub partitions: Vec<Partition>,
    /// Time a run may take at most.
    pub horizon_ms: u64,
    /// Tasks planned up to this time are submitted even after the cheater is caught.
    pub base_window_ms: u64,
}

pub fn hardware_cpu(cores: u32) -> Hardware {
    Hardware {
        region: String::new(),
        cpu_cores: cores,
        memory_mb: 32_768,
        disk_mb: 200_000,
        bandwidth_mbps: 1_000,
        gpu_model: String::new(),
        gpu_count: 0,
        gpu_vram_mb: 0,
        allows_network: false,
        runs_containers: false,
    }
}

pub fn hardware_h100() -> Hardware {
    Hardware { gpu_model: "H100".into(), gpu_count: 1, gpu_vram_mb: 81_920, ..hardware_cpu(32) }
}

/// An honest CPU provider with a random price and speed (some slow).
pub fn honest_provider(rng: &mut SimRng) -> ProviderSpec {
    ProviderSpec {
        hardware: hardware_cpu(8),
        price_per_hour: Amount(u128::from(rng.between(1_000_000, 3_000_000))),
        speed_permille: if rng.chance(250_000) { 400 } else { rng.between(800, 1_500) as u32 },
        units: UNITS_CPU,
        stake: Amount::tokens(5_000),
        behaviour: Behaviour::Honest,
    }
}

pub fn task_terms(name: String, seed: u64, verification: Verification, gpu: &str) -> TaskTerms {
    let gpu_count = u32::from(!gpu.is_empty());
    let mut terms = TaskTerms {
        name: name.clone(),
        kind: TaskKind::Training,
        runtime: Runtime::Sandbox,
        resources: Resources {
            cpu_cores: 2,
            memory_mb: 2_048,
            gpu_count,
            gpu_model: gpu.to_string(),
            ..Resources::default()
        },
        time_limit_secs: TASK_TIME_LIMIT_SECS,
        budget: Amount(0),
        max_price_per_hour: Amount(TASK_PRICE_MAX_PER_HOUR),
        verification,
        strategy: MatchStrategy::LowestPrice,
        reputation_min: 0,
        network: false,
        encrypted: false,
        inputs_cid: format!("sim-{seed}-{name}"),
        input_cids: Vec::new(),
        result_key: [9; 32],
        nondeterministic: None,
    };
    terms.budget = market::budget_min(&terms);
    terms
}

/// The dev keys of party `index` (dev key 0 is the block proposer's).
pub fn keypair(index: usize) -> Keypair {
    Keypair::dev(index as u32 + 1)
}

/// The dev account of party `index`.
pub fn account(index: usize) -> AccountId {
    keypair(index).account()
}

impl Setup {
    /// The bound on a task's life: every attempt may wait for a node, run to its limit and
    /// expire; verification rounds (audit, referee, dispute) may each wait for a seat, run and
    /// wait for reveals; then the result waits for acceptance.
    pub fn task_end_bound_ms(&self) -> u64 {
        let run =
            TASK_TIME_LIMIT_SECS * 1_000 + self.params.time_limit_grace_ms + self.params.lease_ms;
        let attempt = QUEUE_PATIENCE_MS + run;
        let verification = &self.params.verification;
        let round = verification.seat_wait_ms + run + verification.reveal_window_ms;
        let attempts = u64::from(self.params.attempts_max) + 2;
        attempts * attempt + 3 * round + self.params.acceptance_window_ms + TASK_END_SLACK_MS
    }

    fn plans(&self, rng: &mut SimRng, index: usize, spec: &RequesterSpec) -> Vec<Planned> {
        let mut plan: Vec<Planned> = (0..spec.tasks)
            .map(|i| {
                let pick = rng.below(spec.verifications.len() as u64) as usize;
                let verification = spec.verifications.get(pick).copied().unwrap_or_default();
                let name = format!("r{index}-t{i}");
                let mut terms = task_terms(name, self.seed, verification, &spec.gpu_model);
                terms.time_limit_secs = spec.time_limit_secs;
                terms.budget = market::budget_min(&terms);
                terms.nondeterministic = spec.nondeterministic.map(work::nondeterminism);
                let mut planned = Planned {
                    at_ms: rng.below(self.submit_window_ms.max(1)),
                    terms,
                    known_answer_salt: rng
                        .chance(spec.known_answer_ppm)
                        .then(|| rng.hash())
                        .filter(|_| spec.nondeterministic.is_none()),
                    filler: rng.hash(),
                    cancel_after_ms: rng
                        .chance(spec.cancel_ppm)
                        .then(|| rng.between(1_000, TASK_TIME_LIMIT_SECS * 1_000)),
                };
                if spec.library_terms && planned.known_answer_salt.is_some() {
                    planned.terms.time_limit_secs = LIBRARY_TIME_LIMIT_SECS;
                    planned.terms.budget = market::budget_min(&planned.terms);
                }
                planned
            })
            .collect();
        plan.sort_by_key(|p| p.at_ms);
        plan
    }

    /// Builds the world. Parties are the providers first, then the requesters.
    pub fn build(&self) -> World {
        let proposer = Keypair::dev(0).account();
        let count = self.providers.len() + self.requesters.len();
        let mut accounts: Vec<(AccountId, Amount)> =
            (0..count).map(|i| (account(i), Amount::tokens(GENESIS_TOKENS))).collect();
        accounts.push((proposer, Amount::tokens(GENESIS_TOKENS)));
        let supply: u128 = accounts.iter().map(|(_, a)| a.0).sum();
        let chain = Chain::new(self.params.clone(), accounts, proposer, self.seed);
        let mut parties = Vec::with_capacity(count);
        let mut honest = BTreeSet::new();
        let mut machines: BTreeMap<u64, Rc<RefCell<HiddenMachine>>> = BTreeMap::new();
        for (i, spec) in self.providers.iter().enumerate() {
            let mut provider = Provider::new(spec.clone(), Wallet::new(account(i)));
            let slow = self.slow_disks.iter().find(|d| d.provider == i);
            provider.disk_permille = slow.map_or(work::SPEED_REFERENCE, |d| d.factor_permille);
            if provider.is_honest() {
                honest.insert(account(i));
            }
            if let Behaviour::RelaySybil { machine } = spec.behaviour {
                provider.hidden = Some(machines.entry(machine).or_default().clone());
            }
            provider.partners = self.cartel_of(i);
            parties.push(Party::Provider(Box::new(provider)));
        }
        let mut rng = SimRng::new(self.seed, "plans");
        for (r, spec) in self.requesters.iter().enumerate() {
            let id = self.providers.len() + r;
            if spec.behaviour == RequesterBehaviour::Honest {
                honest.insert(account(id));
            }
            let plan = self.plans(&mut rng, r, spec);
            let requester = Requester::new(Wallet::new(account(id)), plan, spec.behaviour);
            parties.push(Party::Requester(Box::new(requester)));
        }
        let net = Network::new(self.network.clone(), self.partitions.clone(), self.seed);
        let watch = Watch::new(supply, honest, self.task_end_bound_ms());
        let mut world = World::new(chain, net, parties, watch, self.seed);
        world.keep_until_ms = self.base_window_ms;
        for crash in &self.crashes {
            world.schedule_crash(crash.provider, crash.at_ms, crash.restart_ms);
        }
        world
    }

    /// The other members of provider `index`'s cartel (colluders of the same cartel).
    fn cartel_of(&self, index: usize) -> BTreeSet<AccountId> {
        let cartel_id = |behaviour: &Behaviour| match behaviour {
            Behaviour::Colluding { cartel, .. } | Behaviour::Unanimous { cartel } => Some(*cartel),
            _ => None,
        };
        let Some(cartel) = cartel_id(&self.providers[index].behaviour) else {
            return BTreeSet::new();
        };
        let member = |j: usize| cartel_id(&self.providers[j].behaviour) == Some(cartel);
        (0..self.providers.len()).filter(|&j| j != index && member(j)).map(account).collect()
    }

    /// The detector for the party at index `cheater`.
    pub fn detector(cheater: usize, rule: CaughtWhen, counts: Attempts) -> Detector {
        Detector::new(account(cheater), rule, counts)
    }
}
