//! Results of challenges: scores, proven capacity, and the graded response to misses and failures.

use super::{ChallengeFailure, ChallengeKind, ChallengeSanction, ChallengeStatus};
use crate::delta::Delta;
use crate::event::Event;
use crate::money::{self, Offence, Slash};
use crate::reputation;
use crate::state::{Node, NodeStatus};
use aicpw_types::{ComputeUnits, Reject};
use aicpw_verify::{ChallengeVerdict, Sanction};

/// Records the result of the node's current matrix challenge: `Ok(units)` passed with that
/// score, `Err(failure)` did not. Updates the proven capacity and applies the sanction.
pub(super) fn resolve_matrix(
    delta: &mut Delta<'_>,
    node: &mut Node,
    outcome: Result<ComputeUnits, ChallengeFailure>,
) -> Result<(), Reject> {
    let Some(challenge) = node.capacity.matrix.as_mut() else { return Ok(()) };
    let verdict = match outcome {
        Ok(units) => {
            challenge.status = ChallengeStatus::Passed;
            challenge.units = units;
            ChallengeVerdict::Passed { units: aicpw_verify::ComputeUnits(units.0) }
        }
        Err(failure) => {
            // Openings that never came are absence, like a late commitment: a miss, not proof
            // of false work (an honest node may go offline between committing and opening).
            let miss = failure.is_miss();
            challenge.status = if miss { ChallengeStatus::Late } else { ChallengeStatus::Failed };
            challenge.failure = Some(failure);
            if miss {
                ChallengeVerdict::Late
            } else {
                ChallengeVerdict::Failed
            }
        }
    };
    let id = challenge.id;
    let mut proven = node.capacity.proven();
    let sanction = proven.record(verdict);
    node.capacity.store(&proven);
    node.proven_units = ComputeUnits(proven.median().0);
    match outcome {
        Ok(units) => {
            node.capacity.passed += 1;
            thaw(delta, node);
            delta.emit(Event::ChallengePassed {
                challenge: id,
                node: node.id,
                kind: ChallengeKind::Matrix,
                units,
                proven_units: node.proven_units,
            });
        }
        Err(failure) => {
            if failure.is_miss() {
                node.capacity.missed += 1;
            } else {
                node.capacity.failed += 1;
            }
            let applied = punish(delta, node, failure, sanction)?;
            delta.emit(Event::ChallengeFailed {
                challenge: id,
                node: node.id,
                kind: ChallengeKind::Matrix,
                reason: failure,
                sanction: applied,
                proven_units: node.proven_units,
            });
        }
    }
    Ok(())
}

/// A puzzle nobody solved in time: evidence of absence, never of capacity, so it lowers
/// reputation and nothing else.
pub(super) fn puzzle_missed(delta: &mut Delta<'_>, node: &mut Node) {
    let Some(puzzle) = node.capacity.puzzle.as_mut() else { return };
    puzzle.status = ChallengeStatus::Late;
    puzzle.failure = Some(ChallengeFailure::Late);
    let id = puzzle.id;
    node.capacity.puzzles_missed += 1;
    lower_reputation(node, ChallengeFailure::Late);
    delta.emit(Event::ChallengeFailed {
        challenge: id,
        node: node.id,
        kind: ChallengeKind::Puzzle,
        reason: ChallengeFailure::Late,
        sanction: ChallengeSanction::LowerReputation,
        proven_units: node.proven_units,
    });
}

/// A miss counts like an expired lease; a failure like a failed audit.
fn lower_reputation(node: &mut Node, failure: ChallengeFailure) {
    reputation::record(&mut node.reputation, |r| match failure {
        ChallengeFailure::Late | ChallengeFailure::OpeningsWithheld => r.expired += 1,
        ChallengeFailure::TileMismatch | ChallengeFailure::PathMalformed => r.audits_failed += 1,
    });
}

/// Applies `verify`'s graded response; returns what was applied.
fn punish(
    delta: &mut Delta<'_>,
    node: &mut Node,
    failure: ChallengeFailure,
    sanction: Sanction,
) -> Result<ChallengeSanction, Reject> {
    if sanction == Sanction::None {
        return Ok(ChallengeSanction::None);
    }
    // Absence is never slashed: where `verify`'s graded response would slash a long run of
    // misses, the node stays frozen (no work, still challenged: a pass thaws it). An honest node
    // offline for a long time loses income and reputation, not stake.
    let sanction =
        if failure.is_miss() && sanction == Sanction::Slash { Sanction::Freeze } else { sanction };
    lower_reputation(node, failure);
    match sanction {
        Sanction::None | Sanction::LowerReputation => {}
        Sanction::Freeze => freeze(delta, node),
        Sanction::Slash => {
            // Split as every slash is; the challengers' share is burned too, since the ledger
            // itself challenged (paying the block's proposer would pay it for censoring answers).
            let slash = Slash {
                task: None,
                node: node.id,
                owner: node.owner,
                offence: Offence::CapacityChallengeFailed,
                amount: delta.base.params.challenges.slash_failed,
                challengers: &[],
            };
            money::slash(delta, slash)?;
            // A slashed node is frozen until the stakers' arbitration thaws it (or ejected after
            // `offences_eject` offences), and no longer challenged meanwhile.
            node.capacity.frozen = false;
            let params = delta.base.params.verification.clone();
            crate::penalty::escalate(delta, node, &params)?;
        }
    }
    Ok(sanction.into())
}

/// Freezes an active node for missed challenges: the next passed one thaws it.
fn freeze(delta: &mut Delta<'_>, node: &mut Node) {
    if node.status != NodeStatus::Active {
        return;
    }
    node.status = NodeStatus::Frozen;
    node.capacity.frozen = true;
    delta.emit(Event::NodeFrozen { node: node.id, score_permille: node.reputation.score_permille });
}

/// A pass thaws a node that missed challenges frozen.
fn thaw(delta: &mut Delta<'_>, node: &mut Node) {
    if !node.capacity.frozen {
        return;
    }
    node.capacity.frozen = false;
    if node.status == NodeStatus::Frozen {
        node.status = NodeStatus::Active;
        delta.emit(Event::NodeThawed { node: node.id });
    }
}
