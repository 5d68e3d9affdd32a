//! What the ledger tells the matcher: a node's offer and a task's request.

use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, ComputeUnits, Hardware, NodeId, Resources, TaskId};
use serde::{Deserialize, Serialize};

/// A provider node as the matcher sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOffer {
    pub id: NodeId,
    pub hardware: Hardware,
    pub price_per_hour: Amount,
    pub reputation_permille: u16,
    /// Capacity the node proved in challenges; tasks ask for a minimum.
    pub proven_units: ComputeUnits,
    /// Stake backing the node; it must cover the value of the tasks it takes.
    pub stake: Amount,
    pub online: bool,
    /// Tasks the node completed; it orders equal offers (fewer first) and marks new providers.
    pub completed_tasks: u64,
    /// Whether the node runs tasks in a trusted execution environment.
    pub tee: bool,
}

/// A task waiting for a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub id: TaskId,
    pub resources: Resources,
    pub max_price_per_hour: Amount,
    pub reputation_min: u16,
    pub strategy: MatchStrategy,
    /// What is at stake if the provider cheats; the node's stake must cover it.
    pub value: Amount,
    pub tee_required: bool,
    /// The task asks for network access (`network: full`): only nodes whose operator allows it
    /// (`Hardware::allows_network`) may take it.
    pub network: bool,
    /// The task runs in a container (`runtime: container`): only nodes that run containers
    /// (`Hardware::runs_containers`) may take it.
    #[serde(default)]
    pub container: bool,
    /// Some: only these nodes (encrypted tasks: the nodes holding a key grant).
    pub allowed_nodes: Option<Vec<NodeId>>,
    /// Nodes that already failed this task.
    pub excluded_nodes: Vec<NodeId>,
}
