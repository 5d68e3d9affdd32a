//! Where blocks go and come from: the traits the DAG builder and readers work against.

use std::collections::BTreeMap;

use crate::cid::Cid;
use crate::error::{Result, StoreError};
use crate::limits::BLOCK_SIZE_MAX;

/// Receives the blocks a builder produces, each with its CID (already computed from its bytes).
pub trait BlockSink {
    fn put_block(&mut self, cid: &Cid, block: &[u8]) -> Result<()>;
}

/// Hands out blocks by CID. Implementations must return only bytes that hash to the CID.
pub trait BlockSource {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>>;
}

/// Discards every block: computing a CID without storing anything (`ipfs add --only-hash`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardBlocks;

impl BlockSink for DiscardBlocks {
    fn put_block(&mut self, _cid: &Cid, _block: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Blocks in memory, checked on the way in and on the way out. For tests and small DAGs.
#[derive(Debug, Default, Clone)]
pub struct MemoryBlocks {
    blocks: BTreeMap<Cid, Vec<u8>>,
}

impl MemoryBlocks {
    pub fn new() -> Self {
        MemoryBlocks::default()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }

    /// Every block, ordered by CID.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.blocks.iter().map(|(cid, block)| (cid, block.as_slice()))
    }
}

impl BlockSink for MemoryBlocks {
    fn put_block(&mut self, cid: &Cid, block: &[u8]) -> Result<()> {
        check_block(cid, block)?;
        self.blocks.entry(*cid).or_insert_with(|| block.to_vec());
        Ok(())
    }
}

impl BlockSource for MemoryBlocks {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        let block = self.blocks.get(cid).ok_or(StoreError::BlockNotFound { cid: *cid })?;
        if !cid.matches(block) {
            return Err(StoreError::BlockCorrupted { cid: *cid });
        }
        Ok(block.clone())
    }
}

/// Refuses a block that is too large or that does not hash to `cid`.
pub(crate) fn check_block(cid: &Cid, block: &[u8]) -> Result<()> {
    if block.len() > BLOCK_SIZE_MAX {
        return Err(StoreError::BlockTooLarge { size: block.len() as u64, max: BLOCK_SIZE_MAX });
    }
    if !cid.matches(block) {
        return Err(StoreError::BlockHashMismatch { cid: *cid });
    }
    Ok(())
}
