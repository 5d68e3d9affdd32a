//! The market end to end, as users run it: the real `aicpw` binary as node, provider agents
//! (real bubblewrap sandbox) and requester CLI, on a real redb file and HTTP API.

use aicpw_provider::client::Client;
use aicpw_types::Keypair;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn aicpw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aicpw"))
}

struct Net {
    dir: tempfile::TempDir,
    url: String,
    node: Child,
    providers: Vec<Child>,
    client: Client,
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in self.providers.iter_mut().chain(std::iter::once(&mut self.node)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Net {
    fn start() -> Net {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = aicpw()
            .args(["node", "start", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("node"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(node.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let url = line.trim().strip_prefix("listening on ").expect("address").to_string();
        let client = Client::new(&url);
        Net { dir, url, node, providers: Vec::new(), client }
    }

    fn key(&self, index: u32) -> PathBuf {
        let path = self.dir.path().join(format!("key-{index}.json"));
        Keypair::dev(index).save(&path).expect("key");
        path
    }

    /// Starts a provider agent for dev account `index`; returns its position in `providers`.
    fn provider(&mut self, index: u32, price: u64) -> usize {
        let key = self.key(index);
        let log = std::fs::File::create(self.dir.path().join(format!("provider-{index}.log")))
            .expect("log");
        let child = aicpw()
            .args([
                "--node",
                &self.url,
                "provider",
                "start",
                "--price",
                &price.to_string(),
                "--key",
            ])
            .arg(key)
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("provider-{index}")))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("provider starts");
        self.providers.push(child);
        self.providers.len() - 1
    }

    fn wait_nodes(&self, count: usize) {
        wait_until("providers registered", Duration::from_secs(30), || {
            self.client.get("/v1/nodes").ok().and_then(|n| n.as_array().map(Vec::len)).unwrap_or(0)
                >= count
        });
    }

    fn cli(&self, args: &[&str]) -> Output {
        aicpw().arg("--node").arg(&self.url).args(args).output().expect("cli runs")
    }

    /// Writes a task file and its script; returns the file's path.
    fn task_file(&self, name: &str, script: &str, extra: &str) -> PathBuf {
        self.task_file_limited(name, script, extra, 60)
    }

    fn task_file_limited(&self, name: &str, script: &str, extra: &str, limit_secs: u64) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("run.py"), script).expect("script");
        let yaml = format!(
            "version: 1\nname: {name}\ncommand: python3\nargs: [run.py]\ninputs: [run.py]\n\
             outputs: [out.txt]\ntime_limit_secs: {limit_secs}\nbudget: \"1000000\"\nmax_price_per_hour: \"3600000\"\n{extra}"
        );
        let path = dir.join("task.yaml");
        std::fs::write(&path, yaml).expect("yaml");
        path
    }

    fn submit(&self, file: &Path) -> u64 {
        self.submit_as(file, 0)
    }

    /// Submits as dev account `index` (account 0 is also the block proposer, which earns fees).
    fn submit_as(&self, file: &Path, index: u32) -> u64 {
        let key = self.key(index);
        let out = self.cli(&[
            "task",
            "submit",
            file.to_str().expect("utf-8"),
            "--key",
            key.to_str().expect("utf-8"),
        ]);
        assert!(out.status.success(), "submit: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout.lines().last().and_then(|l| l.trim().parse().ok()).expect("task id on the last line")
    }

    fn task(&self, id: u64) -> Value {
        self.client.get(&format!("/v1/tasks/{id}")).expect("task")
    }

    fn wait_state(&self, id: u64, states: &[&str], within: Duration) -> Value {
        let mut task = Value::Null;
        wait_until(&format!("task {id} in {states:?}"), within, || {
            task = self.task(id);
            states.contains(&task["state"].as_str().unwrap_or(""))
        });
        task
    }

    /// `aicpw task result` as the requester (dev account 0), into a fresh directory.
    fn fetch_result(&self, id: u64) -> (PathBuf, Output) {
        let out_dir = self.dir.path().join(format!("result-{id}"));
        let key = self.key(0);
        let output = self.cli(&[
            "task",
            "result",
            &id.to_string(),
            "--key",
            key.to_str().expect("utf-8"),
            "--out",
            out_dir.to_str().expect("utf-8"),
        ]);
        (out_dir, output)
    }

    fn balance(&self, index: u32) -> u128 {
        let account = self
            .client
            .get(&format!("/v1/accounts/{}", Keypair::dev(index).account()))
            .expect("account");
        account["balance"].as_str().and_then(|b| b.parse().ok()).expect("balance")
    }
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn amount(value: &Value) -> u128 {
    value.as_str().and_then(|a| a.parse().ok()).expect("an amount")
}

const SLOW: &str = "import os, time\nfor i in range(10):\n    print(f'progress: {i / 10}', flush=True)\n    time.sleep(0.8)\n\
open(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'w').write('done')\n";

#[test]
fn the_demo_completes_pays_the_provider_and_conserves_supply() {
    let out = aicpw().args(["demo", "--json"]).output().expect("demo runs");
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    let task = &summary["tasks"][0];
    assert_eq!(task["state"], "completed");
    assert!(amount(&task["paid"]) > 0);
    assert!(task["result_cid"].as_str().is_some_and(|c| c.starts_with("bafk")));
    assert_eq!(summary["supply_before"], summary["supply_after"]);
}

#[test]
fn a_task_whose_provider_dies_is_reassigned_completes_and_is_paid_once() {
    let mut net = Net::start();
    let cheap = net.provider(1, 1_800_000);
    net.provider(2, 3_600_000);
    net.wait_nodes(2);
    let id = net.submit(&net.task_file("slow", SLOW, ""));
    let task = net.wait_state(id, &["running"], Duration::from_secs(10));
    let first = task["leases"][0]["node"].as_u64().expect("leased");
    wait_until("progress", Duration::from_secs(10), || {
        net.task(id)["leases"][0]["progress_permille"].as_u64() > Some(0)
    });
    let _ = net.providers[cheap].kill(); // SIGKILL: no goodbye, no report
    let task = net.wait_state(id, &["verifying", "completed"], Duration::from_secs(60));
    let second = task["result"]["node"].as_u64().expect("result");
    assert_ne!(first, second, "another node finished it");
    assert_eq!(task["attempts"], 2);
    assert_eq!(task["excluded"], serde_json::json!([first]));
    let (result, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(result.join("out.txt")).expect("output"), "done");
    let task = net.wait_state(id, &["completed"], Duration::from_secs(10));
    assert_eq!(
        amount(&task["paid"]) + amount(&task["refunded"]),
        1_000_000,
        "paid once, the rest refunded"
    );
    let node = net.client.get(&format!("/v1/nodes/{first}")).expect("node");
    // The lost lease; a capacity challenge the dead node missed counts as an expiry too.
    assert!(node["reputation"]["expired"].as_u64() >= Some(1), "{node}");
}

#[test]
fn a_task_no_node_can_run_waits_with_a_reason_and_is_refunded_in_full() {
    let mut net = Net::start();
    net.provider(1, 1_800_000);
    net.wait_nodes(1);
    let before = net.balance(3);
    let file = net.task_file("gpu", SLOW, "resources: { gpu_count: 1, gpu_vram_mb: 80000 }\n");
    let id = net.submit_as(&file, 3);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(net.task(id)["state"], "queued");
    let why = net.cli(&["task", "why", &id.to_string(), "--json"]);
    let why: Value = serde_json::from_slice(&why.stdout).expect("json");
    assert!(
        why["explanation"].to_string().to_lowercase().contains("gpu"),
        "explains the GPU: {why}"
    );
    let key = net.key(3);
    let out = net.cli(&["task", "cancel", &id.to_string(), "--key", key.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let task = net.task(id);
    assert_eq!(
        (task["state"].as_str(), task["failure"].as_str()),
        (Some("cancelled"), Some("cancelled-by-requester"))
    );
    assert_eq!(net.balance(3), before - 20, "everything back but two fees");
}

#[test]
fn tasks_that_break_their_limits_are_killed_with_a_reason_and_pay_for_time_used() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let sleepy_path = net.task_file_limited("sleepy", "import time\ntime.sleep(60)\n", "", 2);
    let hog = net.task_file(
        "hog",
        "x = bytearray(1024 * 1024 * 1024)\nprint(len(x))\n",
        "resources: { memory_mb: 64 }\n",
    );
    let sleepy = net.submit(&sleepy_path);
    let hog = net.submit(&hog);
    let task = net.wait_state(sleepy, &["failed"], Duration::from_secs(30));
    assert_eq!(task["failure"], "time-limit-exceeded");
    let paid = amount(&task["paid"]);
    assert!((2_000..1_000_000).contains(&paid), "paid for about 2 s at 1000/s: {paid}");
    let task = net.wait_state(hog, &["failed"], Duration::from_secs(30));
    assert_eq!(task["failure"], "memory-limit-exceeded");
}

#[test]
fn a_result_whose_bytes_do_not_match_its_cid_is_rejected() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let id = net.submit(&net.task_file("quick", "import os\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'w').write('ok')\n", ""));
    let task = net.wait_state(id, &["verifying"], Duration::from_secs(30));
    let cid = task["result"]["result_cid"].as_str().expect("cid").to_string();
    // Uploading other bytes under this CID is refused by the node...
    let refused = net.client.put_bytes(&format!("/store?cid_version=1&expect={cid}"), b"forged");
    assert_eq!(refused.expect_err("refused").reject(), Some(aicpw_types::Reject::ContentMismatch));
    // ...and bytes changed on the node's disk are caught when the requester downloads them.
    let blocks = net.dir.path().join("node/store");
    let mut tampered = 0;
    for entry in walk(&blocks) {
        let mut bytes = std::fs::read(&entry).expect("block");
        if bytes.len() > 100 {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&entry, bytes).expect("tamper");
            tampered += 1;
        }
    }
    assert!(tampered > 0);
    let (out_dir, out) = net.fetch_result(id);
    assert!(!out.status.success(), "a tampered result must not be accepted");
    assert!(!out_dir.join("out.txt").exists());
    assert_eq!(net.task(id)["state"], "verifying", "not accepted, not paid");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_restarted_provider_finishes_its_task_without_running_it_twice() {
    let mut net = Net::start();
    let first = net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let id = net.submit(&net.task_file("slow", SLOW, ""));
    net.wait_state(id, &["running"], Duration::from_secs(10));
    wait_until("progress", Duration::from_secs(10), || {
        net.task(id)["leases"][0]["progress_permille"].as_u64() > Some(0)
    });
    let _ = net.providers[first].kill();
    let _ = net.providers[first].wait();
    net.provider(1, 3_600_000);
    let task = net.wait_state(id, &["verifying"], Duration::from_secs(60));
    assert_eq!(task["attempts"], 1, "the same lease, on the same node");
    // The agent records the reveal once the node has answered it, just after the state changed.
    let read = || -> Value {
        let bytes = std::fs::read(net.dir.path().join("provider-1/agent.json")).expect("journal");
        serde_json::from_slice(&bytes).expect("json")
    };
    wait_until("the journal records the reveal", Duration::from_secs(10), || {
        !read()["done"][id.to_string()].is_null()
    });
    assert_eq!(read()["done"][id.to_string()], "reveal_result");
}

const QUICK: &str =
    "import os\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'w').write('done')\n";

#[test]
fn two_replicas_agree_by_commit_and_reveal_and_both_are_paid() {
    let mut net = Net::start();
    net.provider(1, 1_800_000);
    net.provider(2, 3_600_000);
    net.wait_nodes(2);
    let file = net.task_file("replicated", QUICK, "verification: { replicas: 2 }\n");
    let id = net.submit(&file);
    let task = net.wait_state(id, &["verifying", "completed", "failed"], Duration::from_secs(60));
    assert_eq!(task["state"], "verifying", "{task}");
    let leases = task["leases"].as_array().expect("leases").clone();
    assert_eq!(leases.len(), 2, "two replicas: {task}");
    let nodes: Vec<u64> = leases.iter().filter_map(|l| l["node"].as_u64()).collect();
    assert_ne!(nodes[0], nodes[1]);
    for lease in &leases {
        assert_eq!(lease["role"], "replica");
        assert_eq!(lease["verdict"], "upheld");
        assert_eq!(lease["reveal"]["output_hash"], task["result"]["output_hash"]);
    }
    // The requester downloads a majority replica's result, checks it and accepts.
    let (result, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(result.join("out.txt")).expect("output"), "done");
    let task = net.wait_state(id, &["completed"], Duration::from_secs(10));
    assert!(task["leases"].as_array().expect("leases").iter().all(|l| l["verdict"] == "paid"));
    assert_eq!(amount(&task["paid"]) + amount(&task["refunded"]), 1_000_000);
    for node in nodes {
        let node = net.client.get(&format!("/v1/nodes/{node}")).expect("node");
        assert_eq!(node["reputation"]["audits_passed"], 1, "a verified result: {node}");
        assert_eq!(node["reputation"]["completed"], 1);
    }
    let status = net.client.get("/v1/status").expect("status");
    assert_eq!(status["burned"], "0", "nobody slashed");
    // Both agents recorded their reveal and are free for the next replicated task.
    for index in [1, 2] {
        let path = net.dir.path().join(format!("provider-{index}/agent.json"));
        wait_until("the journal records the reveal", Duration::from_secs(10), || {
            let journal: Value = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            journal["done"][id.to_string()] == "reveal_result"
        });
    }
    let next = net.submit(&file);
    let task = net.wait_state(next, &["verifying", "failed"], Duration::from_secs(60));
    assert_eq!(task["state"], "verifying", "{task}");
}

#[test]
fn a_known_answer_task_is_indistinguishable_and_its_answer_checks_the_provider() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let file = net.task_file("known", QUICK, "");
    let answer = net.dir.path().join("answer");
    std::fs::create_dir_all(&answer).expect("dir");
    std::fs::write(answer.join("out.txt"), "done").expect("answer");
    let key = net.key(0);
    let out = net.cli(&[
        "task",
        "submit",
        file.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
        "--known-answer",
        answer.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "submit: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("known answer"))
        .expect("answer line")
        .split(' ')
        .collect();
    let (answer_hash, salt) = (words[2], words[4]);
    let id: u64 = stdout.lines().last().and_then(|l| l.trim().parse().ok()).expect("task id");
    let task = net.wait_state(id, &["verifying"], Duration::from_secs(30));
    assert_eq!(
        task["result"]["output_hash"], answer_hash,
        "the CLI hashes outputs as providers do"
    );
    let out = net.cli(&[
        "task",
        "reveal-answer",
        &id.to_string(),
        "--answer",
        answer_hash,
        "--salt",
        salt,
        "--key",
        key.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "reveal: {}", String::from_utf8_lossy(&out.stderr));
    let task = net.task(id);
    assert_eq!(task["state"], "completed");
    let node = task["result"]["node"].as_u64().expect("node");
    let node = net.client.get(&format!("/v1/nodes/{node}")).expect("node");
    assert_eq!(node["reputation"]["audits_passed"], 1);
}
