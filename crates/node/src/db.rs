//! Durable storage in redb: the block log, the current state's entries and the chain head.
//!
//! One redb write transaction per block (group commit: one fsync per block, not per transaction)
//! holds the block, every state entry it changed and the new head, so after a crash the database
//! holds exactly the blocks whose commit returned, and the state that matches them.

use aicpw_ledger::state::{key_bytes, Account, EntryKey, Meta, Node, Task};
use aicpw_ledger::{Genesis, State};
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{Block, BlockHeader};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const CHAIN: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
const GENESIS_KEY: &str = "genesis";
const HEAD_KEY: &str = "head";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Redb(#[from] redb::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the data directory belongs to chain {found}, not {expected}")]
    OtherChain { found: String, expected: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn corrupt(what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(what.to_string())
}

pub struct Db {
    db: Database,
}

/// What a restart finds on disk.
pub struct Loaded {
    pub genesis: Genesis,
    pub state: State,
    pub head: Option<BlockHeader>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Ok(Db { db: Database::create(path)? })
    }

    pub fn genesis(&self) -> Result<Option<Genesis>, DbError> {
        let read = self.db.begin_read()?;
        let table = match read.open_table(CHAIN) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(bytes) = table.get(GENESIS_KEY)? else { return Ok(None) };
        serde_json::from_slice(bytes.value()).map(Some).map_err(corrupt)
    }

    /// Writes the genesis state as the chain's starting point.
    pub fn init(&self, genesis: &Genesis, state: &State) -> Result<(), DbError> {
        let json = serde_json::to_vec(genesis).map_err(corrupt)?;
        let write = self.db.begin_write()?;
        {
            let mut chain = write.open_table(CHAIN)?;
            chain.insert(GENESIS_KEY, json.as_slice())?;
            let mut entries = write.open_table(ENTRIES)?;
            let mut put = |key: EntryKey| -> Result<(), DbError> {
                let value = state.entry(key).ok_or_else(|| corrupt("genesis entry missing"))?;
                entries.insert(key_bytes(key).as_slice(), value.as_slice())?;
                Ok(())
            };
            put(EntryKey::Meta)?;
            for id in state.accounts.keys() {
                put(EntryKey::Account(*id))?;
            }
            write.open_table(BLOCKS)?;
        }
        write.commit()?;
        Ok(())
    }

    /// Commits one block and the state entries it changed, atomically and durably.
    pub fn commit_block(
        &self,
        block: &Block,
        state: &State,
        changed: &[EntryKey],
    ) -> Result<(), DbError> {
        let write = self.db.begin_write()?;
        {
            let mut blocks = write.open_table(BLOCKS)?;
            blocks.insert(block.header.height, block.to_bytes().as_slice())?;
            let mut entries = write.open_table(ENTRIES)?;
            for key in changed {
                let key_bytes = key_bytes(*key);
                match state.entry(*key) {
                    Some(value) => entries.insert(key_bytes.as_slice(), value.as_slice())?,
                    None => entries.remove(key_bytes.as_slice())?,
                };
            }
            let mut chain = write.open_table(CHAIN)?;
            chain.insert(HEAD_KEY, block.header.to_bytes().as_slice())?;
        }
        write.commit()?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, DbError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(BLOCKS)?;
        let Some(bytes) = table.get(height)? else { return Ok(None) };
        Block::from_bytes(bytes.value()).map(Some).map_err(corrupt)
    }

    /// Loads the state and head written by the last committed block.
    pub fn load(&self) -> Result<Option<Loaded>, DbError> {
        let Some(genesis) = self.genesis()? else { return Ok(None) };
        let read = self.db.begin_read()?;
        let head = match read.open_table(CHAIN)?.get(HEAD_KEY)? {
            Some(bytes) => Some(BlockHeader::from_bytes(bytes.value()).map_err(corrupt)?),
            None => None,
        };
        let mut meta = None;
        let (mut accounts, mut nodes, mut tasks) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for item in read.open_table(ENTRIES)?.iter()? {
            let (key, value) = item?;
            let (key, value) = (key.value(), value.value());
            match key.first() {
                Some(0) => meta = Some(Meta::from_bytes(value).map_err(corrupt)?),
                Some(1) => {
                    let account = Account::from_bytes(value).map_err(corrupt)?;
                    accounts.insert(Decode::from_bytes(&key[1..]).map_err(corrupt)?, account);
                }
                Some(2) => {
                    let node = Node::from_bytes(value).map_err(corrupt)?;
                    nodes.insert(node.id, node);
                }
                Some(3) => {
                    let task = Task::from_bytes(value).map_err(corrupt)?;
                    tasks.insert(task.id, task);
                }
                _ => return Err(corrupt("unknown entry key")),
            }
        }
        let meta = meta.ok_or_else(|| corrupt("no meta entry"))?;
        let state = State::from_tables(genesis.params.clone(), meta, accounts, nodes, tasks);
        Ok(Some(Loaded { genesis, state, head }))
    }

}
