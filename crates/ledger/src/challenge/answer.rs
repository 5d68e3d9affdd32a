//! The transactions a challenged node answers with, and the owner's capacity claim.

use super::sanction::resolve_matrix;
use super::{ChallengeFailure, ChallengeKind, ChallengeStatus, OPENINGS_PER_TX_MAX};
use crate::delta::Delta;
use crate::event::Event;
use crate::registry::owned_node;
use crate::state::{Node, NodeStatus};
use aicpw_types::{AccountId, ChallengeId, ComputeUnits, Hash32, NodeId, Reject};
use aicpw_verify::capacity::{judge, ChallengeAnswer, OpeningsCheck};
use aicpw_verify::matrix::compute_tile;
use aicpw_verify::merkle::{self, Digest};
use aicpw_verify::{ChallengeVerdict, HashPuzzle, MatrixChallenge};

/// The node holding challenge `id`, which `who` must own, and the challenge's kind.
fn challenged(
    delta: &Delta<'_>,
    who: &AccountId,
    id: ChallengeId,
) -> Result<(Node, ChallengeKind), Reject> {
    let node = *delta.base.index.challenge.nodes.get(&id).ok_or(Reject::UnknownChallenge)?;
    let node = owned_node(delta, who, node)?;
    let kind = [ChallengeKind::Matrix, ChallengeKind::Puzzle]
        .into_iter()
        .find(|kind| node.capacity.current(*kind).is_some_and(|c| c.id == id))
        .ok_or(Reject::UnknownChallenge)?;
    Ok((node, kind))
}

/// `ChallengeCommit`: the root of the tile tree over `C`, in a later block than the challenge's
/// and before its deadline.
pub fn commit(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: ChallengeId,
    root: Hash32,
) -> Result<(), Reject> {
    let (mut node, kind) = challenged(delta, &who, id)?;
    if kind != ChallengeKind::Matrix {
        return Err(Reject::ChallengeKindMismatch);
    }
    let (now, height) = (delta.env.time_ms, delta.env.height);
    let Some(challenge) = node.capacity.matrix.as_mut() else {
        return Err(Reject::UnknownChallenge);
    };
    let open = challenge.status == ChallengeStatus::Issued;
    if !open || now > challenge.deadline_ms || height <= challenge.issued_height {
        return Err(Reject::ChallengeClosed);
    }
    challenge.status = ChallengeStatus::Committed;
    challenge.root = Some(root);
    challenge.response_ms = now - challenge.issued_ms;
    challenge.committed_height = height;
    let response_ms = challenge.response_ms;
    delta.emit(Event::ChallengeCommitted { challenge: id, node: node.id, response_ms });
    delta.set_node(node);
    Ok(())
}

/// Checks one drawn tile: the ledger computes the true tile, and its path must lead to the root.
fn check_tile(
    challenge: &MatrixChallenge,
    root: &Hash32,
    index: u32,
    path: &[Hash32],
) -> Result<(), ChallengeFailure> {
    let count = challenge.tile_count();
    if path.len() != merkle::path_length(count, index) {
        return Err(ChallengeFailure::PathMalformed);
    }
    let truth = compute_tile(challenge, index).map_err(|_| ChallengeFailure::PathMalformed)?;
    let leaf = merkle::leaf_value(index, count, &truth);
    let path: Vec<Digest> = path.iter().map(|digest| digest.0).collect();
    match merkle::root_from_path(count, index, leaf, &path) {
        Ok(computed) if computed == root.0 => Ok(()),
        Ok(_) => Err(ChallengeFailure::TileMismatch),
        Err(_) => Err(ChallengeFailure::PathMalformed),
    }
}

/// `ChallengeOpen`: the paths of drawn tiles `first..first + paths.len()`. A wrong path fails the
/// challenge (the transaction is the evidence); the last drawn tile verified passes it.
pub fn open(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: ChallengeId,
    first: u32,
    paths: Vec<Vec<Hash32>>,
) -> Result<(), Reject> {
    let (mut node, kind) = challenged(delta, &who, id)?;
    if kind != ChallengeKind::Matrix {
        return Err(Reject::ChallengeKindMismatch);
    }
    let Some(challenge) = node.capacity.matrix.as_ref() else {
        return Err(Reject::UnknownChallenge);
    };
    match challenge.status {
        ChallengeStatus::Committed => return Err(Reject::OpeningsNotDrawn),
        ChallengeStatus::Opening if delta.env.time_ms <= challenge.open_deadline_ms => {}
        _ => return Err(Reject::ChallengeClosed),
    }
    if first != challenge.opened {
        return Err(Reject::OpeningsOutOfOrder);
    }
    let (Some(matrix), Some(root), Some(drawn)) =
        (challenge.matrix(), challenge.root, challenge.drawn_tiles())
    else {
        return Err(Reject::ChallengeClosed);
    };
    let remaining = drawn.get(first as usize..).unwrap_or_default();
    if paths.is_empty() || paths.len() > OPENINGS_PER_TX_MAX || paths.len() > remaining.len() {
        return Err(Reject::InvalidField);
    }
    let work = paths.len() as u64 * u64::from(matrix.n);
    let used = delta.base.index.challenge.verify_work_in_block + delta.challenge_work;
    if used > 0 && used + work > delta.base.params.challenges.verify_work_per_block_max {
        return Err(Reject::ChallengeVerifyBusy);
    }
    delta.challenge_work += work;
    let checked =
        remaining.iter().zip(&paths).map(|(index, path)| check_tile(&matrix, &root, *index, path));
    let outcome = match checked.into_iter().find_map(Result::err) {
        Some(failure) => Some(Err(failure)),
        None if paths.len() == remaining.len() => Some(Ok(score(delta, &node))),
        None => None,
    };
    if let (Some(challenge), None | Some(Ok(_))) = (node.capacity.matrix.as_mut(), &outcome) {
        challenge.opened += paths.len() as u32;
    }
    if let Some(result) = outcome {
        resolve_matrix(delta, &mut node, result)?;
    }
    delta.set_node(node);
    Ok(())
}

/// The score of the node's current matrix challenge once every drawn tile verified.
fn score(delta: &Delta<'_>, node: &Node) -> ComputeUnits {
    let Some(challenge) = node.capacity.matrix.as_ref() else { return ComputeUnits(0) };
    let answer = ChallengeAnswer::Committed {
        response_ms: challenge.response_ms,
        openings: OpeningsCheck::Valid,
    };
    let deadline = challenge.deadline_ms - challenge.issued_ms;
    let round_trip = delta.base.params.challenges.round_trip_ms;
    match judge(aicpw_verify::matrix::work(challenge.n), deadline, round_trip, answer) {
        ChallengeVerdict::Passed { units } => ComputeUnits(units.0),
        ChallengeVerdict::Late | ChallengeVerdict::Failed => ComputeUnits(0),
    }
}

/// `SubmitPuzzle`: a nonce solving the node's puzzle before its deadline. A wrong nonce is
/// refused (it proves nothing either way); the deadline decides a puzzle nobody solves.
pub fn submit_puzzle(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: ChallengeId,
    nonce: u64,
) -> Result<(), Reject> {
    let (mut node, kind) = challenged(delta, &who, id)?;
    if kind != ChallengeKind::Puzzle {
        return Err(Reject::ChallengeKindMismatch);
    }
    let now = delta.env.time_ms;
    let Some(puzzle) = node.capacity.puzzle.as_mut() else {
        return Err(Reject::UnknownChallenge);
    };
    if puzzle.status != ChallengeStatus::Issued || now > puzzle.deadline_ms {
        return Err(Reject::ChallengeClosed);
    }
    let posed = HashPuzzle { seed: puzzle.seed.0, difficulty: puzzle.difficulty };
    aicpw_verify::verify_puzzle(&posed, nonce).map_err(|_| Reject::PuzzleUnsolved)?;
    puzzle.status = ChallengeStatus::Passed;
    puzzle.response_ms = now - puzzle.issued_ms;
    node.capacity.puzzles_solved += 1;
    delta.emit(Event::ChallengePassed {
        challenge: id,
        node: node.id,
        kind: ChallengeKind::Puzzle,
        units: ComputeUnits(0),
        proven_units: node.proven_units,
    });
    delta.set_node(node);
    Ok(())
}

/// `ClaimCapacity`: sizes the node's next matrix challenges and their deadlines. A claim above
/// the truth only earns challenges the node cannot answer in time.
pub fn claim(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: NodeId,
    units: ComputeUnits,
) -> Result<(), Reject> {
    let mut node = owned_node(delta, &who, id)?;
    if node.status == NodeStatus::Ejected {
        return Err(Reject::NodeNotActive);
    }
    if units > delta.base.params.challenges.claim_max {
        return Err(Reject::InvalidField);
    }
    node.capacity.claimed_units = units;
    delta.emit(Event::CapacityClaimed { node: id, units });
    delta.set_node(node);
    Ok(())
}
