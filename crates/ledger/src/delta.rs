//! The scratch copy a transaction executes on: reads fall through to the state, writes stay in the
//! delta. A rejected transaction's delta is dropped, so nothing is ever half-applied; an accepted
//! one is committed, which also updates the derived indices and marks entries for the state root.

use crate::event::Event;
use crate::state::{entry_bytes, Account, EntryKey, Meta, Node, NodeStatus, State, Task};
use aicpw_matcher::NodeOffer;
use aicpw_types::codec::Encode;
use aicpw_types::{AccountId, BlockEnv, NodeId, Reject, TaskId, TaskState};
use std::collections::BTreeMap;

pub struct Delta<'s> {
    pub base: &'s State,
    pub env: &'s BlockEnv,
    accounts: BTreeMap<AccountId, Account>,
    nodes: BTreeMap<NodeId, Node>,
    tasks: BTreeMap<TaskId, Task>,
    meta: Option<Meta>,
    pub events: Vec<Event>,
}

/// What a delta changed, detached from the state it borrowed.
pub struct Changes {
    accounts: BTreeMap<AccountId, Account>,
    nodes: BTreeMap<NodeId, Node>,
    tasks: BTreeMap<TaskId, Task>,
    meta: Option<Meta>,
    pub events: Vec<Event>,
}

impl<'s> Delta<'s> {
    pub fn new(base: &'s State, env: &'s BlockEnv) -> Self {
        Delta {
            base,
            env,
            accounts: BTreeMap::new(),
            nodes: BTreeMap::new(),
            tasks: BTreeMap::new(),
            meta: None,
            events: Vec::new(),
        }
    }

    pub fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).or_else(|| self.base.accounts.get(id)).cloned().unwrap_or_default()
    }
    pub fn set_account(&mut self, id: AccountId, account: Account) {
        self.accounts.insert(id, account);
    }
    pub fn node(&self, id: NodeId) -> Result<Node, Reject> {
        self.nodes.get(&id).or_else(|| self.base.nodes.get(&id)).cloned().ok_or(Reject::UnknownNode)
    }
    pub fn set_node(&mut self, node: Node) {
        self.nodes.insert(node.id, node);
    }
    pub fn task(&self, id: TaskId) -> Result<Task, Reject> {
        self.tasks.get(&id).or_else(|| self.base.tasks.get(&id)).cloned().ok_or(Reject::UnknownTask)
    }
    pub fn set_task(&mut self, task: Task) {
        self.tasks.insert(task.id, task);
    }
    pub fn meta(&self) -> Meta {
        self.meta.clone().unwrap_or_else(|| self.base.meta.clone())
    }
    pub fn set_meta(&mut self, meta: Meta) {
        self.meta = Some(meta);
    }
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn into_changes(self) -> Changes {
        Changes {
            accounts: self.accounts,
            nodes: self.nodes,
            tasks: self.tasks,
            meta: self.meta,
            events: self.events,
        }
    }
}

impl State {
    fn mark_dirty(&mut self, key: EntryKey, old: Option<&dyn Encode>) {
        if !self.dirty.contains_key(&key) {
            self.dirty.insert(key, old.map(|value| entry_bytes(key, value)));
        }
    }

    /// Applies a delta's changes; returns its events.
    pub fn commit(&mut self, changes: Changes) -> Vec<Event> {
        if let Some(meta) = changes.meta {
            self.mark_dirty(EntryKey::Meta, Some(&self.meta.clone()));
            self.meta = meta;
        }
        for (id, account) in changes.accounts {
            let old = self.accounts.get(&id).cloned();
            self.mark_dirty(EntryKey::Account(id), old.as_ref().map(|a| a as &dyn Encode));
            let stake_changed = old.map(|o| o.staked) != Some(account.staked);
            self.accounts.insert(id, account);
            if stake_changed {
                self.refresh_offers_of(id);
            }
        }
        for (id, node) in changes.nodes {
            let old = self.nodes.get(&id).cloned();
            self.mark_dirty(EntryKey::Node(id), old.as_ref().map(|n| n as &dyn Encode));
            self.index_node(old.as_ref(), Some(&node));
            self.nodes.insert(id, node);
        }
        for (id, task) in changes.tasks {
            let old = self.tasks.get(&id).cloned();
            self.mark_dirty(EntryKey::Task(id), old.as_ref().map(|t| t as &dyn Encode));
            self.index_task(old.as_ref(), &task);
            self.tasks.insert(id, task);
        }
        changes.events
    }

    /// The matcher sees each node's stake; refresh it when the owner's stake changes.
    fn refresh_offers_of(&mut self, owner: AccountId) {
        let owned: Vec<NodeId> = self
            .index
            .owned
            .range((owner, NodeId(0))..=(owner, NodeId(u64::MAX)))
            .map(|(_, node)| *node)
            .collect();
        for id in owned {
            if let Some(node) = self.nodes.get(&id).filter(|n| n.status == NodeStatus::Active) {
                let offer = self.offer(node);
                self.index.matcher.upsert_node(offer);
            }
        }
    }

    pub(crate) fn index_node(&mut self, old: Option<&Node>, new: Option<&Node>) {
        if let Some(old) = old {
            self.index.online.remove(&(old.last_seen_ms, old.id));
            self.index.owned.remove(&(old.owner, old.id));
        }
        if let Some(new) = new {
            self.index.owned.insert((new.owner, new.id));
        }
        match new {
            Some(node) if node.status == NodeStatus::Active => {
                if node.online {
                    self.index.online.insert((node.last_seen_ms, node.id));
                }
                self.index.matcher.upsert_node(self.offer(node));
            }
            Some(node) => self.index.matcher.remove_node(node.id),
            None => {
                if let Some(old) = old {
                    self.index.matcher.remove_node(old.id);
                }
            }
        }
    }

    pub(crate) fn offer(&self, node: &Node) -> NodeOffer {
        let stake = self.accounts.get(&node.owner).map(|a| a.staked).unwrap_or_default();
        NodeOffer {
            id: node.id,
            hardware: node.hardware.clone(),
            price_per_hour: node.price_per_hour,
            reputation_permille: node.reputation.score_permille,
            proven_units: node.proven_units,
            stake,
            online: node.online,
            completed_tasks: node.reputation.completed,
            tee: false,
        }
    }

    pub(crate) fn index_task(&mut self, old: Option<&Task>, new: &Task) {
        if let Some(old) = old {
            self.index.queued.remove(&old.id);
            if let Some(deadline) = self.lease_deadline(old) {
                self.index.leases.remove(&(deadline, old.id));
            }
            if let Some(deadline) = self.acceptance_deadline(old) {
                self.index.verifying.remove(&(deadline, old.id));
            }
            let released = match (&old.lease, &new.lease) {
                (Some(was), Some(now)) => was.node != now.node || new.state != TaskState::Running,
                (Some(_), None) => true,
                _ => false,
            };
            if let (true, Some(was), TaskState::Running) = (released, &old.lease, old.state) {
                self.index.matcher.release(was.node, &old.terms.resources);
            }
        }
        match new.state {
            TaskState::Queued => {
                self.index.queued.insert(new.id);
            }
            TaskState::Running => {
                if let Some(deadline) = self.lease_deadline(new) {
                    self.index.leases.insert((deadline, new.id));
                }
            }
            TaskState::Verifying => {
                if let Some(deadline) = self.acceptance_deadline(new) {
                    self.index.verifying.insert((deadline, new.id));
                }
            }
            _ => {}
        }
    }

    /// When a running task's lease expires: no heartbeat for `lease_ms`, or past its time limit.
    pub fn lease_deadline(&self, task: &Task) -> Option<u64> {
        let lease = task.lease.as_ref().filter(|_| task.state == TaskState::Running)?;
        let heartbeat = lease.last_heartbeat_ms.saturating_add(self.params.lease_ms);
        let limit = lease
            .started_ms
            .saturating_add(task.terms.time_limit_secs.saturating_mul(1000))
            .saturating_add(self.params.time_limit_grace_ms);
        Some(heartbeat.min(limit))
    }

    pub fn acceptance_deadline(&self, task: &Task) -> Option<u64> {
        let result = task.result.as_ref().filter(|_| task.state == TaskState::Verifying)?;
        Some(result.committed_ms.saturating_add(self.params.acceptance_window_ms))
    }
}
