//! CARv1 export and import.

mod common;

use std::fs;

use aicpw_store::car::{self, CarHeader};
use aicpw_store::{
    AddOptions, Cid, Codec, Store, StoreError, Version, CAR_HEADER_SIZE_MAX, CAR_SECTION_SIZE_MAX,
};
use common::pattern;
use proptest::prelude::*;

fn open_store() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path().join("store")).expect("opens");
    (directory, store)
}

fn export(store: &Store, root: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_car(root, &mut out).expect("exports");
    out
}

#[test]
fn a_file_exported_to_car_imports_into_a_fresh_store_with_the_same_root_and_bytes() {
    let (_first_directory, first) = open_store();
    let bytes = pattern(5 * 262_144 + 99);
    for options in [AddOptions::default(), AddOptions::cid_v1()] {
        let root = first.add_bytes(&bytes, &options).expect("adds");
        let archive = export(&first, &root);
        let (_second_directory, second) = open_store();
        assert_eq!(second.import_car(&archive[..]).expect("imports"), vec![root]);
        let mut out = Vec::new();
        second.read_to_writer(&root, &mut out).expect("reads");
        assert!(out == bytes, "bytes differ after CAR round trip");
    }
}

#[test]
fn a_directory_exported_to_car_imports_with_every_block() {
    let (directory, first) = open_store();
    let source = directory.path().join("source");
    fs::create_dir_all(source.join("sub")).expect("mkdir");
    fs::write(source.join("a.txt"), b"a").expect("writes");
    fs::write(source.join("sub/b.bin"), pattern(300_000)).expect("writes");
    fs::write(source.join("sub/same.txt"), b"a").expect("writes");
    let root = first.add_path(&source, &AddOptions::default()).expect("adds");
    let archive = export(&first, &root);
    let (target_directory, second) = open_store();
    assert_eq!(second.import_car(&archive[..]).expect("imports"), vec![root]);
    let target = target_directory.path().join("out");
    second.get_to_path(&root, &target).expect("gets");
    assert_eq!(fs::read(target.join("sub/b.bin")).expect("reads"), pattern(300_000));
    assert_eq!(fs::read(target.join("sub/same.txt")).expect("reads"), b"a");
}

#[test]
fn export_writes_each_block_once_root_first() {
    let (_directory, store) = open_store();
    // Four identical chunks share one leaf block: root + one leaf.
    let root = store.add_bytes(&vec![0u8; 4 * 262_144], &AddOptions::cid_v1()).expect("adds");
    let mut out = Vec::new();
    let summary = store.export_car(&root, &mut out).expect("exports");
    assert_eq!(summary.blocks, 2);
    let mut reader = &out[..];
    car::read_header(&mut reader).expect("header");
    let (first, _) = car::read_section(&mut reader).expect("reads").expect("a section");
    assert_eq!(first, root);
    let (second, block) = car::read_section(&mut reader).expect("reads").expect("a section");
    assert_eq!((second.codec(), block.len()), (Codec::Raw, 262_144));
    assert!(car::read_section(&mut reader).expect("reads").is_none());
}

#[test]
fn the_header_is_the_dag_cbor_map_the_car_spec_describes() {
    let root = Cid::for_block(Version::V1, Codec::DagPb, b"x").expect("cid");
    let mut out = Vec::new();
    car::write_header(&mut out, &[root]).expect("writes");
    let mut expected = vec![0x3a, 0xa2, 0x65];
    expected.extend_from_slice(b"roots");
    expected.extend_from_slice(&[0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]);
    expected.extend_from_slice(&root.to_bytes());
    expected.push(0x67);
    expected.extend_from_slice(b"version");
    expected.push(0x01);
    assert_eq!(out, expected);
    assert_eq!(
        car::read_header(&mut &out[..]).expect("reads"),
        CarHeader { version: 1, roots: vec![root] }
    );
}

#[test]
fn a_car_with_a_tampered_block_is_rejected() {
    let (_directory, store) = open_store();
    let root = store.add_bytes(&pattern(2 * 262_144), &AddOptions::default()).expect("adds");
    let mut archive = export(&store, &root);
    let last = archive.len() - 10;
    archive[last] ^= 0xff;
    let (_fresh_directory, fresh) = open_store();
    let error = fresh.import_car(&archive[..]).expect_err("tampered");
    assert!(matches!(error, StoreError::CarBlockHashMismatch { .. }), "{error}");
}

#[test]
fn a_car_without_its_root_block_is_rejected() {
    let (_directory, store) = open_store();
    let root = store.add_bytes(b"present", &AddOptions::default()).expect("adds");
    let other = store.add_bytes(b"claimed", &AddOptions::default()).expect("adds");
    let mut archive = Vec::new();
    car::write_header(&mut archive, &[other]).expect("writes");
    car::write_section(&mut archive, &root, &store.get_block(&root).expect("reads"))
        .expect("writes");
    let (_fresh_directory, fresh) = open_store();
    let error = fresh.import_car(&archive[..]).expect_err("root missing");
    assert!(matches!(error, StoreError::CarRootMissing { cid } if cid == other), "{error}");
}

#[test]
fn a_truncated_car_is_rejected() {
    let (_directory, store) = open_store();
    let root = store.add_bytes(&pattern(1000), &AddOptions::default()).expect("adds");
    let archive = export(&store, &root);
    for cut in [1, 10, archive.len() - 1] {
        let (_fresh_directory, fresh) = open_store();
        let error = fresh.import_car(&archive[..cut]).expect_err("truncated");
        assert!(matches!(error, StoreError::CarTruncated), "cut at {cut}: {error}");
    }
}

#[test]
fn malformed_headers_get_specific_errors() {
    // The CARv2 pragma from the CARv2 spec: a header that only says {version: 2}.
    let pragma = [0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];
    assert!(matches!(
        car::read_header(&mut &pragma[..]),
        Err(StoreError::CarVersionUnsupported { version: 2 })
    ));
    let too_large = [0x81, 0x40]; // 8193 bytes announced
    assert_eq!(CAR_HEADER_SIZE_MAX, 8192);
    assert!(matches!(
        car::read_header(&mut &too_large[..]),
        Err(StoreError::CarHeaderTooLarge { .. })
    ));
    let empty = [0x00];
    assert!(matches!(car::read_header(&mut &empty[..]), Err(StoreError::CarHeaderInvalid { .. })));
    let not_a_map = [0x01, 0x01];
    assert!(matches!(
        car::read_header(&mut &not_a_map[..]),
        Err(StoreError::CarHeaderInvalid { .. })
    ));
    let indefinite_map = [0x01, 0xbf];
    assert!(matches!(
        car::read_header(&mut &indefinite_map[..]),
        Err(StoreError::CarHeaderInvalid { .. })
    ));
    let mut no_roots = vec![0x0a, 0xa1, 0x67];
    no_roots.extend_from_slice(b"version");
    no_roots.push(0x01);
    assert!(matches!(
        car::read_header(&mut &no_roots[..]),
        Err(StoreError::CarHeaderInvalid { reason: "missing roots" })
    ));
}

#[test]
fn oversized_and_empty_sections_are_rejected() {
    let mut oversized = Vec::new();
    let length = CAR_SECTION_SIZE_MAX as u64 + 1;
    let mut value = length;
    while value >= 0x80 {
        oversized.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    oversized.push(value as u8);
    assert!(matches!(
        car::read_section(&mut &oversized[..]),
        Err(StoreError::CarSectionTooLarge { .. })
    ));
    assert!(matches!(
        car::read_section(&mut &[0x00][..]),
        Err(StoreError::CarSectionInvalid { .. })
    ));
    let garbage_cid = [0x03, 0x07, 0x07, 0x07];
    assert!(matches!(
        car::read_section(&mut &garbage_cid[..]),
        Err(StoreError::CarSectionInvalid { .. })
    ));
}

proptest! {
    #[test]
    fn read_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = car::read_header(&mut &bytes[..]);
    }

    #[test]
    fn read_header_never_panics_on_near_valid_headers(
        position in 0usize..60,
        byte in any::<u8>(),
    ) {
        let root = Cid::for_block(Version::V1, Codec::Raw, b"seed").expect("cid");
        let mut header = Vec::new();
        car::write_header(&mut header, &[root]).expect("writes");
        let index = position % header.len();
        header[index] = byte;
        let _ = car::read_header(&mut &header[..]);
    }

    #[test]
    fn read_section_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut reader = &bytes[..];
        while let Ok(Some(_)) = car::read_section(&mut reader) {}
    }
}
