//! Hard requirements: whether a node may take a task now, and which requirements it fails.

use crate::params::{MatchParams, BPS_ONE};
use crate::{NodeOffer, TaskRequest};
use aicpw_types::{Amount, Hardware, Resources};
use serde::{Deserialize, Serialize};

/// One hard requirement. The order is the order explanations walk them in: what a node is
/// (online, allowed, hardware) before what it offers (reputation, price, stake) before what it has
/// free right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Constraint {
    /// The node is offline (no recent heartbeat).
    Offline,
    /// The task lists the nodes it allows (key grants) and this is not one of them.
    NotAllowed,
    /// The node already failed this task.
    Excluded,
    /// The task needs a TEE and the node has none.
    Tee,
    /// The task asks for network access and the node's operator does not allow it.
    Network,
    /// The task runs in a container and the node runs none (`Hardware::runs_containers`).
    Runtime,
    /// The task names a GPU model and the node has another.
    GpuModel,
    /// The task must run in a region and the node is elsewhere.
    Region,
    /// The node's hardware, even idle, is too small: CPU, memory, disk, GPU count or VRAM.
    Hardware,
    /// The node proved fewer compute units than the task's minimum.
    ComputeUnits,
    /// The node's reputation is below the task's floor.
    Reputation,
    /// The node asks more per hour than the task pays at most.
    Price,
    /// The node's stake does not cover the task's value.
    Stake,
    /// The node lacks free capacity now (its running tasks use it).
    Capacity,
}

impl Constraint {
    pub const ALL: [Constraint; 14] = [
        Constraint::Offline,
        Constraint::NotAllowed,
        Constraint::Excluded,
        Constraint::Tee,
        Constraint::Network,
        Constraint::Runtime,
        Constraint::GpuModel,
        Constraint::Region,
        Constraint::Hardware,
        Constraint::ComputeUnits,
        Constraint::Reputation,
        Constraint::Price,
        Constraint::Stake,
        Constraint::Capacity,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of failed requirements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmet(u16);

impl Unmet {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, constraint: Constraint) -> bool {
        self.0 & constraint.bit() != 0
    }
    /// The first failed requirement in the order of [`Constraint`].
    pub fn first(self) -> Option<Constraint> {
        Constraint::ALL.into_iter().find(|c| self.contains(*c))
    }
    pub fn iter(self) -> impl Iterator<Item = Constraint> {
        Constraint::ALL.into_iter().filter(move |c| self.contains(*c))
    }
    fn with(self, constraint: Constraint) -> Unmet {
        Unmet(self.0 | constraint.bit())
    }
}

/// Free (or used) capacity of a node in the dimensions tasks occupy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpu_cores: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub gpus: u32,
}

impl Capacity {
    pub fn of(hardware: &Hardware) -> Capacity {
        Capacity {
            cpu_cores: hardware.cpu_cores,
            memory_mb: hardware.memory_mb,
            disk_mb: hardware.disk_mb,
            gpus: hardware.gpu_count,
        }
    }
    /// What a running task with these needs occupies.
    pub fn used_by(need: &Resources) -> Capacity {
        Capacity {
            cpu_cores: need.cpu_cores,
            memory_mb: need.memory_mb,
            disk_mb: need.disk_mb,
            gpus: need.gpu_count,
        }
    }
    pub fn fits(&self, need: &Resources) -> bool {
        need.cpu_cores <= self.cpu_cores
            && need.memory_mb <= self.memory_mb
            && need.disk_mb <= self.disk_mb
            && need.gpu_count <= self.gpus
    }
    /// No free CPU core or no free memory: the node takes no further task, even one that asks
    /// for none, since every process needs some of both.
    pub fn is_saturated(&self) -> bool {
        self.cpu_cores == 0 || self.memory_mb == 0
    }
    pub fn saturating_add(self, other: Capacity) -> Capacity {
        Capacity {
            cpu_cores: self.cpu_cores.saturating_add(other.cpu_cores),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
            disk_mb: self.disk_mb.saturating_add(other.disk_mb),
            gpus: self.gpus.saturating_add(other.gpus),
        }
    }
    pub fn saturating_sub(self, other: Capacity) -> Capacity {
        Capacity {
            cpu_cores: self.cpu_cores.saturating_sub(other.cpu_cores),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            disk_mb: self.disk_mb.saturating_sub(other.disk_mb),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }
}

/// The stake a node needs to take a task of this value; saturates instead of overflowing.
pub fn stake_required(value: Amount, params: &MatchParams) -> Amount {
    if params.stake_cover_bps == BPS_ONE {
        return value; // the default; spares a 128-bit division per placement
    }
    value
        .mul_div(u128::from(params.stake_cover_bps), u128::from(BPS_ONE))
        .unwrap_or(Amount(u128::MAX))
}

/// Every requirement of `task` that the node `offer`, with `free` capacity left, fails.
pub fn unmet(
    offer: &NodeOffer,
    free: &Capacity,
    task: &TaskRequest,
    params: &MatchParams,
) -> Unmet {
    Need::new(task, params).check(offer, free, true)
}

/// Whether the GPU model the task names (if any) differs from the node's.
pub(crate) fn model_differs(hardware: &Hardware, need: &Resources) -> bool {
    !need.gpu_model.is_empty() && !hardware.gpu_model.eq_ignore_ascii_case(&need.gpu_model)
}

/// Whether the region the task names (if any) differs from the node's.
pub(crate) fn region_differs(hardware: &Hardware, need: &Resources) -> bool {
    !need.region.is_empty() && !hardware.region.eq_ignore_ascii_case(&need.region)
}

/// `Hardware::satisfies` without the model and region tests, so that explanations can tell the two apart.
pub(crate) fn hardware_too_small(hardware: &Hardware, need: &Resources) -> bool {
    hardware.cpu_cores < need.cpu_cores
        || hardware.memory_mb < need.memory_mb
        || hardware.disk_mb < need.disk_mb
        || hardware.gpu_count < need.gpu_count
        || (need.gpu_count > 0 && hardware.gpu_vram_mb < need.gpu_vram_mb)
}

/// A task with what the checks derive from it computed once.
pub(crate) struct Need<'t> {
    pub task: &'t TaskRequest,
    pub stake_min: Amount,
    /// The caller iterates `allowed_nodes` itself, so membership needs no check.
    pub allowed_known: bool,
}

impl<'t> Need<'t> {
    pub fn new(task: &'t TaskRequest, params: &MatchParams) -> Need<'t> {
        Need { task, stake_min: stake_required(task.value, params), allowed_known: false }
    }

    /// The failed requirements, in the order of [`Constraint`]; with `all` false it stops at the
    /// first one (the hot path of a placement).
    pub fn check(&self, offer: &NodeOffer, free: &Capacity, all: bool) -> Unmet {
        let task = self.task;
        let need = &task.resources;
        let failed = [
            (Constraint::Offline, !offer.online),
            (
                Constraint::NotAllowed,
                !self.allowed_known
                    && task.allowed_nodes.as_ref().is_some_and(|a| !a.contains(&offer.id)),
            ),
            (Constraint::Excluded, task.excluded_nodes.contains(&offer.id)),
            (Constraint::Tee, task.tee_required && !offer.tee),
            (Constraint::Network, task.network && !offer.hardware.allows_network),
            (Constraint::Runtime, task.container && !offer.hardware.runs_containers),
        ];
        let mut unmet = Unmet::default();
        for (constraint, fails) in failed {
            if fails {
                unmet = unmet.with(constraint);
                if !all {
                    return unmet;
                }
            }
        }
        let failed = [
            (Constraint::GpuModel, model_differs(&offer.hardware, need)),
            (Constraint::Region, region_differs(&offer.hardware, need)),
            (Constraint::Hardware, hardware_too_small(&offer.hardware, need)),
            (Constraint::ComputeUnits, offer.proven_units.0 < need.compute_units_min),
            (Constraint::Reputation, offer.reputation_permille < task.reputation_min),
            (Constraint::Price, offer.price_per_hour > task.max_price_per_hour),
            (Constraint::Stake, offer.stake < self.stake_min),
            (Constraint::Capacity, free.is_saturated() || !free.fits(need)),
        ];
        for (constraint, fails) in failed {
            if fails {
                unmet = unmet.with(constraint);
                if !all {
                    return unmet;
                }
            }
        }
        unmet
    }
}
