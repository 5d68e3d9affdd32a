//! `GET /metrics` of a real node on loopback: what it counts follows what the chain did,
//! Prometheus's own checker (`promtool check metrics`, installed by `scripts/setup.sh`) accepts
//! it, and clients cannot grow it by asking for paths of their own making.

mod support;

use aicpw_types::{Amount, Keypair, TxBody};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use support::{tx, Node};

fn scrape(node: &Node) -> String {
    let response = ureq::get(&format!("{}/metrics", node.url)).call().expect("GET /metrics");
    assert!(response.content_type().starts_with("text/plain"), "{}", response.content_type());
    response.into_string().expect("text")
}

/// The value of the sample `name{labels}` (labels exactly as written), if present.
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (install it with scripts/setup.sh: Debian package prometheus)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_follow_the_chain_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let before = scrape(&node);
    promtool_check(&before);
    assert_eq!(value(&before, "aicpw_transactions_committed_total"), Some(0.0));
    assert_eq!(value(&before, "aicpw_tasks{state=\"queued\"}"), Some(0.0));

    let (alice, bob) = (Keypair::dev(1), Keypair::dev(2));
    for nonce in 0..3 {
        let body = TxBody::Transfer { to: bob.account(), amount: Amount(5) };
        node.submit(&alice.sign(tx(alice.account(), nonce, body)), true).expect("commits");
    }
    let status = node.get("/v1/status");
    let after = scrape(&node);
    promtool_check(&after);
    assert_eq!(value(&after, "aicpw_transactions_committed_total"), Some(3.0));
    assert_eq!(value(&after, "aicpw_events_total{kind=\"transferred\"}"), Some(3.0));
    assert!(value(&after, "aicpw_transactions_per_second").expect("tx rate") > 0.0);
    let height = value(&after, "aicpw_block_height").expect("height");
    assert!(height >= status["height"].as_u64().expect("height") as f64);
    let accounts = status["accounts"].as_u64().expect("accounts") as f64;
    assert_eq!(value(&after, "aicpw_accounts"), Some(accounts));
    let mempool = node.shared.mempool_len() as f64;
    assert_eq!(value(&after, "aicpw_mempool_transactions"), Some(mempool));
    // The status and scrape requests above were timed, under their route's template.
    let answered = "aicpw_api_request_duration_seconds_count{route=\"/v1/tx\",status=\"2xx\"}";
    assert_eq!(value(&after, answered), Some(3.0));
    assert!(after.contains("aicpw_slashes_total{outcome=\"penalized\"} 0"));
}

/// An attacker asks for thousands of made-up paths and ids: the latency histogram is labelled
/// by route template and status class, never by the raw path, so the scrape stays small.
#[test]
fn made_up_paths_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    for i in 0..200 {
        for path in [format!("/no/such/{i}"), format!("/v1/tasks/{i}"), format!("/v1/nodes/x{i}")] {
            let _ = ureq::get(&format!("{}{path}", node.url)).call();
        }
    }
    let text = scrape(&node);
    promtool_check(&text);
    let routes: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("aicpw_api_request_duration_seconds_count"))
        .collect();
    let expected = [
        "aicpw_api_request_duration_seconds_count{route=\"/v1/nodes/{id}\",status=\"4xx\"} 200",
        "aicpw_api_request_duration_seconds_count{route=\"/v1/tasks/{id}\",status=\"4xx\"} 200",
        "aicpw_api_request_duration_seconds_count{route=\"unmatched\",status=\"4xx\"} 200",
    ];
    assert_eq!(routes, expected.into_iter().collect(), "{text}");
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}
