//! Result verification: every lease commits to its result, then reveals it once every lease of
//! its round has committed, so nobody can copy another's result or learn its audit before
//! committing. Each commitment carries the result's equality tag
//! (`verify::replication::equality_tag`): equal results, equal tags. A round whose tags differ
//! is not revealed: its judges (the audit's referee, the replicas' committee) are drawn first and
//! commit blind, knowing only that the results differ, never what they are, and then every lease
//! reveals together. A reveal must open its commitment and match its tag (`TagMismatch` 670: a
//! lease that lied in its tag cannot open it, and is withheld and slashed like any unopened one).
//! Then the round is judged by the task's policy.
//!
//! - `none`: the worker's revealed result goes to the requester.
//! - `audit`: the worker's commitment lands; the *next* block's randomness draws the audit
//!   (`verify::AuditPolicy`: always below a clean streak of 10, then `max(5%, 1/streak)`), so the
//!   worker cannot time its commitment to a lucky block. An audited result waits for an auditor
//!   (another owner's node) to commit. Equal tags: both reveal, both upheld, the worker's streak
//!   grows. Different tags: a referee is drawn and commits blind, then all three reveal and decide
//!   by strict majority of three; the minority is slashed. A referee whose tag matches neither
//!   (it guessed, or one of the three is wrong in its own way) leaves no majority possible: two
//!   more judges are drawn, still blind, and the five decide by strict majority (once; no
//!   majority of five fails the task `no-quorum`, nobody slashed). One missed its reveal after equal tags:
//!   a referee decides the same way (the revealed hash is public then, but the tags said the
//!   results were equal). If the worker lost, the requester gets the auditor's result.
//! - `replicas: k`: k nodes of k different owners, drawn at random among the eligible, run at
//!   once. All tags equal: the replicas reveal, and a strict majority of k is upheld. A split of
//!   the tags goes, before any reveal, to a committee of two random nodes of other owners (a
//!   referee round) that commits blind; then all k + 2 reveal, the strict majority of them is
//!   upheld and the rest slashed. Committee tags that leave no strict majority possible bring
//!   two more judges once, as for an audit; no majority then: the task fails (`no-quorum`),
//!   nobody slashed. A round left without a majority by a missed reveal goes to a committee the
//!   same way.
//!
//! A non-deterministic task's honest results differ in hash, so their tags differ too: its
//! audited or replicated rounds are judged by blind judges whenever the tags differ, and the
//! vote compares summaries within the declared tolerance (`ledger::compare`).
//!
//! A lease that commits but does not reveal within `reveal_window_ms` is withheld: like an
//! expired lease it earns nothing more than its released intervals, loses reputation and is
//! excluded from the task, and the round is judged on the reveals that came. It must still open its commitment within the late reveal
//! window or be slashed (`ledger::withheld`). A lone worker's silent lease is dropped and its task
//! requeued instead: nothing was compared with it and no audit was drawn against it, so keeping
//! it closed gains a cheater nothing over revealing, and absence alone is not slashed.

use crate::compare::{self, Ballot};
use crate::delta::Delta;
use crate::event::Event;
use crate::market::{self, finish, leave_node};
use crate::money::Offence;
use crate::penalty::{self, Fault};
use crate::state::{Lease, Reveal, Role, Round, State, Task, Verdict};
use aicpw_types::task::{FailureReason, Verification};
use aicpw_types::{AccountId, Hash32, NodeId, Reject, TaskId, TaskState, TaskTerms};
use aicpw_verify::replication::QuorumOutcome;
use aicpw_verify::PPM;

/// Most things one settlement of a task may handle (each lease once, plus its seats).
const EXPIRIES_PER_TASK_MAX: usize = 64;

pub fn commit_result(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    node: NodeId,
    commitment: Hash32,
    tag: Hash32,
) -> Result<(), Reject> {
    let (mut task, index) = market::running_lease(delta, &who, id, node)?;
    let now = delta.env.time_ms;
    let cost = market::cost(&task, &task.leases[index], now);
    let lease = &mut task.leases[index];
    lease.commitment = Some(commitment);
    lease.tag = tag;
    lease.committed_ms = now;
    lease.committed_height = delta.env.height;
    lease.cost = cost;
    let role = lease.role;
    leave_node(delta, node)?;
    if matches!(task.terms.verification, Verification::Spot | Verification::Audit)
        && role == Role::Worker
    {
        task.round = Round::Drawing;
    }
    delta.emit(Event::ResultCommitted { task: id, node, role });
    open_reveals_if_ready(delta, &mut task);
    delta.set_task(task);
    Ok(())
}

/// Opens the round's reveals once no seat is open and every lease in the round has committed.
/// An audit or replica round whose tags differ is judged instead: its referee or committee is
/// drawn now, before any result is revealed, and the reveals open once it has committed.
fn open_reveals_if_ready(delta: &mut Delta<'_>, task: &mut Task) {
    if task.reveal_open_ms.is_some() || task.seats > 0 || task.round == Round::Drawing {
        return;
    }
    let pending: Vec<&Lease> =
        task.leases.iter().filter(|l| l.verdict == Verdict::Pending).collect();
    let Some(first) = pending.first().map(|l| l.tag) else { return };
    if pending.iter().any(|l| l.commitment.is_none()) {
        return;
    }
    if pending.iter().any(|l| l.tag != first) {
        let judges = match (task.round, task.terms.verification) {
            (Round::Audit, _) => 1,
            (Round::Work, Verification::Replicas(_)) => market::COMMITTEE_SIZE,
            (Round::Referee, _) if escalates(task, &pending) => market::COMMITTEE_SIZE,
            _ => 0,
        };
        if judges > 0 {
            start_round(delta, task, Round::Referee, judges);
            return;
        }
    }
    task.reveal_open_ms = Some(delta.env.time_ms);
    delta.emit(Event::RevealsOpened { task: task.id, round: task.round });
}

/// Judges of the referee round still in it (a silent one's successor replaces it).
fn judges(task: &Task) -> u32 {
    let judging = |l: &&Lease| l.verdict == Verdict::Pending && l.role == Role::Referee;
    u32::try_from(task.leases.iter().filter(judging).count()).unwrap_or(u32::MAX)
}

/// Seats of a referee round's vote: the judged leases' (worker and auditor, or the k replicas),
/// withheld ones included, and its judges.
fn referee_voters(task: &Task) -> u32 {
    let judged = match task.terms.verification {
        Verification::Replicas(k) => u32::from(k),
        _ => 2,
    };
    judged + judges(task)
}

/// Whether a referee round's commitments, all in, leave no strict majority of equal tags, so
/// that the reveals could only end `no-quorum`: a judge that guessed instead of computing would
/// otherwise let a forger escape its slash. Such a round draws `COMMITTEE_SIZE` more judges
/// once, still before anything is revealed. Not for a non-deterministic task, whose honest
/// results differ in tag (its vote compares summaries).
fn escalates(task: &Task, pending: &[&Lease]) -> bool {
    let first_judges = match task.terms.verification {
        Verification::Replicas(_) => u32::from(market::COMMITTEE_SIZE),
        _ => 1,
    };
    let most_equal = pending
        .iter()
        .map(|l| pending.iter().filter(|other| other.tag == l.tag).count())
        .max()
        .unwrap_or(0);
    let most_equal = u32::try_from(most_equal).unwrap_or(u32::MAX);
    task.terms.nondeterministic.is_none()
        && judges(task) <= first_judges
        && most_equal.saturating_mul(2) <= referee_voters(task)
}

/// What a `RevealResult` opens: the result's hash, its summary (a non-deterministic task's, else
/// empty), its CID and the commitment's salt.
pub struct Opening {
    pub output_hash: Hash32,
    pub salt: Hash32,
    pub result_cid: String,
    pub summary: Vec<i64>,
}

impl Opening {
    /// Checks that it opens `commitment` of `who` on `task` and matches the `tag` committed with
    /// it (`TagMismatch` 670), with a summary exactly when the task declared itself
    /// non-deterministic (`SummaryInvalid` 681); the reveal it makes.
    pub(crate) fn open(
        self,
        task: &Task,
        who: &AccountId,
        commitment: &Hash32,
        tag: &Hash32,
        revealed_ms: u64,
    ) -> Result<Reveal, Reject> {
        if task.terms.nondeterministic.is_some() == self.summary.is_empty() {
            return Err(Reject::SummaryInvalid);
        }
        let (hash, cid, salt) = (&self.output_hash.0, &self.result_cid, &self.salt.0);
        aicpw_verify::check_reveal(
            &commitment.0,
            task.id.0,
            &who.0,
            hash,
            &self.summary,
            cid,
            salt,
        )
        .map_err(|_| Reject::BadCommitment)?;
        if aicpw_verify::equality_tag(task.id.0, hash, &self.summary) != tag.0 {
            return Err(Reject::TagMismatch);
        }
        let Opening { output_hash, result_cid, summary, .. } = self;
        Ok(Reveal { output_hash, result_cid, revealed_ms, summary })
    }
}

pub fn reveal_result(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    node: NodeId,
    opening: Opening,
) -> Result<(), Reject> {
    let task = delta.task(id)?;
    if let Some(index) = crate::withheld::lease_of(&task, node) {
        return crate::withheld::reveal_late(delta, who, task, index, opening);
    }
    let (mut task, index) = market::leased(delta, &who, id, node)?;
    let lease = &task.leases[index];
    if lease.reveal.is_some() {
        return Err(Reject::AlreadyCommitted);
    }
    let (Some(commitment), Some(_)) = (lease.commitment, task.reveal_open_ms) else {
        return Err(Reject::RevealNotOpen);
    };
    if task.awaits_judges(lease) {
        return Err(Reject::RevealNotOpen);
    }
    let judge = task.round == Round::Referee && lease.role == Role::Referee;
    let reveal = opening.open(&task, &who, &commitment, &lease.tag, delta.env.time_ms)?;
    let output_hash = reveal.output_hash;
    task.leases[index].reveal = Some(reveal);
    delta.emit(Event::ResultRevealed { task: id, node, output_hash });
    if judge && !task.judges_unrevealed() {
        // Every judge revealed: the reveal window of the leases they judge starts now.
        task.reveal_open_ms = Some(delta.env.time_ms);
    }
    close_round_if_ready(delta, task)
}

/// Judges the round once every lease still in it has revealed; stores the task either way.
pub(crate) fn close_round_if_ready(delta: &mut Delta<'_>, task: Task) -> Result<(), Reject> {
    let mut pending = task.leases.iter().filter(|l| l.verdict == Verdict::Pending);
    if task.reveal_open_ms.is_none() || pending.any(|l| l.reveal.is_none()) {
        delta.set_task(task);
        return Ok(());
    }
    match (task.round, task.terms.verification) {
        (Round::Work, Verification::Replicas(k)) => replicas_revealed(delta, task, u32::from(k)),
        (Round::Referee, _) => {
            let voters = referee_voters(&task);
            decide(delta, task, voters)
        }
        (Round::Work, _) => {
            let Some(index) = first_pending(&task) else {
                return finish(delta, task, TaskState::Failed, Some(FailureReason::NoQuorum));
            };
            let mut task = task;
            task.leases[index].verdict = Verdict::Upheld;
            enter_verifying(delta, task, index)
        }
        (Round::Audit, _) => compare_audit(delta, task),
        (Round::Dispute, _) => crate::dispute::decide(delta, task),
        (Round::Drawing, _) => {
            delta.set_task(task);
            Ok(())
        }
    }
}

fn first_pending(task: &Task) -> Option<usize> {
    task.leases.iter().position(|l| l.verdict == Verdict::Pending)
}

/// The revealed result of a lease still in the round.
fn revealed(lease: &Lease) -> Option<Ballot<'_>> {
    let reveal = lease.reveal.as_ref().filter(|_| lease.verdict == Verdict::Pending)?;
    Some(Ballot::of_reveal(voter(lease.node), reveal))
}

/// A result verified by the task's policy: the requester may download, accept, dispute it. If
/// the requester cancelled while it was judged, the verdict was what the cancel waited for: the
/// result is kept (a withheld lease opened late is judged against it) and the task ends
/// cancelled, its upheld leases paid (`cancel::settle`).
fn enter_verifying(delta: &mut Delta<'_>, mut task: Task, index: usize) -> Result<(), Reject> {
    let lease = &task.leases[index];
    let reveal = lease.reveal.clone().ok_or(Reject::InvalidTaskState)?;
    task.result = Some(crate::state::ResultCommit {
        node: lease.node,
        result_cid: reveal.result_cid,
        output_hash: reveal.output_hash,
        committed_ms: delta.env.time_ms,
        cost: lease.cost,
        summary: reveal.summary,
    });
    if task.cancel_requested() {
        return crate::cancel::settle(delta, task);
    }
    task.state = TaskState::Verifying;
    delta.emit(Event::ResultVerified {
        task: task.id,
        node: lease.node,
        output_hash: reveal.output_hash,
    });
    delta.set_task(task);
    Ok(())
}

/// Starts a round that needs `seats` new leases; earlier leases keep their commitments.
pub(crate) fn start_round(delta: &mut Delta<'_>, task: &mut Task, round: Round, seats: u8) {
    task.round = round;
    task.seats = seats;
    task.seat_draw = None;
    task.seats_since_ms = delta.env.time_ms;
    task.reveal_open_ms = None;
    delta.emit(Event::RoundStarted { task: task.id, round });
}

/// The chance in parts per million that a worker's result on a task with these terms is audited:
/// every result while the node has a withheld commitment not yet opened or slashed (it may be
/// hiding a forgery its audit caught); otherwise the floor rate under `spot` (none while no
/// other owner has a node: every seat would be the worker's owner's, so nobody could audit it),
/// the rate of the node's clean streak under `audit`; zero under replicas (they check each
/// other).
pub fn audit_rate_ppm(state: &State, terms: &TaskTerms, node: NodeId, clean_streak: u32) -> u32 {
    let policy = state.params.verification.audit_policy();
    let range = (node, TaskId(0))..=(node, TaskId(u64::MAX));
    if state.index.node_withheld.range(range).next().is_some() {
        return PPM;
    }
    match terms.verification {
        Verification::Spot if !another_owner(state, node) => 0,
        Verification::Spot => policy.rate_min_ppm,
        Verification::Audit => policy.rate_ppm(clean_streak),
        Verification::Replicas(_) => 0,
    }
}

/// Whether a node of another owner than `node`'s is registered (`owned` is sorted by owner: all
/// of one owner exactly when its first and last entries are).
fn another_owner(state: &State, node: NodeId) -> bool {
    let Some(owner) = state.nodes.get(&node).map(|n| n.owner) else { return false };
    let ends = [state.index.owned.first(), state.index.owned.last()];
    ends.into_iter().flatten().any(|(other, _)| *other != owner)
}

/// The audit draw of every task whose worker committed in an earlier block.
pub fn draw_audits(delta: &mut Delta<'_>, id: TaskId) -> Result<(), Reject> {
    let mut task = delta.task(id)?;
    let Some(worker) = first_pending(&task).map(|i| task.leases[i].clone()) else {
        return Ok(());
    };
    if task.round != Round::Drawing || worker.committed_height >= delta.env.height {
        return Ok(());
    }
    let streak = delta.node(worker.node)?.reputation.clean_streak;
    let rate = audit_rate_ppm(delta.base, &task.terms, worker.node, streak);
    let audited = aicpw_verify::audited(rate, &delta.env.randomness.0, id.0);
    delta.emit(Event::AuditDrawn { task: id, node: worker.node, audited });
    if audited {
        start_round(delta, &mut task, Round::Audit, 1);
    } else {
        task.round = Round::Work;
        open_reveals_if_ready(delta, &mut task);
    }
    delta.set_task(task);
    Ok(())
}

/// Worker and auditor revealed the same hash (or, for a non-deterministic task, summaries within
/// its tolerance): both upheld. Otherwise a referee decides.
fn compare_audit(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    let pending: Vec<usize> =
        (0..task.leases.len()).filter(|i| task.leases[*i].verdict == Verdict::Pending).collect();
    let results: Vec<Option<Ballot<'_>>> =
        pending.iter().map(|i| revealed(&task.leases[*i])).collect();
    let agree = match results.as_slice() {
        [Some(a), Some(b)] => compare::agree(&task.terms, a, b),
        _ => false,
    };
    if !agree {
        start_round(delta, &mut task, Round::Referee, 1);
        delta.set_task(task);
        return Ok(());
    }
    for index in &pending {
        task.leases[*index].verdict = Verdict::Upheld;
        penalty::passed(delta, task.leases[*index].node)?;
    }
    let worker = pending
        .iter()
        .copied()
        .find(|i| task.leases[*i].role == Role::Worker)
        .unwrap_or(pending[0]);
    delta.emit(Event::AuditPassed { task: task.id, node: task.leases[worker].node });
    enter_verifying(delta, task, worker)
}

/// A quorum voter's key: the node id (two leases of one task never share a node).
pub(crate) fn voter(node: NodeId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&node.0.to_le_bytes());
    key
}

/// The revealed results of the round's leases.
fn ballots(task: &Task) -> Vec<Ballot<'_>> {
    task.leases.iter().filter_map(revealed).collect()
}

/// The strict-majority vote over the revealed results of the round's leases (`ledger::compare`).
pub(crate) fn vote(task: &Task, replicas: u32) -> QuorumOutcome {
    compare::vote(&task.terms, replicas, &ballots(task))
}

/// The replicas revealed. All revealed hashes equal and a strict majority of `k`: upheld, nobody
/// slashed. Any disagreement (or no majority) is not settled by the replicas' own vote, which a
/// cartel holding most seats of a task would win: the split goes to a committee of
/// `COMMITTEE_SIZE` random nodes of other owners (a referee round), and the vote over every
/// revealed hash, replicas and committee, decides who is slashed.
fn replicas_revealed(delta: &mut Delta<'_>, mut task: Task, k: u32) -> Result<(), Reject> {
    let outcome = vote(&task, k);
    if !outcome.no_quorum && outcome.minority.is_empty() {
        return decide(delta, task, k);
    }
    start_round(delta, &mut task, Round::Referee, market::COMMITTEE_SIZE);
    delta.set_task(task);
    Ok(())
}

/// Replica quorum or referee vote: the majority is upheld, the minority slashed, the result is
/// the first majority lease's (the worker's if it won); no majority fails the task.
fn decide(delta: &mut Delta<'_>, mut task: Task, replicas: u32) -> Result<(), Reject> {
    let outcome = vote(&task, replicas);
    let majority = indices_of(&task, &outcome.majority);
    let minority = indices_of(&task, &outcome.minority);
    // Outside the majority but not proven wrong (a non-deterministic task's difference that may
    // be honest): overruled, unpaid, a failure on record, not slashed (`compare::slashable`).
    let slashed: Vec<usize> = {
        let ballots = ballots(&task);
        minority
            .iter()
            .copied()
            .filter(|i| {
                revealed(&task.leases[*i])
                    .is_some_and(|b| compare::slashable(&task.terms, replicas, &b, &ballots))
            })
            .collect()
    };
    delta.emit(Event::VoteDecided {
        task: task.id,
        round: task.round,
        output_hash: outcome.majority_hash.map(Hash32),
        majority: majority.iter().map(|i| task.leases[*i].node).collect(),
        minority: minority.iter().map(|i| task.leases[*i].node).collect(),
    });
    if outcome.no_quorum {
        return finish(delta, task, TaskState::Failed, Some(FailureReason::NoQuorum));
    }
    let honest = owners(delta, &task, &majority)?;
    for index in &majority {
        task.leases[*index].verdict = Verdict::Upheld;
        penalty::passed(delta, task.leases[*index].node)?;
    }
    let replicated = matches!(task.terms.verification, Verification::Replicas(_));
    let offence = if task.round == Round::Referee && !replicated {
        Offence::AuditFailed
    } else {
        Offence::Minority
    };
    for index in &minority {
        task.leases[*index].verdict = Verdict::Overruled;
        if slashed.contains(index) {
            penalty::penalize(delta, &mut task, *index, &honest, offence)?;
        } else {
            penalty::outvoted(delta, task.leases[*index].node)?;
        }
    }
    let result = majority.first().copied().ok_or(Reject::InvalidTaskState)?;
    enter_verifying(delta, task, result)
}

pub(crate) fn indices_of(task: &Task, voters: &[[u8; 32]]) -> Vec<usize> {
    (0..task.leases.len())
        .filter(|i| {
            let lease = &task.leases[*i];
            lease.verdict == Verdict::Pending && voters.contains(&voter(lease.node))
        })
        .collect()
}

pub(crate) fn owners(
    delta: &Delta<'_>,
    task: &Task,
    indices: &[usize],
) -> Result<Vec<AccountId>, Reject> {
    indices.iter().map(|i| delta.node(task.leases[*i].node).map(|n| n.owner)).collect()
}

/// Takes a lease out of its task (it expired or failed) and frees its seat: a worker's task goes
/// back to the queue, any other role's seat is placed again. Attempts are bounded.
pub(crate) fn drop_lease(
    delta: &mut Delta<'_>,
    mut task: Task,
    index: usize,
    reason: FailureReason,
) -> Result<(), Reject> {
    let lease = task.leases.remove(index);
    if lease.is_running() {
        leave_node(delta, lease.node)?;
    }
    if !task.excluded.contains(&lease.node) {
        task.excluded.push(lease.node);
    }
    delta.emit(Event::TaskRequeued { task: task.id, node: lease.node, reason });
    let attempts_max = delta.base.params.attempts_max;
    let extra = u32::from(market::seats_for_work(task.terms.verification)) - 1;
    let exhausted = task.attempts >= attempts_max.saturating_add(extra);
    let now = delta.env.time_ms;
    match lease.role {
        // A cancelled task places no new work: it ends instead (cancelled, `market::finish`).
        Role::Worker | Role::Replica if exhausted || task.cancel_requested() => {
            return finish(delta, task, TaskState::Failed, Some(FailureReason::AttemptsExhausted));
        }
        Role::Worker => {
            task.state = TaskState::Queued;
            task.round = Round::Work;
            task.seats = 1;
            task.seats_since_ms = now;
            task.reveal_open_ms = None;
        }
        _ => {
            if task.seats == 0 {
                task.seats_since_ms = now;
            }
            task.seats += 1;
        }
    }
    delta.set_task(task);
    Ok(())
}

/// Handles everything due in a task's round, one thing at a time.
pub fn expire(delta: &mut Delta<'_>, id: TaskId) -> Result<(), Reject> {
    for _ in 0..EXPIRIES_PER_TASK_MAX {
        let task = delta.task(id)?;
        let now = delta.env.time_ms;
        if task.state.is_terminal() || delta.base.lease_deadline(&task).is_none_or(|d| d > now) {
            return Ok(());
        }
        expire_first(delta, task)?;
    }
    Ok(())
}

fn expire_first(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    let params = &delta.base.params;
    let now = delta.env.time_ms;
    if task.state == TaskState::Queued {
        // Nobody took it since it was queued: no eligible node. Fails with a full refund.
        if task.seats_since_ms.saturating_add(params.queue_timeout_ms) <= now {
            let reason = Some(FailureReason::NoEligibleProvider);
            return finish(delta, task, TaskState::Failed, reason);
        }
        delta.set_task(task);
        return Ok(());
    }
    // The requester did not grant the content key in time: its fault, not the node's. The node
    // is paid its time waiting, released without blame, and the seat refilled as on a requeue.
    let ungranted = |l: &Lease| {
        market::awaits_grant(&task, l) && l.started_ms.saturating_add(params.grant_wait_ms) <= now
    };
    if let Some(index) = task.leases.iter().position(ungranted) {
        let lease = &task.leases[index];
        let (node, waited) =
            (lease.node, market::cost(&task, lease, now).saturating_sub(lease.released));
        crate::money::pay(delta, &mut task, node, waited)?;
        return drop_lease(delta, task, index, FailureReason::KeysNotGranted);
    }
    let limit_ms = task.terms.time_limit_secs.saturating_mul(1000);
    let overdue = |l: &Lease| {
        l.is_running()
            && (l.last_heartbeat_ms.saturating_add(params.lease_ms) <= now
                || l.started_ms.saturating_add(limit_ms).saturating_add(params.time_limit_grace_ms)
                    <= now)
    };
    if let Some(index) = task.leases.iter().position(overdue) {
        penalty::fault(delta, task.leases[index].node, Fault::Expired)?;
        return drop_lease(delta, task, index, FailureReason::LeaseExpired);
    }
    let window = params.verification.reveal_window_ms;
    if task.reveal_open_ms.is_some_and(|open| open.saturating_add(window) <= now) {
        let silent: Vec<usize> = (0..task.leases.len())
            .filter(|i| {
                let l = &task.leases[*i];
                l.verdict == Verdict::Pending && l.commitment.is_some() && l.reveal.is_none()
            })
            .collect();
        // A judge that did not reveal is replaced. On a split of the tags nothing it judges was
        // revealed yet (`Task::awaits_judges`), so its successor still judges blind.
        let judges: Vec<usize> = silent
            .iter()
            .copied()
            .filter(|i| task.round == Round::Referee && task.leases[*i].role == Role::Referee)
            .collect();
        if !judges.is_empty() {
            for index in &judges {
                crate::withheld::withhold(delta, &mut task, *index)?;
            }
            task.seats += u8::try_from(judges.len()).unwrap_or(u8::MAX);
            task.seats_since_ms = now;
            task.reveal_open_ms = None;
            delta.set_task(task);
            return Ok(());
        }
        let alone = task.leases.iter().filter(|l| l.verdict == Verdict::Pending).count() == 1;
        if let (true, Some(&index)) = (alone && task.round == Round::Work, silent.first()) {
            penalty::fault(delta, task.leases[index].node, Fault::Expired)?;
            return drop_lease(delta, task, index, FailureReason::LeaseExpired);
        }
        // A missing reveal is not yet proof of a wrong result (an honest node may be offline
        // longer than the window), but it must not let a cheater that sees its audit coming keep
        // its commitment closed for free: the lease is withheld until its late reveal window
        // ends (`ledger::withheld`), and the round is judged on the reveals that came. Its seat
        // is not refilled: the round's hashes are public now, so a newcomer could copy them.
        for index in silent {
            crate::withheld::withhold(delta, &mut task, index)?;
        }
        return close_round_if_ready(delta, task);
    }
    if task.seats > 0 && task.seats_since_ms.saturating_add(params.verification.seat_wait_ms) <= now
    {
        if task.round == Round::Dispute {
            return crate::dispute::inconclusive(delta, task);
        }
        return finish(
            delta,
            task,
            TaskState::Failed,
            Some(FailureReason::VerificationUnavailable),
        );
    }
    delta.set_task(task);
    Ok(())
}
