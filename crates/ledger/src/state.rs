//! The ledger's state: accounts, provider nodes, tasks, parameters, and the indices derived from them.

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

/// Network parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub fee_min: Amount,
    /// Blocks between `Unbond` and the moment `Withdraw` may release the amount.
    pub unbonding_blocks: u64,
    /// Stake an account must keep bonded for each node it registers.
    pub node_stake_min: Amount,
    pub nodes_per_account_max: u32,
    /// A running task whose provider sends no heartbeat for this long is reassigned.
    pub lease_ms: u64,
    /// Extra time past the task's own limit before its lease expires regardless of heartbeats.
    pub time_limit_grace_ms: u64,
    /// A node that sends no heartbeat for this long is offline and gets no new work.
    pub node_offline_ms: u64,
    /// A committed result the requester neither accepts nor disputes is accepted after this long.
    pub acceptance_window_ms: u64,
    /// Attempts (assignments) per task before it fails with `AttemptsExhausted`.
    pub attempts_max: u32,
    pub tasks_queued_max: u32,
    /// Placements the matcher makes per block.
    pub placements_per_block_max: u32,
}
codec_struct!(Params {
    fee_min,
    unbonding_blocks,
    node_stake_min,
    nodes_per_account_max,
    lease_ms,
    time_limit_grace_ms,
    node_offline_ms,
    acceptance_window_ms,
    attempts_max,
    tasks_queued_max,
    placements_per_block_max
});

impl Default for Params {
    fn default() -> Self {
        Params {
            fee_min: Amount(10),
            unbonding_blocks: 100,
            node_stake_min: Amount::tokens(1_000),
            nodes_per_account_max: 16,
            lease_ms: 15_000,
            time_limit_grace_ms: 30_000,
            node_offline_ms: 60_000,
            acceptance_window_ms: 600_000,
            attempts_max: 3,
            tasks_queued_max: 100_000,
            placements_per_block_max: 1_024,
        }
    }
}

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
}
codec_struct!(Account { balance, nonce, staked, unbonding, nodes });

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
    pub rating_sum: u64,
    pub rating_count: u64,
    pub score_permille: u16,
}
codec_struct!(Reputation {
    completed,
    failed,
    expired,
    audits_passed,
    audits_failed,
    rating_sum,
    rating_count,
    score_permille
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
    reputation
});

/// A running task's assignment to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub node: NodeId,
    /// The node's price when it took the task: later price changes do not touch running work.
    pub price_per_hour: Amount,
    pub started_ms: u64,
    pub last_heartbeat_ms: u64,
    pub progress_permille: u16,
}
codec_struct!(Lease { node, price_per_hour, started_ms, last_heartbeat_ms, progress_permille });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultCommit {
    pub node: NodeId,
    pub result_cid: String,
    pub output_hash: Hash32,
    pub committed_ms: u64,
    /// What the provider earns on acceptance: its price for the time it held the lease.
    pub cost: Amount,
}
codec_struct!(ResultCommit { node, result_cid, output_hash, committed_ms, cost });

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
    pub attempts: u32,
    pub lease: Option<Lease>,
    pub excluded: Vec<NodeId>,
    pub result: Option<ResultCommit>,
    pub failure: Option<FailureReason>,
    pub submitted_ms: u64,
    pub rating: u8,
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
    lease,
    excluded,
    result,
    failure,
    submitted_ms,
    rating
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub params: Params,
    pub accounts: Vec<(AccountId, Amount)>,
}

/// A key of one state entry: what the state root commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKey {
    Meta,
    Account(AccountId),
    Node(NodeId),
    Task(TaskId),
}

/// Scalars that are not in any table.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    pub chain_id: String,
    pub height: u64,
    pub supply: Amount,
    pub burned: Amount,
    pub next_node: u64,
    pub next_task: u64,
}
codec_struct!(Meta { chain_id, height, supply, burned, next_node, next_task });

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
    /// (last seen, node) for online nodes.
    pub online: BTreeSet<(u64, NodeId)>,
    /// (owner, node) for every registered node.
    pub owned: BTreeSet<(AccountId, NodeId)>,
    pub matcher: Matcher,
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
