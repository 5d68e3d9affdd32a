//! The commitment tree: it is BLAKE3's own tree over the tile layout.

use aicpw_verify::merkle::{
    append_le_bytes, block_count, join, leaf_value, lower_sibling_ranges, path_length,
    root_from_path, subtree_value, TileTree, COMMIT_CONTEXT,
};
use aicpw_verify::VerifyError;

const TILE_VALUES: usize = 256; // a 16×16 tile: exactly one BLAKE3 chunk

fn tiles(count: u32) -> Vec<Vec<i32>> {
    (0..count)
        .map(|index| (0..TILE_VALUES as i32).map(|value| value * 31 + index as i32).collect())
        .collect()
}

fn leaves(tiles: &[Vec<i32>]) -> Vec<[u8; 32]> {
    let count = tiles.len() as u32;
    tiles
        .iter()
        .enumerate()
        .map(|(index, values)| leaf_value(index as u32, count, values))
        .collect()
}

fn layout(tiles: &[Vec<i32>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    tiles.iter().for_each(|values| append_le_bytes(values, &mut bytes));
    bytes
}

#[test]
fn the_root_is_the_standard_blake3_derive_key_hash_of_the_tile_layout() {
    for count in 1..=40u32 {
        let tiles = tiles(count);
        let tree = TileTree::from_leaves(leaves(&tiles)).expect("non-empty");
        let standard =
            blake3::Hasher::new_derive_key(COMMIT_CONTEXT).update(&layout(&tiles)).finalize();
        assert_eq!(tree.root(), *standard.as_bytes(), "{count} tiles");
    }
}

#[test]
fn every_leaf_of_trees_of_every_small_size_proves_its_membership() {
    for count in 1..=33u32 {
        let tiles = tiles(count);
        let leaves = leaves(&tiles);
        let tree = TileTree::from_leaves(leaves.clone()).expect("non-empty");
        for index in 0..count {
            let path = tree.path(index).expect("in range");
            assert_eq!(path.len(), path_length(count, index), "count {count} index {index}");
            let root = root_from_path(count, index, leaves[index as usize], &path);
            assert_eq!(root, Ok(tree.root()), "count {count} index {index}");
        }
    }
}

#[test]
fn trees_built_from_blocks_give_the_same_root_and_paths() {
    for count in [1u32, 2, 5, 16, 17, 40, 64, 100] {
        let tiles = tiles(count);
        let full = TileTree::from_leaves(leaves(&tiles)).expect("non-empty");
        let bytes = layout(&tiles);
        for height in 0..=7u32 {
            let blocks = block_count(count, height);
            let span = (1usize << height) * TILE_VALUES * 4;
            let values = (0..blocks as usize)
                .map(|block| {
                    let range = block * span..((block + 1) * span).min(bytes.len());
                    subtree_value(range.start as u64, &bytes[range], blocks == 1)
                })
                .collect();
            let tree = TileTree::from_blocks(count, height, values).expect("consistent");
            assert_eq!(tree.root(), full.root(), "count {count} height {height}");
            for index in 0..count {
                let mut path: Vec<[u8; 32]> = lower_sibling_ranges(count, height, index)
                    .into_iter()
                    .map(|range| {
                        let start = range.start as usize * TILE_VALUES * 4;
                        let end = range.end as usize * TILE_VALUES * 4;
                        subtree_value(start as u64, &bytes[start..end], false)
                    })
                    .collect();
                path.extend(tree.path(index).expect("in range"));
                assert_eq!(
                    path,
                    full.path(index).expect("in range"),
                    "count {count} height {height} index {index}"
                );
            }
        }
    }
}

#[test]
fn odd_nodes_are_promoted_not_duplicated() {
    let three = leaves(&tiles(3));
    let tree = TileTree::from_leaves(three.clone()).expect("non-empty");
    assert_eq!(tree.root(), join(&join(&three[0], &three[1], false), &three[2], true));
    let single = TileTree::from_leaves(leaves(&tiles(1))).expect("non-empty");
    assert_eq!(single.path(0), Ok(vec![]));
}

#[test]
fn a_leaf_is_bound_to_its_position() {
    let values = tiles(1).remove(0);
    assert_ne!(leaf_value(0, 4, &values), leaf_value(1, 4, &values));
    assert_ne!(leaf_value(0, 4, &values), leaf_value(0, 1, &values)); // a root is not a leaf
}

#[test]
fn malformed_trees_and_out_of_range_leaves_are_refused() {
    assert_eq!(TileTree::from_leaves(vec![]), Err(VerifyError::LeafCountInvalid { count: 0 }));
    assert!(TileTree::from_blocks(17, 4, vec![[0; 32]]).is_err()); // needs 2 blocks
    let tree = TileTree::from_leaves(leaves(&tiles(5))).expect("non-empty");
    assert_eq!(tree.path(5), Err(VerifyError::TileIndexOutOfRange { index: 5, count: 5 }));
    assert!(root_from_path(5, 7, [0; 32], &[]).is_err());
}
