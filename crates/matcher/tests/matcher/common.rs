//! Builders shared by the tests.

use aicpw_matcher::{MatchParams, Matcher, NodeOffer, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, ComputeUnits, Hardware, NodeId, Resources, TaskId};

pub const RANDOMNESS: [u8; 32] = [7; 32];

/// An established GPU node: 16 cores, 64 GB and 80 GB of VRAM per GPU.
pub fn gpu_node(id: u64, model: &str, gpus: u32, price: u128) -> NodeOffer {
    NodeOffer {
        id: NodeId(id),
        hardware: Hardware {
            region: String::new(),
            cpu_cores: 16 * gpus.max(1),
            memory_mb: 65_536 * u64::from(gpus.max(1)),
            disk_mb: 1_000_000,
            bandwidth_mbps: 1_000,
            gpu_model: model.to_string(),
            gpu_count: gpus,
            gpu_vram_mb: 81_920,
            allows_network: false,
            runs_containers: false,
        },
        price_per_hour: Amount(price),
        reputation_permille: 900,
        proven_units: ComputeUnits(1_000_000),
        stake: Amount::tokens(10_000),
        online: true,
        completed_tasks: 100,
        tee: false,
    }
}

/// An established CPU-only node with 4 GB per core.
pub fn cpu_node(id: u64, cores: u32, price: u128) -> NodeOffer {
    NodeOffer {
        hardware: Hardware {
            cpu_cores: cores,
            memory_mb: 4_096 * u64::from(cores),
            disk_mb: 500_000,
            bandwidth_mbps: 1_000,
            ..Hardware::default()
        },
        ..gpu_node(id, "", 0, price)
    }
}

pub fn gpu_task(id: u64, model: &str, gpus: u32, max_price: u128) -> TaskRequest {
    TaskRequest {
        id: TaskId(id),
        resources: Resources {
            region: String::new(),
            cpu_cores: 4 * gpus,
            memory_mb: 16_384 * u64::from(gpus),
            disk_mb: 10_000,
            gpu_count: gpus,
            gpu_model: model.to_string(),
            gpu_vram_mb: 40_000,
            compute_units_min: 0,
        },
        max_price_per_hour: Amount(max_price),
        value: Amount::tokens(10),
        ..TaskRequest::default()
    }
}

pub fn cpu_task(id: u64, cores: u32, max_price: u128) -> TaskRequest {
    TaskRequest {
        resources: Resources {
            cpu_cores: cores,
            memory_mb: 2_048 * u64::from(cores),
            disk_mb: 1_000,
            ..Resources::default()
        },
        ..gpu_task(id, "", 0, max_price)
    }
}

pub fn with_strategy(mut task: TaskRequest, strategy: MatchStrategy) -> TaskRequest {
    task.strategy = strategy;
    task
}

/// Parameters without the new-provider reservation, so that choices follow the strategy only.
pub fn plain_params() -> MatchParams {
    MatchParams { new_provider_share_bps: 0, ..MatchParams::default() }
}

pub fn matcher_with(params: MatchParams, nodes: &[NodeOffer]) -> Matcher {
    let mut matcher = Matcher::new(params);
    for node in nodes {
        matcher.upsert_node(node.clone());
    }
    matcher
}

pub fn matcher(nodes: &[NodeOffer]) -> Matcher {
    matcher_with(plain_params(), nodes)
}
