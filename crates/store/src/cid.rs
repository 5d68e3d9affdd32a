//! Content identifiers (CIDs) as IPFS writes them: sha2-256 over dag-pb or raw blocks.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE, HEXLOWER, HEXLOWER_PERMISSIVE};
use sha2::{Digest as _, Sha256};

use crate::error::StoreError;
use crate::limits::{CID_BYTES_LENGTH_MAX, CID_STRING_LENGTH_MAX};
use crate::varint::{self, VarintError, MULTIFORMAT_LENGTH_MAX};

/// Multihash code of sha2-256.
pub const SHA2_256_CODE: u64 = 0x12;
/// Length in bytes of a sha2-256 digest.
pub const DIGEST_LENGTH: usize = 32;
/// Length of a binary CIDv0 (the bare multihash).
const V0_BYTES_LENGTH: usize = 2 + DIGEST_LENGTH;
/// Length of a CIDv0 string in base58btc.
const V0_STRING_LENGTH: usize = 46;

/// CID version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// Legacy: a bare base58btc multihash, always dag-pb (`Qm...`).
    V0,
    /// Self-describing: version, codec and multihash, shown in base32 (`bafy...`, `bafk...`).
    V1,
}

/// Multicodec of the block a CID points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// Protobuf MerkleDAG node (UnixFS files and directories), code 0x70.
    DagPb,
    /// Bytes with no structure (raw leaves), code 0x55.
    Raw,
}

impl Codec {
    /// The multicodec code.
    pub const fn code(self) -> u64 {
        match self {
            Codec::DagPb => 0x70,
            Codec::Raw => 0x55,
        }
    }

    /// The codec with this multicodec code, if supported.
    pub const fn from_code(code: u64) -> Option<Codec> {
        match code {
            0x70 => Some(Codec::DagPb),
            0x55 => Some(Codec::Raw),
            _ => None,
        }
    }
}

/// A CID with a sha2-256 multihash. Ordering and equality compare version, codec and digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    version: Version,
    codec: Codec,
    digest: [u8; DIGEST_LENGTH],
}

impl Cid {
    /// Builds a CID from parts; a CIDv0 must be dag-pb.
    pub fn new(
        version: Version,
        codec: Codec,
        digest: [u8; DIGEST_LENGTH],
    ) -> Result<Cid, StoreError> {
        if version == Version::V0 && codec != Codec::DagPb {
            return Err(StoreError::CidV0Codec);
        }
        Ok(Cid { version, codec, digest })
    }

    /// The CID of `block` under the given version and codec.
    pub fn for_block(version: Version, codec: Codec, block: &[u8]) -> Result<Cid, StoreError> {
        Cid::new(version, codec, Sha256::digest(block).into())
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The sha2-256 digest of the block.
    pub fn digest(&self) -> &[u8; DIGEST_LENGTH] {
        &self.digest
    }

    /// Whether `block` hashes to this CID's digest.
    pub fn matches(&self, block: &[u8]) -> bool {
        let digest: [u8; DIGEST_LENGTH] = Sha256::digest(block).into();
        digest == self.digest
    }

    /// The same block addressed as CIDv1 (what `ipfs cid base32` prints).
    pub fn to_v1(&self) -> Cid {
        Cid { version: Version::V1, ..*self }
    }

    /// The multihash: code 0x12, length 32, digest.
    pub fn multihash(&self) -> [u8; V0_BYTES_LENGTH] {
        let mut out = [0u8; V0_BYTES_LENGTH];
        out[0] = SHA2_256_CODE as u8;
        out[1] = DIGEST_LENGTH as u8;
        out[2..].copy_from_slice(&self.digest);
        out
    }

    /// Binary form: the multihash for CIDv0; varint version, varint codec, multihash for CIDv1.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(V0_BYTES_LENGTH + 2);
        if self.version == Version::V1 {
            varint::encode(1, &mut out);
            varint::encode(self.codec.code(), &mut out);
        }
        out.extend_from_slice(&self.multihash());
        out
    }

    /// Parses a binary CID that spans all of `bytes`. Never panics, whatever the input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cid, StoreError> {
        if bytes.len() > CID_BYTES_LENGTH_MAX {
            return Err(StoreError::CidTooLong { length: bytes.len(), max: CID_BYTES_LENGTH_MAX });
        }
        let (cid, used) = Cid::read_prefix(bytes)?;
        match bytes.len() - used {
            0 => Ok(cid),
            count => Err(StoreError::CidTrailingBytes { count }),
        }
    }

    /// Parses a binary CID at the start of `bytes`; returns it and the bytes it used.
    pub(crate) fn read_prefix(bytes: &[u8]) -> Result<(Cid, usize), StoreError> {
        match bytes.first() {
            None => Err(StoreError::CidEmpty),
            Some(&first) if u64::from(first) == SHA2_256_CODE => {
                let (digest, used) = read_multihash(bytes)?;
                Ok((Cid { version: Version::V0, codec: Codec::DagPb, digest }, used))
            }
            Some(_) => {
                let (version, version_length) = read_varint(bytes)?;
                if version != 1 {
                    return Err(StoreError::CidVersionUnsupported { version });
                }
                let rest = &bytes[version_length..];
                let (code, code_length) = read_varint(rest)?;
                let codec = Codec::from_code(code)
                    .ok_or(StoreError::CidCodecUnsupported { codec: code })?;
                let (digest, hash_length) = read_multihash(&rest[code_length..])?;
                let used = version_length + code_length + hash_length;
                Ok((Cid { version: Version::V1, codec, digest }, used))
            }
        }
    }
}

fn read_varint(bytes: &[u8]) -> Result<(u64, usize), StoreError> {
    varint::decode(bytes, MULTIFORMAT_LENGTH_MAX).map_err(|error| match error {
        VarintError::Truncated => StoreError::CidTruncated,
        VarintError::Overlong | VarintError::NotMinimal => StoreError::CidVarintInvalid,
    })
}

fn read_multihash(bytes: &[u8]) -> Result<([u8; DIGEST_LENGTH], usize), StoreError> {
    let (code, code_length) = read_varint(bytes)?;
    if code != SHA2_256_CODE {
        return Err(StoreError::CidHashUnsupported { code });
    }
    let (length, length_length) = read_varint(&bytes[code_length..])?;
    if length != DIGEST_LENGTH as u64 {
        return Err(StoreError::CidDigestLengthInvalid { length });
    }
    let start = code_length + length_length;
    let digest = bytes.get(start..start + DIGEST_LENGTH).ok_or(StoreError::CidTruncated)?;
    let mut out = [0u8; DIGEST_LENGTH];
    out.copy_from_slice(digest);
    Ok((out, start + DIGEST_LENGTH))
}

impl fmt::Display for Cid {
    /// CIDv0 as base58btc (`Qm...`); CIDv1 as multibase base32 lowercase (`b...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Version::V0 => f.write_str(&bs58::encode(self.multihash()).into_string()),
            Version::V1 => {
                let encoded = BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase();
                write!(f, "b{encoded}")
            }
        }
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = StoreError;

    /// Accepts a 46-character base58btc CIDv0, or a CIDv1 in multibase base32 (`b`/`B`),
    /// base58btc (`z`) or base16 (`f`/`F`). Never panics, whatever the input.
    fn from_str(text: &str) -> Result<Cid, StoreError> {
        if text.is_empty() {
            return Err(StoreError::CidEmpty);
        }
        if text.len() > CID_STRING_LENGTH_MAX {
            return Err(StoreError::CidTooLong { length: text.len(), max: CID_STRING_LENGTH_MAX });
        }
        if text.starts_with("Qm") {
            return parse_v0(text);
        }
        let mut characters = text.chars();
        let prefix = characters.next().ok_or(StoreError::CidEmpty)?;
        let body = characters.as_str();
        let bytes = decode_multibase(prefix, body)?;
        if bytes.first().map(|&byte| u64::from(byte)) == Some(SHA2_256_CODE) {
            return Err(StoreError::CidV0Multibase);
        }
        Cid::from_bytes(&bytes)
    }
}

fn parse_v0(text: &str) -> Result<Cid, StoreError> {
    if text.len() != V0_STRING_LENGTH {
        return Err(StoreError::CidV0Invalid);
    }
    let bytes = bs58::decode(text)
        .into_vec()
        .map_err(|_| StoreError::CidEncodingInvalid { base: "base58btc" })?;
    if bytes.len() != V0_BYTES_LENGTH {
        return Err(StoreError::CidV0Invalid);
    }
    Cid::from_bytes(&bytes)
}

fn decode_multibase(prefix: char, body: &str) -> Result<Vec<u8>, StoreError> {
    let body_bytes = body.as_bytes();
    let has_upper = body_bytes.iter().any(u8::is_ascii_uppercase);
    let has_lower = body_bytes.iter().any(u8::is_ascii_lowercase);
    let (base, result) = match prefix {
        'b' if !has_upper => ("base32", BASE32_NOPAD_NOCASE.decode(body_bytes)),
        'B' if !has_lower => ("base32upper", BASE32_NOPAD_NOCASE.decode(body_bytes)),
        'b' => return Err(StoreError::CidEncodingInvalid { base: "base32" }),
        'B' => return Err(StoreError::CidEncodingInvalid { base: "base32upper" }),
        'f' => ("base16", HEXLOWER.decode(body_bytes)),
        'F' if !has_lower => ("base16upper", HEXLOWER_PERMISSIVE.decode(body_bytes)),
        'F' => return Err(StoreError::CidEncodingInvalid { base: "base16upper" }),
        'z' => {
            let decoded = bs58::decode(body).into_vec();
            return decoded.map_err(|_| StoreError::CidEncodingInvalid { base: "base58btc" });
        }
        other => return Err(StoreError::CidMultibaseUnsupported { prefix: other }),
    };
    result.map_err(|_| StoreError::CidEncodingInvalid { base })
}

impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cid, D::Error> {
        struct CidVisitor;
        impl serde::de::Visitor<'_> for CidVisitor {
            type Value = Cid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CID string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Cid, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(CidVisitor)
    }
}
