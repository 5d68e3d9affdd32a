//! The ledger's state: accounts, provider nodes, tasks and the indices derived from them (the
//! parameters are `crate::params`, re-exported here).

use crate::root::LtHash;
use aicpw_matcher::Matcher;
use aicpw_types::codec::{Encode, Encoder};
use aicpw_types::task::FailureReason;
use aicpw_types::tx::KeyGrant;
use aicpw_types::{
    codec_struct, codec_unit_enum, AccountId, Amount, ComputeUnits, Hardware, Hash32, NodeId,
    TaskId, TaskState, TaskTerms,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::params::{treasury_default, Params, VerificationParams, RELEASE_INTERVAL_MS_MAX};

/// Most unbonding entries an account may have at once.
pub const UNBONDING_ENTRIES_MAX: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbonding {
    pub amount: Amount,
    pub release_height: u64,
}
codec_struct!(Unbonding { amount, release_height });

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    pub balance: Amount,
    pub nonce: u64,
    pub staked: Amount,
    pub unbonding: Vec<Unbonding>,
    pub nodes: u32,
    /// A vote on an appeal weighs the voter's stake; it cannot be unbonded before the vote ends.
    pub vote_locked_until_ms: u64,
    /// Proven offences of all the nodes this account ever registered: a node's ejection counts
    /// its owner's offences, and a node registered later starts with them.
    pub offences: u32,
    /// Nodes deregistered while frozen (not for missed challenges): each of the account's next
    /// registrations starts frozen and takes one, so leaving and coming back does not thaw a node.
    pub frozen_carried: u32,
}
codec_struct!(Account {
    balance,
    nonce,
    staked,
    unbonding,
    nodes,
    vote_locked_until_ms,
    offences,
    frozen_carried
});

impl Account {
    pub fn unbonding_total(&self) -> Amount {
        Amount(self.unbonding.iter().map(|u| u.amount.0).sum())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    Active,
    Frozen,
    Ejected,
}
codec_unit_enum!(NodeStatus { Active = 0, Frozen = 1, Ejected = 2 });

/// Per-node track record; `score_permille` is what the matcher sees.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reputation {
    pub completed: u64,
    pub failed: u64,
    pub expired: u64,
    pub audits_passed: u64,
    pub audits_failed: u64,
    /// Σ stars × weight, over `rating_count` ratings weighing `rating_weight` in all; a rating
    /// weighs more the more stake its rater has bonded.
    pub rating_sum: u64,
    pub rating_count: u64,
    pub score_permille: u16,
    pub rating_weight: u64,
    /// Verified results in a row (audits, replica quorums, known answers); 0 after a failure.
    pub clean_streak: u32,
    /// Proven misbehaviour: each one was slashed.
    pub offences: u32,
}
codec_struct!(Reputation {
    completed,
    failed,
    expired,
    audits_passed,
    audits_failed,
    rating_sum,
    rating_count,
    score_permille,
    rating_weight,
    clean_streak,
    offences
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub owner: AccountId,
    pub hardware: Hardware,
    #[serde(with = "aicpw_types::task::hex_array")]
    pub x25519_key: [u8; 32],
    pub endpoint: String,
    pub price_per_hour: Amount,
    pub status: NodeStatus,
    pub online: bool,
    pub last_seen_ms: u64,
    pub proven_units: ComputeUnits,
    pub running: u32,
    pub reputation: Reputation,
    /// The open appeal of a frozen node.
    pub appeal: Option<Appeal>,
    /// Appeals made so far.
    pub appeals: u32,
    /// Capacity challenges: claim, recent scores, schedule, current challenges.
    pub capacity: crate::challenge::NodeCapacity,
}
codec_struct!(Node {
    id,
    owner,
    hardware,
    x25519_key,
    endpoint,
    price_per_hour,
    status,
    online,
    last_seen_ms,
    proven_units,
    running,
    reputation,
    appeal,
    appeals,
    capacity
});

/// Most voters on one appeal (a list's codec limit).
pub const APPEAL_VOTERS_MAX: usize = 256;

/// One staker's vote on an appeal: its side and the bonded stake it weighs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealVote {
    pub voter: AccountId,
    pub approve: bool,
    pub weight: Amount,
}
codec_struct!(AppealVote { voter, approve, weight });

/// An arbitration vote of stakers on unfreezing a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appeal {
    pub opened_ms: u64,
    pub closes_ms: u64,
    /// Bonded stake voting to unfreeze, and to keep frozen: the sums of `votes`.
    pub approve: Amount,
    pub reject: Amount,
    /// At most [`APPEAL_VOTERS_MAX`]; when full, a heavier vote displaces the lightest.
    pub votes: Vec<AppealVote>,
}
codec_struct!(Appeal { opened_ms, closes_ms, approve, reject, votes });

/// What a lease is for. The matcher places the worker (or `k` replicas) first; auditors,
/// referees and dispute committees are placed by the verification rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Worker,
    Replica,
    Auditor,
    Referee,
    Committee,
}
codec_unit_enum!(Role { Worker = 0, Replica = 1, Auditor = 2, Referee = 3, Committee = 4 });

/// Where a lease's result stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Running, committed or revealed; not judged yet.
    Pending,
    /// On the winning side: paid when the task completes.
    Upheld,
    /// On the losing side of a vote, or caught by a known answer or a dispute: slashed.
    Overruled,
    /// Committed but not revealed within the reveal window: paid nothing beyond its released
    /// intervals (clawed back if it is slashed), a fault on record, out of the round. While `Lease::withheld_until_ms` is set its late verdict is pending; cleared
    /// it stays `Withheld`, slashed it becomes `Overruled`.
    Withheld,
    /// Paid.
    Paid,
}
codec_unit_enum!(Verdict { Pending = 0, Upheld = 1, Overruled = 2, Withheld = 3, Paid = 4 });

/// An opened commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reveal {
    pub output_hash: Hash32,
    pub result_cid: String,
    pub revealed_ms: u64,
    /// A non-deterministic task's summary in micro-units (`ledger::compare`); empty otherwise.
    #[serde(default)]
    pub summary: Vec<i64>,
}
codec_struct!(Reveal { output_hash, result_cid, revealed_ms, summary });

/// A task's assignment to a node, from placement to its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub node: NodeId,
    pub role: Role,
    /// The node's price when it took the task: later price changes do not touch running work.
    pub price_per_hour: Amount,
    pub started_ms: u64,
    pub last_heartbeat_ms: u64,
    pub progress_permille: u16,
    /// Money already released to the node per verified interval (`ledger::release`), and up to
    /// when: kept unless the lease is judged wrong, then clawed back from its owner's stake.
    pub released: Amount,
    pub released_ms: u64,
    /// The binding commitment to the result, and when it landed.
    pub commitment: Option<Hash32>,
    /// The result's equality tag, committed with it (`verify::replication::equality_tag`; zero
    /// until then): equal tags, equal results, known before anyone reveals. A reveal must match it.
    pub tag: Hash32,
    pub committed_ms: u64,
    pub committed_height: u64,
    /// What the node earns if upheld: its price for the time it held the lease, capped by its
    /// run's share of the budget (fixed at the commitment).
    pub cost: Amount,
    pub reveal: Option<Reveal>,
    pub verdict: Verdict,
    /// Set while a withheld lease awaits its late verdict: the end of its late reveal window.
    /// Unopened by then, it is slashed; opened, it is judged against the task's final result.
    pub withheld_until_ms: Option<u64>,
}
codec_struct!(Lease {
    node,
    role,
    price_per_hour,
    started_ms,
    last_heartbeat_ms,
    progress_permille,
    released,
    released_ms,
    commitment,
    tag,
    committed_ms,
    committed_height,
    cost,
    reveal,
    verdict,
    withheld_until_ms
});

impl Lease {
    /// Placed, neither committed nor judged: it occupies the node and has a heartbeat deadline.
    pub fn is_running(&self) -> bool {
        self.verdict == Verdict::Pending && self.commitment.is_none()
    }

    /// Withheld and not yet judged (opened late or not): its slash is still possible.
    pub fn is_withheld_pending(&self) -> bool {
        self.verdict == Verdict::Withheld && self.withheld_until_ms.is_some()
    }

    /// The end of the late reveal window of a withheld lease nobody has opened yet.
    pub fn late_reveal_deadline(&self) -> Option<u64> {
        self.withheld_until_ms.filter(|_| self.is_withheld_pending() && self.reveal.is_none())
    }
}

/// Which verification round a task is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Round {
    /// The worker (or the replicas) run the task.
    Work,
    /// An `audit` task's worker has committed; the next block's randomness decides the audit.
    Drawing,
    /// An auditor re-executes the task.
    Audit,
    /// Worker and auditor disagreed (or one did not reveal): a referee decides.
    Referee,
    /// The requester disputed the result: a committee re-executes it.
    Dispute,
}
codec_unit_enum!(Round { Work = 0, Drawing = 1, Audit = 2, Referee = 3, Dispute = 4 });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisputeOutcome {
    Open,
    /// The committee confirmed the result: the bond pays the committee, the rest the provider.
    Rejected,
    /// The committee found another result (the claimed known answer, for a known-answer claim):
    /// the provider is slashed, the requester refunded.
    Upheld,
    /// The committee did not agree (or, on a known-answer claim, agreed on neither the result
    /// nor the claimed answer): the result stands.
    Inconclusive,
}
codec_unit_enum!(DisputeOutcome { Open = 0, Rejected = 1, Upheld = 2, Inconclusive = 3 });

/// The candidates of a task's random seats (replicas, auditor, referee, committee), frozen in
/// block `height` before the randomness that draws from them is known: the seats are drawn in
/// block `height + 1`, from that block's randomness (`block::end_block`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatDraw {
    pub height: u64,
    pub candidates: Vec<NodeId>,
}
codec_struct!(SeatDraw { height, candidates });

/// A requester's bonded challenge of a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// Held outside the escrow while the dispute is open.
    pub bond: Amount,
    pub opened_ms: u64,
    pub outcome: DisputeOutcome,
    /// Paid from the bond to committee members per verified interval and not clawed back: with
    /// what is held, the bond their runs share (`Task::committee_bond`).
    pub released: Amount,
    /// The answer a known-answer requester revealed against the result: a claim the committee's
    /// re-run must confirm before anyone is slashed. `None` for a plain dispute.
    pub claimed_answer: Option<Hash32>,
}
codec_struct!(Dispute { bond, opened_ms, outcome, released, claimed_answer });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultCommit {
    pub node: NodeId,
    pub result_cid: String,
    pub output_hash: Hash32,
    pub committed_ms: u64,
    /// What the provider earns on acceptance: its price for the time it held the lease.
    pub cost: Amount,
    /// A non-deterministic task's summary of the result; empty otherwise.
    #[serde(default)]
    pub summary: Vec<i64>,
}
codec_struct!(ResultCommit { node, result_cid, output_hash, committed_ms, cost, summary });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub requester: AccountId,
    pub terms: TaskTerms,
    pub key_grants: Vec<KeyGrant>,
    pub state: TaskState,
    /// Budget still held in escrow.
    pub escrow: Amount,
    pub paid: Amount,
    pub refunded: Amount,
    /// Worker and replica leases granted so far (verification seats are not counted).
    pub attempts: u32,
    /// Every lease of this task still in play or judged, in the order they were placed; a lease
    /// that expired or failed is dropped and its node excluded.
    pub leases: Vec<Lease>,
    pub excluded: Vec<NodeId>,
    /// The verified result the requester downloads.
    pub result: Option<ResultCommit>,
    pub failure: Option<FailureReason>,
    pub submitted_ms: u64,
    pub rating: u8,
    pub round: Round,
    /// Leases the matcher still has to place for this round, and since when it waits.
    pub seats: u8,
    pub seats_since_ms: u64,
    /// When this round's reveals opened: every lease of the round had committed.
    pub reveal_open_ms: Option<u64>,
    pub answer_commitment: Hash32,
    pub dispute: Option<Dispute>,
    /// The frozen candidates of the open random seats, if any.
    pub seat_draw: Option<SeatDraw>,
    /// When the requester cancelled a task whose revealed results disagree: the cancel waits for
    /// the verdict on them (`ledger::cancel`), then the task ends cancelled. No new work seats
    /// are placed meanwhile.
    #[serde(default)]
    pub cancel_requested_ms: Option<u64>,
    /// When the task ended (0 while open): it is pruned `task_retention_ms` later.
    #[serde(default)]
    pub ended_ms: u64,
    /// Providers' unconfirmed claims that the task's inputs cannot be used (`market::claim_inputs`).
    #[serde(default)]
    pub input_claims: Vec<InputClaim>,
}
codec_struct!(Task {
    id,
    requester,
    terms,
    key_grants,
    state,
    escrow,
    paid,
    refunded,
    attempts,
    leases,
    excluded,
    result,
    failure,
    submitted_ms,
    rating,
    round,
    seats,
    seats_since_ms,
    reveal_open_ms,
    answer_commitment,
    dispute,
    seat_draw,
    cancel_requested_ms,
    ended_ms,
    input_claims
});

/// A provider's claim that a task's inputs cannot be used (missing, undecryptable, a malformed
/// bundle or manifest), and what the requester pays it if another owner's node confirms it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputClaim {
    pub node: NodeId,
    pub owner: AccountId,
    pub pay: Amount,
}
codec_struct!(InputClaim { node, owner, pay });

impl Task {
    /// The bond held by an open dispute.
    pub fn bond_held(&self) -> Amount {
        match &self.dispute {
            Some(d) if d.outcome == DisputeOutcome::Open => d.bond,
            _ => Amount::ZERO,
        }
    }

    /// The bond an open dispute's committee runs are paid from: what is held plus what was
    /// released from it per interval (so a member's release does not shrink the other's share).
    pub fn committee_bond(&self) -> Amount {
        match &self.dispute {
            Some(d) if d.outcome == DisputeOutcome::Open => Amount(d.bond.0 + d.released.0),
            _ => Amount::ZERO,
        }
    }

    /// Whether a cancel waits for the verdict on the task's revealed results.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested_ms.is_some()
    }

    /// The lease `node` holds in the current round, if any.
    pub fn pending_lease(&self, node: NodeId) -> Option<usize> {
        self.leases.iter().position(|l| l.node == node && l.verdict == Verdict::Pending)
    }

    /// Whether `lease` must wait for the judges to reveal: in a referee round the referee or
    /// committee reveals first, and the leases it judges only once it has, so that a judge
    /// that misses its reveal window is replaced by one that has still seen no result.
    pub fn awaits_judges(&self, lease: &Lease) -> bool {
        self.round == Round::Referee && lease.role != Role::Referee && self.judges_unrevealed()
    }

    /// Whether a judge of the referee round has not revealed yet.
    pub(crate) fn judges_unrevealed(&self) -> bool {
        self.leases
            .iter()
            .any(|l| l.verdict == Verdict::Pending && l.role == Role::Referee && l.reveal.is_none())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub params: Params,
    pub accounts: Vec<(AccountId, Amount)>,
}

/// A key of one state entry: what the state root commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKey {
    Meta,
    Account(AccountId),
    Node(NodeId),
    Task(TaskId),
}

/// Entries that changed, each with its value's new encoding (`None`: removed).
pub type EntryChanges = Vec<(EntryKey, Option<Vec<u8>>)>;

/// Scalars that are not in any table.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    pub chain_id: String,
    pub height: u64,
    pub supply: Amount,
    pub burned: Amount,
    /// What genesis created: supply + burned, always (`money::check`).
    pub genesis_supply: Amount,
    pub next_node: u64,
    pub next_task: u64,
    pub next_challenge: u64,
}
codec_struct!(Meta {
    chain_id,
    height,
    supply,
    burned,
    genesis_supply,
    next_node,
    next_task,
    next_challenge
});

#[derive(Clone, Debug)]
pub struct State {
    pub params: Params,
    pub meta: Meta,
    pub accounts: BTreeMap<AccountId, Account>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub tasks: BTreeMap<TaskId, Task>,
    /// Derived indices, rebuilt from the tables on load.
    pub index: Index,
    pub(crate) root: LtHash,
    /// Entries changed since the root was last brought up to date, with their old encodings.
    pub(crate) dirty: BTreeMap<EntryKey, Option<Vec<u8>>>,
}

/// Indices derived from the tables: never stored, never hashed.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub queued: BTreeSet<TaskId>,
    /// (lease deadline, task) for running tasks.
    pub leases: BTreeSet<(u64, TaskId)>,
    /// (acceptance deadline, task) for tasks with a committed result.
    pub verifying: BTreeSet<(u64, TaskId)>,
    /// Tasks whose audit draw waits for the next block's randomness.
    pub draws: BTreeSet<TaskId>,
    /// (node, task) for every lease of an open task's current round: what each provider must
    /// act on (run, commit, reveal).
    pub node_leases: BTreeSet<(NodeId, TaskId)>,
    /// (end of the late reveal window, task) for tasks, open or ended, with an unopened
    /// withheld lease: the earliest such deadline of each task.
    pub withheld: BTreeSet<(u64, TaskId)>,
    /// (node, task) for every unopened withheld lease still in its late reveal window: what a
    /// provider must still open.
    pub node_withheld: BTreeSet<(NodeId, TaskId)>,
    /// (end time, task) of ended tasks no rule needs any more (no withheld lease awaiting its
    /// late verdict): pruned `task_retention_ms` after they ended.
    pub ended: BTreeSet<(u64, TaskId)>,
    /// Per node, the tasks in the state with a lease of it.
    pub node_tasks: BTreeMap<NodeId, u32>,
    /// Ejected and deregistered nodes: pruned once no task in the state refers to them and no
    /// appeal of theirs is open.
    pub ejected: BTreeSet<NodeId>,
    /// (closing time, node) of open appeals.
    pub appeals: BTreeSet<(u64, NodeId)>,
    /// Per owner, the run value (price × time limit) of its leases on open tasks and of its
    /// withheld leases awaiting their verdict: the unverified work its stake must cover
    /// (`verify::unaudited_work_max`), and whose slashes keep that stake from leaving
    /// (`staking::slash_locked`).
    pub at_risk: BTreeMap<AccountId, u128>,
    /// Per owner, the money released per interval (`ledger::release`) to the same leases: what
    /// may still be clawed back from its stake, which the stake must keep backing on top of the
    /// slashes (`staking::slash_locked`, `State::headroom`).
    pub clawback: BTreeMap<AccountId, u128>,
    /// (last seen, node) for online nodes.
    pub online: BTreeSet<(u64, NodeId)>,
    /// (owner, node) for every registered node.
    pub owned: BTreeSet<(AccountId, NodeId)>,
    pub matcher: Matcher,
    pub challenge: crate::challenge::ChallengeIndex,
    /// Where the supply sits, for the end-of-block conservation check (`money::check`).
    pub money: crate::money::Totals,
}

/// The canonical bytes of an entry's key: a table tag, then the id.
pub fn key_bytes(key: EntryKey) -> Vec<u8> {
    let mut e = Encoder::default();
    match key {
        EntryKey::Meta => e.tag(0),
        EntryKey::Account(id) => {
            e.tag(1);
            id.encode(&mut e);
        }
        EntryKey::Node(id) => {
            e.tag(2);
            id.encode(&mut e);
        }
        EntryKey::Task(id) => {
            e.tag(3);
            id.encode(&mut e);
        }
    }
    e.bytes
}

/// What the state root hashes for one entry: its key bytes, then its value's encoding.
pub(crate) fn entry_bytes(key: EntryKey, value: &dyn Encode) -> Vec<u8> {
    let mut e = Encoder { bytes: key_bytes(key) };
    value.encode(&mut e);
    e.bytes
}
