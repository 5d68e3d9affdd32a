//! Validators in one process on Commonware's deterministic runtime and simulated network: the
//! shipped application and engine, seeded faults, and the checks after the run. Each run is a
//! function of its seed alone.

use crate::app::{account_of, Application, Mempool, Record, Shared};
use crate::{Scheme, NAMESPACE};
use aicpw_ledger::{Genesis, Params, State};
use aicpw_types::{Amount, Hash32, Keypair, Tx, TxBody};
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::Engine;
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::{Sha256, Signer as _};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{deterministic, Clock, Handle, Quota, Runner, Supervisor};
use commonware_utils::ordered::Set;
use commonware_utils::{N3f1, NZDuration, NZUsize, NZU16, NZU32};
use rand::RngExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which faults a run injects (each at a time and on validators drawn from the seed).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Faults {
    /// One validator crashes and restarts with the engine's storage, its ledger state lost.
    pub crash: bool,
    /// One validator is cut off from the others for a while.
    pub partition: bool,
    /// Every link drops 5% of messages and delays them 40±20 ms.
    pub lossy: bool,
    /// One validator proposes blocks with a wrong state root whenever it leads.
    pub liar: bool,
}

impl Faults {
    pub const ALL: Faults = Faults { crash: true, partition: true, lossy: true, liar: true };
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub validators: u32,
    /// Finalized height every honest validator must reach.
    pub blocks: u64,
    pub faults: Faults,
    /// Signed transfers submitted per 100 ms of simulated time.
    pub txs_per_tick: u32,
}

/// What one run shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub seed: u64,
    /// The state root every validator finalized at height `blocks`.
    pub state_hash: String,
    pub violations: Vec<String>,
    pub heights: Vec<u64>,
    pub txs: u64,
    pub evidence: usize,
    /// Proposals the validators voted against, summed over validators.
    pub refused: u64,
    /// Finalized blocks the lying validator proposed (each names a wrong root: must be 0).
    pub liar_finalized: u64,
    /// Simulated milliseconds from a block's time to its finalization, per block and validator.
    pub finality_ms: Vec<u64>,
    pub simulated_ms: u64,
}

const ACCOUNTS: u32 = 16;

fn genesis(validators: &[PublicKey]) -> Genesis {
    let users = (0..ACCOUNTS).map(|i| (Keypair::dev(1_000 + i).account(), Amount::tokens(1_000)));
    let stake = validators.iter().map(|key| (account_of(key), Amount::tokens(10_000)));
    Genesis {
        chain_id: "aicpw-consensus-sim".into(),
        params: Params::default(),
        accounts: users.chain(stake).collect(),
    }
}

struct Channels {
    votes: (simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>),
    certificates:
        (simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>),
    resolver:
        (simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>),
    blocks: (simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>),
}

async fn register(oracle: &Oracle<PublicKey, deterministic::Context>, key: &PublicKey) -> Channels {
    let control = oracle.control(key.clone());
    let quota = Quota::per_second(NZU32!(100_000));
    let votes = control.register(0, quota).await.expect("network up");
    let certificates = control.register(1, quota).await.expect("network up");
    let resolver = control.register(2, quota).await.expect("network up");
    let blocks = control.register(3, quota).await.expect("network up");
    Channels { votes, certificates, resolver, blocks }
}

/// One validator's running parts: its application and engine.
struct Running {
    app: Handle<()>,
    engine: Handle<()>,
}

#[allow(clippy::too_many_arguments)]
async fn start_validator(
    context: &deterministic::Context,
    oracle: &Oracle<PublicKey, deterministic::Context>,
    key: &PublicKey,
    scheme: Scheme,
    genesis: &State,
    mempool: Mempool,
    record: Shared,
    incarnation: u32,
    lying: bool,
) -> Running {
    let context =
        context.child("validator").with_attribute("key", key).with_attribute("run", incarnation);
    let channels = register(oracle, key).await;
    let (app, mailbox) = Application::new(
        context.child("application"),
        scheme.clone(),
        genesis.clone(),
        mempool,
        record,
    );
    let app = if lying { app.lying() } else { app };
    let genesis_digest = app.genesis_digest();
    let app = app.start(channels.blocks.0, channels.blocks.1);
    let config = Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker: oracle.control(key.clone()),
        automaton: mailbox.clone(),
        relay: mailbox.clone(),
        reporter: mailbox,
        strategy: Sequential,
        partition: format!("validator-{key}"),
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::new(0),
        floor: Floor::Genesis(genesis_digest),
        leader_timeout: Duration::from_millis(500),
        certification_timeout: Duration::from_millis(1_000),
        timeout_retry: Duration::from_millis(2_000),
        fetch_timeout: NZDuration!(Duration::from_millis(500)),
        fetch_retry_delay: Duration::from_millis(100),
        view_retention: ViewDelta::new(64),
        skip: SkipPolicy::Enabled {
            timeout: Duration::from_secs(5),
            budget: SkipBudget::Participants,
        },
        replay_buffer: NZUsize!(1024 * 1024),
        write_buffer: NZUsize!(1024 * 1024),
        page_cache: CacheRef::new(NZU16!(1024), NZUsize!(10)),
        forward: ForwardPolicy::Disabled,
        track_historical_votes: false,
    };
    let engine = Engine::new(context.child("engine"), config);
    let engine = engine.start(channels.votes, channels.certificates, channels.resolver);
    Running { app, engine }
}

async fn link_all(
    oracle: &Oracle<PublicKey, deterministic::Context>,
    keys: &[PublicKey],
    link: &Link,
    only: impl Fn(usize, usize) -> bool,
) {
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate() {
            if i != j && only(i, j) {
                let _ = oracle.remove_link(a.clone(), b.clone()).await;
                oracle.add_link(a.clone(), b.clone(), link.clone()).await.expect("link");
            }
        }
    }
}

async fn unlink(
    oracle: &Oracle<PublicKey, deterministic::Context>,
    keys: &[PublicKey],
    cut: usize,
) {
    for (i, other) in keys.iter().enumerate() {
        if i != cut {
            let _ = oracle.remove_link(keys[cut].clone(), other.clone()).await;
            let _ = oracle.remove_link(other.clone(), keys[cut].clone()).await;
        }
    }
}

/// A trusted dealer's threshold shares for `participants` (in their order), each validator's
/// signing scheme: any 2f+1 of them sign a view's seed, no f of them can. A distributed key
/// generation would remove the dealer, who could sign every seed alone.
pub fn deal_schemes(rng: &mut impl rand::CryptoRng, participants: &Set<PublicKey>) -> Vec<Scheme> {
    let (output, shares) = deal::<MinSig, _, N3f1>(rng, Mode::NonZeroCounter, participants.clone())
        .expect("a deal for a valid set");
    let polynomial = output.public().clone();
    participants
        .iter()
        .map(|key| {
            let share = shares.get_value(key).expect("a share per validator").clone();
            Scheme::signer(NAMESPACE, participants.clone(), polynomial.clone(), share)
                .expect("the share is the validator's")
        })
        .collect()
}

/// Runs one scenario to the end and checks it: honest validators finalized the same blocks with
/// the same state roots, in order, every invariant held after each block.
pub fn run(scenario: &Scenario) -> Outcome {
    let config = deterministic::Config::new()
        .with_seed(scenario.seed)
        .with_timeout(Some(Duration::from_secs(600)));
    let scenario = scenario.clone();
    deterministic::Runner::new(config).start(|mut context| async move {
        let n = scenario.validators as usize;
        let keys: Vec<PublicKey> = (0..n)
            .map(|i| {
                PrivateKey::from_seed(scenario.seed.wrapping_mul(1_000).wrapping_add(i as u64))
                    .public_key()
            })
            .collect();
        let participants = Set::from_iter_dedup(keys.clone());
        let keys: Vec<PublicKey> = participants.iter().cloned().collect();
        let schemes = deal_schemes(&mut context, &participants);
        let network_config = simulated::Config {
            max_size: 8 * 1024 * 1024,
            max_peers_per_set: NZUsize!(n),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        };
        let (network, oracle) =
            Network::new_with_peers(context.child("network"), network_config, keys.clone()).await;
        network.start();
        let link = match scenario.faults.lossy {
            true => Link {
                latency: Duration::from_millis(40),
                jitter: Duration::from_millis(20),
                success_rate: commonware_utils::probability!(0.95),
            },
            false => Link {
                latency: Duration::from_millis(10),
                jitter: Duration::from_millis(2),
                success_rate: commonware_utils::probability!(1.0),
            },
        };
        link_all(&oracle, &keys, &link, |_, _| true).await;

        let genesis = State::genesis(&genesis(&keys));
        let mempools: Vec<Mempool> = (0..n).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let records: Vec<Shared> =
            (0..n).map(|_| Arc::new(Mutex::new(Record::default()))).collect();
        // The crashed validator, the partitioned one after it, the liar after that.
        let victim = context.random_range(0..n);
        let liar = (victim + 2) % n;
        let mut running = Vec::new();
        for i in 0..n {
            let started = start_validator(
                &context,
                &oracle,
                &keys[i],
                schemes[i].clone(),
                &genesis,
                mempools[i].clone(),
                records[i].clone(),
                0,
                scenario.faults.liar && i == liar,
            )
            .await;
            running.push(Some(started));
        }

        // Clients: each tick every user signs a transfer and sends it to every validator.
        let users: Vec<Keypair> = (0..ACCOUNTS).map(|i| Keypair::dev(1_000 + i)).collect();
        let mut nonces = vec![0u64; users.len()];
        let crash_at = 1_500 + context.random_range(0..1_000u64);
        let cut = (victim + 1) % n;
        let partition_at = 4_000 + context.random_range(0..1_000u64);
        let heal_ms = 2_000;
        let mut crashed_until = None;
        let mut partitioned_until = None;
        let mut incarnation = 1;
        let started_at = context.current();
        let tick = Duration::from_millis(100);
        let deadline_ms = 300_000;
        loop {
            context.sleep(tick).await;
            let elapsed =
                context.current().duration_since(started_at).unwrap_or_default().as_millis() as u64;
            for _ in 0..scenario.txs_per_tick {
                let who = context.random_range(0..users.len());
                let to = users[(who + 1) % users.len()].account();
                let tx = Tx {
                    chain_id: genesis.meta.chain_id.clone(),
                    signer: users[who].account(),
                    nonce: nonces[who],
                    fee: Amount(10),
                    body: TxBody::Transfer { to, amount: Amount(1) },
                };
                nonces[who] += 1;
                let signed = users[who].sign(tx);
                for mempool in &mempools {
                    mempool.lock().expect("no panics while locked").push(signed.clone());
                }
            }
            if scenario.faults.crash && crashed_until.is_none() && elapsed >= crash_at {
                if let Some(parts) = running[victim].take() {
                    parts.app.abort();
                    parts.engine.abort();
                    let _ = parts.app.await;
                    let _ = parts.engine.await;
                }
                // Its ledger state is lost with the process; it catches up from its peers.
                *records[victim].lock().expect("no panics while locked") = Record::default();
                crashed_until = Some(elapsed + 1_500);
            }
            if let Some(until) = crashed_until {
                if running[victim].is_none() && elapsed >= until {
                    let started = start_validator(
                        &context,
                        &oracle,
                        &keys[victim],
                        schemes[victim].clone(),
                        &genesis,
                        mempools[victim].clone(),
                        records[victim].clone(),
                        incarnation,
                        false,
                    )
                    .await;
                    incarnation += 1;
                    running[victim] = Some(started);
                }
            }
            if scenario.faults.partition && partitioned_until.is_none() && elapsed >= partition_at {
                unlink(&oracle, &keys, cut).await;
                partitioned_until = Some(elapsed + heal_ms);
            }
            if let Some(until) = partitioned_until {
                if until != u64::MAX && elapsed >= until {
                    link_all(&oracle, &keys, &link, |i, j| i == cut || j == cut).await;
                    partitioned_until = Some(u64::MAX);
                }
            }
            let faults_done = (!scenario.faults.crash
                || running[victim].is_some() && crashed_until.is_some())
                && (!scenario.faults.partition || partitioned_until == Some(u64::MAX));
            let reached = records.iter().all(|r| {
                r.lock().expect("no panics while locked").finalized.len() as u64 >= scenario.blocks
            });
            if (reached && faults_done) || elapsed >= deadline_ms {
                let liar = scenario.faults.liar.then(|| account_of(&keys[liar]));
                let outcome = check(&scenario, &records, elapsed, liar);
                for parts in running.into_iter().flatten() {
                    parts.app.abort();
                    parts.engine.abort();
                }
                return outcome;
            }
        }
    })
}

fn check(
    scenario: &Scenario,
    records: &[Shared],
    simulated_ms: u64,
    liar: Option<aicpw_types::AccountId>,
) -> Outcome {
    let records: Vec<std::sync::MutexGuard<'_, Record>> =
        records.iter().map(|r| r.lock().expect("no panics while locked")).collect();
    let mut violations = Vec::new();
    for (i, record) in records.iter().enumerate() {
        violations.extend(record.violations.iter().map(|v| format!("validator {i}: {v}")));
        if (record.finalized.len() as u64) < scenario.blocks {
            violations.push(format!(
                "validator {i} finalized {} blocks of {}",
                record.finalized.len(),
                scenario.blocks
            ));
        }
    }
    let longest = records.iter().map(|r| r.finalized.len()).max().unwrap_or(0);
    for height in 0..longest {
        let mut seen: Option<&(Hash32, Hash32)> = None;
        for record in &records {
            if let Some(entry) = record.finalized.get(height) {
                match seen {
                    None => seen = Some(entry),
                    Some(first) if first != entry => {
                        violations.push(format!("validators disagree at height {}", height + 1));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let target = scenario.blocks.saturating_sub(1) as usize;
    let state_hash = records
        .first()
        .and_then(|r| r.finalized.get(target))
        .map(|(_, root)| root.to_string())
        .unwrap_or_default();
    let mut finality_ms: Vec<u64> = records
        .iter()
        .flat_map(|r| r.finality_ms.iter().map(|(done, made)| done.saturating_sub(*made)))
        .collect();
    finality_ms.sort_unstable();
    let evidence = records.iter().map(|r| r.evidence.len()).max().unwrap_or(0);
    let liar_finalized = records
        .iter()
        .map(|r| r.proposers.iter().filter(|p| Some(**p) == liar).count() as u64)
        .max()
        .unwrap_or(0);
    if liar_finalized > 0 {
        violations.push(format!("{liar_finalized} blocks naming a wrong state root finalized"));
    }
    Outcome {
        seed: scenario.seed,
        state_hash,
        violations,
        heights: records.iter().map(|r| r.finalized.len() as u64).collect(),
        txs: records.first().map_or(0, |r| r.txs),
        evidence,
        refused: records.iter().map(|r| r.refused).sum(),
        liar_finalized,
        finality_ms,
        simulated_ms,
    }
}
