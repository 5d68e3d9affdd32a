//! Block-level rules: genesis, what happens as time passes (lease expiry, automatic acceptance,
//! nodes going offline), matching queued tasks to nodes, and the state root.

use crate::delta::Delta;
use crate::event::Event;
use crate::market;
use crate::root::LtHash;
use crate::state::{
    entry_bytes, key_bytes, Account, EntryKey, Genesis, Index, Meta, Node, State, Task,
};
use aicpw_matcher::{Matcher, TaskRequest};
use aicpw_types::codec::Encode;
use aicpw_types::task::MatchStrategy;
use aicpw_types::{Amount, BlockEnv, Hash32, NodeId, Reject, TaskId, TaskState};
use std::collections::BTreeMap;

/// Expired leases, closed acceptance windows and offline nodes handled per block, each.
pub const EXPIRIES_PER_BLOCK_MAX: usize = 4_096;

impl State {
    pub fn genesis(genesis: &Genesis) -> State {
        let mut accounts = BTreeMap::new();
        let mut supply = 0u128;
        for (id, amount) in &genesis.accounts {
            let account: &mut Account = accounts.entry(*id).or_default();
            account.balance = Amount(account.balance.0 + amount.0);
            supply = supply.checked_add(amount.0).expect("genesis supply fits in u128");
        }
        let meta =
            Meta { chain_id: genesis.chain_id.clone(), supply: Amount(supply), ..Meta::default() };
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
            if let (TaskState::Running, Some(lease)) = (task.state, &task.lease) {
                state.index.matcher.occupy(lease.node, &task.terms.resources);
            }
            state.tasks.insert(id, task);
        }
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
    /// and the keys that changed (what a node must persist for this block).
    pub fn finalize_root(&mut self) -> (Hash32, Vec<EntryKey>) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changed = Vec::with_capacity(dirty.len());
        for (key, old) in dirty {
            if let Some(old) = old {
                self.root.remove(&old);
            }
            if let Some(value) = self.entry(key) {
                let mut bytes = key_bytes(key);
                bytes.extend_from_slice(&value);
                self.root.add(&bytes);
            }
            changed.push(key);
        }
        (self.root.root(), changed)
    }

    /// Tokens are conserved and escrow is consistent; returns what is broken, if anything.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut total: u128 = 0;
        for account in self.accounts.values() {
            total += account.balance.0 + account.staked.0 + account.unbonding_total().0;
        }
        let mut escrow: u128 = 0;
        for task in self.tasks.values() {
            if task.state.is_terminal() && !task.escrow.is_zero() {
                return Err(format!("task {} ended with escrow {}", task.id, task.escrow));
            }
            if task.escrow.0 + task.paid.0 + task.refunded.0 != task.terms.budget.0 {
                return Err(format!("task {} escrow + paid + refunded != budget", task.id));
            }
            escrow += task.escrow.0;
        }
        if total + escrow != self.meta.supply.0 {
            return Err(format!(
                "supply {} != accounts {total} + escrow {escrow}",
                self.meta.supply
            ));
        }
        Ok(())
    }
}

/// Starts a block: records its height, then applies the passage of time.
pub fn begin_block(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let mut events = Vec::new();
    let mut delta = Delta::new(state, env);
    let mut meta = delta.meta();
    meta.height = env.height;
    delta.set_meta(meta);
    events.extend(state.commit(delta.into_changes()));
    let due: Vec<TaskId> = state
        .index
        .leases
        .iter()
        .take_while(|(deadline, _)| *deadline <= env.time_ms)
        .chain(state.index.verifying.iter().take_while(|(deadline, _)| *deadline <= env.time_ms))
        .map(|(_, id)| *id)
        .take(EXPIRIES_PER_BLOCK_MAX)
        .collect();
    for id in due {
        let mut delta = Delta::new(state, env);
        match market::settle_expired(&mut delta, id) {
            Ok(()) => events.extend(state.commit(delta.into_changes())),
            Err(reject) => panic!("settling due task {id} failed: {reject}"),
        }
    }
    events.extend(mark_offline(state, env));
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

/// The matcher's view of a queued task.
pub fn task_request(task: &Task) -> TaskRequest {
    TaskRequest {
        id: task.id,
        resources: task.terms.resources.clone(),
        max_price_per_hour: task.terms.max_price_per_hour,
        reputation_min: task.terms.reputation_min,
        strategy: task.terms.strategy,
        value: task.terms.budget,
        tee_required: false,
        allowed_nodes: task
            .terms
            .encrypted
            .then(|| task.key_grants.iter().map(|g| g.node).collect()),
        excluded_nodes: task.excluded.clone(),
    }
}

/// Ends a block: places queued tasks (oldest first, at most `placements_per_block_max`).
pub fn end_block(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let requests: Vec<TaskRequest> = state
        .index
        .queued
        .iter()
        .take(state.params.placements_per_block_max as usize)
        .filter_map(|id| state.tasks.get(id))
        .map(task_request)
        .collect();
    let (batch, single): (Vec<_>, Vec<_>) =
        requests.into_iter().partition(|r| r.strategy == MatchStrategy::Batch);
    let randomness = env.randomness.0;
    let mut placed: Vec<(TaskId, NodeId)> = Vec::new();
    for request in &single {
        if let Ok(node) = state.index.matcher.place_one(request, randomness) {
            placed.push((request.id, node));
        }
    }
    if !batch.is_empty() {
        for (task, outcome) in state.index.matcher.place_batch(&batch, randomness) {
            if let Ok(node) = outcome {
                placed.push((task, node));
            }
        }
    }
    let mut delta = Delta::new(state, env);
    for (task, node) in placed {
        let assigned: Result<(), Reject> = market::assign(&mut delta, task, node);
        assert!(assigned.is_ok(), "the matcher placed task {task} on node {node}: {assigned:?}");
    }
    state.commit(delta.into_changes())
}
