//! Finding the best eligible nodes for a task through the index.

use crate::blocks::{Blocks, Filter, Pos, Traits, CONTAINERS, NETWORK, NEW_PROVIDER, TEE};
use crate::eligibility::{Constraint, Need};
use crate::explain::ConstraintCounts;
use crate::index::{Bucket, Entry, Order, Rank};
use crate::matcher::Status;
use crate::strategy::Strategy;
use crate::Matcher;
use aicpw_types::NodeId;

/// Tied nodes a placement compares, from a random place among them: the one that has served
/// least (completed plus running tasks) wins. Taking the less served of two random picks keeps
/// equal offers' shares of work within a few tasks of each other over time.
pub const TIE_CHOICES: usize = 2;

/// Nodes of the tightest fit class a `BestFit` placement compares by their exact free capacity.
pub const FIT_CHOICES: usize = 8;

/// An eligible node found by a search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub entry: Entry,
    /// Completed plus running tasks: fewer wins among equal ranks.
    pub served: u64,
    /// The node's place among equal ranks, counted from the task's random starting point.
    pub rotated: u64,
}

impl Candidate {
    /// Search order: rank, then least served, then the random rotation, then the id.
    pub fn key(&self) -> (Rank, u64, u64, NodeId) {
        (self.entry.rank, self.served, self.rotated, self.entry.id)
    }
}

/// Which nodes a search may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    /// New providers only (the reserved share).
    Fresh,
}

/// What a search saw: the material of a quick explanation when it finds nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    /// Index entries (or allowed nodes) checked one by one, and blocks skipped whole.
    pub examined: u32,
    /// Nodes accounted for, one by one or by whole buckets and blocks.
    pub accounted: usize,
    pub bound_reached: bool,
    /// Per constraint, nodes whose first failed requirement it is.
    pub counts: ConstraintCounts,
}

impl Probe {
    fn count(&mut self, constraint: Constraint, nodes: usize) {
        self.counts.add(constraint, nodes);
        self.accounted += nodes;
    }
}

/// One search: the task and how to walk the index for it.
#[derive(Clone, Copy)]
struct Walk<'a, 't> {
    need: &'a Need<'t>,
    strategy: &'a dyn Strategy,
    filter: Filter,
    /// Some requirement does not fit the filter's widths: check nodes in full.
    saturated: bool,
    /// The task's region, if it names one: its interned id, `None` if no node is there.
    region: Option<Option<u32>>,
    order: Order,
    low: Entry,
    high: Entry,
    limit: usize,
    rotation: u64,
}

impl Matcher {
    /// Up to `limit` eligible nodes for the task, best first by the strategy's order; with a
    /// limit of one, ties are broken from `rotation`. At most `scan_nodes_max` steps.
    pub(crate) fn search(
        &self,
        need: &Need<'_>,
        strategy: &dyn Strategy,
        scope: Scope,
        limit: usize,
        rotation: u64,
        probe: &mut Probe,
    ) -> Vec<Candidate> {
        let order = strategy.order();
        if let Some(allowed) = &need.task.allowed_nodes {
            return self.search_allowed(allowed, need, order, scope, limit, rotation, probe);
        }
        let model = &need.task.resources.gpu_model;
        let model = (!model.is_empty()).then(|| self.index.models.find(model));
        let filter = filter(need, scope);
        let mut visits: Vec<(Rank, u32, u32)> = Vec::with_capacity(self.index.buckets().len());
        for (id, bucket) in self.index.buckets().iter().enumerate() {
            if model.is_some_and(|wanted| wanted != Some(bucket.key.model)) {
                probe.count(Constraint::GpuModel, bucket.len());
                continue;
            }
            let list = &bucket.orders[order.index()];
            let Some(first) = list.first() else { continue };
            // A bucket none of whose nodes can take the task costs one check.
            if let Some(constraint) = filter.fails(list.total()) {
                probe.examined += 1;
                probe.count(constraint, bucket.len());
                continue;
            }
            visits.push((first.rank, bucket.canonical, id as u32));
        }
        visits.sort_unstable();
        let (low, high) = strategy.range(need.task);
        let region = &need.task.resources.region;
        let region = (!region.is_empty()).then_some(region);
        let walk = Walk {
            need,
            strategy,
            saturated: filter.saturated(),
            filter,
            region: region.map(|name| self.index.regions.find(name)),
            order,
            low: Entry::lowest(low, 0),
            high: Entry::highest(high, u64::MAX),
            limit: limit.max(1),
            rotation,
        };
        let mut found: Vec<Candidate> = Vec::with_capacity(walk.limit + 1);
        for (first, _, bucket) in visits {
            let threshold = (found.len() >= walk.limit).then(|| found[walk.limit - 1].entry.rank);
            if threshold.is_some_and(|rank| first > rank) {
                break;
            }
            self.walk_bucket(self.index.bucket(bucket), &walk, threshold, probe, &mut found);
            found.sort_unstable_by_key(Candidate::key);
            found.truncate(walk.limit);
            if probe.bound_reached {
                break;
            }
        }
        found
    }

    fn candidate(&self, entry: Entry, rotation: u64) -> Candidate {
        let served = self.hot(entry.slot).served;
        Candidate { entry, served, rotated: entry.scramble.wrapping_sub(rotation) }
    }

    /// Takes up to `limit` eligible nodes from one bucket, in order. With a limit of one, the
    /// node is chosen among those tied with the first eligible one (see [`TIE_CHOICES`]).
    fn walk_bucket(
        &self,
        bucket: &Bucket,
        walk: &Walk<'_, '_>,
        threshold: Option<Rank>,
        probe: &mut Probe,
        found: &mut Vec<Candidate>,
    ) {
        let list = &bucket.orders[walk.order.index()];
        let high = match threshold {
            Some(rank) => walk.high.min(Entry::highest(rank, u64::MAX)),
            None => walk.high,
        };
        let mut pos = list.seek(&walk.low);
        let mut taken = 0;
        while taken < walk.limit {
            let Some((start, _)) = list.at(pos) else { return };
            if *start > high {
                return;
            }
            let segment = walk.strategy.segment_end(walk.need.task, start.rank);
            let segment_high = segment.map_or(high, |end| high.min(Entry::highest(end, u64::MAX)));
            match self.next_eligible(list, pos, None, &segment_high, walk, probe) {
                Some((entry, at)) if walk.limit == 1 => {
                    found.push(self.tie_choice(list, entry, at, walk, probe));
                    return;
                }
                Some((entry, at)) if tied(list, at, &entry) => {
                    // A tie group: take its nodes from the task's random starting point on.
                    let wanted = walk.limit - taken;
                    let group = self.rotated_group(list, entry, at, wanted, walk, probe);
                    taken += group.len();
                    found.extend(group.into_iter().map(|e| self.candidate(e, walk.rotation)));
                    pos = list.seek(&Entry::highest(entry.rank, u64::MAX));
                    pos = match list.at(pos) {
                        Some((e, _)) if e.rank == entry.rank => list.next(pos),
                        _ => pos,
                    };
                }
                Some((entry, at)) => {
                    found.push(self.candidate(entry, walk.rotation));
                    taken += 1;
                    pos = list.next(at);
                }
                None if probe.bound_reached || segment.is_none() => return,
                None => match walk.strategy.next_segment(start.rank) {
                    Some(next) => pos = list.seek(&Entry::lowest(next, 0)),
                    None => return,
                },
            }
        }
    }

    /// Up to `wanted` eligible nodes tied with `first` (the first eligible one in list order,
    /// at `at`), in order from the task's random starting point in the group, wrapping around.
    fn rotated_group(
        &self,
        list: &Blocks,
        first: Entry,
        at: Pos,
        wanted: usize,
        walk: &Walk<'_, '_>,
        probe: &mut Probe,
    ) -> Vec<Entry> {
        let group = TieGroup::of(list, &first, at, walk.rotation);
        let mut picks = Vec::with_capacity(wanted);
        for (start, stop) in [(group.start, None), (group.first, Some(group.start))] {
            let mut pos = start;
            while picks.len() < wanted {
                let Some((entry, found)) =
                    self.next_eligible(list, pos, stop, &group.high, walk, probe)
                else {
                    break;
                };
                picks.push(entry);
                pos = list.next(found);
            }
        }
        picks
    }

    /// Picks among the nodes tied with `first` (the first eligible one in list order, at `at`):
    /// from a uniformly random place in the group, the first [`TIE_CHOICES`] eligible nodes,
    /// of which the one that has served least wins (in the fit order: the first
    /// [`FIT_CHOICES`], of which the tightest exact fit wins).
    fn tie_choice(
        &self,
        list: &Blocks,
        first: Entry,
        at: Pos,
        walk: &Walk<'_, '_>,
        probe: &mut Probe,
    ) -> Candidate {
        if !tied(list, at, &first) {
            return self.candidate(first, walk.rotation);
        }
        let fit = walk.order == Order::Fit;
        let wanted = if fit { FIT_CHOICES } else { TIE_CHOICES };
        let key = |candidate: &Candidate| {
            let free = self.hot(candidate.entry.slot).free;
            let exact = if fit {
                (free.gpus, free.memory_mb, free.cpu_cores, free.disk_mb)
            } else {
                (0, 0, 0, 0)
            };
            (exact, candidate.served)
        };
        self.rotated_group(list, first, at, wanted, walk, probe)
            .into_iter()
            .map(|entry| self.candidate(entry, walk.rotation))
            .min_by_key(key)
            .unwrap_or_else(|| self.candidate(first, walk.rotation))
    }

    /// The first eligible entry from `pos` up to `high`, skipping blocks and groups whose
    /// summary rules them out.
    fn next_eligible(
        &self,
        list: &Blocks,
        mut pos: Pos,
        stop: Option<Pos>,
        high: &Entry,
        walk: &Walk<'_, '_>,
        probe: &mut Probe,
    ) -> Option<(Entry, Pos)> {
        let mut summary_checked = usize::MAX;
        loop {
            if stop.is_some_and(|stop| (pos.block, pos.index) >= (stop.block, stop.index)) {
                return None;
            }
            if pos.block != summary_checked {
                // Entering a block: judge it (or its whole group) by the flat summaries first,
                // and touch its entries only if some node in it may qualify.
                let (first, _) = list.block_start(pos.block)?;
                if pos.index == 0 && first > high {
                    return None;
                }
                if probe.examined >= self.params.scan_nodes_max {
                    probe.bound_reached = true;
                    return None;
                }
                if let Some((summary, count, after)) = list.group_at(pos) {
                    if let Some(constraint) = walk.filter.fails(summary) {
                        probe.examined += 1;
                        probe.count(constraint, count);
                        pos = after;
                        continue;
                    }
                }
                summary_checked = pos.block;
                let (summary, count, after) = list.block_at(pos);
                if let Some(constraint) = walk.filter.fails(summary) {
                    probe.examined += 1;
                    probe.count(constraint, count);
                    pos = after;
                    continue;
                }
            }
            // Inside a block that may hold a match: walk its slices, up to `stop`.
            let (entries, traits) = list.block_entries(pos.block);
            let end = match stop {
                Some(stop) if stop.block == pos.block => stop.index.min(entries.len()),
                _ => entries.len(),
            };
            let start = pos.index.min(end);
            for (offset, (entry, traits)) in
                entries[start..end].iter().zip(&traits[start..end]).enumerate()
            {
                if entry > high {
                    return None;
                }
                if probe.examined >= self.params.scan_nodes_max {
                    probe.bound_reached = true;
                    return None;
                }
                probe.examined += 1;
                if let Some(constraint) = walk.filter.fails(traits) {
                    probe.count(constraint, 1);
                    continue;
                }
                if let Some(constraint) = self.unmet_beyond_traits(entry, traits, walk) {
                    probe.count(constraint, 1);
                    continue;
                }
                return Some((*entry, Pos { block: pos.block, index: start + offset }));
            }
            if end < entries.len() {
                return None;
            }
            pos = list.next_block(pos);
        }
    }

    /// What an indexed node whose traits pass the filter may still fail: the task's excluded
    /// nodes, its region (which the traits carry but summaries do not), and, where the traits
    /// or the task's requirements saturate, exact free capacity and the rest. (Indexed nodes
    /// are online, the bucket matched the model, and the filter covers the rest: unsaturated
    /// traits hold the node's free capacity exactly.) Only a saturated case reads the node.
    fn unmet_beyond_traits(
        &self,
        entry: &Entry,
        traits: &Traits,
        walk: &Walk<'_, '_>,
    ) -> Option<Constraint> {
        let task = walk.need.task;
        let exact = !walk.saturated && !traits.saturated();
        let unmet = if !exact && {
            let free = &self.hot(entry.slot).free;
            free.is_saturated() || !free.fits(&task.resources)
        } {
            Some(Constraint::Capacity)
        } else if task.excluded_nodes.contains(&entry.id) {
            Some(Constraint::Excluded)
        } else if walk.region.is_some_and(|region| region != Some(traits.region)) {
            Some(Constraint::Region)
        } else if !exact {
            let node = self.slot(entry.slot);
            walk.need.check(&node.offer, &node.free(), false).first()
        } else {
            None
        };
        debug_assert_eq!(unmet.is_none(), {
            let node = self.slot(entry.slot);
            walk.need.check(&node.offer, &node.free(), true).is_empty()
        });
        unmet
    }

    /// A task limited to the nodes it names: check those directly.
    #[allow(clippy::too_many_arguments)]
    fn search_allowed(
        &self,
        allowed: &[NodeId],
        need: &Need<'_>,
        order: Order,
        scope: Scope,
        limit: usize,
        rotation: u64,
        probe: &mut Probe,
    ) -> Vec<Candidate> {
        let mut ids: Vec<NodeId> =
            allowed.iter().take(self.params.allowed_nodes_max as usize).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let need = Need { allowed_known: true, ..*need };
        let mut found = Vec::new();
        for id in ids {
            let Some(&slot) = self.slots.get(&id) else { continue };
            let node = self.slot(slot);
            if scope == Scope::Fresh && !self.is_fresh(&node.offer) {
                continue;
            }
            probe.examined += 1;
            if let Some(constraint) = need.check(&node.offer, &node.free(), false).first() {
                probe.count(constraint, 1);
                continue;
            }
            let Status::Indexed(placed) = &node.status else { continue };
            found.push(self.candidate(node.entry(slot, placed.ranks[order.index()]), rotation));
        }
        found.sort_unstable_by_key(Candidate::key);
        found.truncate(limit.max(1));
        found
    }
}

/// Where a group of tied entries lies, and where a task starts in it.
struct TieGroup {
    /// The group's first entry.
    first: Pos,
    /// The task's starting point: a uniformly random entry of the group (by position, so that
    /// every tied node is equally likely, whatever the spacing of their ids).
    start: Pos,
    /// The last possible entry of the group's rank.
    high: Entry,
}

impl TieGroup {
    fn of(list: &Blocks, entry: &Entry, at: Pos, rotation: u64) -> TieGroup {
        let first = list.seek(&Entry::lowest(entry.rank, 0));
        let high = Entry::highest(entry.rank, u64::MAX);
        let end = list.seek_from(at, &high);
        let size = list.count_between(first, end).max(1) as u64;
        let start = list.advance(first, (rotation % size) as usize);
        TieGroup { first, start, high }
    }
}

/// Whether the entry at `at` has a neighbour of equal rank.
fn tied(list: &Blocks, at: Pos, entry: &Entry) -> bool {
    list.before(at).is_some_and(|e| e.rank == entry.rank)
        || list.at(list.next(at)).is_some_and(|(e, _)| e.rank == entry.rank)
}

/// The numeric requirements of a task, saturated to the widths of [`crate::blocks::Traits`].
fn filter(need: &Need<'_>, scope: Scope) -> Filter {
    let task = need.task;
    let resources = &task.resources;
    let narrow = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    // A saturated node (no free CPU core or memory) takes no task, even one asking for none.
    Filter {
        cpu_cores: resources.cpu_cores.max(1),
        gpus: resources.gpu_count,
        memory_mb: narrow(resources.memory_mb.max(1)),
        disk_mb: narrow(resources.disk_mb),
        gpu_vram_mb: if resources.gpu_count > 0 { narrow(resources.gpu_vram_mb) } else { 0 },
        proven_units: narrow(resources.compute_units_min),
        stake: saturate(need.stake_min.0),
        price: saturate(task.max_price_per_hour.0),
        reputation: task.reputation_min,
        flags: if task.tee_required { TEE } else { 0 }
            | if task.network { NETWORK } else { 0 }
            | if task.container { CONTAINERS } else { 0 }
            | if scope == Scope::Fresh { NEW_PROVIDER } else { 0 },
    }
}

pub(crate) fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}
