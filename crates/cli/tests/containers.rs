//! Container tasks end to end, as users run them: the real `aicpw` binary as node, provider
//! agents (one with `--containers` on the local Docker Engine, one sandbox only) and requester
//! CLI, with the busybox image `scripts/container-image.sh` builds without a registry.

mod common;

use common::Net;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Builds the busybox image archive (loaded into the engine unless it is a variant) and
/// returns the reference naming it by digest.
fn build_image(archive: &Path, variant: Option<&str>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/container-image.sh");
    let out = Command::new("bash").arg(script).arg(archive).args(variant).output().expect("bash");
    assert!(out.status.success(), "container-image.sh: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes a container task running `script` with busybox's `sh`; returns the file's path.
fn container_task(net: &Net, name: &str, image: &str, script: &str, extra: &str) -> PathBuf {
    let dir = net.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("run.sh"), script).expect("script");
    let yaml = format!(
        "version: 1\nname: {name}\nruntime: container\nimage: {image}\ncommand: sh\n\
         args: [run.sh]\noutputs: [out.txt]\ntime_limit_secs: 60\nbudget: \"1000000\"\n\
         max_price_per_hour: \"3600000\"\n{extra}"
    );
    let yaml = if yaml.contains("\ninputs:") { yaml } else { yaml + "inputs: [run.sh]\n" };
    let path = dir.join("task.yaml");
    std::fs::write(&path, yaml).expect("yaml");
    path
}

#[test]
fn a_container_task_runs_on_a_real_engine_and_its_result_is_verified_and_decrypted() {
    let mut net = Net::start();
    let image = build_image(&net.dir.path().join("busybox.tar"), None);
    // A sandbox-only node, cheaper: the matcher must still never give it a container task.
    net.provider(1, 1_800_000);
    net.wait_nodes(1);
    let script = "echo 'progress: 0.5'; id -u > /task/out/uid; \
        echo \"words: $(echo one two three | wc -w)\" > /task/out/out.txt; cat /task/out/out.txt";
    let file = container_task(&net, "count", &image, script, "");
    let id = net.submit(&file);
    // Placed later, its node gets the content key from the requester's watch.
    net.watch(id);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(net.task(id)["state"], "queued", "no node runs containers yet");
    let why = net.cli(&["task", "why", &id.to_string(), "--json"]);
    let why: Value = serde_json::from_slice(&why.stdout).expect("json");
    assert_eq!(why["explanation"]["first_unmet"], "runtime", "{why}");
    assert!(why.to_string().contains("--containers"), "says how to serve it: {why}");
    net.provider_with(2, 3_600_000, &["--containers"]);
    net.wait_nodes(2);
    let task = net.wait_state(id, &["verifying", "completed"], Duration::from_secs(60));
    let container_node = net.client.get("/v1/nodes").expect("nodes")[1]["id"].clone();
    assert_eq!(task["result"]["node"], container_node, "{task}");
    let (result, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(result.join("out.txt")).expect("the output, decrypted");
    assert_eq!(text, "words: 3\n");
    net.wait_state(id, &["completed"], Duration::from_secs(20));
}

#[test]
fn a_container_over_its_memory_limit_is_killed_by_the_kernel_and_fails_with_that_reason() {
    let mut net = Net::start();
    let image = build_image(&net.dir.path().join("busybox.tar"), None);
    net.provider_with(1, 3_600_000, &["--containers"]);
    net.wait_nodes(1);
    // `tail` keeps everything after the last newline, and /dev/zero has none.
    let hog =
        container_task(&net, "hog", &image, "tail /dev/zero\n", "resources: { memory_mb: 32 }\n");
    let id = net.submit(&hog);
    let task = net.wait_state(id, &["failed"], Duration::from_secs(60));
    assert_eq!(task["failure"], "memory-limit-exceeded", "{task}");
}

#[test]
fn an_image_shipped_with_the_task_is_loaded_checked_and_run() {
    let mut net = Net::start();
    let variant = format!("e2e-{}", std::process::id());
    let dir = net.dir.path().join("shipped");
    std::fs::create_dir_all(&dir).expect("dir");
    let image = build_image(&dir.join("image.tar"), Some(&variant));
    let digest = image.rsplit_once('@').expect("digest").1.to_string();
    // No registry, and the engine does not hold it: only the archive can bring it.
    let _ = Command::new("docker").args(["rmi", "-f", &digest]).output();
    net.provider_with(1, 3_600_000, &["--containers"]);
    net.wait_nodes(1);
    let extra = "inputs: [run.sh, image.tar]\nimage_archive: image.tar\n";
    let file = container_task(&net, "shipped", &image, "echo shipped > /task/out/out.txt", extra);
    let id = net.submit(&file);
    net.wait_state(id, &["verifying", "completed"], Duration::from_secs(60));
    let (result, out) = net.fetch_result(id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(result.join("out.txt")).expect("output"), "shipped\n");
    let _ = Command::new("docker").args(["rmi", "-f", &digest]).output();
}

/// A provider whose operator does not accept the task's image (its allow-list) is not blamed:
/// its lease ends without a fault, the node is excluded from the task, and the seat goes to a
/// provider that runs the image, which completes it.
#[test]
fn an_image_a_provider_refuses_is_run_by_another_without_blame() {
    let mut net = Net::start();
    let image = build_image(&net.dir.path().join("busybox.tar"), None);
    let other = format!("sha256:{}", "0".repeat(64));
    // The cheaper node takes the task first and refuses its image.
    net.provider_with(1, 1_800_000, &["--containers", "--image", &other]);
    net.wait_nodes(1);
    let file = container_task(&net, "refused", &image, "echo ran > /task/out/out.txt", "");
    let id = net.submit(&file);
    net.watch(id);
    net.wait_task(id, "the refusing node excluded", Duration::from_secs(30), |task| {
        task["excluded"].as_array().is_some_and(|excluded| !excluded.is_empty())
    });
    net.provider_with(2, 3_600_000, &["--containers"]);
    net.wait_nodes(2);
    let task = net.wait_state(id, &["verifying", "completed"], Duration::from_secs(60));
    assert_eq!(task["excluded"], serde_json::json!([0]), "{task}");
    assert_eq!(task["result"]["node"], 1, "{task}");
    let refusing = net.client.get("/v1/nodes/0").expect("node");
    assert_eq!(refusing["status"], "active", "not frozen: {refusing}");
    assert_eq!(refusing["reputation"]["failed"].as_u64().unwrap_or(0), 0, "no fault: {refusing}");
}

/// A provider asked to run containers where no engine answers stops at start and says where it
/// looked and how to get one, before it registers anything.
#[test]
fn a_provider_without_an_engine_says_so_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let socket = dir.path().join("no-engine.sock");
    let out = common::aicpw()
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .args(["--node", "http://127.0.0.1:9", "provider", "start", "--containers", "--key"])
        .arg(dir.path().join("key"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .expect("aicpw runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Docker Engine answers at unix://"), "{stderr}");
    assert!(stderr.contains("no-engine.sock") && stderr.contains("scripts/setup.sh"), "{stderr}");
}
