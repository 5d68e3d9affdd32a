//! A simulated provider: bonds, registers its node, claims its capacity, keeps the node online,
//! runs the leases the ledger gives it (worker, replica, auditor, referee, committee: simulated
//! execution), commits and reveals results, and answers capacity challenges. Its [`Behaviour`]
//! says where it lies.

mod arbitration;
mod challenge;
pub mod forger;
mod lease;

use crate::net::PartyId;
use crate::party::{sent_recently, Ctx, Message, Wallet};
use crate::work;
use aicpw_ledger::state::NodeStatus;
use aicpw_types::{AccountId, Amount, ComputeUnits, Hardware, Hash32, NodeId, TaskId, TxBody};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// How often a provider looks at the chain.
pub const POLL_MS: u64 = 1_000;
/// Progress heartbeat period of a running lease (the agent's 3 s).
pub const TASK_HEARTBEAT_MS: u64 = 3_000;
/// Node heartbeat period: well inside the ledger's offline cutoff.
pub const NODE_HEARTBEAT_MS: u64 = 20_000;
/// A transaction whose effect is not on chain by then is sent again.
pub const RESEND_MS: u64 = 4_000;

/// How a fake-capacity node answers challenges sized for a claim it cannot meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FakeStrategy {
    /// Computes at its real speed and gives up when the deadline passes: misses.
    Late,
    /// Commits a made-up root in time, then cannot open the drawn tiles.
    Bluff,
}

/// Where a provider departs from the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Behaviour {
    Honest,
    /// As a worker, skips the work on `skip_ppm` of its tasks and commits a forged output hash.
    /// If `withholds`, it never reveals a forged result once it sees the task audited (an
    /// auditor's lease on it): it gives up the pay to dodge the referee. If `stalls`, it holds a
    /// forged lease for the whole run time (heartbeats included) as if it worked, collecting
    /// the intervals released to it, instead of committing at once.
    Lazy {
        skip_ppm: u32,
        withholds: bool,
        stalls: bool,
    },
    /// Claims `claimed_units` (and registers hardware to match) but has only `units`.
    FakeCapacity {
        claimed_units: u64,
        strategy: FakeStrategy,
    },
    /// Has no capable machine: forwards every challenge to another one, whose answer comes back
    /// `relay_ms_min..=relay_ms_max` later.
    RelaysChallenges {
        relay_ms_min: u64,
        relay_ms_max: u64,
    },
    /// As a replica, copies another replica's commitment and then tries to reveal its result.
    CopyingReplica,
    /// A cartel member committing the cartel's forged hash (the same for every member): on
    /// every replica lease if `always`, else only when another member holds a lease of the same
    /// task (the two then hold the majority of three); otherwise it works honestly.
    Colluding {
        cartel: u64,
        always: bool,
    },
    /// As an auditor, never re-executes: commits the hash its partner worker passes on, or a guess.
    LazyAuditor,
    /// Works honestly but tells `partner` (a lazy auditor) every output hash it commits.
    SharesOutputs {
        partner: PartyId,
    },
    /// Forges where it expects to profit, from what it can see (`forger`).
    Forger(forger::Forger),
    /// One of several sybil nodes (different owners) that each claim the capacity of one hidden
    /// machine they share, `machine` (the cartel's id): every challenge is relayed to it, and it
    /// answers them one after another, skipping those it cannot finish in time.
    RelaySybil {
        machine: u64,
    },
    /// Registers a GPU it does not have and claims (and proves) its real CPU capacity; runs the
    /// GPU tasks placed on it `GPU_SLOWDOWN` times slower, paid per time.
    HardwareLiar,
    /// A cartel member (distinct owner) that forges the cartel's hash on a replica lease only when
    /// every other replica of the task is the cartel's: the round is unanimous.
    Unanimous {
        cartel: u64,
    },
    /// As a referee or replica committee member, never re-executes: copies what the round it
    /// judges shows. A round judged after a missed reveal shows revealed hashes: it copies the
    /// majority one, if any. A split judged blind shows only equality tags: it copies the tag
    /// most seen and commits to a guess under it.
    CopyingJudge,
    /// As a referee or replica committee member, never re-executes: commits to a guess of its
    /// own, which it can open (a third result beside the two it judges).
    GuessingJudge,
    /// A worker that forges `skip_ppm` of its results on the tasks of `requester`, its partner,
    /// holding each for the run time, and tells the partner which, so that it can cancel them.
    ForgesForPartner {
        skip_ppm: u32,
        requester: PartyId,
    },
}

/// How much slower a machine without the GPU a task asks for runs it.
pub const GPU_SLOWDOWN: u32 = 4;

/// The hidden machine relay sybils share: it works on one challenge at a time.
#[derive(Debug, Default)]
pub struct HiddenMachine {
    pub busy_until_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProviderSpec {
    pub hardware: Hardware,
    pub price_per_hour: Amount,
    /// Execution speed of tasks relative to the reference machine, in permille.
    pub speed_permille: u32,
    /// Real compute capacity, in compute units (what challenges measure).
    pub units: u64,
    pub stake: Amount,
    pub behaviour: Behaviour,
}

impl ProviderSpec {
    /// The capacity the provider claims on chain.
    pub fn claimed_units(&self) -> u64 {
        match self.behaviour {
            Behaviour::FakeCapacity { claimed_units, .. } => claimed_units,
            _ => self.units,
        }
    }
}

/// A result a provider committed to without doing the work: the simulation's ground truth of its
/// cheating attempts (`tally`), kept across crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skipped {
    /// Committed to a hash that is not the task's output (a forgery or a guess).
    Forged,
    /// Copied another lease's commitment, which it cannot open.
    CopiedCommitment,
    /// Committed to a partner's output: the right result, but not computed.
    CopiedOutput,
}

impl Skipped {
    /// Whether the result itself shows the cheat (a copied right output does not).
    pub fn observable(self) -> bool {
        self != Skipped::CopiedOutput
    }
}

/// What a provider wrote to disk before committing: it survives crashes, so a restarted
/// provider can still reveal (the agent's journal).
#[derive(Clone, Debug)]
pub struct Sealed {
    pub commitment: Hash32,
    /// The equality tag sent with the commitment: the output's, unless the holder copied it.
    pub tag: Hash32,
    pub output: Hash32,
    pub salt: Hash32,
}

pub struct Provider {
    pub spec: ProviderSpec,
    pub wallet: Wallet,
    /// Accounts of the other members of this provider's cartel, if it is in one.
    pub partners: BTreeSet<AccountId>,
    /// The machine a relay sybil sends its challenges to, shared with the other sybils.
    pub hidden: Option<Rc<RefCell<HiddenMachine>>>,
    pub node: Option<NodeId>,
    /// How much its disk stretches its runs, in permille (1000: not at all; `work::slowed`).
    pub disk_permille: u32,
    register_nonce: Option<u64>,
    claim_sent_ms: Option<u64>,
    node_heartbeat_ms: Option<u64>,
    jobs: BTreeMap<TaskId, lease::Job>,
    pub(crate) journal: BTreeMap<TaskId, Sealed>,
    /// Leases it committed a result on without doing the work, by task.
    pub(crate) skipped: BTreeMap<TaskId, Skipped>,
    reveal_sent_ms: BTreeMap<TaskId, u64>,
    appeal_sent_ms: Option<u64>,
    /// Appeals voted on, by node and opening time, and when.
    votes_sent_ms: BTreeMap<(NodeId, u64), u64>,
    /// Output hashes partners told this provider, by task.
    shared: BTreeMap<TaskId, Hash32>,
    challenges: challenge::Challenges,
    /// What it learned from the public events (forgers only read it).
    pub history: forger::History,
}

impl Provider {
    pub fn new(spec: ProviderSpec, wallet: Wallet) -> Provider {
        Provider {
            spec,
            wallet,
            partners: BTreeSet::new(),
            hidden: None,
            node: None,
            disk_permille: work::SPEED_REFERENCE,
            register_nonce: None,
            claim_sent_ms: None,
            node_heartbeat_ms: None,
            jobs: BTreeMap::new(),
            journal: BTreeMap::new(),
            skipped: BTreeMap::new(),
            reveal_sent_ms: BTreeMap::new(),
            appeal_sent_ms: None,
            votes_sent_ms: BTreeMap::new(),
            shared: BTreeMap::new(),
            challenges: challenge::Challenges::default(),
            history: forger::History::default(),
        }
    }

    /// A crash loses everything in memory (running executions, challenge work, what was sent
    /// when); the journal of sealed results survives.
    pub fn crash(&mut self) {
        self.jobs.clear();
        self.reveal_sent_ms.clear();
        self.shared.clear();
        self.challenges = challenge::Challenges::default();
        self.node_heartbeat_ms = None;
        self.claim_sent_ms = None;
    }

    /// Does its work and answers its challenges as the protocol says (a partner that only
    /// shares its correct outputs counts as honest: a slash of it would be a false positive).
    pub fn is_honest(&self) -> bool {
        matches!(self.spec.behaviour, Behaviour::Honest | Behaviour::SharesOutputs { .. })
    }

    /// Claims capacity (or hardware) it does not have where challenges are answered: on another
    /// machine, or not at all. Its matrix challenges sized for more than it has
    /// ([`Provider::lacks`]) are its cheating attempts.
    pub fn lies_about_capacity(&self) -> bool {
        matches!(
            self.spec.behaviour,
            Behaviour::FakeCapacity { .. }
                | Behaviour::RelaysChallenges { .. }
                | Behaviour::RelaySybil { .. }
                | Behaviour::HardwareLiar
        )
    }

    /// Whether a matrix challenge sized for `units` asks for capacity this node does not have of
    /// its own: a relay has no capable machine (a sybil a shared one), a liar less than that.
    pub fn lacks(&self, units: u64) -> bool {
        match self.spec.behaviour {
            Behaviour::RelaysChallenges { .. } | Behaviour::RelaySybil { .. } => true,
            _ => units > self.spec.units,
        }
    }

    /// Whether the GPU its node registers is not its own: a liar's, or one machine shared by
    /// sybils that each register it.
    pub fn fakes_gpu(&self) -> bool {
        matches!(self.spec.behaviour, Behaviour::RelaySybil { .. } | Behaviour::HardwareLiar)
    }

    /// Whether a task asking for `gpu_model` asks for a GPU the node does not have.
    pub fn lacks_gpu(&self, gpu_model: &str) -> bool {
        !gpu_model.is_empty() && self.fakes_gpu()
    }

    /// One look at the chain; returns when to look again.
    pub fn wake(&mut self, ctx: &mut Ctx<'_>) -> u64 {
        self.wallet.sync(ctx.state, ctx.now);
        self.node = self.find_node(ctx);
        match self.node {
            None if self.may_register(ctx) => self.set_up(ctx),
            None => {}
            Some(node) => {
                self.keep_online(ctx, node);
                self.claim(ctx, node);
                self.answer_challenges(ctx, node);
                self.appeal(ctx, node);
            }
        }
        self.vote(ctx);
        // Leases of a node the ledger ejected are still this provider's to finish and reveal.
        let me = self.wallet.account;
        let owned: Vec<NodeId> = ctx
            .state
            .index
            .owned
            .range((me, NodeId(0))..=(me, NodeId(u64::MAX)))
            .map(|(_, id)| *id)
            .collect();
        self.work(ctx, &owned);
        ctx.now + POLL_MS
    }

    pub fn on_message(&mut self, message: Message) {
        match message {
            Message::Output { task, output_hash } => {
                self.shared.insert(task, output_hash);
            }
            Message::Forged { .. } => {}
        }
    }

    fn find_node(&self, ctx: &Ctx<'_>) -> Option<NodeId> {
        let me = self.wallet.account;
        let owned = ctx.state.index.owned.range((me, NodeId(0))..=(me, NodeId(u64::MAX)));
        owned
            .map(|(_, id)| *id)
            .find(|id| ctx.state.nodes.get(id).is_some_and(|n| n.status != NodeStatus::Ejected))
    }

    /// Bonds the stake and registers the node, once: a registration is sent again only when
    /// the first is known to be lost or refused (two would make two nodes).
    fn set_up(&mut self, ctx: &mut Ctx<'_>) {
        if self.register_nonce.is_some_and(|nonce| !self.wallet.settled(nonce)) {
            return;
        }
        let staked = ctx.state.accounts.get(&self.wallet.account).map(|a| a.staked);
        if staked.unwrap_or_default() < self.spec.stake {
            ctx.send(TxBody::Bond { amount: self.spec.stake });
        }
        self.register_nonce = Some(self.wallet.nonce_of(ctx.txs.len()));
        ctx.send(TxBody::RegisterNode {
            hardware: self.spec.hardware.clone(),
            x25519_key: crate::setup::keypair(ctx.me).x25519_public(),
            endpoint: format!("sim://party-{}", ctx.me),
            price_per_hour: self.spec.price_per_hour,
        });
    }

    fn keep_online(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let active = ctx.state.nodes.get(&node).is_some_and(|n| n.status == NodeStatus::Active);
        if active && !sent_recently(self.node_heartbeat_ms, ctx.now, NODE_HEARTBEAT_MS) {
            ctx.send(TxBody::NodeHeartbeat { node });
            self.node_heartbeat_ms = Some(ctx.now);
        }
    }

    fn claim(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let units = ComputeUnits(self.spec.claimed_units());
        let claimed = ctx.state.nodes.get(&node).map(|n| n.capacity.claimed_units);
        if claimed != Some(units) && !sent_recently(self.claim_sent_ms, ctx.now, RESEND_MS) {
            ctx.send(TxBody::ClaimCapacity { node, units });
            self.claim_sent_ms = Some(ctx.now);
        }
    }
}
