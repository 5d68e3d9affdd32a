//! Every bound the store enforces, in one place. Each has its own error variant.

/// Largest block accepted from disk, from a CAR file or from a builder. Bitswap refuses
/// blocks above 2 MiB, so a larger block could never be fetched by an IPFS node anyway.
pub const BLOCK_SIZE_MAX: usize = 2 * 1024 * 1024;

/// `ipfs add` default chunk size (`size-262144`).
pub const CHUNK_SIZE_DEFAULT: usize = 262_144;

/// Largest chunk size an [`crate::AddOptions`] may ask for (kubo's `unixfs-v1-2025`
/// profile uses 1 MiB).
pub const CHUNK_SIZE_MAX: usize = 1024 * 1024;

/// `ipfs add` default number of links per file node in the balanced layout.
pub const FILE_NODE_LINKS_DEFAULT: usize = 174;

/// Largest number of links per file node an [`crate::AddOptions`] may ask for.
pub const FILE_NODE_LINKS_MAX: usize = 1024;

/// Largest file the store imports or exports (1 TiB).
pub const FILE_SIZE_MAX: u64 = 1 << 40;

/// Deepest DAG the store builds or walks (root is depth 0). A 1 TiB file needs 4 levels
/// with the default layout; the bound stops stack exhaustion on hostile DAGs.
pub const DAG_DEPTH_MAX: usize = 32;

/// Most entries read from one directory on disk by `add_path`.
pub const DIRECTORY_ENTRIES_MAX: usize = 10_000;

/// Kubo switches a directory to a HAMT shard when the sum over its links of
/// `name length + CID length` exceeds this; the store does not build HAMT shards, so it
/// refuses such a directory instead of producing a CID that `ipfs add` would not.
pub const DIRECTORY_LINKS_SIZE_MAX: usize = 262_144;

/// Deepest directory nesting accepted by `add_path` and `get_to_path` (root is depth 0).
pub const PATH_DEPTH_MAX: usize = 64;

/// Longest entry name in bytes (the common file-system limit).
pub const NAME_LENGTH_MAX: usize = 255;

/// Longest symlink target in bytes.
pub const SYMLINK_TARGET_LENGTH_MAX: usize = 4096;

/// Longest CID string accepted by `FromStr` (a CIDv1 in base16 is 73 characters).
pub const CID_STRING_LENGTH_MAX: usize = 100;

/// Longest binary CID accepted by `Cid::from_bytes` (a CIDv1 with sha2-256 is 36 bytes).
pub const CID_BYTES_LENGTH_MAX: usize = 64;

/// Largest CAR header (DAG-CBOR) accepted.
pub const CAR_HEADER_SIZE_MAX: usize = 8 * 1024;

/// Most roots accepted in a CAR header.
pub const CAR_ROOTS_MAX: usize = 64;

/// Largest CAR section (CID + block).
pub const CAR_SECTION_SIZE_MAX: usize = BLOCK_SIZE_MAX + CID_BYTES_LENGTH_MAX;

/// Most blocks in one CAR file, on import and on export (enough for a 1 TiB file).
pub const CAR_BLOCKS_MAX: u64 = 1 << 23;
