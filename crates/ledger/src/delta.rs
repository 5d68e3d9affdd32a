//! The scratch copy a transaction executes on: reads fall through to the state, writes stay in the
//! delta. A rejected transaction's delta is dropped, so nothing is ever half-applied; an accepted
//! one is committed, which also updates the derived indices and marks entries for the state root.

use crate::event::Event;
use crate::state::{
    entry_bytes, Account, EntryKey, Meta, Node, NodeStatus, Round, State, Task, Verdict,
};
use aicpw_matcher::NodeOffer;
use aicpw_types::codec::Encode;
use aicpw_types::{AccountId, Amount, BlockEnv, NodeId, Reject, TaskId, TaskState};
use std::collections::{BTreeMap, BTreeSet};

pub struct Delta<'s> {
    pub base: &'s State,
    pub env: &'s BlockEnv,
    accounts: BTreeMap<AccountId, Account>,
    nodes: BTreeMap<NodeId, Node>,
    tasks: BTreeMap<TaskId, Task>,
    meta: Option<Meta>,
    pub events: Vec<Event>,
    /// Work spent checking challenge openings (openings × n); counts against the block's budget.
    pub challenge_work: u64,
}

/// What a delta changed, detached from the state it borrowed.
pub struct Changes {
    accounts: BTreeMap<AccountId, Account>,
    nodes: BTreeMap<NodeId, Node>,
    tasks: BTreeMap<TaskId, Task>,
    meta: Option<Meta>,
    pub events: Vec<Event>,
    challenge_work: u64,
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
            challenge_work: 0,
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

    /// State entries this delta creates (accounts holding something, nodes, tasks): what the
    /// signer pays the storage fee for.
    pub fn created(&self) -> u128 {
        let accounts = self.accounts.iter().filter(|(id, account)| {
            !self.base.accounts.contains_key(id) && **account != Account::default()
        });
        let nodes = self.nodes.keys().filter(|id| !self.base.nodes.contains_key(id));
        let tasks = self.tasks.keys().filter(|id| !self.base.tasks.contains_key(id));
        (accounts.count() + nodes.count() + tasks.count()) as u128
    }

    pub fn into_changes(self) -> Changes {
        Changes {
            accounts: self.accounts,
            nodes: self.nodes,
            tasks: self.tasks,
            meta: self.meta,
            events: self.events,
            challenge_work: self.challenge_work,
        }
    }
}

impl State {
    fn mark_dirty(&mut self, key: EntryKey, old: Option<&dyn Encode>) {
        self.dirty.entry(key).or_insert_with(|| old.map(|value| entry_bytes(key, value)));
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
            self.index.money.account(&id, old.as_ref(), Some(&account));
            let stake_changed = old.map(|o| o.staked) != Some(account.staked);
            // An account with nothing in it that never signed is no account: not stored (its
            // nonce is 0, so nothing it signed can be replayed).
            if account == Account::default() {
                self.accounts.remove(&id);
                continue;
            }
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
            self.index.money.task(old.as_ref(), Some(&task));
            self.index_task(old.as_ref(), &task);
            self.tasks.insert(id, task);
        }
        self.index.challenge.verify_work_in_block += changes.challenge_work;
        changes.events
    }

    /// The matcher sees each node's stake headroom; refresh it when the owner's stake or its
    /// work at risk changes.
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
        self.index.challenge.update(old, new);
        if let Some(old) = old {
            self.index.ejected.remove(&old.id);
            self.index.online.remove(&(old.last_seen_ms, old.id));
            self.index.owned.remove(&(old.owner, old.id));
            if let Some(appeal) = &old.appeal {
                self.index.appeals.remove(&(appeal.closes_ms, old.id));
            }
        }
        if let Some(new) = new {
            if new.status == NodeStatus::Ejected && new.appeal.is_none() {
                self.index.ejected.insert(new.id);
            }
            self.index.owned.insert((new.owner, new.id));
            if let Some(appeal) = &new.appeal {
                self.index.appeals.insert((appeal.closes_ms, new.id));
            }
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

    /// Run value (price × time limit) the owner may still take on unverified: its stake bounds
    /// the work it may hold unaudited (`verify::unaudited_work_max`). The stake first backs the
    /// intervals already released to its leases at risk (their clawback), so a new lease never
    /// leaves a slash or a clawback uncovered (`release::backed` keeps releases covered too).
    pub fn headroom(&self, owner: &AccountId) -> u128 {
        let staked = self.accounts.get(owner).map(|a| a.staked).unwrap_or_default();
        let clawback = self.index.clawback.get(owner).copied().unwrap_or(0);
        let economics = &self.params.verification.economics;
        let max = aicpw_verify::unaudited_work_max(staked.0.saturating_sub(clawback), economics);
        max.saturating_sub(self.index.at_risk.get(owner).copied().unwrap_or(0))
    }

    pub(crate) fn offer(&self, node: &Node) -> NodeOffer {
        // The matcher requires `stake ≥ task value`; the ledger offers the headroom times the slash
        // multiple and asks the slash multiple times the run value (see `block::task_request`).
        let multiple = u128::from(self.params.verification.economics.slash_multiple_of_price);
        let stake = Amount(self.headroom(&node.owner).saturating_mul(multiple));
        let mut hardware = node.hardware.clone();
        let gpu = crate::challenge::gpu_floor(&hardware).0 > 0;
        let challenged = self.params.challenges.interval_ms > 0;
        if gpu && challenged && !crate::challenge::proves_gpu(node) {
            // Its GPU is a claim until a challenge sized for the model passes.
            hardware.gpu_model.clear();
            hardware.gpu_count = 0;
            hardware.gpu_vram_mb = 0;
        }
        NodeOffer {
            id: node.id,
            hardware,
            price_per_hour: node.price_per_hour,
            reputation_permille: node.reputation.score_permille,
            proven_units: node.proven_units,
            stake,
            online: node.online,
            completed_tasks: node.reputation.completed,
            tee: false,
        }
    }

    /// Removes an ended task from the state (`block::prune`); returns whether it was there.
    pub(crate) fn remove_task(&mut self, id: TaskId) -> bool {
        let Some(old) = self.tasks.remove(&id) else { return false };
        self.mark_dirty(EntryKey::Task(id), Some(&old));
        self.index.ended.remove(&(old.ended_ms, id));
        self.index.money.task(Some(&old), None);
        self.count_node_tasks(Some(&old), None);
        true
    }

    /// Removes an ejected node no task refers to any more (`block::prune`); returns whether it
    /// was there.
    pub(crate) fn remove_node(&mut self, id: NodeId) -> bool {
        let Some(old) = self.nodes.remove(&id) else { return false };
        self.mark_dirty(EntryKey::Node(id), Some(&old));
        self.index_node(Some(&old), None);
        true
    }

    /// Keeps `Index::node_tasks` equal to the tasks' leases.
    fn count_node_tasks(&mut self, old: Option<&Task>, new: Option<&Task>) {
        let nodes = |task: Option<&Task>| -> BTreeSet<NodeId> {
            task.map(|t| t.leases.iter().map(|l| l.node).collect()).unwrap_or_default()
        };
        let (before, after) = (nodes(old), nodes(new));
        for node in before.difference(&after) {
            if let Some(count) = self.index.node_tasks.get_mut(node) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.index.node_tasks.remove(node);
                }
            }
        }
        for node in after.difference(&before) {
            *self.index.node_tasks.entry(*node).or_default() += 1;
        }
    }

    pub(crate) fn index_task(&mut self, old: Option<&Task>, new: &Task) {
        if let Some(old) = old {
            self.index.ended.remove(&(old.ended_ms, old.id));
            self.index.queued.remove(&old.id);
            self.index.draws.remove(&old.id);
            for lease in old.leases.iter().filter(|l| l.verdict == Verdict::Pending) {
                self.index.node_leases.remove(&(lease.node, old.id));
            }
            if let Some(deadline) = self.lease_deadline(old) {
                self.index.leases.remove(&(deadline, old.id));
            }
            if let Some(deadline) = self.acceptance_deadline(old) {
                self.index.verifying.remove(&(deadline, old.id));
            }
            // The matcher occupied a node's capacity when it placed a lease; free it when the
            // lease stops running (committed, dropped, or the task ended).
            let still: BTreeSet<NodeId> = occupying(new).collect();
            for node in occupying(old).filter(|node| !still.contains(node)) {
                self.index.matcher.release(node, &old.terms.resources);
            }
        }
        if !new.state.is_terminal() {
            if new.seats > 0 {
                self.index.queued.insert(new.id);
            }
            if new.round == Round::Drawing {
                self.index.draws.insert(new.id);
            }
            for lease in new.leases.iter().filter(|l| l.verdict == Verdict::Pending) {
                self.index.node_leases.insert((lease.node, new.id));
            }
        }
        if new.state.is_terminal() && crate::withheld::deadline(new).is_none() {
            self.index.ended.insert((new.ended_ms, new.id));
        }
        if let Some(deadline) = self.lease_deadline(new) {
            self.index.leases.insert((deadline, new.id));
        }
        if let Some(deadline) = self.acceptance_deadline(new) {
            self.index.verifying.insert((deadline, new.id));
        }
        self.index_at_risk(old, new);
        self.index_withheld(old, new);
        self.count_node_tasks(old, Some(new));
    }

    /// Keeps the withheld-lease indices (late deadlines, what each node must still open) equal
    /// to the tasks' leases; their stake at risk is in `index_at_risk`.
    fn index_withheld(&mut self, old: Option<&Task>, new: &Task) {
        for (task, add) in old.into_iter().map(|t| (t, false)).chain([(new, true)]) {
            let unopened = task.leases.iter().filter(|l| l.late_reveal_deadline().is_some());
            let nodes: Vec<NodeId> = unopened.map(|l| l.node).collect();
            let deadline = crate::withheld::deadline(task);
            if add {
                self.index.withheld.extend(deadline.map(|d| (d, task.id)));
                self.index.node_withheld.extend(nodes.into_iter().map(|n| (n, task.id)));
            } else {
                if let Some(d) = deadline {
                    self.index.withheld.remove(&(d, task.id));
                }
                for node in nodes {
                    self.index.node_withheld.remove(&(node, task.id));
                }
            }
        }
    }

    /// Keeps `index.at_risk` equal to the run value of every open task's live leases per owner,
    /// and `index.clawback` to what was released to them.
    fn index_at_risk(&mut self, old: Option<&Task>, new: &Task) {
        // Per owner: (run value, released) before and after.
        let mut change: BTreeMap<AccountId, [(u128, u128); 2]> = BTreeMap::new();
        for (task, slot) in old.into_iter().map(|t| (t, 0)).chain([(new, 1)]) {
            for lease in at_risk_leases(task) {
                let Some(owner) = self.nodes.get(&lease.node).map(|n| n.owner) else { continue };
                let value = crate::market::run_price(lease.price_per_hour, &task.terms).0;
                let entry = &mut change.entry(owner).or_default()[slot];
                entry.0 += value;
                entry.1 += lease.released.0;
            }
        }
        for (owner, [was, now]) in change {
            if was == now {
                continue;
            }
            for (table, was, now) in
                [(&mut self.index.at_risk, was.0, now.0), (&mut self.index.clawback, was.1, now.1)]
            {
                let total = table.entry(owner).or_default();
                *total = total.saturating_sub(was).saturating_add(now);
                if *total == 0 {
                    table.remove(&owner);
                }
            }
            self.refresh_offers_of(owner);
        }
    }

    /// The earliest moment something in a task's current round is due: a running lease's
    /// heartbeat or time limit, a reveal window, or a verification seat nobody filled.
    pub fn lease_deadline(&self, task: &Task) -> Option<u64> {
        if task.state.is_terminal() {
            return None;
        }
        let params = &self.params;
        let mut due = None::<u64>;
        let mut consider = |at: u64| due = Some(due.map_or(at, |d| d.min(at)));
        for lease in task.leases.iter().filter(|l| l.verdict == Verdict::Pending) {
            if crate::market::awaits_grant(task, lease) {
                consider(lease.started_ms.saturating_add(params.grant_wait_ms));
            }
            if lease.commitment.is_none() {
                let heartbeat = lease.last_heartbeat_ms.saturating_add(params.lease_ms);
                let limit = lease
                    .started_ms
                    .saturating_add(task.terms.time_limit_secs.saturating_mul(1000))
                    .saturating_add(params.time_limit_grace_ms);
                consider(heartbeat.min(limit));
            } else if let (None, Some(open)) = (&lease.reveal, task.reveal_open_ms) {
                consider(open.saturating_add(params.verification.reveal_window_ms));
            }
        }
        if task.seats > 0 && task.state != TaskState::Queued {
            consider(task.seats_since_ms.saturating_add(params.verification.seat_wait_ms));
        }
        if task.state == TaskState::Queued {
            consider(task.seats_since_ms.saturating_add(params.queue_timeout_ms));
        }
        due
    }

    /// When a verified result is accepted unless the requester accepts, disputes or reveals a
    /// known answer first; none while a dispute is open.
    pub fn acceptance_deadline(&self, task: &Task) -> Option<u64> {
        let result = task.result.as_ref().filter(|_| task.state == TaskState::Verifying)?;
        if !task.bond_held().is_zero() {
            return None;
        }
        Some(result.committed_ms.saturating_add(self.params.acceptance_window_ms))
    }
}

/// Nodes whose capacity a task occupies: its running leases.
fn occupying(task: &Task) -> impl Iterator<Item = NodeId> + '_ {
    let open = !task.state.is_terminal();
    task.leases.iter().filter(move |l| open && l.is_running()).map(|l| l.node)
}

/// Leases whose result could still be found wrong (and their released intervals clawed back),
/// and withheld leases awaiting their late verdict (on open or ended tasks).
fn at_risk_leases(task: &Task) -> impl Iterator<Item = &crate::state::Lease> + '_ {
    let open = !task.state.is_terminal();
    task.leases.iter().filter(move |l| {
        (open && matches!(l.verdict, Verdict::Pending | Verdict::Upheld)) || l.is_withheld_pending()
    })
}
