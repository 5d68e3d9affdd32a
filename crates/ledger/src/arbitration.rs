//! Arbitration of frozen nodes by the stakers (the design's DAO arbitration).
//!
//! The owner of a frozen node may `Appeal` (at most `appeals_max` times in the node's life, one at
//! a time). For `appeal_voting_ms` any account with at least `vote_stake_min` bonded, other than
//! the owner, may `VoteAppeal` once; a vote weighs the voter's bonded stake at that moment, and
//! that stake cannot be unbonded until the vote closes (so one stake cannot vote twice through
//! another account). An appeal holds at most `APPEAL_VOTERS_MAX` (256) votes; once full, a vote
//! heavier than the lightest displaces it (`AppealVoteDisplaced`), so the seats go to the
//! heaviest stakes and cannot be filled with dust ahead of the real voters.
//! When the period ends, the node is unfrozen if the approving stake exceeds the rejecting stake;
//! otherwise it stays frozen. An ejected node cannot appeal.

use crate::delta::Delta;
use crate::event::Event;
use crate::registry::owned_node;
use crate::state::{Appeal, AppealVote, NodeStatus, APPEAL_VOTERS_MAX};
use aicpw_types::{AccountId, Amount, NodeId, Reject};

pub fn appeal(delta: &mut Delta<'_>, who: AccountId, id: NodeId) -> Result<(), Reject> {
    let mut node = owned_node(delta, &who, id)?;
    if node.status != NodeStatus::Frozen {
        return Err(Reject::NodeNotFrozen);
    }
    let params = &delta.base.params.verification;
    if node.appeal.is_some() || node.appeals >= params.appeals_max {
        return Err(Reject::AppealOpen);
    }
    let now = delta.env.time_ms;
    let closes_ms = now.saturating_add(params.appeal_voting_ms);
    node.appeals += 1;
    node.appeal = Some(Appeal {
        opened_ms: now,
        closes_ms,
        approve: Amount::ZERO,
        reject: Amount::ZERO,
        votes: Vec::new(),
    });
    delta.set_node(node);
    delta.emit(Event::AppealOpened { node: id, closes_ms });
    Ok(())
}

pub fn vote(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: NodeId,
    approve: bool,
) -> Result<(), Reject> {
    let mut node = delta.node(id)?;
    let now = delta.env.time_ms;
    let Some(appeal) = node.appeal.as_mut().filter(|a| now < a.closes_ms) else {
        return Err(Reject::AppealNotOpen);
    };
    let mut voter = delta.account(&who);
    if who == node.owner {
        return Err(Reject::NotEligibleVoter);
    }
    if voter.staked < delta.base.params.verification.vote_stake_min {
        return Err(Reject::VoteStakeTooLow);
    }
    if appeal.votes.iter().any(|v| v.voter == who) {
        return Err(Reject::AlreadyVoted);
    }
    let weight = voter.staked;
    if appeal.votes.len() >= APPEAL_VOTERS_MAX {
        // The seats go to the heaviest stakes: the lightest vote gives way to a heavier one.
        let (lightest, _) = appeal
            .votes
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| v.weight)
            .expect("a full appeal has votes");
        if appeal.votes[lightest].weight >= weight {
            return Err(Reject::AppealVotersFull);
        }
        let out = appeal.votes.swap_remove(lightest);
        let side = if out.approve { &mut appeal.approve } else { &mut appeal.reject };
        *side = side.checked_sub(out.weight).ok_or(Reject::AmountOverflow)?;
        delta.emit(Event::AppealVoteDisplaced { node: id, voter: out.voter, weight: out.weight });
    }
    let side = if approve { &mut appeal.approve } else { &mut appeal.reject };
    *side = side.checked_add(weight).ok_or(Reject::AmountOverflow)?;
    appeal.votes.push(AppealVote { voter: who, approve, weight });
    voter.vote_locked_until_ms = voter.vote_locked_until_ms.max(appeal.closes_ms);
    delta.set_account(who, voter);
    delta.set_node(node);
    delta.emit(Event::AppealVoted { node: id, voter: who, approve, weight });
    Ok(())
}

/// Closes an appeal whose voting period has ended (called by blocks).
pub fn close(delta: &mut Delta<'_>, id: NodeId) -> Result<(), Reject> {
    let mut node = delta.node(id)?;
    let Some(appeal) = node.appeal.take() else { return Ok(()) };
    if delta.env.time_ms < appeal.closes_ms {
        return Err(Reject::AppealNotOpen);
    }
    let approved = appeal.approve > appeal.reject && node.status == NodeStatus::Frozen;
    if approved {
        node.status = NodeStatus::Active;
    }
    delta.emit(Event::AppealClosed {
        node: id,
        approved,
        approve: appeal.approve,
        reject: appeal.reject,
    });
    delta.set_node(node);
    Ok(())
}
