//! The running node: a bounded mempool, the block producer loop, and the fan-out of events.

use crate::chain::{BlockOutcome, Chain, ChainError};
use aicpw_ledger::Event;
use aicpw_store::Store;
use aicpw_types::tx::BLOCK_TXS_MAX;
use aicpw_types::{AccountId, Hash32, Reject, SignedTx};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot, Notify};

/// Transactions the mempool holds at most.
pub const MEMPOOL_TXS_MAX: usize = 100_000;
/// Events buffered for slow subscribers before they are told they lagged.
pub const EVENTS_BUFFERED_MAX: usize = 16_384;
/// A block is made at least this often, so time-based rules (expiry, matching) run without traffic.
pub const BLOCK_INTERVAL_IDLE: Duration = Duration::from_millis(500);

/// What a submitter learns once its transaction is in a committed block.
#[derive(Clone, Debug, Serialize)]
pub struct Committed {
    pub tx_id: Hash32,
    pub height: u64,
    pub events: Vec<Event>,
}

type Waiter = oneshot::Sender<Result<Committed, Reject>>;
/// Resolves once the transaction is in a committed block, or was left out with a rejection.
pub type CommitWaiter = oneshot::Receiver<Result<Committed, Reject>>;

#[derive(Default)]
struct Mempool {
    queue: VecDeque<SignedTx>,
    ids: HashSet<Hash32>,
    /// Per signer with transactions waiting: the nonce after its highest waiting one.
    next_nonces: HashMap<AccountId, u64>,
    waiters: HashMap<Hash32, Waiter>,
}

pub struct Shared {
    chain: Mutex<Chain>,
    mempool: Mutex<Mempool>,
    wake: Notify,
    pub events: broadcast::Sender<Arc<serde_json::Value>>,
    pub store: Store,
    pub proposer: AccountId,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("content store: {0}")]
    Store(#[from] aicpw_store::StoreError),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Shared {
    pub fn new(chain: Chain, store: Store, proposer: AccountId) -> Arc<Shared> {
        let (events, _) = broadcast::channel(EVENTS_BUFFERED_MAX);
        Arc::new(Shared {
            chain: Mutex::new(chain),
            mempool: Mutex::new(Mempool::default()),
            wake: Notify::new(),
            events,
            store,
            proposer,
        })
    }

    /// The chain, for reads. A poisoned lock means block production panicked: the node must stop.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().expect("block production panicked; the node cannot continue")
    }

    fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().expect("the mempool lock is never held across a panic")
    }

    /// Admits a transaction after the checks that need no block: limits, chain, nonce not replayed.
    pub fn submit(
        &self,
        tx: SignedTx,
        wait: bool,
    ) -> Result<(Hash32, Option<CommitWaiter>), Reject> {
        let id = tx.tx.id();
        {
            let chain = self.chain();
            aicpw_ledger::check::stateless(&tx, &chain.genesis().chain_id)?;
            let nonce = chain.state().accounts.get(&tx.tx.signer).map_or(0, |a| a.nonce);
            if tx.tx.nonce < nonce {
                return Err(Reject::NonceReplayed);
            }
        }
        let mut pool = self.mempool();
        if pool.ids.contains(&id) {
            return Err(Reject::DuplicateTransaction);
        }
        if pool.queue.len() >= MEMPOOL_TXS_MAX {
            return Err(Reject::MempoolFull);
        }
        pool.ids.insert(id);
        let next = pool.next_nonces.entry(tx.tx.signer).or_default();
        *next = (*next).max(tx.tx.nonce + 1);
        pool.queue.push_back(tx);
        let receiver = wait.then(|| {
            let (sender, receiver) = oneshot::channel();
            pool.waiters.insert(id, sender);
            receiver
        });
        drop(pool);
        self.wake.notify_one();
        Ok((id, receiver))
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool().queue.len()
    }

    /// The nonce a signer should use next: after its committed ones and those waiting here.
    pub fn next_nonce(&self, who: &AccountId, committed: u64) -> u64 {
        self.mempool().next_nonces.get(who).map_or(committed, |waiting| committed.max(*waiting))
    }

    fn take_batch(&self) -> Vec<SignedTx> {
        let mut pool = self.mempool();
        let n = pool.queue.len().min(BLOCK_TXS_MAX);
        let batch: Vec<SignedTx> = pool.queue.drain(..n).collect();
        for tx in &batch {
            pool.ids.remove(&tx.tx.id());
        }
        if pool.queue.is_empty() {
            pool.next_nonces.clear();
        } else {
            let waiting: HashSet<AccountId> = pool.queue.iter().map(|tx| tx.tx.signer).collect();
            pool.next_nonces.retain(|who, _| waiting.contains(who));
        }
        batch
    }

    fn publish(&self, outcome: &BlockOutcome) {
        let height = outcome.header.height;
        let mut pool = self.mempool();
        for receipt in &outcome.receipts {
            if let Some(waiter) = pool.waiters.remove(&receipt.tx_id) {
                let committed =
                    Committed { tx_id: receipt.tx_id, height, events: receipt.events.clone() };
                // A waiter that went away (client disconnected) needs no answer.
                let _ = waiter.send(Ok(committed));
            }
        }
        for (id, reject) in &outcome.rejected {
            if let Some(waiter) = pool.waiters.remove(id) {
                let _ = waiter.send(Err(*reject));
            }
        }
        drop(pool);
        let events = outcome.receipts.iter().flat_map(|r| r.events.iter()).chain(&outcome.events);
        for event in events {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("height".into(), height.into());
            }
            // No subscriber is not an error: events are also in the block log.
            let _ = self.events.send(Arc::new(value));
        }
    }

    /// Makes one block from the mempool (possibly empty) and tells waiters and subscribers.
    pub fn produce_once(&self) -> Result<BlockOutcome, ChainError> {
        let batch = self.take_batch();
        let outcome = self.chain().produce(batch, now_ms(), self.proposer)?;
        self.publish(&outcome);
        Ok(outcome)
    }

    /// Produces blocks until the process ends: as soon as transactions arrive (they accumulate
    /// while the previous block commits, which batches them), and at least every idle interval.
    pub async fn run_producer(self: Arc<Self>) -> Result<(), ChainError> {
        loop {
            let idle = tokio::time::timeout(BLOCK_INTERVAL_IDLE, self.wake.notified()).await;
            let has_txs = self.mempool_len() > 0;
            if idle.is_ok() && !has_txs {
                continue;
            }
            let shared = self.clone();
            let produced = tokio::task::spawn_blocking(move || shared.produce_once()).await;
            match produced {
                Ok(result) => {
                    result?;
                }
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
            if self.mempool_len() > 0 {
                self.wake.notify_one();
            }
        }
    }
}
