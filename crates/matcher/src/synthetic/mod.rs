//! A seeded synthetic market for benchmarks and tests: a GPU mix from RTX 4090 to H200 plus
//! CPU-only machines, realistic VRAM, prices and reputations, task mixes and churn.
//!
//! Prices are in base units per hour (1 AIC = 1,000,000 base units, taken as about one US dollar),
//! compute units in GOPS of dense INT8 matrix multiplication.

mod bench;
mod exact;

pub use bench::{run_benchmark, BenchReport};
pub use exact::{
    batch_cost, batch_placement, batch_ratio, exact_batch, large_batch_instance,
    small_batch_instance, BatchOutcome, RatioSummary,
};

use crate::{NodeOffer, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, ComputeUnits, Hardware, NodeId, Resources, TaskId};

/// A small deterministic generator (SplitMix64); enough for synthetic data, not for keys.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::index::mix64(self.0)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
    /// True with probability `permille` / 1000.
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// One kind of GPU machine in the mix.
#[derive(Clone, Copy, Debug)]
pub struct GpuKind {
    pub model: &'static str,
    pub vram_mb: u64,
    /// Typical market price per GPU-hour, base units.
    pub price_per_gpu: u128,
    /// Dense INT8 GOPS per GPU.
    pub units_per_gpu: u64,
    /// Share of all nodes, permille.
    pub share_permille: u64,
    /// GPU counts machines of this kind come with (repeats weight them).
    pub counts: &'static [u32],
    /// Share of these machines with confidential computing, permille.
    pub tee_permille: u64,
}

pub const GPU_KINDS: &[GpuKind] = &[
    GpuKind {
        model: "RTX 4090",
        vram_mb: 24_564,
        price_per_gpu: 400_000,
        units_per_gpu: 660_000,
        share_permille: 220,
        counts: &[1, 1, 1, 2, 2, 4],
        tee_permille: 0,
    },
    GpuKind {
        model: "RTX 3090",
        vram_mb: 24_576,
        price_per_gpu: 220_000,
        units_per_gpu: 284_000,
        share_permille: 90,
        counts: &[1, 1, 2],
        tee_permille: 0,
    },
    GpuKind {
        model: "L4",
        vram_mb: 23_034,
        price_per_gpu: 450_000,
        units_per_gpu: 242_000,
        share_permille: 60,
        counts: &[1, 2, 4, 8],
        tee_permille: 0,
    },
    GpuKind {
        model: "A10",
        vram_mb: 23_028,
        price_per_gpu: 600_000,
        units_per_gpu: 250_000,
        share_permille: 40,
        counts: &[1, 2, 4],
        tee_permille: 0,
    },
    GpuKind {
        model: "L40S",
        vram_mb: 46_068,
        price_per_gpu: 900_000,
        units_per_gpu: 733_000,
        share_permille: 60,
        counts: &[1, 2, 4, 8],
        tee_permille: 0,
    },
    GpuKind {
        model: "A100 40GB",
        vram_mb: 40_960,
        price_per_gpu: 1_100_000,
        units_per_gpu: 624_000,
        share_permille: 40,
        counts: &[1, 2, 4, 8],
        tee_permille: 0,
    },
    GpuKind {
        model: "A100 80GB",
        vram_mb: 81_920,
        price_per_gpu: 1_500_000,
        units_per_gpu: 624_000,
        share_permille: 60,
        counts: &[1, 2, 4, 8],
        tee_permille: 0,
    },
    GpuKind {
        model: "H100",
        vram_mb: 81_559,
        price_per_gpu: 2_400_000,
        units_per_gpu: 1_979_000,
        share_permille: 90,
        counts: &[1, 2, 4, 8, 8],
        tee_permille: 300,
    },
    GpuKind {
        model: "H200",
        vram_mb: 143_771,
        price_per_gpu: 3_200_000,
        units_per_gpu: 1_979_000,
        share_permille: 40,
        counts: &[1, 2, 4, 8, 8],
        tee_permille: 300,
    },
];

/// CPU-only machines: the rest of the permille. Price per core-hour and GOPS per core.
const CPU_PRICE_PER_CORE: u128 = 10_000;
const CPU_UNITS_PER_CORE: u64 = 250;
const MB_PER_GB: u64 = 1_024;

/// Price steps: providers pick round prices, so equal offers are common.
const PRICE_STEP: u128 = 10_000;

fn gpu_kind(rng: &mut Rng) -> Option<&'static GpuKind> {
    let mut draw = rng.below(1000);
    for kind in GPU_KINDS {
        if draw < kind.share_permille {
            return Some(kind);
        }
        draw -= kind.share_permille;
    }
    None
}

/// `value` × a factor in `low..=high` percent.
fn scale(rng: &mut Rng, value: u128, low: u64, high: u64) -> u128 {
    value * u128::from(rng.between(low, high)) / 100
}

fn round_price(price: u128) -> Amount {
    Amount((price / PRICE_STEP).max(1) * PRICE_STEP)
}

/// Regions nodes sit in; one task in ten must run in a given one.
const REGIONS: [&str; 6] = ["us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east"];

/// One synthetic provider node.
pub fn node(rng: &mut Rng, id: NodeId) -> NodeOffer {
    let (mut hardware, price, units, tee) = match gpu_kind(rng) {
        Some(kind) => {
            let gpus = *rng.pick(kind.counts);
            let hardware = Hardware {
                cpu_cores: gpus * rng.between(8, 16) as u32,
                memory_mb: u64::from(gpus) * kind.vram_mb * rng.between(2, 4),
                disk_mb: rng.between(1, 8) * 500 * MB_PER_GB,
                bandwidth_mbps: 1_000 * rng.between(1, 10) as u32,
                gpu_model: kind.model.to_string(),
                gpu_count: gpus,
                gpu_vram_mb: kind.vram_mb,
                ..Hardware::default()
            };
            let price = scale(rng, kind.price_per_gpu * u128::from(gpus), 80, 130);
            let units = kind.units_per_gpu * u64::from(gpus) * rng.between(85, 100) / 100;
            (hardware, price, units, rng.chance(kind.tee_permille))
        }
        None => {
            let cores = *rng.pick(&[4u32, 8, 16, 32, 64]);
            let hardware = Hardware {
                cpu_cores: cores,
                memory_mb: u64::from(cores) * rng.between(2, 8) * MB_PER_GB,
                disk_mb: rng.between(1, 4) * 250 * MB_PER_GB,
                bandwidth_mbps: 1_000,
                ..Hardware::default()
            };
            let price = scale(rng, CPU_PRICE_PER_CORE * u128::from(cores), 70, 150);
            let units = CPU_UNITS_PER_CORE * u64::from(cores) * rng.between(80, 100) / 100;
            (hardware, price, units, rng.chance(100))
        }
    };
    hardware.region = rng.pick(&REGIONS).to_string();
    let new = rng.chance(150);
    let completed_tasks = if new { rng.below(10) } else { 10 + rng.below(5_000) };
    let reputation =
        if new { 500 + rng.below(100) } else { 1000 - rng.below(400) * rng.below(400) / 400 };
    let stake_tokens =
        if hardware.gpu_count >= 4 { rng.between(1_000, 50_000) } else { rng.between(100, 5_000) };
    NodeOffer {
        id,
        hardware,
        price_per_hour: round_price(price),
        reputation_permille: reputation as u16,
        proven_units: ComputeUnits(units),
        stake: Amount::tokens(stake_tokens),
        online: rng.chance(970),
        completed_tasks,
        tee,
    }
}

/// `count` nodes with ids `0..count`.
pub fn nodes(count: usize, seed: u64) -> Vec<NodeOffer> {
    let mut rng = Rng::new(seed);
    (0..count).map(|id| node(&mut rng, NodeId(id as u64))).collect()
}

fn strategy(rng: &mut Rng) -> MatchStrategy {
    match rng.below(100) {
        0..60 => MatchStrategy::LowestPrice,
        60..75 => MatchStrategy::ReputationFirst,
        75..90 => MatchStrategy::BestFit,
        _ => MatchStrategy::Batch,
    }
}

/// One synthetic task; `node_count` bounds the node ids it may name.
pub fn task(rng: &mut Rng, id: TaskId, node_count: usize) -> TaskRequest {
    let (resources, max_price) = match gpu_kind(rng) {
        Some(kind) if rng.chance(800) => {
            let gpus = *rng.pick(&[1u32, 1, 1, 1, 2, 2, 4, 8]);
            let named = rng.chance(500);
            let resources = Resources {
                cpu_cores: 4 * gpus,
                memory_mb: 16 * MB_PER_GB * u64::from(gpus),
                disk_mb: 50 * MB_PER_GB,
                gpu_count: gpus,
                gpu_model: if named { kind.model.to_ascii_lowercase() } else { String::new() },
                gpu_vram_mb: kind.vram_mb,
                compute_units_min: if rng.chance(300) {
                    kind.units_per_gpu * u64::from(gpus) / 2
                } else {
                    0
                },
                region: String::new(),
            };
            (resources, scale(rng, kind.price_per_gpu * u128::from(gpus), 100, 200))
        }
        _ => {
            let cores = rng.between(1, 16) as u32;
            let resources = Resources {
                cpu_cores: cores,
                memory_mb: rng.between(1, 64) * MB_PER_GB,
                disk_mb: rng.between(1, 100) * MB_PER_GB,
                ..Resources::default()
            };
            (resources, scale(rng, CPU_PRICE_PER_CORE * u128::from(cores), 100, 250))
        }
    };
    let mut resources = resources;
    if rng.chance(100) {
        resources.region = rng.pick(&REGIONS).to_string();
    }
    let hours = rng.between(1, 24);
    let node_id = |rng: &mut Rng| NodeId(rng.below(node_count as u64));
    TaskRequest {
        id,
        resources,
        max_price_per_hour: Amount(max_price),
        reputation_min: *rng.pick(&[0u16, 0, 0, 0, 0, 0, 500, 500, 500, 800]),
        strategy: strategy(rng),
        value: Amount(max_price * u128::from(hours)),
        tee_required: rng.chance(30),
        network: false,
        container: false,
        allowed_nodes: rng.chance(10).then(|| (0..16).map(|_| node_id(rng)).collect()),
        excluded_nodes: if rng.chance(50) { vec![node_id(rng)] } else { Vec::new() },
    }
}

/// `count` tasks with ids `0..count`.
pub fn tasks(count: usize, node_count: usize, seed: u64) -> Vec<TaskRequest> {
    let mut rng = Rng::new(seed);
    (0..count).map(|id| task(&mut rng, TaskId(id as u64), node_count)).collect()
}
