//! The node as users run it: the real `aicpw` binary, a real redb file, the real HTTP API.

use aicpw_provider::client::{Client, ClientError};
use aicpw_types::{Amount, Keypair, Reject, Tx, TxBody};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn aicpw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aicpw"))
}

struct NodeProcess {
    child: Child,
    url: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(dir: &Path) -> NodeProcess {
    let mut child = aicpw()
        .args(["node", "start", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("listening on ").expect("announces its address").to_string();
    NodeProcess { child, url }
}

fn transfer(to: &Keypair, amount: u128) -> TxBody {
    TxBody::Transfer { to: to.account(), amount: Amount(amount) }
}

fn balance(client: &Client, key: &Keypair) -> u128 {
    let account = client.get(&format!("/v1/accounts/{}", key.account())).expect("account");
    account["balance"].as_str().and_then(|b| b.parse().ok()).expect("balance")
}

/// A killed process leaves its writes in the page cache, so this passes without any fsync: power
/// cuts over a disk that keeps only synced writes are `crates/node/tests/durability.rs`.
#[test]
fn a_killed_node_loses_no_acknowledged_transfer_and_replays_to_its_state_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (alice, bob) = (Keypair::dev(1), Keypair::dev(2));
    let node = start_node(dir.path());
    let client = Client::new(&node.url);
    let bob_before = balance(&client, &bob);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (url, acknowledged, stop) = (node.url.clone(), acknowledged.clone(), stop.clone());
        let bob = bob.clone();
        std::thread::spawn(move || {
            let client = Client::new(&url);
            while !stop.load(Ordering::SeqCst) {
                match client.send(&alice, transfer(&bob, 1), true) {
                    Ok(_) => acknowledged.fetch_add(1, Ordering::SeqCst),
                    Err(_) => break,
                };
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    drop(node); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    sender.join().expect("sender thread");
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    assert!(acknowledged > 5, "the stream ran before the kill ({acknowledged} acknowledged)");

    let node = start_node(dir.path());
    let client = Client::new(&node.url);
    let account =
        client.get(&format!("/v1/accounts/{}", Keypair::dev(1).account())).expect("account");
    let committed = account["nonce"].as_u64().expect("nonce");
    assert!(committed >= acknowledged, "{committed} committed < {acknowledged} acknowledged");
    assert_eq!(
        balance(&client, &bob),
        bob_before + u128::from(committed),
        "every committed transfer arrived once"
    );
    drop(node);

    let replay = aicpw()
        .args(["node", "replay", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("replay");
    let report: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("json");
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(report["matches"], true);
    assert_eq!(report["stored_root"], report["replayed_root"]);
}

#[test]
fn bad_transactions_get_their_own_codes_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path());
    let client = Client::new(&node.url);
    let (alice, bob) = (Keypair::dev(3), Keypair::dev(4));
    let chain_id = client.chain_id().expect("chain id");
    let tx = |nonce, body| Tx {
        chain_id: chain_id.clone(),
        signer: alice.account(),
        nonce,
        fee: Amount(10),
        body,
    };
    let reject =
        |result: Result<serde_json::Value, ClientError>| result.expect_err("rejected").reject();

    let good = alice.sign(tx(0, transfer(&bob, 5)));
    let mut forged = good.clone();
    forged.signature[3] ^= 0x40;
    assert_eq!(reject(client.submit(&forged, true)), Some(Reject::BadSignature));
    let overdrawn = alice.sign(tx(0, transfer(&bob, u128::MAX / 3)));
    assert_eq!(reject(client.submit(&overdrawn, true)), Some(Reject::InsufficientBalance));
    client.submit(&good, true).expect("a good transfer commits");
    assert_eq!(reject(client.submit(&good, true)), Some(Reject::NonceReplayed));
    let unsigned = client.put_bytes("/store", b"x");
    assert_eq!(reject(unsigned), Some(Reject::UploadUnsigned));

    let http = ureq::AgentBuilder::new().build();
    let post = |bytes: &[u8]| match http.post(&format!("{}/v1/tx", node.url)).send_bytes(bytes) {
        Err(ureq::Error::Status(status, response)) => {
            let body: serde_json::Value = response.into_json().expect("json error");
            (status, body["error"]["code"].as_u64())
        }
        other => panic!("expected an error status, got {other:?}"),
    };
    assert_eq!(post(b"not a transaction"), (400, Some(100)));
    // Just over the limit: the whole body fits in socket buffers, so the answer is readable.
    assert_eq!(post(&vec![0u8; 70_000]), (413, Some(101)));

    client.send(&alice, transfer(&bob, 7), true).expect("the node still serves");
    // The same API takes a signed transaction as JSON, checked exactly like the binary form.
    let as_json = |tx: &aicpw_types::SignedTx| -> (u16, serde_json::Value) {
        let sent = http
            .post(&format!("{}/v1/tx?wait=true", node.url))
            .set("content-type", "application/json")
            .send_string(&serde_json::to_string(tx).expect("json"));
        let response = match sent {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("the node must answer: {e}"),
        };
        (response.status(), response.into_json().expect("a JSON answer"))
    };
    let next = alice.sign(tx(2, transfer(&bob, 1)));
    let (status, committed) = as_json(&next);
    assert_eq!((status, committed["tx_id"].as_str()), (200, Some(next.id().to_string().as_str())));
    let mut forged = alice.sign(tx(3, transfer(&bob, 1)));
    forged.signature[0] ^= 1;
    let (status, refused) = as_json(&forged);
    assert_eq!((status, refused["error"]["code"].as_u64()), (422, Some(102)));
    let cli = aicpw()
        .args(["--node", &node.url, "query", "account", &bob.account().to_string(), "--json"])
        .output()
        .expect("cli");
    let account: serde_json::Value = serde_json::from_slice(&cli.stdout).expect("json");
    assert_eq!(account["address"], bob.account().to_string());
    assert!(account["balance"].is_string() && account["staked"] == "0" && account["nonce"] == 0);
}

#[test]
fn the_cli_exits_non_zero_with_the_reject_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path());
    let keys = dir.path().join("keys");
    let status = aicpw().args(["keys", "dev", "2", "--out"]).arg(&keys).status().expect("keys");
    assert!(status.success());
    let bob = Keypair::dev(1).account().to_string();
    let run = |amount: &str| {
        aicpw()
            .args([
                "--node", &node.url, "tx", "transfer", "--to", &bob, "--amount", amount, "--from",
            ])
            .arg(keys.join("dev-0.json"))
            .output()
            .expect("cli")
    };
    let ok = run("1000");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let overdrawn = run("999999999999999999999999");
    assert!(!overdrawn.status.success());
    assert!(String::from_utf8_lossy(&overdrawn.stderr).contains("code 202"));
}
