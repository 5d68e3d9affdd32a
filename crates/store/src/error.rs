//! The one error type of the store crate.

use std::path::PathBuf;

use crate::cid::Cid;

/// Every way a store operation can fail. Variants carry what a caller needs to report it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    // --- CID parsing -----------------------------------------------------------------------
    #[error("CID is empty")]
    CidEmpty,
    #[error("CID is {length} characters or bytes long, more than the maximum {max}")]
    CidTooLong { length: usize, max: usize },
    #[error("CID multibase prefix {prefix:?} is not supported (use b, B, z, f or F)")]
    CidMultibaseUnsupported { prefix: char },
    #[error("CID is not valid {base}")]
    CidEncodingInvalid { base: &'static str },
    #[error("CID is truncated")]
    CidTruncated,
    #[error("CID contains a malformed varint")]
    CidVarintInvalid,
    #[error("CID version {version} is not supported")]
    CidVersionUnsupported { version: u64 },
    #[error("CID codec 0x{codec:x} is not supported (only dag-pb 0x70 and raw 0x55)")]
    CidCodecUnsupported { codec: u64 },
    #[error("multihash function 0x{code:x} is not supported (only sha2-256 0x12)")]
    CidHashUnsupported { code: u64 },
    #[error("multihash digest length {length} is invalid for sha2-256 (expected 32)")]
    CidDigestLengthInvalid { length: u64 },
    #[error("CID has {count} unexpected trailing bytes")]
    CidTrailingBytes { count: usize },
    #[error("a CIDv0 string must be 46 base58btc characters starting with Qm")]
    CidV0Invalid,
    #[error("a CIDv0 must not be wrapped in a multibase prefix")]
    CidV0Multibase,
    #[error("a CIDv0 can only have the dag-pb codec")]
    CidV0Codec,

    // --- Block and node decoding -------------------------------------------------------------
    #[error("dag-pb node is malformed: {reason}")]
    DagPbInvalid { reason: &'static str },
    #[error("UnixFS data is malformed: {reason}")]
    UnixfsInvalid { reason: &'static str },
    #[error("DAG under {cid} is inconsistent: {reason}")]
    DagInconsistent { cid: Cid, reason: &'static str },
    #[error("DAG is deeper than the maximum {max}")]
    DagTooDeep { max: usize },
    #[error("{cid} is a {kind}, not a file")]
    NotAFile { cid: Cid, kind: &'static str },
    #[error("{cid} is a HAMT-sharded directory, which this store does not read")]
    HamtShardUnsupported { cid: Cid },

    // --- Block storage -------------------------------------------------------------------------
    #[error("block {cid} is not in the store")]
    BlockNotFound { cid: Cid },
    #[error("block {cid} is corrupted: its bytes do not hash to its CID")]
    BlockCorrupted { cid: Cid },
    #[error("block of {size} bytes is larger than the maximum {max}")]
    BlockTooLarge { size: u64, max: usize },
    #[error("block bytes do not hash to the given CID {cid}")]
    BlockHashMismatch { cid: Cid },
    #[error("store at {path} has an unknown format marker {found:?}")]
    StoreFormatUnknown { path: PathBuf, found: String },
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the input: {0}")]
    ReadInput(#[source] std::io::Error),
    #[error("writing the output: {0}")]
    WriteOutput(#[source] std::io::Error),

    // --- Importing and exporting files ---------------------------------------------------------
    #[error("invalid add option: {reason}")]
    OptionInvalid { reason: &'static str },
    #[error("file is larger than the maximum {max} bytes")]
    FileTooLarge { max: u64 },
    #[error("directory {path} has more than the maximum {max} entries")]
    DirectoryTooManyEntries { path: PathBuf, max: usize },
    #[error(
        "directory {path} needs HAMT sharding (links size {size} > {max}), which is not supported"
    )]
    DirectoryNeedsSharding { path: PathBuf, size: usize, max: usize },
    #[error("path is nested deeper than the maximum {max} levels")]
    PathTooDeep { max: usize },
    #[error("entry name {name:?} is invalid: {reason}")]
    NameInvalid { name: String, reason: &'static str },
    #[error("symlink target is invalid: {reason}")]
    SymlinkTargetInvalid { reason: &'static str },
    #[error("symlinks are not supported on this platform")]
    SymlinkUnsupported,
    #[error("{path} is neither a regular file, a directory nor a symlink")]
    FileTypeUnsupported { path: PathBuf },
    #[error("destination {path} already exists")]
    DestinationExists { path: PathBuf },

    // --- CAR files -------------------------------------------------------------------------------
    #[error("CAR file is truncated")]
    CarTruncated,
    #[error("CAR header of {size} bytes is larger than the maximum {max}")]
    CarHeaderTooLarge { size: u64, max: usize },
    #[error("CAR header is malformed: {reason}")]
    CarHeaderInvalid { reason: &'static str },
    #[error("CAR version {version} is not supported (only 1)")]
    CarVersionUnsupported { version: u64 },
    #[error("CAR header has more than the maximum {max} roots")]
    CarTooManyRoots { max: usize },
    #[error("CAR section is malformed: {reason}")]
    CarSectionInvalid { reason: &'static str },
    #[error("CAR section of {size} bytes is larger than the maximum {max}")]
    CarSectionTooLarge { size: u64, max: usize },
    #[error("CAR file has more than the maximum {max} blocks")]
    CarTooManyBlocks { max: u64 },
    #[error("CAR block {cid} does not hash to its CID")]
    CarBlockHashMismatch { cid: Cid },
    #[error("CAR root {cid} is not among the CAR's blocks")]
    CarRootMissing { cid: Cid },
}

impl StoreError {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io { operation, path: path.into(), source }
    }
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
