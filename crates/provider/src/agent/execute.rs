//! Running one lease's task: set the run up in the executor and fetch the sealed inputs while
//! the requester's key grant is on its way, then open the inputs, run them under the task's
//! limits with heartbeats, seal the outputs to the requester and upload them.

use super::{save_journal, Sealed, Shared, LOG_LINES_KEPT_MAX, TASK_HEARTBEAT_INTERVAL};
use crate::cache::CacheError;
use crate::client::ClientError;
use crate::executor::{
    ContainerImage, ExecutionEvent, ExecutionRequest, Executor, ExecutorError, Limits, Prepared,
    Termination,
};
use aicpw_store::Cid;
use aicpw_types::bundle::{self, BundleError, Manifest, Reference};
use aicpw_types::task::FailureReason;
use aicpw_types::{seal, seal_stream, Hash32, Reject, TaskId, TxBody};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type TaskResult = Result<Sealed, FailureReason>;
/// A bundle's files: path and contents.
type Files = Vec<(String, Vec<u8>)>;

/// What a lease's run gets before the requester grants the content key, so that the grant
/// only has the inputs opened and the command started: the run's directories, the run set up
/// in the executor (uid slot, cgroup, filesystem) and the sealed inputs fetched from the store.
pub(super) struct Ready<'a> {
    dir: PathBuf,
    /// `None` where the executor could not set the run up yet: it tries again at the start.
    prepared: Option<Prepared<'a>>,
    sealed_inputs: Result<Vec<u8>, (FailureReason, String)>,
}

impl Ready<'_> {
    /// Gives back what the run holds and removes its directories.
    pub(super) fn discard(self) {
        drop(self.prepared);
        crate::executor::remove_run_dir(&self.dir);
    }
}

/// Gets a leased task's run ready before its key grant (see [`Ready`]); an error is the
/// task's failure to report.
pub(super) fn get_ready<'a>(
    shared: &'a Shared,
    id: TaskId,
    task: &Value,
) -> Result<Ready<'a>, FailureReason> {
    let terms = &task["terms"];
    let network = terms["network"].as_bool().unwrap_or(false);
    if network && !shared.config.allow_network {
        // The matcher places such a task only on nodes registered with `allows_network`.
        tracing::warn!("task {id} asks for network access, which this agent does not allow");
        return Err(FailureReason::ProviderError);
    }
    let executor = executor_for(shared, id, terms)?;
    let dir = shared.config.work_dir.join("tasks").join(id.0.to_string());
    crate::executor::remove_run_dir(&dir);
    for d in ["in", "out", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|_| FailureReason::ProviderError)?;
    }
    // The inputs come from the store while the executor sets the run up.
    let (prepared, sealed_inputs) = std::thread::scope(|scope| {
        let fetching = scope.spawn(|| {
            let bundle = fetch_sealed_inputs(shared, task)?;
            open_referenced(shared, task)?;
            Ok(bundle)
        });
        let prepared = executor
            .prepare(&limits_of(terms), network, &dir.join("tmp"))
            .map_err(|e| tracing::warn!("task {id}: cannot set the run up yet: {e}"))
            .ok();
        let fetched = fetching.join().unwrap_or_else(|_| {
            Err((FailureReason::ProviderError, "the inputs' fetching thread panicked".into()))
        });
        (prepared, fetched)
    });
    tracing::debug!("task {id}: run set up, sealed inputs and inputs by CID fetched");
    Ok(Ready { dir, prepared, sealed_inputs })
}

/// The executor of the task's runtime: the sandbox, or the container executor where this agent
/// has one (the matcher places container tasks only on nodes registered with
/// `runs_containers`).
fn executor_for<'a>(
    shared: &'a Shared,
    id: TaskId,
    terms: &Value,
) -> Result<&'a dyn Executor, FailureReason> {
    if terms["runtime"].as_str() != Some("container") {
        return Ok(shared.executor.as_ref());
    }
    shared.config.containers.as_deref().ok_or_else(|| {
        tracing::warn!("task {id} is a container task, and this agent runs no containers");
        FailureReason::ProviderError
    })
}

/// Opens the inputs with the key granted in `task`, runs the task in its run got `ready` with
/// heartbeats, seals and uploads the result.
pub(super) fn execute(
    shared: &Shared,
    id: TaskId,
    task: &Value,
    ready: Ready<'_>,
) -> Result<TaskResult, FailureReason> {
    let terms = &task["terms"];
    let dir = &ready.dir;
    let (inputs, outputs, scratch) = (dir.join("in"), dir.join("out"), dir.join("tmp"));
    let opened = ready.sealed_inputs.and_then(|blob| open_inputs(shared, task, blob));
    let placed = opened.and_then(|(mut manifest, files)| {
        bundle::write_files(&inputs, &files)
            .map_err(|e| (FailureReason::ProviderError, e.to_string()))?;
        // The references leave the manifest here: outputs are hashed and returned with the
        // manifest the requester knows, which has none.
        let references = std::mem::take(&mut manifest.references);
        place_references(shared, task, &references, &inputs)?;
        Ok(manifest)
    });
    let manifest = placed.map_err(|(reason, e)| {
        tracing::warn!("task {id}: cannot get the inputs ({}): {e}", reason.code());
        reason
    })?;
    tracing::debug!("task {id}: inputs opened");
    let mut request = ExecutionRequest::new(
        &manifest.command,
        manifest.args.clone(),
        &inputs,
        &outputs,
        &scratch,
    );
    request.limits = limits_of(terms);
    request.network = terms["network"].as_bool().unwrap_or(false);
    request.image = manifest.image.clone().map(|reference| ContainerImage {
        reference,
        archive: manifest.image_archive.as_ref().map(|archive| inputs.join(archive)),
    });
    let executor = executor_for(shared, id, terms)?;
    let prepared = match ready.prepared {
        Some(prepared) => Ok(prepared),
        None => executor.prepare(&request.limits, request.network, &scratch),
    };
    let progress = Arc::new(AtomicU16::new(0));
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    let logs = Mutex::new(std::collections::VecDeque::new());
    tracing::debug!("task {id}: handed to the executor");
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| heartbeats(shared, id, &progress, &heartbeat_stop));
        let outcome = prepared.and_then(|prepared| {
            executor.run_prepared(prepared, &request, &mut |event| match event {
                ExecutionEvent::Progress { permille } => progress.store(permille, Ordering::SeqCst),
                ExecutionEvent::Log { line, .. } => {
                    let mut logs = logs.lock().expect("no panics while locked");
                    if logs.len() >= LOG_LINES_KEPT_MAX {
                        logs.pop_front();
                    }
                    logs.push_back(line);
                }
            })
        });
        heartbeat_stop.store(true, Ordering::SeqCst);
        outcome
    });
    let outcome = outcome.map_err(|e| {
        tracing::warn!("task {id}: executor failed: {e}");
        match e {
            // The request is built from the requester's manifest and terms; the image is the
            // requester's to ship (or one this provider does not accept: no one's fault).
            ExecutorError::InvalidRequest { .. }
            | ExecutorError::ImageRefused { .. }
            | ExecutorError::ImageUnavailable { .. } => FailureReason::InputsUnavailable,
            _ => FailureReason::ProviderError,
        }
    })?;
    if let Some(reason) = failure_of(outcome.termination) {
        return Ok(Err(reason));
    }
    let log_text: Vec<String> = logs.into_inner().expect("no panics while locked").into();
    Ok(seal_and_upload(shared, id, task, &manifest, &outputs, &log_text.join("\n")))
}

/// The task's inputs as the store holds them (sealed, for an encrypted task). An error says
/// whose fault it is: the store not answering is this node's (`ProviderError`); inputs the
/// store does not hold are the requester's (`InputsUnavailable`, a claim the ledger does not
/// blame this node for).
fn fetch_sealed_inputs(shared: &Shared, task: &Value) -> Result<Vec<u8>, (FailureReason, String)> {
    let inputs = |e: String| (FailureReason::InputsUnavailable, e);
    let cid = task["terms"]["inputs_cid"].as_str().ok_or_else(|| inputs("no inputs_cid".into()))?;
    shared.client.get_store(cid).map_err(store_failure)
}

/// Whose fault a failed read of the store is: the store not answering is this node's; content
/// it does not hold, or not as a file, is the requester's.
fn store_failure(error: ClientError) -> (FailureReason, String) {
    let reason = match error {
        ClientError::Rejected(
            Reject::NotFound
            | Reject::BadRequest
            | Reject::ContentMismatch
            | Reject::PayloadTooLarge
            | Reject::NotAFile,
        ) => FailureReason::InputsUnavailable,
        _ => FailureReason::ProviderError,
    };
    (reason, error.to_string())
}

/// The content the task's terms name by CID (`terms.input_cids`), opened from the content
/// cache, which downloads what it does not hold yet. Together it must fit the task's disk
/// limit, which the matcher checked against this node's disk: a requester cannot make a
/// provider download or unpack more than it declared. Content the store does not hold, or too
/// large, is the requester's fault (`InputsUnavailable`).
fn open_referenced(
    shared: &Shared,
    task: &Value,
) -> Result<Vec<(Cid, std::fs::File)>, (FailureReason, String)> {
    let inputs = |e: String| (FailureReason::InputsUnavailable, e);
    let listed = task["terms"]["input_cids"].as_array().cloned().unwrap_or_default();
    let mut room = limits_of(&task["terms"]).disk_mb.saturating_mul(1024 * 1024);
    let mut opened = Vec::new();
    for cid in &listed {
        let cid: Cid =
            cid.as_str().unwrap_or("").parse().map_err(|_| inputs(format!("bad CID {cid}")))?;
        let file = shared.cache.open_content(&shared.client, &cid, room).map_err(fetch_failure)?;
        let size = file.metadata().map_err(|e| (FailureReason::ProviderError, e.to_string()))?;
        room = room.saturating_sub(size.len());
        opened.push((cid, file));
    }
    Ok(opened)
}

/// Whose fault a failed fetch into the cache is (see [`store_failure`]); content that is not
/// what its CID says is the requester's too, the cache's own disk this node's.
fn fetch_failure(error: CacheError) -> (FailureReason, String) {
    match error {
        CacheError::Client(error) => store_failure(error),
        CacheError::Mismatch(_) | CacheError::TooLarge { .. } => {
            (FailureReason::InputsUnavailable, error.to_string())
        }
        CacheError::Io { .. } => (FailureReason::ProviderError, error.to_string()),
    }
}

/// Places each reference of the bundle's manifest in `inputs` under its name, from the cache,
/// decrypting sealed content as it is copied. A reference to a CID the terms do not name (the
/// node would not hold it for the task), or content its key does not open, is the requester's
/// fault.
fn place_references(
    shared: &Shared,
    task: &Value,
    references: &[Reference],
    inputs: &Path,
) -> Result<(), (FailureReason, String)> {
    let fault = |e: String| (FailureReason::InputsUnavailable, e);
    let opened = open_referenced(shared, task)?;
    for reference in references {
        let about = |e: &dyn std::fmt::Display| format!("input {}: {e}", reference.name);
        let cid: Cid = reference.cid.parse().map_err(|_| fault(about(&"bad CID")))?;
        let (_, source) = opened
            .iter()
            .find(|(named, _)| *named == cid)
            .ok_or_else(|| fault(about(&"its CID is not among the task's input CIDs")))?;
        let mut target = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(inputs.join(&reference.name))
            .map_err(|e| fault(about(&e)))?;
        let source = std::io::BufReader::with_capacity(256 * 1024, source);
        let copied = match &reference.key {
            Some(key) => {
                std::io::copy(&mut seal_stream::Decryptor::new(&key.0, source), &mut target)
            }
            None => std::io::copy(&mut { source }, &mut target),
        };
        copied.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => fault(about(&e)),
            _ => (FailureReason::ProviderError, about(&e)),
        })?;
    }
    Ok(())
}

/// The task's manifest and input files, opened with this node's key grant in `task`. No grant
/// for this node, a grant or a blob that does not open, or a malformed bundle are the
/// requester's fault (`InputsUnavailable`).
fn open_inputs(
    shared: &Shared,
    task: &Value,
    blob: Vec<u8>,
) -> Result<(Manifest, Files), (FailureReason, String)> {
    let inputs = |e: String| (FailureReason::InputsUnavailable, e);
    let plain = if task["terms"]["encrypted"].as_bool().unwrap_or(true) {
        let grant = task["key_grants"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["node"].as_u64() == Some(shared.node.0)))
            .and_then(|g| g["sealed_key"].as_str())
            .ok_or_else(|| inputs("no key grant for this node".into()))?;
        let sealed = hex::decode(grant).map_err(|e| inputs(e.to_string()))?;
        let key = seal::open(&shared.config.key.x25519_secret(), &sealed)
            .map_err(|e| inputs(e.to_string()))?;
        let key: [u8; 32] =
            key.try_into().map_err(|_| inputs("content key is not 32 bytes".into()))?;
        seal::decrypt(&key, &blob).map_err(|e| inputs(e.to_string()))?
    } else {
        blob
    };
    bundle::unpack(&plain).map_err(|e| inputs(e.to_string()))
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

/// The summary a non-deterministic task's run wrote (`terms.nondeterministic.summary`, one of the
/// task's outputs: a JSON array of 1 to 8 numbers), in micro-units; empty for a deterministic
/// task. A summary missing or malformed is the task's own failure, like an output it did not
/// write.
pub fn summary_of(terms: &Value, files: &[(String, Vec<u8>)]) -> Result<Vec<i64>, String> {
    let Some(path) = terms["nondeterministic"]["summary"].as_str() else {
        return Ok(Vec::new());
    };
    let (_, bytes) = files
        .iter()
        .find(|(name, _)| name == path)
        .ok_or_else(|| format!("the task wrote no summary file `{path}`"))?;
    aicpw_types::task::parse_summary(bytes).map_err(|e| format!("summary `{path}`: {e}"))
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
    let mut files = bundle::collect_outputs(outputs, manifest).map_err(|e| {
        tracing::warn!("task {id}: outputs refused: {e}");
        match e {
            BundleError::Io { .. } => FailureReason::ProviderError,
            _ => FailureReason::TaskExitedWithError,
        }
    })?;
    let output_hash =
        bundle::output_hash(manifest, &files).map_err(|_| FailureReason::TaskExitedWithError)?;
    let summary = summary_of(&task["terms"], &files).map_err(|e| {
        tracing::warn!("task {id}: {e}");
        FailureReason::TaskExitedWithError
    })?;
    files.push((bundle::RESULT_LOG_PATH.to_string(), logs.as_bytes().to_vec()));
    // Only the task's outputs can push the packed result over a bundle's limits.
    let plain = bundle::pack(manifest, &files).map_err(|_| FailureReason::TaskExitedWithError)?;
    let result_key = task["terms"]["result_key"].as_str().and_then(|k| hex::decode(k).ok());
    let result_key: [u8; 32] =
        result_key.and_then(|k| k.try_into().ok()).ok_or(FailureReason::ProviderError)?;
    // A result key of small order is refused by the ledger at submission, and here again.
    let blob = seal::seal_result(&result_key, &plain).map_err(|_| FailureReason::ProviderError)?;
    let cid = shared
        .client
        .put_store(&shared.config.key, &blob)
        .map_err(|_| FailureReason::ProviderError)?;
    // The salt is journaled before the commitment leaves: a restart can still reveal.
    let sealed = Sealed { result_cid: cid, output_hash, salt: Hash32(seal::random_key()), summary };
    let mut journal = shared.journal.lock().expect("no panics while locked");
    journal.results.insert(id.0, sealed.clone());
    save_journal(&shared.config.work_dir, &journal).map_err(|_| FailureReason::ProviderError)?;
    Ok(sealed)
}
