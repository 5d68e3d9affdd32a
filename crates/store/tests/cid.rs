//! CID text and binary forms: round trips, specific errors, no panics.

use aicpw_store::{
    add_to_sink, read_from_source, AddOptions, Cid, Codec, MemoryBlocks, StoreError, Version,
};
use proptest::prelude::*;

fn parse_error(text: &str) -> StoreError {
    text.parse::<Cid>().expect_err(text)
}

#[test]
fn malformed_strings_get_specific_errors() {
    assert!(matches!(parse_error(""), StoreError::CidEmpty));
    assert!(matches!(parse_error(&"b".repeat(101)), StoreError::CidTooLong { length: 101, .. }));
    assert!(matches!(parse_error("QmTooShort"), StoreError::CidV0Invalid));
    assert!(matches!(
        parse_error("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1Aw0H"),
        StoreError::CidEncodingInvalid { base: "base58btc" }
    ));
    assert!(matches!(parse_error("mAXASIA"), StoreError::CidMultibaseUnsupported { prefix: 'm' }));
    assert!(matches!(parse_error("b1111"), StoreError::CidEncodingInvalid { base: "base32" }));
    assert!(matches!(
        parse_error("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyKU"),
        StoreError::CidEncodingInvalid { base: "base32" }
    ));
    assert!(matches!(parse_error("bafkreihdwdcefgh4dq"), StoreError::CidTruncated));
    // base16 of [0x02, 0x55, ...]: version 2.
    assert!(matches!(parse_error("f0255"), StoreError::CidVersionUnsupported { version: 2 }));
    // dag-cbor (0x71) is a real codec, but not one this store handles.
    assert!(matches!(
        parse_error("f017112200000"),
        StoreError::CidCodecUnsupported { codec: 0x71 }
    ));
    // blake2b-256 (0xb220) multihash.
    assert!(matches!(
        parse_error("f0155a0e40220"),
        StoreError::CidHashUnsupported { code: 0xb220 }
    ));
    assert!(matches!(parse_error("f01551210"), StoreError::CidDigestLengthInvalid { length: 16 }));
    assert!(matches!(parse_error("f0180"), StoreError::CidTruncated));
    assert!(matches!(parse_error("f018000"), StoreError::CidVarintInvalid));
    let v0_hex = format!("f1220{}", "00".repeat(32));
    assert!(matches!(parse_error(&v0_hex), StoreError::CidV0Multibase));
    let trailing = format!("f01551220{}ff", "00".repeat(32));
    assert!(matches!(parse_error(&trailing), StoreError::CidTrailingBytes { count: 1 }));
}

#[test]
fn every_supported_multibase_parses_to_the_same_cid() {
    let cid: Cid =
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".parse().expect("parses");
    let bytes = cid.to_bytes();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let upper = "BAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU";
    let base58 = format!("z{}", bs58::encode(&bytes).into_string());
    for text in [upper.to_string(), format!("f{hex}"), format!("F{}", hex.to_uppercase()), base58] {
        assert_eq!(text.parse::<Cid>().expect(&text), cid, "{text}");
    }
}

#[test]
fn binary_forms_have_the_expected_layout() {
    let v0: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse().expect("parses");
    assert_eq!(&v0.to_bytes()[..2], &[0x12, 0x20]);
    assert_eq!(v0.to_bytes().len(), 34);
    assert_eq!(&v0.to_v1().to_bytes()[..4], &[0x01, 0x70, 0x12, 0x20]);
    assert!(matches!(Cid::new(Version::V0, Codec::Raw, [0; 32]), Err(StoreError::CidV0Codec)));
    assert!(matches!(Cid::from_bytes(&[0; 65]), Err(StoreError::CidTooLong { length: 65, .. })));
    assert!(matches!(Cid::from_bytes(&[]), Err(StoreError::CidEmpty)));
}

#[test]
fn serde_uses_the_string_form() {
    let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse().expect("parses");
    let json = serde_json::to_string(&cid).expect("serializes");
    assert_eq!(json, "\"QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH\"");
    assert_eq!(serde_json::from_str::<Cid>(&json).expect("deserializes"), cid);
    assert!(serde_json::from_str::<Cid>("\"Qm-not-a-cid\"").is_err());
    assert!(serde_json::from_str::<Cid>("42").is_err());
}

fn any_cid() -> impl Strategy<Value = Cid> {
    (any::<[u8; 32]>(), 0u8..3).prop_map(|(digest, kind)| {
        let (version, codec) = match kind {
            0 => (Version::V0, Codec::DagPb),
            1 => (Version::V1, Codec::DagPb),
            _ => (Version::V1, Codec::Raw),
        };
        Cid::new(version, codec, digest).expect("valid combination")
    })
}

proptest! {
    #[test]
    fn text_and_binary_forms_round_trip(cid in any_cid()) {
        let text = cid.to_string();
        prop_assert_eq!(text.parse::<Cid>().expect("parses"), cid);
        prop_assert_eq!(Cid::from_bytes(&cid.to_bytes()).expect("parses"), cid);
        let expected_prefix = if cid.version() == Version::V0 { "Qm" } else { "baf" };
        prop_assert!(text.starts_with(expected_prefix));
    }

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = Cid::from_bytes(&bytes);
    }

    #[test]
    fn from_str_never_panics(text in "\\PC{0,120}") {
        let _ = text.parse::<Cid>();
    }

    #[test]
    fn from_str_never_panics_on_cid_like_text(text in "[bBzfFQm][a-zA-Z0-9]{0,70}") {
        let _ = text.parse::<Cid>();
    }

    #[test]
    fn small_random_files_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), 0..5000),
        chunk_size in 1usize..2000,
        links in 2usize..6,
        version_one in any::<bool>(),
    ) {
        let base = if version_one { AddOptions::cid_v1() } else { AddOptions::default() };
        let options = AddOptions { chunk_size, file_node_links: links, ..base };
        let mut blocks = MemoryBlocks::new();
        let cid = add_to_sink(&bytes[..], &options, &mut blocks).expect("adds");
        let mut out = Vec::new();
        let written = read_from_source(&blocks, &cid, &mut out).expect("reads");
        prop_assert_eq!(written, bytes.len() as u64);
        prop_assert_eq!(out, bytes);
    }
}
