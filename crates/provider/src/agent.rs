//! The provider agent: registers this machine with a stake, watches the ledger for tasks leased
//! to its node, runs them in the executor, and reports results or failures.
//!
//! Every result goes to the ledger in two steps: first a commitment
//! (`verify::replication::commitment(task, account, output_hash, summary, result_cid, salt)` with
//! a fresh random salt, made once the result is uploaded), then, once the ledger says every lease
//! of the task's round has committed, the reveal of the output hash, the summary, the salt and the
//! result's CID. The summary is empty unless the task declared itself non-deterministic: then it
//! is the numbers its run wrote to the summary file it named (`summary_of`), in micro-units. The lease says the node's role (worker,
//! replica, auditor, referee, dispute committee member); the work is the same for all of them.
//!
//! The agent keeps its own state in `work_dir/agent.json` (written atomically), so a restart
//! neither loses a task nor runs one twice: a result already uploaded is committed (or, if it was,
//! revealed) with the salt kept there, without running again, and a task whose outcome is on the
//! ledger is never touched again. A lease whose reveal window passed while the agent was down is
//! *withheld*, and the ledger slashes it unless it is opened within its late reveal window: the
//! node's lease list still shows it (`withheld_until_ms`), so the restarted agent reveals it late
//! from the journal, and an honest provider is never slashed for an outage shorter than that.

mod execute;

pub use execute::summary_of;

use crate::cache::ContentCache;
use crate::client::{Client, ClientError, EventsAbout};
use crate::executor::Executor;
use crate::hardware;
use aicpw_types::{Amount, Hardware, Hash32, Keypair, NodeId, Reject, TaskId, TxBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often the agent looks for new leases when the event stream says nothing (it wakes at once
/// when the stream announces an event about its node).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the agent waits before reconnecting to a broken event stream.
pub const EVENTS_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How often a committed lease checks whether its round's reveals are open, and a lease of an
/// encrypted task whether the requester granted it the content key (the latter also at once
/// when the event stream announces a grant to its node).
pub const REVEAL_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often a running task's heartbeat goes to the ledger (well inside the lease).
pub const TASK_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// How often the node's own heartbeat goes to the ledger.
pub const NODE_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(20);
/// Tasks this agent runs at once, whatever the ledger leases it.
pub const TASKS_RUNNING_MAX: usize = 64;
/// Log lines kept per task (the tail) and returned with the result.
pub const LOG_LINES_KEPT_MAX: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("agent state in {path}: {message}")]
    State { path: String, message: String },
    #[error("hardware detection: {0}")]
    Hardware(String),
    #[error("the ledger answered without {0}")]
    Protocol(&'static str),
}

pub struct AgentConfig {
    pub key: Keypair,
    pub stake: Amount,
    pub price_per_hour: Amount,
    pub work_dir: PathBuf,
    pub endpoint: String,
    /// Registered hardware; `None` detects it.
    pub hardware: Option<Hardware>,
    /// The region this machine is in, registered with its hardware (empty: unstated).
    pub region: String,
    /// Take tasks that ask for network access (`network: full`), each in its own network
    /// namespace with egress only; registered as `Hardware::allows_network`.
    pub allow_network: bool,
    /// Runs `runtime: container` tasks (a `ContainerExecutor`); registered as
    /// `Hardware::runs_containers`. `None`: this node takes sandbox tasks only.
    pub containers: Option<Arc<dyn Executor>>,
    /// Bound of the content cache (`work_dir/cache`) of inputs named by CID.
    pub cache_bytes: u64,
}

/// What the agent remembers across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Journal {
    node: Option<NodeId>,
    /// Tasks whose outcome is on the ledger or being reported; never run again.
    done: BTreeMap<u64, String>,
    /// Results uploaded but maybe not yet revealed, with the salt of their commitment.
    #[serde(default)]
    results: BTreeMap<u64, Sealed>,
}

/// An uploaded result and the secret that opens its commitment.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sealed {
    result_cid: String,
    output_hash: Hash32,
    salt: Hash32,
    /// A non-deterministic task's summary, in micro-units; empty otherwise.
    #[serde(default)]
    summary: Vec<i64>,
}

struct Shared {
    client: Client,
    config: AgentConfig,
    executor: Arc<dyn Executor>,
    cache: ContentCache,
    node: NodeId,
    journal: Mutex<Journal>,
    running: Mutex<BTreeMap<u64, Arc<AtomicBool>>>,
    stop: Arc<AtomicBool>,
    bell: Arc<Bell>,
}

/// Rung by the event thread whenever an event names this node (a new lease, a key grant, a
/// requeue): the lease loop and the leases waiting for their grant wake at once instead of at
/// their next poll.
#[derive(Default)]
struct Bell {
    rings: Mutex<u64>,
    rung: Condvar,
}

impl Bell {
    fn ring(&self) {
        *self.rings.lock().expect("no panics while locked") += 1;
        self.rung.notify_all();
    }

    /// How often it was rung so far: read before looking at the ledger, then passed to `wait`,
    /// so a ring in between is not missed.
    fn rings(&self) -> u64 {
        *self.rings.lock().expect("no panics while locked")
    }

    /// Waits until the bell rang more than `seen` times or `timeout` passed; returns the count.
    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let rings = self.rings.lock().expect("no panics while locked");
        let (rings, _) = self
            .rung
            .wait_timeout_while(rings, timeout, |rings| *rings == seen)
            .expect("no panics while locked");
        *rings
    }
}

fn journal_path(work_dir: &Path) -> PathBuf {
    work_dir.join("agent.json")
}

fn load_journal(work_dir: &Path) -> Result<Journal, AgentError> {
    let path = journal_path(work_dir);
    let state_error =
        |message: String| AgentError::State { path: path.display().to_string(), message };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_error(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
        Err(e) => Err(state_error(e.to_string())),
    }
}

fn save_journal(work_dir: &Path, journal: &Journal) -> Result<(), AgentError> {
    let path = journal_path(work_dir);
    let state_error =
        |message: String| AgentError::State { path: path.display().to_string(), message };
    let bytes = serde_json::to_vec_pretty(journal).map_err(|e| state_error(e.to_string()))?;
    write_durably(&path, &bytes).map_err(|e| state_error(e.to_string()))
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old or the new
/// journal on disk, never a torn or lost one: the new contents are synced before the rename,
/// and the directory after it. Only the agent's user may read it (it holds reveal salts).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

pub fn detected_hardware(work_dir: &Path) -> Result<Hardware, AgentError> {
    let found = hardware::detect(work_dir).map_err(|e| AgentError::Hardware(e.to_string()))?;
    let gpu = found.gpus.first();
    Ok(Hardware {
        cpu_cores: found.cpu_cores,
        memory_mb: found.memory_mb,
        disk_mb: found.disk_mb,
        bandwidth_mbps: 1000,
        gpu_model: gpu.map(|g| g.model.clone()).unwrap_or_default(),
        gpu_count: found.gpus.len() as u32,
        gpu_vram_mb: gpu.map_or(0, |g| g.vram_mb),
        region: String::new(),
        allows_network: false,
        runs_containers: false,
    })
}

/// Bonds what is missing of `stake` and registers the node, unless the journal already names a
/// node of ours that is still active.
fn register(
    client: &Client,
    config: &AgentConfig,
    journal: &mut Journal,
) -> Result<NodeId, AgentError> {
    if let Some(node) = journal.node {
        let found = client.get(&format!("/v1/nodes/{node}"));
        if let Some(found) = found.ok().filter(|n| n["status"] == "active") {
            align_opt_ins(client, config, node, &found)?;
            return Ok(node);
        }
    }
    let who = config.key.account();
    let account = client.get(&format!("/v1/accounts/{who}"))?;
    let staked: Amount =
        account["staked"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    if staked < config.stake {
        let amount = config.stake.saturating_sub(staked);
        client.send(&config.key, TxBody::Bond { amount }, true)?;
    }
    let mut hardware = match &config.hardware {
        Some(hardware) => hardware.clone(),
        None => detected_hardware(&config.work_dir)?,
    };
    if !config.region.is_empty() {
        hardware.region = config.region.clone();
    }
    hardware.allows_network = config.allow_network;
    hardware.runs_containers = config.containers.is_some();
    let body = TxBody::RegisterNode {
        hardware,
        x25519_key: config.key.x25519_public(),
        endpoint: config.endpoint.clone(),
        price_per_hour: config.price_per_hour,
    };
    let committed = client.send(&config.key, body, true)?;
    let node = committed["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event"] == "node_registered"))
        .and_then(|e| e["node"].as_u64())
        .ok_or(AgentError::Protocol("a node_registered event"))?;
    journal.node = Some(NodeId(node));
    journal.done.clear();
    journal.results.clear();
    Ok(NodeId(node))
}

/// Registers what this start of the agent allows: a node registered with network access (or
/// containers) that is restarted without `--allow-network` (`--containers`), or the reverse,
/// updates its registration, so the matcher never sends it tasks it would refuse.
fn align_opt_ins(
    client: &Client,
    config: &AgentConfig,
    node: NodeId,
    found: &serde_json::Value,
) -> Result<(), AgentError> {
    let mut hardware: Hardware = serde_json::from_value(found["hardware"].clone())
        .map_err(|_| AgentError::Protocol("the node's registered hardware"))?;
    let runs_containers = config.containers.is_some();
    if (hardware.allows_network, hardware.runs_containers)
        == (config.allow_network, runs_containers)
    {
        return Ok(());
    }
    hardware.allows_network = config.allow_network;
    hardware.runs_containers = runs_containers;
    let body = TxBody::UpdateNode {
        node,
        hardware,
        x25519_key: config.key.x25519_public(),
        endpoint: config.endpoint.clone(),
        price_per_hour: config.price_per_hour,
    };
    client.send(&config.key, body, true)?;
    Ok(())
}

/// Runs the agent until `stop` is set. Returns the node id it served as.
pub fn run(
    node_url: &str,
    config: AgentConfig,
    executor: Arc<dyn Executor>,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(NodeId),
) -> Result<NodeId, AgentError> {
    std::fs::create_dir_all(&config.work_dir).map_err(|e| AgentError::State {
        path: config.work_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let cache = ContentCache::open(config.work_dir.join("cache"), config.cache_bytes)
        .map_err(|e| AgentError::State { path: "cache".into(), message: e.to_string() })?;
    let client = Client::new(node_url);
    let mut journal = load_journal(&config.work_dir)?;
    let node = register(&client, &config, &mut journal)?;
    save_journal(&config.work_dir, &journal)?;
    on_ready(node);
    // Capacity challenges have a thread of their own: a busy task loop never makes one late.
    let challenger = crate::challenger::spawn(
        node_url,
        config.key.clone(),
        node,
        Default::default(),
        stop.clone(),
    );
    let bell = Arc::new(Bell::default());
    let shared = Arc::new(Shared {
        client,
        config,
        executor,
        cache,
        node,
        journal: Mutex::new(journal),
        running: Mutex::new(BTreeMap::new()),
        stop: stop.clone(),
        bell: bell.clone(),
    });
    let follower = follow_events(node_url, node, bell.clone(), stop.clone());
    let mut last_node_heartbeat = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let seen = bell.rings();
        if let Err(e) = poll_leases(&shared) {
            tracing::warn!("polling leases failed: {e}");
        }
        if last_node_heartbeat.elapsed() >= NODE_HEARTBEAT_INTERVAL {
            last_node_heartbeat = std::time::Instant::now();
            if let Err(e) =
                shared.client.send(&shared.config.key, TxBody::NodeHeartbeat { node }, false)
            {
                tracing::warn!("node heartbeat failed: {e}");
            }
        }
        bell.wait(seen, POLL_INTERVAL);
    }
    for flag in shared.running.lock().expect("no panics while locked").values() {
        flag.store(true, Ordering::SeqCst);
    }
    if follower.join().is_err() {
        tracing::error!("node {node}: the event thread panicked");
    }
    if challenger.join().is_err() {
        tracing::error!("node {node}: the challenge thread panicked");
    }
    Ok(node)
}

/// Follows the ledger's events about this node and rings the bell for each (a new lease, a key
/// grant, a requeue), so work starts without waiting for a poll.
fn follow_events(
    node_url: &str,
    node: NodeId,
    bell: Arc<Bell>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let client = Client::new(node_url);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let followed = client.follow_events(EventsAbout::Node(node.0), |event| {
                if !event.is_null() {
                    bell.ring();
                }
                !stop.load(Ordering::SeqCst)
            });
            if let Err(e) = followed {
                tracing::warn!("event stream: {e}; reconnecting");
                std::thread::sleep(EVENTS_RECONNECT_DELAY);
            }
        }
    })
}

fn poll_leases(shared: &Arc<Shared>) -> Result<(), AgentError> {
    let leases = shared.client.get(&format!("/v1/nodes/{}/leases", shared.node))?;
    let leases = leases.as_array().ok_or(AgentError::Protocol("a lease list"))?;
    let mut running = shared.running.lock().expect("no panics while locked");
    running.retain(|_, stop| !stop.load(Ordering::SeqCst));
    for leased in leases {
        let task = &leased["task"];
        let Some(id) = task["id"].as_u64() else { continue };
        let done = shared.journal.lock().expect("no panics while locked").done.contains_key(&id);
        if done || running.contains_key(&id) || running.len() >= TASKS_RUNNING_MAX {
            continue;
        }
        let finished = Arc::new(AtomicBool::new(false));
        running.insert(id, finished.clone());
        let (shared, leased) = (shared.clone(), leased.clone());
        std::thread::spawn(move || {
            work_on(&shared, TaskId(id), &leased);
            finished.store(true, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn mark_done(shared: &Shared, id: TaskId, outcome: &str) {
    let mut journal = shared.journal.lock().expect("no panics while locked");
    journal.done.insert(id.0, outcome.to_string());
    journal.results.remove(&id.0);
    if let Err(e) = save_journal(&shared.config.work_dir, &journal) {
        tracing::error!("cannot save agent state: {e}");
    }
}

/// Takes one lease to its end: a revealed result or a reported failure. `leased` is an entry of
/// `GET /v1/nodes/{node}/leases`: the task, this node's lease and whether reveals are open.
fn work_on(shared: &Shared, id: TaskId, leased: &Value) {
    tracing::debug!("task {id}: leased");
    let sealed = shared.journal.lock().expect("no panics while locked").results.get(&id.0).cloned();
    if leased["lease"]["commitment"].is_null() {
        let outcome = match sealed.clone() {
            Some(sealed) => Ok(Ok(sealed)),
            None => {
                // Read before getting ready: a grant that comes meanwhile is not waited for.
                let seen = shared.bell.rings();
                let ready = execute::get_ready(shared, id, &leased["task"]);
                match (wait_for_grant(shared, id, &leased["task"], seen), ready) {
                    (Some(task), ready) => {
                        tracing::debug!("task {id}: granted");
                        ready.and_then(|ready| execute::execute(shared, id, &task, ready))
                    }
                    // Not granted in time, the ledger released the lease without blame (and
                    // paid the wait): nothing to report.
                    (None, ready) => {
                        if let Ok(ready) = ready {
                            ready.discard();
                        }
                        if !shared.stop.load(Ordering::SeqCst) {
                            mark_done(shared, id, "keys-not-granted");
                        }
                        return;
                    }
                }
            }
        };
        crate::executor::remove_run_dir(
            &shared.config.work_dir.join("tasks").join(id.0.to_string()),
        );
        match outcome {
            Ok(Ok(sealed)) => {
                if !commit(shared, id, &sealed) {
                    return;
                }
            }
            Ok(Err(reason)) | Err(reason) => {
                let body = TxBody::ReportFailure { task: id, node: shared.node, reason };
                return send_final(shared, id, body);
            }
        }
    }
    // Committed (now or before a restart): reveal once the round's reveals are open.
    // Read the salt in its own statement: a guard in a `match` scrutinee would hold the journal
    // while waiting, and `mark_done` would deadlock on it.
    let sealed = shared.journal.lock().expect("no panics while locked").results.get(&id.0).cloned();
    match sealed {
        Some(sealed) => reveal_when_open(shared, id, &sealed),
        None => {
            tracing::error!("task {id}: committed, but the salt of the commitment is lost");
            mark_done(shared, id, "salt-lost");
        }
    }
}

/// Waits until the requester grants this node the content key of an encrypted task (it does so
/// once it sees the placement), sending heartbeats meanwhile so the lease stays alive; `seen` is
/// the bell's count from before the lease was read, so a grant since then wakes it at once. Returns
/// the task as it is then, or `None` once the lease is gone (the ledger released it when the
/// grant did not come within its grant wait) or the agent stops.
fn wait_for_grant(shared: &Shared, id: TaskId, task: &Value, mut seen: u64) -> Option<Value> {
    let node = Some(shared.node.0);
    let mut task = task.clone();
    let mut last_heartbeat = std::time::Instant::now();
    loop {
        let grants = task["key_grants"].as_array();
        if task["terms"]["encrypted"] != true
            || grants.is_some_and(|g| g.iter().any(|g| g["node"].as_u64() == node))
        {
            return Some(task);
        }
        let leased = task["leases"].as_array().is_some_and(|leases| {
            leases.iter().any(|l| {
                l["node"].as_u64() == node && l["verdict"] == "pending" && l["commitment"].is_null()
            })
        });
        if !leased || shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        if last_heartbeat.elapsed() >= TASK_HEARTBEAT_INTERVAL {
            last_heartbeat = std::time::Instant::now();
            let body = TxBody::TaskHeartbeat { task: id, node: shared.node, progress_permille: 0 };
            if let Err(e) = shared.client.send(&shared.config.key, body, false) {
                tracing::warn!("task {id}: heartbeat failed: {e}");
            }
        }
        seen = shared.bell.wait(seen, REVEAL_POLL_INTERVAL);
        match shared.client.get(&format!("/v1/tasks/{id}")) {
            Ok(now) => task = now,
            Err(e) => tracing::warn!("task {id}: cannot read it: {e}"),
        }
    }
}

/// Sends the commitment to a sealed result; `false` when there is nothing more to do now.
fn commit(shared: &Shared, id: TaskId, sealed: &Sealed) -> bool {
    let account = shared.config.key.account();
    let (hash, cid, salt) = (&sealed.output_hash.0, &sealed.result_cid, &sealed.salt.0);
    let commitment = aicpw_verify::commitment(id.0, &account.0, hash, &sealed.summary, cid, salt);
    let tag = Hash32(aicpw_verify::equality_tag(id.0, hash, &sealed.summary));
    let body =
        TxBody::CommitResult { task: id, node: shared.node, commitment: Hash32(commitment), tag };
    match shared.client.send(&shared.config.key, body, true) {
        Ok(_) | Err(ClientError::Rejected(Reject::AlreadyCommitted)) => true,
        // The lease moved on (expired, cancelled): nothing left to do for this task.
        Err(ClientError::Rejected(reject)) => {
            mark_done(shared, id, reject.name());
            false
        }
        Err(e) => {
            tracing::warn!("task {id}: cannot commit yet: {e}");
            false
        }
    }
}

/// Sends a transaction that ends this node's part in the task, and records that.
fn send_final(shared: &Shared, id: TaskId, body: TxBody) {
    let kind = body.kind();
    match shared.client.send(&shared.config.key, body, true) {
        Ok(_) => mark_done(shared, id, kind),
        Err(ClientError::Rejected(reject)) => mark_done(shared, id, reject.name()),
        Err(e) => tracing::warn!("task {id}: cannot send {kind} yet: {e}"),
    }
}

/// This node's lease of the task that a reveal is still about: one of the current round, or
/// one withheld (its reveal window passed, say while the agent was down) whose late reveal
/// window is open: revealing it late with the honest result clears it of the slash.
fn lease_to_reveal(task: &Value, node: u64) -> Option<&Value> {
    task["leases"].as_array()?.iter().find(|l| {
        let withheld = l["verdict"] == "withheld" && !l["withheld_until_ms"].is_null();
        l["node"].as_u64() == Some(node) && (l["verdict"] == "pending" || withheld)
    })
}

/// Whether this lease lets the judges of its referee round reveal first (the ledger's
/// `Task::awaits_judges`): a referee or committee reveals before the results it judges.
fn awaits_judges(task: &Value, lease: &Value) -> bool {
    let judge = |l: &Value| l["role"] == "referee";
    let unrevealed = |l: &Value| judge(l) && l["verdict"] == "pending" && l["reveal"].is_null();
    let leases = task["leases"].as_array().map(Vec::as_slice).unwrap_or_default();
    task["round"] == "referee" && !judge(lease) && leases.iter().any(unrevealed)
}

/// Waits until every lease of the round has committed (and its judges revealed), then reveals (at once for a withheld
/// lease in its late reveal window); stops if the lease was judged or dropped meanwhile, or the
/// agent stops.
fn reveal_when_open(shared: &Shared, id: TaskId, sealed: &Sealed) {
    while !shared.stop.load(Ordering::SeqCst) {
        let task = match shared.client.get(&format!("/v1/tasks/{id}")) {
            Ok(task) => task,
            Err(e) => {
                tracing::warn!("task {id}: cannot read it: {e}");
                std::thread::sleep(REVEAL_POLL_INTERVAL);
                continue;
            }
        };
        let Some(lease) = lease_to_reveal(&task, shared.node.0) else {
            return mark_done(shared, id, "judged");
        };
        if !lease["reveal"].is_null() {
            return mark_done(shared, id, "reveal_result");
        }
        let open = !task["reveal_open_ms"].is_null() && !awaits_judges(&task, lease);
        if open || lease["verdict"] == "withheld" {
            let body = TxBody::RevealResult {
                task: id,
                node: shared.node,
                output_hash: sealed.output_hash,
                salt: sealed.salt,
                result_cid: sealed.result_cid.clone(),
                summary: sealed.summary.clone(),
            };
            return send_final(shared, id, body);
        }
        std::thread::sleep(REVEAL_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::{awaits_judges, lease_to_reveal, load_journal, save_journal, Journal, Sealed};
    use aicpw_types::{Hash32, NodeId};
    use serde_json::{json, Value};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_journal_is_replaced_whole_and_readable_only_by_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal { node: Some(NodeId(7)), ..Journal::default() };
        let salt = Hash32([9; 32]);
        let sealed = Sealed {
            result_cid: "bafy".into(),
            output_hash: Hash32([1; 32]),
            salt,
            summary: vec![250_000],
        };
        journal.results.insert(3, sealed);
        save_journal(dir.path(), &journal).expect("first save");
        journal.done.insert(4, "completed".into());
        save_journal(dir.path(), &journal).expect("second save");
        let loaded = load_journal(dir.path()).expect("load");
        assert_eq!(loaded.results.get(&3).map(|sealed| sealed.salt), Some(salt));
        assert!(loaded.done.contains_key(&4));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["agent.json"], "no temporary file is left behind");
        let mode = std::fs::metadata(dir.path().join("agent.json")).expect("stat").permissions();
        assert_eq!(mode.mode() & 0o077, 0, "the salts are not readable by other users");
    }

    #[test]
    fn a_restarted_agent_reveals_a_withheld_lease_only_while_its_late_window_is_open() {
        let lease = |node: u64, verdict: &str, until: Option<u64>| json!({ "node": node, "verdict": verdict, "withheld_until_ms": until });
        // (this node's lease, whether the agent still has a reveal to send)
        let cases = [
            (lease(1, "pending", None), true),
            (lease(1, "withheld", Some(90_000)), true),
            (lease(1, "withheld", None), false),
            (lease(1, "overruled", None), false),
        ];
        for (mine, reveals) in cases {
            let task = json!({ "leases": [lease(2, "pending", None), mine.clone()] });
            assert_eq!(lease_to_reveal(&task, 1).is_some(), reveals, "{mine}");
        }
        let other = json!({ "leases": [lease(2, "withheld", Some(90_000))] });
        assert!(lease_to_reveal(&other, 1).is_none(), "another node's lease");
    }

    #[test]
    fn a_judged_lease_reveals_only_after_its_referee_round_judges() {
        let lease = |role: &str, reveal: Option<&str>| json!({ "role": role, "verdict": "pending", "reveal": reveal });
        let worker = lease("worker", None);
        let task = |round: &str, judge: Value| json!({ "round": round, "leases": [worker.clone(), judge] });
        assert!(awaits_judges(&task("referee", lease("referee", None)), &worker));
        assert!(!awaits_judges(&task("referee", lease("referee", Some("revealed"))), &worker));
        assert!(!awaits_judges(&task("audit", lease("auditor", None)), &worker));
        let judge = lease("referee", None);
        assert!(!awaits_judges(&task("referee", judge.clone()), &judge), "the judge goes first");
    }
}
