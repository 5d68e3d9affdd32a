//! A validator as a process: the application and the simplex engine on Commonware's tokio
//! runtime, authenticated p2p (ed25519 identities, encrypted streams) to the other validators at
//! their loopback or network addresses, the node's durable chain in its own data directory (each
//! finalized block re-executed and committed there) and the node's HTTP API on that chain, so
//! the CLI and provider agents talk to any validator as they talk to the single sequencer.
//!
//! A validator's setup (`validator.json` in its data directory) holds its identity key, its
//! threshold share and the set: every validator's public key and addresses. `aicpw devnet`
//! writes the setups of a local network; [`run`] runs one.

use crate::app::{account_of, Application, Host, Record, BLOCK_TXS};
use crate::{Scheme, NAMESPACE};
use aicpw_ledger::{Genesis, State};
use aicpw_node::{Bound, NodeConfig, Shared, StorePolicy};
use aicpw_types::{Amount, Block, Keypair, SignedTx};
use commonware_codec::{Decode, DecodeExt, Encode};
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::Engine;
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion, Sharing};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::{ChaCha20Poly1305, Sha256, Signer as _};
use commonware_math::algebra::Random;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{tokio as cw_tokio, Quota, Runner, Supervisor};
use commonware_stream::{cups, sake};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{N3f1, NZDuration, NZUsize, NZU16, NZU32};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file in a validator's data directory that holds its setup.
pub const SETUP_FILE: &str = "validator.json";
/// The chain id of local validator networks.
pub const DEVNET_CHAIN_ID: &str = "aicpw-devnet";
/// An empty block is proposed at most this often (blocks with transactions at once): the
/// chain's clock moves without traffic, and an idle network does not commit hundreds of empty
/// blocks a second.
pub const EMPTY_BLOCK_MS: u64 = 200;
/// Largest p2p message: a full block of transactions fits.
const MESSAGE_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// One validator of the set, as every validator knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Peer {
    /// Its ed25519 public key (hex): its p2p identity, its votes' signer, its account.
    pub key: String,
    pub p2p: SocketAddr,
    pub api: SocketAddr,
}

/// What one validator needs to run: its secrets and the set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    /// Its ed25519 private key (hex).
    pub key: String,
    /// Its share of the threshold key (hex), and the public polynomial of all shares (hex).
    pub share: String,
    pub polynomial: String,
    pub validators: Vec<Peer>,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("validator setup {path}: {reason}")]
    Setup { path: String, reason: String },
    #[error(transparent)]
    Node(#[from] aicpw_node::NodeError),
    #[error("a finalized block could not be committed: {0}")]
    Halted(String),
}

fn hex_decode(field: &str, text: &str) -> Result<Vec<u8>, String> {
    hex::decode(text).map_err(|e| format!("{field} is not hex: {e}"))
}

/// The genesis of a local validator network: the dev accounts of `aicpw keys dev` (funded as
/// on a dev node) and each validator's account.
pub fn devnet_genesis(validators: &[PublicKey]) -> Genesis {
    let mut genesis = aicpw_node::dev_genesis();
    genesis.chain_id = DEVNET_CHAIN_ID.into();
    let stake = validators.iter().map(|key| (account_of(key), Amount::tokens(10_000)));
    genesis.accounts.extend(stake);
    genesis
}

/// Deals a new validator set: fresh identity keys, and threshold shares from a dealer that
/// forgets the secret once the shares are written (a distributed key generation would remove
/// even that moment of trust). `addresses` are each validator's (p2p, api).
pub fn deal_setups(addresses: &[(SocketAddr, SocketAddr)]) -> Vec<Setup> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let keys: Vec<PrivateKey> = addresses.iter().map(|_| PrivateKey::random(&mut rng)).collect();
    let participants = Set::from_iter_dedup(keys.iter().map(|k| k.public_key()));
    let (output, shares) = deal::<MinSig, _, N3f1>(&mut rng, Mode::NonZeroCounter, participants)
        .expect("a deal for a valid set");
    let validators: Vec<Peer> = keys
        .iter()
        .zip(addresses)
        .map(|(key, (p2p, api))| Peer {
            key: hex::encode(key.public_key().encode()),
            p2p: *p2p,
            api: *api,
        })
        .collect();
    keys.iter()
        .map(|key| Setup {
            key: hex::encode(key.encode()),
            share: hex::encode(
                shares.get_value(&key.public_key()).expect("a share per validator").encode(),
            ),
            polynomial: hex::encode(output.public().encode()),
            validators: validators.clone(),
        })
        .collect()
}

/// A setup read back and checked: keys, share and set decoded, the share's key in the set.
struct Loaded {
    key: PrivateKey,
    scheme: Scheme,
    peers: Vec<(PublicKey, Peer)>,
}

impl Setup {
    pub fn read(data_dir: &Path) -> Result<Setup, ValidatorError> {
        let path = data_dir.join(SETUP_FILE);
        let error =
            |reason: String| ValidatorError::Setup { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| error(e.to_string()))
    }

    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(data_dir.join(SETUP_FILE), text)
    }

    fn load(&self) -> Result<Loaded, String> {
        let key =
            PrivateKey::decode(hex_decode("key", &self.key)?).map_err(|e| format!("key: {e}"))?;
        let share =
            Share::decode(hex_decode("share", &self.share)?).map_err(|e| format!("share: {e}"))?;
        let total = NonZeroU32::new(self.validators.len() as u32).ok_or("no validators")?;
        let polynomial = Sharing::<MinSig>::decode_cfg(
            hex_decode("polynomial", &self.polynomial)?,
            &(total, ModeVersion::v0()),
        )
        .map_err(|e| format!("polynomial: {e}"))?;
        let mut peers = Vec::new();
        for peer in &self.validators {
            let public = PublicKey::decode(hex_decode("validator key", &peer.key)?)
                .map_err(|e| format!("validator key: {e}"))?;
            peers.push((public, peer.clone()));
        }
        let participants = Set::from_iter_dedup(peers.iter().map(|(k, _)| k.clone()));
        if participants.len() != peers.len() {
            return Err("a validator is listed twice".into());
        }
        if participants.position(&key.public_key()).is_none() {
            return Err("this validator's key is not in the set".into());
        }
        let scheme = Scheme::signer(NAMESPACE, participants, polynomial, share)
            .ok_or("the share is not this validator's")?;
        Ok(Loaded { key, scheme, peers })
    }
}

/// The node's mempool and chain as a validator's host: proposals from the mempool, finalized
/// blocks committed to the chain (and the API's waiters and subscribers told).
struct NodeHost {
    shared: Arc<Shared>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Host for NodeHost {
    fn pending(&mut self, state: &State) -> Vec<SignedTx> {
        self.shared.pending(state, BLOCK_TXS)
    }

    fn finalized(&mut self, block: &Block, _state: &State) -> Result<(), String> {
        let committed = self.shared.commit_finalized(block.clone()).map(|_| ());
        let failed = committed.map_err(|e| e.to_string());
        if let Err(reason) = &failed {
            *self.failed.lock().expect("no panics while locked") = Some(reason.clone());
        }
        failed
    }
}

/// Runs the validator whose setup is in `data_dir` until its process ends, or until a finalized
/// block cannot be committed (a bug or a broken disk: it stops, and restarts from its last
/// committed block). Consensus state (the engine's journal) lives in `data_dir/consensus`, the
/// chain and content store in `data_dir` as on a node.
pub fn run(data_dir: &Path) -> Result<(), ValidatorError> {
    let setup = Setup::read(data_dir)?;
    let loaded = setup.load().map_err(|reason| ValidatorError::Setup {
        path: data_dir.join(SETUP_FILE).display().to_string(),
        reason,
    })?;
    let journal = data_dir.join("consensus");
    std::fs::create_dir_all(&journal).map_err(|e| ValidatorError::Setup {
        path: journal.display().to_string(),
        reason: e.to_string(),
    })?;
    let config = cw_tokio::Config::new().with_worker_threads(2).with_storage_directory(journal);
    cw_tokio::Runner::new(config).start(|context| serve(context, data_dir.to_path_buf(), loaded))
}

async fn serve(
    context: cw_tokio::Context,
    data_dir: PathBuf,
    loaded: Loaded,
) -> Result<(), ValidatorError> {
    let Loaded { key, scheme, peers } = loaded;
    let public = key.public_key();
    let me = peers.iter().find(|(k, _)| *k == public).map(|(_, p)| p.clone()).ok_or_else(|| {
        ValidatorError::Setup { path: data_dir.display().to_string(), reason: "not in set".into() }
    })?;
    let keys: Vec<PublicKey> = peers.iter().map(|(k, _)| k.clone()).collect();
    let genesis = devnet_genesis(&keys);
    let bound = Bound::open(NodeConfig {
        data_dir: data_dir.clone(),
        listen: me.api,
        genesis: Some(genesis.clone()),
        proposer: Keypair::dev(0),
        store: StorePolicy::default(),
        connections_per_address: aicpw_node::server::CONNECTIONS_PER_ADDRESS_MAX,
    })
    .await?;
    let shared = bound.shared.clone();
    // The API on the node's chain, without its block producer: blocks come from consensus.
    let api = tokio::spawn(bound.serve_api(std::future::pending()));

    let handshake = cups::Cups::<_, ChaCha20Poly1305>::new(
        sake::Sake {
            signer: key.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let p2p_config = lookup::Config::local(
        handshake,
        NAMESPACE,
        me.p2p,
        NZUsize!(peers.len()),
        MESSAGE_BYTES_MAX,
        NZUsize!(1_024),
    );
    let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let addresses: Map<PublicKey, Address> = peers
        .iter()
        .map(|(k, p)| (k.clone(), Address::from(p.p2p)))
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| ValidatorError::Setup {
            path: data_dir.display().to_string(),
            reason: "a validator is listed twice".into(),
        })?;
    let _ = oracle.track(0, addresses);
    let quota = Quota::per_second(NZU32!(100_000));
    let votes = network.register(0, quota);
    let certificates = network.register(1, quota);
    let resolver = network.register(2, quota);
    let blocks = network.register(3, quota);
    network.start();

    // The application resumes from the chain's committed head: blocks at or below it are not
    // applied again, those after it are fetched from the other validators.
    let chain_state = {
        let chain = shared.chain();
        chain.head().cloned().map(|head| (head, chain.state().clone()))
    };
    let failed = Arc::new(Mutex::new(None));
    let host = NodeHost { shared: shared.clone(), failed: failed.clone() };
    let record = Arc::new(Mutex::new(Record::default()));
    let (app, mailbox) = Application::new(
        context.child("application"),
        scheme.clone(),
        State::genesis(&genesis),
        host,
        record,
    );
    let app = app.pace(EMPTY_BLOCK_MS);
    let app = match chain_state {
        Some((head, state)) => app.resume(head, state),
        None => app,
    };
    let genesis_digest = app.genesis_digest();
    let app = app.start(blocks.0, blocks.1);
    let config = Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker: oracle.clone(),
        automaton: mailbox.clone(),
        relay: mailbox.clone(),
        reporter: mailbox,
        strategy: Sequential,
        partition: "validator".into(),
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::new(0),
        floor: Floor::Genesis(genesis_digest),
        leader_timeout: Duration::from_millis(1_000),
        certification_timeout: Duration::from_millis(2_000),
        timeout_retry: Duration::from_millis(5_000),
        fetch_timeout: NZDuration!(Duration::from_millis(1_000)),
        fetch_retry_delay: Duration::from_millis(100),
        view_retention: ViewDelta::new(256),
        skip: SkipPolicy::Enabled {
            timeout: Duration::from_secs(10),
            budget: SkipBudget::Participants,
        },
        replay_buffer: NZUsize!(1024 * 1024),
        write_buffer: NZUsize!(1024 * 1024),
        page_cache: CacheRef::new(NZU16!(4096), NZUsize!(64)),
        forward: ForwardPolicy::Disabled,
        track_historical_votes: false,
    };
    let engine = Engine::new(context.child("engine"), config);
    let engine = engine.start(votes, certificates, resolver);
    tracing::info!(api = %me.api, p2p = %me.p2p, "validator started");
    let _ = app.await;
    engine.abort();
    api.abort();
    let reason = failed.lock().expect("no panics while locked").take();
    Err(ValidatorError::Halted(reason.unwrap_or_else(|| "the application stopped".into())))
}
