//! The content store attacked over the real `aicpw` node and its HTTP API: a small upload that
//! reads back as a huge file, unsigned, forged, stale and over-quota uploads, and content that
//! nobody collects.

mod common;

use aicpw_provider::client::ClientError;
use aicpw_store::{AddOptions, Store};
use aicpw_types::upload::{UploadAuth, UPLOAD_HEADER};
use aicpw_types::{Keypair, Reject};
use common::{wait_until, Net};
use std::io::Read;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Peak resident memory of a process since its last reset, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB");
    kib * 1024
}

fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
}

fn reject<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Option<Reject> {
    result.expect_err("refused").reject()
}

/// A CIDv0 file of `size` zero bytes (one chunk of `chunk` bytes named again and again) as a
/// CAR file.
fn zero_bomb(size: u64, chunk: usize) -> (String, Vec<u8>) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let local = Store::open(scratch.path()).expect("store");
    let options = AddOptions { chunk_size: chunk, ..AddOptions::default() };
    let cid = local.add_reader(std::io::repeat(0).take(size), &options).expect("add");
    let mut car = Vec::new();
    local.export_car(&cid, &mut car).expect("car");
    (cid.to_string(), car)
}

fn store_bytes(net: &Net, key: &Keypair) -> u64 {
    let account = net.client.get(&format!("/v1/accounts/{}", key.account())).expect("account");
    account["store_bytes"].as_u64().expect("store_bytes")
}

#[test]
fn reading_a_zero_bomb_streams_in_bounded_node_memory() {
    let net = Net::start();
    let (cid, car) = zero_bomb(512 * MIB, 256 * 1024);
    assert!(car.len() < 400_000, "512 MiB of zeros fit a {} byte CAR", car.len());
    let key = Keypair::dev(1);
    let stored = net.client.upload(&key, "/store/car", &cid, car.as_slice(), car.len() as u64);
    assert_eq!(stored.expect("the bomb uploads"), cid);
    // The upload is charged for what it reads back as, not for the bytes sent.
    assert!(store_bytes(&net, &key) >= 512 * MIB);

    let pid = net.node_pid();
    reset_peak_rss(pid);
    let before = peak_rss(pid);
    let response = ureq::get(&format!("{}/store/{cid}", net.url)).call().expect("GET");
    assert_eq!(response.header("content-length"), Some((512 * MIB).to_string().as_str()));
    let read = std::io::copy(&mut response.into_reader(), &mut std::io::sink()).expect("read");
    assert_eq!(read, 512 * MIB);
    let peak = peak_rss(pid);
    eprintln!(
        "node peak RSS while serving 512 MiB of zeros: {} MiB (before: {} MiB)",
        peak / MIB,
        before / MIB
    );
    assert!(peak < before + 64 * MIB, "peak {peak} bytes, before {before} bytes");
}

#[test]
fn unsigned_forged_stale_unfunded_and_over_quota_uploads_are_refused() {
    let net = Net::start_with(&["--store-quota-bytes", "65536"]);
    let key = Keypair::dev(2);
    let blob = vec![7u8; 40_000];
    let cid = aicpw_store::cid_of_reader(blob.as_slice(), &AddOptions::cid_v1())
        .expect("cid")
        .to_string();
    let put = |auth: &UploadAuth, cid: &str| {
        let url = format!("{}/store?expect={cid}", net.url);
        match ureq::put(&url).set(UPLOAD_HEADER, &auth.to_header()).send_bytes(&blob) {
            Err(ureq::Error::Status(_, response)) => {
                let body: serde_json::Value = response.into_json().expect("json");
                body["error"]["code"].as_u64()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let chain = net.client.chain_id().expect("chain id");
    let size = blob.len() as u64;

    assert_eq!(reject(net.client.put_bytes("/store", &blob)), Some(Reject::UploadUnsigned));
    let for_other_content = UploadAuth::sign(&key, &chain, "/store", "bafkqaaa", size, now);
    assert_eq!(put(&for_other_content, &cid), Some(921));
    let other_chain = UploadAuth::sign(&key, "another-chain", "/store", &cid, size, now);
    assert_eq!(put(&other_chain, &cid), Some(921));
    let stale = UploadAuth::sign(&key, &chain, "/store", &cid, size, now - 3_600_000);
    assert_eq!(put(&stale, &cid), Some(922));
    let smaller = UploadAuth::sign(&key, &chain, "/store", &cid, size - 1, now);
    assert_eq!(put(&smaller, &cid), Some(904));
    let unfunded = Keypair::generate();
    let refused = net.client.upload(&unfunded, "/store", &cid, blob.as_slice(), size);
    assert_eq!(reject(refused), Some(Reject::UploaderUnfunded));
    assert_eq!(reject(net.client.get_store(&cid)), Some(Reject::NotFound));

    // Signed and within the quota: stored, and charged once however often it is sent.
    assert_eq!(net.client.put_store(&key, &blob).expect("stored"), cid);
    assert_eq!(net.client.put_store(&key, &blob).expect("stored again"), cid);
    assert_eq!(store_bytes(&net, &key), size);
    assert_eq!(net.client.get_store(&cid).expect("read back"), blob);
    // A second blob passes the 64 KiB quota; a small CAR that reads back as 8 MiB does too.
    let other = vec![8u8; 40_000];
    assert_eq!(reject(net.client.put_store(&key, &other)), Some(Reject::StoreQuotaExceeded));
    let (bomb, car) = zero_bomb(8 * MIB, 1024);
    assert!(car.len() < 32 * 1024, "the CAR fits the quota: {} bytes", car.len());
    let refused =
        net.client.upload(&Keypair::dev(3), "/store/car", &bomb, car.as_slice(), car.len() as u64);
    assert_eq!(reject(refused), Some(Reject::StoreQuotaExceeded));
    // Another account has its own quota.
    assert_eq!(net.client.put_store(&Keypair::dev(3), &other).expect("stored"), {
        aicpw_store::cid_of_reader(other.as_slice(), &AddOptions::cid_v1())
            .expect("cid")
            .to_string()
    });
}

#[test]
fn content_no_open_task_names_is_collected_and_named_content_is_kept() {
    let net = Net::start_with(&["--store-hold-secs", "2"]);
    let key = Keypair::dev(4);
    let junk = vec![1u8; 300_000];
    let junk_cid = net.client.put_store(&key, &junk).expect("junk stored");
    // The CLI's own paths: `task submit` uploads the inputs (signed by the requester), and
    // `store add` / `store get` a directory through CAR files.
    let file = net.task_file("kept", "print('hi')\n", "encrypt: false\n");
    let task = net.submit_as(&file, 5);
    let inputs = net.task(task)["terms"]["inputs_cid"].as_str().expect("inputs").to_string();
    let dir = net.dir.path().join("added");
    std::fs::create_dir_all(dir.join("sub")).expect("dir");
    std::fs::write(dir.join("sub/a.txt"), "a").expect("file");
    let key_path = net.key(4);
    let added = net.cli(&[
        "store",
        "add",
        dir.to_str().expect("utf-8"),
        "--key",
        key_path.to_str().expect("utf-8"),
    ]);
    assert!(added.status.success(), "store add: {}", String::from_utf8_lossy(&added.stderr));
    let added = String::from_utf8_lossy(&added.stdout).trim().to_string();
    // The same CID computed offline, with no node to reach and no key.
    let offline = common::aicpw()
        .args(["--node", "http://127.0.0.1:1", "store", "add", "--only-hash"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert_eq!(String::from_utf8_lossy(&offline.stdout).trim(), added);
    let out = net.dir.path().join("got");
    let got = net.cli(&["store", "get", &added, "--out", out.to_str().expect("utf-8")]);
    assert!(got.status.success(), "store get: {}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(std::fs::read_to_string(out.join("sub/a.txt")).expect("got"), "a");
    assert!(store_bytes(&net, &key) >= 300_000);

    let gone = |result: Result<Vec<u8>, ClientError>| {
        result.err().and_then(|e| e.reject()) == Some(Reject::NotFound)
    };
    wait_until("unreferenced content is collected", Duration::from_secs(20), || {
        gone(net.client.get_store(&junk_cid))
            && gone(net.client.get_bytes(&format!("/store/{added}/car")))
            && store_bytes(&net, &key) == 0
    });
    // The queued task still names its inputs: they stay, long after the hold time.
    assert_eq!(net.task(task)["state"], "queued");
    assert!(!net.client.get_store(&inputs).expect("inputs kept").is_empty());
    assert!(store_bytes(&net, &Keypair::dev(5)) > 0);
}
