//! The requester's and the provider's flow in a real browser: Debian's chromium driven by
//! `playwright-core` (`crates/node/tests/browser/requester.mjs`; both installed by
//! `scripts/setup.sh`) over the real `aicpw` node and a provider agent with the real sandbox.
//! The page submits a task file with an input sealed in the browser, grants the content key,
//! downloads and decrypts the result, accepts and rates it, and shows the provider's earnings
//! move. This test then checks the ledger, and that the page's decryption is byte for byte what
//! `aicpw task result` writes. Screenshots: target/browser-artifacts/requester.

mod common;

use aicpw_types::Keypair;
use common::{amount, Net};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const TRAIN: &str = "import os\nfor step in range(6):\n    print(f'step {step} loss: {1.0 / (step + 1):.4f}', flush=True)\n\
open(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'model.txt'), 'w').write('weights ' + 'x' * 300000)\n";

/// Base units as the page writes tokens: `1.5 AIC`, `2 AIC`.
fn tokens(units: u128) -> String {
    let (whole, fraction) = (units / 1_000_000, units % 1_000_000);
    let fraction = format!("{fraction:06}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{whole} AIC")
    } else {
        format!("{whole}.{fraction} AIC")
    }
}

#[test]
fn a_requester_submits_decrypts_accepts_and_rates_in_chromium_and_the_provider_is_paid() {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node/tests/browser");
    assert!(
        harness.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/setup.sh (npm ci in {})",
        harness.display()
    );
    let mut net = Net::start();
    net.provider(1, 1_800_000);
    net.wait_nodes(1);
    let node_id = net.client.get("/v1/nodes").expect("nodes")[0]["id"].as_u64().expect("a node");
    let requester = 3;
    let key = net.key(requester);
    let dir = net.dir.path().join("browser-task");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("train.py"), TRAIN).expect("input");
    let yaml = "version: 1\nname: browser-training\ncommand: python3\nargs: [train.py]\n\
        inputs: [train.py]\noutputs: [model.txt]\ntime_limit_secs: 60\nbudget: \"1000000\"\n\
        max_price_per_hour: \"3600000\"\n";
    std::fs::write(dir.join("task.yaml"), yaml).expect("task file");

    let artifacts =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/requester");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(harness.join("requester.mjs"))
        .args([&net.url, &artifacts.display().to_string(), &key.display().to_string()])
        .arg(node_id.to_string())
        .arg(dir.join("task.yaml"))
        .arg(dir.join("train.py"))
        .output()
        .expect("node (Node.js) runs: install it with scripts/setup.sh");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{stderr}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let id = seen["task"].as_u64().expect("task id");

    // The ledger: the page's task, submitted and signed by the key it imported, sealed, paid,
    // rated.
    let task = net.wait_state(id, &["completed"], Duration::from_secs(10));
    assert_eq!(task["requester"], Keypair::dev(requester).account().to_string());
    assert_eq!(task["terms"]["encrypted"], true);
    assert_eq!(task["terms"]["result_key"], hex::encode(Keypair::dev(requester).x25519_public()));
    assert_eq!(task["key_grants"][0]["node"].as_u64(), Some(node_id), "the page granted the key");
    let lease = &task["leases"][0];
    assert_eq!(lease["verdict"], "paid", "{task}");
    assert_eq!(task["rating"], 4, "rated in the page: {task}");
    let node = net.client.get(&format!("/v1/nodes/{node_id}")).expect("node");
    assert_eq!(node["reputation"]["rating_count"], 1, "rated once: {node}");

    // The provider's earnings the page showed: nothing before, the lease's pay after.
    let paid = amount(&lease["cost"]).max(amount(&lease["released"]));
    assert!(paid > 0);
    assert_eq!(seen["earned_before"], "0 AIC", "{stdout}");
    assert_eq!(seen["earned_after"], tokens(paid), "{stdout}");
    assert!(seen["granted"].as_str().is_some_and(|g| g.contains(&format!("node {node_id}"))));
    assert!(seen["log"].as_str().is_some_and(|l| l.contains("step 5 loss: 0.1667")), "{stdout}");

    // The sealed inputs the page uploaded open for the provider's run (it ran), and what the
    // page decrypted is what `aicpw task result` writes.
    let cli_out = net.dir.path().join("cli-result");
    let result = Command::new(env!("CARGO_BIN_EXE_aicpw"))
        .args(["--node", &net.url, "task", "result", &id.to_string(), "--key"])
        .arg(&key)
        .arg("--out")
        .arg(&cli_out)
        .output()
        .expect("cli runs");
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let from_cli = std::fs::read(cli_out.join("model.txt")).expect("the CLI's output");
    let from_page = std::fs::read(artifacts.join("download/model.txt")).expect("the download");
    assert_eq!(from_cli.len(), 300_008);
    assert!(from_page == from_cli, "the page's decryption differs from the CLI's");
    assert!(seen["uploaded_bytes"].as_u64() > Some(0));
    for shot in ["submitted", "task-result", "task-completed", "provider-earned"] {
        assert!(artifacts.join(format!("{shot}.png")).is_file(), "screenshot {shot}");
    }
}
