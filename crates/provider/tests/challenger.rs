//! The challenger against a real node (in process, real HTTP API and redb): it answers the
//! ledger's matrix challenges and puzzles, and the ledger scores them.

mod common;

use aicpw_ledger::challenge::ChallengeParams;
use aicpw_provider::challenger::{self, ChallengerConfig};
use aicpw_provider::client::Client;
use aicpw_types::{Amount, Hardware, Keypair, NodeId, TxBody};
use common::TestNode;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn register(client: &Client, key: &Keypair) -> NodeId {
    client.send(key, TxBody::Bond { amount: Amount::tokens(1_000) }, true).expect("bond");
    let body = TxBody::RegisterNode {
        hardware: Hardware { cpu_cores: 2, memory_mb: 4_096, ..Default::default() },
        x25519_key: key.x25519_public(),
        endpoint: "challenger-test".into(),
        price_per_hour: Amount(3_600_000),
    };
    let committed = client.send(key, body, true).expect("register");
    let node = committed["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event"] == "node_registered"))
        .and_then(|e| e["node"].as_u64())
        .expect("a node_registered event");
    NodeId(node)
}

fn capacity(client: &Client, node: NodeId) -> Value {
    client.get(&format!("/v1/nodes/{node}")).expect("node")["capacity"].clone()
}

#[test]
fn the_challenger_answers_a_real_nodes_challenges_and_the_ledger_scores_them() {
    // Small challenges, in two opening transactions each (256 tiles, 100 drawn), and a deadline
    // with room for an unoptimized test build on a shared machine.
    let params = ChallengeParams {
        n_max: 256,
        open_count: 100,
        puzzle_difficulty: 8,
        round_trip_ms: 5_000,
        ..ChallengeParams::every(4_000)
    };
    let node_server = TestNode::start(params);
    let client = Client::new(&node_server.url);
    let key = Keypair::dev(1);
    let node = register(&client, &key);
    let stop = Arc::new(AtomicBool::new(false));
    let config = ChallengerConfig { threads: 2, claim_probe_n: 64 };
    let thread = challenger::spawn(&node_server.url, key, node, config, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut record = capacity(&client, node);
    while record["passed"].as_u64() < Some(2) || record["puzzles_solved"].as_u64() < Some(1) {
        assert!(Instant::now() < deadline, "no two passed challenges in time: {record}");
        std::thread::sleep(Duration::from_millis(200));
        record = capacity(&client, node);
    }
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("the challenger stops");
    assert_eq!((record["failed"].as_u64(), record["missed"].as_u64()), (Some(0), Some(0)));
    assert!(record["claimed_units"].as_u64() >= Some(1), "the challenger claimed: {record}");
    assert!(record["recent_units"].as_array().is_some_and(|r| r.len() >= 2));
    let challenges = client.get(&format!("/v1/challenges?node={node}")).expect("challenges");
    let matrix = challenges
        .as_array()
        .and_then(|list| list.iter().find(|c| c["kind"] == "matrix"))
        .expect("a matrix challenge");
    assert_eq!(matrix["n"], 256);
    let node_record = client.get(&format!("/v1/nodes/{node}")).expect("node");
    assert_eq!(node_record["status"], "active");
}

fn challenge_of(client: &Client, node: NodeId, kind: &str) -> Option<Value> {
    let list = client.get(&format!("/v1/challenges?node={node}")).ok()?;
    list.as_array()?.iter().find(|c| c["kind"] == kind).cloned()
}

#[test]
fn a_challenger_started_after_the_commitment_solves_again_and_opens_it() {
    let params = ChallengeParams {
        n_max: 128,
        puzzle_difficulty: 0,
        round_trip_ms: 5_000,
        ..ChallengeParams::every(3_600_000)
    };
    let node_server = TestNode::start(params);
    let client = Client::new(&node_server.url);
    let key = Keypair::dev(2);
    let node = register(&client, &key);
    let deadline = Instant::now() + Duration::from_secs(60);
    let issued = loop {
        match challenge_of(&client, node, "matrix") {
            Some(challenge) if challenge["status"] == "issued" => break challenge,
            _ => assert!(Instant::now() < deadline, "no challenge issued"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // An earlier run of the agent committed, then went away with the product.
    let seed: aicpw_types::Hash32 = serde_json::from_value(issued["seed"].clone()).expect("seed");
    let n = issued["n"].as_u64().expect("n") as u32;
    let challenge = aicpw_verify::MatrixChallenge::new(seed.0, n, 16).expect("valid");
    let root = aicpw_provider::challenge::solve_matrix(&challenge, 2).expect("solved").root();
    let id = aicpw_types::ChallengeId(issued["id"].as_u64().expect("id"));
    let commit = TxBody::ChallengeCommit { challenge: id, root: aicpw_types::Hash32(root) };
    client.send(&key, commit, true).expect("committed");
    let stop = Arc::new(AtomicBool::new(false));
    let config = ChallengerConfig { threads: 2, claim_probe_n: 0 };
    let thread = challenger::spawn(&node_server.url, key, node, config, stop.clone());
    loop {
        let current = challenge_of(&client, node, "matrix").expect("the challenge");
        if current["status"] == "passed" {
            assert_eq!(current["id"].as_u64(), Some(id.0));
            break;
        }
        assert!(Instant::now() < deadline, "not opened: {current}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("the challenger stops");
}
