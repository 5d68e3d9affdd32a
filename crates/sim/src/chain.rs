//! The simulated sequencer: a mempool and block production over the real, pure ledger.
//!
//! Transactions carry no signature: the simulation calls `apply_verified`, as a node does after
//! its batch signature check. Forgery is the ledger's own tests' business; here every party signs
//! only as itself, and what is tested is the protocol between parties.

use aicpw_ledger::{apply_verified, begin_block, end_block, Event, Genesis, Params, State};
use aicpw_types::{AccountId, Amount, BlockEnv, Hash32, Reject, SignedTx, Tx, TxBody};
use std::collections::BTreeMap;

/// A transaction that waited this long in the mempool (a nonce gap never filled) is dropped.
pub const MEMPOOL_TTL_MS: u64 = 10_000;
/// Most transactions the mempool holds; past it new ones are refused (lost, to the sender).
pub const MEMPOOL_TXS_MAX: usize = 100_000;
/// The fee every simulated transaction pays.
pub const FEE: Amount = Amount(10);

struct Pending {
    arrival: u64,
    arrived_ms: u64,
    tx: SignedTx,
}

/// A rejected transaction, reported back to its signer as the node's API would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub signer: AccountId,
    pub nonce: u64,
    pub kind: &'static str,
    pub reject: Reject,
}

/// What one block did.
#[derive(Debug, Default)]
pub struct BlockOutcome {
    pub height: u64,
    pub events: Vec<Event>,
    pub included: Vec<TxBody>,
    pub included_signers: Vec<AccountId>,
    pub rejected: Vec<Rejection>,
    /// The ledger found money not conserved at the end of the block (a node would halt).
    pub violation: Option<String>,
}

pub struct Chain {
    pub state: State,
    pub chain_id: String,
    pub proposer: AccountId,
    pub height: u64,
    seed: u64,
    mempool: BTreeMap<(AccountId, u64), Pending>,
    arrivals: u64,
    pub txs_included: u64,
    pub txs_rejected: u64,
    pub txs_expired: u64,
}

impl Chain {
    pub fn new(
        params: Params,
        accounts: Vec<(AccountId, Amount)>,
        proposer: AccountId,
        seed: u64,
    ) -> Chain {
        let chain_id = "aicpw-sim".to_string();
        let genesis = Genesis { chain_id: chain_id.clone(), params, accounts };
        Chain {
            state: State::genesis(&genesis),
            chain_id,
            proposer,
            height: 0,
            seed,
            mempool: BTreeMap::new(),
            arrivals: 0,
            txs_included: 0,
            txs_rejected: 0,
            txs_expired: 0,
        }
    }

    /// An unsigned transaction from `signer` with `nonce` (see the module note on signatures).
    pub fn transaction(&self, signer: AccountId, nonce: u64, body: TxBody) -> SignedTx {
        let tx = Tx { chain_id: self.chain_id.clone(), signer, nonce, fee: FEE, body };
        SignedTx { tx, signature: [0; 64] }
    }

    /// A transaction reaches the sequencer. One with the same signer and nonce replaces the
    /// earlier one (the sender re-signed after a resync).
    pub fn receive(&mut self, tx: SignedTx, now: u64) {
        let key = (tx.tx.signer, tx.tx.nonce);
        if self.mempool.len() >= MEMPOOL_TXS_MAX && !self.mempool.contains_key(&key) {
            return;
        }
        self.arrivals += 1;
        self.mempool.insert(key, Pending { arrival: self.arrivals, arrived_ms: now, tx });
    }

    /// The block randomness: unpredictable to the parties, fixed by the seed.
    fn randomness(&self, height: u64) -> Hash32 {
        let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 sim block randomness v1");
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(&height.to_le_bytes());
        Hash32(*hasher.finalize().as_bytes())
    }

    pub fn env(&self, height: u64, now: u64) -> BlockEnv {
        BlockEnv {
            chain_id: self.chain_id.clone(),
            height,
            time_ms: now,
            proposer: self.proposer,
            randomness: self.randomness(height),
        }
    }

    /// Makes one block at `now`: time-based rules, the mempool in arrival order (each signer's
    /// transactions in nonce order), then placements.
    pub fn produce(&mut self, now: u64) -> BlockOutcome {
        self.height += 1;
        let env = self.env(self.height, now);
        let mut outcome = BlockOutcome { height: self.height, ..BlockOutcome::default() };
        outcome.events.extend(begin_block(&mut self.state, &env));
        self.apply_mempool(&env, &mut outcome);
        match end_block(&mut self.state, &env) {
            Ok(events) => outcome.events.extend(events),
            Err(violation) => outcome.violation = Some(violation.to_string()),
        }
        self.state.finalize_root();
        self.expire(now);
        outcome
    }

    fn apply_mempool(&mut self, env: &BlockEnv, outcome: &mut BlockOutcome) {
        loop {
            let mut ready: Vec<(u64, (AccountId, u64))> = Vec::new();
            let mut stale: Vec<(AccountId, u64)> = Vec::new();
            for (key, pending) in &self.mempool {
                let next = self.state.accounts.get(&key.0).map(|a| a.nonce).unwrap_or(0);
                if key.1 < next {
                    stale.push(*key);
                } else if key.1 == next {
                    ready.push((pending.arrival, *key));
                }
            }
            for key in stale {
                self.mempool.remove(&key);
            }
            if ready.is_empty() {
                return;
            }
            ready.sort_unstable();
            for (_, key) in ready {
                let Some(pending) = self.mempool.remove(&key) else { continue };
                self.apply_one(&pending.tx, env, outcome);
            }
        }
    }

    fn apply_one(&mut self, tx: &SignedTx, env: &BlockEnv, outcome: &mut BlockOutcome) {
        match apply_verified(&mut self.state, tx, env) {
            Ok(receipt) => {
                self.txs_included += 1;
                outcome.events.extend(receipt.events);
                outcome.included.push(tx.tx.body.clone());
                outcome.included_signers.push(tx.tx.signer);
            }
            Err(reject) => {
                self.txs_rejected += 1;
                outcome.rejected.push(Rejection {
                    signer: tx.tx.signer,
                    nonce: tx.tx.nonce,
                    kind: tx.tx.body.kind(),
                    reject,
                });
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let before = self.mempool.len();
        self.mempool.retain(|_, p| p.arrived_ms + MEMPOOL_TTL_MS > now);
        self.txs_expired += (before - self.mempool.len()) as u64;
    }
}
