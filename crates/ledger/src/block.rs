//! Block-level rules: genesis, what happens as time passes (lease expiry, automatic acceptance,
//! nodes going offline), matching queued tasks to nodes, and the state root.

use crate::delta::Delta;
use crate::event::Event;
use crate::market;
use crate::money::Violation;
use crate::root::LtHash;
use crate::state::{
    entry_bytes, key_bytes, Account, EntryChanges, EntryKey, Genesis, Index, Meta, Node, Round,
    State, Task,
};
use aicpw_matcher::{Matcher, TaskRequest};
use aicpw_types::codec::Encode;
use aicpw_types::task::{MatchStrategy, Verification};
use aicpw_types::{AccountId, Amount, BlockEnv, Hash32, NodeId, Reject, TaskId, TaskState};
use std::collections::{BTreeMap, BTreeSet};

/// Expired leases, closed acceptance windows and offline nodes handled per block, each.
pub const EXPIRIES_PER_BLOCK_MAX: usize = 4_096;
/// Eligible nodes (of distinct owners) a verification seat is drawn from.
pub const VERIFIER_CANDIDATES_MAX: usize = 16;

impl State {
    pub fn genesis(genesis: &Genesis) -> State {
        let mut accounts = BTreeMap::new();
        let mut supply = 0u128;
        for (id, amount) in &genesis.accounts {
            let account: &mut Account = accounts.entry(*id).or_default();
            account.balance = account.balance.checked_add(*amount).expect("genesis fits in u128");
            supply = supply.checked_add(amount.0).expect("genesis supply fits in u128");
        }
        let meta = Meta {
            chain_id: genesis.chain_id.clone(),
            supply: Amount(supply),
            genesis_supply: Amount(supply),
            ..Meta::default()
        };
        State::from_tables(genesis.params.clone(), meta, accounts, BTreeMap::new(), BTreeMap::new())
    }

    /// Rebuilds the derived indices and the root accumulator from the tables (genesis and restart).
    pub fn from_tables(
        params: crate::Params,
        meta: Meta,
        accounts: BTreeMap<aicpw_types::AccountId, Account>,
        nodes: BTreeMap<NodeId, Node>,
        tasks: BTreeMap<TaskId, Task>,
    ) -> State {
        let mut state = State {
            params,
            meta,
            accounts: BTreeMap::new(),
            nodes: BTreeMap::new(),
            tasks: BTreeMap::new(),
            index: Index { matcher: Matcher::new(Default::default()), ..Index::default() },
            root: LtHash::default(),
            dirty: BTreeMap::new(),
        };
        state.root.add(&entry_bytes(EntryKey::Meta, &state.meta));
        for (id, account) in accounts {
            state.root.add(&entry_bytes(EntryKey::Account(id), &account));
            state.index.money.account(&id, None, Some(&account));
            state.accounts.insert(id, account);
        }
        for (id, node) in nodes {
            state.root.add(&entry_bytes(EntryKey::Node(id), &node));
            state.index_node(None, Some(&node));
            state.nodes.insert(id, node);
        }
        for (id, task) in tasks {
            state.root.add(&entry_bytes(EntryKey::Task(id), &task));
            state.index_task(None, &task);
            state.index.money.task(None, Some(&task));
            if !task.state.is_terminal() {
                for lease in task.leases.iter().filter(|l| l.is_running()) {
                    state.index.matcher.occupy(lease.node, &task.terms.resources);
                }
            }
            state.tasks.insert(id, task);
        }
        state.index.matcher.refresh_hints();
        state
    }

    /// The canonical bytes of one entry as it is now, or `None` if it does not exist.
    pub fn entry(&self, key: EntryKey) -> Option<Vec<u8>> {
        let value: &dyn Encode = match key {
            EntryKey::Meta => &self.meta,
            EntryKey::Account(id) => self.accounts.get(&id)?,
            EntryKey::Node(id) => self.nodes.get(&id)?,
            EntryKey::Task(id) => self.tasks.get(&id)?,
        };
        Some(value.to_bytes())
    }

    /// Brings the root up to date with every entry changed since the last call; returns the root
    /// and each changed entry with its value's new encoding, `None` if it was removed (what a
    /// node must persist for this block).
    pub fn finalize_root(&mut self) -> (Hash32, EntryChanges) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changed = Vec::with_capacity(dirty.len());
        for (key, old) in dirty {
            if let Some(old) = old {
                self.root.remove(&old);
            }
            let value = self.entry(key);
            if let Some(value) = &value {
                let mut bytes = key_bytes(key);
                bytes.extend_from_slice(value);
                self.root.add(&bytes);
            }
            changed.push((key, value));
        }
        (self.root.root(), changed)
    }

    /// Everything [`crate::money::check`] checks from its running totals, recomputed from the
    /// tables (so the totals are checked too), and every task's consistency; returns what is
    /// broken, if anything. A full scan: tests and the simulation call it, blocks call
    /// `money::check`.
    pub fn check_invariants(&self) -> Result<(), String> {
        crate::money::check(self).map_err(|violation| violation.to_string())?;
        let mut total: u128 = 0;
        for account in self.accounts.values() {
            total += account.balance.0 + account.staked.0 + account.unbonding_total().0;
        }
        let (mut escrow, mut bonds): (u128, u128) = (0, 0);
        for task in self.tasks.values() {
            if task.state.is_terminal() && !(task.escrow.is_zero() && task.bond_held().is_zero()) {
                return Err(format!("task {} ended holding escrow or a bond", task.id));
            }
            if task.escrow.0 + task.paid.0 + task.refunded.0 != task.terms.budget.0 {
                return Err(format!("task {} escrow + paid + refunded != budget", task.id));
            }
            if task.state.is_terminal() && task.seats != 0 {
                return Err(format!("task {} ended with open seats", task.id));
            }
            let deferrable = matches!(task.state, TaskState::Running | TaskState::Cancelled);
            if task.cancel_requested() && !deferrable {
                return Err(format!("task {} awaits a cancel in state {:?}", task.id, task.state));
            }
            escrow += task.escrow.0;
            bonds += task.bond_held().0;
        }
        if total + escrow + bonds != self.meta.supply.0 {
            return Err(format!(
                "supply {} != accounts {total} + escrow {escrow} + bonds {bonds}",
                self.meta.supply
            ));
        }
        let totals = &self.index.money;
        if (totals.held, totals.escrow, totals.bonds) != (total, escrow, bonds) {
            return Err(format!("the running money totals {totals:?} differ from the tables"));
        }
        Ok(())
    }
}

/// Starts a block: records its height, draws the audits of results committed in earlier blocks
/// (from this block's randomness, unknown when they were committed), then applies the passage of
/// time: leases, reveal windows, late reveal windows, verification seats, acceptance windows,
/// appeals, offline nodes.
pub fn begin_block(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let mut events = Vec::new();
    let mut delta = Delta::new(state, env);
    let mut meta = delta.meta();
    meta.height = env.height;
    delta.set_meta(meta);
    events.extend(state.commit(delta.into_changes()));
    let draws: Vec<TaskId> =
        state.index.draws.iter().copied().take(EXPIRIES_PER_BLOCK_MAX).collect();
    for id in draws {
        let mut delta = Delta::new(state, env);
        match crate::verdict::draw_audits(&mut delta, id) {
            Ok(()) => events.extend(state.commit(delta.into_changes())),
            Err(reject) => panic!("the audit draw of task {id} failed: {reject}"),
        }
    }
    let mut seen = BTreeSet::new();
    // One settlement per task handles everything due in it (see `market::settle_expired`).
    let due: Vec<TaskId> = state
        .index
        .leases
        .iter()
        .take_while(|(deadline, _)| *deadline <= env.time_ms)
        .chain(state.index.verifying.iter().take_while(|(deadline, _)| *deadline <= env.time_ms))
        .chain(state.index.withheld.iter().take_while(|(deadline, _)| *deadline <= env.time_ms))
        .map(|(_, id)| *id)
        .filter(|id| seen.insert(*id))
        .take(EXPIRIES_PER_BLOCK_MAX)
        .collect();
    for id in due {
        let mut delta = Delta::new(state, env);
        match market::settle_expired(&mut delta, id) {
            Ok(()) => events.extend(state.commit(delta.into_changes())),
            Err(reject) => panic!("settling due task {id} failed: {reject}"),
        }
    }
    let appeals: Vec<NodeId> = state
        .index
        .appeals
        .iter()
        .take_while(|(closes, _)| *closes <= env.time_ms)
        .map(|(_, id)| *id)
        .take(EXPIRIES_PER_BLOCK_MAX)
        .collect();
    for id in appeals {
        let mut delta = Delta::new(state, env);
        match crate::arbitration::close(&mut delta, id) {
            Ok(()) => events.extend(state.commit(delta.into_changes())),
            Err(reject) => panic!("closing the appeal of node {id} failed: {reject}"),
        }
    }
    events.extend(mark_offline(state, env));
    events.extend(crate::challenge::begin_block(state, env));
    events
}

fn mark_offline(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let cutoff = env.time_ms.saturating_sub(state.params.node_offline_ms);
    let gone: Vec<NodeId> = state
        .index
        .online
        .iter()
        .take_while(|(seen, _)| *seen < cutoff)
        .map(|(_, id)| *id)
        .take(EXPIRIES_PER_BLOCK_MAX)
        .collect();
    let mut delta = Delta::new(state, env);
    for id in gone {
        if let Ok(mut node) = delta.node(id) {
            node.online = false;
            delta.set_node(node);
            delta.emit(Event::NodeOffline { node: id });
        }
    }
    state.commit(delta.into_changes())
}

/// The matcher's view of a task with open seats. Its value is the slash multiple times a run at
/// the maximum price, which the matcher compares with each node's offered stake (the owner's
/// headroom times the same multiple, see `State::offer`). Nodes that already hold or held a
/// lease of the task are excluded, and so are every other node of their owners: an auditor,
/// referee, replica or committee member is never the worker's own.
pub fn task_request(state: &State, task: &Task) -> TaskRequest {
    let multiple = u128::from(state.params.verification.economics.slash_multiple_of_price);
    let run = market::run_price(task.terms.max_price_per_hour, &task.terms);
    let mut excluded: BTreeSet<NodeId> = task.excluded.iter().copied().collect();
    for lease in &task.leases {
        excluded.insert(lease.node);
        if let Some(owner) = state.nodes.get(&lease.node).map(|n| n.owner) {
            excluded.extend(owned_by(state, owner));
        }
    }
    TaskRequest {
        id: task.id,
        resources: task.terms.resources.clone(),
        max_price_per_hour: task.terms.max_price_per_hour,
        reputation_min: task.terms.reputation_min,
        strategy: task.terms.strategy,
        value: Amount(run.0.saturating_mul(multiple)),
        tee_required: false,
        network: task.terms.network,
        container: task.terms.runtime == aicpw_types::task::Runtime::Container,
        // Encrypted tasks are placed like any other; their key is granted after placement.
        allowed_nodes: None,
        excluded_nodes: excluded.into_iter().collect(),
    }
}

fn owned_by(state: &State, owner: AccountId) -> impl Iterator<Item = NodeId> + '_ {
    state.index.owned.range((owner, NodeId(0))..=(owner, NodeId(u64::MAX))).map(|(_, id)| *id)
}

/// Ends a block: fills open seats of tasks (oldest first, at most `placements_per_block_max`
/// tasks; a task's seats are filled all at once or not at all, on nodes of distinct owners, each
/// within its owner's stake headroom; a lone worker's seat follows the requester's strategy and is
/// placed at once, random seats (replicas, auditor, referee, committee) are drawn in the block
/// after their candidates were frozen, [`draw_seats`]), then checks that money is conserved
/// (`money::check`). A violation is a bug in a rule: the caller must not commit the block (the
/// node halts).
pub fn end_block(state: &mut State, env: &BlockEnv) -> Result<Vec<Event>, Violation> {
    let requests: Vec<(TaskRequest, u8, bool)> = state
        .index
        .queued
        .iter()
        .take(state.params.placements_per_block_max as usize)
        .filter_map(|id| state.tasks.get(id))
        .map(|task| (task_request(state, task), task.seats, random_seats(task)))
        .collect();
    let batched = |(request, seats, random): &(TaskRequest, u8, bool)| {
        request.strategy == MatchStrategy::Batch && *seats == 1 && !random
    };
    let (batch, single): (Vec<_>, Vec<_>) = requests.into_iter().partition(batched);
    let randomness = env.randomness.0;
    let mut placed: Vec<(TaskId, NodeId)> = Vec::new();
    let mut frozen: Vec<(TaskId, Vec<NodeId>)> = Vec::new();
    let mut taken: BTreeMap<AccountId, u128> = BTreeMap::new();
    for (request, seats, random) in &single {
        if !random {
            placed.extend(place_seats(state, request, *seats, randomness, &mut taken));
            continue;
        }
        match draw_seats(state, request, *seats, env, &mut taken) {
            Drawn::Placed(nodes) => placed.extend(nodes.into_iter().map(|node| (request.id, node))),
            Drawn::Frozen(candidates) => frozen.push((request.id, candidates)),
            Drawn::Waiting => {}
        }
    }
    if !batch.is_empty() {
        let batch: Vec<TaskRequest> = batch.into_iter().map(|(request, ..)| request).collect();
        for (task, outcome) in state.index.matcher.place_batch(&batch, randomness) {
            let Ok(node) = outcome else { continue };
            match batch.iter().find(|r| r.id == task) {
                Some(request) if within_headroom(state, request, node, &mut taken) => {
                    placed.push((task, node))
                }
                Some(request) => state.index.matcher.release(node, &request.resources),
                None => {}
            }
        }
    }
    let mut delta = Delta::new(state, env);
    for (task, candidates) in frozen {
        let froze: Result<(), Reject> = market::freeze_seats(&mut delta, task, candidates);
        assert!(froze.is_ok(), "froze the seat candidates of task {task}: {froze:?}");
    }
    for (task, node) in placed {
        let assigned: Result<(), Reject> = market::assign(&mut delta, task, node);
        assert!(assigned.is_ok(), "the matcher placed task {task} on node {node}: {assigned:?}");
    }
    let mut events = state.commit(delta.into_changes());
    events.extend(prune(state, env));
    crate::money::check(state)?;
    Ok(events)
}

/// Removes ended tasks `task_retention_ms` after they ended, at most [`EXPIRIES_PER_BLOCK_MAX`]
/// a block, oldest first. Only tasks no rule needs any more are listed (`Index::ended`: no
/// withheld lease awaits its late verdict); a pruned task holds no money. Then removes ejected
/// and deregistered nodes no task in the state refers to (`Index::node_tasks`) and no open
/// appeal needs: nothing can look them up any more.
fn prune(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let cutoff = env.time_ms.saturating_sub(state.params.task_retention_ms);
    let due: Vec<TaskId> = state
        .index
        .ended
        .iter()
        .take_while(|(ended, _)| *ended <= cutoff)
        .map(|(_, id)| *id)
        .take(EXPIRIES_PER_BLOCK_MAX)
        .collect();
    let mut events: Vec<Event> = due
        .into_iter()
        .filter(|id| state.remove_task(*id))
        .map(|task| Event::TaskPruned { task })
        .collect();
    let gone: Vec<NodeId> = state
        .index
        .ejected
        .iter()
        .filter(|node| !state.index.node_tasks.contains_key(node))
        .take(EXPIRIES_PER_BLOCK_MAX)
        .copied()
        .collect();
    events.extend(
        gone.into_iter().filter(|id| state.remove_node(*id)).map(|node| Event::NodePruned { node }),
    );
    events
}

/// Whether a task's open seats are drawn at random rather than by the requester's strategy:
/// every verification seat (auditor, referee, committee), and every replica, so that a cartel
/// of cheap nodes cannot make itself the majority of a replicated task by undercutting prices.
fn random_seats(task: &Task) -> bool {
    task.round != Round::Work || matches!(task.terms.verification, Verification::Replicas(_))
}

/// Places all `count` seats of one task by the requester's strategy on nodes of distinct owners,
/// or none (freeing what it took).
fn place_seats(
    state: &mut State,
    request: &TaskRequest,
    count: u8,
    randomness: [u8; 32],
    taken: &mut BTreeMap<AccountId, u128>,
) -> Vec<(TaskId, NodeId)> {
    let mut request = request.clone();
    let mut chosen: Vec<NodeId> = Vec::new();
    let mut reserved = taken.clone();
    while chosen.len() < usize::from(count) {
        let Ok(node) = state.index.matcher.place_one(&request, randomness) else { break };
        if !within_headroom(state, &request, node, &mut reserved) {
            // Over its owner's headroom this block: skip the node, try the next best.
            state.index.matcher.release(node, &request.resources);
            request.excluded_nodes.push(node);
            continue;
        }
        chosen.push(node);
        if let Some(owner) = state.nodes.get(&node).map(|n| n.owner) {
            request.excluded_nodes.extend(owned_by(state, owner));
        }
    }
    if chosen.len() < usize::from(count) {
        for node in chosen {
            state.index.matcher.release(node, &request.resources);
        }
        return Vec::new();
    }
    *taken = reserved;
    chosen.into_iter().map(|node| (request.id, node)).collect()
}

/// What became of a task's random seats in this block.
enum Drawn {
    /// Drawn from the candidates frozen in the previous block, and occupied.
    Placed(Vec<NodeId>),
    /// Not drawn now: these candidates are frozen, to be drawn from in the next block.
    Frozen(Vec<NodeId>),
    /// Fewer eligible nodes than seats: nothing to freeze.
    Waiting,
}

/// A task's random seats. Their candidates, up to [`VERIFIER_CANDIDATES_MAX`] eligible nodes of
/// distinct owners in the matcher's order, are frozen in one block; the next block draws the
/// seats among them with its own randomness, which nobody knew while the set could still change
/// (block randomness is BLAKE3(parent hash, height): known one block ahead, so drawing from the
/// block that also chose the candidates let a worker move a sybil into the seat it would draw).
/// The draw takes candidates in the order `verify::pick_auditor` gives, passing over those no
/// longer eligible or over their owner's headroom: a participant can only take its own nodes out,
/// which never brings another of its nodes in. Too few left, or the draw missed its block: the
/// candidates are frozen again.
fn draw_seats(
    state: &mut State,
    request: &TaskRequest,
    seats: u8,
    env: &BlockEnv,
    taken: &mut BTreeMap<AccountId, u128>,
) -> Drawn {
    let randomness = env.randomness.0;
    let draw = state.tasks.get(&request.id).and_then(|t| t.seat_draw.clone());
    if let Some(draw) = draw.filter(|d| d.height.checked_add(1) == Some(env.height)) {
        if let Some(nodes) = draw_frozen(state, request, seats, draw.candidates, randomness, taken)
        {
            return Drawn::Placed(nodes);
        }
    }
    let candidates = verifier_candidates(state, request, randomness);
    if candidates.len() < usize::from(seats) {
        return Drawn::Waiting;
    }
    Drawn::Frozen(candidates)
}

/// Up to [`VERIFIER_CANDIDATES_MAX`] nodes of distinct owners the matcher would place the task
/// on now, best first.
fn verifier_candidates(state: &State, request: &TaskRequest, randomness: [u8; 32]) -> Vec<NodeId> {
    let mut probe = request.clone();
    let mut candidates = Vec::new();
    while candidates.len() < VERIFIER_CANDIDATES_MAX {
        let Some(node) = state.index.matcher.select(&probe, randomness) else { break };
        candidates.push(node);
        probe.excluded_nodes.push(node);
        if let Some(owner) = state.nodes.get(&node).map(|n| n.owner) {
            probe.excluded_nodes.extend(owned_by(state, owner));
        }
    }
    candidates
}

/// Draws `seats` of the frozen `candidates` (see [`draw_seats`]) and occupies them; `None`, with
/// nothing occupied, if too few are still eligible.
fn draw_frozen(
    state: &mut State,
    request: &TaskRequest,
    seats: u8,
    mut candidates: Vec<NodeId>,
    randomness: [u8; 32],
    taken: &mut BTreeMap<AccountId, u128>,
) -> Option<Vec<NodeId>> {
    let mut chosen: Vec<NodeId> = Vec::new();
    let mut reserved = taken.clone();
    let mut draw = 0u64;
    while chosen.len() < usize::from(seats) {
        let seed = request.id.0 ^ (draw << 56);
        let Some(index) = aicpw_verify::audit::pick_auditor(&randomness, seed, candidates.len())
        else {
            break;
        };
        draw += 1;
        let node = candidates.remove(index);
        if eligible(state, request, node, randomness)
            && within_headroom(state, request, node, &mut reserved)
        {
            state.index.matcher.occupy(node, &request.resources);
            chosen.push(node);
        }
    }
    if chosen.len() < usize::from(seats) {
        for node in chosen {
            state.index.matcher.release(node, &request.resources);
        }
        return None;
    }
    *taken = reserved;
    Some(chosen)
}

/// Whether the matcher would place the task on `node` now (active, online, free capacity, price,
/// reputation, key grant, not excluded).
fn eligible(state: &State, request: &TaskRequest, node: NodeId, randomness: [u8; 32]) -> bool {
    let granted = request.allowed_nodes.as_ref().is_none_or(|allowed| allowed.contains(&node));
    let mut probe = request.clone();
    probe.allowed_nodes = Some(vec![node]);
    granted && state.index.matcher.select(&probe, randomness) == Some(node)
}

/// Whether `node`'s owner can take one more run of the task at the node's price on top of what
/// it took earlier in this block; if so, records it.
fn within_headroom(
    state: &State,
    request: &TaskRequest,
    node: NodeId,
    taken: &mut BTreeMap<AccountId, u128>,
) -> bool {
    let (Some(node), Some(task)) = (state.nodes.get(&node), state.tasks.get(&request.id)) else {
        return false;
    };
    let run = market::run_price(node.price_per_hour, &task.terms).0;
    let used = taken.entry(node.owner).or_default();
    let fits = used.saturating_add(run) <= state.headroom(&node.owner);
    if fits {
        *used += run;
    }
    fits
}
