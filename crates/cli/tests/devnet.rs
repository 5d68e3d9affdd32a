//! `aicpw devnet`: four validator processes (the real `aicpw` binary) on loopback, Commonware's
//! tokio runtime and authenticated p2p, each with its own redb chain and HTTP API. One is
//! killed: the others keep finalizing; it is restarted from its data directory: it catches up.
#![cfg(feature = "consensus")]

mod common;

use aicpw_provider::client::Client;
use common::{aicpw, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Every process of the test's devnet, killed when the test ends however it ends.
struct Processes {
    devnet: Child,
    pids: Vec<u32>,
    restarted: Vec<Child>,
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}

impl Drop for Processes {
    fn drop(&mut self) {
        for pid in &self.pids {
            kill(*pid);
        }
        for child in self.restarted.iter_mut().chain(std::iter::once(&mut self.devnet)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn height(client: &Client) -> u64 {
    client.get("/v1/status").ok().and_then(|s| s["height"].as_u64()).unwrap_or(0)
}

fn block_hash(client: &Client, height: u64) -> Option<String> {
    client.get(&format!("/v1/blocks/{height}")).ok()?["hash"].as_str().map(str::to_string)
}

fn balance(client: &Client, address: &str) -> Option<String> {
    client.get(&format!("/v1/accounts/{address}")).ok()?["balance"].as_str().map(str::to_string)
}

fn transfer(api: &str, key: &Path, to: &str) {
    let out = aicpw()
        .args(["--node", api, "tx", "transfer", "--to", to, "--amount", "7", "--from"])
        .arg(key)
        .output()
        .expect("aicpw runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_killed_validator_leaves_the_others_finalizing_and_catches_up_on_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut devnet = aicpw()
        .args(["devnet", "--validators", "4", "--json", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("devnet starts");
    let mut line = String::new();
    let stdout = devnet.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("the devnet prints its validators");
    let summary: Value = serde_json::from_str(&line).expect("JSON");
    let validators = summary["validators"].as_array().expect("validators").clone();
    let pids: Vec<u32> =
        validators.iter().map(|v| v["pid"].as_u64().expect("pid") as u32).collect();
    let mut processes = Processes { devnet, pids: pids.clone(), restarted: Vec::new() };
    let apis: Vec<String> =
        validators.iter().map(|v| v["api"].as_str().expect("api").to_string()).collect();
    let clients: Vec<Client> = apis.iter().map(|api| Client::new(api)).collect();

    // The CLI talks to any validator: a transfer sent to one is seen on another.
    let keys = dir.path().join("keys");
    let made = aicpw().args(["keys", "dev", "2", "--out"]).arg(&keys).output().expect("keys");
    assert!(made.status.success());
    let to = aicpw_types::Keypair::dev(1).account().to_string();
    let before = balance(&clients[2], &to).expect("a dev account");
    transfer(&apis[1], &keys.join("dev-0.json"), &to);
    wait_until("the transfer on validator 2", Duration::from_secs(30), || {
        balance(&clients[2], &to) != Some(before.clone())
    });

    // Kill validator 3: the other three (2f+1 of 4) keep finalizing, and agree.
    kill(pids[3]);
    let at_kill = height(&clients[0]);
    wait_until("finalization without validator 3", Duration::from_secs(60), || {
        clients[..3].iter().all(|c| height(c) >= at_kill + 10)
    });
    let check = at_kill + 8;
    let hash = block_hash(&clients[0], check).expect("a block");
    for client in &clients[1..3] {
        assert_eq!(block_hash(client, check).as_deref(), Some(hash.as_str()));
    }
    transfer(&apis[0], &keys.join("dev-0.json"), &to);
    let paid = balance(&clients[0], &to).expect("balance");
    assert_ne!(paid, before);

    // Restart it from its data directory: it resumes its committed chain and catches up.
    let stopped_at = height(&clients[0]);
    let restarted = aicpw()
        .args(["validator", "start", "--data-dir"])
        .arg(dir.path().join("validator-3"))
        .stderr(std::fs::File::create(dir.path().join("validator-3-restarted.log")).expect("log"))
        .spawn()
        .expect("the validator restarts");
    processes.restarted.push(restarted);
    wait_until("validator 3 caught up", Duration::from_secs(60), || {
        height(&clients[3]) >= stopped_at
    });
    assert_eq!(block_hash(&clients[3], stopped_at), block_hash(&clients[0], stopped_at));
    assert_eq!(block_hash(&clients[3], check).as_deref(), Some(hash.as_str()));
    assert_eq!(balance(&clients[3], &to), Some(paid));

    // It takes part again: a transfer sent to it is finalized when it leads.
    transfer(&apis[3], &keys.join("dev-0.json"), &to);
    let now = height(&clients[3]);
    wait_until("the four finalize on", Duration::from_secs(30), || {
        clients.iter().all(|c| height(c) >= now + 4)
    });
    assert_eq!(block_hash(&clients[0], now + 2), block_hash(&clients[3], now + 2));
    drop(processes);
}
