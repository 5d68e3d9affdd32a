//! A simulated requester: submits its planned tasks on time (again if a submission was lost),
//! slips known-answer tasks into its traffic, accepts verified results (or reveals the known
//! answer), cancels a task that waited in the queue too long (or, by plan, one it changed its
//! mind about: a cancel of a task whose revealed results are being judged waits for the
//! verdict); a dishonest one disputes honest work.

use crate::party::{sent_recently, Ctx, Message, Wallet};
use crate::work;
use aicpw_ledger::dispute::answer_commitment;
use aicpw_ledger::market::dispute_bond_min;
use aicpw_ledger::state::{Round, Task};
use aicpw_types::{Hash32, TaskId, TaskState, TaskTerms, TxBody};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How often a requester looks at the chain.
pub const POLL_MS: u64 = 1_000;
/// A transaction whose effect is not on chain by then is sent again.
pub const RESEND_MS: u64 = 8_000;
/// A task queued this long without a provider is cancelled.
pub const QUEUE_PATIENCE_MS: u64 = 120_000;
/// Time a requester takes to look at a result before accepting it.
pub const REVIEW_MS: u64 = 2_000;

/// Where a requester departs from the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequesterBehaviour {
    Honest,
    /// Disputes every verified result, right or wrong, hoping to get its money back.
    DisputesEverything,
    /// Commits to a wrong known answer on its tasks and reveals it, claiming a mismatch to get
    /// the honest provider slashed.
    LiesAboutAnswers,
    /// Colludes with a forging worker: cancels each task the worker says it forged as soon as it
    /// sees the task audited, before worker and auditor reveal.
    CancelsForPartner,
}

/// One task the requester will submit.
#[derive(Clone, Debug)]
pub struct Planned {
    pub at_ms: u64,
    pub terms: TaskTerms,
    /// For a known-answer task: the salt of the answer commitment (the answer is the task's
    /// true output, which this requester knows).
    pub known_answer_salt: Option<Hash32>,
    /// The commitment's bytes for a normal task: random, indistinguishable from a real one.
    pub filler: Hash32,
    /// The requester changes its mind this long after submitting and cancels the task.
    pub cancel_after_ms: Option<u64>,
}

#[derive(Default)]
struct Tracked {
    plan: usize,
    queued_since_ms: Option<u64>,
    verifying_since_ms: Option<u64>,
    action_sent_ms: Option<u64>,
}

pub struct Requester {
    pub wallet: Wallet,
    pub behaviour: RequesterBehaviour,
    plan: Vec<Planned>,
    submit_sent_ms: Vec<Option<u64>>,
    /// The nonce each submission was last sent with: sent again only once that one settled.
    submit_nonce: Vec<Option<u64>>,
    on_chain: BTreeMap<String, TaskId>,
    open: BTreeMap<TaskId, Tracked>,
    names: BTreeMap<String, usize>,
    cursor: u64,
    /// Planned tasks after this time are not submitted (the run has what it came for).
    stop_after_ms: u64,
    /// Tasks its colluding worker says it forged.
    forged: BTreeSet<TaskId>,
}

impl Requester {
    pub fn new(wallet: Wallet, plan: Vec<Planned>, behaviour: RequesterBehaviour) -> Requester {
        let submit_sent_ms = vec![None; plan.len()];
        let submit_nonce = vec![None; plan.len()];
        let names = plan.iter().enumerate().map(|(i, p)| (p.terms.name.clone(), i)).collect();
        Requester {
            wallet,
            behaviour,
            plan,
            submit_sent_ms,
            submit_nonce,
            on_chain: BTreeMap::new(),
            open: BTreeMap::new(),
            names,
            cursor: 0,
            stop_after_ms: u64::MAX,
            forged: BTreeSet::new(),
        }
    }

    /// Every planned task (every one sent, once stopped) is on chain and ended.
    pub fn is_done(&self) -> bool {
        let wanted =
            |i: usize| self.plan[i].at_ms <= self.stop_after_ms || self.submit_sent_ms[i].is_some();
        let all_on_chain = self
            .plan
            .iter()
            .enumerate()
            .all(|(i, p)| !wanted(i) || self.on_chain.contains_key(&p.terms.name));
        all_on_chain && self.open.is_empty()
    }

    /// Submits no task planned after `after_ms` that it has not sent yet.
    pub fn stop_submitting(&mut self, after_ms: u64) {
        self.stop_after_ms = self.stop_after_ms.min(after_ms);
    }

    pub fn on_message(&mut self, message: Message) {
        if let Message::Forged { task } = message {
            self.forged.insert(task);
        }
    }

    pub fn wake(&mut self, ctx: &mut Ctx<'_>) -> u64 {
        self.wallet.sync(ctx.state, ctx.now);
        self.discover(ctx);
        self.submit_due(ctx);
        self.follow(ctx);
        ctx.now + POLL_MS
    }

    /// Finds this requester's tasks among those submitted since the last look.
    fn discover(&mut self, ctx: &Ctx<'_>) {
        for (id, task) in ctx.state.tasks.range(TaskId(self.cursor)..) {
            self.cursor = id.0 + 1;
            let Some(&plan) = self.names.get(&task.terms.name) else { continue };
            if task.requester != self.wallet.account {
                continue;
            }
            // A submission sent twice (the first one only delayed) lands twice: both are this
            // requester's to follow to the end, or the second would sit in the queue forever.
            self.on_chain.entry(task.terms.name.clone()).or_insert(*id);
            self.open.insert(*id, Tracked { plan, ..Tracked::default() });
        }
    }

    fn submit_due(&mut self, ctx: &mut Ctx<'_>) {
        let me = self.wallet.account;
        for (i, planned) in self.plan.iter().enumerate() {
            let wanted = planned.at_ms <= self.stop_after_ms || self.submit_sent_ms[i].is_some();
            let due = wanted
                && planned.at_ms <= ctx.now
                && !self.on_chain.contains_key(&planned.terms.name);
            let settled = self.submit_nonce[i].is_none_or(|nonce| self.wallet.settled(nonce));
            if due && settled {
                let answer = match planned.known_answer_salt {
                    Some(salt) => {
                        answer_commitment(&me, &claimed_answer(self.behaviour, planned), &salt)
                    }
                    None => planned.filler,
                };
                self.submit_nonce[i] = Some(self.wallet.nonce_of(ctx.txs.len()));
                ctx.send(TxBody::SubmitTask {
                    terms: planned.terms.clone(),
                    answer_commitment: answer,
                });
                self.submit_sent_ms[i] = Some(ctx.now);
            }
        }
    }

    fn follow(&mut self, ctx: &mut Ctx<'_>) {
        let ids: Vec<TaskId> = self.open.keys().copied().collect();
        for id in ids {
            let Some(task) = ctx.state.tasks.get(&id) else { continue };
            let Some(tracked) = self.open.get_mut(&id) else { continue };
            let planned = &self.plan[tracked.plan];
            if task.state.is_terminal() {
                if task.state == TaskState::Completed && task.rating == 0 {
                    // Rates what it got: full marks for the right result, one star otherwise.
                    let result = task.result.as_ref();
                    let right =
                        result.is_some_and(|r| work::is_right(&planned.terms, &r.output_hash));
                    ctx.send(TxBody::RateTask { task: id, stars: if right { 5 } else { 1 } });
                }
                self.open.remove(&id);
                continue;
            }
            let forged = self.forged.contains(&id);
            if let Some(body) = next_step(ctx.now, self.behaviour, planned, task, tracked, forged) {
                ctx.send(body);
                tracked.action_sent_ms = Some(ctx.now);
            }
        }
    }
}

/// What a requester does about one of its open tasks now, if anything.
fn next_step(
    now: u64,
    behaviour: RequesterBehaviour,
    planned: &Planned,
    task: &Task,
    tracked: &mut Tracked,
    forged: bool,
) -> Option<TxBody> {
    let queued = task.state == TaskState::Queued;
    let verified = task.state == TaskState::Verifying && task.dispute.is_none();
    tracked.queued_since_ms = queued.then(|| tracked.queued_since_ms.unwrap_or(now));
    tracked.verifying_since_ms = verified.then(|| tracked.verifying_since_ms.unwrap_or(now));
    if sent_recently(tracked.action_sent_ms, now, RESEND_MS) {
        return None;
    }
    let id = task.id;
    let impatient = tracked.queued_since_ms.is_some_and(|since| now >= since + QUEUE_PATIENCE_MS);
    let changed_mind =
        planned.cancel_after_ms.is_some_and(|after| now >= task.submitted_ms + after);
    // A cancel the ledger deferred to the verdict on revealed results is not sent again.
    let cancellable = matches!(task.state, TaskState::Queued | TaskState::Running);
    // A colluding requester cancels its partner's forgery once it sees it audited.
    let covers =
        behaviour == RequesterBehaviour::CancelsForPartner && forged && task.round == Round::Audit;
    if (impatient || changed_mind || covers) && cancellable && !task.cancel_requested() {
        return Some(TxBody::CancelTask { task: id });
    }
    if tracked.verifying_since_ms.is_none_or(|since| now < since + REVIEW_MS) {
        return None;
    }
    Some(match (behaviour, planned.known_answer_salt) {
        (_, Some(salt)) => {
            TxBody::RevealAnswer { task: id, answer_hash: claimed_answer(behaviour, planned), salt }
        }
        (RequesterBehaviour::DisputesEverything, None) => {
            TxBody::DisputeResult { task: id, bond: dispute_bond_min(&task.terms) }
        }
        (_, None) => TxBody::AcceptResult { task: id },
    })
}

/// The answer a known-answer task's requester commits to and reveals: the task's true output,
/// or for a liar a wrong one.
fn claimed_answer(behaviour: RequesterBehaviour, planned: &Planned) -> Hash32 {
    match behaviour {
        RequesterBehaviour::LiesAboutAnswers => work::forged_output(&planned.terms, u64::MAX),
        _ => work::true_output(&planned.terms),
    }
}
