//! The chain: ledger state plus its durable block log. Makes blocks (the single sequencer of the
//! embedded default), and replays the log to check the stored state.

use crate::db::{Db, DbError};
use aicpw_ledger::{Event, Genesis, Receipt, State};
use aicpw_types::tx::{tx_root, verify_batch};
use aicpw_types::{AccountId, Block, BlockEnv, BlockHeader, Hash32, Reject, SignedTx};
use std::path::Path;

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
        let db = Db::open(&data_dir.join("chain.redb"))?;
        if let Some(loaded) = db.load()? {
            if let Some(wanted) = genesis.filter(|g| g.chain_id != loaded.genesis.chain_id) {
                return Err(DbError::OtherChain {
                    found: loaded.genesis.chain_id,
                    expected: wanted.chain_id.clone(),
                }
                .into());
            }
            return Ok(Chain { db, genesis: loaded.genesis, state: loaded.state, head: loaded.head });
        }
        let genesis = genesis.ok_or(ChainError::NoGenesis)?.clone();
        let mut state = State::genesis(&genesis);
        state.finalize_root();
        db.init(&genesis, &state)?;
        Ok(Chain { db, genesis, state, head: None })
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
        let (env, parent) = self.next_env(time_ms, proposer);
        let mut events = aicpw_ledger::begin_block(&mut self.state, &env);
        let (mut included, mut receipts, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        for (tx, ok) in txs.into_iter().zip(verified) {
            let result = if ok {
                aicpw_ledger::apply_verified(&mut self.state, &tx, &env)
            } else {
                Err(Reject::BadSignature)
            };
            match result {
                Ok(receipt) => {
                    receipts.push(receipt);
                    included.push(tx);
                }
                Err(reject) => rejected.push((tx.tx.id(), reject)),
            }
        }
        events.extend(aicpw_ledger::end_block(&mut self.state, &env));
        let (state_root, changed) = self.state.finalize_root();
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
        let block = Block { header: header.clone(), txs: included };
        self.db.commit_block(&block, &self.state, &changed)?;
        self.head = Some(header.clone());
        Ok(BlockOutcome { header, receipts, events, rejected })
    }

    /// Re-executes the whole block log from genesis in memory and checks every block's state root;
    /// returns the final root, which must equal the stored state's.
    pub fn replay(&self) -> Result<Hash32, ChainError> {
        let mut state = State::genesis(&self.genesis);
        let (mut root, _) = state.finalize_root();
        for height in 1..=self.height() {
            let block = self.db.block(height)?.ok_or(ChainError::ReplayDiverged {
                height,
                reason: "block missing".into(),
            })?;
            let env = block.header.env();
            aicpw_ledger::begin_block(&mut state, &env);
            for tx in &block.txs {
                aicpw_ledger::apply(&mut state, tx, &env).map_err(|reject| {
                    ChainError::ReplayDiverged { height, reason: reject.to_string() }
                })?;
            }
            aicpw_ledger::end_block(&mut state, &env);
            root = state.finalize_root().0;
            if root != block.header.state_root {
                return Err(ChainError::ReplayDiverged { height, reason: "state root".into() });
            }
        }
        Ok(root)
    }
}
