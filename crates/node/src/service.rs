//! The running node: the mempool, the block producer loop, and the fan-out of events.
//!
//! The mempool admits only what could commit: a valid signature (the one rule of
//! [`aicpw_types::tx::verify_batch`]), the minimum fee, a nonce inside the signer's window, and a
//! balance that covers the fees and spending of all the signer's waiting transactions. It holds
//! one transaction per signer and nonce, keyed by the hash of the signed encoding, and bounds
//! each signer's share, so what one account sends costs that account alone.

use crate::chain::{BlockOutcome, Chain, ChainError};
use crate::content::Content;
use aicpw_ledger::{Event, State};
use aicpw_types::codec::Encode;
use aicpw_types::tx::BLOCK_TXS_MAX;
use aicpw_types::{AccountId, Amount, Hash32, Reject, SignedTx, TxBody};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot, Notify};

/// Transactions the mempool holds at most...
pub const MEMPOOL_TXS_MAX: usize = 100_000;
/// ...and encoded bytes.
pub const MEMPOOL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A signer's transactions wait only for nonces below its committed nonce plus this window, so
/// this many at most wait per signer...
pub const NONCE_WINDOW: u64 = 256;
/// ...in at most this many encoded bytes.
pub const SIGNER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A transaction still waiting for an earlier nonce after this long is dropped.
pub const NONCE_GAP_WAIT_MAX: Duration = Duration::from_secs(60);
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

struct Waiting {
    tx: SignedTx,
    id: Hash32,
    bytes: usize,
    since: Instant,
}

#[derive(Default)]
struct Mempool {
    /// Per signer, its waiting transactions by nonce.
    signers: HashMap<AccountId, BTreeMap<u64, Waiting>>,
    ids: HashSet<Hash32>,
    len: usize,
    bytes: usize,
    /// A transaction that can go into the next block arrived since the last block was made.
    ready: bool,
    waiters: HashMap<Hash32, Waiter>,
}

impl Mempool {
    fn remove(&mut self, signer: &AccountId, nonce: u64) -> Option<Waiting> {
        let queue = self.signers.get_mut(signer)?;
        let waiting = queue.remove(&nonce)?;
        if queue.is_empty() {
            self.signers.remove(signer);
        }
        self.ids.remove(&waiting.id);
        self.len -= 1;
        self.bytes -= waiting.bytes;
        Some(waiting)
    }

    /// Each signer's unbroken run of nonces from its nonce in `state`, signers in the order
    /// their run's first transaction arrived: the order transactions go into blocks.
    fn runs(&self, state: &State) -> Vec<(AccountId, Vec<u64>)> {
        let mut runs: Vec<(Instant, AccountId, Vec<u64>)> = Vec::new();
        for (signer, queue) in &self.signers {
            let next = state.accounts.get(signer).map_or(0, |a| a.nonce);
            let run: Vec<u64> = (next..).take_while(|n| queue.contains_key(n)).collect();
            if let Some(first) = run.first() {
                runs.push((queue[first].since, *signer, run));
            }
        }
        runs.sort_by_key(|(since, signer, _)| (*since, *signer));
        runs.into_iter().map(|(_, signer, run)| (signer, run)).collect()
    }

    /// Tells the submitter of `id`, if it waits, why its transaction will not commit.
    fn refuse(&mut self, id: &Hash32, reject: Reject) {
        if let Some(waiter) = self.waiters.remove(id) {
            // A waiter that went away (client disconnected) needs no answer.
            let _ = waiter.send(Err(reject));
        }
    }

    /// Drops the signer's transactions from nonce `first` on, telling each submitter `reject`.
    fn drop_from(&mut self, signer: &AccountId, first: u64, reject: Reject) {
        let nonces: Vec<u64> = self
            .signers
            .get(signer)
            .map_or(Vec::new(), |q| q.range(first..).map(|(n, _)| *n).collect());
        for nonce in nonces {
            if let Some(waiting) = self.remove(signer, nonce) {
                self.refuse(&waiting.id, reject);
            }
        }
    }
}

/// What a transaction takes from its signer's balance besides the fee, at least: the ledger
/// checks the exact amount when it applies it.
fn outlay(body: &TxBody) -> Amount {
    match body {
        TxBody::Transfer { amount, .. } | TxBody::Bond { amount } => *amount,
        TxBody::SubmitTask { terms, .. } => terms.budget,
        TxBody::DisputeResult { bond, .. } => *bond,
        _ => Amount::ZERO,
    }
}

pub struct Shared {
    chain: Mutex<Chain>,
    mempool: Mutex<Mempool>,
    wake: Notify,
    pub events: broadcast::Sender<Arc<serde_json::Value>>,
    pub content: Content,
    pub proposer: AccountId,
    pub metrics: crate::metrics::Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Shared {
    pub fn new(chain: Chain, content: Content, proposer: AccountId) -> Arc<Shared> {
        let (events, _) = broadcast::channel(EVENTS_BUFFERED_MAX);
        Arc::new(Shared {
            chain: Mutex::new(chain),
            mempool: Mutex::new(Mempool::default()),
            wake: Notify::new(),
            events,
            content,
            proposer,
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// The chain back from the last handle, to close it.
    pub fn into_chain(self: Arc<Self>) -> Option<Chain> {
        let shared = Arc::into_inner(self)?;
        Some(
            shared.chain.into_inner().expect("block production panicked; the node cannot continue"),
        )
    }

    /// The chain, for reads. A poisoned lock means block production panicked: the node must stop.
    /// Lock order: the chain before the mempool, never the other way.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().expect("block production panicked; the node cannot continue")
    }

    fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().expect("the mempool lock is never held across a panic")
    }

    /// Admits a transaction that could commit: limits and chain, signature, fee, a nonce in the
    /// signer's window, and a balance covering it after the signer's waiting transactions.
    pub fn submit(
        &self,
        tx: SignedTx,
        wait: bool,
    ) -> Result<(Hash32, Option<CommitWaiter>), Reject> {
        let (signer, nonce, bytes) = (tx.tx.signer, tx.tx.nonce, tx.to_bytes().len());
        let (committed, balance) = {
            let chain = self.chain();
            aicpw_ledger::check::stateless(&tx, &chain.genesis().chain_id)?;
            if tx.tx.fee < chain.state().params.fee_min {
                return Err(Reject::FeeTooLow);
            }
            let account = chain.state().accounts.get(&signer);
            (account.map_or(0, |a| a.nonce), account.map_or(Amount::ZERO, |a| a.balance))
        };
        if nonce < committed {
            return Err(Reject::NonceReplayed);
        }
        if nonce - committed >= NONCE_WINDOW {
            return Err(Reject::NonceTooFar);
        }
        // The costly check last, once the cheap ones passed, and outside every lock.
        if !tx.verify_signature() {
            return Err(Reject::BadSignature);
        }
        let id = tx.id();
        let mut pool = self.mempool();
        if pool.ids.contains(&id) {
            return Err(Reject::DuplicateTransaction);
        }
        let queue = pool.signers.get(&signer);
        if queue.is_some_and(|q| q.contains_key(&nonce)) {
            return Err(Reject::NoncePending);
        }
        let waiting = queue.into_iter().flat_map(BTreeMap::values);
        let (mut spent, mut signer_bytes) = (tx.tx.fee.checked_add(outlay(&tx.tx.body)), bytes);
        for w in waiting {
            spent =
                spent.and_then(|s| s.checked_add(w.tx.tx.fee)?.checked_add(outlay(&w.tx.tx.body)));
            signer_bytes += w.bytes;
        }
        if spent.is_none_or(|spent| spent > balance) {
            return Err(Reject::InsufficientBalance);
        }
        if signer_bytes > SIGNER_BYTES_MAX {
            return Err(Reject::SignerQuotaFull);
        }
        if pool.len >= MEMPOOL_TXS_MAX || pool.bytes + bytes > MEMPOOL_BYTES_MAX {
            return Err(Reject::MempoolFull);
        }
        let ready = (committed..nonce).all(|n| queue.is_some_and(|q| q.contains_key(&n)));
        pool.ids.insert(id);
        pool.len += 1;
        pool.bytes += bytes;
        pool.ready |= ready;
        let entry = Waiting { tx, id, bytes, since: Instant::now() };
        pool.signers.entry(signer).or_default().insert(nonce, entry);
        let receiver = wait.then(|| {
            let (sender, receiver) = oneshot::channel();
            pool.waiters.insert(id, sender);
            receiver
        });
        drop(pool);
        if ready {
            self.wake.notify_one();
        }
        Ok((id, receiver))
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool().len
    }

    /// The nonce a signer should use next: after its committed ones and those waiting here in an
    /// unbroken run after them.
    pub fn next_nonce(&self, who: &AccountId, committed: u64) -> u64 {
        let pool = self.mempool();
        let Some(queue) = pool.signers.get(who) else {
            return committed;
        };
        (committed..).find(|n| !queue.contains_key(n)).unwrap_or(committed)
    }

    /// Takes the next block's transactions: each signer's unbroken run from its committed nonce,
    /// signers in the order their oldest waiting transaction arrived. Drops what can no longer
    /// commit: nonces already used, and gaps waited on too long.
    fn take_batch(&self, state: &State) -> Vec<SignedTx> {
        let mut pool = self.mempool();
        let now = Instant::now();
        let mut dropped: Vec<(AccountId, u64, Reject)> = Vec::new();
        for (signer, queue) in &pool.signers {
            let committed = state.accounts.get(signer).map_or(0, |a| a.nonce);
            dropped.extend(
                queue.range(..committed).map(|(n, _)| (*signer, *n, Reject::NonceReplayed)),
            );
            let run = (committed..).take_while(|n| queue.contains_key(n)).count() as u64;
            dropped.extend(
                queue
                    .range(committed + run..)
                    .filter(|(_, w)| now.duration_since(w.since) > NONCE_GAP_WAIT_MAX)
                    .map(|(n, _)| (*signer, *n, Reject::MempoolExpired)),
            );
        }
        for (signer, nonce, reject) in dropped {
            if let Some(waiting) = pool.remove(&signer, nonce) {
                pool.refuse(&waiting.id, reject);
            }
        }
        let mut batch = Vec::new();
        for (signer, run) in pool.runs(state) {
            for nonce in run {
                if batch.len() == BLOCK_TXS_MAX {
                    pool.ready = true;
                    return batch;
                }
                let waiting = pool.remove(&signer, nonce).expect("the run was just read");
                batch.push(waiting.tx);
            }
        }
        pool.ready = false;
        batch
    }

    /// Answers the waiters of the block's transactions. A rejected transaction also drops its
    /// signer's later ones, which can no longer apply: its mistake is its signer's cost alone.
    fn publish(&self, outcome: &BlockOutcome, senders: &HashMap<Hash32, (AccountId, u64)>) {
        let height = outcome.header.height;
        // Counted before any waiter hears of its transaction, so a scrape after it sees the block.
        let events = outcome.receipts.iter().flat_map(|r| r.events.iter()).chain(&outcome.events);
        let values: Vec<serde_json::Value> =
            events.map(|e| serde_json::to_value(e).unwrap_or_default()).collect();
        let kinds = values.iter().filter_map(|v| v.get("event").and_then(|k| k.as_str()));
        self.metrics.block(outcome.receipts.len(), outcome.rejected.len(), kinds);
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
            pool.refuse(id, *reject);
            if let Some((signer, nonce)) = senders.get(id) {
                pool.drop_from(signer, nonce + 1, Reject::EarlierRejected);
            }
        }
        drop(pool);
        tracing::debug!(
            height,
            txs = outcome.receipts.len(),
            rejected = outcome.rejected.len(),
            events = values.len(),
            "block made"
        );
        for mut value in values {
            if let Some(map) = value.as_object_mut() {
                map.insert("height".into(), height.into());
            }
            // No subscriber is not an error: events are also in the block log.
            let _ = self.events.send(Arc::new(value));
        }
    }

    /// Makes one block from the mempool (possibly empty) and tells waiters and subscribers.
    pub fn produce_once(&self) -> Result<BlockOutcome, ChainError> {
        let mut chain = self.chain();
        let batch = self.take_batch(chain.state());
        let senders = batch.iter().map(|tx| (tx.id(), (tx.tx.signer, tx.tx.nonce))).collect();
        let outcome = chain.produce_admitted(batch, now_ms(), self.proposer)?;
        drop(chain);
        self.publish(&outcome, &senders);
        Ok(outcome)
    }

    /// A validator's next proposal on `state` (the state after the block it extends, which may
    /// be ahead of the committed chain): at most `max` transactions, in the order
    /// [`Shared::produce_once`] takes them. Nothing is taken out of the mempool: the block may
    /// never be finalized.
    pub fn pending(&self, state: &State, max: usize) -> Vec<SignedTx> {
        let pool = self.mempool();
        let queued = pool.runs(state).into_iter().flat_map(|(signer, run)| {
            let queue = &pool.signers[&signer];
            run.into_iter().map(move |nonce| queue[&nonce].tx.clone())
        });
        queued.take(max).collect()
    }

    /// Commits a block the validators finalized ([`Chain::commit_finalized`]), drops from the
    /// mempool what it made stale (its transactions, and others with their nonces), and tells
    /// waiters and subscribers. Returns whether the block was new (not committed before).
    pub fn commit_finalized(&self, block: aicpw_types::Block) -> Result<bool, ChainError> {
        let mut chain = self.chain();
        let Some(outcome) = chain.commit_finalized(block)? else { return Ok(false) };
        let state = chain.state();
        {
            let mut pool = self.mempool();
            let stale: Vec<(AccountId, u64)> = pool
                .signers
                .iter()
                .flat_map(|(signer, queue)| {
                    let next = state.accounts.get(signer).map_or(0, |a| a.nonce);
                    queue.range(..next).map(|(nonce, _)| (*signer, *nonce))
                })
                .collect();
            let included: HashSet<Hash32> = outcome.receipts.iter().map(|r| r.tx_id).collect();
            for (signer, nonce) in stale {
                if let Some(waiting) = pool.remove(&signer, nonce) {
                    if !included.contains(&waiting.id) {
                        pool.refuse(&waiting.id, Reject::NonceReplayed);
                    }
                }
            }
        }
        drop(chain);
        self.publish(&outcome, &HashMap::new());
        Ok(true)
    }

    /// Whether a transaction that can go into the next block waits.
    fn has_ready(&self) -> bool {
        self.mempool().ready
    }

    /// Produces blocks until the process ends: as soon as transactions arrive (they accumulate
    /// while the previous block commits, which batches them), and at least every idle interval.
    pub async fn run_producer(self: Arc<Self>) -> Result<(), ChainError> {
        loop {
            let idle = tokio::time::timeout(BLOCK_INTERVAL_IDLE, self.wake.notified()).await;
            if idle.is_ok() && !self.has_ready() {
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
            if self.has_ready() {
                self.wake.notify_one();
            }
        }
    }
}
