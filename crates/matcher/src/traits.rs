//! What block summaries keep of each node, and the part of a task's requirements they decide.

use crate::eligibility::Constraint;

/// What a search can rule a node (or a block, as maxima) out on without looking it up. Values
/// saturate at the field's maximum (requirements saturate the same way), which keeps every test
/// sound; a saturated value sends the node to a full check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Traits {
    pub cpu_cores: u32,
    pub gpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    pub gpu_vram_mb: u32,
    pub proven_units: u32,
    pub stake: u64,
    pub price: u64,
    pub reputation: u16,
    /// [`TEE`], [`NEW_PROVIDER`] and [`NETWORK`] bits; a summary has a bit if any of its nodes
    /// has it.
    pub flags: u8,
    /// The node's interned region, compared node by node (a summary keeps 0).
    pub region: u32,
}

/// The node runs tasks in a TEE.
pub(crate) const TEE: u8 = 1;
/// The node is a new provider.
pub(crate) const NEW_PROVIDER: u8 = 2;
/// The node's operator allows tasks with network access.
pub(crate) const NETWORK: u8 = 4;

impl Traits {
    /// The summary of no node: every bound at its most restrictive.
    pub const EMPTY: Traits = Traits {
        cpu_cores: 0,
        gpus: 0,
        memory_mb: 0,
        disk_mb: 0,
        gpu_vram_mb: 0,
        proven_units: 0,
        stake: 0,
        price: u64::MAX,
        reputation: 0,
        flags: 0,
        region: 0,
    };

    /// Whether some value here only stands for a larger one.
    pub fn saturated(&self) -> bool {
        self.memory_mb == u32::MAX
            || self.disk_mb == u32::MAX
            || self.gpu_vram_mb == u32::MAX
            || self.proven_units == u32::MAX
            || self.stake == u64::MAX
            || self.price == u64::MAX
    }

    pub fn widen(&mut self, other: &Traits) {
        self.cpu_cores = self.cpu_cores.max(other.cpu_cores);
        self.gpus = self.gpus.max(other.gpus);
        self.memory_mb = self.memory_mb.max(other.memory_mb);
        self.disk_mb = self.disk_mb.max(other.disk_mb);
        self.gpu_vram_mb = self.gpu_vram_mb.max(other.gpu_vram_mb);
        self.proven_units = self.proven_units.max(other.proven_units);
        self.stake = self.stake.max(other.stake);
        self.price = self.price.min(other.price);
        self.reputation = self.reputation.max(other.reputation);
        self.flags |= other.flags;
    }

    /// Whether this summary may tighten when `old` leaves the block (replaced by `new`, if
    /// any): `old` attains a bound that `new` does not keep.
    pub fn tightens(&self, old: &Traits, new: Option<&Traits>) -> bool {
        let n = new.copied().unwrap_or(Traits::EMPTY);
        (self.cpu_cores == old.cpu_cores && n.cpu_cores < old.cpu_cores)
            || (self.gpus == old.gpus && n.gpus < old.gpus)
            || (self.memory_mb == old.memory_mb && n.memory_mb < old.memory_mb)
            || (self.disk_mb == old.disk_mb && n.disk_mb < old.disk_mb)
            || (self.gpu_vram_mb == old.gpu_vram_mb && n.gpu_vram_mb < old.gpu_vram_mb)
            || (self.proven_units == old.proven_units && n.proven_units < old.proven_units)
            || (self.stake == old.stake && n.stake < old.stake)
            || (self.price == old.price && n.price > old.price)
            || (self.reputation == old.reputation && n.reputation < old.reputation)
            || old.flags & !n.flags != 0
    }
}

/// The part of a task's requirements that [`Traits`] can decide.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Filter {
    pub cpu_cores: u32,
    pub gpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    /// 0 when the task needs no GPU.
    pub gpu_vram_mb: u32,
    pub proven_units: u32,
    pub stake: u64,
    pub price: u64,
    pub reputation: u16,
    /// Flags every matching node must have.
    pub flags: u8,
}

impl Filter {
    /// Whether some requirement here only stands for a larger one.
    pub fn saturated(&self) -> bool {
        self.memory_mb == u32::MAX
            || self.disk_mb == u32::MAX
            || self.gpu_vram_mb == u32::MAX
            || self.proven_units == u32::MAX
            || self.stake == u64::MAX
            || self.price == u64::MAX
    }

    /// The first requirement that `traits` (a node, or a block's maxima) cannot meet. A search
    /// for new providers only (which keeps no explanation) reports established nodes as
    /// failing on reputation.
    pub fn fails(&self, traits: &Traits) -> Option<Constraint> {
        let missing = self.flags & !traits.flags;
        if missing & TEE != 0 {
            return Some(Constraint::Tee);
        }
        if missing & NETWORK != 0 {
            return Some(Constraint::Network);
        }
        if missing != 0 {
            return Some(Constraint::Reputation);
        }
        if traits.gpu_vram_mb < self.gpu_vram_mb {
            return Some(Constraint::Hardware);
        }
        if traits.proven_units < self.proven_units {
            return Some(Constraint::ComputeUnits);
        }
        if traits.reputation < self.reputation {
            return Some(Constraint::Reputation);
        }
        if traits.price > self.price {
            return Some(Constraint::Price);
        }
        if traits.stake < self.stake {
            return Some(Constraint::Stake);
        }
        if traits.cpu_cores < self.cpu_cores
            || traits.memory_mb < self.memory_mb
            || traits.disk_mb < self.disk_mb
            || traits.gpus < self.gpus
        {
            return Some(Constraint::Capacity);
        }
        None
    }
}
