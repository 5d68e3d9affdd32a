//! Durable storage in redb: the block log (`chain.redb`) and checkpoints of the state
//! (`state.redb`).
//!
//! Each block is one write transaction of the block log with one fsync (group commit: one per
//! block, not per transaction); a block is acknowledged only after it. The state is written
//! separately, as a checkpoint of the entries changed since the previous one, in one transaction
//! with its height. After a crash the node loads the last checkpoint and re-executes the blocks
//! after it, so every acknowledged transaction is there and the state equals a replay of the log.

use aicpw_ledger::state::{Account, Meta, Node, Task};
use aicpw_ledger::{Genesis, State};
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{Block, BlockHeader};
use redb::backends::FileBackend;
use redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const CHAIN: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
const GENESIS_KEY: &str = "genesis";
const HEAD_KEY: &str = "head";
const CHECKPOINT_KEY: &str = "checkpoint_height";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Redb(Box<redb::Error>),
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the data directory belongs to chain {found}, not {expected}")]
    OtherChain { found: String, expected: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn corrupt(what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(what.to_string())
}

/// One state entry to write: key bytes, and the value bytes or `None` to delete it.
pub type EntryWrite = (Vec<u8>, Option<Vec<u8>>);

/// What a restart finds on disk: the genesis, the state at the last checkpoint, and the head.
pub struct Loaded {
    pub genesis: Genesis,
    pub state: State,
    pub checkpoint_height: u64,
    pub head: Option<BlockHeader>,
}

pub struct Db {
    chain: Database,
    state: std::sync::Arc<Database>,
}

impl Db {
    /// Opens (or creates) `chain.redb` and `state.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Db, DbError> {
        Db::on(file(dir, "chain.redb")?, file(dir, "state.redb")?)
    }

    /// Opens (or creates) the block log and the state on the given storage: files for a node, a
    /// disk that loses what was not synced for the crash tests.
    pub fn on(chain: impl StorageBackend, state: impl StorageBackend) -> Result<Db, DbError> {
        let chain = Database::builder().create_with_backend(LengthSynced(chain))?;
        let state = Database::builder().create_with_backend(LengthSynced(state))?;
        Ok(Db { chain, state: std::sync::Arc::new(state) })
    }

    /// The state database, for a checkpoint writer on another thread.
    pub fn state_database(&self) -> std::sync::Arc<Database> {
        self.state.clone()
    }

    fn genesis(&self) -> Result<Option<Genesis>, DbError> {
        let read = self.chain.begin_read()?;
        let table = match read.open_table(CHAIN) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(bytes) = table.get(GENESIS_KEY)? else { return Ok(None) };
        serde_json::from_slice(bytes.value()).map(Some).map_err(corrupt)
    }

    /// Writes the genesis state as checkpoint 0, then the genesis itself (which marks the chain
    /// as created, so a crash in between leaves a directory that is simply initialized again:
    /// checkpoint 0 replaces every entry an earlier attempt wrote, whatever its genesis).
    pub fn init(&self, genesis: &Genesis, entries: Vec<EntryWrite>) -> Result<(), DbError> {
        let write = self.state.begin_write()?;
        write.delete_table(ENTRIES)?;
        write_entries(&write, 0, &entries)?;
        write.commit()?;
        let json = serde_json::to_vec(genesis).map_err(corrupt)?;
        let write = self.chain.begin_write()?;
        {
            write.open_table(CHAIN)?.insert(GENESIS_KEY, json.as_slice())?;
            write.open_table(BLOCKS)?;
        }
        write.commit()?;
        Ok(())
    }

    /// Appends one block to the log, atomically and durably.
    pub fn commit_block(&self, block: &Block) -> Result<(), DbError> {
        let write = self.chain.begin_write()?;
        {
            let mut blocks = write.open_table(BLOCKS)?;
            blocks.insert(block.header.height, block.to_bytes().as_slice())?;
            let mut chain = write.open_table(CHAIN)?;
            chain.insert(HEAD_KEY, block.header.to_bytes().as_slice())?;
        }
        write.commit()?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, DbError> {
        let read = self.chain.begin_read()?;
        let table = read.open_table(BLOCKS)?;
        let Some(bytes) = table.get(height)? else { return Ok(None) };
        Block::from_bytes(bytes.value()).map(Some).map_err(corrupt)
    }

    /// Loads the last checkpoint and the head of the block log.
    pub fn load(&self) -> Result<Option<Loaded>, DbError> {
        let Some(genesis) = self.genesis()? else { return Ok(None) };
        let head = match self.chain.begin_read()?.open_table(CHAIN)?.get(HEAD_KEY)? {
            Some(bytes) => Some(BlockHeader::from_bytes(bytes.value()).map_err(corrupt)?),
            None => None,
        };
        let read = self.state.begin_read()?;
        let checkpoint_height = match read.open_table(CHAIN)?.get(CHECKPOINT_KEY)? {
            Some(bytes) => u64::from_bytes(bytes.value()).map_err(corrupt)?,
            None => return Err(corrupt("no checkpoint")),
        };
        // A checkpoint is written only after its block is durable in the log, so a state ahead
        // of the log means the log lost acknowledged blocks (a disk that ignored an fsync).
        let head_height = head.as_ref().map_or(0, |h| h.height);
        if checkpoint_height > head_height {
            return Err(corrupt(format!(
                "the state checkpoint at height {checkpoint_height} is ahead of the block log, \
                 whose head is at height {head_height}: committed blocks were lost"
            )));
        }
        let mut meta = None;
        let (mut accounts, mut nodes, mut tasks) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
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
        Ok(Some(Loaded { genesis, state, checkpoint_height, head }))
    }
}

/// Storage whose length changes are on disk before anything else is written. redb grows a file
/// and then, in the same unsynced window, writes its header, which records the file's length;
/// a power cut that keeps the header but not the new length leaves a file redb cannot open (it
/// asserts the file is at least that long). Syncing each length change at once means a header
/// only ever names a length the disk holds.
#[derive(Debug)]
pub(crate) struct LengthSynced<B>(pub B);

impl<B: StorageBackend> StorageBackend for LengthSynced<B> {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        self.0.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)?;
        self.0.sync_data(false)
    }

    fn sync_data(&self, eventual: bool) -> Result<(), std::io::Error> {
        self.0.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
}

/// Opens the redb file `name` in `dir`. A missing one is created whole under another name and
/// renamed into place, then the directory and its parent are synced: redb writes a new file with
/// two fsyncs, and a power cut between them leaves a file it refuses to open, while a cut here
/// leaves no file (or a `.new` one, created again).
pub(crate) fn file(dir: &Path, name: &str) -> Result<FileBackend, DbError> {
    let path = dir.join(name);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DbError::File { path, source }
    };
    if !path.try_exists().map_err(io(&path))? {
        let fresh = dir.join(format!("{name}.new"));
        match std::fs::remove_file(&fresh) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&fresh)(e)),
            _ => {}
        }
        drop(Database::create(&fresh)?);
        std::fs::rename(&fresh, &path).map_err(io(&path))?;
        for synced in [Some(dir), dir.parent()].into_iter().flatten() {
            let synced = if synced.as_os_str().is_empty() { Path::new(".") } else { synced };
            std::fs::File::open(synced).and_then(|d| d.sync_all()).map_err(io(synced))?;
        }
    }
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io(&path))?;
    Ok(FileBackend::new(file)?)
}

/// Writes changed state entries and the height they are current at, in one transaction.
pub fn checkpoint(state: &Database, height: u64, entries: Vec<EntryWrite>) -> Result<(), DbError> {
    let write = state.begin_write()?;
    write_entries(&write, height, &entries)?;
    write.commit()?;
    Ok(())
}

fn write_entries(
    write: &redb::WriteTransaction,
    height: u64,
    entries: &[EntryWrite],
) -> Result<(), DbError> {
    let mut table = write.open_table(ENTRIES)?;
    for (key, value) in entries {
        match value {
            Some(value) => table.insert(key.as_slice(), value.as_slice())?,
            None => table.remove(key.as_slice())?,
        };
    }
    write.open_table(CHAIN)?.insert(CHECKPOINT_KEY, height.to_bytes().as_slice())?;
    Ok(())
}
