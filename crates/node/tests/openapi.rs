//! The OpenAPI document cannot drift: the committed `crates/node/openapi.json` is what the code
//! generates (regenerate with `AICPW_BLESS=1 cargo test -p aicpw-node --test openapi`), every
//! route the router serves is in it and nothing else is, and a live node serves it. Errors the
//! router itself makes (unknown path, unparsable id, wrong method) carry a reject code too.

mod support;

use aicpw_types::{Amount, Keypair, TxBody};
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::{tx, Node};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = aicpw_node::openapi::document_json();
    let path = manifest().join("openapi.json");
    if std::env::var_os("AICPW_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).expect("crates/node/openapi.json");
    assert!(committed == generated, "openapi.json differs from the code: rerun with AICPW_BLESS=1");
    let doc: serde_json::Value = serde_json::from_str(&generated).expect("JSON");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
}

/// `(METHOD, path)` of every `.route("path", method(...))` in the router's source files.
fn routed() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for file in ["src/api.rs", "src/store_api.rs", "src/web.rs"] {
        let text = std::fs::read_to_string(manifest().join(file)).expect("source");
        for piece in text.split(".route(\"").skip(1) {
            let (path, rest) = piece.split_once('"').expect("a quoted path");
            let method = rest.trim_start_matches([',', ' ', '\n']);
            let method = method.split('(').next().expect("a method router");
            found.insert((method.to_uppercase(), path.to_owned()));
        }
    }
    found
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let documented: BTreeSet<(String, String)> =
        aicpw_node::openapi::routes().into_iter().map(|(m, p)| (m, p.to_owned())).collect();
    assert_eq!(routed(), documented);
}

#[test]
fn a_live_node_serves_the_document_and_coded_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let served = ureq::get(&format!("{}/openapi.json", node.url)).call().expect("document");
    assert_eq!(served.into_string().expect("text"), aicpw_node::openapi::document_json());
    let error =
        |method: &str, path: &str| match ureq::request(method, &format!("{}{path}", node.url))
            .call()
        {
            Err(ureq::Error::Status(status, response)) => {
                assert_eq!(response.content_type(), "application/json");
                let body: serde_json::Value = response.into_json().expect("json");
                (status, body["error"]["code"].as_u64().expect("a reject code"))
            }
            other => panic!("{method} {path} answered {other:?}"),
        };
    assert_eq!(error("GET", "/no/such/page"), (404, 902));
    assert_eq!(error("GET", "/v1/nodes/not-a-number"), (400, 905));
    assert_eq!(error("GET", "/v1/tasks?limit=-1"), (400, 905));
    assert_eq!(error("DELETE", "/v1/status"), (405, 905));
    assert_eq!(error("GET", "/v1/tasks/18446744073709551615"), (404, 500));
    assert_eq!(node.shared.mempool_len(), 0, "refused requests leave nothing behind");

    // Answers carry every property their schema requires.
    let doc: serde_json::Value =
        serde_json::from_str(&aicpw_node::openapi::document_json()).expect("JSON");
    let has_required = |schema: &str, answer: &serde_json::Value| {
        let required = doc["components"]["schemas"][schema]["required"].as_array().expect("list");
        for field in required {
            let field = field.as_str().expect("a name");
            assert!(answer.get(field).is_some(), "{schema} answer lacks {field}: {answer}");
        }
    };
    let alice = Keypair::dev(1);
    let body = TxBody::Transfer { to: Keypair::dev(2).account(), amount: Amount(1) };
    let pending = node.submit(&alice.sign(tx(alice.account(), 0, body)), false).expect("admitted");
    has_required("Pending", &pending);
    has_required("StatusView", &node.get("/v1/status"));
    has_required("AccountView", &node.get(&format!("/v1/accounts/{}", alice.account())));
    // The transfer was only admitted: a block exists once the node made one.
    let started = std::time::Instant::now();
    while node.get("/v1/status")["height"].as_u64() < Some(1) {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no block made");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    has_required("BlockView", &node.get("/v1/blocks/latest"));
}
