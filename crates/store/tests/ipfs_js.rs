//! The store's CIDs against those of an independent IPFS implementation: js-ipfs' UnixFS
//! importer (npm `ipfs-unixfs-importer`, installed into `tools/ipfs-cid` by `scripts/setup.sh`),
//! run on the same file with `ipfs add`'s defaults.

use aicpw_store::{cid_of_reader, AddOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ipfs-cid");
    assert!(
        tool.join("node_modules/ipfs-unixfs-importer").is_dir(),
        "the independent importer is missing: run scripts/setup.sh (npm ci in tools/ipfs-cid)"
    );
    tool
}

/// What js-ipfs says the CID of `file` is.
fn js_cid(file: &Path, version: u8) -> String {
    let output = Command::new("node")
        .arg(tool().join("cid.mjs"))
        .arg(file)
        .arg(version.to_string())
        .output()
        .expect("node runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_string()
}

/// Writes `size` bytes of a xorshift stream (no two chunks alike) to a file in `directory`.
fn test_file(directory: &Path, size: u64) -> PathBuf {
    let path = directory.join("content.bin");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("creates"));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in buffer.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buffer.len() as u64) as usize;
        file.write_all(&buffer[..n]).expect("writes");
        left -= n as u64;
    }
    file.flush().expect("flushes");
    path
}

fn ours(file: &Path, options: &AddOptions) -> String {
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("opens"));
    cid_of_reader(reader, options).expect("hashes").to_string()
}

fn compare(size: u64) {
    let directory = tempfile::tempdir().expect("tempdir");
    let file = test_file(directory.path(), size);
    assert_eq!(ours(&file, &AddOptions::cid_v1()), js_cid(&file, 1), "CIDv1 of {size} bytes");
    assert_eq!(ours(&file, &AddOptions::default()), js_cid(&file, 0), "CIDv0 of {size} bytes");
}

/// Sizes around the shapes that matter: empty, one chunk, a chunk and a byte, and a file that
/// needs a third level (more than 174 × 174 chunks would be 7.4 GiB; 174 chunks and one more
/// already needs a second level, 48 MiB).
#[test]
fn small_and_multi_level_files_have_the_cids_js_ipfs_gives() {
    for size in [0, 1, 262_144, 262_145, 174 * 262_144, 174 * 262_144 + 1] {
        compare(size);
    }
    compare(64 << 20);
}

/// A 1 GiB file (slow: run with `--ignored`; `aicpw bench store` checks the same on its files).
#[test]
#[ignore]
fn a_one_gib_file_has_the_cid_js_ipfs_gives() {
    compare(1 << 30);
}
