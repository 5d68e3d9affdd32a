//! The provider agent: registers this machine with a stake, watches the ledger for tasks leased
//! to its node, runs them in the executor, and reports results or failures.
//!
//! Every result goes to the ledger in two steps: first a commitment
//! (`verify::replication::commitment(task, account, output_hash, salt)` with a fresh random
//! salt), then, once the ledger says every lease of the task's round has committed, the reveal of
//! the output hash, the salt and the result's CID. The lease says the node's role (worker,
//! replica, auditor, referee, dispute committee member); the work is the same for all of them.
//!
//! The agent keeps its own state in `work_dir/agent.json` (written atomically), so a restart
//! neither loses a task nor runs one twice: a result already uploaded is committed (or, if it was,
//! revealed) with the salt kept there, without running again, and a task whose outcome is on the
//! ledger is never touched again. A lease whose reveal window passed while the agent was down is
//! *withheld*, and the ledger slashes it unless it is opened within its late reveal window: the
//! node's lease list still shows it (`withheld_until_ms`), so the restarted agent reveals it late
//! from the journal, and an honest provider is never slashed for an outage shorter than that.

use crate::client::{Client, ClientError};
use crate::executor::{ExecutionEvent, ExecutionRequest, Executor, Limits, Termination};
use crate::hardware;
use aicpw_types::bundle::{self, Manifest};
use aicpw_types::task::FailureReason;
use aicpw_types::{seal, Amount, Hardware, Hash32, Keypair, NodeId, Reject, TaskId, TxBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the agent looks for new leases when the event stream says nothing (it wakes at once
/// when the stream announces an event about its node).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the agent waits before reconnecting to a broken event stream.
pub const EVENTS_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How often a committed lease checks whether its round's reveals are open.
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
}

struct Shared {
    client: Client,
    config: AgentConfig,
    executor: Arc<dyn Executor>,
    node: NodeId,
    journal: Mutex<Journal>,
    running: Mutex<BTreeMap<u64, Arc<AtomicBool>>>,
    stop: Arc<AtomicBool>,
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
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, bytes).map_err(|e| state_error(e.to_string()))?;
    std::fs::rename(&temp, &path).map_err(|e| state_error(e.to_string()))
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
        if found.is_ok_and(|n| n["status"] == "active") {
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
    let shared = Arc::new(Shared {
        client,
        config,
        executor,
        node,
        journal: Mutex::new(journal),
        running: Mutex::new(BTreeMap::new()),
        stop: stop.clone(),
    });
    let wake = Arc::new(AtomicBool::new(true));
    let follower = follow_events(node_url, node, wake.clone(), stop.clone());
    let mut last_node_heartbeat = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        wake.store(false, Ordering::SeqCst);
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
        let slept = std::time::Instant::now();
        while slept.elapsed() < POLL_INTERVAL && !wake.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// Follows the ledger's event stream and wakes the lease loop whenever an event names this node
/// (a new lease, a reveal round opening, a requeue), so work starts without waiting for a poll.
fn follow_events(
    node_url: &str,
    node: NodeId,
    wake: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let client = Client::new(node_url);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let followed = client.follow_events(None, |event| {
                if event["node"].as_u64() == Some(node.0) || event["event"] == "task_submitted" {
                    wake.store(true, Ordering::SeqCst);
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
    let sealed = shared.journal.lock().expect("no panics while locked").results.get(&id.0).cloned();
    if leased["lease"]["commitment"].is_null() {
        let outcome = match sealed.clone() {
            Some(sealed) => Ok(Ok(sealed)),
            None => execute(shared, id, &leased["task"]),
        };
        let _ =
            std::fs::remove_dir_all(shared.config.work_dir.join("tasks").join(id.0.to_string()));
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

/// Sends the commitment to a sealed result; `false` when there is nothing more to do now.
fn commit(shared: &Shared, id: TaskId, sealed: &Sealed) -> bool {
    let account = shared.config.key.account();
    let commitment =
        aicpw_verify::commitment(id.0, &account.0, &sealed.output_hash.0, &sealed.salt.0);
    let body = TxBody::CommitResult { task: id, node: shared.node, commitment: Hash32(commitment) };
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

/// Waits until every lease of the round has committed, then reveals (at once for a withheld
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
        if !task["reveal_open_ms"].is_null() || lease["verdict"] == "withheld" {
            let body = TxBody::RevealResult {
                task: id,
                node: shared.node,
                output_hash: sealed.output_hash,
                salt: sealed.salt,
                result_cid: sealed.result_cid.clone(),
            };
            return send_final(shared, id, body);
        }
        std::thread::sleep(REVEAL_POLL_INTERVAL);
    }
}

type TaskResult = Result<Sealed, FailureReason>;
/// A bundle's files: path and contents.
type Files = Vec<(String, Vec<u8>)>;

/// Fetches and opens the inputs, runs the task with heartbeats, seals and uploads the result.
fn execute(shared: &Shared, id: TaskId, task: &Value) -> Result<TaskResult, FailureReason> {
    let terms = &task["terms"];
    let dir = shared.config.work_dir.join("tasks").join(id.0.to_string());
    let (manifest, files) = fetch_inputs(shared, task).map_err(|e| {
        tracing::warn!("task {id}: inputs unavailable: {e}");
        FailureReason::InputsUnavailable
    })?;
    let (inputs, outputs, scratch) = (dir.join("in"), dir.join("out"), dir.join("tmp"));
    let _ = std::fs::remove_dir_all(&dir);
    for d in [&inputs, &outputs, &scratch] {
        std::fs::create_dir_all(d).map_err(|_| FailureReason::ProviderError)?;
    }
    bundle::write_files(&inputs, &files).map_err(|_| FailureReason::ProviderError)?;
    let mut request = ExecutionRequest::new(
        &manifest.command,
        manifest.args.clone(),
        &inputs,
        &outputs,
        &scratch,
    );
    request.limits = limits_of(terms);
    request.network = terms["network"].as_bool().unwrap_or(false);
    let progress = Arc::new(AtomicU16::new(0));
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    let logs = Mutex::new(std::collections::VecDeque::new());
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| heartbeats(shared, id, &progress, &heartbeat_stop));
        let outcome = shared.executor.run(&request, &mut |event| match event {
            ExecutionEvent::Progress { permille } => progress.store(permille, Ordering::SeqCst),
            ExecutionEvent::Log { line, .. } => {
                let mut logs = logs.lock().expect("no panics while locked");
                if logs.len() >= LOG_LINES_KEPT_MAX {
                    logs.pop_front();
                }
                logs.push_back(line);
            }
        });
        heartbeat_stop.store(true, Ordering::SeqCst);
        outcome
    });
    let outcome = outcome.map_err(|e| {
        tracing::warn!("task {id}: executor failed: {e}");
        FailureReason::ProviderError
    })?;
    if let Some(reason) = failure_of(outcome.termination) {
        return Ok(Err(reason));
    }
    let log_text: Vec<String> = logs.into_inner().expect("no panics while locked").into();
    Ok(seal_and_upload(shared, id, task, &manifest, &outputs, &log_text.join("\n")))
}

fn fetch_inputs(shared: &Shared, task: &Value) -> Result<(Manifest, Files), String> {
    let cid = task["terms"]["inputs_cid"].as_str().ok_or("no inputs_cid")?;
    let blob = shared.client.get_store(cid).map_err(|e| e.to_string())?;
    let plain = if task["terms"]["encrypted"].as_bool().unwrap_or(true) {
        let grant = task["key_grants"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["node"].as_u64() == Some(shared.node.0)))
            .and_then(|g| g["sealed_key"].as_str())
            .ok_or("no key grant for this node")?;
        let sealed = hex::decode(grant).map_err(|e| e.to_string())?;
        let key =
            seal::open(&shared.config.key.x25519_secret(), &sealed).map_err(|e| e.to_string())?;
        let key: [u8; 32] = key.try_into().map_err(|_| "content key is not 32 bytes")?;
        seal::decrypt(&key, &blob).map_err(|e| e.to_string())?
    } else {
        blob
    };
    bundle::unpack(&plain).map_err(|e| e.to_string())
}

fn limits_of(terms: &Value) -> Limits {
    let resources = &terms["resources"];
    let at_least_one = |v: &Value, default: u64| v.as_u64().filter(|n| *n > 0).unwrap_or(default);
    let cores = at_least_one(&resources["cpu_cores"], 1);
    let wall = at_least_one(&terms["time_limit_secs"], 60);
    Limits {
        memory_mb: at_least_one(&resources["memory_mb"], 512),
        processes_max: 256,
        cpu_time_secs: wall.saturating_mul(cores),
        wall_time_secs: wall,
        cpu_cores: u32::try_from(cores).unwrap_or(u32::MAX),
        disk_mb: at_least_one(&resources["disk_mb"], 1024),
        // The ledger placed the task on a node with this many GPUs; the sandbox binds them.
        gpus: u32::try_from(resources["gpu_count"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX),
    }
}

/// The ledger's reason for a run that did not complete; `None` when it completed.
fn failure_of(termination: Termination) -> Option<FailureReason> {
    match termination {
        Termination::Completed => None,
        Termination::NonZeroExit | Termination::Signaled => {
            Some(FailureReason::TaskExitedWithError)
        }
        Termination::WallTimeExceeded => Some(FailureReason::TimeLimitExceeded),
        Termination::CpuTimeExceeded => Some(FailureReason::CpuLimitExceeded),
        Termination::MemoryExceeded => Some(FailureReason::MemoryLimitExceeded),
        Termination::ProcessLimitExceeded => Some(FailureReason::ProcessLimitExceeded),
        Termination::DiskExceeded => Some(FailureReason::DiskLimitExceeded),
        Termination::Cancelled => Some(FailureReason::ProviderError),
    }
}

fn heartbeats(shared: &Shared, id: TaskId, progress: &AtomicU16, stop: &AtomicBool) {
    let tick = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        waited += tick;
        if waited < TASK_HEARTBEAT_INTERVAL {
            continue;
        }
        waited = Duration::ZERO;
        let progress_permille = progress.load(Ordering::SeqCst);
        let body = TxBody::TaskHeartbeat { task: id, node: shared.node, progress_permille };
        if let Err(e) = shared.client.send(&shared.config.key, body, false) {
            tracing::warn!("task {id}: heartbeat failed: {e}");
        }
    }
}

/// Packs the declared outputs and the log tail, seals them to the requester and uploads them.
/// The output hash covers the plaintext outputs, so replicas and auditors can compare results
/// whatever key each sealed them with.
fn seal_and_upload(
    shared: &Shared,
    id: TaskId,
    task: &Value,
    manifest: &Manifest,
    outputs: &Path,
    logs: &str,
) -> TaskResult {
    let mut files = Vec::new();
    for name in &manifest.outputs {
        let path = outputs.join(name);
        if !path.exists() {
            tracing::warn!("task {id}: declared output {name} is missing");
            return Err(FailureReason::TaskExitedWithError);
        }
        bundle::collect(&path, name, &mut files).map_err(|_| FailureReason::ProviderError)?;
    }
    let output_hash =
        Hash32::of(&bundle::pack(manifest, &files).map_err(|_| FailureReason::ProviderError)?);
    files.push(("logs/task.log".to_string(), logs.as_bytes().to_vec()));
    let plain = bundle::pack(manifest, &files).map_err(|_| FailureReason::ProviderError)?;
    let result_key = task["terms"]["result_key"].as_str().and_then(|k| hex::decode(k).ok());
    let result_key: [u8; 32] =
        result_key.and_then(|k| k.try_into().ok()).ok_or(FailureReason::ProviderError)?;
    let content_key = seal::random_key();
    let mut blob = seal::seal(&result_key, &content_key);
    blob.extend_from_slice(&seal::encrypt(&content_key, &plain));
    let cid = shared.client.put_store(&blob).map_err(|_| FailureReason::ProviderError)?;
    // The salt is journaled before the commitment leaves: a restart can still reveal.
    let sealed = Sealed { result_cid: cid, output_hash, salt: Hash32(seal::random_key()) };
    let mut journal = shared.journal.lock().expect("no panics while locked");
    journal.results.insert(id.0, sealed.clone());
    save_journal(&shared.config.work_dir, &journal).map_err(|_| FailureReason::ProviderError)?;
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::lease_to_reveal;
    use serde_json::json;

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
}
