//! The chain: ledger state plus its durable block log. Makes blocks (the single sequencer of the
//! embedded default), and replays the log to check the stored state.

use crate::db::{checkpoint, Db, DbError, EntryWrite};
use aicpw_ledger::state::{key_bytes, EntryChanges, EntryKey};
use aicpw_ledger::{Event, Genesis, Receipt, State};
use aicpw_types::tx::{tx_root, verify_batch};
use aicpw_types::{AccountId, Block, BlockEnv, BlockHeader, Hash32, Reject, SignedTx};
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the data directory has no chain yet: start it with a genesis (for example --dev)")]
    NoGenesis,
    #[error("replay diverged at height {height}: {reason}")]
    ReplayDiverged { height: u64, reason: String },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("writing a state checkpoint failed: {0}")]
    Checkpoint(String),
    /// A rule broke conservation (a bug): the block is not committed and the node stops making
    /// blocks rather than sign money that does not add up.
    #[error("block {height} not committed: {violation}; the node halts (a ledger bug: report it)")]
    Conservation { height: u64, violation: aicpw_ledger::money::Violation },
}

/// A checkpoint is written once this many state entries changed since the last one...
pub const CHECKPOINT_ENTRIES_MIN: usize = 200_000;
/// ...or this many blocks were made, which bounds the blocks a restart re-executes.
pub const CHECKPOINT_BLOCKS_MAX: u64 = 256;

/// Writes state checkpoints on its own thread, so block commits never wait for them.
struct Checkpointer {
    sender: Option<SyncSender<(u64, Changes)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Closing the chain waits for the checkpoint in flight, so the files are free to reopen.
impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Checkpointer {
    fn start(database: Arc<redb::Database>) -> Checkpointer {
        let (sender, receiver) = sync_channel::<(u64, Changes)>(1);
        let failure = Arc::new(Mutex::new(None));
        let failed = failure.clone();
        let writer = std::thread::spawn(move || {
            for (height, changes) in receiver {
                let mut writes: Vec<EntryWrite> =
                    changes.into_iter().map(|(key, value)| (key_bytes(key), value)).collect();
                // In key order: each B-tree page is visited once.
                writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                if let Err(e) = checkpoint(&database, height, writes) {
                    *failed.lock().expect("no panics while locked") = Some(e.to_string());
                    return;
                }
            }
        });
        Checkpointer { sender: Some(sender), writer: Some(writer), failure }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().expect("no panics while locked").clone()
    }
}

/// What one block did.
pub struct BlockOutcome {
    pub header: BlockHeader,
    pub receipts: Vec<Receipt>,
    /// Events of the block's own rules (expiries, assignments), besides the receipts' events.
    pub events: Vec<Event>,
    pub rejected: Vec<(Hash32, Reject)>,
}

pub struct Chain {
    db: Db,
    genesis: Genesis,
    state: State,
    head: Option<BlockHeader>,
    /// Entries changed since the last checkpoint was handed to the writer, with the encodings
    /// the state root was brought up to date with (so a checkpoint costs the block producer
    /// nothing when it is due: the writer orders and writes them).
    pending: Changes,
    checkpoint_height: u64,
    checkpointer: Checkpointer,
}

/// State entries changed, each with its value's latest encoding (`None`: removed).
type Changes = HashMap<EntryKey, Option<Vec<u8>>>;

/// Replays a stored block on `state` ([`aicpw_ledger::execute_block`]): every transaction must
/// apply and the state root must be the one the block published.
fn replay_block(state: &mut State, block: Block) -> Result<EntryChanges, ChainError> {
    let height = block.header.height;
    let verified = verify_parallel(&block.txs);
    let executed = aicpw_ledger::execute_block(state, &block.header.env(), block.txs, &verified)
        .map_err(|violation| ChainError::Conservation { height, violation })?;
    if let Some((_, reject)) = executed.rejected.first() {
        return Err(ChainError::ReplayDiverged { height, reason: reject.to_string() });
    }
    if executed.state_root != block.header.state_root {
        return Err(ChainError::ReplayDiverged { height, reason: "state root".into() });
    }
    Ok(executed.changed)
}

/// Signatures checked in parallel batches over the machine's cores.
pub fn verify_parallel(txs: &[SignedTx]) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if txs.len() < 64 || threads == 1 {
        return verify_batch(txs);
    }
    let chunk = txs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            txs.chunks(chunk).map(|part| scope.spawn(move || verify_batch(part))).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signature verification does not panic"))
            .collect()
    })
}

fn block_randomness(parent: &Hash32, height: u64) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 block randomness");
    hasher.update(&parent.0);
    hasher.update(&height.to_le_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

impl Chain {
    /// Opens the chain in `data_dir`, creating it from `genesis` if it is new.
    pub fn open(data_dir: &Path, genesis: Option<&Genesis>) -> Result<Chain, ChainError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ChainError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Chain::on(Db::open(data_dir)?, genesis)
    }

    /// Opens the chain stored in `db`, creating it from `genesis` if it is new.
    pub fn on(db: Db, genesis: Option<&Genesis>) -> Result<Chain, ChainError> {
        let checkpointer = Checkpointer::start(db.state_database());
        if let Some(loaded) = db.load()? {
            if let Some(wanted) = genesis.filter(|g| g.chain_id != loaded.genesis.chain_id) {
                return Err(DbError::OtherChain {
                    found: loaded.genesis.chain_id,
                    expected: wanted.chain_id.clone(),
                }
                .into());
            }
            let mut chain = Chain {
                db,
                genesis: loaded.genesis,
                state: loaded.state,
                head: loaded.head,
                pending: Changes::new(),
                checkpoint_height: loaded.checkpoint_height,
                checkpointer,
            };
            chain.catch_up()?;
            return Ok(chain);
        }
        let genesis = genesis.ok_or(ChainError::NoGenesis)?.clone();
        let mut state = State::genesis(&genesis);
        state.finalize_root();
        let entries = std::iter::once(EntryKey::Meta)
            .chain(state.accounts.keys().map(|id| EntryKey::Account(*id)))
            .map(|key| (key_bytes(key), state.entry(key)))
            .collect();
        db.init(&genesis, entries)?;
        Ok(Chain {
            db,
            genesis,
            state,
            head: None,
            pending: Changes::new(),
            checkpoint_height: 0,
            checkpointer,
        })
    }

    /// Checks the last checkpoint against the state root its block (or the genesis) published,
    /// then re-executes the blocks committed after it.
    fn catch_up(&mut self) -> Result<(), ChainError> {
        let missing =
            |height| ChainError::ReplayDiverged { height, reason: "block missing".into() };
        let (root, _) = self.state.finalize_root();
        let height = self.checkpoint_height;
        let published = match height {
            0 => State::genesis(&self.genesis).finalize_root().0,
            _ => self.db.block(height)?.ok_or_else(|| missing(height))?.header.state_root,
        };
        if root != published {
            let reason = "the state checkpoint differs from the root its block published".into();
            return Err(ChainError::ReplayDiverged { height, reason });
        }
        for height in self.checkpoint_height + 1..=self.height() {
            let block = self.db.block(height)?.ok_or_else(|| missing(height))?;
            let changed = replay_block(&mut self.state, block)?;
            self.pending.extend(changed);
        }
        Ok(())
    }

    /// Hands the entries changed since the last checkpoint to the writer when enough piled up.
    fn maybe_checkpoint(&mut self, height: u64) -> Result<(), ChainError> {
        if let Some(failure) = self.checkpointer.failure() {
            return Err(ChainError::Checkpoint(failure));
        }
        let due = self.pending.len() >= CHECKPOINT_ENTRIES_MIN
            || height.saturating_sub(self.checkpoint_height) >= CHECKPOINT_BLOCKS_MAX;
        if !due {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.pending);
        let sender = self.checkpointer.sender.as_ref().expect("the sender lives until drop");
        match sender.try_send((height, changes)) {
            Ok(()) => {
                self.checkpoint_height = height;
                Ok(())
            }
            // The writer is busy with the previous checkpoint: try again after the next block.
            Err(TrySendError::Full((_, changes))) => {
                self.pending = changes;
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(ChainError::Checkpoint(self.checkpointer.failure().unwrap_or_default()))
            }
        }
    }

    /// Checkpoints every state change not yet checkpointed, waits until the writer has it on
    /// disk, and closes the chain: a restart then re-executes no block.
    pub fn close(mut self) -> Result<(), ChainError> {
        let height = self.height();
        let changes = std::mem::take(&mut self.pending);
        let mut checkpointer = self.checkpointer;
        let sender = checkpointer.sender.take().expect("the sender lives until drop");
        if !changes.is_empty() && sender.send((height, changes)).is_err() {
            return Err(ChainError::Checkpoint(checkpointer.failure().unwrap_or_default()));
        }
        drop(sender);
        if let Some(writer) = checkpointer.writer.take() {
            writer.join().map_err(|_| ChainError::Checkpoint("the writer panicked".into()))?;
        }
        checkpointer.failure().map_or(Ok(()), |failure| Err(ChainError::Checkpoint(failure)))
    }

    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn head(&self) -> Option<&BlockHeader> {
        self.head.as_ref()
    }
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    pub fn height(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.height)
    }
    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        Ok(self.db.block(height)?)
    }

    fn next_env(&self, time_ms: u64, proposer: AccountId) -> (BlockEnv, Hash32) {
        let parent = self.head.as_ref().map(BlockHeader::hash).unwrap_or_default();
        let height = self.height() + 1;
        let parent_time = self.head.as_ref().map_or(0, |h| h.time_ms);
        let env = BlockEnv {
            chain_id: self.genesis.chain_id.clone(),
            height,
            time_ms: time_ms.max(parent_time + 1),
            proposer,
            randomness: block_randomness(&parent, height),
        };
        (env, parent)
    }

    /// Makes, executes and durably commits the next block from `txs`. Transactions that fail are
    /// left out of the block and returned with their rejection.
    pub fn produce(
        &mut self,
        txs: Vec<SignedTx>,
        time_ms: u64,
        proposer: AccountId,
    ) -> Result<BlockOutcome, ChainError> {
        let verified = verify_parallel(&txs);
        self.produce_checked(txs, verified, time_ms, proposer)
    }

    /// [`Chain::produce`] for transactions whose signatures the mempool checked at admission,
    /// by the same rule a batch applies: they are not checked twice. Replay checks them again.
    pub fn produce_admitted(
        &mut self,
        txs: Vec<SignedTx>,
        time_ms: u64,
        proposer: AccountId,
    ) -> Result<BlockOutcome, ChainError> {
        let verified = vec![true; txs.len()];
        self.produce_checked(txs, verified, time_ms, proposer)
    }

    /// Makes one block from each of `blocks` (transactions, time) in turn, as [`Chain::produce`]
    /// does, while the signatures of the next block are checked on other threads: a block's
    /// verification overlaps the previous block's apply and durable commit. `committed` gets
    /// each block's outcome with the block's tag once the block is durable; the first error,
    /// the chain's or `committed`'s, stops production.
    pub fn produce_pipelined<T: Send, E: From<ChainError>>(
        &mut self,
        blocks: impl Iterator<Item = (Vec<SignedTx>, u64, T)> + Send,
        proposer: AccountId,
        mut committed: impl FnMut(BlockOutcome, T) -> Result<(), E>,
    ) -> Result<(), E> {
        std::thread::scope(|scope| {
            let (sender, receiver) = sync_channel(1);
            scope.spawn(move || {
                for (txs, time_ms, tag) in blocks {
                    let verified = verify_parallel(&txs);
                    if sender.send((txs, verified, time_ms, tag)).is_err() {
                        return;
                    }
                }
            });
            for (txs, verified, time_ms, tag) in receiver {
                let outcome = self.produce_checked(txs, verified, time_ms, proposer)?;
                committed(outcome, tag)?;
            }
            Ok(())
        })
    }

    fn produce_checked(
        &mut self,
        txs: Vec<SignedTx>,
        verified: Vec<bool>,
        time_ms: u64,
        proposer: AccountId,
    ) -> Result<BlockOutcome, ChainError> {
        let (env, parent) = self.next_env(time_ms, proposer);
        let height = env.height;
        let executed = aicpw_ledger::execute_block(&mut self.state, &env, txs, &verified)
            .map_err(|violation| ChainError::Conservation { height, violation })?;
        let aicpw_ledger::Executed { included, receipts, events, rejected, state_root, changed } =
            executed;
        let header = BlockHeader {
            chain_id: env.chain_id,
            height: env.height,
            parent,
            time_ms: env.time_ms,
            proposer,
            randomness: env.randomness,
            tx_root: tx_root(&included),
            state_root,
            tx_count: included.len() as u32,
        };
        self.commit(Block { header: header.clone(), txs: included }, changed)?;
        Ok(BlockOutcome { header, receipts, events, rejected })
    }

    /// Makes `block` durable and the head, with the state entries it changed.
    fn commit(&mut self, block: Block, changed: EntryChanges) -> Result<(), ChainError> {
        self.db.commit_block(&block)?;
        let height = block.header.height;
        self.head = Some(block.header);
        self.pending.extend(changed);
        self.maybe_checkpoint(height)
    }

    /// Commits a block that validators finalized (another validator may have made it): it is
    /// re-executed here ([`aicpw_ledger::execute_block`]), every transaction must apply and the
    /// state root must be the one it names, then it is committed durably. Idempotent by height:
    /// a block at or below the head is not applied again (`None`) and must be the one stored at
    /// its height. An error leaves the state unusable: the validator stops, as on a
    /// conservation failure, and restarts from its last committed block.
    pub fn commit_finalized(&mut self, block: Block) -> Result<Option<BlockOutcome>, ChainError> {
        let height = block.header.height;
        let diverged = |reason: &str| ChainError::ReplayDiverged { height, reason: reason.into() };
        if height <= self.height() {
            let stored = self.db.block(height)?.map(|b| b.header.hash());
            return match stored == Some(block.header.hash()) {
                true => Ok(None),
                false => Err(diverged("another block is committed at this height")),
            };
        }
        if height != self.height() + 1
            || self.head.as_ref().is_some_and(|h| h.hash() != block.header.parent)
        {
            return Err(diverged("the block does not extend the head"));
        }
        let verified = verify_parallel(&block.txs);
        let executed = aicpw_ledger::execute_block(
            &mut self.state,
            &block.header.env(),
            block.txs.clone(),
            &verified,
        )
        .map_err(|violation| ChainError::Conservation { height, violation })?;
        if let Some((_, reject)) = executed.rejected.first() {
            return Err(diverged(&reject.to_string()));
        }
        if executed.state_root != block.header.state_root {
            return Err(diverged("state root"));
        }
        let aicpw_ledger::Executed { receipts, events, changed, .. } = executed;
        let header = block.header.clone();
        self.commit(block, changed)?;
        Ok(Some(BlockOutcome { header, receipts, events, rejected: Vec::new() }))
    }

    /// Re-executes the whole block log from genesis in memory and checks every block's state root;
    /// returns the final root, which must equal the stored state's.
    pub fn replay(&self) -> Result<Hash32, ChainError> {
        let mut state = State::genesis(&self.genesis);
        let (mut root, _) = state.finalize_root();
        for height in 1..=self.height() {
            let block = self
                .db
                .block(height)?
                .ok_or(ChainError::ReplayDiverged { height, reason: "block missing".into() })?;
            root = block.header.state_root;
            replay_block(&mut state, block)?;
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicpw_types::{Amount, Keypair};

    #[test]
    fn a_block_that_breaks_conservation_is_never_committed_and_the_node_halts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let proposer = Keypair::dev(0).account();
        let mut chain = Chain::open(dir.path(), Some(&crate::dev_genesis())).expect("open");
        chain.produce(Vec::new(), 1_000, proposer).expect("a block that adds up");
        // A rule with a bug: one token credited with nothing debited.
        let (env, _) = chain.next_env(2_000, proposer);
        let mut delta = aicpw_ledger::delta::Delta::new(&chain.state, &env);
        aicpw_ledger::money::credit(&mut delta, proposer, Amount(1)).expect("credit");
        let changes = delta.into_changes();
        chain.state.commit(changes);
        let Err(refused) = chain.produce(Vec::new(), 2_000, proposer) else {
            panic!("a block that does not add up was committed");
        };
        assert!(matches!(refused, ChainError::Conservation { height: 2, .. }), "{refused}");
        assert_eq!(chain.height(), 1, "the block was not committed");
        assert!(chain.block(2).expect("read").is_none());
        let again = chain.produce(Vec::new(), 3_000, proposer);
        assert!(matches!(again, Err(ChainError::Conservation { .. })), "it never continues");
        drop(chain);
        // Restarted, the node holds the last block that added up, and replays to it.
        let chain = Chain::open(dir.path(), None).expect("reopen");
        assert_eq!(chain.height(), 1);
        assert_eq!(chain.replay().expect("replay"), chain.head().expect("head").state_root);
    }
}
