//! The commitment to a matrix product: BLAKE3's own Merkle tree over `C`'s tiles.
//!
//! **Layout.** `C` is laid out tile by tile, tiles in row-major tile order (tile `(r, c)` has index
//! `r·side + c`), each tile's `tile²` values row-major inside it, as `i32` little-endian.
//!
//! **Root.** `root = BLAKE3-derive-key(COMMIT_CONTEXT, layout)`: any BLAKE3 implementation
//! recomputes it from the layout. A tile is `4·tile²` bytes, 1, 4 or 16 KiB for a tile of 16, 32
//! or 64: a power-of-two number of 1 KiB BLAKE3 chunks, so every tile is a complete subtree of
//! BLAKE3's tree, and the tiles are the leaves of a binary tree of their own.
//!
//! **Leaves and nodes.** A leaf is its tile's BLAKE3 chaining value; a node joins two chaining
//! values with BLAKE3's parent compression. BLAKE3 itself separates the domains: chunk and parent
//! compressions carry different flags, each chunk binds its position through its counter (a tile
//! cannot answer for another), only the top node carries the root flag, and the derive-key context
//! separates this tree from every other BLAKE3 use.
//!
//! **Shape.** BLAKE3's left-balanced tree: the left subtree holds the largest power of two of
//! leaves smaller than the total. Equivalently, level by level, pairs are joined left to right and
//! an odd last node is promoted unchanged (never duplicated). A path lists the siblings from the
//! leaf up, skipping the levels where the node was promoted, so its length is a function of
//! `(leaf_count, index)` and is checked exactly. A product of one tile has the tile's root hash as
//! its root and an empty path.
//!
//! The provider keeps only the levels from blocks of `2^height` tiles up ([`TileTree::from_blocks`]):
//! hashing a block in one call lets BLAKE3 compress many chunks at once, several times faster than
//! tile by tile; the few siblings below are rehashed from `C` when a tile is opened
//! ([`lower_sibling_ranges`]).

use std::ops::Range;
use std::sync::OnceLock;

use blake3::hazmat::{self, ChainingValue, ContextKey, HasherExt, Mode};

use crate::VerifyError;

/// Derive-key context of the commitment.
pub const COMMIT_CONTEXT: &str = "AICPW 2026-01 verify matrix product commitment v1";
/// At most this many leaves: the tile count of an `N_MAX` matrix cut in `TILE_MIN` tiles.
pub const LEAF_COUNT_MAX: u32 = 1 << 20;
/// A block spans at most `2^HEIGHT_MAX` leaves.
pub const HEIGHT_MAX: u32 = 20;

/// A 32-byte BLAKE3 digest: a chaining value or the root hash.
pub type Digest = [u8; 32];

fn context_key() -> &'static ContextKey {
    static KEY: OnceLock<ContextKey> = OnceLock::new();
    KEY.get_or_init(|| hazmat::hash_derive_key_context(COMMIT_CONTEXT))
}

/// Appends `values` as `i32` little-endian bytes.
pub fn append_le_bytes(values: &[i32], out: &mut Vec<u8>) {
    out.reserve(values.len() * 4);
    for value in values {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// The value of the subtree made of `bytes`, which start `offset` bytes into the layout: its
/// chaining value, or the root hash when it spans the whole layout (`whole`). The caller keeps
/// subtrees aligned (a power-of-two number of tiles at a multiple of that count).
pub fn subtree_value(offset: u64, bytes: &[u8], whole: bool) -> Digest {
    let mut hasher = blake3::Hasher::new_from_context_key(context_key());
    if whole {
        hasher.update(bytes);
        return *hasher.finalize().as_bytes();
    }
    hasher.set_input_offset(offset);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// The leaf of tile `index` among `leaf_count` tiles (the root itself when there is one tile).
pub fn leaf_value(index: u32, leaf_count: u32, values: &[i32]) -> Digest {
    let mut bytes = Vec::new();
    append_le_bytes(values, &mut bytes);
    subtree_value(u64::from(index) * bytes.len() as u64, &bytes, leaf_count == 1)
}

/// Joins two children; `root` marks the top node.
pub fn join(left: &ChainingValue, right: &ChainingValue, root: bool) -> Digest {
    let mode = Mode::DeriveKeyMaterial(context_key());
    if root {
        *hazmat::merge_subtrees_root(left, right, mode).as_bytes()
    } else {
        hazmat::merge_subtrees_non_root(left, right, mode)
    }
}

/// The stored levels of a commitment tree, from blocks of `2^height` leaves up to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileTree {
    leaf_count: u32,
    height: u32,
    /// `levels[0]` holds the blocks, the last level the root alone.
    levels: Vec<Vec<Digest>>,
    root: Digest,
}

impl TileTree {
    /// Builds the whole tree from every leaf value, in tile order.
    pub fn from_leaves(leaves: Vec<Digest>) -> Result<Self, VerifyError> {
        let count = u32::try_from(leaves.len()).unwrap_or(u32::MAX);
        Self::from_blocks(count, 0, leaves)
    }

    /// Builds the levels above blocks of `2^height` leaves: `blocks[b]` is the value of leaves
    /// `b·2^height ..` (the last block may be short), or the root hash if one block spans all.
    pub fn from_blocks(
        leaf_count: u32,
        height: u32,
        blocks: Vec<Digest>,
    ) -> Result<Self, VerifyError> {
        if leaf_count == 0 || leaf_count > LEAF_COUNT_MAX || height > HEIGHT_MAX {
            return Err(VerifyError::LeafCountInvalid { count: leaf_count as usize });
        }
        if blocks.len() != block_count(leaf_count, height) as usize {
            return Err(VerifyError::LeafCountInvalid { count: blocks.len() });
        }
        let mut levels = vec![blocks];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let root = level.len() == 2;
            let next = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => join(left, right, root),
                    [single, ..] => *single,
                    [] => unreachable!("chunks are never empty"),
                })
                .collect();
            levels.push(next);
        }
        let root = levels.last().and_then(|level| level.first()).copied();
        let root = root.ok_or(VerifyError::LeafCountInvalid { count: 0 })?;
        Ok(Self { leaf_count, height, levels, root })
    }

    /// The commitment.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// Number of leaves (tiles).
    pub fn leaf_count(&self) -> u32 {
        self.leaf_count
    }

    /// Levels below the stored ones.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Siblings of leaf `index` on the stored levels, from the bottom up. For a tree built from
    /// leaves this is the whole path; otherwise the values of [`lower_sibling_ranges`] come first.
    pub fn path(&self, index: u32) -> Result<Vec<Digest>, VerifyError> {
        if index >= self.leaf_count {
            return Err(VerifyError::TileIndexOutOfRange { index, count: self.leaf_count });
        }
        let mut position = (index >> self.height) as usize;
        let mut path = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(position ^ 1) {
                path.push(*sibling);
            }
            position >>= 1;
        }
        Ok(path)
    }
}

/// Blocks of `2^height` leaves needed to cover `leaf_count` leaves.
pub fn block_count(leaf_count: u32, height: u32) -> u32 {
    leaf_count.div_ceil(1 << height.min(31))
}

/// Leaf ranges whose subtree values are the siblings of leaf `index` below level `height`, from
/// the bottom up (levels where the node is promoted have none).
pub fn lower_sibling_ranges(leaf_count: u32, height: u32, index: u32) -> Vec<Range<u32>> {
    (0..height.min(31))
        .filter_map(|level| {
            let sibling = (index >> level) ^ 1;
            let first = sibling << level;
            (first < leaf_count).then(|| first..(first + (1 << level)).min(leaf_count))
        })
        .collect()
}

/// Number of siblings on the path of leaf `index` in a tree of `leaf_count` leaves.
pub fn path_length(leaf_count: u32, index: u32) -> usize {
    let (mut width, mut position, mut length) = (leaf_count, index, 0);
    while width > 1 {
        if position ^ 1 < width {
            length += 1;
        }
        position >>= 1;
        width = width.div_ceil(2);
    }
    length
}

/// Recomputes the root from a leaf value and its path; checks the path's length exactly.
pub fn root_from_path(
    leaf_count: u32,
    index: u32,
    leaf: Digest,
    path: &[Digest],
) -> Result<Digest, VerifyError> {
    if index >= leaf_count {
        return Err(VerifyError::TileIndexOutOfRange { index, count: leaf_count });
    }
    let expected = path_length(leaf_count, index);
    if path.len() != expected {
        return Err(VerifyError::PathLength { expected, actual: path.len() });
    }
    let (mut width, mut position, mut digest) = (leaf_count, index, leaf);
    let mut siblings = path.iter();
    while width > 1 {
        if position ^ 1 < width {
            let Some(sibling) = siblings.next() else {
                return Err(VerifyError::PathLength { expected, actual: path.len() });
            };
            let root = width == 2;
            digest = if position & 1 == 0 {
                join(&digest, sibling, root)
            } else {
                join(sibling, &digest, root)
            };
        }
        position >>= 1;
        width = width.div_ceil(2);
    }
    Ok(digest)
}
