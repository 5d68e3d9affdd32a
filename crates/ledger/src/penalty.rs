//! Graded responses to misbehaviour: a fault lowers reputation (and freezes a node whose score
//! falls too low); a proven offence slashes stake and freezes the node; repeated offences eject it.
//!
//! Slash size: `slash_multiple_of_price` (20) × the run's price (the node's price × the task's
//! time limit), so with the 5% audit floor `savings + benefit < p·(price + slash)` holds for any
//! savings up to the whole price (`verify::cheating_is_unprofitable`, checked by a test). Slashed
//! stake is split (`verify::SlashSplit`): 30% to the challengers (the honest auditor, replicas,
//! referee or disputer, in equal parts), 20% to the treasury account, 50% and every rounding
//! remainder burned. Supply shrinks only by the burn. The tokens move in `money`.
//!
//! Before the slash, whatever the lease was released per interval is clawed back from the same
//! stake and returned to the escrow (the requester's once the task has ended;
//! `money::claw_back`, `ClawedBack` event): the offence proved the work wrong, so none of its
//! pay may stay with the cheater. Restitution comes first; where the stake cannot cover both,
//! the slash gets what is left.

use crate::delta::Delta;
use crate::event::Event;
use crate::market;
use crate::money::{self, Offence, Slash};
use crate::reputation;
use crate::state::{NodeStatus, Task};
use aicpw_types::{AccountId, Amount, NodeId, Reject};

/// A fault: evidence against a node, but no proof of cheating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The lease ran out (no heartbeat, time limit, reveal not sent in its window).
    Expired,
    /// The provider reported its own failure.
    Failed,
}

/// Counts a fault; freezes the node if its score fell below the freeze line.
pub fn fault(delta: &mut Delta<'_>, id: NodeId, fault: Fault) -> Result<(), Reject> {
    let params = delta.base.params.verification.clone();
    let mut node = delta.node(id)?;
    reputation::record(&mut node.reputation, |r| match fault {
        Fault::Expired => r.expired += 1,
        Fault::Failed => r.failed += 1,
    });
    let faults = node.reputation.failed + node.reputation.expired;
    let low = node.reputation.score_permille < params.freeze_score_permille;
    if low && faults >= params.freeze_faults_min && node.status == NodeStatus::Active {
        node.status = NodeStatus::Frozen;
        delta.emit(Event::NodeFrozen { node: id, score_permille: node.reputation.score_permille });
    }
    delta.set_node(node);
    Ok(())
}

/// A verified result: one more audit passed, one longer clean streak.
pub fn passed(delta: &mut Delta<'_>, id: NodeId) -> Result<(), Reject> {
    let mut node = delta.node(id)?;
    reputation::record(&mut node.reputation, |r| {
        r.audits_passed += 1;
        r.clean_streak = aicpw_verify::audit::next_clean_streak(r.clean_streak, true);
    });
    delta.set_node(node);
    Ok(())
}

/// A result outvoted without proof that it is wrong (a non-deterministic task's difference in
/// `committee` mode, `ledger::compare`): a failure on record, which ends the clean streak (the
/// next results are audited again as a newcomer's), and no slash.
pub fn outvoted(delta: &mut Delta<'_>, id: NodeId) -> Result<(), Reject> {
    fault(delta, id, Fault::Failed)?;
    let mut node = delta.node(id)?;
    reputation::record(&mut node.reputation, |r| {
        r.clean_streak = aicpw_verify::audit::next_clean_streak(r.clean_streak, false);
    });
    delta.set_node(node);
    Ok(())
}

/// The slash for an offence on a run at `price_per_hour`.
pub fn slash_amount(delta: &Delta<'_>, task: &Task, index: usize) -> Result<Amount, Reject> {
    let lease = &task.leases[index];
    let basis = market::run_price(lease.price_per_hour, &task.terms);
    let economics = &delta.base.params.verification.economics;
    economics.slash(basis.0).map(Amount).map_err(|_| Reject::AmountOverflow)
}

/// Claws back what lease `index` of `task` was released, then slashes its owner for `offence`,
/// pays the challengers' and the treasury's shares, burns the rest, and freezes (or, after
/// `offences_eject`, ejects) the node. Returns the slash taken.
pub fn penalize(
    delta: &mut Delta<'_>,
    task: &mut Task,
    index: usize,
    challengers: &[AccountId],
    offence: Offence,
) -> Result<Amount, Reject> {
    let params = delta.base.params.verification.clone();
    let id = task.leases[index].node;
    let mut node = delta.node(id)?;
    money::claw_back(delta, task, index, node.owner, offence)?;
    let amount = slash_amount(delta, task, index)?;
    let slash =
        Slash { task: Some(task.id), node: id, owner: node.owner, offence, amount, challengers };
    let taken = money::slash(delta, slash)?;
    reputation::record(&mut node.reputation, |r| {
        r.audits_failed += 1;
        r.clean_streak = aicpw_verify::audit::next_clean_streak(r.clean_streak, false);
    });
    escalate(delta, &mut node, &params)?;
    delta.set_node(node);
    Ok(taken)
}

/// Records a proven offence of the node and of its owner. After it the node is frozen; once its
/// owner's offences (every node it ever registered, so deregistering and registering again
/// forgets none) reach `offences_eject`, it is ejected for good, and the stake its registration
/// locked is free to unbond (what is left of it).
pub(crate) fn escalate(
    delta: &mut Delta<'_>,
    node: &mut crate::state::Node,
    params: &crate::state::VerificationParams,
) -> Result<(), Reject> {
    reputation::record(&mut node.reputation, |r| r.offences = r.offences.saturating_add(1));
    let mut account = delta.account(&node.owner);
    account.offences = account.offences.saturating_add(1);
    let offences = account.offences;
    delta.set_account(node.owner, account);
    if node.status == NodeStatus::Ejected {
        return Ok(());
    }
    if offences >= params.offences_eject {
        node.status = NodeStatus::Ejected;
        node.online = false;
        node.appeal = None;
        let mut account = delta.account(&node.owner);
        account.nodes = account.nodes.saturating_sub(1);
        delta.set_account(node.owner, account);
        delta.emit(Event::NodeEjected { node: node.id });
    } else if node.status == NodeStatus::Active {
        node.status = NodeStatus::Frozen;
        delta.emit(Event::NodeFrozen {
            node: node.id,
            score_permille: node.reputation.score_permille,
        });
    }
    Ok(())
}
