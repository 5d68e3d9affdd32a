//! What a requester does: submit a task file with sealed inputs, follow it, fetch and check the
//! result; and the content store from the command line.

use aicpw_provider::client::Client;
use aicpw_store::{AddOptions, Store};
use aicpw_types::bundle::{self, Manifest};
use aicpw_types::spec::{TaskFile, TASK_FILE_BYTES_MAX};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{seal, Hardware, Hash32, Keypair, NodeId, Reject, TaskId, TaskTerms, TxBody};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::Path;

/// Most nodes a task's content key is sealed to.
pub const KEY_GRANTS_MAX: usize = 64;

pub fn read_task_file(file: &Path) -> Result<TaskFile> {
    let size =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    if size > TASK_FILE_BYTES_MAX as u64 {
        bail!("{}: {size} bytes, the limit is {TASK_FILE_BYTES_MAX}", file.display());
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    TaskFile::parse(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// Active nodes whose hardware, price and network opt-in fit the task: they get a sealed copy
/// of the content key.
fn grant_candidates(client: &Client, spec: &TaskFile) -> Result<Vec<(NodeId, [u8; 32])>> {
    let nodes = client.get("/v1/nodes")?;
    let mut fit: Vec<(u128, NodeId, [u8; 32])> = Vec::new();
    for node in nodes.as_array().into_iter().flatten() {
        let hardware: Hardware = serde_json::from_value(node["hardware"].clone())?;
        let price: u128 =
            node["price_per_hour"].as_str().and_then(|p| p.parse().ok()).unwrap_or(u128::MAX);
        let key = node["x25519_key"].as_str().and_then(|k| hex::decode(k).ok());
        let (Some(id), Some(key)) =
            (node["id"].as_u64(), key.and_then(|k| <[u8; 32]>::try_from(k).ok()))
        else {
            continue;
        };
        let network = spec.network == aicpw_types::spec::NetworkAccess::Full;
        if node["status"] == "active"
            && hardware.satisfies(&spec.resources)
            && (!network || hardware.allows_network)
            && price <= spec.max_price_per_hour.0
        {
            fit.push((price, NodeId(id), key));
        }
    }
    fit.sort();
    Ok(fit.into_iter().take(KEY_GRANTS_MAX).map(|(_, id, key)| (id, key)).collect())
}

/// Seals and uploads the inputs, locks the budget in escrow; returns the task id.
pub fn submit(client: &Client, key: &Keypair, file: &Path, show: bool) -> Result<u64> {
    submit_with(client, key, file, None, show).map(|(id, _)| id)
}

/// The output hash a provider commits to for these outputs: the bundle of the manifest and the
/// declared output files (the log is not part of it).
pub fn answer_hash(spec: &TaskFile, outputs: &Path) -> Result<Hash32> {
    let manifest = manifest_of(spec);
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
    show: bool,
) -> Result<(u64, Option<(Hash32, Hash32)>)> {
    let spec = read_task_file(file)?;
    let answer = match known_answer {
        Some(dir) => Some((answer_hash(&spec, dir)?, fresh_salt())),
        None => None,
    };
    let plain = pack_inputs(&spec, file.parent().unwrap_or(Path::new(".")))?;
    let id = submit_bundle(client, key, &spec, &plain, answer.as_ref(), show)?;
    Ok((id, answer))
}

/// A fresh random salt for a known-answer commitment.
pub fn fresh_salt() -> Hash32 {
    Hash32(seal::random_key())
}

/// The plain bundle a provider receives: the manifest and the input files, read relative to
/// `base` (the task file's directory).
pub fn pack_inputs(spec: &TaskFile, base: &Path) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for input in &spec.inputs {
        let path = base.join(input);
        let name =
            path.file_name().and_then(|n| n.to_str()).context("an input has no file name")?;
        bundle::collect(&path, name, &mut files).with_context(|| format!("input {input}"))?;
    }
    Ok(bundle::pack(&manifest_of(spec), &files)?)
}

fn manifest_of(spec: &TaskFile) -> Manifest {
    Manifest {
        command: spec.command.clone(),
        args: spec.args.clone(),
        outputs: spec.outputs.clone(),
    }
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
    let (blob, key_grants) = if spec.encrypt {
        let content_key = seal::random_key();
        let grants = grant_candidates(client, spec)?
            .into_iter()
            .map(|(node, public)| KeyGrant { node, sealed_key: seal::seal(&public, &content_key) })
            .collect();
        (seal::encrypt(&content_key, plain), grants)
    } else {
        (plain.to_vec(), Vec::new())
    };
    let bar = if show { ProgressBar::new(blob.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("uploading inputs [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(if spec.encrypt { "(sealed)" } else { "(plain)" });
    let inputs_cid = client.put_store_from(bar.wrap_read(blob.as_slice()), blob.len() as u64)?;
    bar.finish_with_message(format!("inputs stored as {inputs_cid}"));
    let terms = TaskTerms {
        name: spec.name.clone(),
        kind: spec.kind,
        runtime: spec.runtime,
        resources: spec.resources.clone(),
        time_limit_secs: spec.time_limit_secs,
        budget: spec.budget,
        max_price_per_hour: spec.max_price_per_hour,
        verification: spec.verification,
        strategy: spec.strategy,
        reputation_min: spec.reputation_min,
        network: spec.network == aicpw_types::spec::NetworkAccess::Full,
        encrypted: spec.encrypt,
        inputs_cid,
        result_key: key.x25519_public(),
    };
    // Random bytes for a normal task: indistinguishable from a known answer's commitment.
    let answer_commitment = match answer {
        Some((hash, salt)) => aicpw_ledger::dispute::answer_commitment(&key.account(), hash, salt),
        None => Hash32(seal::random_key()),
    };
    let body = TxBody::SubmitTask { terms, key_grants, answer_commitment };
    let committed = client.send(key, body, true)?;
    committed["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event"] == "task_submitted"))
        .and_then(|e| e["task"].as_u64())
        .context("the node's receipt has no task_submitted event")
}

fn state_of(task: &Value) -> String {
    task["state"].as_str().unwrap_or("unknown").to_string()
}

/// Follows a task until it has a result or ends; returns its state then.
pub fn watch(client: &Client, id: u64, show: bool) -> Result<String> {
    let bar = if show { ProgressBar::new(1000) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} task {prefix} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(id.to_string());
    let settled = |state: &str| matches!(state, "verifying" | "completed" | "failed" | "cancelled");
    let mut state = state_of(&client.get(&format!("/v1/tasks/{id}"))?);
    bar.set_message(state.clone());
    if !settled(&state) {
        client.follow_events(Some(id), |event| {
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
    let sealed_len = 32 + seal::SEAL_OVERHEAD;
    if blob.len() < sealed_len {
        bail!("the result is too short to be sealed");
    }
    let content_key = seal::open(&key.x25519_secret(), &blob[..sealed_len])
        .context("cannot open the result: it is not sealed to this key")?;
    let content_key: [u8; 32] = content_key.try_into().map_err(|_| anyhow!("bad content key"))?;
    let plain = seal::decrypt(&content_key, &blob[sealed_len..])?;
    let (manifest, files) = bundle::unpack(&plain)?;
    let (outputs, _log) = bundle::split_result(&files)?;
    let output_hash = bundle::output_hash(&manifest, outputs)?;
    if result["output_hash"].as_str() != Some(output_hash.to_string().as_str()) {
        bail!("the result does not match the output hash the provider committed");
    }
    std::fs::create_dir_all(out)?;
    bundle::write_files(out, &files)?;
    if accept && state == "verifying" {
        client.send(key, TxBody::AcceptResult { task: TaskId(id) }, true)?;
    }
    Ok(Fetched { cid: cid.to_string(), files: files.into_iter().map(|(p, _)| p).collect() })
}

/// Adds a file or directory to the node's store through a CAR file; returns the root CID.
pub fn store_add(client: &Client, path: &Path, cid_version: u8) -> Result<String> {
    let options = if cid_version == 0 { AddOptions::default() } else { AddOptions::cid_v1() };
    let scratch = tempfile::tempdir()?;
    let local = Store::open(scratch.path())?;
    let cid =
        local.add_path(path, &options).with_context(|| format!("cannot add {}", path.display()))?;
    let mut car = Vec::new();
    local.export_car(&cid, &mut car)?;
    let answer = client.put_bytes("/store/car", &car)?;
    if answer["roots"].as_array().and_then(|r| r.first()).and_then(Value::as_str)
        != Some(cid.to_string().as_str())
    {
        bail!("the node stored another root: {answer}");
    }
    Ok(cid.to_string())
}

/// Gets a file or directory by CID as a CAR file, checking every block before writing it out.
pub fn store_get(client: &Client, cid: &str, out: &Path) -> Result<()> {
    let wanted: aicpw_store::Cid = cid.parse().map_err(|e| anyhow!("`{cid}` is not a CID: {e}"))?;
    let car = client.get_bytes(&format!("/store/{cid}/car"))?;
    let scratch = tempfile::tempdir()?;
    let local = Store::open(scratch.path())?;
    let roots = local.import_car(car.as_slice())?;
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
