//! The requester's known-answer library: tasks whose answer the requester computed itself, kept
//! so the injector (`injector`) can submit them among the account's normal traffic.
//!
//! An entry is a directory `entries/<id>/` holding the task file as written (`task.yaml`: the
//! terms template), the plain bundle a provider receives (`bundle`: manifest and input files) and
//! `entry.json` (the answer hash, the bundle's hash). Entries come only from a local run in the
//! providers' own sandbox executor, twice, with equal answers: a wrong answer in the library
//! would slash the honest providers that later run it, so no answer is taken from the network.

use crate::requester::{
    answer_hash, pack_inputs, read_task_file, refuse_nondeterministic_answer, task_dir, Inputs,
};
use aicpw_provider::executor::{
    ExecutionRequest, Executor, Limits, SandboxConfig, SandboxExecutor, Termination,
};
use aicpw_types::bundle;
use aicpw_types::spec::{NetworkAccess, TaskFile};
use aicpw_types::task::Runtime;
use aicpw_types::Hash32;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Most entries a library holds (each injection lists them all).
pub const LIBRARY_ENTRIES_MAX: usize = 10_000;
/// Largest `entry.json` read.
pub const ENTRY_JSON_BYTES_MAX: u64 = 64 * 1024;
/// Local runs whose answers must agree before an entry is accepted.
pub const DETERMINISM_RUNS: usize = 2;
/// Version of `entry.json`.
pub const ENTRY_VERSION: u32 = 1;
/// Processes and threads a local run may have, as the provider agent allows.
const PROCESSES_MAX: u32 = 256;

/// What `entry.json` records about an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub version: u32,
    /// The first 16 hex digits of the bundle's hash: the same inputs are one entry.
    pub id: String,
    pub name: String,
    /// The output hash an honest provider commits to (`requester::answer_hash`).
    pub answer_hash: Hash32,
    /// BLAKE3 of `bundle`, checked before each injection.
    pub bundle_hash: Hash32,
    pub added_unix_secs: u64,
    /// How long one local run took.
    pub run_ms: u64,
}

/// An entry ready to submit.
pub struct Entry {
    pub info: EntryInfo,
    pub spec: TaskFile,
    pub bundle: Vec<u8>,
}

/// `~/.aicpw/known-answers`.
pub fn default_library() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --library DIR")?;
    Ok(PathBuf::from(home).join(".aicpw").join("known-answers"))
}

fn entries_dir(library: &Path) -> PathBuf {
    library.join("entries")
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, so a crash leaves the
/// old or the new contents, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&temp).with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Why the task cannot be a known answer, if it cannot: its answer must be a function of its
/// inputs alone, computed here.
fn refuse_unfit(spec: &TaskFile) -> Result<()> {
    if spec.runtime == Runtime::Container {
        bail!("container tasks cannot run in the local sandbox, so their answer cannot be known");
    }
    if spec.network == NetworkAccess::Full {
        bail!("it has network access, so its answer can differ from one run or place to another");
    }
    if spec.resources.gpu_count > 0 {
        bail!(
            "GPU tasks are refused: results are compared bit for bit and GPU arithmetic differs \
             between cards, so an honest provider could be slashed"
        );
    }
    if spec.outputs.is_empty() {
        bail!("the task declares no outputs: there is no answer to check");
    }
    if !spec.inputs_by_cid.is_empty() {
        bail!("it names inputs by CID, which the local runs that find its answer do not fetch");
    }
    refuse_nondeterministic_answer(spec)
}

/// The limits a provider's agent gives this task (`agent::execute::limits_of`), from the file.
fn limits_of(spec: &TaskFile) -> Limits {
    let at_least_one = |n: u64, default: u64| if n > 0 { n } else { default };
    let cores = at_least_one(u64::from(spec.resources.cpu_cores), 1);
    let wall = at_least_one(spec.time_limit_secs, 60);
    Limits {
        memory_mb: at_least_one(spec.resources.memory_mb, 512),
        processes_max: PROCESSES_MAX,
        cpu_time_secs: wall.saturating_mul(cores),
        wall_time_secs: wall,
        cpu_cores: u32::try_from(cores).unwrap_or(u32::MAX),
        disk_mb: at_least_one(spec.resources.disk_mb, 1024),
        gpus: 0,
    }
}

/// Runs the bundle once in the sandbox, as a provider would, and returns its answer hash.
fn run_once(executor: &SandboxExecutor, spec: &TaskFile, plain: &[u8]) -> Result<Hash32> {
    let (manifest, files) = bundle::unpack(plain)?;
    let scratch = tempfile::tempdir()?;
    let (inputs, outputs, tmp) =
        (scratch.path().join("in"), scratch.path().join("out"), scratch.path().join("tmp"));
    for dir in [&inputs, &outputs, &tmp] {
        std::fs::create_dir_all(dir)?;
    }
    bundle::write_files(&inputs, &files)?;
    let mut request =
        ExecutionRequest::new(&manifest.command, manifest.args.clone(), &inputs, &outputs, &tmp);
    request.limits = limits_of(spec);
    let mut log = Vec::new();
    let outcome = executor.run(&request, &mut |event| {
        if let aicpw_provider::executor::ExecutionEvent::Log { line, .. } = event {
            log.push(line);
        }
    })?;
    if outcome.termination != Termination::Completed {
        let tail = log.iter().rev().take(5).rev().cloned().collect::<Vec<_>>().join("\n");
        bail!(
            "the task ended {} (exit code {:?}):\n{tail}",
            outcome.termination,
            outcome.exit_code
        );
    }
    answer_hash(spec, &outputs)
}

/// Runs the task file locally [`DETERMINISM_RUNS`] times and, if every answer agrees, records it
/// in the library. Refuses tasks whose answers differ, or which could not be checked bit for bit.
pub fn add(library: &Path, file: &Path) -> Result<EntryInfo> {
    let spec = read_task_file(file)?;
    refuse_unfit(&spec).with_context(|| format!("{} is not a known answer", file.display()))?;
    let plain = pack_inputs(&spec, task_dir(file), Inputs::UnderTaskDir, Vec::new())?;
    let bundle_hash = Hash32::of(&plain);
    let id = bundle_hash.to_string()[..16].to_string();
    let dir = entries_dir(library).join(&id);
    if dir.exists() {
        bail!("these inputs are already in the library as entry {id}");
    }
    if list(library)?.len() >= LIBRARY_ENTRIES_MAX {
        bail!("the library holds {LIBRARY_ENTRIES_MAX} entries, its limit");
    }
    // The user's own task on the user's machine: kernel limits are used where the machine has
    // them, not required.
    let config = SandboxConfig { require_kernel_limits: false, ..SandboxConfig::default() };
    let executor = SandboxExecutor::new(config)?;
    let mut answers = Vec::new();
    let started = Instant::now();
    for run in 1..=DETERMINISM_RUNS {
        answers
            .push(run_once(&executor, &spec, &plain).with_context(|| format!("local run {run}"))?);
    }
    let run_ms =
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX) / DETERMINISM_RUNS as u64;
    if answers.windows(2).any(|pair| pair[0] != pair[1]) {
        bail!(
            "the task is not deterministic: {DETERMINISM_RUNS} local runs gave different answers \
             ({}); a known answer must be the same on every honest run",
            answers.iter().map(|a| a.to_string()[..12].to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let info = EntryInfo {
        version: ENTRY_VERSION,
        id,
        name: spec.name.clone(),
        answer_hash: answers[0],
        bundle_hash,
        added_unix_secs: unix_secs(),
        run_ms,
    };
    write_entry(library, &dir, file, &plain, &info)?;
    Ok(info)
}

/// Writes the entry into a temporary directory and renames it into place, so the injector never
/// sees half an entry.
fn write_entry(
    library: &Path,
    dir: &Path,
    file: &Path,
    plain: &[u8],
    info: &EntryInfo,
) -> Result<()> {
    let staging = entries_dir(library).join(format!(".adding-{}", info.id));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    std::fs::copy(file, staging.join("task.yaml"))?;
    write_atomic(&staging.join("bundle"), plain)?;
    write_atomic(&staging.join("entry.json"), &serde_json::to_vec_pretty(info)?)?;
    std::fs::rename(&staging, dir).with_context(|| format!("cannot create {}", dir.display()))
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

fn read_info(dir: &Path) -> Result<EntryInfo> {
    let path = dir.join("entry.json");
    let size = std::fs::metadata(&path)?.len();
    if size > ENTRY_JSON_BYTES_MAX {
        bail!("{}: {size} bytes, the limit is {ENTRY_JSON_BYTES_MAX}", path.display());
    }
    let info: EntryInfo = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("{} is not an entry", path.display()))?;
    if info.version != ENTRY_VERSION {
        bail!("{}: version {}, this aicpw reads {ENTRY_VERSION}", path.display(), info.version);
    }
    Ok(info)
}

/// The library's entries, in id order (an empty list for a library not made yet).
pub fn list(library: &Path) -> Result<Vec<EntryInfo>> {
    let dir = entries_dir(library);
    let read = match std::fs::read_dir(&dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut entries = Vec::new();
    for item in read.take(LIBRARY_ENTRIES_MAX + 1) {
        let path = item?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        if !hidden && path.is_dir() {
            entries.push(read_info(&path)?);
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// An entry with its terms and bundle, checked against the hash recorded when it was added.
pub fn load(library: &Path, id: &str) -> Result<Entry> {
    let dir = entries_dir(library).join(id);
    let info = read_info(&dir)?;
    let bundle = std::fs::read(dir.join("bundle"))
        .with_context(|| format!("entry {id}: cannot read its bundle"))?;
    if Hash32::of(&bundle) != info.bundle_hash {
        return Err(anyhow!("entry {id}: its bundle changed since it was added"));
    }
    let spec = read_task_file(&dir.join("task.yaml"))?;
    Ok(Entry { info, spec, bundle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicpw_provider::client::ClientError;

    fn spec(extra: &str) -> TaskFile {
        let text = format!(
            "version: 1\nname: t\ncommand: python3\nargs: [run.py]\ninputs: [run.py]\n\
             outputs: [out.txt]\ntime_limit_secs: 10\nbudget: \"1000\"\n\
             max_price_per_hour: \"3600\"\n{extra}"
        );
        TaskFile::parse(&text).expect("task file")
    }

    #[test]
    fn tasks_whose_answer_cannot_be_known_here_are_refused() {
        assert!(refuse_unfit(&spec("")).is_ok());
        assert!(refuse_unfit(&spec("network: full\n")).is_err());
        assert!(refuse_unfit(&spec("resources: { gpu_count: 1 }\n")).is_err());
        let declared = spec("nondeterministic: { summary: out.txt, tolerance: 0.01 }\n");
        let refused = refuse_unfit(&declared).expect_err("no one answer");
        let reject = refused.downcast_ref::<ClientError>().and_then(ClientError::reject);
        assert_eq!(reject, Some(aicpw_types::Reject::KnownAnswerNondeterministic));
    }

    #[test]
    fn local_runs_get_the_limits_a_provider_gives() {
        let limits = limits_of(&spec("resources: { cpu_cores: 2, memory_mb: 64 }\n"));
        assert_eq!((limits.wall_time_secs, limits.cpu_time_secs), (10, 20));
        assert_eq!((limits.memory_mb, limits.cpu_cores, limits.gpus), (64, 2, 0));
    }

    #[test]
    fn a_missing_library_lists_no_entries() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(list(&dir.path().join("none")).expect("list").is_empty());
    }
}
