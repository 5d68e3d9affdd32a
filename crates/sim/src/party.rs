//! What every simulated party shares: a wallet that tracks nonces through loss and rejection,
//! the context a party acts in when it wakes, and the messages parties send each other.

use crate::net::PartyId;
use crate::rng::SimRng;
use aicpw_ledger::State;
use aicpw_types::{AccountId, Hash32, TaskId, TxBody};

/// A sender whose transactions have not advanced its nonce for this long assumes one was lost
/// and re-signs from the chain's nonce.
pub const RESYNC_MS: u64 = 5_000;

/// An account's view of its own nonces.
#[derive(Clone, Debug)]
pub struct Wallet {
    pub account: AccountId,
    pub next_nonce: u64,
    chain_nonce: u64,
    progress_ms: u64,
}

impl Wallet {
    pub fn new(account: AccountId) -> Wallet {
        Wallet { account, next_nonce: 0, chain_nonce: 0, progress_ms: 0 }
    }

    /// Looks at the chain's nonce; after [`RESYNC_MS`] without progress on transactions in
    /// flight, starts again from it.
    pub fn sync(&mut self, state: &State, now: u64) {
        let chain = state.accounts.get(&self.account).map(|a| a.nonce).unwrap_or(0);
        if chain != self.chain_nonce {
            self.chain_nonce = chain;
            self.progress_ms = now;
        }
        let stalled = now.saturating_sub(self.progress_ms) >= RESYNC_MS;
        if chain >= self.next_nonce || stalled {
            self.next_nonce = chain;
            self.progress_ms = now;
        }
    }

    /// The nonce for the next transaction.
    pub fn take_nonce(&mut self, now: u64) -> u64 {
        if self.next_nonce == self.chain_nonce {
            self.progress_ms = now;
        }
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        nonce
    }

    /// The nonce the transaction a party queues now will get, `queued` transactions already
    /// being queued in this wake.
    pub fn nonce_of(&self, queued: usize) -> u64 {
        self.next_nonce + queued as u64
    }

    /// Whether the transaction sent with `nonce` is settled: the chain moved past it (included
    /// or refused), or this wallet started again below it (it was lost). Until then, sending it
    /// again could get both in.
    pub fn settled(&self, nonce: u64) -> bool {
        self.chain_nonce > nonce || self.next_nonce <= nonce
    }

    /// The sequencer refused the transaction with `nonce`: that nonce is free again.
    pub fn rejected(&mut self, nonce: u64) {
        if nonce >= self.chain_nonce && nonce < self.next_nonce {
            self.next_nonce = nonce;
        }
    }
}

/// A message between parties (outside the chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "This is my output for this task": what a copying or colluding replica hopes to get.
    Output { task: TaskId, output_hash: Hash32 },
    /// "I forged my result of this task": a worker to the requester it colludes with.
    Forged { task: TaskId },
}

/// The world as a party sees it when it wakes, and where it puts what it does.
pub struct Ctx<'a> {
    pub now: u64,
    pub me: PartyId,
    /// The chain as of now; parties observe it through the network, so a party cut off by a
    /// partition is not woken at all.
    pub state: &'a State,
    pub rng: &'a mut SimRng,
    pub txs: Vec<TxBody>,
    pub messages: Vec<(PartyId, Message)>,
}

impl Ctx<'_> {
    pub fn send(&mut self, body: TxBody) {
        self.txs.push(body);
    }
    pub fn tell(&mut self, to: PartyId, message: Message) {
        self.messages.push((to, message));
    }
}

/// Whether an action was sent recently enough not to repeat it yet.
pub fn sent_recently(sent_ms: Option<u64>, now: u64, interval_ms: u64) -> bool {
    sent_ms.is_some_and(|at| now < at + interval_ms)
}
