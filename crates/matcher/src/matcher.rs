//! The matcher: the node table, the index kept in step with it, and placements.

use crate::blocks::{Pos, Traits, CONTAINERS, NETWORK, NEW_PROVIDER, TEE};
use crate::eligibility::{Capacity, Need};
use crate::index::{mix64, BucketKey, Entry, Index, Rank};
use crate::params::{MatchParams, BPS_ONE};
use crate::search::{saturate, Candidate, Probe, Scope};
use crate::strategy::{strategy, LowestPrice};
use crate::{NodeOffer, TaskExplanation, TaskRequest};
use aicpw_types::task::MatchStrategy;
use aicpw_types::{NodeId, Resources, TaskId};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Places tasks on provider nodes; see the crate documentation.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    pub(crate) params: MatchParams,
    /// Node table; a slot is reused after its node is removed.
    nodes: Vec<Option<NodeState>>,
    /// What searches read of each node, by slot, kept small and apart from the table.
    hot: Vec<Hot>,
    free_slots: Vec<u32>,
    /// Slots by node id. Looked up, never iterated in an order that decides anything; a fixed
    /// hasher keeps it the same on every machine.
    pub(crate) slots: HashMap<NodeId, u32, BuildHasherDefault<DefaultHasher>>,
    pub(crate) index: Index,
    /// Registered nodes out of the index: the offline ones.
    pub(crate) offline: usize,
}

/// The part of a node's state a search reads for each candidate.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hot {
    pub free: Capacity,
    /// Completed plus running tasks.
    pub served: u64,
}

/// Where a node sits in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    pub bucket: u32,
    pub ranks: [Rank; 3],
}

#[derive(Clone, Debug)]
pub(crate) struct NodeState {
    pub offer: NodeOffer,
    /// Capacity occupied by running tasks.
    pub used: Capacity,
    pub running: u64,
    model: u32,
    /// Interned region, which the index's traits carry.
    pub region: u32,
    scramble: u64,
    pub status: Status,
    /// The traits the index holds for this node (meaningful while indexed).
    pub traits: Traits,
    /// Where its entries were last seen in each list: a hint that saves a search.
    hints: [Pos; 3],
}

/// Whether a node is in the index, and why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Offline,
    Indexed(Placed),
}

impl NodeState {
    pub fn free(&self) -> Capacity {
        Capacity::of(&self.offer.hardware).saturating_sub(self.used)
    }
    /// Tasks served: the tie-break that spreads work over equal offers.
    pub fn served(&self) -> u64 {
        self.offer.completed_tasks.saturating_add(self.running)
    }
    /// What the index's block summaries keep of this node.
    pub fn traits(&self, fresh: bool) -> Traits {
        let free = self.free();
        let offer = &self.offer;
        let narrow = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        Traits {
            cpu_cores: free.cpu_cores,
            gpus: free.gpus,
            memory_mb: narrow(free.memory_mb),
            disk_mb: narrow(free.disk_mb),
            gpu_vram_mb: narrow(offer.hardware.gpu_vram_mb),
            proven_units: narrow(offer.proven_units.0),
            stake: saturate(offer.stake.0),
            price: saturate(offer.price_per_hour.0),
            reputation: offer.reputation_permille,
            flags: if offer.tee { TEE } else { 0 }
                | if fresh { NEW_PROVIDER } else { 0 }
                | if offer.hardware.allows_network { NETWORK } else { 0 }
                | if offer.hardware.runs_containers { CONTAINERS } else { 0 },
            region: self.region,
        }
    }
    pub fn entry(&self, slot: u32, rank: Rank) -> Entry {
        Entry { rank, scramble: self.scramble, id: self.offer.id, slot }
    }
}

fn differs_in_completed_only(a: &NodeOffer, b: &NodeOffer) -> bool {
    a.id == b.id
        && a.price_per_hour == b.price_per_hour
        && a.reputation_permille == b.reputation_permille
        && a.proven_units == b.proven_units
        && a.stake == b.stake
        && a.online == b.online
        && a.tee == b.tee
        && a.hardware == b.hardware
}

/// The tie-break starting point of one task in one block.
pub(crate) fn rotation(randomness: &[u8; 32], task: TaskId) -> u64 {
    let mut state = mix64(task.0);
    for chunk in randomness.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = mix64(state ^ u64::from_le_bytes(word));
    }
    state
}

impl Matcher {
    pub fn new(params: MatchParams) -> Matcher {
        Matcher { params, ..Matcher::default() }
    }

    pub fn params(&self) -> &MatchParams {
        &self.params
    }

    /// Registered nodes, online or not.
    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    /// The offer the matcher holds for a node.
    pub fn node(&self, id: NodeId) -> Option<&NodeOffer> {
        self.slots.get(&id).map(|slot| &self.slot(*slot).offer)
    }

    /// A node's free capacity and number of running tasks.
    pub fn occupancy(&self, id: NodeId) -> Option<(Capacity, u64)> {
        self.slots.get(&id).map(|slot| self.slot(*slot)).map(|n| (n.free(), n.running))
    }

    /// Registers a node or updates its offer, keeping its current occupancy.
    pub fn upsert_node(&mut self, offer: NodeOffer) {
        if let Some(&slot) = self.slots.get(&offer.id) {
            // The most frequent update, one more completed task, moves nothing in the index.
            let node = self.slot(slot);
            if differs_in_completed_only(&node.offer, &offer)
                && self.is_fresh(&node.offer) == self.is_fresh(&offer)
            {
                let node = self.slot_mut(slot);
                node.offer.completed_tasks = offer.completed_tasks;
                let served = node.served();
                self.hot[slot as usize].served = served;
                return;
            }
        }
        let model = self.index.models.id(&offer.hardware.gpu_model);
        let region = self.index.regions.id(&offer.hardware.region);
        let slot = match self.slots.get(&offer.id).copied() {
            Some(slot) => {
                let node = self.slot_mut(slot);
                node.offer = offer;
                node.model = model;
                node.region = region;
                slot
            }
            None => {
                let scramble = mix64(offer.id.0);
                let id = offer.id;
                let state = NodeState {
                    offer,
                    used: Capacity::default(),
                    running: 0,
                    model,
                    region,
                    scramble,
                    status: Status::Offline,
                    traits: Traits::default(),
                    hints: [Pos::default(); 3],
                };
                let slot = match self.free_slots.pop() {
                    Some(slot) => {
                        self.nodes[slot as usize] = Some(state);
                        slot
                    }
                    None => {
                        self.nodes.push(Some(state));
                        self.hot.push(Hot::default());
                        u32::try_from(self.nodes.len() - 1).expect("fewer than 2^32 nodes")
                    }
                };
                self.slots.insert(id, slot);
                self.offline += 1;
                slot
            }
        };
        self.reindex(slot);
    }

    /// Forgets a node (deregistered or ejected); its occupancy goes with it.
    pub fn remove_node(&mut self, id: NodeId) {
        let Some(slot) = self.slots.remove(&id) else { return };
        let traits = self.slot(slot).traits;
        self.set_status(slot, Status::Offline, traits);
        self.offline -= 1;
        self.nodes[slot as usize] = None;
        self.free_slots.push(slot);
    }

    /// Records a running task on a node without choosing it: how the ledger rebuilds occupancy.
    pub fn occupy(&mut self, node: NodeId, need: &Resources) {
        if let Some(&slot) = self.slots.get(&node) {
            self.commit(slot, need);
        }
    }

    /// A task placed on `node` ended: its capacity is free again.
    pub fn release(&mut self, node: NodeId, need: &Resources) {
        let Some(&slot) = self.slots.get(&node) else { return };
        let state = self.slot_mut(slot);
        state.used = state.used.saturating_sub(Capacity::used_by(need));
        state.running = state.running.saturating_sub(1);
        self.reindex(slot);
    }

    /// Places one task by its strategy and occupies the chosen node's capacity; on failure says
    /// why from what the search saw (call [`Matcher::explain_task`] for a full account).
    #[allow(clippy::result_large_err)] // the ledger's contract returns the explanation by value
    pub fn place_one(
        &mut self,
        task: &TaskRequest,
        randomness: [u8; 32],
    ) -> Result<NodeId, TaskExplanation> {
        let mut probe = Probe::default();
        match self.choose(task, &randomness, &mut probe) {
            Some(entry) => {
                self.commit(entry.slot, &task.resources);
                Ok(entry.id)
            }
            None => Err(self.quick_explanation(task, &probe)),
        }
    }

    /// The node `place_one` would choose now, without occupying it.
    pub fn select(&self, task: &TaskRequest, randomness: [u8; 32]) -> Option<NodeId> {
        self.choose(task, &randomness, &mut Probe::default()).map(|entry| entry.id)
    }

    /// The node for a task: the strategy's best, or a new provider for a reserved placement.
    pub(crate) fn choose(
        &self,
        task: &TaskRequest,
        randomness: &[u8; 32],
        probe: &mut Probe,
    ) -> Option<Entry> {
        let need = Need::new(task, &self.params);
        let strategy = strategy(task.strategy);
        let rotation = rotation(randomness, task.id);
        let scored = self.params.batch_reputation_penalty_bps > 0;
        let best = if task.strategy == MatchStrategy::Batch && scored {
            let limit = self.params.batch_candidates_max.max(1) as usize;
            let found = self.search(&need, strategy, Scope::All, limit, rotation, probe);
            found.into_iter().min_by_key(|c| (self.batch_cost(c.entry.slot), c.key()))?
        } else {
            *self.search(&need, strategy, Scope::All, 1, rotation, probe).first()?
        };
        if strategy.reserves_for_new_providers() {
            if let Some(fresh) = self.reserved(&need, &best, rotation) {
                return Some(fresh.entry);
            }
        }
        Some(best.entry)
    }

    /// The new provider a reserved placement goes to, if this placement is reserved (drawn
    /// from the rotation), `best` is not new already and a new provider is close enough in price.
    pub(crate) fn reserved(
        &self,
        need: &Need<'_>,
        best: &Candidate,
        rotation: u64,
    ) -> Option<Candidate> {
        let share = u64::from(self.params.new_provider_share_bps);
        if share == 0 || mix64(rotation ^ 0x5e1e_c7ed) % u64::from(BPS_ONE) >= share {
            return None;
        }
        let best = &self.slot(best.entry.slot).offer;
        if self.is_fresh(best) {
            return None;
        }
        let premium = u128::from(BPS_ONE + self.params.new_provider_premium_bps);
        let ceiling = best.price_per_hour.mul_div(premium, u128::from(BPS_ONE));
        let mut probe = Probe::default();
        let fresh =
            *self.search(need, &LowestPrice, Scope::Fresh, 1, rotation, &mut probe).first()?;
        let price = self.slot(fresh.entry.slot).offer.price_per_hour;
        ceiling.is_none_or(|ceiling| price <= ceiling).then_some(fresh)
    }

    pub(crate) fn is_fresh(&self, offer: &NodeOffer) -> bool {
        offer.completed_tasks < self.params.new_provider_completed_max
    }

    /// Occupies a node's capacity with one more running task.
    pub(crate) fn commit(&mut self, slot: u32, need: &Resources) {
        let state = self.slot_mut(slot);
        state.used = state.used.saturating_add(Capacity::used_by(need));
        state.running = state.running.saturating_add(1);
        self.reindex(slot);
    }

    pub(crate) fn hot(&self, slot: u32) -> &Hot {
        &self.hot[slot as usize]
    }

    pub(crate) fn slot(&self, slot: u32) -> &NodeState {
        self.nodes[slot as usize].as_ref().expect("the index names live slots only")
    }

    fn slot_mut(&mut self, slot: u32) -> &mut NodeState {
        self.nodes[slot as usize].as_mut().expect("the index names live slots only")
    }

    /// Where a node belongs now: in the index if online. Saturated nodes stay in it (their
    /// traits say they have no room), so that filling and freeing a node moves it little.
    fn wanted(&mut self, slot: u32) -> Status {
        let node = self.slot(slot);
        let free = node.free();
        if !node.offer.online {
            return Status::Offline;
        }
        let key = BucketKey { model: node.model };
        let ranks = Rank::all(&node.offer, &free);
        let bucket = self.index.bucket_id(key);
        Status::Indexed(Placed { bucket, ranks })
    }

    /// Points every node's hints at where its entries are now. Inserting nodes moves the
    /// entries after them, so after many (a matcher built from the ledger's tables) most hints
    /// are stale and each node's first update would search for its entries; O(nodes).
    pub fn refresh_hints(&mut self) {
        for bucket in self.index.buckets() {
            for (order, list) in bucket.orders.iter().enumerate() {
                for (pos, entry) in list.positions() {
                    if let Some(node) = self.nodes[entry.slot as usize].as_mut() {
                        node.hints[order] = pos;
                    }
                }
            }
        }
    }

    /// Index entries whose node's hint does not point at them; for tests.
    #[cfg(test)]
    pub(crate) fn stale_hints(&self) -> usize {
        let stale = |slot: u32| {
            let node = self.slot(slot);
            let Status::Indexed(placed) = node.status else { return 0 };
            let lists = &self.index.bucket(placed.bucket).orders;
            (0..3)
                .filter(|&order| {
                    let entry = node.entry(slot, placed.ranks[order]);
                    lists[order].at(node.hints[order]).map(|(e, _)| *e) != Some(entry)
                })
                .count()
        };
        self.slots.values().map(|&slot| stale(slot)).sum()
    }

    /// Moves a node to where it belongs after any change to its offer or occupancy: entries whose
    /// rank changed move, the others get the node's new traits in place.
    fn reindex(&mut self, slot: u32) {
        let wanted = self.wanted(slot);
        let node = self.nodes[slot as usize].as_ref().expect("the index names live slots only");
        let fresh = self.params.new_provider_completed_max > node.offer.completed_tasks;
        let traits = node.traits(fresh);
        let mut hints = node.hints;
        match (node.status, wanted) {
            (Status::Indexed(old), Status::Indexed(new)) if old.bucket == new.bucket => {
                for (order, hint) in hints.iter_mut().enumerate() {
                    let from = (*hint, &node.entry(slot, old.ranks[order]));
                    if old.ranks[order] != new.ranks[order] {
                        let to = node.entry(slot, new.ranks[order]);
                        *hint = self.index.reorder(new.bucket, order, from, to, traits);
                    } else if node.traits != traits {
                        *hint = self.index.update(new.bucket, order, from, traits);
                    }
                }
            }
            (current, wanted) if current == wanted => {}
            _ => hints = self.set_status(slot, wanted, traits),
        }
        let node = self.nodes[slot as usize].as_mut().expect("the index names live slots only");
        node.status = wanted;
        node.traits = traits;
        node.hints = hints;
        self.hot[slot as usize] = Hot { free: node.free(), served: node.served() };
    }

    /// Moves a node out of or into the index (or between buckets); returns its new hints.
    fn set_status(&mut self, slot: u32, status: Status, traits: Traits) -> [Pos; 3] {
        let node = self.nodes[slot as usize].as_ref().expect("the index names live slots only");
        let current = node.status;
        let mut hints = node.hints;
        if let Status::Indexed(placed) = current {
            let entries = placed.ranks.map(|rank| node.entry(slot, rank));
            self.index.remove(placed.bucket, &entries, &hints);
        }
        if let Status::Indexed(placed) = status {
            let entries = placed.ranks.map(|rank| node.entry(slot, rank));
            hints = self.index.insert(placed.bucket, &entries, traits);
        }
        match current {
            Status::Offline => self.offline -= 1,
            Status::Indexed(_) => {}
        }
        match status {
            Status::Offline => self.offline += 1,
            Status::Indexed(_) => {}
        }
        hints
    }
}
