//! The web DApp in a real browser: Debian's chromium driven by `playwright-core`
//! (`tests/browser/browser.mjs`; both installed by `scripts/setup.sh`) against a real node on
//! loopback. The page signs a transfer with a key file imported into the browser; this test
//! then checks on the ledger that exactly that transfer committed. A provider whose on-chain
//! endpoint and GPU name are script must be shown as text. Screenshots: target/browser-artifacts.

mod support;

use aicpw_types::{Amount, Hardware, Keypair, TxBody};
use std::path::PathBuf;
use std::process::Command;
use support::{tx, Node};

const HOSTILE: &str = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";

fn balance(node: &Node, who: &str) -> u128 {
    let value = node.get(&format!("/v1/accounts/{who}"));
    value["balance"].as_str().and_then(|b| b.parse().ok()).expect("balance")
}

#[test]
fn the_page_signs_a_transfer_in_chromium_and_shows_hostile_chain_data_as_text() {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        harness.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/setup.sh (npm ci in {})",
        harness.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());

    // A provider registers with markup where its endpoint and GPU name go.
    let provider = Keypair::dev(3);
    let bond = TxBody::Bond { amount: Amount::tokens(1_000) };
    node.submit(&provider.sign(tx(provider.account(), 0, bond)), true).expect("bond");
    let hardware = Hardware {
        cpu_cores: 4,
        memory_mb: 8_192,
        disk_mb: 10_000,
        gpu_model: "<b onmouseover=x>H100</b>".into(),
        gpu_count: 1,
        gpu_vram_mb: 80_000,
        ..Hardware::default()
    };
    let register = TxBody::RegisterNode {
        hardware,
        x25519_key: provider.x25519_public(),
        endpoint: HOSTILE.into(),
        price_per_hour: Amount::tokens(2),
    };
    node.submit(&provider.sign(tx(provider.account(), 1, register)), true).expect("register");
    let node_id = node.get("/v1/nodes")[0]["id"].as_u64().expect("a node");

    let (requester, payee) = (Keypair::dev(4), Keypair::dev(5).account().to_string());
    let key_file = dir.path().join("requester.json");
    requester.save(&key_file).expect("key file");
    let before = (balance(&node, &requester.account().to_string()), balance(&node, &payee));

    let artifacts =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    let out = Command::new("node")
        .arg(harness.join("browser.mjs"))
        .args([&node.url, &artifacts.display().to_string(), &key_file.display().to_string()])
        .args([&payee, &node_id.to_string(), HOSTILE])
        .output()
        .expect("node (Node.js) runs: install it with scripts/setup.sh");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{stderr}");

    // The ledger agrees with what the page showed: 1.5 AIC moved, the fee paid, nonce 1.
    let fee = node.get("/v1/params")["fee_min"].as_str().and_then(|f| f.parse::<u128>().ok());
    let after = (balance(&node, &requester.account().to_string()), balance(&node, &payee));
    assert_eq!(after.1, before.1 + 1_500_000, "{stdout}");
    assert_eq!(after.0, before.0 - 1_500_000 - fee.expect("fee_min"), "{stdout}");
    let nonce = node.shared.chain().state().accounts.get(&requester.account()).map(|a| a.nonce);
    assert_eq!(nonce, Some(1), "one transaction signed by the page");
    assert!(stdout.contains(&requester.account().to_string()), "{stdout}");
    for shot in ["market", "provider", "wallet", "explorer-account"] {
        assert!(artifacts.join(format!("{shot}.png")).is_file(), "screenshot {shot}");
    }
}

/// What the page relies on, without a browser: the assets come with a policy that runs only the
/// node's own script, and `POST /v1/tx/signing-bytes` answers exactly the bytes the ledger checks,
/// refusing junk and oversize bodies with their codes.
#[test]
fn the_page_is_locked_to_its_origin_and_signing_bytes_are_the_ledgers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    for path in ["/", "/app.js", "/style.css"] {
        let response = ureq::get(&format!("{}{path}", node.url)).call().expect("asset");
        let policy = response.header("content-security-policy").expect("a policy");
        assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }

    let alice = Keypair::dev(1);
    let body = TxBody::Transfer { to: Keypair::dev(2).account(), amount: Amount(7) };
    let unsigned = tx(alice.account(), 0, body);
    let url = format!("{}/v1/tx/signing-bytes", node.url);
    let answer: serde_json::Value = ureq::post(&url)
        .send_json(serde_json::to_value(&unsigned).expect("json"))
        .expect("signing bytes")
        .into_json()
        .expect("json");
    assert_eq!(
        answer["signing_bytes"].as_str(),
        Some(hex::encode(unsigned.signing_bytes()).as_str())
    );

    let refused = |body: Vec<u8>| match ureq::post(&url).send_bytes(&body) {
        Err(ureq::Error::Status(status, response)) => {
            let value: serde_json::Value = response.into_json().expect("json error");
            (status, value["error"]["code"].as_u64().expect("code"))
        }
        other => panic!("junk was accepted: {other:?}"),
    };
    assert_eq!(refused(b"{\"chain_id\":1}".to_vec()), (400, 100));
    assert_eq!(refused(vec![b' '; aicpw_node::api::TX_JSON_BYTES_MAX + 1]), (413, 101));
}
