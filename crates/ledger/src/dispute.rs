//! Disputes and known-answer tasks: what a requester can do about a result during its
//! acceptance window (the dispute window).
//!
//! **Dispute.** `DisputeResult { task, bond }` locks a bond of at least the committee's cost (two
//! runs at the task's maximum price) and places a committee of two random nodes, excluding every
//! node (and every owner) that already worked on the task. Each member commits and reveals like
//! any lease. The vote is a strict majority of three: the result under dispute and the two
//! members' hashes.
//! - The result wins (a member agreed): the dispute is rejected. The bond pays the agreeing
//!   members' time, the rest of it goes to the provider of the result; a member that disagreed is
//!   slashed; the task completes.
//! - Both members agree on another hash: the dispute is upheld. Every node that produced the
//!   disputed result (worker, and an auditor or replicas that confirmed it) is slashed, its
//!   challenger share going to the members whose re-run proved it wrong; the bond pays the members
//!   and the rest returns to the requester; the task fails with `result-rejected` and a full
//!   refund of the escrow.
//! - No majority: inconclusive. The bond pays the members who revealed, the rest returns; the
//!   result stands and the task completes.
//!
//! The requester never gets a challenger share: its claim is what the committee checks, not
//! evidence, and paying it for its own claim would pay it for steering the committee.
//!
//! Every task the ledger runs (sandbox or container) can be re-executed, so disputes never need a
//! staked vote on the result itself; the stakers' vote is kept for appeals of frozen nodes
//! (`arbitration`), where nothing can be recomputed.
//!
//! **Known answers.** Every `SubmitTask` carries an `answer_commitment`; for a normal task it is
//! random bytes. A submitter that knows the answer commits `answer_commitment(submitter,
//! answer_hash, salt)` and, once the result is verified, sends `RevealAnswer`. A result equal to
//! the answer completes the task (a passed audit for its producers). A result that differs proves
//! nothing by itself (the requester could reveal any hash after downloading an honest result):
//! the reveal opens a dispute with the minimum bond, taken from the requester, and the claimed
//! answer recorded. The committee re-runs the task; its producers are slashed
//! (`known-answer-wrong`) only if both members agree with the claimed answer. The result winning
//! the vote rejects the claim (the bond goes to the committee and the provider, as for any lost
//! dispute); anything else is inconclusive and the result stands. Which tasks carry known answers
//! (1–2% of a submitter's traffic, `verify::KnownAnswerPolicy`) is the submitter's policy;
//! providers cannot tell them apart.

use crate::compare::{self, Ballot};
use crate::delta::Delta;
use crate::event::Event;
use crate::market::{self, complete, finish, COMMITTEE_SIZE};
use crate::money::{self, Offence};
use crate::penalty;
use crate::state::{Dispute, DisputeOutcome, ResultCommit, Role, Round, Task, Verdict};
use crate::verdict::{owners, start_round, voter};
use aicpw_types::task::FailureReason;
use aicpw_types::{AccountId, Amount, Hash32, Reject, TaskId, TaskState};

/// Derive-key context of known-answer commitments.
pub const ANSWER_CONTEXT: &str = "AICPW 2026-01 ledger known-answer commitment v1";

/// `BLAKE3-derive-key(ANSWER_CONTEXT, submitter || answer_hash || salt)`.
pub fn answer_commitment(submitter: &AccountId, answer_hash: &Hash32, salt: &Hash32) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(ANSWER_CONTEXT);
    hasher.update(&submitter.0);
    hasher.update(&answer_hash.0);
    hasher.update(&salt.0);
    Hash32(*hasher.finalize().as_bytes())
}

/// The task, checked to be verified, undisputed and the signer's.
fn verified_task(delta: &Delta<'_>, who: &AccountId, id: TaskId) -> Result<Task, Reject> {
    let task = market::requested_task(delta, who, id)?;
    if task.state != TaskState::Verifying {
        return Err(Reject::DisputeWindowClosed);
    }
    if task.dispute.is_some() {
        return Err(Reject::DisputeOpen);
    }
    Ok(task)
}

pub fn open(delta: &mut Delta<'_>, who: AccountId, id: TaskId, bond: Amount) -> Result<(), Reject> {
    let task = verified_task(delta, &who, id)?;
    open_committee(delta, task, bond, None)
}

/// Takes the bond from the requester and places the committee that re-runs the task.
fn open_committee(
    delta: &mut Delta<'_>,
    mut task: Task,
    bond: Amount,
    claimed_answer: Option<Hash32>,
) -> Result<(), Reject> {
    if bond < market::dispute_bond_min(&task.terms) {
        return Err(Reject::BondTooLow);
    }
    money::debit(delta, task.requester, bond)?;
    task.dispute = Some(Dispute {
        bond,
        opened_ms: delta.env.time_ms,
        outcome: DisputeOutcome::Open,
        released: Amount::ZERO,
        claimed_answer,
    });
    delta.emit(Event::DisputeOpened { task: task.id, bond });
    start_round(delta, &mut task, Round::Dispute, COMMITTEE_SIZE);
    delta.set_task(task);
    Ok(())
}

/// The offence of a result a dispute proved wrong: `known-answer-wrong` when the committee
/// confirmed a known answer, `dispute-lost` otherwise.
pub(crate) fn offence(task: &Task) -> Offence {
    match task.dispute.as_ref().and_then(|d| d.claimed_answer) {
        Some(_) => Offence::KnownAnswerWrong,
        None => Offence::DisputeLost,
    }
}

/// Owners of the committee members whose re-run decided the dispute (paid for revealing the
/// winning hash): the challengers of a result the dispute proved wrong.
pub(crate) fn deciders(delta: &Delta<'_>, task: &Task) -> Result<Vec<AccountId>, Reject> {
    let upheld = task.dispute.as_ref().is_some_and(|d| d.outcome == DisputeOutcome::Upheld);
    let members: Vec<usize> = (0..task.leases.len())
        .filter(|i| {
            let lease = &task.leases[*i];
            upheld && lease.role == Role::Committee && lease.verdict == Verdict::Paid
        })
        .collect();
    owners(delta, task, &members)
}

/// Pays committee member `index` what its time earned beyond its released intervals, once.
fn pay_member(delta: &mut Delta<'_>, task: &mut Task, index: usize) -> Result<(), Reject> {
    let lease = &mut task.leases[index];
    lease.verdict = Verdict::Paid;
    let (node, due) = (lease.node, lease.cost.saturating_sub(lease.released));
    money::pay_from_bond(delta, task, node, due)?;
    Ok(())
}

/// Returns an open dispute's bond to the requester (the task ends some other way).
pub(crate) fn return_bond(delta: &mut Delta<'_>, task: &mut Task) -> Result<(), Reject> {
    money::close_bond(delta, task, DisputeOutcome::Inconclusive, None)
}

fn committee(task: &Task) -> Vec<usize> {
    (0..task.leases.len())
        .filter(|i| {
            let lease = &task.leases[*i];
            lease.role == Role::Committee && lease.verdict == Verdict::Pending
        })
        .collect()
}

/// The disputed result's voter key in the committee's vote (no node's key: ids are `u64`).
const RESULT_VOTER: [u8; 32] = [0xff; 32];

/// The committee has revealed (or withheld): the vote of the disputed result and the members,
/// by hash, or for a non-deterministic task by summary within its tolerance (`ledger::compare`).
pub(crate) fn decide(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    let result = task.result.clone().ok_or(Reject::InvalidTaskState)?;
    let members = committee(&task);
    let (outcome, winners, losers) = {
        let mut ballots = vec![Ballot::of_result(RESULT_VOTER, &result)];
        for index in &members {
            let lease = &task.leases[*index];
            if let Some(reveal) = &lease.reveal {
                ballots.push(Ballot::of_reveal(voter(lease.node), reveal));
            }
        }
        let outcome = compare::vote(&task.terms, 3, &ballots);
        let of = |i: &usize| ballots.iter().find(|b| b.voter == voter(task.leases[*i].node));
        let winners: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| outcome.majority.contains(&voter(task.leases[*i].node)))
            .collect();
        // A member that revealed outside the majority, and whether it is slashed: not where its
        // difference may be an honest one (`compare::slashable`).
        let losers: Vec<(usize, bool)> = members
            .iter()
            .copied()
            .filter(|i| !winners.contains(i))
            .filter_map(|i| of(&i).map(|b| (i, compare::slashable(&task.terms, 3, b, &ballots))))
            .collect();
        (outcome, winners, losers)
    };
    let honest = owners(delta, &task, &winners)?;
    for index in &winners {
        pay_member(delta, &mut task, *index)?;
    }
    if outcome.no_quorum {
        for index in &members {
            if task.leases[*index].reveal.is_some() {
                pay_member(delta, &mut task, *index)?;
            }
        }
        money::close_bond(delta, &mut task, DisputeOutcome::Inconclusive, None)?;
        return complete(delta, task);
    }
    let majority = outcome.majority_hash.map(Hash32);
    let result_won = outcome.majority.contains(&RESULT_VOTER);
    let claimed = task.dispute.as_ref().and_then(|d| d.claimed_answer);
    if claimed.is_some_and(|claimed| Some(claimed) != majority) && !result_won {
        // The committee agreed on neither the result nor the claimed answer: the claim is not
        // confirmed, so nobody is slashed and the result stands.
        money::close_bond(delta, &mut task, DisputeOutcome::Inconclusive, None)?;
        return complete(delta, task);
    }
    for (index, slashed) in losers {
        task.leases[index].verdict = Verdict::Overruled;
        if slashed {
            penalty::penalize(delta, &mut task, index, &honest, Offence::DisputeLost)?;
        } else {
            penalty::outvoted(delta, task.leases[index].node)?;
        }
    }
    if result_won {
        let provider = delta.node(result.node)?.owner;
        money::close_bond(delta, &mut task, DisputeOutcome::Rejected, Some(provider))?;
        return complete(delta, task);
    }
    overturn(delta, task, &result, &honest)
}

/// The committee's re-run proved the result wrong: every node that produced or confirmed it is
/// slashed (its challenger share to the members who proved it, `challengers`), the bond returns,
/// the escrow is refunded.
fn overturn(
    delta: &mut Delta<'_>,
    mut task: Task,
    wrong: &ResultCommit,
    challengers: &[AccountId],
) -> Result<(), Reject> {
    let wrong = Ballot::of_result(RESULT_VOTER, wrong);
    let guilty: Vec<usize> = (0..task.leases.len())
        .filter(|i| {
            let lease = &task.leases[*i];
            let confirmed = |r| compare::agree(&task.terms, &wrong, &Ballot::of_reveal([0; 32], r));
            compare::slashes_differences(&task.terms)
                && lease.verdict == Verdict::Upheld
                && lease.reveal.as_ref().is_some_and(confirmed)
        })
        .collect();
    let offence = offence(&task);
    for index in guilty {
        task.leases[index].verdict = Verdict::Overruled;
        penalty::penalize(delta, &mut task, index, challengers, offence)?;
    }
    money::close_bond(delta, &mut task, DisputeOutcome::Upheld, None)?;
    finish(delta, task, TaskState::Failed, Some(FailureReason::ResultRejected))
}

/// No committee could be staffed in time: the dispute is inconclusive and the result stands.
pub(crate) fn inconclusive(delta: &mut Delta<'_>, mut task: Task) -> Result<(), Reject> {
    for index in committee(&task) {
        if task.leases[index].reveal.is_some() {
            pay_member(delta, &mut task, index)?;
        }
    }
    money::close_bond(delta, &mut task, DisputeOutcome::Inconclusive, None)?;
    complete(delta, task)
}

pub fn reveal_answer(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: TaskId,
    answer_hash: Hash32,
    salt: Hash32,
) -> Result<(), Reject> {
    let task = verified_task(delta, &who, id)?;
    if task.terms.nondeterministic.is_some() {
        // Its honest results differ by machine: no one hash is its answer.
        return Err(Reject::KnownAnswerNondeterministic);
    }
    if answer_commitment(&who, &answer_hash, &salt) != task.answer_commitment {
        return Err(Reject::BadCommitment);
    }
    let result = task.result.clone().ok_or(Reject::InvalidTaskState)?;
    let matched = result.output_hash == answer_hash;
    delta.emit(Event::KnownAnswerRevealed { task: id, matched });
    if !matched {
        // The requester's word is a claim, not proof: the committee re-runs the task.
        let bond = market::dispute_bond_min(&task.terms);
        return open_committee(delta, task, bond, Some(answer_hash));
    }
    for lease in task.leases.iter().filter(|l| l.verdict == Verdict::Upheld) {
        penalty::passed(delta, lease.node)?;
    }
    complete(delta, task)
}
