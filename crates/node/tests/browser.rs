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
    for path in ["/", "/app.js", "/seal.js", "/style.css"] {
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

/// Deterministic test content, the same formula as `vectors.mjs`.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i.wrapping_mul(7).wrapping_add(3) % 251) as u8).collect()
}

/// The page's cryptography (`web/seal.js`) against the Rust code, in chromium: BLAKE3, CIDs
/// (one chunk, a full root, two levels), the account's X25519 key and content keys, a sealed
/// box and a result envelope made here and opened there, bundles packed byte for byte alike,
/// keys of small order and tampered ciphertexts refused; then a box sealed and a blob
/// encrypted by the page are opened here.
#[test]
fn the_pages_cryptography_matches_the_rust_code_in_chromium() {
    use aicpw_types::bundle::{self, Manifest};
    use aicpw_types::seal;
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    fn hex(bytes: impl AsRef<[u8]>) -> String {
        hex::encode(bytes)
    }

    let blake3: Vec<_> = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 5121, 65_537]
        .iter()
        .map(|&n| serde_json::json!([n, hex(blake3::hash(&pattern(n)).as_bytes())]))
        .collect();
    let chunk = 256 * 1024;
    let cids: Vec<_> = [0, 1, chunk, chunk + 1, 3 * chunk + 5, 174 * chunk, 174 * chunk + 1]
        .iter()
        .map(|&n| {
            let options = aicpw_store::AddOptions::cid_v1();
            let cid = aicpw_store::cid_of_reader(pattern(n).as_slice(), &options).expect("cid");
            serde_json::json!([n, cid.to_string()])
        })
        .collect();

    let seed = [0x42u8; 32];
    let account = Keypair::from_seed(seed);
    let salt = [0x17u8; 32];
    let content_key = account.content_key(&salt);
    let encrypted = seal::encrypt(&content_key, b"inputs of a task");
    let sealed = seal::seal(&account.x25519_public(), b"a content key").expect("usable");
    let manifest = Manifest {
        command: "python3".into(),
        args: vec!["run.py".into(), "--say \"hi\"\n\u{e9}".into()],
        outputs: vec!["out.txt".into(), "logs".into()],
        ..Manifest::default()
    };
    let outputs = vec![("out.txt".to_string(), b"done".to_vec()), ("logs".into(), vec![0, 255])];
    let mut files = outputs.clone();
    files.push((bundle::RESULT_LOG_PATH.into(), b"loss: 0.5\nloss: 0.25\n".to_vec()));
    let plain = bundle::pack(&manifest, &files).expect("pack");
    let result = seal::seal_result(&account.x25519_public(), &plain).expect("envelope");
    let output_hash = bundle::output_hash(&manifest, &outputs).expect("hash");
    let container = Manifest {
        image: Some(format!("registry.example/train@sha256:{}", "ab".repeat(32))),
        image_archive: Some("img.tar".into()),
        ..manifest.clone()
    };
    let packed_container = bundle::pack(&container, &outputs).expect("pack");
    let provider = Keypair::dev(9);
    let vectors = serde_json::json!({
        "blake3": blake3,
        "cids": cids,
        "seed": hex(seed),
        "x25519_public": hex(account.x25519_public()),
        "salt": hex(salt),
        "content_key": hex(content_key),
        "encrypted": hex(&encrypted),
        "sealed": hex(&sealed),
        "manifest": manifest,
        "files": files.iter().map(|(p, b)| serde_json::json!([p, hex(b)])).collect::<Vec<_>>(),
        "packed": hex(&plain),
        "container": container,
        "packed_container": hex(&packed_container),
        "result": hex(&result),
        "output_hash": output_hash.to_string(),
        "weak_key": hex([0u8; 32]),
        "provider_x25519": hex(provider.x25519_public()),
    });
    let file = dir.path().join("vectors.json");
    std::fs::write(&file, vectors.to_string()).expect("vectors");

    let out = Command::new("node")
        .arg(harness.join("vectors.mjs"))
        .args([&node.url, &file.display().to_string()])
        .output()
        .expect("node (Node.js) runs: install it with scripts/setup.sh");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vectors failed in the browser:\n{stdout}\n{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json answer");
    let from_page = |field: &str| hex::decode(answer[field].as_str().expect(field)).expect("hex");
    // What the page sealed and encrypted, opened by the Rust code.
    let opened = seal::open(&provider.x25519_secret(), &from_page("sealed_by_page"));
    assert_eq!(opened, Ok(b"content key from the page".to_vec()));
    let decrypted = seal::decrypt(&content_key, &from_page("encrypted_by_page"));
    assert_eq!(decrypted, Ok(b"sealed in chromium".to_vec()));
    assert_eq!(answer["checked"].as_u64(), Some(24), "every check ran: {stdout}");
}

/// `POST /v1/task-files` is how the page reads a task file: the terms and manifest are the ones
/// the CLI builds from the same file (`TaskFile::terms`, `TaskFile::manifest`), and a bad file
/// is refused with `TaskFileInvalid` 740 naming its line and field.
#[test]
fn a_task_file_is_read_by_the_one_parser_and_refused_with_its_line() {
    use aicpw_types::spec::{TaskFile, TASK_FILE_BYTES_MAX};
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let url = format!("{}/v1/task-files", node.url);
    let yaml = "version: 1\nname: t\ncommand: python3\nargs: [run.py, \"-v\"]\ninputs: [data/run.py]\n\
        outputs: [out.txt]\ntime_limit_secs: 60\nbudget: \"3000000\"\nmax_price_per_hour: \"3600000\"\n\
        verification: audit\nencrypt: true\n";
    let read: serde_json::Value =
        ureq::post(&url).send_string(yaml).expect("read").into_json().expect("json");
    let file = TaskFile::parse(yaml).expect("valid");
    assert_eq!(
        read["terms"],
        serde_json::to_value(file.terms(String::new(), [0; 32])).expect("json")
    );
    assert_eq!(read["manifest"], serde_json::to_value(file.manifest()).expect("json"));
    assert_eq!(read["inputs"], serde_json::json!(["data/run.py"]));

    let refused = |body: &str| match ureq::post(&url).send_string(body) {
        Err(ureq::Error::Status(status, response)) => {
            let value: serde_json::Value = response.into_json().expect("json error");
            (status, value["error"]["code"].as_u64(), value["error"]["message"].to_string())
        }
        other => panic!("a bad task file was accepted: {other:?}"),
    };
    let (status, code, message) = refused(&yaml.replace("version: 1", "version: 2"));
    assert_eq!((status, code), (422, Some(740)));
    assert!(message.contains("line 1") && message.contains("version"), "{message}");
    let (status, code, _) = refused(&format!("{yaml}surprise: 1\n"));
    assert_eq!((status, code), (422, Some(740)));
    let (status, code, _) = refused(&" ".repeat(TASK_FILE_BYTES_MAX + 1));
    assert_eq!((status, code), (413, Some(904)));
}
