//! What the ledger tells the world: events in receipts and in block outcomes.

use aicpw_types::task::FailureReason;
use aicpw_types::{AccountId, Amount, NodeId, TaskId, TaskState};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transferred { from: AccountId, to: AccountId, amount: Amount },
    Bonded { account: AccountId, amount: Amount },
    Unbonded { account: AccountId, amount: Amount, release_height: u64 },
    Withdrawn { account: AccountId, amount: Amount },
    Slashed { account: AccountId, amount: Amount, reason: String },
    NodeRegistered { node: NodeId, owner: AccountId },
    NodeUpdated { node: NodeId },
    NodeDeregistered { node: NodeId },
    NodeOffline { node: NodeId },
    TaskSubmitted { task: TaskId, requester: AccountId, budget: Amount },
    TaskAssigned { task: TaskId, node: NodeId, attempt: u32 },
    TaskProgress { task: TaskId, node: NodeId, progress_permille: u16 },
    ResultCommitted { task: TaskId, node: NodeId, result_cid: String },
    TaskRequeued { task: TaskId, node: NodeId, reason: FailureReason },
    Paid { task: TaskId, node: NodeId, owner: AccountId, amount: Amount },
    Refunded { task: TaskId, requester: AccountId, amount: Amount },
    TaskEnded { task: TaskId, state: TaskState, reason: Option<FailureReason> },
    TaskRated { task: TaskId, node: NodeId, stars: u8 },
}

impl Event {
    /// The task an event is about, if any: lets watchers filter one task's events.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Event::TaskSubmitted { task, .. }
            | Event::TaskAssigned { task, .. }
            | Event::TaskProgress { task, .. }
            | Event::ResultCommitted { task, .. }
            | Event::TaskRequeued { task, .. }
            | Event::Paid { task, .. }
            | Event::Refunded { task, .. }
            | Event::TaskEnded { task, .. }
            | Event::TaskRated { task, .. } => Some(*task),
            _ => None,
        }
    }
}
