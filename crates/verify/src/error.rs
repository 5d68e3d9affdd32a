//! The crate's error type.

/// Why a check failed or an input was refused. Every variant is evidence a caller can record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The challenge's size is outside `1..=N_MAX`, or not a multiple of the tile.
    #[error(
        "matrix size {n} is invalid for tile {tile} (must be a multiple of it, at most {max})"
    )]
    SizeInvalid { n: u32, tile: u32, max: u32 },
    /// The tile edge is outside `TILE_MIN..=TILE_MAX`.
    #[error("tile edge {tile} is outside {min}..={max}")]
    TileInvalid { tile: u32, min: u32, max: u32 },
    /// A tile index is not below the number of tiles.
    #[error("tile index {index} is out of range (tile count {count})")]
    TileIndexOutOfRange { index: u32, count: u32 },
    /// An opening carries the wrong number of values.
    #[error("tile carries {actual} values, expected {expected}")]
    TileLength { expected: usize, actual: usize },
    /// A Merkle path has the wrong number of siblings for its index and the tree's size.
    #[error("merkle path has {actual} siblings, expected {expected}")]
    PathLength { expected: usize, actual: usize },
    /// The opening does not hash up to the committed root.
    #[error("tile {index} does not match the committed root")]
    MerkleMismatch { index: u32 },
    /// The opened tile is not the true product: the provider did not compute it.
    #[error("tile {index} value {position} is wrong")]
    TileMismatch { index: u32, position: usize },
    /// The set of opened tiles is not the set the validator asked for.
    #[error("openings do not answer the requested tile indices")]
    OpeningsMismatch,
    /// The number of requested openings is above the limit.
    #[error("{requested} openings requested, at most {max} allowed")]
    OpenCountInvalid { requested: u32, max: u32 },
    /// A Merkle tree needs at least one leaf and at most `LEAF_COUNT_MAX`.
    #[error("merkle tree with {count} leaves is not allowed")]
    LeafCountInvalid { count: usize },
    /// A full product has the wrong number of entries.
    #[error("product has {actual} entries, expected {expected}")]
    ProductLength { expected: usize, actual: usize },
    /// Freivalds' check found the claimed product wrong.
    #[error("freivalds check failed in round {round}")]
    FreivaldsMismatch { round: u32 },
    /// The puzzle's difficulty is above the limit.
    #[error("puzzle difficulty {bits} bits is above the limit {max}")]
    DifficultyInvalid { bits: u32, max: u32 },
    /// The nonce's hash has too few leading zero bits.
    #[error("puzzle solution has {found} leading zero bits, {required} required")]
    PuzzleUnsolved { required: u32, found: u32 },
    /// A reveal does not open the commitment it claims to.
    #[error("reveal does not match the commitment")]
    RevealMismatch,
    /// The same provider revealed twice for one task.
    #[error("provider revealed more than once")]
    RevealDuplicate,
    /// More reveals than replicas, or a replica count out of range.
    #[error("{reveals} reveals for {replicas} replicas (at most {max} replicas)")]
    ReplicaCountInvalid { reveals: usize, replicas: u32, max: u32 },
    /// A parameter set breaks one of its documented rules.
    #[error("parameters invalid: {0}")]
    ParamsInvalid(&'static str),
    /// An amount computation does not fit in `u128`.
    #[error("amount arithmetic overflowed")]
    Overflow,
}
