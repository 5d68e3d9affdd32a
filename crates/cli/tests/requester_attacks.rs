//! The requester's own machine under attack, through the real `aicpw` binary: task files and
//! results from others must not make the CLI upload files from outside the task's directory,
//! read without end, or write through links; and a task's content key goes to the nodes placed
//! on it, never to a cheap sybil that is not.

mod common;

use aicpw_types::{seal, Amount, Hardware, Keypair, TxBody};
use common::{aicpw, Net, QUICK};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command that must end on its own within `within`; kills it and fails otherwise.
fn bounded(mut command: Command, within: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("still running after {within:?}: it reads without end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn submit(net: &Net, file: &Path, extra: &[&str]) -> Output {
    let key = net.key(0);
    let mut args = vec!["task", "submit", file.to_str().expect("utf-8")];
    args.extend(["--key", key.to_str().expect("utf-8")]);
    args.extend(extra);
    net.cli(&args)
}

fn tasks_of_requester(net: &Net) -> usize {
    let me = Keypair::dev(0).account();
    let tasks = net.client.get(&format!("/v1/tasks?requester={me}")).expect("tasks");
    tasks.as_array().map_or(0, Vec::len)
}

#[test]
fn a_task_file_naming_inputs_outside_its_directory_is_refused_unless_the_user_allows_it() {
    let net = Net::start();
    let root = net.dir.path();
    // The user's secrets, next to a task directory someone shared.
    std::fs::create_dir_all(root.join("home/.ssh")).expect("dir");
    let secret = root.join("home/.ssh/id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY").expect("secret");
    let shared = root.join("home/shared-example");
    std::fs::create_dir_all(&shared).expect("dir");
    std::fs::write(shared.join("run.py"), QUICK).expect("script");
    std::os::unix::fs::symlink(root.join("home/.ssh"), shared.join("data")).expect("symlink");
    let attacks = [
        "../.ssh/id_ed25519".to_string(),
        secret.display().to_string(),
        "data/id_ed25519".to_string(),
        "./../../home/.ssh/id_ed25519".to_string(),
    ];
    for (i, input) in attacks.iter().enumerate() {
        let file = shared.join(format!("task-{i}.yaml"));
        std::fs::write(
            &file,
            format!(
                "version: 1\nname: shared\ncommand: python3\nargs: [run.py]\n\
                 inputs: [run.py, \"{input}\"]\noutputs: [out.txt]\ntime_limit_secs: 60\n\
                 budget: \"1000000\"\nmax_price_per_hour: \"3600000\"\n"
            ),
        )
        .expect("task file");
        let out = submit(&net, &file, &[]);
        assert!(!out.status.success(), "{input}: uploaded");
        assert!(stderr(&out).contains("(code 650)"), "{input}: {}", stderr(&out));
        assert!(stderr(&out).contains("--allow-input-outside"), "{}", stderr(&out));
        assert_eq!(tasks_of_requester(&net), 0, "{input}: nothing was submitted");
    }
    // The user's own word on the command line lets such a task file through.
    let out = submit(&net, &shared.join("task-0.yaml"), &["--allow-input-outside"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tasks_of_requester(&net), 1);
}

#[test]
fn task_files_and_keys_that_are_not_regular_files_are_refused_not_read_without_end() {
    let net = Net::start();
    let fifo = net.dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let quick = net.task_file("quick", QUICK, "");
    let key = net.key(0);
    let node = ["--node", net.url.as_str()];
    let cases: [(&Path, &Path); 3] =
        [(Path::new("/dev/zero"), &key), (&fifo, &key), (&quick, &fifo)];
    for (file, key) in cases {
        let mut command = aicpw();
        command.args(node).args(["task", "submit"]).arg(file).arg("--key").arg(key);
        let out = bounded(command, Duration::from_secs(10));
        assert!(!out.status.success(), "{} with key {}", file.display(), key.display());
        assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    }
    let mut big = std::fs::read_to_string(&quick).expect("read");
    big.push_str(&format!("# {}\n", "x".repeat(70_000)));
    std::fs::write(&quick, big).expect("write");
    let out = submit(&net, &quick, &[]);
    assert!(stderr(&out).contains("(code 653)"), "{}", stderr(&out));
    assert_eq!(tasks_of_requester(&net), 0);
}

#[test]
fn a_result_is_never_written_through_a_link_already_in_the_out_directory() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let id = net.submit(&net.task_file("quick", QUICK, ""));
    net.wait_state(id, &["verifying"], Duration::from_secs(30));
    let victim = net.dir.path().join("victim");
    std::fs::write(&victim, "the user's file").expect("victim");
    let out_dir = net.dir.path().join("downloads");
    std::fs::create_dir_all(&out_dir).expect("dir");
    std::os::unix::fs::symlink(&victim, out_dir.join("out.txt")).expect("symlink");
    let key = net.key(0);
    let (id_text, key) = (id.to_string(), key.to_str().expect("utf-8").to_string());
    let fetch = |dir: &Path| {
        let dir = dir.to_str().expect("utf-8");
        net.cli(&["task", "result", &id_text, "--key", &key, "--out", dir, "--no-accept"])
    };
    let out = fetch(&out_dir);
    assert!(!out.status.success(), "written through the link");
    assert!(stderr(&out).contains("(code 652)"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "the user's file");
    // The same with a directory link in the way of the log, `logs/task.log`.
    let second = net.dir.path().join("downloads-2");
    std::fs::create_dir_all(&second).expect("dir");
    let elsewhere = net.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::os::unix::fs::symlink(&elsewhere, second.join("logs")).expect("symlink");
    let out = fetch(&second);
    assert!(stderr(&out).contains("(code 652)"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&elsewhere).expect("dir").count(), 0);
    let fresh = net.dir.path().join("downloads-3");
    let out = fetch(&fresh);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(fresh.join("out.txt")).expect("output"), "done");
}

fn grants_of(task: &Value) -> Vec<(u64, Vec<u8>)> {
    let grants = task["key_grants"].as_array().cloned().unwrap_or_default();
    grants
        .iter()
        .map(|g| {
            let sealed = hex::decode(g["sealed_key"].as_str().expect("hex")).expect("hex");
            (g["node"].as_u64().expect("node"), sealed)
        })
        .collect()
}

#[test]
fn a_cheap_sybil_not_placed_on_a_task_never_receives_a_key_it_can_open() {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    // One completed task gives the honest node a reputation new nodes do not have.
    let warmup = net.submit(&net.task_file("warmup", QUICK, ""));
    net.wait_state(warmup, &["verifying"], Duration::from_secs(30));
    let (_, out) = net.fetch_result(warmup);
    assert!(out.status.success(), "{}", stderr(&out));
    let honest = net.wait_state(warmup, &["completed"], Duration::from_secs(10))["result"]["node"]
        .as_u64()
        .expect("node");
    // A sybil owner registers cheap nodes claiming hardware that fits every task.
    let sybil = Keypair::dev(5);
    let hardware: Hardware = serde_json::from_value(
        net.client.get(&format!("/v1/nodes/{honest}")).expect("node")["hardware"].clone(),
    )
    .expect("hardware");
    net.client.send(&sybil, TxBody::Bond { amount: Amount::tokens(3_000) }, true).expect("bond");
    for i in 0..3 {
        let body = TxBody::RegisterNode {
            hardware: hardware.clone(),
            x25519_key: sybil.x25519_public(),
            endpoint: format!("sybil-{i}"),
            price_per_hour: Amount(1),
        };
        net.client.send(&sybil, body, true).expect("register");
    }
    net.wait_nodes(4);
    let file = net.task_file("private", QUICK, "reputation_min: 900\n");
    let id = net.submit(&file);
    let task = net.task(id);
    let grants = grants_of(&task);
    assert_eq!(grants.iter().map(|g| g.0).collect::<Vec<_>>(), vec![honest], "{task}");
    for (node, sealed) in &grants {
        assert!(seal::open(&sybil.x25519_secret(), sealed).is_err(), "node {node}'s grant");
    }
    // Its result verified, or (one spot draw in twenty) waiting for an auditor no sybil can be.
    let judged = |t: &Value| t["state"] == "verifying" || t["round"] == "audit";
    let task = net.wait_task(id, "verifying or audit", Duration::from_secs(30), judged);
    let worker = task["leases"][0]["node"].as_u64();
    assert_eq!((worker, task["leases"].as_array().map(Vec::len)), (Some(honest), Some(1)));
    assert_eq!(grants_of(&task).len(), 1, "and nobody else got the key");
}

#[test]
fn the_demo_without_bubblewrap_says_what_is_missing_and_how_to_install_it() {
    // Hide bubblewrap from the demo in a mount namespace of its own (this needs root).
    let script = "mount --bind /dev/null \"$(command -v bwrap)\" && exec \"$0\" demo";
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", script]);
    command.arg(env!("CARGO_BIN_EXE_aicpw"));
    let probe = Command::new("unshare").args(["--mount", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot make a mount namespace here (not root?)");
        return;
    }
    let out = bounded(command, Duration::from_secs(30));
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("bwrap") && text.contains("bubblewrap"), "names what is missing: {text}");
    assert!(
        text.contains("scripts/setup.sh") && text.contains("apt-get install bubblewrap"),
        "{text}"
    );
    assert!(!text.contains("providers registered"), "{text}");
}
