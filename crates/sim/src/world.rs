//! The discrete-event loop: a seeded clock, the chain making blocks, parties waking up, and
//! messages and transactions travelling through the seeded network; faults are scheduled events.

use crate::chain::{BlockOutcome, Chain, Rejection};
use crate::detect::Detector;
use crate::net::{Network, PartyId};
use crate::party::{Ctx, Message};
use crate::provider::Provider;
use crate::requester::Requester;
use crate::rng::SimRng;
use crate::tally::Tally;
use crate::watch::Watch;
use aicpw_ledger::Event;
use aicpw_types::{AccountId, SignedTx, TaskId};
use std::collections::{BTreeMap, BTreeSet};

/// Most events one run may process: a bound on a runaway scenario.
pub const EVENTS_MAX: u64 = 20_000_000;

pub enum Party {
    Provider(Box<Provider>),
    Requester(Box<Requester>),
}

impl Party {
    pub fn account(&self) -> AccountId {
        match self {
            Party::Provider(p) => p.wallet.account,
            Party::Requester(r) => r.wallet.account,
        }
    }
    fn wallet(&mut self) -> &mut crate::party::Wallet {
        match self {
            Party::Provider(p) => &mut p.wallet,
            Party::Requester(r) => &mut r.wallet,
        }
    }
}

enum Wake {
    TxArrives(Box<SignedTx>),
    Block,
    Party { party: PartyId, token: u64 },
    Message { to: PartyId, message: Message },
    Rejected { to: PartyId, rejection: Rejection },
    Crash(PartyId),
    Restart(PartyId),
}

impl Wake {
    /// At equal times: arrivals first, then the block, then parties.
    fn priority(&self) -> u8 {
        match self {
            Wake::TxArrives(_) => 0,
            Wake::Crash(_) | Wake::Restart(_) => 1,
            Wake::Block => 2,
            _ => 3,
        }
    }
}

pub struct World {
    pub now: u64,
    pub chain: Chain,
    pub net: Network,
    pub parties: Vec<Party>,
    pub watch: Watch,
    pub tally: Tally,
    pub detector: Option<Detector>,
    /// Once the detector caught the cheater, requesters submit no task planned after
    /// `max(now, keep_until_ms)`: the base load still runs, the rest is not needed.
    pub stop_when_caught: bool,
    pub keep_until_ms: u64,
    /// Prints every block's events, rejections and faults to stderr (`AICPW_SIM_TRACE=1`).
    pub trace: bool,
    pub block_ms: u64,
    pub crashes: u64,
    queue: BTreeMap<(u64, u8, u64), Wake>,
    seq: u64,
    open_tasks: BTreeSet<TaskId>,
    rngs: Vec<SimRng>,
    crashed: Vec<bool>,
    tokens: Vec<u64>,
    owners: BTreeMap<AccountId, PartyId>,
    events: u64,
}

impl World {
    pub fn new(chain: Chain, net: Network, parties: Vec<Party>, watch: Watch, seed: u64) -> World {
        let count = parties.len();
        let owners = parties.iter().enumerate().map(|(i, p)| (p.account(), i)).collect();
        let rngs = (0..count).map(|i| SimRng::new(seed, &format!("party-{i}"))).collect();
        let mut world = World {
            now: 0,
            chain,
            net,
            parties,
            watch,
            tally: Tally::default(),
            detector: None,
            stop_when_caught: true,
            keep_until_ms: 0,
            trace: std::env::var_os("AICPW_SIM_TRACE").is_some(),
            block_ms: 500,
            crashes: 0,
            queue: BTreeMap::new(),
            seq: 0,
            open_tasks: BTreeSet::new(),
            rngs,
            crashed: vec![false; count],
            tokens: vec![0; count],
            owners,
            events: 0,
        };
        if world.trace {
            for (i, party) in world.parties.iter().enumerate() {
                let kind = match party {
                    Party::Provider(p) => format!("provider {:?}", p.spec.behaviour),
                    Party::Requester(r) => format!("requester {:?}", r.behaviour),
                };
                eprintln!("party {i}: {:?} {kind}", party.account());
            }
        }
        world.push(world.block_ms, Wake::Block);
        for party in 0..count {
            let start = world.rngs[party].between(1, 1_000);
            world.wake_party(party, start);
        }
        world
    }

    fn push(&mut self, at: u64, wake: Wake) {
        self.seq += 1;
        self.queue.insert((at, wake.priority(), self.seq), wake);
    }

    fn wake_party(&mut self, party: PartyId, at: u64) {
        self.tokens[party] += 1;
        let token = self.tokens[party];
        self.push(at, Wake::Party { party, token });
    }

    /// Crashes `party` at `at_ms`; it restarts (with nothing in memory) at `restart_ms`.
    pub fn schedule_crash(&mut self, party: PartyId, at_ms: u64, restart_ms: u64) {
        self.push(at_ms, Wake::Crash(party));
        self.push(restart_ms, Wake::Restart(party));
    }

    pub fn party_of(&self, account: &AccountId) -> Option<PartyId> {
        self.owners.get(account).copied()
    }

    /// Runs until every requester is done and every task ended, or until `horizon_ms`.
    pub fn run(&mut self, horizon_ms: u64) {
        while let Some(((at, _, _), wake)) = self.queue.pop_first() {
            if at > horizon_ms {
                break;
            }
            if self.events >= EVENTS_MAX {
                self.watch.violation(format!("the run used its {EVENTS_MAX} events"));
                break;
            }
            self.events += 1;
            self.now = at;
            if self.handle(wake) && self.finished() {
                break;
            }
        }
        self.watch.finish(&self.chain.state);
    }

    fn finished(&self) -> bool {
        // Withheld leases are judged after their task ended (late reveal or its window's end).
        self.open_tasks.is_empty()
            && self.chain.state.index.withheld.is_empty()
            && self.parties.iter().all(|p| match p {
                Party::Requester(r) => r.is_done(),
                Party::Provider(_) => true,
            })
    }

    /// Handles one event; true when it was a block.
    fn handle(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::TxArrives(tx) => self.chain.receive(*tx, self.now),
            Wake::Block => {
                self.block();
                return true;
            }
            Wake::Party { party, token } => {
                if token == self.tokens[party] && !self.crashed[party] {
                    self.party_wakes(party);
                }
            }
            Wake::Message { to, message } => match (self.crashed[to], &mut self.parties[to]) {
                (true, _) => {}
                (false, Party::Provider(p)) => p.on_message(message),
                (false, Party::Requester(r)) => r.on_message(message),
            },
            Wake::Rejected { to, rejection } => {
                if !self.crashed[to] {
                    self.parties[to].wallet().rejected(rejection.nonce);
                }
            }
            Wake::Crash(party) => self.crash(party),
            Wake::Restart(party) => {
                if self.trace {
                    eprintln!("{:>8} restart party {party}", self.now);
                }
                self.crashed[party] = false;
                self.wake_party(party, self.now);
            }
        }
        false
    }

    fn crash(&mut self, party: PartyId) {
        if self.trace {
            eprintln!("{:>8} crash party {party}", self.now);
        }
        self.crashed[party] = true;
        self.crashes += 1;
        if let Party::Provider(p) = &mut self.parties[party] {
            p.crash();
        }
    }

    fn block(&mut self) {
        let outcome = self.chain.produce(self.now);
        if self.trace {
            for event in &outcome.events {
                eprintln!("{:>8} h{} {event:?}", self.now, outcome.height);
            }
            for rejection in &outcome.rejected {
                eprintln!("{:>8} h{} rejected {rejection:?}", self.now, outcome.height);
            }
        }
        self.track_open(&outcome);
        self.watch.after_block(&self.chain.state, &outcome, self.now);
        self.tally.after_block(&self.chain.state, &outcome, self.now);
        for party in &mut self.parties {
            let Party::Provider(p) = party else { continue };
            if matches!(p.spec.behaviour, crate::provider::Behaviour::Forger(_)) {
                p.history.observe(&self.chain.state, &outcome.events, self.now);
            }
        }
        if let Some(detector) = &mut self.detector {
            let before = detector.caught.is_some();
            detector.after_block(&self.chain.state, &outcome, self.now);
            if !before && detector.caught.is_some() && self.stop_when_caught {
                // Nothing left to measure: let the tasks in flight finish, submit no more.
                let after = self.now.max(self.keep_until_ms);
                for party in &mut self.parties {
                    if let Party::Requester(r) = party {
                        r.stop_submitting(after);
                    }
                }
            }
        }
        for rejection in outcome.rejected {
            let Some(to) = self.party_of(&rejection.signer) else { continue };
            if let Some(at) = self.net.to_chain(to, self.now) {
                self.push(at, Wake::Rejected { to, rejection });
            }
        }
        self.push(self.now + self.block_ms, Wake::Block);
    }

    fn track_open(&mut self, outcome: &BlockOutcome) {
        for event in &outcome.events {
            match event {
                Event::TaskSubmitted { task, .. } => {
                    self.open_tasks.insert(*task);
                }
                Event::TaskEnded { task, .. } => {
                    self.open_tasks.remove(task);
                }
                _ => {}
            }
        }
    }

    fn party_wakes(&mut self, party: PartyId) {
        if !self.net.reachable(party, self.now) {
            if self.trace {
                eprintln!("{:>8} party {party} is cut off", self.now);
            }
            // Cut off: it sees nothing and sends nothing; it tries again a little later.
            self.wake_party(party, self.now + 1_000);
            return;
        }
        let mut ctx = Ctx {
            now: self.now,
            me: party,
            state: &self.chain.state,
            rng: &mut self.rngs[party],
            txs: Vec::new(),
            messages: Vec::new(),
        };
        let next = match &mut self.parties[party] {
            Party::Provider(p) => p.wake(&mut ctx),
            Party::Requester(r) => r.wake(&mut ctx),
        };
        let (txs, messages) = (ctx.txs, ctx.messages);
        for body in txs {
            let nonce = self.parties[party].wallet().take_nonce(self.now);
            if self.trace && !matches!(body, aicpw_types::TxBody::TaskHeartbeat { .. }) {
                eprintln!("{:>8} party {party} sends nonce {nonce} {}", self.now, body.kind());
            }
            let tx = self.chain.transaction(self.parties[party].account(), nonce, body);
            if let Some(at) = self.net.to_chain(party, self.now) {
                self.push(at, Wake::TxArrives(Box::new(tx)));
            }
        }
        for (to, message) in messages {
            if let Some(at) = self.net.between(party, to, self.now) {
                self.push(at, Wake::Message { to, message });
            }
        }
        self.wake_party(party, next.max(self.now + 1));
    }
}
