//! The market end to end, as users run it: the real `aicpw` binary as node, provider agents
//! (real bubblewrap sandbox) and requester CLI, on a real redb file and HTTP API.

mod common;

use aicpw_types::Keypair;
use common::{aicpw, amount, journal_of, wait_line, wait_until, Net, QUICK};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    // The requester follows its task: the node it moves to gets the content key from it.
    net.watch(id);
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
    let storage = aicpw_ledger::Params::default().storage_fee_per_entry.0;
    assert_eq!(net.balance(3), before - 20 - storage, "back but two fees and the task's storage");
}

#[test]
fn tasks_that_break_their_limits_are_killed_with_a_reason_and_pay_for_time_used() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    // The time of a task that failed by itself is paid only while the node's capacity
    // challenges vouch for it: the provider's report and its heartbeats are no evidence of work.
    wait_until("the node passed a capacity challenge", Duration::from_secs(60), || {
        let node = net.client.get("/v1/nodes/0").unwrap_or_default();
        node["capacity"]["passed"].as_u64().unwrap_or(0) > 0
    });
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

/// An output may be named `logs`: the requester gets it whole and hashes it as the provider did;
/// the log tail, which would take that name, is left out.
#[test]
fn an_output_named_logs_is_returned_as_the_task_wrote_it() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let script = "import os\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'logs'), 'w').write('mine')\n";
    let file = net.task_file("logs-output", script, "");
    let yaml = std::fs::read_to_string(&file).expect("yaml").replace("[out.txt]", "[logs]");
    std::fs::write(&file, yaml).expect("yaml");
    let id = net.submit(&file);
    net.wait_state(id, &["verifying"], Duration::from_secs(30));
    let (out_dir, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(out_dir.join("logs")).expect("the output"), b"mine");
    assert_eq!(net.task(id)["state"], "completed");
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
    let forger = aicpw_types::Keypair::dev(5);
    let refused = net.client.upload(&forger, "/store", &cid, std::io::Cursor::new(b"forged"), 6);
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

#[test]
fn injected_known_answers_are_mixed_into_an_accounts_tasks_revealed_and_confirmed() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    let library = net.dir.path().join("library");
    let entry = net.task_file("checksum", QUICK, "");
    let answer = net.add_known_answer(&library, &entry);
    let (file, lib) = (entry.to_str().expect("utf-8"), library.to_str().expect("utf-8"));
    let again = net.cli(&["task", "known-answer", "add", file, "--library", lib]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in the library"));
    net.wait_nodes(1);
    let (_, log) = net.injector(&library, "injector.log");
    let (normal, injected) = net.submit_and_see_injection(&log);
    wait_line(&log, &format!("confirmed task {injected}:"), Duration::from_secs(30));
    let task = net.task(injected);
    assert_eq!(task["state"], "completed", "the reveal completed it: {task}");
    assert_eq!(task["result"]["output_hash"], answer.as_str(), "the provider computed the answer");
    assert_eq!(task["requester"], net.task(normal)["requester"], "the traffic's own account");
    let node = task["result"]["node"].as_u64().expect("node");
    let node = net.client.get(&format!("/v1/nodes/{node}")).expect("node");
    assert_eq!(node["reputation"]["audits_passed"], 1, "a passed audit: {node}");
    net.wait_state(normal, &["verifying"], Duration::from_secs(30));
    let (_, out) = net.fetch_result(normal);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.task(normal)["state"], "completed");
    let journal = journal_of(&library);
    assert_eq!(journal["pending"], serde_json::json!([]));
    assert_eq!(journal["totals"]["injected"], 1);
    assert_eq!(journal["totals"]["confirmed"], 1);
    let mine = format!("/v1/tasks?requester={}", Keypair::dev(0).account());
    let tasks = net.client.get(&mine).expect("tasks");
    assert_eq!(tasks.as_array().map(Vec::len), Some(2), "an injection draws no injection");
}

#[test]
fn a_restarted_injector_reveals_the_known_answers_it_injected_before() {
    let mut net = Net::start();
    let library = net.dir.path().join("library");
    // No provider yet, so no node to seal a content key to: a plain entry waits in the queue
    // for the provider that comes later, while its injector is down.
    net.add_known_answer(&library, &net.task_file("checksum", QUICK, "encrypt: false\n"));
    let (first, log) = net.injector(&library, "injector-1.log");
    let (_, injected) = net.submit_and_see_injection(&log);
    let _ = net.providers[first].kill();
    let _ = net.providers[first].wait();
    let pending = &journal_of(&library)["pending"][0];
    assert_eq!((pending["task"].as_u64(), pending["salt"].is_string()), (Some(injected), true));
    net.provider(1, 3_600_000);
    net.wait_state(injected, &["verifying"], Duration::from_secs(30));
    let (_, log) = net.injector(&library, "injector-2.log");
    wait_line(&log, &format!("confirmed task {injected}:"), Duration::from_secs(30));
    assert_eq!(net.task(injected)["state"], "completed");
}

#[test]
fn a_known_answer_that_differs_from_an_honest_result_is_refuted_by_the_committee() {
    let mut net = Net::start();
    for account in 1..=3 {
        net.provider(account, 3_600_000);
    }
    let library = net.dir.path().join("library");
    net.add_known_answer(&library, &net.task_file("checksum", QUICK, ""));
    // A requester claiming a wrong answer for an honest result (or a library entry gone wrong):
    // the library expects another answer than the one the honest provider computes.
    let entries = std::fs::read_dir(library.join("entries")).expect("entries");
    let entry = entries.flatten().next().expect("an entry").path().join("entry.json");
    let mut info: Value =
        serde_json::from_slice(&std::fs::read(&entry).expect("read")).expect("json");
    info["answer_hash"] = Value::String("ab".repeat(32));
    std::fs::write(&entry, info.to_string()).expect("write");
    net.wait_nodes(3);
    let (_, log) = net.injector(&library, "injector.log");
    let (_, injected) = net.submit_and_see_injection(&log);
    wait_line(&log, &format!("task {injected}: the result stands"), Duration::from_secs(60));
    // The claim alone slashed nobody and refunded nothing: the committee's re-run agreed with
    // the result, which is paid; the requester's bond paid the committee and the provider.
    let task = net.task(injected);
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["dispute"]["outcome"], "rejected", "{task}");
    assert_eq!(task["dispute"]["claimed_answer"], "ab".repeat(32), "{task}");
    let node = task["result"]["node"].as_u64().expect("node");
    let node = net.client.get(&format!("/v1/nodes/{node}")).expect("node");
    assert_eq!(node["reputation"]["offences"], 0, "{node}");
    assert_eq!(journal_of(&library)["totals"]["refuted"], 1);
    assert_eq!(journal_of(&library)["totals"]["caught"], 0);
}

#[test]
fn a_task_whose_answer_changes_between_runs_is_refused_as_a_known_answer() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("run.py"),
        "import os\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'wb').write(os.urandom(16))\n",
    )
    .expect("script");
    let file = dir.path().join("task.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: random\ncommand: python3\nargs: [run.py]\ninputs: [run.py]\n\
         outputs: [out.txt]\ntime_limit_secs: 30\nbudget: \"1000000\"\nmax_price_per_hour: \"3600000\"\n",
    )
    .expect("task file");
    let library = dir.path().join("library");
    let out = aicpw()
        .args(["task", "known-answer", "add"])
        .arg(&file)
        .arg("--library")
        .arg(&library)
        .output()
        .expect("cli runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not deterministic"), "{stderr}");
    let list = aicpw()
        .args(["task", "known-answer", "list", "--json", "--library"])
        .arg(&library)
        .output()
        .expect("list");
    let list: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list["entries"], serde_json::json!([]), "nothing was added");
}

#[test]
fn a_requester_aiming_unusable_inputs_at_a_node_cannot_freeze_it_and_pays_for_its_time() {
    use aicpw_types::task::{MatchStrategy, Runtime, TaskKind, Verification};
    use aicpw_types::tx::KeyGrant;
    use aicpw_types::{Amount, Hash32, Resources, TaskTerms, TxBody};
    let mut net = Net::start();
    net.provider(1, 1_800_000);
    net.provider(2, 3_600_000);
    net.wait_nodes(2);
    let nodes = net.client.get("/v1/nodes").expect("nodes");
    let nodes = nodes.as_array().expect("a node list");
    let target_id = nodes
        .iter()
        .find(|n| amount(&n["price_per_hour"]) == 1_800_000)
        .and_then(|n| n["id"].as_u64())
        .expect("the cheaper node is the target");
    let requester = Keypair::dev(3);
    let not_a_bundle = net.client.put_store(&requester, b"not a bundle").expect("upload");
    let freeze_faults = 5;
    let mut ids = Vec::new();
    for round in 0..freeze_faults + 1 {
        // Inputs nobody can open: a CID no store holds, a blob that is no bundle, or grants that
        // open with no node's key.
        let (inputs_cid, encrypted) = match round % 3 {
            0 => ("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".to_string(), false),
            1 => (not_a_bundle.clone(), false),
            _ => (not_a_bundle.clone(), true),
        };
        let terms = TaskTerms {
            name: format!("aimed-{round}"),
            kind: TaskKind::Other,
            runtime: Runtime::Sandbox,
            resources: Resources { cpu_cores: 1, memory_mb: 256, ..Default::default() },
            time_limit_secs: 60,
            budget: Amount(1_000_000),
            max_price_per_hour: Amount(3_600_000),
            verification: Verification::Spot,
            strategy: MatchStrategy::LowestPrice,
            reputation_min: 0,
            network: false,
            encrypted,
            inputs_cid,
            input_cids: Vec::new(),
            result_key: requester.x25519_public(),
            nondeterministic: None,
        };
        let body = TxBody::SubmitTask { terms, answer_commitment: Hash32([round as u8; 32]) };
        let receipt = net.client.send(&requester, body, true).expect("submitted");
        let id = receipt["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["event"] == "task_submitted"))
            .and_then(|e| e["task"].as_u64())
            .expect("task id");
        // Each node placed on an encrypted round is granted a content key sealed to a key no
        // node holds.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while encrypted && std::time::Instant::now() < deadline {
            let task = net.task(id);
            if task["state"] == "failed" {
                break;
            }
            let granted = |n: u64| {
                task["key_grants"].as_array().is_some_and(|g| g.iter().any(|g| g["node"] == n))
            };
            let sealed_key = aicpw_types::seal::seal(&Keypair::dev(9).x25519_public(), &[7; 32])
                .expect("sealed");
            let key_grants: Vec<KeyGrant> = task["leases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| l["verdict"] == "pending" && l["commitment"].is_null())
                .filter_map(|l| l["node"].as_u64())
                .filter(|n| !granted(*n))
                .map(|n| KeyGrant { node: aicpw_types::NodeId(n), sealed_key: sealed_key.clone() })
                .collect();
            if !key_grants.is_empty() {
                let grant = TxBody::GrantKeys { task: aicpw_types::TaskId(id), key_grants };
                let _ = net.client.send(&requester, grant, true);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let task = net.wait_state(id, &["failed"], Duration::from_secs(30));
        assert_eq!(task["failure"], "inputs-unavailable", "{task}");
        assert!(amount(&task["paid"]) > 0, "the requester pays the providers' time: {task}");
        ids.push(id);
    }
    let node = net.client.get(&format!("/v1/nodes/{target_id}")).expect("node");
    assert_eq!(node["status"], "active", "{node}");
    assert_eq!(node["reputation"]["failed"], 0, "{node}");
    for id in ids {
        let first = net.task(id)["input_claims"][0]["node"].as_u64();
        assert_eq!(first, Some(target_id), "each task was aimed at the target first");
    }
}

#[test]
fn a_reveal_naming_a_result_the_store_does_not_hold_is_refused_and_never_paid() {
    use aicpw_types::{Hash32, NodeId, Reject, TaskId, TxBody};
    let mut net = Net::start();
    let agent = net.provider(1, 3_600_000);
    net.wait_nodes(1);
    // The node's owner takes its node over from the agent: the attacker holds the lease by hand.
    let _ = net.providers[agent].kill();
    let _ = net.providers[agent].wait();
    let owner = Keypair::dev(1);
    let nodes = net.client.get("/v1/nodes").expect("nodes");
    let node = NodeId(nodes[0]["id"].as_u64().expect("node id"));
    net.client.send(&owner, TxBody::NodeHeartbeat { node }, true).expect("heartbeat");
    let id = net.submit(&net.task_file("junk-cid", QUICK, "encrypt: false\n"));
    let task = TaskId(id);
    net.wait_state(id, &["running"], Duration::from_secs(30));
    // The right hash (the ledger cannot tell), committed with a CID whose content nobody uploaded.
    let output_hash = Hash32::of(b"the outputs the requester wants");
    let salt = Hash32::of(b"attacker's salt");
    let block = b"never uploaded";
    let junk =
        aicpw_store::Cid::for_block(aicpw_store::Version::V1, aicpw_store::Codec::Raw, block)
            .expect("cid")
            .to_string();
    let commitment =
        aicpw_verify::commitment(task.0, &owner.account().0, &output_hash.0, &[], &junk, &salt.0);
    let tag = Hash32(aicpw_verify::equality_tag(task.0, &output_hash.0, &[]));
    let commit = TxBody::CommitResult { task, node, commitment: Hash32(commitment), tag };
    net.client.send(&owner, commit, true).expect("commit");
    let reveal = |result_cid: &str| TxBody::RevealResult {
        task,
        node,
        output_hash,
        salt,
        result_cid: result_cid.to_string(),
        summary: Vec::new(),
    };
    for cid in [junk.as_str(), "not a cid"] {
        let refused = net.client.send(&owner, reveal(cid), true).map(|_| ());
        let refused = refused.map_err(|e| e.reject());
        assert_eq!(refused, Err(Some(Reject::ResultUnavailable)), "{cid}");
    }
    assert_eq!(Reject::ResultUnavailable.code(), 630);
    // Uploading something now does not help: the commitment fixed the CID before the reveal.
    let real = net.client.put_store(&owner, b"something uploaded late").expect("upload");
    let refused = net.client.send(&owner, reveal(&real), true).map(|_| ());
    assert_eq!(refused.map_err(|e| e.reject()), Err(Some(Reject::BadCommitment)));
    let task = net.task(id);
    assert!(task["result"].is_null(), "no result stands: {task}");
    assert_eq!(amount(&task["paid"]), 0, "nothing is paid for it: {task}");
}

#[test]
fn two_replicas_whose_outputs_differ_agree_within_the_declared_tolerance() {
    let mut net = Net::start();
    // Two replicas, and two other owners for the committee that their different tags call in.
    for (index, price) in [(1, 1_800_000), (2, 3_600_000), (3, 2_400_000), (4, 3_000_000)] {
        net.provider(index, price);
    }
    net.wait_nodes(4);
    // Every run's outputs differ (as float results differ between machines: here a random
    // model); the loss it writes to its summary lands within 0.00001 of 0.25, well inside the
    // declared tolerance of 0.001.
    let script = "import json, os, random\n\
        loss = 0.25 + random.uniform(-1e-5, 1e-5)\n\
        out = os.environ['AICPW_OUTPUT_DIR']\n\
        json.dump([loss], open(os.path.join(out, 'out.txt'), 'w'))\n\
        open(os.path.join(out, 'model.bin'), 'wb').write(os.urandom(64))\n";
    let declared = "verification: { replicas: 2 }\n\
        nondeterministic: { summary: out.txt, tolerance: \"0.001\" }\n";
    let file = net.task_file("nondeterministic-loss", script, declared);
    let yaml = std::fs::read_to_string(&file).expect("yaml");
    std::fs::write(&file, yaml.replace("outputs: [out.txt]", "outputs: [out.txt, model.bin]"))
        .expect("yaml");
    let id = net.submit(&file);
    net.watch(id);
    let task = net.wait_state(id, &["verifying", "completed", "failed"], Duration::from_secs(90));
    assert_eq!(task["state"], "verifying", "{task}");
    let leases = task["leases"].as_array().expect("leases").clone();
    // Different outputs, different tags: a committee judged them blind, all within tolerance.
    let roles: Vec<&Value> = leases.iter().map(|l| &l["role"]).collect();
    assert_eq!(roles, ["replica", "replica", "referee", "referee"], "{task}");
    assert_ne!(leases[0]["reveal"]["output_hash"], leases[1]["reveal"]["output_hash"]);
    for lease in &leases {
        assert_eq!(lease["verdict"], "upheld", "{task}");
        let loss = lease["reveal"]["summary"][0].as_i64().expect("a summary in micro-units");
        assert!((249_990..=250_010).contains(&loss), "{lease}");
    }
    let (_, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let task = net.wait_state(id, &["completed"], Duration::from_secs(10));
    assert!(task["leases"].as_array().expect("leases").iter().all(|l| l["verdict"] == "paid"));
    assert_eq!(net.client.get("/v1/status").expect("status")["burned"], "0", "nobody slashed");
}
