//! A validator's application: the ledger under simplex. It proposes blocks from its mempool,
//! verifies proposals by re-executing them on their parent's state, relays blocks to the other
//! validators, fetches blocks it lacks, and applies blocks once, in height order, when they are
//! finalized.

use crate::block::{self, Envelope, Expected};
use crate::{Ctx, Scheme};
use aicpw_ledger::State;
use aicpw_types::{AccountId, Block, BlockHeader, Hash32, SignedTx};
use commonware_actor::Feedback;
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::{Seed, Seedable};
use commonware_consensus::simplex::types::{Activity, Attributable};
use commonware_consensus::simplex::Plan;
use commonware_consensus::types::View;
use commonware_consensus::Viewable;
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519::PublicKey;
use commonware_cryptography::sha256::Digest;
use commonware_macros::select;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, Spawner, Supervisor};
use commonware_utils::channel::{mpsc, oneshot};
use commonware_utils::Participant;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Transactions a leader puts in one block, at most.
pub const BLOCK_TXS: usize = 4_096;
/// How often a validator asks its peers again for blocks it lacks.
const FETCH_RETRY: Duration = Duration::from_millis(250);
/// How often a leader with nothing to propose yet looks again (its mempool, its clock).
const PROPOSE_RETRY: Duration = Duration::from_millis(10);

/// The account of a validator's consensus key (the same ed25519 key).
pub fn account_of(key: &PublicKey) -> AccountId {
    let bytes: &[u8] = key.as_ref();
    let mut id = [0u8; 32];
    id.copy_from_slice(bytes);
    AccountId(id)
}

/// A misbehaviour the engine proved with two signed messages of one validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub validator: AccountId,
    pub view: u64,
    pub kind: &'static str,
}

/// What a validator finalized, for its operator and for the checks of the tests and the
/// simulation: each block's digest and state root by height, and anything that went wrong.
#[derive(Default, Debug)]
pub struct Record {
    pub finalized: Vec<(Hash32, Hash32)>,
    /// The proposer of each finalized block.
    pub proposers: Vec<AccountId>,
    /// Finalization time (the runtime's clock, ms) of each height, and its block's time.
    pub finality_ms: Vec<(u64, u64)>,
    pub txs: u64,
    /// Proposals this validator voted against (their re-execution did not match).
    pub refused: u64,
    pub evidence: Vec<Evidence>,
    /// A finalized block this validator could not apply, or an invariant broken after one.
    pub violations: Vec<String>,
    pub state_hash: Hash32,
}

pub type Shared = Arc<Mutex<Record>>;

enum Message {
    Propose { context: Ctx, response: oneshot::Sender<Digest> },
    Verify { context: Ctx, payload: Digest, response: oneshot::Sender<bool> },
    Broadcast { payload: Digest },
    Activity(Box<Activity<Scheme, Digest>>),
}

/// The engine's handle on the application.
#[derive(Clone)]
pub struct Mailbox {
    sender: mpsc::UnboundedSender<Message>,
}

impl Automaton for Mailbox {
    type Context = Ctx;
    type Digest = Digest;

    async fn propose(&mut self, context: Ctx) -> oneshot::Receiver<Digest> {
        let (response, receiver) = oneshot::channel();
        let _ = self.sender.send(Message::Propose { context, response });
        receiver
    }

    async fn verify(&mut self, context: Ctx, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, receiver) = oneshot::channel();
        let _ = self.sender.send(Message::Verify { context, payload, response });
        receiver
    }
}

impl CertifiableAutomaton for Mailbox {}

impl Relay for Mailbox {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Digest, _plan: Plan<PublicKey>) -> Feedback {
        match self.sender.send(Message::Broadcast { payload }) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

impl Reporter for Mailbox {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match self.sender.send(Message::Activity(Box::new(activity))) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

/// Where a validator's transactions come from and where its finalized blocks go: the
/// simulation's shared list ([`Mempool`]), or a node's mempool and durable chain
/// ([`crate::validator`]).
pub trait Host: Send + 'static {
    /// Transactions for a block on `state` (the state after the block it extends): each
    /// signer's in nonce order from its nonce in `state`, at most [`BLOCK_TXS`].
    fn pending(&mut self, state: &State) -> Vec<SignedTx>;
    /// `block` was finalized and applied, giving `state`; an error stops the validator.
    fn finalized(&mut self, block: &Block, state: &State) -> Result<(), String>;
}

/// The simulation's mempool: its clients add transactions, finalized blocks drop them.
pub type Mempool = Arc<Mutex<Vec<SignedTx>>>;

impl Host for Mempool {
    fn pending(&mut self, state: &State) -> Vec<SignedTx> {
        let mempool = self.lock().expect("no panics while locked");
        let mut txs: Vec<SignedTx> = mempool
            .iter()
            .filter(|tx| tx.tx.nonce >= state.accounts.get(&tx.tx.signer).map_or(0, |a| a.nonce))
            .take(BLOCK_TXS)
            .cloned()
            .collect();
        txs.sort_by_key(|tx| (tx.tx.signer, tx.tx.nonce));
        txs
    }

    fn finalized(&mut self, _block: &Block, state: &State) -> Result<(), String> {
        let mut mempool = self.lock().expect("no panics while locked");
        mempool
            .retain(|tx| tx.tx.nonce >= state.accounts.get(&tx.tx.signer).map_or(0, |a| a.nonce));
        Ok(())
    }
}

/// A block this validator holds and, once executed, the state after it.
struct Known {
    envelope: Envelope,
    state: Option<State>,
}

pub struct Application<E, H> {
    context: E,
    scheme: Scheme,
    genesis: State,
    genesis_digest: Digest,
    mailbox: Option<mpsc::UnboundedReceiver<Message>>,
    host: H,
    record: Shared,
    blocks: HashMap<Digest, Known>,
    /// The seed of each view seen notarized or finalized.
    seeds: BTreeMap<u64, Seed<MinSig>>,
    /// Finalized head: digest, header (none at genesis) and state.
    head: (Digest, Option<BlockHeader>),
    state: State,
    /// The highest finalized digest not yet applied (its ancestors may be missing).
    target: Option<Digest>,
    proposals: Vec<(Ctx, oneshot::Sender<Digest>)>,
    /// A Byzantine leader (the simulation's `liar` fault): its blocks name a wrong state root.
    lying: bool,
    /// An empty block is proposed only this long after its parent's time (0: at once).
    empty_block_ms: u64,
    /// The host could not take a finalized block: the validator stops.
    halted: bool,
    /// The height of the head this validator resumed from (0: it started from genesis).
    resumed_at: u64,
    verifies: Vec<(Ctx, Digest, oneshot::Sender<bool>)>,
}

impl<E: Clock + Spawner + Supervisor, H: Host> Application<E, H> {
    pub fn new(
        context: E,
        scheme: Scheme,
        genesis: State,
        host: H,
        record: Shared,
    ) -> (Application<E, H>, Mailbox) {
        let (sender, mailbox) = mpsc::unbounded_channel();
        let genesis_digest = block::genesis_digest(&genesis.meta.chain_id);
        let app = Application {
            context,
            scheme,
            state: genesis.clone(),
            genesis,
            genesis_digest,
            mailbox: Some(mailbox),
            host,
            record,
            blocks: HashMap::new(),
            seeds: BTreeMap::new(),
            head: (genesis_digest, None),
            target: None,
            proposals: Vec::new(),
            lying: false,
            empty_block_ms: 0,
            halted: false,
            resumed_at: 0,
            verifies: Vec::new(),
        };
        (app, Mailbox { sender })
    }

    /// Makes this validator a Byzantine leader for the simulation: every block it proposes names
    /// a state root its transactions do not lead to (it still votes as the others do).
    pub fn lying(mut self) -> Self {
        self.lying = true;
        self
    }

    /// Proposes an empty block only `ms` after its parent's time, so an idle network does not
    /// finalize blocks as fast as its links allow (a block with transactions goes at once).
    pub fn pace(mut self, ms: u64) -> Self {
        self.empty_block_ms = ms;
        self
    }

    /// Starts from a finalized head applied before (a restarted validator's committed chain):
    /// finalizations at or below it are not applied again.
    pub fn resume(mut self, head: BlockHeader, state: State) -> Self {
        self.resumed_at = head.height;
        self.head = (block::digest(&head), Some(head));
        self.state = state;
        self
    }

    pub fn genesis_digest(&self) -> Digest {
        self.genesis_digest
    }

    /// Runs the application with the block channel (`sender`, `receiver`) to its peers.
    pub fn start<S, R>(self, sender: S, receiver: R) -> Handle<()>
    where
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
    {
        let context = self.context.child("run");
        context.spawn(move |_| self.run(sender, receiver))
    }

    fn now_ms(&self) -> u64 {
        let since = self.context.current().duration_since(UNIX_EPOCH).unwrap_or_default();
        since.as_millis() as u64
    }

    async fn run<S, R>(mut self, mut sender: S, mut receiver: R)
    where
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
    {
        let mut mailbox = self.mailbox.take().expect("an application runs once");
        let mut next_fetch = self.context.current() + FETCH_RETRY;
        while !self.halted {
            let wake = match self.proposals.is_empty() {
                true => next_fetch,
                false => next_fetch.min(self.context.current() + PROPOSE_RETRY),
            };
            select! {
                message = mailbox.recv() => {
                    let Some(message) = message else { return };
                    self.handle(message, &mut sender);
                },
                incoming = receiver.recv() => {
                    let Ok((peer, bytes)) = incoming else { return };
                    self.incoming(peer, bytes.as_ref(), &mut sender);
                },
                _ = self.context.sleep_until(wake) => {
                    if self.context.current() >= next_fetch {
                        next_fetch = self.context.current() + FETCH_RETRY;
                        self.fetch_missing(&mut sender);
                    }
                },
            }
            self.progress();
        }
    }

    fn handle<S: Sender<PublicKey = PublicKey>>(&mut self, message: Message, sender: &mut S) {
        match message {
            Message::Propose { context, response } => self.proposals.push((context, response)),
            Message::Verify { context, payload, response } => {
                self.verifies.push((context, payload, response))
            }
            Message::Broadcast { payload } => {
                if let Some(known) = self.blocks.get(&payload) {
                    let mut bytes = vec![0u8];
                    bytes.extend_from_slice(&known.envelope.to_bytes());
                    let _ = sender.send(Recipients::All, bytes, false);
                }
            }
            Message::Activity(activity) => self.activity(*activity),
        }
    }

    fn activity(&mut self, activity: Activity<Scheme, Digest>) {
        match activity {
            Activity::Notarization(notarization) | Activity::Certification(notarization) => {
                let seed = notarization.seed();
                self.seeds.insert(seed.round.view().get(), seed);
            }
            Activity::Finalization(finalization) => {
                let seed = finalization.seed();
                self.seeds.insert(seed.round.view().get(), seed);
                self.target = Some(finalization.proposal.payload);
            }
            Activity::ConflictingNotarize(proof) => {
                self.evidence(proof.signer(), proof.view(), "conflicting-notarize")
            }
            Activity::ConflictingFinalize(proof) => {
                self.evidence(proof.signer(), proof.view(), "conflicting-finalize")
            }
            Activity::NullifyFinalize(proof) => {
                self.evidence(proof.signer(), proof.view(), "nullify-and-finalize")
            }
            _ => {}
        }
    }

    fn evidence(&mut self, signer: Participant, view: View, kind: &'static str) {
        let Some(key) = self.scheme.participants().get(usize::from(signer)) else { return };
        let validator = account_of(key);
        let mut record = self.record.lock().expect("no panics while locked");
        let evidence = Evidence { validator, view: view.get(), kind };
        if !record.evidence.contains(&evidence) {
            record.evidence.push(evidence);
        }
    }

    fn incoming<S: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        bytes: &[u8],
        sender: &mut S,
    ) {
        match bytes.split_first() {
            Some((0, rest)) => {
                if let Some(envelope) = Envelope::from_bytes(rest) {
                    let digest = envelope.digest();
                    if let Entry::Vacant(slot) = self.blocks.entry(digest) {
                        slot.insert(Known { envelope, state: None });
                        // Catching up: ask for the next missing ancestor at once.
                        self.fetch_missing(sender);
                    }
                }
            }
            Some((1, rest)) if rest.len() == 32 => {
                let mut wanted = [0u8; 32];
                wanted.copy_from_slice(rest);
                if let Some(known) = self.blocks.get(&Digest(wanted)) {
                    let mut reply = vec![0u8];
                    reply.extend_from_slice(&known.envelope.to_bytes());
                    let _ = sender.send(Recipients::One(peer), reply, false);
                }
            }
            _ => {}
        }
    }

    /// Asks every peer for the blocks between the finalized head and the latest finalization
    /// that this validator does not hold, and for the parents of pending proposals.
    fn fetch_missing<S: Sender<PublicKey = PublicKey>>(&mut self, sender: &mut S) {
        let mut wanted = Vec::new();
        if let Some(target) = self.target {
            if let Some(missing) = self.first_missing(target) {
                wanted.push(missing);
            }
        }
        for (context, payload, _) in &self.verifies {
            for digest in [*payload, context.parent.1] {
                if let Some(missing) = self.first_missing(digest) {
                    wanted.push(missing);
                }
            }
        }
        for digest in wanted {
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(&digest.0);
            let _ = sender.send(Recipients::All, bytes, false);
        }
    }

    /// The first block missing on the way from `digest` back to a block whose state is known.
    fn first_missing(&self, mut digest: Digest) -> Option<Digest> {
        loop {
            if digest == self.genesis_digest || digest == self.head.0 {
                return None;
            }
            let Some(known) = self.blocks.get(&digest) else { return Some(digest) };
            if known.state.is_some() {
                return None;
            }
            digest = known.envelope.parent();
        }
    }

    /// The state after `digest`, executing its unexecuted ancestors (each checked as a proposal
    /// is) when their blocks are here; `None` while a block is missing or one is invalid.
    fn state_after(&mut self, digest: Digest) -> Option<State> {
        let mut chain = Vec::new();
        let mut cursor = digest;
        let base = loop {
            if cursor == self.head.0 {
                break self.state.clone();
            }
            if cursor == self.genesis_digest {
                break self.genesis.clone();
            }
            let known = self.blocks.get(&cursor)?;
            if let Some(state) = &known.state {
                break state.clone();
            }
            chain.push(cursor);
            cursor = known.envelope.parent();
        };
        let mut state = base;
        for digest in chain.into_iter().rev() {
            let envelope = self.blocks.get(&digest)?.envelope.clone();
            let parent = envelope.parent();
            let parent_header = self.header(&parent);
            let parent_view = envelope.seed.as_ref().map_or(0, |s| s.round.view().get());
            let expected = Expected {
                parent: &parent,
                parent_view,
                parent_header: parent_header.as_ref(),
                leader: envelope.block.header.proposer,
                now_ms: envelope.block.header.time_ms,
            };
            let (after, _) = block::verify(&envelope, &expected, &state, &self.scheme).ok()?;
            state = after;
            if let Some(known) = self.blocks.get_mut(&digest) {
                known.state = Some(state.clone());
            }
        }
        Some(state)
    }

    fn header(&self, digest: &Digest) -> Option<BlockHeader> {
        if *digest == self.genesis_digest {
            return None;
        }
        if *digest == self.head.0 {
            return self.head.1.clone();
        }
        self.blocks.get(digest).map(|k| k.envelope.block.header.clone())
    }

    /// Answers what can be answered now: finalized blocks to apply, proposals, verifications.
    fn progress(&mut self) {
        self.apply_finalized();
        let proposals = std::mem::take(&mut self.proposals);
        for (context, response) in proposals {
            if response.is_closed() {
                continue;
            }
            match self.propose(&context) {
                Some(digest) => {
                    let _ = response.send(digest);
                }
                None => self.proposals.push((context, response)),
            }
        }
        let verifies = std::mem::take(&mut self.verifies);
        for (context, payload, response) in verifies {
            if response.is_closed() {
                continue;
            }
            match self.verify(&context, payload) {
                Some(valid) => {
                    let _ = response.send(valid);
                }
                None => self.verifies.push((context, payload, response)),
            }
        }
    }

    fn propose(&mut self, context: &Ctx) -> Option<Digest> {
        let (parent_view, parent) = (context.parent.0.get(), context.parent.1);
        let seed = match parent == self.genesis_digest {
            true => None,
            false => Some(self.seeds.get(&parent_view)?.clone()),
        };
        let parent_state = self.state_after(parent)?;
        let parent_header = self.header(&parent);
        let txs = self.host.pending(&parent_state);
        let now_ms = self.now_ms();
        let parent_time = parent_header.as_ref().map_or(0, |h| h.time_ms);
        if txs.is_empty() && now_ms < parent_time.saturating_add(self.empty_block_ms) {
            return None;
        }
        let expected = Expected {
            parent: &parent,
            parent_view,
            parent_header: parent_header.as_ref(),
            leader: account_of(&context.leader),
            now_ms,
        };
        let (mut envelope, state) = block::build(&parent_state, &expected, seed, txs).ok()?;
        if self.lying {
            envelope.block.header.state_root = Hash32([0xa5; 32]);
        }
        let digest = envelope.digest();
        self.blocks.insert(digest, Known { envelope, state: Some(state) });
        Some(digest)
    }

    fn verify(&mut self, context: &Ctx, payload: Digest) -> Option<bool> {
        let envelope = self.blocks.get(&payload)?.envelope.clone();
        let parent = context.parent.1;
        let parent_state = self.state_after(parent)?;
        let parent_header = self.header(&parent);
        let expected = Expected {
            parent: &parent,
            parent_view: context.parent.0.get(),
            parent_header: parent_header.as_ref(),
            leader: account_of(&context.leader),
            now_ms: self.now_ms(),
        };
        match block::verify(&envelope, &expected, &parent_state, &self.scheme) {
            Ok((state, _)) => {
                if let Some(known) = self.blocks.get_mut(&payload) {
                    known.state = Some(state);
                }
                Some(true)
            }
            Err(_) => {
                self.record.lock().expect("no panics while locked").refused += 1;
                Some(false)
            }
        }
    }

    /// Applies, in height order, every finalized block up to the latest finalization whose
    /// blocks are all here. Applying is idempotent by height: a block at or below the head is
    /// never applied again.
    fn apply_finalized(&mut self) {
        let Some(target) = self.target else { return };
        let head_height = self.head.1.as_ref().map_or(0, |h| h.height);
        let target_height = self.blocks.get(&target).map(|k| k.envelope.block.header.height);
        if target_height.is_some_and(|height| height <= self.resumed_at) {
            // Applied before this validator restarted: its engine replays its journal.
            self.target = None;
            return;
        }
        let mut chain = Vec::new();
        let mut cursor = target;
        while cursor != self.head.0 {
            let Some(known) = self.blocks.get(&cursor) else { return };
            let height = known.envelope.block.header.height;
            if height <= head_height {
                let reason = format!("finalized block at height {height} is not on the head");
                self.violation(reason);
                self.target = None;
                return;
            }
            chain.push(cursor);
            cursor = known.envelope.parent();
            if cursor == self.genesis_digest && self.head.1.is_some() {
                self.violation("a finalized block forks below the head".into());
                self.target = None;
                return;
            }
        }
        for digest in chain.into_iter().rev() {
            let Some(state) = self.state_after(digest) else {
                let reason = format!("a finalized block does not execute: {digest:?}");
                self.violation(reason);
                self.target = None;
                return;
            };
            let Some(header) = self.header(&digest) else { return };
            self.finalize(digest, header, state);
            if self.halted {
                return;
            }
        }
        self.target = None;
    }

    fn finalize(&mut self, digest: Digest, header: BlockHeader, state: State) {
        let now = self.now_ms();
        let Some(block) = self.blocks.get(&digest).map(|k| k.envelope.block.clone()) else {
            return;
        };
        if let Err(reason) = self.host.finalized(&block, &state) {
            self.violation(format!("height {}: the host refused it: {reason}", header.height));
            self.halted = true;
            return;
        }
        let invariant = state.check_invariants().err();
        {
            let mut record = self.record.lock().expect("no panics while locked");
            record.finalized.push((Hash32(digest.0), header.state_root));
            record.proposers.push(header.proposer);
            record.finality_ms.push((now, header.time_ms));
            record.txs += block.txs.len() as u64;
            record.state_hash = header.state_root;
            if let Some(broken) = invariant {
                record.violations.push(format!("height {}: {broken}", header.height));
            }
        }
        let height = header.height;
        self.state = state;
        self.head = (digest, Some(header));
        // Blocks at or below the head that are not on it are dead forks: drop their states.
        for known in self.blocks.values_mut() {
            if known.envelope.block.header.height <= height {
                known.state = None;
            }
        }
    }

    fn violation(&mut self, reason: String) {
        self.record.lock().expect("no panics while locked").violations.push(reason);
    }
}
