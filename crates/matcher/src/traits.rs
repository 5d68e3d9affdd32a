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
    /// [`TEE`], [`NEW_PROVIDER`], [`NETWORK`] and [`CONTAINERS`] bits; a summary has a bit if any of its nodes
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
/// The node runs container tasks.
pub(crate) const CONTAINERS: u8 = 8;

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

    /// The dimensions of this summary that may tighten when `old` leaves the block (replaced
    /// by `new`, if any): those where `old` attains the bound and `new` does not.
    pub fn stale(&self, old: &Traits, new: Option<&Traits>) -> u16 {
        let mut stale = 0;
        let mut check = |bit: u16, attained: bool, kept: bool| {
            if attained && !kept {
                stale |= 1 << bit;
            }
        };
        let n = new.copied().unwrap_or(Traits::EMPTY);
        check(0, self.cpu_cores == old.cpu_cores, n.cpu_cores >= old.cpu_cores);
        check(1, self.gpus == old.gpus, n.gpus >= old.gpus);
        check(2, self.memory_mb == old.memory_mb, n.memory_mb >= old.memory_mb);
        check(3, self.disk_mb == old.disk_mb, n.disk_mb >= old.disk_mb);
        check(4, self.gpu_vram_mb == old.gpu_vram_mb, n.gpu_vram_mb >= old.gpu_vram_mb);
        check(5, self.proven_units == old.proven_units, n.proven_units >= old.proven_units);
        check(6, self.stake == old.stake, n.stake >= old.stake);
        check(7, self.price == old.price, n.price <= old.price);
        check(8, self.reputation == old.reputation, n.reputation >= old.reputation);
        check(9, old.flags & !n.flags != 0, false);
        stale
    }

    /// Recomputes the `stale` dimensions from the block's entries.
    pub fn recompute(&mut self, stale: u16, traits: &[Traits]) {
        let has = |bit: u16| stale & (1 << bit) != 0;
        macro_rules! most {
            ($bit:expr, $field:ident) => {
                if has($bit) {
                    self.$field =
                        traits.iter().map(|t| t.$field).max().unwrap_or(Traits::EMPTY.$field);
                }
            };
        }
        most!(0, cpu_cores);
        most!(1, gpus);
        most!(2, memory_mb);
        most!(3, disk_mb);
        most!(4, gpu_vram_mb);
        most!(5, proven_units);
        most!(6, stake);
        most!(8, reputation);
        if has(7) {
            self.price = traits.iter().map(|t| t.price).min().unwrap_or(u64::MAX);
        }
        if has(9) {
            self.flags = traits.iter().fold(0, |flags, t| flags | t.flags);
        }
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
        if missing & CONTAINERS != 0 {
            return Some(Constraint::Runtime);
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
