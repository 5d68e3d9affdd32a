//! `aicpw bench store`: files of each size added and got back through a dev node's HTTP API
//! exactly as `aicpw store add` and `aicpw store get` do (hash here, stream up, the node builds
//! and commits the DAG; stream down, hashed on the way to disk), with each side's peak memory.
//!
//! Throughput is in MB/s of 10^6 bytes: file bytes over the wall time of the whole command,
//! hashing and the node's durable commit included. The machine's load average is reported
//! beside the figures: other work on the machine slows them.

use crate::{demo, requester};
use aicpw_provider::client::Client;
use aicpw_types::Keypair;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const MIB: u64 = 1024 * 1024;

/// Peak resident memory of process `pid` since its last reset, in MiB.
fn peak_rss_mib(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).context("VmHWM")?;
    Ok(kib / 1024)
}

/// Starts counting a process's peak resident memory afresh.
fn reset_peak_rss(pid: &str) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("cannot reset the peak memory of process {pid}"))
}

fn load_average() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    json!({ "1m": fields.next().flatten(), "5m": fields.next().flatten() })
}

/// Writes `size` bytes that repeat no 256 KiB chunk (a xorshift stream), so nothing dedups.
fn write_test_file(path: &Path, size: u64) -> Result<()> {
    let mut file = std::io::BufWriter::with_capacity(MIB as usize, std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buffer = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in buffer.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        file.write_all(&buffer[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

fn mb_per_sec(bytes: u64, seconds: f64) -> f64 {
    (bytes as f64 / 1e6 / seconds * 10.0).round() / 10.0
}

/// The CID js-ipfs' UnixFS importer gives `file` (CIDv1, `ipfs add` defaults), by `tool`
/// (`tools/ipfs-cid/cid.mjs`).
fn js_ipfs_cid(tool: &Path, file: &Path) -> Result<String> {
    let output = std::process::Command::new("node")
        .arg(tool)
        .arg(file)
        .arg("1")
        .output()
        .context("cannot run node")?;
    if !output.status.success() {
        bail!("{} failed: {}", tool.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs the bench for files of `sizes_mib` MiB each, one after the other; with `js_tool`, also
/// checks each file's CID against js-ipfs'.
pub fn run(sizes_mib: &[u64], js_tool: Option<&Path>) -> Result<Value> {
    if sizes_mib.is_empty() || sizes_mib.contains(&0) {
        bail!("give at least one file size of 1 MiB or more");
    }
    let temp = tempfile::Builder::new().prefix("aicpw-bench-store-").tempdir()?;
    let root = temp.path();
    let quota = (sizes_mib.iter().sum::<u64>() * MIB * 2).to_string();
    let (node, url) = demo::start_node(
        &root.join("node"),
        &root.join("node.log"),
        &["--store-quota-bytes", &quota],
    )?;
    let node_pid = node.id().to_string();
    let _children = demo::Children(vec![node], root.to_path_buf());
    let client = Client::new(&url);
    let key = Keypair::dev(1);
    let mut files = Vec::new();
    for &size_mib in sizes_mib {
        let size = size_mib * MIB;
        let source = root.join("source");
        let copy = root.join("copy");
        write_test_file(&source, size)?;
        let load_before = load_average();

        reset_peak_rss(&node_pid)?;
        reset_peak_rss("self")?;
        let started = Instant::now();
        let cid = requester::store_add(&client, &key, &source, 1, false)?;
        let add_secs = started.elapsed().as_secs_f64();
        let add_node = peak_rss_mib(&node_pid)?;
        let add_client = peak_rss_mib("self")?;
        let js_ipfs = js_tool.map(|tool| js_ipfs_cid(tool, &source)).transpose()?;
        if js_ipfs.as_ref().is_some_and(|js| *js != cid) {
            bail!(
                "js-ipfs gives {size_mib} MiB file another CID than the store: {js_ipfs:?}, {cid}"
            );
        }
        // Only the store's copy and the one got back are on disk at once.
        std::fs::remove_file(&source)?;

        reset_peak_rss(&node_pid)?;
        reset_peak_rss("self")?;
        let started = Instant::now();
        requester::store_get(&client, &cid, &copy)?;
        let get_secs = started.elapsed().as_secs_f64();
        let get_node = peak_rss_mib(&node_pid)?;
        let get_client = peak_rss_mib("self")?;
        if std::fs::metadata(&copy)?.len() != size {
            bail!("the copy got back has another size than the file added");
        }
        std::fs::remove_file(&copy)?;
        files.push(json!({
            "size_mib": size_mib,
            "cid": cid,
            "cid_checked_against_js_ipfs": js_ipfs.is_some(),
            "add_mb_per_sec": mb_per_sec(size, add_secs),
            "get_mb_per_sec": mb_per_sec(size, get_secs),
            "add_secs": (add_secs * 1000.0).round() / 1000.0,
            "get_secs": (get_secs * 1000.0).round() / 1000.0,
            "node_peak_rss_mb": add_node.max(get_node),
            "client_peak_rss_mb": add_client.max(get_client),
            "node_peak_rss_mb_add_get": [add_node, get_node],
            "client_peak_rss_mb_add_get": [add_client, get_client],
            "load_average_before": load_before,
            "load_average_after": load_average(),
        }));
    }
    Ok(json!({
        "bench": "store",
        "mb": "10^6 bytes; rss in MiB",
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "files": files,
    }))
}
