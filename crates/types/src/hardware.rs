//! What a node offers and what a task needs.

use crate::codec_struct;
use serde::{Deserialize, Serialize};

/// Longest GPU model name, in bytes.
pub const GPU_MODEL_BYTES_MAX: usize = 64;

/// A provider machine's registered hardware.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_cores: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub bandwidth_mbps: u32,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub gpu_vram_mb: u64,
    /// Where the machine is, as its operator names it (e.g. `eu-west`); empty if unstated.
    #[serde(default)]
    pub region: String,
    /// The operator lets tasks with `network: full` run here (`aicpw provider start
    /// --allow-network`), each in its own network namespace with egress only; the matcher never
    /// places such a task on a node without it.
    #[serde(default)]
    pub allows_network: bool,
    /// The node runs `runtime: container` tasks on a Docker Engine (`aicpw provider start
    /// --containers`); the matcher never places such a task on a node without it.
    #[serde(default)]
    pub runs_containers: bool,
}
codec_struct!(Hardware {
    cpu_cores,
    memory_mb,
    disk_mb,
    bandwidth_mbps,
    gpu_model,
    gpu_count,
    gpu_vram_mb,
    region,
    allows_network,
    runs_containers
});

/// What a task requires of a node. An empty `gpu_model` accepts any model.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub cpu_cores: u32,
    #[serde(default)]
    pub memory_mb: u64,
    #[serde(default)]
    pub disk_mb: u64,
    #[serde(default)]
    pub gpu_count: u32,
    #[serde(default)]
    pub gpu_model: String,
    #[serde(default)]
    pub gpu_vram_mb: u64,
    #[serde(default)]
    pub compute_units_min: u64,
    /// The region the task must run in (latency or data residency); empty accepts any.
    #[serde(default)]
    pub region: String,
}
codec_struct!(Resources {
    cpu_cores,
    memory_mb,
    disk_mb,
    gpu_count,
    gpu_model,
    gpu_vram_mb,
    compute_units_min,
    region
});

impl Hardware {
    /// Whether this hardware, when free, could run a task needing `need` (capacity aside).
    pub fn satisfies(&self, need: &Resources) -> bool {
        self.cpu_cores >= need.cpu_cores
            && self.memory_mb >= need.memory_mb
            && self.disk_mb >= need.disk_mb
            && self.gpu_count >= need.gpu_count
            && (need.gpu_count == 0 || self.gpu_vram_mb >= need.gpu_vram_mb)
            && (need.gpu_model.is_empty() || self.gpu_model.eq_ignore_ascii_case(&need.gpu_model))
            && (need.region.is_empty() || self.region.eq_ignore_ascii_case(&need.region))
    }
}
