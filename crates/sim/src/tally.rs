//! The per-attempt figures of a run: every cheating attempt (a result committed without doing
//! the work, a capacity challenge sized for capacity the node lacks, a dispute of a right
//! result), whether the ledger caught it, what the cheaters kept and lost, and what honest
//! providers lost.
//!
//! Money is counted in base units from the ledger's own events: `Paid`, `ClawedBack` and
//! `Penalized` by task and owner, `DisputeOpened`/`DisputeResolved` by task.

use crate::chain::BlockOutcome;
use crate::provider::Provider;
use crate::requester::RequesterBehaviour;
use crate::work;
use crate::world::{Party, World};
use aicpw_ledger::challenge::ChallengeKind;
use aicpw_ledger::state::DisputeOutcome;
use aicpw_ledger::{Event, State};
use aicpw_types::{AccountId, ChallengeId, NodeId, TaskId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A dispute a requester opened.
#[derive(Clone, Debug)]
struct Dispute {
    requester: AccountId,
    /// The disputed result was the task's true output.
    right: bool,
    bond: u128,
    returned: u128,
    outcome: Option<DisputeOutcome>,
}

/// What the ledger did, by task and owner, as far as the figures need it.
#[derive(Debug, Default)]
pub struct Tally {
    committed: BTreeSet<(TaskId, AccountId)>,
    paid: BTreeMap<(TaskId, AccountId), u128>,
    clawed: BTreeMap<(TaskId, AccountId), u128>,
    penalized: BTreeSet<(TaskId, AccountId)>,
    slashed: BTreeMap<AccountId, u128>,
    /// Challenger shares of slashes, by slashed owner and challenger.
    shares: BTreeMap<(AccountId, AccountId), u128>,
    /// Matrix challenges sized for the capacity their node claims, with its owner, the capacity
    /// it was sized for, and whether it failed (missed or answered wrong) once judged.
    challenges: BTreeMap<ChallengeId, (AccountId, u64, Option<bool>)>,
    disputes: BTreeMap<TaskId, Dispute>,
    /// Results committed on tasks asking for a GPU model, by task and owner.
    gpu_commits: BTreeSet<(TaskId, AccountId)>,
    /// Time each owner's nodes spent frozen or ejected (summed over its nodes), and since when
    /// each node still is.
    frozen_ms: BTreeMap<AccountId, u64>,
    frozen_since: BTreeMap<NodeId, (AccountId, u64)>,
}

fn add(map: &mut BTreeMap<(TaskId, AccountId), u128>, key: (TaskId, AccountId), amount: u128) {
    let entry = map.entry(key).or_default();
    *entry = entry.saturating_add(amount);
}

impl Tally {
    pub fn after_block(&mut self, state: &State, outcome: &BlockOutcome, now: u64) {
        let owner = |node| state.nodes.get(node).map(|n: &aicpw_ledger::state::Node| n.owner);
        for event in &outcome.events {
            match event {
                Event::ResultCommitted { task, node, .. } => {
                    if let Some(owner) = owner(node) {
                        self.committed.insert((*task, owner));
                        let gpu = state.tasks.get(task).map(|t| &t.terms.resources.gpu_model);
                        if gpu.is_some_and(|model| !model.is_empty()) {
                            self.gpu_commits.insert((*task, owner));
                        }
                    }
                }
                Event::NodeFrozen { node, .. } | Event::NodeEjected { node, .. } => {
                    if let Some(owner) = owner(node) {
                        self.frozen_since.entry(*node).or_insert((owner, now));
                    }
                }
                Event::NodeThawed { node, .. } => self.thaw(*node, now),
                Event::Paid { task, owner, amount, .. } => {
                    add(&mut self.paid, (*task, *owner), amount.0)
                }
                Event::ClawedBack { task, owner, amount, .. } => {
                    add(&mut self.clawed, (*task, *owner), amount.0)
                }
                Event::Penalized { task, owner, amount, challengers, .. } => {
                    if let Some(task) = task {
                        self.penalized.insert((*task, *owner));
                    }
                    let slashed = self.slashed.entry(*owner).or_default();
                    *slashed = slashed.saturating_add(amount.0);
                    let split = state.params.verification.economics.split.split(amount.0);
                    let share =
                        split.map_or(0, |s| s.challenger) / challengers.len().max(1) as u128;
                    for challenger in challengers {
                        let entry = self.shares.entry((*owner, *challenger)).or_default();
                        *entry = entry.saturating_add(share);
                    }
                }
                Event::ChallengeIssued { challenge, node, kind: ChallengeKind::Matrix, .. } => {
                    let sized = crate::detect::sized_for_claim(state, node, challenge);
                    let record = state.nodes.get(node);
                    let units =
                        record.and_then(|n| n.capacity.matrix.as_ref()).map(|c| c.sized_for);
                    if let (true, Some(owner), Some(units)) = (sized, owner(node), units) {
                        self.challenges.insert(*challenge, (owner, units.0, None));
                    }
                }
                Event::ChallengePassed { challenge, .. }
                | Event::ChallengeFailed { challenge, .. } => {
                    let failed = matches!(event, Event::ChallengeFailed { .. });
                    if let Some((_, _, judged)) = self.challenges.get_mut(challenge) {
                        *judged = Some(failed);
                    }
                }
                Event::DisputeOpened { task, bond } => {
                    let Some(record) = state.tasks.get(task) else { continue };
                    let result = record.result.as_ref();
                    let right =
                        result.is_some_and(|r| work::is_right(&record.terms, &r.output_hash));
                    let requester = record.requester;
                    let dispute =
                        Dispute { requester, right, bond: bond.0, returned: 0, outcome: None };
                    self.disputes.insert(*task, dispute);
                }
                Event::DisputeResolved { task, outcome, returned } => {
                    if let Some(dispute) = self.disputes.get_mut(task) {
                        dispute.returned = returned.0;
                        dispute.outcome = Some(*outcome);
                    }
                }
                _ => {}
            }
        }
    }

    fn thaw(&mut self, node: NodeId, now: u64) {
        if let Some((owner, since)) = self.frozen_since.remove(&node) {
            *self.frozen_ms.entry(owner).or_default() += now.saturating_sub(since);
        }
    }

    /// Time the owner's nodes spent frozen or ejected up to `now`.
    fn frozen_until(&self, owner: &AccountId, now: u64) -> u64 {
        let open = self.frozen_since.values().filter(|(o, _)| o == owner);
        let still: u64 = open.map(|(_, since)| now.saturating_sub(*since)).sum();
        self.frozen_ms.get(owner).copied().unwrap_or(0) + still
    }

    /// What the owner kept of its pay over every task.
    fn kept_total(&self, owner: &AccountId) -> u128 {
        let keys = self.paid.keys().filter(|(_, o)| o == owner);
        keys.fold(0u128, |sum, key| sum.saturating_add(self.kept(*key)))
    }

    /// What the owner kept of its pay on the task: paid, less what was clawed back.
    fn kept(&self, key: (TaskId, AccountId)) -> u128 {
        let paid = self.paid.get(&key).copied().unwrap_or(0);
        paid.saturating_sub(self.clawed.get(&key).copied().unwrap_or(0))
    }
}

/// One cheating attempt and what became of it.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    /// The attempt's result shows the cheat (a copy of a right output does not).
    observable: bool,
    /// The ledger sanctioned this attempt: slashed its owner for the task, failed the
    /// challenge, or rejected the dispute.
    caught: bool,
    /// What the cheater got for it that an honest party would have had to work for: the pay
    /// it kept on a result it did not compute (its compute valued at that pay, as if an honest
    /// provider's margin were nil), or the bond a dispute returned less the bond it posted.
    gain: i128,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub attempts: u64,
    pub caught_attempts: u64,
    pub observable_attempts: u64,
    pub caught_observable_attempts: u64,
    /// Attempts not caught on which the cheater kept pay (or won its dispute).
    pub uncaught_paid_attempts: u64,
    /// Σ gain over attempts, less every slash of a cheating account, plus the challenger
    /// shares of those slashes paid to cheating accounts (a cartel member rewarded for outvoting
    /// its partner), in base units.
    pub cheater_net_profit: i128,
    /// Slashes of cheating accounts, in base units.
    pub cheater_slashed: u128,
    /// Challenger shares of cheaters' slashes that went to cheating accounts, in base units.
    pub cheater_shares_back: u128,
    /// What the cheaters' nodes would have earned in the time they spent frozen or ejected, at
    /// the honest providers' average pay per node and millisecond of the run, in base units.
    pub cheater_frozen_loss: u128,
    /// Pay honest providers were owed for right results they committed (the lease's cost) and
    /// did not keep, on tasks that ended, in base units.
    pub honest_pay_lost: u128,
}

fn as_signed(amount: u128) -> i128 {
    i128::try_from(amount).unwrap_or(i128::MAX)
}

impl Figures {
    pub fn of(world: &World) -> Figures {
        let tally = &world.tally;
        let state = &world.chain.state;
        let mut attempts = Vec::new();
        let mut figures = Figures::default();
        let mut frozen_ms = 0u128;
        let (mut honest_kept, mut honest_nodes) = (0u128, 0u128);
        for party in &world.parties {
            let account = party.account();
            match party {
                Party::Provider(p) if p.is_honest() => {
                    figures.honest_pay_lost += honest_pay_lost(tally, state, p);
                    honest_kept = honest_kept.saturating_add(tally.kept_total(&account));
                    honest_nodes += 1;
                }
                Party::Provider(p) => {
                    attempts.extend(skipped_attempts(tally, p));
                    if p.lies_about_capacity() {
                        // A challenge still open when the run ends is no attempt yet.
                        let judged = tally
                            .challenges
                            .values()
                            .filter(|(o, units, _)| *o == account && p.lacks(*units));
                        attempts.extend(judged.filter_map(|(_, _, failed)| {
                            failed.map(|caught| Attempt { observable: true, caught, gain: 0 })
                        }));
                    }
                    attempts.extend(gpu_attempts(tally, p));
                    let frozen = tally.frozen_until(&account, world.now);
                    frozen_ms = frozen_ms.saturating_add(u128::from(frozen));
                }
                Party::Requester(r) if r.behaviour == RequesterBehaviour::Honest => continue,
                Party::Requester(_) => {
                    let disputes = tally.disputes.values().filter(|d| d.requester == account);
                    attempts.extend(disputes.filter(|d| d.right).map(|d| Attempt {
                        observable: true,
                        caught: d.outcome == Some(DisputeOutcome::Rejected),
                        gain: as_signed(d.returned) - as_signed(d.bond),
                    }));
                }
            }
            if !world.watch.honest.contains(&account) {
                let slashed = tally.slashed.get(&account).copied().unwrap_or(0);
                figures.cheater_slashed = figures.cheater_slashed.saturating_add(slashed);
            }
        }
        for attempt in &attempts {
            figures.attempts += 1;
            figures.caught_attempts += u64::from(attempt.caught);
            figures.observable_attempts += u64::from(attempt.observable);
            figures.caught_observable_attempts += u64::from(attempt.observable && attempt.caught);
            figures.uncaught_paid_attempts += u64::from(!attempt.caught && attempt.gain > 0);
            figures.cheater_net_profit = figures.cheater_net_profit.saturating_add(attempt.gain);
        }
        let cheating = |a: &AccountId| !world.watch.honest.contains(a);
        figures.cheater_shares_back = tally
            .shares
            .iter()
            .filter(|((owner, challenger), _)| cheating(owner) && cheating(challenger))
            .fold(0u128, |sum, (_, share)| sum.saturating_add(*share));
        // What an honest provider earned per millisecond of the run, times the time the
        // cheaters' nodes spent frozen or ejected: the work a freeze cost them.
        let honest_node_ms = honest_nodes.saturating_mul(u128::from(world.now.max(1)));
        figures.cheater_frozen_loss = honest_kept.saturating_mul(frozen_ms) / honest_node_ms.max(1);
        figures.cheater_net_profit = figures
            .cheater_net_profit
            .saturating_sub(as_signed(figures.cheater_frozen_loss))
            .saturating_sub(as_signed(figures.cheater_slashed))
            .saturating_add(as_signed(figures.cheater_shares_back));
        figures
    }
}

/// The results `provider` committed on chain without doing the work.
fn skipped_attempts(tally: &Tally, provider: &Provider) -> Vec<Attempt> {
    let me = provider.wallet.account;
    provider
        .skipped
        .iter()
        .filter(|(task, _)| tally.committed.contains(&(**task, me)))
        .map(|(task, skipped)| Attempt {
            observable: skipped.observable(),
            caught: tally.penalized.contains(&(*task, me)),
            gain: as_signed(tally.kept((*task, me))),
        })
        .collect()
}

/// Results `provider` committed on tasks asking for a GPU its node does not really have: the
/// requester paid for hardware it did not get (nothing in a result shows it).
fn gpu_attempts(tally: &Tally, provider: &Provider) -> Vec<Attempt> {
    let me = provider.wallet.account;
    let liar = provider.fakes_gpu();
    tally
        .gpu_commits
        .iter()
        .filter(|(_, owner)| liar && *owner == me)
        .map(|key| Attempt {
            observable: false,
            caught: tally.penalized.contains(key),
            gain: as_signed(tally.kept(*key)),
        })
        .collect()
}

/// What an honest provider was owed and did not keep for the right results it committed on
/// tasks that ended.
fn honest_pay_lost(tally: &Tally, state: &State, provider: &Provider) -> u128 {
    let me = provider.wallet.account;
    let mut lost = 0u128;
    for (id, sealed) in &provider.journal {
        let Some(task) = state.tasks.get(id) else { continue };
        let right = work::is_right(&task.terms, &sealed.output);
        if !right || !task.state.is_terminal() || !tally.committed.contains(&(*id, me)) {
            continue;
        }
        let owed = task
            .leases
            .iter()
            .filter(|l| l.commitment == Some(sealed.commitment))
            .map(|l| l.cost.0)
            .max()
            .unwrap_or(0);
        lost = lost.saturating_add(owed.saturating_sub(tally.kept((*id, me))));
    }
    lost
}
