//! The on-disk store: round trips, integrity checks, directories, limits.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use aicpw_store::dagpb::{PbLink, PbNode};
use aicpw_store::unixfs::{DataType, UnixfsData};
use aicpw_store::{
    AddOptions, Cid, Codec, EntryKind, Store, StoreError, Version, BLOCK_SIZE_MAX, DAG_DEPTH_MAX,
    DIRECTORY_ENTRIES_MAX, PATH_DEPTH_MAX,
};
use common::pattern;

fn open_store() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path().join("store")).expect("opens");
    (directory, store)
}

fn read_back(store: &Store, cid: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    store.read_to_writer(cid, &mut out).expect("reads back");
    out
}

/// Every block file in the store.
fn block_files(store: &Store) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![store.path().join("blocks")];
    while let Some(directory) = pending.pop() {
        for entry in fs::read_dir(&directory).expect("lists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn files_of_every_boundary_size_read_back_identically() {
    let (_directory, store) = open_store();
    for size in [0, 1, 262_143, 262_144, 262_145, 3 * 262_144 + 17] {
        let bytes = pattern(size);
        for options in [AddOptions::default(), AddOptions::cid_v1()] {
            let cid = store.add_bytes(&bytes, &options).expect("adds");
            assert_eq!(read_back(&store, &cid), bytes, "size {size} {options:?}");
            let stat = store.stat(&cid).expect("stats");
            assert_eq!((stat.kind, stat.size), (EntryKind::File, size as u64));
            assert!(store.has(&cid).expect("checks"));
        }
    }
}

#[test]
fn a_file_needing_two_tree_levels_reads_back_identically() {
    // 174 * 262144 + 1 bytes: one chunk more than a single level of 174 links holds.
    let (_directory, store) = open_store();
    let bytes = pattern(174 * 262_144 + 1);
    let cid = store.add_reader(&bytes[..], &AddOptions::default()).expect("adds");
    assert_eq!(
        store.stat(&cid).expect("stats").links,
        2,
        "root has the full subtree and the spill-over"
    );
    assert!(read_back(&store, &cid) == bytes, "bytes differ");
}

#[test]
fn adding_the_same_bytes_twice_gives_the_same_cid_and_no_new_blocks() {
    let (_directory, store) = open_store();
    let bytes = pattern(600_000);
    let first = store.add_bytes(&bytes, &AddOptions::default()).expect("adds");
    let files = block_files(&store).len();
    let second = store.add_bytes(&bytes, &AddOptions::default()).expect("adds");
    assert_eq!(first, second);
    assert_eq!(block_files(&store).len(), files);
}

#[test]
fn a_corrupted_block_is_detected_on_read() {
    let (_directory, store) = open_store();
    let cid = store.add_bytes(b"precious bytes", &AddOptions::default()).expect("adds");
    let files = block_files(&store);
    assert_eq!(files.len(), 1);
    let mut bytes = fs::read(&files[0]).expect("reads");
    bytes[7] ^= 0x01;
    fs::write(&files[0], bytes).expect("writes");
    let error = store.read_to_writer(&cid, Vec::new()).expect_err("corruption is caught");
    assert!(matches!(error, StoreError::BlockCorrupted { cid: found } if found == cid), "{error}");
    assert!(matches!(store.get_block(&cid), Err(StoreError::BlockCorrupted { .. })));
}

#[test]
fn a_truncated_leaf_deep_in_a_file_is_detected_on_read() {
    let (_directory, store) = open_store();
    let cid = store.add_bytes(&pattern(3 * 262_144), &AddOptions::cid_v1()).expect("adds");
    let leaf = block_files(&store)
        .into_iter()
        .find(|path| fs::metadata(path).expect("stat").len() == 262_144);
    let leaf = leaf.expect("a raw leaf of one full chunk");
    fs::write(&leaf, &fs::read(&leaf).expect("reads")[..1000]).expect("truncates");
    let error = store.read_to_writer(&cid, Vec::new()).expect_err("truncation is caught");
    assert!(matches!(error, StoreError::BlockCorrupted { .. }), "{error}");
}

#[test]
fn a_missing_block_is_reported_by_cid() {
    let (_directory, store) = open_store();
    let cid =
        aicpw_store::cid_of_reader(&b"never stored"[..], &AddOptions::default()).expect("hashes");
    assert!(!store.has(&cid).expect("checks"));
    let error = store.read_to_writer(&cid, Vec::new()).expect_err("absent");
    assert!(matches!(error, StoreError::BlockNotFound { cid: found } if found == cid));
}

#[test]
fn blocks_are_checked_against_their_cid_when_put() {
    let (_directory, store) = open_store();
    let cid = Cid::for_block(Version::V1, Codec::Raw, b"right").expect("cid");
    assert!(matches!(store.put_block(&cid, b"wrong"), Err(StoreError::BlockHashMismatch { .. })));
    store.put_block(&cid, b"right").expect("stores");
    assert_eq!(store.get_block(&cid).expect("reads"), b"right");
    let huge = vec![0u8; BLOCK_SIZE_MAX + 1];
    let huge_cid = Cid::for_block(Version::V1, Codec::Raw, &huge).expect("cid");
    assert!(matches!(store.put_block(&huge_cid, &huge), Err(StoreError::BlockTooLarge { .. })));
}

#[test]
fn v0_and_v1_of_the_same_block_share_storage() {
    let (_directory, store) = open_store();
    let cid = store.add_bytes(b"shared", &AddOptions::default()).expect("adds");
    assert_eq!(cid.version(), Version::V0);
    assert!(store.has(&cid.to_v1()).expect("checks"));
    assert_eq!(read_back(&store, &cid.to_v1()), b"shared");
}

#[test]
fn reopening_keeps_blocks_and_a_foreign_directory_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let cid = Store::open(directory.path())
        .expect("opens")
        .add_bytes(b"kept", &AddOptions::default())
        .expect("adds");
    let reopened = Store::open(directory.path()).expect("reopens");
    assert_eq!(read_back(&reopened, &cid), b"kept");
    fs::write(directory.path().join("FORMAT"), "something else\n").expect("writes");
    assert!(matches!(Store::open(directory.path()), Err(StoreError::StoreFormatUnknown { .. })));
}

fn write(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

fn build_tree(root: &Path) {
    write(&root.join("readme.txt"), b"read me\n");
    write(&root.join("data/big.bin"), &pattern(700_000));
    write(&root.join("data/empty"), b"");
    write(&root.join("data/deeper/leaf.txt"), b"leaf\n");
    fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
}

fn assert_same_tree(expected: &Path, actual: &Path) {
    let mut names: Vec<_> = fs::read_dir(expected)
        .expect("lists")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    names.sort();
    let mut actual_names: Vec<_> = fs::read_dir(actual)
        .expect("lists")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    actual_names.sort();
    assert_eq!(names, actual_names, "{}", actual.display());
    for name in names {
        let (left, right) = (expected.join(&name), actual.join(&name));
        if left.is_dir() {
            assert_same_tree(&left, &right);
        } else {
            assert!(
                fs::read(&left).expect("reads") == fs::read(&right).expect("reads"),
                "{}",
                right.display()
            );
        }
    }
}

#[test]
fn a_directory_tree_round_trips_through_get_to_path() {
    let (directory, store) = open_store();
    let source = directory.path().join("source");
    build_tree(&source);
    for (index, options) in [AddOptions::default(), AddOptions::cid_v1()].into_iter().enumerate() {
        let cid = store.add_path(&source, &options).expect("adds");
        assert_eq!(store.stat(&cid).expect("stats").kind, EntryKind::Directory);
        assert_eq!(store.stat(&cid).expect("stats").links, 3);
        let target = directory.path().join(format!("target-{index}"));
        store.get_to_path(&cid, &target).expect("gets");
        assert_same_tree(&source, &target);
    }
}

#[test]
fn get_to_path_never_overwrites() {
    let (directory, store) = open_store();
    let cid = store.add_bytes(b"new", &AddOptions::default()).expect("adds");
    let target = directory.path().join("existing");
    fs::write(&target, b"old").expect("writes");
    assert!(matches!(store.get_to_path(&cid, &target), Err(StoreError::DestinationExists { .. })));
    assert_eq!(fs::read(&target).expect("reads"), b"old");
}

#[test]
fn hidden_entries_are_skipped_unless_asked_for() {
    let (directory, store) = open_store();
    let source = directory.path().join("source");
    write(&source.join("visible"), b"v");
    write(&source.join(".hidden"), b"h");
    let without = store.add_path(&source, &AddOptions::default()).expect("adds");
    assert_eq!(store.stat(&without).expect("stats").links, 1);
    let with = store
        .add_path(&source, &AddOptions { include_hidden: true, ..AddOptions::default() })
        .expect("adds");
    assert_eq!(store.stat(&with).expect("stats").links, 2);
}

#[cfg(unix)]
#[test]
fn symlinks_are_stored_as_unixfs_symlinks_and_restored() {
    let (directory, store) = open_store();
    let source = directory.path().join("source");
    write(&source.join("target.txt"), b"t");
    std::os::unix::fs::symlink("target.txt", source.join("link")).expect("symlinks");
    let cid = store.add_path(&source, &AddOptions::default()).expect("adds");
    let restored = directory.path().join("restored");
    store.get_to_path(&cid, &restored).expect("gets");
    assert_eq!(fs::read_link(restored.join("link")).expect("is a link"), Path::new("target.txt"));
    let link_cid = store.add_path(source.join("link"), &AddOptions::default()).expect("adds");
    let stat = store.stat(&link_cid).expect("stats");
    assert_eq!((stat.kind, stat.size), (EntryKind::Symlink, 10));
    assert!(matches!(
        store.read_to_writer(&link_cid, Vec::new()),
        Err(StoreError::NotAFile { .. })
    ));
}

#[test]
fn reading_a_directory_as_a_file_is_refused() {
    let (directory, store) = open_store();
    write(&directory.path().join("tree/file"), b"f");
    let cid = store.add_path(directory.path().join("tree"), &AddOptions::default()).expect("adds");
    let error = store.read_to_writer(&cid, Vec::new()).expect_err("not a file");
    assert!(matches!(error, StoreError::NotAFile { kind: "directory", .. }), "{error}");
}

fn put_node(store: &Store, links: Vec<PbLink>, message: &UnixfsData) -> Cid {
    let block = PbNode { links, data: Some(message.encode()) }.encode();
    let cid = Cid::for_block(Version::V0, Codec::DagPb, &block).expect("cid");
    store.put_block(&cid, &block).expect("stores");
    cid
}

fn file_message(data: Option<&[u8]>, filesize: u64, blocksizes: Vec<u64>) -> UnixfsData {
    let mut message = UnixfsData::new(DataType::File);
    message.data = data.map(<[u8]>::to_vec);
    message.filesize = Some(filesize);
    message.blocksizes = blocksizes;
    message
}

fn link(cid: Cid, tsize: u64) -> PbLink {
    PbLink { hash: cid, name: Some(String::new()), tsize: Some(tsize) }
}

#[test]
fn a_parent_lying_about_sizes_is_refused() {
    let (_directory, store) = open_store();
    let leaf = put_node(&store, vec![], &file_message(Some(b"abc"), 3, vec![]));
    let lying_blocksizes = put_node(&store, vec![link(leaf, 11)], &file_message(None, 4, vec![4]));
    let error = store.read_to_writer(&lying_blocksizes, Vec::new()).expect_err("caught");
    assert!(matches!(error, StoreError::DagInconsistent { .. }), "{error}");
    let lying_filesize = put_node(&store, vec![link(leaf, 11)], &file_message(None, 9, vec![3]));
    assert!(matches!(
        store.read_to_writer(&lying_filesize, Vec::new()),
        Err(StoreError::DagInconsistent { .. })
    ));
    let missing_blocksizes = put_node(&store, vec![link(leaf, 11)], &file_message(None, 3, vec![]));
    assert!(matches!(
        store.read_to_writer(&missing_blocksizes, Vec::new()),
        Err(StoreError::DagInconsistent { .. })
    ));
}

#[test]
fn a_dag_deeper_than_the_limit_is_refused() {
    let (_directory, store) = open_store();
    let mut cid = put_node(&store, vec![], &file_message(Some(b"x"), 1, vec![]));
    for _ in 0..=DAG_DEPTH_MAX {
        cid = put_node(&store, vec![link(cid, 0)], &file_message(None, 1, vec![1]));
    }
    let error = store.read_to_writer(&cid, Vec::new()).expect_err("too deep");
    assert!(matches!(error, StoreError::DagTooDeep { .. }), "{error}");
}

#[test]
fn a_directory_entry_that_would_escape_the_target_is_refused() {
    let (directory, store) = open_store();
    let file = store.add_bytes(b"payload", &AddOptions::default()).expect("adds");
    for evil in ["../escaped", "a/b", "..", ""] {
        let entry = PbLink { hash: file, name: Some(evil.to_string()), tsize: Some(0) };
        let evil_directory = put_node(&store, vec![entry], &UnixfsData::new(DataType::Directory));
        let target = directory.path().join("target").join(evil.len().to_string());
        fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let error = store.get_to_path(&evil_directory, &target).expect_err("refused");
        assert!(matches!(error, StoreError::NameInvalid { .. }), "{evil:?}: {error}");
    }
    assert!(!directory.path().join("escaped").exists());
}

#[test]
fn nesting_deeper_than_the_path_limit_is_refused() {
    let (directory, store) = open_store();
    let mut deep = directory.path().join("deep");
    for _ in 0..=PATH_DEPTH_MAX {
        deep.push("d");
    }
    fs::create_dir_all(&deep).expect("mkdir");
    let error = store
        .add_path(directory.path().join("deep"), &AddOptions::default())
        .expect_err("too deep");
    assert!(matches!(error, StoreError::PathTooDeep { .. }), "{error}");
}

#[test]
fn a_directory_with_too_many_entries_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    for index in 0..=DIRECTORY_ENTRIES_MAX {
        fs::write(directory.path().join(index.to_string()), b"").expect("writes");
    }
    let error =
        aicpw_store::cid_of_path(directory.path(), &AddOptions::default()).expect_err("too many");
    assert!(matches!(error, StoreError::DirectoryTooManyEntries { .. }), "{error}");
}

#[cfg(unix)]
#[test]
fn special_files_are_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let socket_path = directory.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).expect("binds");
    let error =
        aicpw_store::cid_of_path(&socket_path, &AddOptions::default()).expect_err("refused");
    assert!(matches!(error, StoreError::FileTypeUnsupported { .. }), "{error}");
}

#[test]
fn collection_keeps_live_blocks_and_those_of_uploads_not_yet_recorded() {
    let (_directory, store) = open_store();
    let options = AddOptions::cid_v1();
    let mut kept = store.upload();
    let kept_cid = kept.add_reader(pattern(600_000).as_slice(), &options).expect("adds");
    kept.commit().expect("commits");
    let live: Vec<Cid> = kept.blocks().to_vec();
    drop(kept);
    let mut junk = store.upload();
    let junk_cid =
        junk.add_reader(pattern(300_000).as_slice(), &AddOptions::default()).expect("adds");
    junk.commit().expect("commits");
    drop(junk);
    let mut running = store.upload();
    let running_cid = running.add_reader(&b"still uploading"[..], &options).expect("adds");
    running.commit().expect("commits");

    // An upload that ended before the collection began stays only if `live` names it.
    let collected = store.collect(|| Ok::<_, StoreError>(live.clone())).expect("collects");
    assert!(collected.blocks > 0);
    assert_eq!(read_back(&store, &kept_cid), pattern(600_000));
    assert!(!store.has(&junk_cid).expect("has"));
    assert!(store.has(&running_cid).expect("held while running"));

    // An upload that ends while a collection runs keeps its blocks through that collection.
    let collected = store
        .collect(|| {
            drop(running);
            Ok::<_, StoreError>(live.clone())
        })
        .expect("collects");
    assert_eq!(collected.blocks, 0);
    assert!(store.has(&running_cid).expect("kept"));
    store.collect(|| Ok::<_, StoreError>(live.clone())).expect("collects");
    assert!(!store.has(&running_cid).expect("gone once unrecorded"));
}

#[test]
fn expanded_size_counts_every_repeat_of_a_chunk() {
    let (_directory, store) = open_store();
    let zeros = 64 * 262_144u64;
    let cid = store
        .add_reader(std::io::Read::take(std::io::repeat(0), zeros), &AddOptions::default())
        .expect("adds");
    let expanded = store.expanded_size(&cid).expect("expands");
    assert!(expanded >= zeros, "{expanded} < {zeros}");
    assert!(block_files(&store).len() <= 3, "one chunk stored once");
}

#[test]
fn an_upload_not_committed_leaves_nothing_and_a_crash_leftover_is_cleared_on_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path()).expect("opens");
    let bytes = pattern(700_000);
    let mut abandoned = store.upload();
    let cid = abandoned.add_reader(bytes.as_slice(), &AddOptions::cid_v1()).expect("adds");
    assert!(!store.has(&cid).expect("has"), "uncommitted blocks are not readable");
    let temporary = directory.path().join("tmp");
    assert!(fs::read_dir(&temporary).expect("lists").count() > 0, "staged in tmp/");
    drop(abandoned);
    assert_eq!(fs::read_dir(&temporary).expect("lists").count(), 0, "dropped upload cleans up");

    // A crash between staging and commit leaves files in tmp/: the next open removes them.
    let mut crashed = store.upload();
    crashed.add_reader(bytes.as_slice(), &AddOptions::cid_v1()).expect("adds");
    std::mem::forget(crashed);
    assert!(fs::read_dir(&temporary).expect("lists").count() > 0);
    let reopened = Store::open(directory.path()).expect("reopens");
    assert_eq!(fs::read_dir(&temporary).expect("lists").count(), 0, "leftovers cleared");
    assert!(!reopened.has(&cid).expect("has"));

    let mut committed = reopened.upload();
    assert_eq!(committed.add_reader(bytes.as_slice(), &AddOptions::cid_v1()).expect("adds"), cid);
    committed.commit().expect("commits");
    drop(committed);
    assert_eq!(read_back(&reopened, &cid), bytes);
}
