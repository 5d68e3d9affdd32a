//! `aicpw demo`: a whole local network in one process tree. A dev node, three provider agents
//! (separate processes, real sandbox) and a requester run the training example end to end.

use crate::requester;
use aicpw_provider::client::Client;
use aicpw_types::Keypair;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example task, built into the binary so the demo runs from any directory.
const EXAMPLE_YAML: &str = include_str!("../../../examples/tasks/train-tiny-model.yaml");
const EXAMPLE_SCRIPT: &str = include_str!("../../../examples/tasks/train-tiny-model/train.py");
/// Providers in the demo network, with their prices per hour in base units.
const PROVIDER_PRICES: [u64; 3] = [3_600_000, 2_400_000, 3_000_000];
/// Longest the demo waits for the network to come up, and for the task.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Child processes that are killed when the demo ends, however it ends, and the directory
/// they work in: the run filesystems their agents left mounted there (spares made ahead, a
/// run cut short) are detached once they are gone.
pub struct Children(pub Vec<Child>, pub PathBuf);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        aicpw_provider::executor::detach_mounts_below(&self.1);
    }
}

/// Starts `aicpw node start --dev` on a free port, with `args` added; returns the child and its
/// API URL.
pub fn start_node(data_dir: &Path, log: &Path, args: &[&str]) -> Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["node", "start", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("cannot start the node")?;
    let stdout = child.stdout.take().context("node stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line.trim().strip_prefix("listening on ").map(str::to_string);
    match url {
        Some(url) => Ok((child, url)),
        None => {
            let _ = child.kill();
            bail!("the node did not start; see {}", log.display())
        }
    }
}

/// Starts a provider agent process for dev account `index`.
/// Starts provider agent `index` (dev account) at `price`, with `extra` arguments to
/// `provider start`.
pub fn start_provider(
    url: &str,
    root: &Path,
    index: u32,
    price: u64,
    extra: &[&str],
) -> Result<Child> {
    let key = root.join(format!("provider-{index}.json"));
    Keypair::dev(index).save(&key)?;
    let log = std::fs::File::create(root.join(format!("provider-{index}.log")))?;
    Command::new(std::env::current_exe()?)
        .args([
            "--node",
            url,
            "provider",
            "start",
            "--stake",
            "1000000000",
            "--price",
            &price.to_string(),
        ])
        .arg("--key")
        .arg(&key)
        .arg("--work-dir")
        .arg(root.join(format!("provider-{index}")))
        .args(extra)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start a provider")
}

pub fn wait_for_nodes(client: &Client, count: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let nodes = client.get("/v1/nodes")?;
        if nodes.as_array().map_or(0, Vec::len) >= count {
            return Ok(());
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            bail!("only {} of {count} providers registered", nodes.as_array().map_or(0, Vec::len));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_example(root: &Path) -> Result<PathBuf> {
    let dir = root.join("examples/tasks");
    std::fs::create_dir_all(dir.join("train-tiny-model"))?;
    std::fs::write(dir.join("train-tiny-model/train.py"), EXAMPLE_SCRIPT)?;
    let yaml = dir.join("train-tiny-model.yaml");
    std::fs::write(&yaml, EXAMPLE_YAML)?;
    Ok(yaml)
}

fn supply(client: &Client) -> Result<String> {
    Ok(client.get("/v1/status")?["supply"].as_str().context("status has no supply")?.to_string())
}

fn loss_summary(out: &Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join("loss.csv")).ok()?;
    let losses: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split(',').nth(1)).collect();
    Some(format!("{} epochs, loss {} → {}", losses.len(), losses.first()?, losses.last()?))
}

/// The demo's providers run tasks in the bubblewrap sandbox: say what is missing, and how to
/// install it, before starting anything (a provider without it would never register).
pub fn check_sandbox() -> Result<()> {
    aicpw_provider::executor::sandbox_available().map_err(|e| {
        anyhow!(
            "the demo's providers run tasks in the bubblewrap sandbox, which cannot start \
             here: {e}\nInstall it with `sudo apt-get install bubblewrap` (Debian, Ubuntu), \
             or run `scripts/setup.sh` from the repository, which also checks it works."
        )
    })
}

pub fn run(json_output: bool, keep: bool) -> Result<()> {
    let started = Instant::now();
    check_sandbox()?;
    let temp = tempfile::Builder::new().prefix("aicpw-demo-").tempdir()?;
    let root = temp.path().to_path_buf();
    let say = |text: String| {
        if !json_output {
            println!("{text}");
        }
    };
    let (node, url) = start_node(&root.join("node"), &root.join("node.log"), &[])?;
    let mut children = Children(vec![node], root.clone());
    say(format!("node: dev chain at {url} (data in {})", root.display()));
    for (i, price) in PROVIDER_PRICES.iter().enumerate() {
        children.0.push(start_provider(&url, &root, i as u32 + 1, *price, &[])?);
    }
    let client = Client::new(&url);
    wait_for_nodes(&client, PROVIDER_PRICES.len())?;
    say(format!("providers: {} registered with stake, sandbox ready", PROVIDER_PRICES.len()));
    let supply_before = supply(&client)?;
    let requester = Keypair::dev(0);
    let yaml = write_example(&root)?;
    let id = requester::submit(&client, &requester, &yaml, !json_output)?;
    say(format!("requester: submitted task {id} (train-tiny-model), budget in escrow"));
    let state = requester::watch(&client, id, Some(&requester), !json_output)?;
    let out = root.join("result");
    let fetched = if state == "verifying" {
        Some(requester::fetch_result(&client, &requester, id, &out, true)?)
    } else {
        None
    };
    let task = wait_terminal(&client, id)?;
    let supply_after = supply(&client)?;
    let summary = json!({
        "tasks": [{
            "id": id,
            "state": task["state"],
            "paid": task["paid"],
            "refunded": task["refunded"],
            "result_cid": task["result"]["result_cid"],
        }],
        "supply_before": supply_before,
        "supply_after": supply_after,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    if json_output {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&task, fetched.as_ref(), &out, &summary);
    }
    drop(children);
    if keep {
        println!("kept {}", temp.keep().display());
    }
    check(&summary)
}

fn wait_terminal(client: &Client, id: u64) -> Result<Value> {
    let started = Instant::now();
    loop {
        let task = client.get(&format!("/v1/tasks/{id}"))?;
        if matches!(task["state"].as_str(), Some("completed" | "failed" | "cancelled")) {
            return Ok(task);
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            bail!("task {id} did not settle: {}", task["state"]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_summary(task: &Value, fetched: Option<&requester::Fetched>, out: &Path, summary: &Value) {
    println!("\n{}", requester::describe_task(task));
    if let Some(fetched) = fetched {
        println!("result: {} verified (CID and output commitment) and decrypted:", fetched.cid);
        for file in &fetched.files {
            println!("  {}", file);
        }
        if let Some(loss) = loss_summary(out) {
            println!("training: {loss}");
        }
    }
    println!(
        "supply before {} after {} ({})",
        summary["supply_before"].as_str().unwrap_or(""),
        summary["supply_after"].as_str().unwrap_or(""),
        if summary["supply_before"] == summary["supply_after"] { "conserved" } else { "CHANGED" }
    );
}

/// The demo succeeds only if every task completed, its provider was paid, and no token was
/// created or destroyed.
fn check(summary: &Value) -> Result<()> {
    for task in summary["tasks"].as_array().into_iter().flatten() {
        if task["state"] != "completed" {
            bail!("task {} ended {}", task["id"], task["state"]);
        }
        let paid: u128 = task["paid"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0);
        if paid == 0 {
            bail!("task {} completed but its provider was not paid", task["id"]);
        }
    }
    if summary["supply_before"] != summary["supply_after"] {
        bail!("the token supply changed");
    }
    Ok(())
}
