//! The provider's leases: execute (or fake), heartbeat, commit, reveal.

use super::{
    sent_recently, Behaviour, Provider, Sealed, Skipped, GPU_SLOWDOWN, RESEND_MS, TASK_HEARTBEAT_MS,
};
use crate::party::{Ctx, Message};
use crate::work;
use aicpw_ledger::state::{Lease, Role, Task, Verdict};
use aicpw_types::{FailureReason, Hash32, NodeId, TaskId, TxBody};
use aicpw_verify::replication::{commitment, equality_tag};

/// How long a lazy auditor waits for its partner's hash before it guesses.
pub const SHARED_WAIT_MS: u64 = 20_000;

/// What a lease's holder does with it.
#[derive(Clone, Debug)]
pub(super) enum Plan {
    /// Runs the task (or pretends to) and commits to `output`.
    Commit { output: Hash32 },
    /// Waits for another lease's commitment and copies it.
    CopyCommitment,
    /// Waits for a partner's hash until `until_ms`, then commits to it or to a guess.
    AwaitShared { until_ms: u64 },
    /// Commits to a hash the round it judges revealed (the majority one, if any), or, with
    /// nothing revealed, to a guess under the tag most seen.
    CopyRevealed,
    /// Sealed before a crash, not yet on chain: sends the journal's commitment again.
    Journaled(Sealed),
    /// The task exits with an error: reports the task's fault instead of a result.
    ReportFault,
}

#[derive(Clone, Debug)]
pub(super) struct Job {
    started_ms: u64,
    done_ms: u64,
    plan: Plan,
    heartbeat_ms: u64,
    /// Sealed once, when the work is done; every resend commits to the same.
    sealed: Option<Sealed>,
    commit_sent_ms: Option<u64>,
}

/// Where a simulated node's result of a task is stored.
fn result_cid(task: TaskId, node: NodeId) -> String {
    format!("sim-result-{}-{}", task.0, node.0)
}

/// The commitment to `output` (with its summary, for a non-deterministic task), and its tag.
fn sealed(task: &Task, node: NodeId, provider: &[u8; 32], output: Hash32, salt: Hash32) -> Sealed {
    let cid = result_cid(task.id, node);
    let summary = work::summary(&task.terms, &output);
    let commitment = Hash32(commitment(task.id.0, provider, &output.0, &summary, &cid, &salt.0));
    let tag = Hash32(equality_tag(task.id.0, &output.0, &summary));
    Sealed { commitment, tag, output, salt }
}

impl Provider {
    /// Looks after every lease of these nodes still in play.
    pub(super) fn work(&mut self, ctx: &mut Ctx<'_>, nodes: &[NodeId]) {
        let leased: Vec<(NodeId, TaskId)> = nodes
            .iter()
            .flat_map(|node| {
                let range = (*node, TaskId(0))..=(*node, TaskId(u64::MAX));
                ctx.state.index.node_leases.range(range).copied()
            })
            .collect();
        self.jobs.retain(|id, _| leased.iter().any(|(_, task)| task == id));
        for (node, id) in leased {
            let Some(task) = ctx.state.tasks.get(&id) else { continue };
            let Some(index) = task.pending_lease(node) else { continue };
            let lease = &task.leases[index];
            if lease.is_running() {
                if !self.jobs.contains_key(&id) {
                    let job = self.start(ctx, task, lease);
                    self.jobs.insert(id, job);
                }
                self.advance(ctx, node, task);
            } else if lease.reveal.is_none()
                && task.reveal_open_ms.is_some()
                && !task.awaits_judges(lease)
            {
                self.reveal(ctx, node, task);
            }
        }
        self.reveal_late(ctx, nodes);
    }

    /// Opens, from the journal, every commitment the ledger holds withheld (the reveal window
    /// passed while this provider was down or cut off) while its late reveal window is open: an
    /// honest provider's late reveal clears it of the `reveal-withheld` slash.
    fn reveal_late(&mut self, ctx: &mut Ctx<'_>, nodes: &[NodeId]) {
        let withheld: Vec<(NodeId, TaskId)> = nodes
            .iter()
            .flat_map(|node| {
                let range = (*node, TaskId(0))..=(*node, TaskId(u64::MAX));
                ctx.state.index.node_withheld.range(range).copied()
            })
            .collect();
        for (node, id) in withheld {
            // A copier has nothing that opens its copied commitment: nothing to send.
            let copied = self.journal.get(&id).is_none_or(|s| s.output == Hash32::default());
            if let (false, Some(task)) = (copied, ctx.state.tasks.get(&id)) {
                self.reveal(ctx, node, task);
            }
        }
    }

    /// A withholding lazy worker keeps a forged result closed once its task is audited.
    fn withholds(&self, task: &Task, sealed: &Sealed) -> bool {
        let Behaviour::Lazy { withholds: true, .. } = self.spec.behaviour else { return false };
        let audited = task.leases.iter().any(|l| l.role == Role::Auditor);
        audited && !work::is_right(&task.terms, &sealed.output)
    }

    /// Decides, by behaviour and role, what to do with a new lease.
    fn start(&mut self, ctx: &mut Ctx<'_>, task: &Task, lease: &Lease) -> Job {
        if let Some(sealed) = self.journal.get(&task.id) {
            let plan = Plan::Journaled(sealed.clone());
            return Job {
                started_ms: ctx.now,
                done_ms: ctx.now,
                plan,
                heartbeat_ms: ctx.now,
                sealed: None,
                commit_sent_ms: None,
            };
        }
        let terms = &task.terms;
        let mut run_ms =
            work::slowed(work::run_ms(terms, self.spec.speed_permille), self.disk_permille);
        if self.lacks_gpu(&terms.resources.gpu_model) {
            run_ms *= u64::from(GPU_SLOWDOWN);
        }
        // A party's machine is of output class `party % OUTPUT_CLASSES`.
        let truth = work::honest_output(terms, ctx.me as u64);
        let forged_hold_ms = match lease.role {
            Role::Worker if !work::exits_with_error(terms) => {
                self.forge_hold_ms(ctx, task, lease, run_ms)
            }
            _ => None,
        };
        let (plan, cost_ms) = match (&self.spec.behaviour, lease.role) {
            (_, _) if forged_hold_ms.is_some() => {
                let output = work::forged_output(terms, ctx.me as u64);
                (Plan::Commit { output }, forged_hold_ms.unwrap_or_default())
            }
            (Behaviour::Lazy { skip_ppm, stalls, .. }, Role::Worker)
                if ctx.rng.chance(*skip_ppm) =>
            {
                let held_ms = if *stalls { run_ms } else { run_ms / 10 };
                (Plan::Commit { output: work::forged_output(terms, ctx.me as u64) }, held_ms)
            }
            (Behaviour::CopyingReplica, Role::Replica) => (Plan::CopyCommitment, run_ms / 10),
            (Behaviour::LazyAuditor, Role::Auditor) => {
                (Plan::AwaitShared { until_ms: ctx.now + SHARED_WAIT_MS }, 0)
            }
            (Behaviour::Colluding { cartel, always }, Role::Replica)
                if *always || self.partner_on(ctx, task) =>
            {
                (Plan::Commit { output: work::forged_output(terms, *cartel) }, run_ms / 10)
            }
            (Behaviour::Unanimous { cartel }, Role::Replica) if self.holds_all_seats(ctx, task) => {
                (Plan::Commit { output: work::forged_output(terms, *cartel) }, run_ms / 10)
            }
            (Behaviour::CopyingJudge, Role::Referee) => (Plan::CopyRevealed, run_ms / 10),
            (Behaviour::GuessingJudge, Role::Referee) => {
                (Plan::Commit { output: work::forged_output(terms, ctx.me as u64) }, run_ms / 10)
            }
            (Behaviour::ForgesForPartner { skip_ppm, requester }, Role::Worker)
                if task.requester == crate::setup::account(*requester)
                    && ctx.rng.chance(*skip_ppm) =>
            {
                ctx.tell(*requester, Message::Forged { task: task.id });
                (Plan::Commit { output: work::forged_output(terms, ctx.me as u64) }, run_ms)
            }
            _ if work::exits_with_error(terms) => (Plan::ReportFault, run_ms / 2),
            _ => (Plan::Commit { output: truth }, run_ms),
        };
        Job {
            started_ms: ctx.now,
            done_ms: ctx.now + cost_ms,
            plan,
            heartbeat_ms: ctx.now,
            sealed: None,
            commit_sent_ms: None,
        }
    }

    /// Whether another cartel member (another owner with the same behaviour) holds a lease of
    /// the task: cartel members recognise each other's nodes.
    fn partner_on(&self, ctx: &Ctx<'_>, task: &Task) -> bool {
        task.leases.iter().any(|l| {
            let owner = ctx.state.nodes.get(&l.node).map(|n| n.owner);
            owner.is_some_and(|o| o != self.wallet.account && self.partners.contains(&o))
        })
    }

    /// Whether every other lease of the task is held by the cartel (the replica round is
    /// unanimous whatever the cartel commits).
    fn holds_all_seats(&self, ctx: &Ctx<'_>, task: &Task) -> bool {
        let me = self.wallet.account;
        task.leases.iter().all(|l| {
            let owner = ctx.state.nodes.get(&l.node).map(|n| n.owner);
            owner.is_some_and(|o| o == me || self.partners.contains(&o))
        })
    }

    fn advance(&mut self, ctx: &mut Ctx<'_>, node: NodeId, task: &Task) {
        let id = task.id;
        let Some(job) = self.jobs.get_mut(&id) else { return };
        let beat = ctx.now >= job.heartbeat_ms + TASK_HEARTBEAT_MS;
        if ctx.now < job.done_ms {
            if beat {
                let total = (job.done_ms - job.started_ms).max(1);
                let progress = ((ctx.now - job.started_ms) * 1000 / total).min(999) as u16;
                ctx.send(TxBody::TaskHeartbeat { task: id, node, progress_permille: progress });
                job.heartbeat_ms = ctx.now;
            }
            return;
        }
        if let Plan::ReportFault = job.plan {
            if !sent_recently(job.commit_sent_ms, ctx.now, RESEND_MS) {
                let reason = FailureReason::TaskExitedWithError;
                ctx.send(TxBody::ReportFailure { task: id, node, reason });
                job.commit_sent_ms = Some(ctx.now);
            }
            return;
        }
        if job.sealed.is_none() {
            job.sealed = seal(ctx, &job.plan, task, node, &self.shared, self.wallet.account.0);
            if let Some(sealed) = &job.sealed {
                // Written to the journal before the commitment leaves: a crash cannot lose it.
                self.journal.insert(id, sealed.clone());
                let right = work::is_right(&task.terms, &sealed.output);
                if let Some(skipped) = skipped(&job.plan, right) {
                    self.skipped.insert(id, skipped);
                }
                if let Behaviour::SharesOutputs { partner } = self.spec.behaviour {
                    ctx.tell(partner, Message::Output { task: id, output_hash: sealed.output });
                }
            }
        }
        let Some(sealed) = job.sealed.clone() else {
            // Still waiting for something to copy: keep the lease alive.
            if beat {
                ctx.send(TxBody::TaskHeartbeat { task: id, node, progress_permille: 999 });
                job.heartbeat_ms = ctx.now;
            }
            return;
        };
        if !sent_recently(job.commit_sent_ms, ctx.now, RESEND_MS) {
            let (commitment, tag) = (sealed.commitment, sealed.tag);
            ctx.send(TxBody::CommitResult { task: id, node, commitment, tag });
            job.commit_sent_ms = Some(ctx.now);
        }
    }

    /// Opens the commitment from the journal. A copier opens with the copied lease's revealed
    /// hash, which cannot match a commitment bound to another provider's key.
    fn reveal(&mut self, ctx: &mut Ctx<'_>, node: NodeId, task: &Task) {
        let id = task.id;
        if sent_recently(self.reveal_sent_ms.get(&id).copied(), ctx.now, RESEND_MS) {
            return;
        }
        let Some(sealed) = self.journal.get(&id) else { return };
        if self.withholds(task, sealed) {
            return;
        }
        let mut output = sealed.output;
        if output == Hash32::default() {
            let copied = task.leases.iter().filter(|l| l.node != node).find_map(|l| {
                (l.commitment == Some(sealed.commitment)).then_some(l.reveal.as_ref()).flatten()
            });
            let Some(copied) = copied else { return };
            output = copied.output_hash;
        }
        let summary = work::summary(&task.terms, &output);
        if Hash32(equality_tag(id.0, &output.0, &summary)) != sealed.tag {
            // A copied tag over a guess: nothing it has opens it.
            return;
        }
        ctx.send(TxBody::RevealResult {
            task: id,
            node,
            output_hash: output,
            salt: sealed.salt,
            result_cid: result_cid(id, node),
            summary,
        });
        self.reveal_sent_ms.insert(id, ctx.now);
    }
}

/// What a sealed result skipped, if the plan did not run the task.
fn skipped(plan: &Plan, right: bool) -> Option<Skipped> {
    match plan {
        Plan::CopyCommitment => Some(Skipped::CopiedCommitment),
        Plan::Commit { .. } | Plan::AwaitShared { .. } | Plan::CopyRevealed if !right => {
            Some(Skipped::Forged)
        }
        Plan::AwaitShared { .. } | Plan::CopyRevealed => Some(Skipped::CopiedOutput),
        Plan::Commit { .. } | Plan::Journaled(_) | Plan::ReportFault => None,
    }
}

/// What the holder commits to, once it can: `None` while it still waits for something to copy.
fn seal(
    ctx: &mut Ctx<'_>,
    plan: &Plan,
    task: &Task,
    node: NodeId,
    shared: &std::collections::BTreeMap<TaskId, Hash32>,
    me: [u8; 32],
) -> Option<Sealed> {
    let salt = ctx.rng.hash();
    match plan {
        Plan::Commit { output } => Some(sealed(task, node, &me, *output, salt)),
        Plan::CopyCommitment => copy_commitment(task, node),
        Plan::Journaled(sealed) => Some(sealed.clone()),
        Plan::ReportFault => None,
        Plan::CopyRevealed => {
            let others =
                || task.leases.iter().filter(|l| l.node != node && l.verdict == Verdict::Pending);
            let revealed = others().filter_map(|l| l.reveal.as_ref().map(|r| r.output_hash));
            if let Some(output) = most_seen(ctx, revealed) {
                return Some(sealed(task, node, &me, output, salt));
            }
            let tag = most_seen(ctx, others().filter(|l| l.commitment.is_some()).map(|l| l.tag))?;
            let guess = work::forged_output(&task.terms, ctx.me as u64);
            Some(Sealed { tag, ..sealed(task, node, &me, guess, salt) })
        }
        Plan::AwaitShared { until_ms } => match shared.get(&task.id) {
            Some(output) => Some(sealed(task, node, &me, *output, salt)),
            None if ctx.now >= *until_ms => {
                let guess = work::forged_output(&task.terms, ctx.me as u64);
                Some(sealed(task, node, &me, guess, salt))
            }
            None => None,
        },
    }
}

/// A copier's commitment: another lease's, verbatim (its output unknown: zero in the journal).
fn copy_commitment(task: &Task, node: NodeId) -> Option<Sealed> {
    let other = task.leases.iter().find(|l| l.node != node && l.commitment.is_some())?;
    Some(Sealed {
        commitment: other.commitment?,
        tag: other.tag,
        output: Hash32::default(),
        salt: Hash32::default(),
    })
}

/// A copying judge's pick among what the leases it judges show (revealed hashes, or tags): the
/// most frequent, a random one of the most frequent on a tie.
fn most_seen(ctx: &mut Ctx<'_>, seen: impl Iterator<Item = Hash32>) -> Option<Hash32> {
    let mut counts: std::collections::BTreeMap<Hash32, u32> = std::collections::BTreeMap::new();
    for hash in seen {
        *counts.entry(hash).or_default() += 1;
    }
    let most = counts.values().copied().max()?;
    let tied: Vec<Hash32> =
        counts.into_iter().filter(|(_, c)| *c == most).map(|(h, _)| h).collect();
    tied.get(ctx.rng.below(tied.len() as u64) as usize).copied()
}
