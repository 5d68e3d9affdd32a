//! What a requester does: submit a task file with sealed inputs, follow it, fetch and check the
//! result; and the content store from the command line.

use aicpw_provider::client::{Client, ClientError};
use aicpw_store::{AddOptions, Store};
use aicpw_types::bundle::{self, Manifest, Reference};
use aicpw_types::spec::{TaskFile, TASK_FILE_BYTES_MAX};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{seal, seal_stream, Hash32, Keypair, NodeId, Reject, TaskId, TxBody};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// A refusal of the CLI's own, with the stable code of `reject` and what it is about.
pub fn refused(reject: Reject, about: String) -> anyhow::Error {
    anyhow!(ClientError::Rejected(reject)).context(about)
}

/// Reads a file the user (or a task file) named: only a regular file, at most `max` bytes. A
/// FIFO or a device would otherwise be read without end, and a huge file whole into memory.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let not_regular = || refused(Reject::NotRegularFile, format!("{shown} is not a regular file"));
    // Checked before opening (opening a FIFO waits for a writer) and again on what was opened.
    if !std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    let meta = file.metadata().with_context(|| format!("cannot read {shown}"))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let too_large = || refused(Reject::FileTooLarge, format!("{shown}: the limit is {max} bytes"));
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

pub fn read_task_file(file: &Path) -> Result<TaskFile> {
    let bytes = read_bounded(file, TASK_FILE_BYTES_MAX as u64)?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8", file.display()))?;
    TaskFile::parse(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// Where a task file's inputs may come from: only from under its own directory, unless the user
/// said otherwise on the command line (a task file shared by someone else must not make the CLI
/// upload the user's keys to providers).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inputs {
    UnderTaskDir,
    Anywhere,
}

/// The task file's directory, for its inputs.
pub fn task_dir(file: &Path) -> &Path {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The path of one input: `base` joined with it, refused (`InputOutsideTaskDir` 650) when it
/// names an absolute path, a `..` step, or, through a symbolic link, anything outside `base`.
fn input_path(base: &Path, input: &str, inputs: Inputs) -> Result<PathBuf> {
    let path = base.join(input);
    if inputs == Inputs::Anywhere {
        return Ok(path);
    }
    let outside = || {
        refused(Reject::InputOutsideTaskDir, format!("input {input} is outside {}", base.display()))
    };
    if !Path::new(input).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside());
    }
    let root = std::fs::canonicalize(base).with_context(|| format!("{}", base.display()))?;
    let real = std::fs::canonicalize(&path).with_context(|| format!("input {input}"))?;
    if !real.starts_with(&root) {
        return Err(outside());
    }
    Ok(path)
}

/// Seals and uploads the inputs, locks the budget in escrow; returns the task id.
pub fn submit(client: &Client, key: &Keypair, file: &Path, show: bool) -> Result<u64> {
    submit_with(client, key, file, None, Inputs::UnderTaskDir, show).map(|(id, _)| id)
}

/// The output hash a provider commits to for these outputs: the bundle of the manifest and the
/// declared output files (the log is not part of it).
pub fn answer_hash(spec: &TaskFile, outputs: &Path) -> Result<Hash32> {
    let manifest = spec.manifest();
    let files = bundle::collect_outputs(outputs, &manifest).context("known answer outputs")?;
    Ok(bundle::output_hash(&manifest, &files)?)
}

/// [`submit`], optionally as a known-answer task whose expected outputs are in `known_answer`;
/// returns the task id and, for a known-answer task, the answer hash and the salt to reveal.
pub fn submit_with(
    client: &Client,
    key: &Keypair,
    file: &Path,
    known_answer: Option<&Path>,
    inputs: Inputs,
    show: bool,
) -> Result<(u64, Option<(Hash32, Hash32)>)> {
    let spec = read_task_file(file)?;
    let answer = match known_answer {
        Some(dir) => {
            refuse_nondeterministic_answer(&spec)?;
            Some((answer_hash(&spec, dir)?, fresh_salt()))
        }
        None => None,
    };
    let references = references(client, key, &spec)?;
    let plain = pack_inputs(&spec, task_dir(file), inputs, references)?;
    let id = submit_bundle(client, key, &spec, &plain, answer.as_ref(), show)?;
    Ok((id, answer))
}

/// A task that declares itself non-deterministic has no one answer (`KnownAnswerNondeterministic`
/// 682, which the ledger also answers to its `RevealAnswer`).
pub fn refuse_nondeterministic_answer(spec: &TaskFile) -> Result<()> {
    if spec.nondeterministic.is_some() {
        let about = format!("{} declares itself non-deterministic", spec.name);
        return Err(refused(Reject::KnownAnswerNondeterministic, about));
    }
    Ok(())
}

/// A fresh random salt for a known-answer commitment.
pub fn fresh_salt() -> Hash32 {
    Hash32(seal::random_key())
}

/// The task file's `inputs_by_cid` as the provider gets them in the bundle: each CID checked to
/// be in the node's store, and content sealed by `store add --seal` given the key that opens
/// it, derived from this account's key and the content's nonce prefix; content sealed by
/// another account is refused (its key cannot be derived here), plain content goes as it is.
pub fn references(client: &Client, key: &Keypair, spec: &TaskFile) -> Result<Vec<Reference>> {
    let mut references = Vec::new();
    for input in &spec.inputs_by_cid {
        let cid: aicpw_store::Cid = input.cid.parse().map_err(|e| {
            refused(Reject::InputCidsInvalid, format!("`{}` is not a CID: {e}", input.cid))
        })?;
        let head = match client.get_stream(&format!("/store/{cid}")) {
            Ok((_, body)) => {
                let mut head = Vec::new();
                body.take(seal_stream::HEADER as u64 + seal_stream::SEALED_CHUNK as u64 + 1)
                    .read_to_end(&mut head)?;
                head
            }
            Err(error) if error.reject() == Some(Reject::NotFound) => {
                let about =
                    format!("input {} names {cid}, which the node does not hold", input.name);
                return Err(refused(Reject::InputNotStored, about));
            }
            Err(error) => return Err(error.into()),
        };
        let key = match seal_stream::prefix_of(&head) {
            Some(prefix) => {
                let content_key = key.sealed_content_key(&prefix);
                let mut first = [0u8; 1];
                if seal_stream::Decryptor::new(&content_key, head.as_slice())
                    .read(&mut first)
                    .is_err()
                {
                    let about =
                        format!("input {} ({cid}) was sealed by another account", input.name);
                    return Err(refused(Reject::InputSealedByAnother, about));
                }
                Some(Hash32(content_key))
            }
            None => None,
        };
        references.push(Reference { name: input.name.clone(), cid: cid.to_string(), key });
    }
    Ok(references)
}

/// The plain bundle a provider receives: the manifest with the inputs named by CID
/// (`references`), and the input files, read relative to `base` (the task file's directory)
/// and, unless `inputs` says otherwise, only from under it.
pub fn pack_inputs(
    spec: &TaskFile,
    base: &Path,
    inputs: Inputs,
    references: Vec<Reference>,
) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for input in &spec.inputs {
        let path = input_path(base, input, inputs)?;
        let name =
            path.file_name().and_then(|n| n.to_str()).context("an input has no file name")?;
        bundle::collect(&path, name, &mut files).with_context(|| format!("input {input}"))?;
    }
    let top = |path: &str| path.split('/').next().unwrap_or("").to_string();
    if let Some(named) =
        references.iter().find(|r| files.iter().any(|(path, _)| top(path) == r.name))
    {
        bail!("input {} is both a file of the task and named by CID", named.name);
    }
    Ok(bundle::pack(&Manifest { references, ..spec.manifest() }, &files)?)
}

/// Seals (unless the file says `encrypt: false`) and uploads a plain bundle under a fresh content
/// key, locks the budget with the task's terms and commits to `answer` (answer hash, salt) or to
/// random bytes; returns the task id. Every submission, known-answer or not, takes this path, so
/// the ledger and the providers see the same kind of transaction.
pub fn submit_bundle(
    client: &Client,
    key: &Keypair,
    spec: &TaskFile,
    plain: &[u8],
    answer: Option<&(Hash32, Hash32)>,
    show: bool,
) -> Result<u64> {
    // Random bytes for a normal task: indistinguishable from a known answer's commitment.
    let answer_commitment = match answer {
        Some((hash, salt)) => aicpw_ledger::dispute::answer_commitment(&key.account(), hash, salt),
        None => Hash32(seal::random_key()),
    };
    let blob = if spec.encrypt {
        seal::encrypt(&key.content_key(&answer_commitment.0), plain)
    } else {
        plain.to_vec()
    };
    let bar = if show { ProgressBar::new(blob.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("uploading inputs [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(if spec.encrypt { "(sealed)" } else { "(plain)" });
    let cid = aicpw_store::cid_of_reader(blob.as_slice(), &AddOptions::cid_v1())?.to_string();
    let length = blob.len() as u64;
    let body = bar.wrap_read(std::io::Cursor::new(blob.as_slice()));
    let inputs_cid = client.upload(key, "/store", &cid, body, length)?;
    bar.finish_with_message(format!("inputs stored as {inputs_cid}"));
    let terms = spec.terms(inputs_cid, key.x25519_public());
    let body = TxBody::SubmitTask { terms, answer_commitment };
    let committed = client.send(key, body, true)?;
    let id = committed["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event"] == "task_submitted"))
        .and_then(|e| e["task"].as_u64())
        .context("the node's receipt has no task_submitted event")?;
    grant_first_seats(client, key, id)?;
    Ok(id)
}

/// How long `task submit` waits for a task's random seats to be drawn before it grants them.
const SEAT_DRAW_WAIT: Duration = Duration::from_secs(10);

/// Grants the content key to the seats a task got at submission. A seat the matcher picks is
/// placed in the block that accepted the task; random seats are drawn in the block after their
/// candidates were frozen, so this waits for that draw (a block or two) first.
fn grant_first_seats(client: &Client, key: &Keypair, id: u64) -> Result<()> {
    let deadline = Instant::now() + SEAT_DRAW_WAIT;
    loop {
        let task = client.get(&format!("/v1/tasks/{id}"))?;
        if task["seat_draw"].is_null() || Instant::now() >= deadline {
            grant_placed(client, key, &task)?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Grants the content key of one of `key`'s encrypted tasks to every node placed on it that
/// still waits for it, and to no other: the ledger refuses grants to nodes without a lease
/// (`GrantWithoutLease` 545), and a lease not granted within `grant_wait_ms` is released, the
/// requester paying its wait. Returns the nodes granted now.
pub fn grant_placed(client: &Client, key: &Keypair, task: &Value) -> Result<Vec<NodeId>> {
    let granted = |node: u64| {
        task["key_grants"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["node"].as_u64() == Some(node))
    };
    let waiting: Vec<u64> = task["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["verdict"] == "pending" && l["commitment"].is_null())
        .filter_map(|l| l["node"].as_u64())
        .filter(|node| !granted(*node))
        .collect();
    if task["terms"]["encrypted"] != true || waiting.is_empty() {
        return Ok(Vec::new());
    }
    let id = task["id"].as_u64().context("a task without an id")?;
    let salt: Hash32 = task["answer_commitment"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .context("a task without its answer commitment")?;
    let content_key = key.content_key(&salt.0);
    let mut key_grants = Vec::new();
    for node in waiting {
        let found = client.get(&format!("/v1/nodes/{node}"))?;
        let public = found["x25519_key"].as_str().and_then(|k| hex::decode(k).ok());
        let public: [u8; 32] = public
            .and_then(|k| k.try_into().ok())
            .with_context(|| format!("node {node} has no X25519 key"))?;
        let sealed_key = seal::seal(&public, &content_key)
            .map_err(|e| refused(Reject::WeakX25519Key, format!("node {node}: {e}")))?;
        key_grants.push(KeyGrant { node: NodeId(node), sealed_key });
    }
    let nodes = key_grants.iter().map(|g| g.node).collect();
    client.send(key, TxBody::GrantKeys { task: TaskId(id), key_grants }, true)?;
    Ok(nodes)
}

fn state_of(task: &Value) -> String {
    task["state"].as_str().unwrap_or("unknown").to_string()
}

/// Follows a task until it has a result or ends; returns its state then. With the requester's
/// key it grants the content key to each node placed on the task meanwhile (replacements,
/// auditors, referees), as `task submit` does for the first seats.
pub fn watch(client: &Client, id: u64, key: Option<&Keypair>, show: bool) -> Result<String> {
    let bar = if show { ProgressBar::new(1000) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} task {prefix} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(id.to_string());
    let settled = |state: &str| matches!(state, "verifying" | "completed" | "failed" | "cancelled");
    let grant = |task: &Value| {
        let Some(key) = key else { return };
        match grant_placed(client, key, task) {
            Ok(nodes) if !nodes.is_empty() => bar.set_message(format!("key granted to {nodes:?}")),
            Ok(_) => {}
            // The lease may have moved on meanwhile; the next event brings the task again.
            Err(e) => bar.set_message(format!("cannot grant the key yet: {e:#}")),
        }
    };
    let task = client.get(&format!("/v1/tasks/{id}"))?;
    grant(&task);
    let mut state = state_of(&task);
    bar.set_message(state.clone());
    if !settled(&state) {
        client.follow_events(aicpw_provider::client::EventsAbout::Task(id), |event| {
            match event["event"].as_str() {
                Some("task_assigned") => {
                    bar.set_message(format!("running on node {}", event["node"]))
                }
                Some("task_progress") => {
                    bar.set_position(event["progress_permille"].as_u64().unwrap_or(0))
                }
                Some("task_requeued") => bar.set_message(format!(
                    "node {} gave it up ({}); requeued",
                    event["node"],
                    event["reason"].as_str().unwrap_or("")
                )),
                _ => {}
            }
            // Re-read the task on every event and keep-alive: the stream says *that* it changed.
            if let Ok(task) = client.get(&format!("/v1/tasks/{id}")) {
                grant(&task);
                state = state_of(&task);
            }
            !settled(&state)
        })?;
    }
    if state == "verifying" || state == "completed" {
        bar.set_position(1000);
    }
    bar.finish_with_message(state.clone());
    Ok(state)
}

pub struct Fetched {
    pub cid: String,
    pub files: Vec<String>,
}

/// Downloads a result, checks its CID and the provider's output commitment, decrypts it into
/// `out`, and (with `accept`) accepts it on the ledger, which pays the provider.
pub fn fetch_result(
    client: &Client,
    key: &Keypair,
    id: u64,
    out: &Path,
    accept: bool,
) -> Result<Fetched> {
    let task = client.get(&format!("/v1/tasks/{id}"))?;
    let state = state_of(&task);
    let result = &task["result"];
    let cid = result["result_cid"]
        .as_str()
        .with_context(|| format!("task {id} is {state}: it has no result"))?;
    let blob = client.get_store(cid)?;
    let scratch = tempfile::tempdir()?;
    let computed = Store::open(scratch.path())?.add_bytes(&blob, &AddOptions::cid_v1())?;
    if computed.to_string() != cid {
        return Err(anyhow!(aicpw_provider::client::ClientError::Rejected(
            Reject::ContentMismatch
        )))
        .with_context(|| format!("downloaded content has CID {computed}, the ledger says {cid}"));
    }
    let plain = seal::open_result(&key.x25519_secret(), &blob)
        .context("cannot open the result: it is not sealed to this key")?;
    let (manifest, files) = bundle::unpack(&plain)?;
    let (outputs, _log) = bundle::split_result(&files)?;
    let output_hash = bundle::output_hash(&manifest, outputs)?;
    if result["output_hash"].as_str() != Some(output_hash.to_string().as_str()) {
        bail!("the result does not match the output hash the provider committed");
    }
    // The log tail goes beside the outputs, unless an output already holds its name.
    let log_clashes = outputs.iter().any(|(p, _)| p == "logs" || p == bundle::RESULT_LOG_PATH);
    if log_clashes {
        eprintln!("the task's log tail is not written: an output is named logs");
    }
    let written = if log_clashes { outputs } else { &files[..] };
    std::fs::create_dir_all(out)?;
    bundle::write_files(out, written).map_err(|e| match e {
        bundle::BundleError::Exists(path) => refused(
            Reject::ResultPathExists,
            format!("{} is already there: choose a new or empty --out", out.join(path).display()),
        ),
        other => other.into(),
    })?;
    if accept && state == "verifying" {
        client.send(key, TxBody::AcceptResult { task: TaskId(id) }, true)?;
    }
    Ok(Fetched { cid: cid.to_string(), files: written.iter().map(|(p, _)| p.clone()).collect() })
}

fn add_options(cid_version: u8) -> AddOptions {
    if cid_version == 0 {
        AddOptions::default()
    } else {
        AddOptions::cid_v1()
    }
}

/// The CID `store_add` would print for `path`, computed here without a node.
pub fn store_cid(path: &Path, cid_version: u8) -> Result<String> {
    let cid = aicpw_store::cid_of_path(path, &add_options(cid_version))
        .with_context(|| format!("cannot hash {}", path.display()))?;
    Ok(cid.to_string())
}

/// Adds a file or directory to the node's store; returns the root CID. The upload is signed by
/// `key`, whose store quota it uses. A file is streamed as one blob; with `seal`, as its
/// chunked ciphertext (`seal_stream`) under a key derived from `key` and a fresh nonce prefix,
/// which tasks of this account name by CID. A directory goes through a CAR file.
pub fn store_add(
    client: &Client,
    key: &Keypair,
    path: &Path,
    cid_version: u8,
    seal: bool,
) -> Result<String> {
    let options = add_options(cid_version);
    let shown = path.display();
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if seal && !metadata.is_file() {
        bail!("only a file can be sealed: {shown} is not one");
    }
    let (cid, stored) = if metadata.is_file() {
        // One blob: hashed here, then streamed; the node builds the same DAG as it arrives.
        let size = metadata.len();
        let prefix = seal_stream::random_prefix();
        let content_key = key.sealed_content_key(&prefix);
        let length = if seal { seal_stream::sealed_size(size) } else { size };
        let open = || -> Result<Box<dyn ReadSeek>> {
            let file = File::open(path).with_context(|| format!("cannot read {shown}"))?;
            Ok(if seal {
                Box::new(seal_stream::SealingReader::new(&content_key, prefix, file, size))
            } else {
                Box::new(file)
            })
        };
        let bar = byte_bar("hashing", Some(length));
        let cid = aicpw_store::cid_of_reader(bar.wrap_read(open()?.take(length)), &options)
            .with_context(|| format!("cannot hash {shown}"))?
            .to_string();
        bar.finish_and_clear();
        let bar = byte_bar("uploading", Some(length));
        let stored = client.upload(key, "/store", &cid, bar.wrap_read(open()?), length)?;
        bar.finish_and_clear();
        (cid, stored)
    } else {
        // A directory: built in a scratch store, then streamed as a CAR file from disk.
        let scratch = tempfile::tempdir()?;
        let local = Store::open(scratch.path().join("store"))?;
        let cid = local.add_path(path, &options).with_context(|| format!("cannot add {shown}"))?;
        let car_path = scratch.path().join("upload.car");
        let mut car = std::io::BufWriter::new(File::create(&car_path)?);
        local.export_car(&cid, &mut car)?;
        car.flush()?;
        drop(car);
        let length = std::fs::metadata(&car_path)?.len();
        let cid = cid.to_string();
        let bar = byte_bar("uploading", Some(length));
        let stored = client.upload(
            key,
            "/store/car",
            &cid,
            bar.wrap_read(File::open(&car_path)?),
            length,
        )?;
        bar.finish_and_clear();
        (cid, stored)
    };
    if stored != cid {
        bail!("the node stored another root: {stored}");
    }
    Ok(cid)
}

/// A source an upload can resume in.
trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

/// A progress bar of bytes on the terminal (hidden when stderr is not one).
fn byte_bar(what: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    let template =
        format!("{what} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} {{eta}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Gets a file or directory by CID, streamed to `out` and checked: a file is hashed as it is
/// written (and removed if it is not the content asked for); anything else, and a file built
/// with other options than `ipfs add`'s defaults, comes as a CAR file whose every block is
/// checked.
pub fn store_get(client: &Client, cid: &str, out: &Path) -> Result<()> {
    let wanted: aicpw_store::Cid = cid.parse().map_err(|e| anyhow!("`{cid}` is not a CID: {e}"))?;
    if std::fs::symlink_metadata(out).is_ok() {
        bail!("{} already exists", out.display());
    }
    match client.get_stream(&format!("/store/{cid}")) {
        Ok((length, body)) => {
            let bar = byte_bar("downloading", length);
            let file = File::options().write(true).create_new(true).open(out)?;
            let mut writer = std::io::BufWriter::new(file);
            let got = aicpw_store::cid_of_copy(
                bar.wrap_read(body),
                &mut writer,
                &AddOptions::of(&wanted),
            )
            .map_err(anyhow::Error::from);
            let written = got.and_then(|got| {
                let file = writer.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                Ok(got)
            });
            bar.finish_and_clear();
            match written {
                Ok(got) if got == wanted => return Ok(()),
                Ok(_) => std::fs::remove_file(out)?,
                Err(error) => {
                    let _ = std::fs::remove_file(out);
                    return Err(error.context(format!("cannot get {cid}")));
                }
            }
        }
        Err(error) if error.reject() == Some(Reject::NotAFile) => {}
        Err(error) => return Err(error.into()),
    }
    let (length, body) = client.get_stream(&format!("/store/{cid}/car"))?;
    let bar = byte_bar("downloading", length);
    let scratch = tempfile::tempdir()?;
    let local = Store::open(scratch.path())?;
    let roots = local.import_car(bar.wrap_read(body))?;
    bar.finish_and_clear();
    if !roots.contains(&wanted) {
        bail!("the node sent a CAR file for other roots");
    }
    local.get_to_path(&wanted, out)?;
    Ok(())
}

pub fn describe_task(task: &Value) -> String {
    let mut lines = vec![
        format!("task {} {}", task["id"], task["terms"]["name"].as_str().unwrap_or("")),
        format!("state     {}", task["state"].as_str().unwrap_or("")),
    ];
    if let Some(reason) = task["failure"].as_str() {
        lines.push(format!("reason    {reason}"));
    }
    if task["state"] == "running" {
        for lease in task["leases"].as_array().into_iter().flatten() {
            let step = if lease["commitment"].is_null() { "running" } else { "committed" };
            lines.push(format!(
                "node      {} {} {step} ({}‰ done)",
                lease["node"],
                lease["role"].as_str().unwrap_or(""),
                lease["progress_permille"]
            ));
        }
    }
    if let Some(round) = task["round"].as_str().filter(|r| *r != "work") {
        lines.push(format!("round     {round}"));
    }
    if let Some(node) = task["result"]["node"].as_u64() {
        lines.push(format!("ran on    node {node}"));
    }
    lines.push(format!("budget    {}", task["terms"]["budget"].as_str().unwrap_or("")));
    lines.push(format!("escrow    {}", task["escrow"].as_str().unwrap_or("")));
    lines.push(format!("paid      {}", task["paid"].as_str().unwrap_or("")));
    lines.push(format!("refunded  {}", task["refunded"].as_str().unwrap_or("")));
    lines.push(format!("attempts  {}", task["attempts"]));
    if let Some(cid) = task["result"]["result_cid"].as_str() {
        lines.push(format!("result    {cid}"));
    }
    lines.join("\n")
}
