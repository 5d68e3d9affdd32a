//! Inputs by reference: content added once (`store add --seal`) is named by CID in tasks, opened
//! only by the key its owner derives and grants per task, and kept in the provider's content
//! cache, so a second task on it starts without downloading it again. The real `aicpw` binary
//! as node, provider agent (real sandbox) and requester.

mod common;

use common::Net;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// Bytes the node's store routes served so far (its `/metrics` counter).
fn served_bytes(net: &Net) -> u64 {
    let text = ureq::get(&format!("{}/metrics", net.url)).call().expect("metrics");
    let text = text.into_string().expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("aicpw_store_served_bytes_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the served-bytes counter")
}

/// `size` bytes of a file that hashes differently at every 1 MiB: sparse zeros with a marker
/// written at each MiB, so a file of gigabytes is made in moments.
fn dataset(path: &Path, size: u64) {
    let mut file = std::fs::File::create(path).expect("dataset");
    file.set_len(size).expect("sparse");
    let mib = 1024 * 1024;
    for at in (0..size).step_by(mib as usize) {
        file.seek(SeekFrom::Start(at)).expect("seek");
        file.write_all(&at.to_le_bytes()).expect("marker");
    }
}

/// SHA-256 of a file by coreutils, independent of this code base.
fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a hash").to_string()
}

const HASH_INPUT: &str = "import hashlib, os\nh = hashlib.sha256()\nwith open('data.bin', 'rb') as f:\n    for block in iter(lambda: f.read(1 << 20), b''):\n        h.update(block)\nopen(os.path.join(os.environ['AICPW_OUTPUT_DIR'], 'out.txt'), 'w').write(h.hexdigest())\n";

/// Adds a dataset of `size` bytes sealed, runs two tasks that name it by CID on one provider,
/// and checks that both read it whole and that the node served it once.
fn two_tasks_on_one_dataset(size: u64, within: Duration) {
    let mut net = Net::start();
    net.provider(1, 3_600_000);
    net.wait_nodes(1);
    let data = net.dir.path().join("data.bin");
    dataset(&data, size);
    let expected = sha256_hex(&data);
    let key = net.key(0);
    let added = net.cli(&[
        "store",
        "add",
        "--seal",
        "--key",
        key.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let cid = String::from_utf8_lossy(&added.stdout).trim().to_string();
    std::fs::remove_file(&data).expect("the dataset's file is not needed any more");
    let extra = format!("inputs_by_cid: [{{cid: \"{cid}\", name: data.bin}}]\n");
    let disk_mb = size / (1024 * 1024) + 64;
    let with_disk = format!("{extra}resources: {{disk_mb: {disk_mb}}}\n");
    let file = net.task_file_limited("by-cid", HASH_INPUT, &with_disk, 300);

    let mut served_per_task = Vec::new();
    for _ in 0..2 {
        let before = served_bytes(&net);
        let id = net.submit(&file);
        net.wait_state(id, &["verifying", "completed"], within);
        served_per_task.push(served_bytes(&net) - before);
        let (out_dir, out) = net.fetch_result(id);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = std::fs::read_to_string(out_dir.join("out.txt")).expect("output");
        assert_eq!(got, expected, "the task read the dataset whole and decrypted");
    }
    assert!(served_per_task[0] > size, "the first task downloaded the sealed dataset");
    // Beside its dataset the node serves a task its bundle and the start of the dataset the
    // requester reads at submission to find its key: one chunk, but the node's stream and the
    // loopback socket's buffers take a few MiB more before the requester hangs up (2.8 MB seen).
    assert!(
        served_per_task[1] < size / 4,
        "the second task started from the cache: {served_per_task:?}"
    );
    // A task whose disk limit the dataset does not fit is refused by the provider before it
    // downloads or unpacks anything (an `inputs-unavailable` claim: the requester's fault).
    let small = format!("{extra}resources: {{disk_mb: 1}}\n");
    let file = net.task_file_limited("by-cid-small-disk", HASH_INPUT, &small, 300);
    let before = served_bytes(&net);
    let id = net.submit(&file);
    let task = net.wait_task(id, "an input claim", Duration::from_secs(60), |task| {
        task["input_claims"].as_array().is_some_and(|claims| !claims.is_empty())
    });
    assert_ne!(task["state"], "completed", "{task}");
    assert!(served_bytes(&net) - before < size / 4, "the dataset was not downloaded");
}

#[test]
fn a_sealed_dataset_named_by_cid_is_downloaded_once_for_two_tasks() {
    two_tasks_on_one_dataset(24 * 1024 * 1024 + 5, Duration::from_secs(60));
}

/// The case: a 2 GiB dataset. Ignored in `scripts/test.sh`: in a debug build on CI's 2
/// cores it takes many minutes (sealing, hashing and uploading 2 GiB, then downloading and
/// decrypting it twice) and about 8 GiB of disk; run it with `--ignored`.
#[test]
#[ignore = "2 GiB through a debug build: minutes and 8 GiB of disk; run with --ignored"]
fn a_two_gib_dataset_named_by_cid_runs_end_to_end_and_is_downloaded_once() {
    two_tasks_on_one_dataset(2 * 1024 * 1024 * 1024, Duration::from_secs(600));
}

/// A requester cannot name content the node does not hold (706), nor content another account
/// sealed (707: its key cannot be derived, so no provider could open it); either is refused
/// before anything is uploaded or paid.
#[test]
fn inputs_by_cid_missing_or_sealed_by_another_account_are_refused_before_paying() {
    let net = Net::start();
    let data = net.dir.path().join("theirs.bin");
    dataset(&data, 3 * 1024 * 1024);
    let theirs = net.key(1);
    let added = net.cli(&[
        "store",
        "add",
        "--seal",
        "--key",
        theirs.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let sealed_by_another = String::from_utf8_lossy(&added.stdout).trim().to_string();
    let offline = net.cli(&["store", "add", "--only-hash", data.to_str().expect("utf-8")]);
    let not_stored = String::from_utf8_lossy(&offline.stdout).trim().to_string();
    let balance = net.balance(0);
    for (cid, code) in [(not_stored, "706"), (sealed_by_another, "707")] {
        let extra = format!("inputs_by_cid: [{{cid: \"{cid}\", name: data.bin}}]\n");
        let file = net.task_file(&format!("refused-{code}"), HASH_INPUT, &extra);
        let key = net.key(0);
        let out = net.cli(&[
            "task",
            "submit",
            file.to_str().expect("utf-8"),
            "--key",
            key.to_str().expect("utf-8"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(code), "{code}: {stderr}");
    }
    assert_eq!(net.balance(0), balance, "nothing was paid");
}
