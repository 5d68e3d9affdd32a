//! The harness of the end-to-end tests: the real `aicpw` binary as node, provider agents (real
//! bubblewrap sandbox), requester CLI and known-answer injector, on a real redb file and HTTP API.
#![allow(dead_code)]

use aicpw_provider::client::Client;
use aicpw_types::Keypair;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn aicpw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aicpw"))
}

pub struct Net {
    pub dir: tempfile::TempDir,
    pub url: String,
    node: Child,
    pub providers: Vec<Child>,
    pub client: Client,
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in self.providers.iter_mut().chain(std::iter::once(&mut self.node)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The killed agents' run filesystems (spares made ahead, runs cut short) stay mounted
        // on the host: detach them, loop devices included, before the directory goes.
        aicpw_provider::executor::detach_mounts_below(self.dir.path());
    }
}

impl Net {
    pub fn start() -> Net {
        Net::start_with(&[])
    }

    /// Starts the node with extra `node start` arguments.
    pub fn start_with(args: &[&str]) -> Net {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = aicpw()
            .args(["node", "start", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("node"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(node.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let url = line.trim().strip_prefix("listening on ").expect("address").to_string();
        let client = Client::new(&url);
        Net { dir, url, node, providers: Vec::new(), client }
    }

    /// Kills the node as a crash would (SIGKILL).
    pub fn kill_node(&mut self) {
        self.node.kill().expect("kills the node");
        self.node.wait().expect("node ends");
    }

    /// Starts the node again on its data directory, with `args`; the client follows it.
    pub fn restart_node(&mut self, args: &[&str]) {
        let mut node = aicpw()
            .args(["node", "start", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path().join("node"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(node.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        self.url = line.trim().strip_prefix("listening on ").expect("address").to_string();
        self.client = Client::new(&self.url);
        self.node = node;
    }

    pub fn node_pid(&self) -> u32 {
        self.node.id()
    }

    pub fn key(&self, index: u32) -> PathBuf {
        let path = self.dir.path().join(format!("key-{index}.json"));
        Keypair::dev(index).save(&path).expect("key");
        path
    }

    /// Starts a provider agent for dev account `index`; returns its position in `providers`.
    pub fn provider(&mut self, index: u32, price: u64) -> usize {
        self.provider_with(index, price, &[])
    }

    /// [`Net::provider`] with `extra` arguments to `provider start`.
    pub fn provider_with(&mut self, index: u32, price: u64, extra: &[&str]) -> usize {
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
            .args(extra)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("provider starts");
        self.providers.push(child);
        self.providers.len() - 1
    }

    pub fn wait_nodes(&self, count: usize) {
        wait_until("providers registered", Duration::from_secs(30), || {
            self.client.get("/v1/nodes").ok().and_then(|n| n.as_array().map(Vec::len)).unwrap_or(0)
                >= count
        });
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        aicpw().arg("--node").arg(&self.url).args(args).output().expect("cli runs")
    }

    /// Writes a task file and its script; returns the file's path.
    pub fn task_file(&self, name: &str, script: &str, extra: &str) -> PathBuf {
        self.task_file_limited(name, script, extra, 60)
    }

    pub fn task_file_limited(
        &self,
        name: &str,
        script: &str,
        extra: &str,
        limit_secs: u64,
    ) -> PathBuf {
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

    pub fn submit(&self, file: &Path) -> u64 {
        self.submit_as(file, 0)
    }

    /// Submits as dev account `index` (account 0 is also the block proposer, which earns fees).
    pub fn submit_as(&self, file: &Path, index: u32) -> u64 {
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

    /// Runs `task watch ID --key` for dev account 0 in the background (killed with the net): it
    /// grants the task's content key to each node placed on it after the submission.
    pub fn watch(&mut self, id: u64) {
        let key = self.key(0);
        let child = aicpw()
            .args(["--node", &self.url, "task", "watch", &id.to_string(), "--key"])
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watch starts");
        self.providers.push(child);
    }

    pub fn task(&self, id: u64) -> Value {
        self.client.get(&format!("/v1/tasks/{id}")).expect("task")
    }

    /// Waits for task `id` to reach one of `states`; on a timeout, fails with the task and the
    /// end of every provider's log, so the failure says where the task stopped.
    pub fn wait_state(&self, id: u64, states: &[&str], within: Duration) -> Value {
        let what = format!("{states:?}");
        self.wait_task(id, &what, within, |task| {
            states.contains(&task["state"].as_str().unwrap_or(""))
        })
    }

    /// Waits for task `id` to satisfy `done` (described as `what` on a timeout, which fails
    /// with the task and the end of every provider's log).
    pub fn wait_task(
        &self,
        id: u64,
        what: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let task = self.task(id);
            if done(&task) {
                return task;
            }
            if started.elapsed() >= within {
                panic!("timed out waiting for task {id} in {what}: {task}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every log of the agents and tools the test started.
    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            if let Ok(log) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                text.push_str(&format!("--- {}\n{tail}\n", path.display()));
            }
        }
        text
    }

    /// `aicpw task result` as the requester (dev account 0), into a fresh directory.
    pub fn fetch_result(&self, id: u64) -> (PathBuf, Output) {
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

    pub fn balance(&self, index: u32) -> u128 {
        let account = self
            .client
            .get(&format!("/v1/accounts/{}", Keypair::dev(index).account()))
            .expect("account");
        account["balance"].as_str().and_then(|b| b.parse().ok()).expect("balance")
    }
}

pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn amount(value: &Value) -> u128 {
    value.as_str().and_then(|a| a.parse().ok()).expect("an amount")
}

pub const QUICK: &str =
    "import os\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'w').write('done')\n";

/// Reads a child's log until a line starting with `prefix` appears; returns that line.
pub fn wait_line(log: &Path, prefix: &str, within: Duration) -> String {
    let mut found = String::new();
    wait_until(&format!("`{prefix}` in {}", log.display()), within, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text.lines().find(|l| l.starts_with(prefix)).unwrap_or("").to_string();
        !found.is_empty()
    });
    found
}

impl Net {
    /// `task known-answer add FILE` into `library`; returns the answer hash it printed.
    pub fn add_known_answer(&self, library: &Path, file: &Path) -> String {
        let (file, library) = (file.to_str().expect("utf-8"), library.to_str().expect("utf-8"));
        let out = self.cli(&["task", "known-answer", "add", file, "--library", library]);
        assert!(out.status.success(), "add: {}", String::from_utf8_lossy(&out.stderr));
        let added = String::from_utf8_lossy(&out.stdout).to_string();
        // "added known answer ID (NAME): answer HASH, the same on 2 local runs of N ms"
        let answer = added.split("answer ").nth(2).and_then(|a| a.split(',').next());
        answer.expect("the answer hash").to_string()
    }

    /// Starts `task inject-known-answers` for dev account 0, injecting after every task at once
    /// (the test-only rate); returns its position in `providers` (killed with the net) and its
    /// log, once it follows the node's events.
    pub fn injector(&mut self, library: &Path, log_name: &str) -> (usize, PathBuf) {
        let log = self.dir.path().join(log_name);
        let child = aicpw()
            .env("AICPW_TEST_ANY_KNOWN_ANSWER_RATE", "1")
            .args(["--node", &self.url, "task", "inject-known-answers", "--rate", "1000000"])
            .args(["--delay-max-secs", "0", "--library"])
            .arg(library)
            .arg("--key")
            .arg(self.key(0))
            .stdout(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("injector starts");
        self.providers.push(child);
        wait_line(&log, "following the events", Duration::from_secs(10));
        (self.providers.len() - 1, log)
    }

    /// Submits a normal task as dev account 0; returns its id and the injection that followed.
    pub fn submit_and_see_injection(&self, log: &Path) -> (u64, u64) {
        let normal = self.submit(&self.task_file("normal", QUICK, ""));
        let line = wait_line(log, "injected task", Duration::from_secs(10));
        let injected = line.split(' ').nth(2).and_then(|w| w.trim_end_matches(':').parse().ok());
        let injected = injected.expect("the injected task's id");
        assert_ne!(injected, normal);
        assert!(line.ends_with(&format!("after task {normal}")), "{line}");
        (normal, injected)
    }
}

pub fn journal_of(library: &Path) -> Value {
    let bytes = std::fs::read(library.join("injector.json")).expect("journal");
    serde_json::from_slice(&bytes).expect("json")
}
