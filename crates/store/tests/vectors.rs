//! CIDs computed by this crate must equal the CIDs kubo (`ipfs add`) publishes for the same
//! input. Every expected value below is copied from a public source named next to it.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use aicpw_store::{cid_of_path, cid_of_reader, AddOptions, Cid, StoreError, Version};
use common::{deterministic, DeterministicBytes};

// Sources: SHARNESS is kubo's test/sharness/t0040-add-and-cat.sh; CID_PROFILES is kubo's
// test/cli/cid_profiles_test.go, profile unixfs-v0-2015 (kubo's default) unless stated.
const SHARNESS: &str = "kubo t0040-add-and-cat.sh";

fn add(bytes: &[u8], options: &AddOptions) -> String {
    cid_of_reader(bytes, options).expect("adding from memory succeeds").to_string()
}

fn raw_leaves() -> AddOptions {
    AddOptions { raw_leaves: Some(true), ..AddOptions::default() }
}

fn v1_without_raw_leaves() -> AddOptions {
    AddOptions { raw_leaves: Some(false), ..AddOptions::cid_v1() }
}

#[test]
fn chacha20_keystream_matches_rfc_8439_zero_key_vector() {
    // RFC 8439 appendix A.1, test vector #1: all-zero key and nonce, block counter 0.
    let mut stream = DeterministicBytes::with_key([0; 32], 32);
    let mut out = [0u8; 32];
    stream.read_exact(&mut out).expect("32 bytes");
    let hex: String = out.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(hex, "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7");
}

#[test]
fn empty_file_matches_kubo_default_and_raw_leaves() {
    // SHARNESS: "zero length file has correct hash", default and --raw-leaves.
    assert_eq!(add(b"", &AddOptions::default()), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
    assert_eq!(
        add(b"", &raw_leaves()),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
}

#[test]
fn hello_world_matches_published_cids() {
    // kubo README ("Some things to try"): `echo "hello world" > hello; ipfs add hello`.
    assert_eq!(
        add(b"hello world\n", &AddOptions::default()),
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    );
    // boxo examples/gateway/car-file/main_test.go serves "hello world\n" at this raw CID,
    // which is what `ipfs add --cid-version=1` (raw leaves) produces for a single chunk.
    assert_eq!(
        add(b"hello world\n", &AddOptions::cid_v1()),
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    );
    // CID_PROFILES: SmallFileCID for "hello world" (no newline) in both profiles.
    assert_eq!(
        add(b"hello world", &AddOptions::default()),
        "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    );
    assert_eq!(
        add(b"hello world", &AddOptions::cid_v1()),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
}

#[test]
fn small_files_match_kubo_sharness() {
    let cases: [(&[u8], &str); 6] = [
        (b"Hello Worlds!\n", "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"),
        (b"Helloo Worlds!\n", "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ"),
        (b"IPFS\n", "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w"),
        (b"Hello Venus!\n", "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4"),
        (b"Hello Jupiter!\n", "QmUnvPcBctVTAcJpigv6KMqDvmDewksPWrNVoy1E1WP5fh"),
        (b"Hello Neptune!\nHello Pluton!", "QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3"),
    ];
    for (content, expected) in cases {
        assert_eq!(add(content, &AddOptions::default()), expected, "{SHARNESS}: {content:?}");
    }
}

#[test]
fn leaf_variants_match_kubo_sharness() {
    // SHARNESS add_directory: MARS = "Hello Mars!\n" under each set of flags.
    let mars = b"Hello Mars!\n";
    assert_eq!(add(mars, &AddOptions::default()), "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN");
    assert_eq!(
        add(mars, &raw_leaves()),
        "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4"
    );
    assert_eq!(
        add(mars, &AddOptions::cid_v1()),
        "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4"
    );
    assert_eq!(
        add(mars, &v1_without_raw_leaves()),
        "bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4"
    );
    let venus = b"Hello Venus!\n";
    assert_eq!(
        add(venus, &v1_without_raw_leaves()),
        "bafybeicvkvhs2fr75ynebtdjqpgm4g2fc63abqbmysupwpmcjl4gx7mzrm"
    );
}

#[test]
fn base32_output_of_a_v0_add_is_its_cidv1() {
    // SHARNESS: `ipfs add --cid-base=base32` of "base32 test\n" upgrades the CIDv0 for display.
    let cid = cid_of_reader(&b"base32 test\n"[..], &AddOptions::default()).expect("adds");
    assert_eq!(cid.version(), Version::V0);
    assert_eq!(
        cid.to_v1().to_string(),
        "bafybeibyosqxljd2eptb4ebbtvk7pb4aoxzqa6ttdsflty6rsslz5y6i34"
    );
}

#[test]
fn file_of_exactly_one_chunk_matches_kubo() {
    // CID_PROFILES: FileAtChunkSizeCID, 262144 bytes with seed "chunk-v0-seed".
    let bytes = deterministic("chunk-v0-seed", 262_144);
    assert_eq!(
        add(&bytes, &AddOptions::default()),
        "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"
    );
}

#[test]
fn file_one_byte_over_a_chunk_matches_kubo() {
    // CID_PROFILES: FileOverChunkSizeCID, 262145 bytes with seed "chunk-v0-seed" (two leaves).
    let bytes = deterministic("chunk-v0-seed", 262_145);
    assert_eq!(
        add(&bytes, &AddOptions::default()),
        "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"
    );
}

#[test]
fn file_filling_exactly_174_links_matches_kubo() {
    // CID_PROFILES: FileAtMaxLinksCID, 174 * 262144 bytes with seed "v0-seed".
    let reader = DeterministicBytes::new("v0-seed", 174 * 262_144);
    let cid = cid_of_reader(reader, &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2");
}

#[test]
fn file_one_byte_over_174_links_gets_a_second_level_like_kubo() {
    // CID_PROFILES: FileOverMaxLinksCID, 174 * 262144 + 1 bytes with seed "v0-seed".
    let reader = DeterministicBytes::new("v0-seed", 174 * 262_144 + 1);
    let cid = cid_of_reader(reader, &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW");
}

#[test]
fn file_of_175_full_chunks_matches_kubo() {
    // An earlier revision of CID_PROFILES: FileOverMaxLinksCID for "44800KiB" (175 chunks),
    // seed "v0-seed", same generator.
    let reader = DeterministicBytes::new("v0-seed", 175 * 262_144);
    let cid = cid_of_reader(reader, &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf");
}

#[test]
fn cid_v1_with_one_mib_chunks_matches_the_unixfs_v1_2025_profile() {
    // CID_PROFILES, profile unixfs-v1-2025 (CIDv1, raw leaves, 1 MiB chunks, 1024 links):
    // FileAtChunkSizeCID and FileOverChunkSizeCID with seed "chunk-v1-seed".
    let options =
        AddOptions { chunk_size: 1_048_576, file_node_links: 1024, ..AddOptions::cid_v1() };
    let at = deterministic("chunk-v1-seed", 1_048_576);
    assert_eq!(add(&at, &options), "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta");
    let over = deterministic("chunk-v1-seed", 1_048_577);
    assert_eq!(add(&over, &options), "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64");
}

fn write(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().expect("test paths have a parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

#[test]
fn planets_directory_matches_kubo_under_every_leaf_option() {
    // SHARNESS add_directory: planets/{mars.txt,venus.txt}, PLANETS under four sets of flags.
    let temporary = tempfile::tempdir().expect("tempdir");
    let planets = temporary.path().join("planets");
    write(&planets.join("mars.txt"), b"Hello Mars!\n");
    write(&planets.join("venus.txt"), b"Hello Venus!\n");
    let cases = [
        (AddOptions::default(), "QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY"),
        (raw_leaves(), "QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT"),
        (AddOptions::cid_v1(), "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi"),
        (v1_without_raw_leaves(), "bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y"),
    ];
    for (options, expected) in cases {
        assert_eq!(
            cid_of_path(&planets, &options).expect("adds").to_string(),
            expected,
            "{options:?}"
        );
    }
}

#[test]
fn nested_directories_match_kubo() {
    // SHARNESS "'ipfs add -rn' output looks good": moons/{jupiter/europa.txt,
    // saturn/titan.txt, mercury.txt}.
    let temporary = tempfile::tempdir().expect("tempdir");
    let moons = temporary.path().join("moons");
    write(&moons.join("jupiter/europa.txt"), b"Hello Europa!\n");
    write(&moons.join("saturn/titan.txt"), b"Hello Titan!\n");
    write(&moons.join("mercury.txt"), b"hey youre no moon!\n");
    let cid = |path: &Path| cid_of_path(path, &AddOptions::default()).expect("adds").to_string();
    assert_eq!(
        cid(&moons.join("jupiter/europa.txt")),
        "Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu"
    );
    assert_eq!(
        cid(&moons.join("saturn/titan.txt")),
        "QmZzppb9WHn552rmRqpPfgU5FEiHH6gDwi3MrB9cTdPwdb"
    );
    assert_eq!(cid(&moons.join("mercury.txt")), "QmUJjVtnN8YEeYcS8VmUeWffTWhnMQAkk5DzZdKnPhqUdK");
    assert_eq!(cid(&moons.join("jupiter")), "QmS5mZddhFPLWFX3w6FzAy9QxyYkaxvUpsWCtZ3r7jub9J");
    assert_eq!(cid(&moons.join("saturn")), "QmaMagZT4rTE7Nonw8KGSK4oe1bh533yhZrCo1HihSG8FK");
    assert_eq!(cid(&moons), "QmVKvomp91nMih5j6hYBA8KjbiaYvEetU2Q7KvtZkLe9nQ");
}

#[test]
fn current_directory_add_matches_kubo() {
    // SHARNESS "ipfs add -r .": hey = "Hey\n", hello/world = "World\n".
    let temporary = tempfile::tempdir().expect("tempdir");
    let root = temporary.path().join("test_current_dir");
    write(&root.join("hey"), b"Hey\n");
    write(&root.join("hello/world"), b"World\n");
    let cid = cid_of_path(&root, &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1");
}

#[test]
fn empty_directory_matches_the_well_known_cid() {
    // kubo core/commands/object/patch.go: its help text copies the empty directory
    // /ipfs/QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn into MFS.
    let temporary = tempfile::tempdir().expect("tempdir");
    let cid = cid_of_path(temporary.path(), &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
}

/// Kubo's harness names: `AlphabetEasy[byte % 39]` over the ChaCha20 stream of the seed.
fn hamt_threshold_directory(root: &Path, files: usize, name_length: usize, seed: &str) {
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz01234567890-_".chars().collect();
    let mut stream = DeterministicBytes::new(seed, 1 << 20);
    fs::create_dir_all(root).expect("mkdir");
    for _ in 0..files {
        let mut raw = vec![0u8; name_length];
        stream.read_exact(&mut raw).expect("stream is long enough");
        let name: String =
            raw.iter().map(|&byte| alphabet[usize::from(byte) % alphabet.len()]).collect();
        fs::write(root.join(name), b"x").expect("write");
    }
}

#[test]
fn directory_exactly_at_the_sharding_threshold_matches_kubo() {
    // CID_PROFILES: DirBasicCID, 4096 files named from seed "hamt-unixfs-v0-2015",
    // 30 characters each, content "x": links size 4096 * (30 + 34) = 262144.
    let temporary = tempfile::tempdir().expect("tempdir");
    let root = temporary.path().join("dir");
    hamt_threshold_directory(&root, 4096, 30, "hamt-unixfs-v0-2015");
    let cid = cid_of_path(&root, &AddOptions::default()).expect("adds");
    assert_eq!(cid.to_string(), "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN");
}

#[test]
fn directory_one_byte_over_the_sharding_threshold_is_refused() {
    // CID_PROFILES: 4033 names of 31 characters make 262145 bytes, where kubo builds a
    // HAMT shard; this store does not, so it must refuse rather than return another CID.
    let temporary = tempfile::tempdir().expect("tempdir");
    let root = temporary.path().join("dir");
    hamt_threshold_directory(&root, 4033, 31, "hamt-unixfs-v0-2015");
    let error = cid_of_path(&root, &AddOptions::default()).expect_err("needs a HAMT");
    assert!(matches!(error, StoreError::DirectoryNeedsSharding { size: 262_145, .. }), "{error}");
}

#[test]
fn parsing_published_cids_round_trips_their_text() {
    for text in [
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi",
    ] {
        let cid: Cid = text.parse().expect("published CIDs parse");
        assert_eq!(cid.to_string(), text);
    }
}
