//! What every block does by itself: expire deadlines, draw the tiles to open, issue new rounds.

use super::sanction::{puzzle_missed, resolve_matrix};
use super::{
    challengeable, matrix_shape, next_due, seed, sizing_units, Challenge, ChallengeFailure,
    ChallengeKind, ChallengeParams, ChallengeStatus, CHALLENGES_PER_BLOCK_MAX,
};
use crate::delta::Delta;
use crate::event::Event;
use crate::state::{Node, State};
use aicpw_types::{BlockEnv, ChallengeId, ComputeUnits, NodeId};
use aicpw_verify::matrix::TILE_DEFAULT;
use std::collections::BTreeSet;

/// Runs at the start of every block, after leases are settled and nodes marked offline.
pub fn begin_block(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    state.index.challenge.verify_work_in_block = 0;
    let mut events = expire(state, env);
    events.extend(draw(state, env));
    events.extend(issue(state, env));
    events
}

/// The node holding challenge `id`, and which of its challenges it is.
fn holder(delta: &Delta<'_>, id: ChallengeId) -> Option<(Node, ChallengeKind)> {
    let node = delta.node(*delta.base.index.challenge.nodes.get(&id)?).ok()?;
    let kind = [ChallengeKind::Matrix, ChallengeKind::Puzzle]
        .into_iter()
        .find(|kind| node.capacity.current(*kind).is_some_and(|c| c.id == id))?;
    Some((node, kind))
}

/// Challenges whose deadline passed: a missing commitment is late, missing openings are withheld.
fn expire(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let due: Vec<ChallengeId> = state
        .index
        .challenge
        .deadlines
        .iter()
        .take_while(|(deadline, _)| *deadline < env.time_ms)
        .map(|(_, id)| *id)
        .take(CHALLENGES_PER_BLOCK_MAX)
        .collect();
    let mut delta = Delta::new(state, env);
    for id in due {
        let Some((mut node, kind)) = holder(&delta, id) else { continue };
        let status = node.capacity.current(kind).map(|c| c.status);
        let resolved = match (kind, status) {
            (ChallengeKind::Matrix, Some(ChallengeStatus::Issued)) => {
                resolve_matrix(&mut delta, &mut node, Err(ChallengeFailure::Late))
            }
            (ChallengeKind::Matrix, Some(ChallengeStatus::Opening)) => {
                resolve_matrix(&mut delta, &mut node, Err(ChallengeFailure::OpeningsWithheld))
            }
            (ChallengeKind::Puzzle, Some(ChallengeStatus::Issued)) => {
                puzzle_missed(&mut delta, &mut node);
                Ok(())
            }
            _ => continue,
        };
        if let Err(reject) = resolved {
            panic!("expiring challenge {id} failed: {reject}");
        }
        delta.set_node(node);
    }
    state.commit(delta.into_changes())
}

/// Commitments of earlier blocks get their tiles drawn from this block's randomness.
fn draw(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let due: Vec<ChallengeId> = state
        .index
        .challenge
        .draws
        .iter()
        .take_while(|(height, _)| *height < env.height)
        .map(|(_, id)| *id)
        .take(CHALLENGES_PER_BLOCK_MAX)
        .collect();
    let window = state.params.challenges.open_window_ms;
    let mut delta = Delta::new(state, env);
    for id in due {
        let Some((mut node, ChallengeKind::Matrix)) = holder(&delta, id) else { continue };
        let Some(challenge) = node.capacity.matrix.as_mut() else { continue };
        challenge.status = ChallengeStatus::Opening;
        challenge.open_randomness = Some(env.randomness);
        challenge.open_deadline_ms = env.time_ms.saturating_add(window);
        let open_deadline_ms = challenge.open_deadline_ms;
        delta.emit(Event::ChallengeOpeningsDrawn {
            challenge: id,
            node: node.id,
            open_deadline_ms,
        });
        delta.set_node(node);
    }
    state.commit(delta.into_changes())
}

/// Nodes whose round is due get one, together with every challengeable node of their owner. An
/// owner with a challenge still open waits for it to resolve.
fn issue(state: &mut State, env: &BlockEnv) -> Vec<Event> {
    let params = state.params.challenges.clone();
    if params.interval_ms == 0 {
        return Vec::new();
    }
    let due: Vec<NodeId> = state
        .index
        .challenge
        .due
        .iter()
        .take_while(|(due, _)| *due <= env.time_ms)
        .map(|(_, id)| *id)
        .take(CHALLENGES_PER_BLOCK_MAX)
        .collect();
    let mut delta = Delta::new(state, env);
    let (mut owners, mut issued) = (BTreeSet::new(), 0usize);
    for id in due {
        if issued >= params.issued_per_block_max as usize {
            break;
        }
        let Ok(owner) = delta.node(id).map(|node| node.owner) else { continue };
        if !owners.insert(owner) {
            continue;
        }
        let group: Vec<Node> = state
            .index
            .owned
            .range((owner, NodeId(0))..=(owner, NodeId(u64::MAX)))
            .filter_map(|(_, node)| delta.node(*node).ok())
            .filter(challengeable)
            .collect();
        if group.iter().any(|node| node.capacity.has_open()) {
            continue;
        }
        let next = next_due(env.time_ms, params.interval_ms);
        for node in group {
            issue_round(&mut delta, node, next, &params);
            issued += 1;
        }
    }
    state.commit(delta.into_changes())
}

fn fresh(delta: &mut Delta<'_>, node: NodeId, kind: ChallengeKind, deadline_ms: u64) -> Challenge {
    let mut meta = delta.meta();
    let id = ChallengeId(meta.next_challenge);
    meta.next_challenge += 1;
    delta.set_meta(meta);
    let env = delta.env;
    let issued_ms = env.time_ms;
    delta.emit(Event::ChallengeIssued { challenge: id, node, kind, deadline_ms });
    Challenge {
        id,
        node,
        kind,
        // The block time is mixed in: the randomness of a block is known once its parent is, but
        // the millisecond the sequencer stamps on it is not, so nobody can solve ahead.
        seed: seed(&env.randomness, env.time_ms, node, id),
        n: 0,
        tile: 0,
        open_count: 0,
        difficulty: 0,
        sized_for: ComputeUnits(0),
        issued_ms,
        issued_height: env.height,
        deadline_ms,
        status: ChallengeStatus::Issued,
        root: None,
        response_ms: 0,
        committed_height: 0,
        open_randomness: None,
        open_deadline_ms: 0,
        opened: 0,
        units: ComputeUnits(0),
        failure: None,
    }
}

/// Gives `node` a matrix challenge (and a puzzle) and schedules its next round.
fn issue_round(delta: &mut Delta<'_>, mut node: Node, next: u64, params: &ChallengeParams) {
    let now = delta.env.time_ms;
    let units = sizing_units(&node, params);
    let (n, deadline_ms) = matrix_shape(units, node.hardware.memory_mb, params);
    let mut matrix = fresh(delta, node.id, ChallengeKind::Matrix, now.saturating_add(deadline_ms));
    matrix.n = n;
    matrix.tile = TILE_DEFAULT;
    matrix.open_count = params.open_count;
    matrix.sized_for = units;
    node.capacity.matrix = Some(matrix);
    node.capacity.puzzle = (params.puzzle_difficulty > 0).then(|| {
        let deadline = now.saturating_add(params.puzzle_deadline_ms);
        let mut puzzle = fresh(delta, node.id, ChallengeKind::Puzzle, deadline);
        puzzle.difficulty = params.puzzle_difficulty;
        puzzle
    });
    node.capacity.due_ms = next;
    delta.set_node(node);
}
