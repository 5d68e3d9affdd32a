//! Arbitration of frozen nodes by the stakers (the design's DAO arbitration).
//!
//! The owner of a frozen node may `Appeal` (at most `appeals_max` times in the node's life, one at
//! a time). For `appeal_voting_ms` any account with bonded stake, other than the owner, may
//! `VoteAppeal` once; a vote weighs the voter's bonded stake at that moment, and that stake cannot
//! be unbonded until the vote closes (so one stake cannot vote twice through another account).
//! When the period ends, the node is unfrozen if the approving stake exceeds the rejecting stake;
//! otherwise it stays frozen. An ejected node cannot appeal.

use crate::delta::Delta;
use crate::event::Event;
use crate::registry::owned_node;
use crate::state::{Appeal, NodeStatus, APPEAL_VOTERS_MAX};
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
        voters: Vec::new(),
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
    if who == node.owner || voter.staked.is_zero() || appeal.voters.len() >= APPEAL_VOTERS_MAX {
        return Err(Reject::NotEligibleVoter);
    }
    if appeal.voters.contains(&who) {
        return Err(Reject::AlreadyVoted);
    }
    let weight = voter.staked;
    let side = if approve { &mut appeal.approve } else { &mut appeal.reject };
    *side = side.checked_add(weight).ok_or(Reject::AmountOverflow)?;
    appeal.voters.push(who);
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
