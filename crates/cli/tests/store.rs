//! The content store attacked over the real `aicpw` node and its HTTP API: a small upload that
//! reads back as a huge file, unsigned, forged, stale and over-quota uploads, and content that
//! nobody collects.

mod common;

use aicpw_provider::client::ClientError;
use aicpw_store::{AddOptions, Store};
use aicpw_types::upload::{UploadAuth, UPLOAD_HEADER, UPLOAD_OFFSET_HEADER};
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
    let body = std::io::Cursor::new(&car);
    let stored = net.client.upload(&key, "/store/car", &cid, body, car.len() as u64);
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
    let refused = net.client.upload(&unfunded, "/store", &cid, std::io::Cursor::new(&blob), size);
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
    let refused = net.client.upload(
        &Keypair::dev(3),
        "/store/car",
        &bomb,
        std::io::Cursor::new(&car),
        car.len() as u64,
    );
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

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()
        as u64
}

/// Bytes that differ from chunk to chunk.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 ^ (i / 262_144) as u8).collect()
}

/// Sends, over a raw connection, a PUT of the content from `offset` whose headers announce the
/// rest of the signed `size` but whose body stops after `sent`; then drops the connection.
fn broken_put(url: &str, auth: &UploadAuth, route: &str, cid: &str, offset: u64, sent: &[u8]) {
    use std::io::Write;
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    let head = format!(
        "PUT {route}?expect={cid} HTTP/1.1\r\nhost: {address}\r\n{UPLOAD_HEADER}: {}\r\n\
         {UPLOAD_OFFSET_HEADER}: {offset}\r\ncontent-length: {}\r\n\r\n",
        auth.to_header(),
        auth.size - offset
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(sent).expect("part");
    stream.flush().expect("flush");
    // Gives the node time to take the part before the connection breaks.
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
}

/// Sends `body` as the content from `offset`; the node's answer: the CID, or the error code and
/// the offset it names.
fn put_part(
    url: &str,
    auth: &UploadAuth,
    route: &str,
    cid: &str,
    offset: u64,
    body: &[u8],
) -> Result<String, (u64, Option<u64>)> {
    let response = ureq::put(&format!("{url}{route}?expect={cid}"))
        .set(UPLOAD_HEADER, &auth.to_header())
        .set(UPLOAD_OFFSET_HEADER, &offset.to_string())
        .send_bytes(body);
    match response {
        Ok(response) => {
            let body: serde_json::Value = response.into_json().expect("json");
            Ok(body["cid"].as_str().expect("cid").to_string())
        }
        Err(ureq::Error::Status(_, response)) => {
            let body: serde_json::Value = response.into_json().expect("json");
            Err((body["error"]["code"].as_u64().expect("code"), body["offset"].as_u64()))
        }
        Err(other) => panic!("transport: {other}"),
    }
}

/// Files under the node's block directory.
fn block_files(node_dir: &std::path::Path) -> usize {
    let blocks = node_dir.join("store").join("blocks");
    std::fs::read_dir(blocks)
        .map(|shards| {
            shards
                .flatten()
                .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |files| files.count()))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_broken_upload_resumes_where_the_node_stands_and_no_one_else_can_feed_it() {
    let net = Net::start();
    let owner = Keypair::dev(5);
    let intruder = Keypair::dev(6);
    let blob = pattern(6 * MIB as usize);
    let size = blob.len() as u64;
    let cid = aicpw_store::cid_of_reader(blob.as_slice(), &AddOptions::cid_v1())
        .expect("cid")
        .to_string();
    let chain = net.client.chain_id().expect("chain id");
    let sign = |key: &Keypair| UploadAuth::sign(key, &chain, "/store", &cid, size, now_ms());

    broken_put(&net.url, &sign(&owner), "/store", &cid, 0, &blob[..(2 * MIB) as usize]);
    // An empty part asks where the upload stands: part of what was sent arrived.
    let mut held = 0;
    wait_until(
        "the node notices the broken connection",
        Duration::from_secs(10),
        || match put_part(&net.url, &sign(&owner), "/store", &cid, 0, &[]) {
            Err((701, Some(at))) => {
                held = at;
                true
            }
            _ => false,
        },
    );
    assert!(held > 0 && held <= 2 * MIB, "the node holds {held} bytes");
    assert_eq!(store_bytes(&net, &owner), 0, "nothing is charged before the upload is whole");
    assert!(reject(net.client.get_store(&cid)).is_some(), "nothing is readable yet");

    // Another account signing the same content has no upload to resume: it cannot inject bytes.
    // (Short bodies: the node answers a refusal after reading at most 1 MiB of one.)
    let wrong = vec![0u8; 1000];
    assert_eq!(
        put_part(&net.url, &sign(&intruder), "/store", &cid, held, &wrong),
        Err((701, Some(0)))
    );
    // The owner at another offset than the node holds is refused with the right one.
    assert_eq!(
        put_part(&net.url, &sign(&owner), "/store", &cid, held + 1, &wrong),
        Err((701, Some(held)))
    );

    // The client resumes from where the node stands and the content arrives whole.
    let stored = net.client.upload(&owner, "/store", &cid, std::io::Cursor::new(&blob), size);
    assert_eq!(stored.expect("resumed"), cid);
    assert_eq!(net.client.get_store(&cid).expect("read back"), blob);
    // Charged once, for the file and its DAG's links.
    let charged = store_bytes(&net, &owner);
    assert!((size..size + 4096).contains(&charged), "charged {charged} bytes");
    assert_eq!(store_bytes(&net, &intruder), 0);
}

#[test]
fn malformed_oversize_and_too_many_uploads_are_refused_and_keep_nothing() {
    let net = Net::start();
    let key = Keypair::dev(7);
    let chain = net.client.chain_id().expect("chain id");
    let node_dir = net.dir.path().join("node");

    // A CAR file that is not one: its own code, nothing recorded.
    let (cid, mut car) = zero_bomb(MIB, 1024);
    car.truncate(car.len() / 2);
    car.extend_from_slice(&[0xff; 64]);
    let auth = UploadAuth::sign(&key, &chain, "/store/car", &cid, car.len() as u64, now_ms());
    assert_eq!(put_part(&net.url, &auth, "/store/car", &cid, 0, &car), Err((700, None)));
    // More bytes than signed: refused, and the upload is dropped (a new one starts at 0).
    let blob = pattern(300_000);
    let cid = aicpw_store::cid_of_reader(blob.as_slice(), &AddOptions::cid_v1())
        .expect("cid")
        .to_string();
    let auth = UploadAuth::sign(&key, &chain, "/store", &cid, 200_000, now_ms());
    broken_put(&net.url, &auth, "/store", &cid, 0, &blob[..1000]);
    let mut longer = blob[..200_000].to_vec();
    longer.extend_from_slice(&[1; 50_000]);
    let refused = ureq::put(&format!("{}/store?expect={cid}", net.url))
        .set(UPLOAD_HEADER, &auth.to_header())
        .set(UPLOAD_OFFSET_HEADER, "0")
        .send(&longer[..]);
    assert!(refused.is_err(), "a body longer than signed is refused");
    // Content that is not the signed CID: refused once whole.
    let auth = UploadAuth::sign(&key, &chain, "/store", &cid, 1000, now_ms());
    assert_eq!(put_part(&net.url, &auth, "/store", &cid, 0, &[9; 1000]), Err((903, None)));
    assert_eq!(store_bytes(&net, &key), 0);

    // Four unfinished uploads per account; a fifth is refused until one ends.
    let pending: Vec<String> = (0..4u8)
        .map(|index| {
            let bytes = vec![index; 100_000];
            let cid = aicpw_store::cid_of_reader(bytes.as_slice(), &AddOptions::cid_v1())
                .expect("cid")
                .to_string();
            let auth = UploadAuth::sign(&key, &chain, "/store", &cid, 100_000, now_ms());
            broken_put(&net.url, &auth, "/store", &cid, 0, &bytes[..10]);
            cid
        })
        .collect();
    let auth = UploadAuth::sign(&key, &chain, "/store", &cid, 300_000, now_ms());
    assert_eq!(put_part(&net.url, &auth, "/store", &cid, 0, &blob), Err((704, None)));
    assert_eq!(pending.len(), 4);
    // Another account is not held back by this one's.
    assert_eq!(net.client.put_store(&Keypair::dev(8), &blob).expect("stored"), cid);
    // Only the stored blob's blocks (two leaves, one root) were ever put in place.
    assert_eq!(block_files(&node_dir), 3);
}

#[test]
fn an_abandoned_upload_expires_and_a_crash_mid_upload_leaves_nothing_behind() {
    let mut net = Net::start_with(&["--store-upload-idle-secs", "1", "--store-hold-secs", "1"]);
    let key = Keypair::dev(9);
    let chain = net.client.chain_id().expect("chain id");
    let blob = pattern(4 * MIB as usize);
    let size = blob.len() as u64;
    let cid = aicpw_store::cid_of_reader(blob.as_slice(), &AddOptions::cid_v1())
        .expect("cid")
        .to_string();
    let sign = || UploadAuth::sign(&key, &chain, "/store", &cid, size, now_ms());
    broken_put(&net.url, &sign(), "/store", &cid, 0, &blob[..MIB as usize]);
    std::thread::sleep(Duration::from_millis(2500));
    // Expired: a new upload starts from 0 (the answer to an empty part).
    assert_eq!(put_part(&net.url, &sign(), "/store", &cid, 0, &[]), Err((702, Some(0))));
    assert_eq!(store_bytes(&net, &key), 0);

    // A crash while an upload is half there: after a restart nothing of it is readable,
    // charged or left in the store's temporary directory.
    broken_put(&net.url, &sign(), "/store", &cid, 0, &blob[..(2 * MIB) as usize]);
    let node_dir = net.dir.path().join("node");
    net.kill_node();
    net.restart_node(&["--store-hold-secs", "1"]);
    let temporary = node_dir.join("store").join("tmp");
    assert_eq!(std::fs::read_dir(&temporary).expect("tmp").count(), 0);
    assert_eq!(store_bytes(&net, &key), 0);
    assert_eq!(reject(net.client.get_store(&cid)), Some(Reject::NotFound));
    assert_eq!(block_files(&node_dir), 0, "no block of the cut upload was put in place");
    // And the upload can start over.
    let stored = net.client.upload(&key, "/store", &cid, std::io::Cursor::new(&blob), size);
    assert_eq!(stored.expect("uploaded"), cid);
}

#[test]
fn store_add_and_get_stream_a_file_and_get_checks_what_it_writes() {
    let net = Net::start();
    let key_path = net.key(10);
    let file = net.dir.path().join("big.bin");
    std::fs::write(&file, pattern(40 * MIB as usize)).expect("file");
    let path = file.to_str().expect("utf-8");
    let added = net.cli(&["store", "add", path, "--key", key_path.to_str().expect("utf-8")]);
    assert!(added.status.success(), "store add: {}", String::from_utf8_lossy(&added.stderr));
    let added = String::from_utf8_lossy(&added.stdout).trim().to_string();
    let offline = net.cli(&["store", "add", "--only-hash", path]);
    assert_eq!(String::from_utf8_lossy(&offline.stdout).trim(), added);
    let out = net.dir.path().join("copy.bin");
    let out_path = out.to_str().expect("utf-8");
    let got = net.cli(&["store", "get", &added, "--out", out_path]);
    assert!(got.status.success(), "store get: {}", String::from_utf8_lossy(&got.stderr));
    assert!(std::fs::read(&out).expect("copy") == std::fs::read(&file).expect("file"));
    // An existing destination is never overwritten.
    let again = net.cli(&["store", "get", &added, "--out", out_path]);
    assert!(!again.status.success());

    // A file built with other chunks than `ipfs add`'s does not hash to its CID as it streams
    // in: `store get` drops that copy and gets it again as a CAR file, every block checked.
    let (odd, car) = zero_bomb(3 * MIB, 4096);
    let body = std::io::Cursor::new(&car);
    net.client.upload(&Keypair::dev(10), "/store/car", &odd, body, car.len() as u64).expect("up");
    let odd_out = net.dir.path().join("odd.bin");
    let got = net.cli(&["store", "get", &odd, "--out", odd_out.to_str().expect("utf-8")]);
    assert!(got.status.success(), "store get: {}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(std::fs::read(&odd_out).expect("odd"), vec![0u8; 3 * MIB as usize]);
}
