//! Capacity challenges as a provider answers them.
//!
//! The simulation keeps the matrices small (the sim genesis caps the edge at 64), so the
//! provider computes the real product, tile tree and openings, and the ledger checks them for
//! real. What the machine's capacity changes is the *simulated* time the work takes: a challenge
//! sized for `sized_for` units takes `CHALLENGE_COMPUTE_MS × sized_for / units` on a machine of
//! `units`, as the ledger sizes challenges for about one second on the claimed capacity.

use super::{sent_recently, Behaviour, FakeStrategy, Provider, RESEND_MS};
use crate::party::Ctx;
use aicpw_ledger::challenge::OPENINGS_PER_TX_MAX;
use aicpw_ledger::challenge::{Challenge, ChallengeStatus};
use aicpw_types::{ChallengeId, Hash32, NodeId, TxBody};
use aicpw_verify::matrix::compute_tile;
use aicpw_verify::merkle::{self, TileTree};
use aicpw_verify::puzzle::{solve_puzzle, HashPuzzle};

/// Simulated compute time of a challenge on a machine that has the capacity it was sized for.
pub const CHALLENGE_COMPUTE_MS: u64 = aicpw_verify::capacity::CHALLENGE_COMPUTE_MS_TARGET;
/// Time a node allows for sending its answer and getting it into a block.
pub const POLL_SLACK_MS: u64 = 1_000;
/// One-way time between a relay sybil and its hidden machine (a fast link).
pub const RELAY_HIDDEN_MS: (u64, u64) = (100, 300);
/// Nonces a provider tries per puzzle before it gives up.
pub const PUZZLE_ATTEMPTS_MAX: u64 = 1 << 24;

struct MatrixWork {
    id: ChallengeId,
    ready_ms: u64,
    root: Hash32,
    /// The tile tree over the computed product; none for a bluffed root.
    tree: Option<TileTree>,
    commit_sent_ms: Option<u64>,
    open_sent_ms: Option<u64>,
}

#[derive(Default)]
pub(super) struct Challenges {
    matrix: Option<MatrixWork>,
    puzzle_sent: Option<(ChallengeId, u64)>,
}

/// The real tile tree of the challenge's product, tile by tile.
fn product_tree(challenge: &Challenge) -> Option<TileTree> {
    let matrix = challenge.matrix()?;
    let count = matrix.tile_count();
    let leaves = (0..count)
        .map(|index| {
            compute_tile(&matrix, index).map(|tile| merkle::leaf_value(index, count, &tile))
        })
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    TileTree::from_leaves(leaves).ok()
}

impl Provider {
    pub(super) fn answer_challenges(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let Some(record) = ctx.state.nodes.get(&node).map(|n| n.capacity.clone()) else { return };
        if let Some(challenge) = &record.matrix {
            match challenge.status {
                ChallengeStatus::Issued => self.commit_matrix(ctx, challenge),
                ChallengeStatus::Opening => self.open_matrix(ctx, challenge),
                _ => {}
            }
        }
        if let Some(puzzle) = record.puzzle.as_ref().filter(|p| p.status == ChallengeStatus::Issued)
        {
            self.solve(ctx, puzzle);
        }
    }

    /// Simulated time this machine needs for a challenge sized for `sized_for` units.
    fn compute_ms(&self, challenge: &Challenge) -> u64 {
        let sized = u128::from(challenge.sized_for.0.max(1));
        let real = u128::from(self.spec.units.max(1));
        let ms = u128::from(CHALLENGE_COMPUTE_MS) * sized / real;
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    fn start_matrix(&mut self, ctx: &mut Ctx<'_>, challenge: &Challenge) -> MatrixWork {
        let compute_ms = self.compute_ms(challenge);
        // A cheater answers honestly what it can answer in time; it cheats on the rest.
        let can = ctx.now.saturating_add(compute_ms) + POLL_SLACK_MS <= challenge.deadline_ms;
        let (ready_ms, tree) = match self.spec.behaviour {
            Behaviour::FakeCapacity { strategy: FakeStrategy::Bluff, .. } if !can => {
                (ctx.now + 100, None)
            }
            Behaviour::RelaysChallenges { relay_ms_min, relay_ms_max } => {
                let relay = ctx.rng.between(relay_ms_min, relay_ms_max);
                (ctx.now.saturating_add(compute_ms).saturating_add(relay), product_tree(challenge))
            }
            Behaviour::RelaySybil { .. } => {
                match self.relay_to_hidden(ctx, challenge, compute_ms) {
                    Some(ready_ms) => (ready_ms, product_tree(challenge)),
                    // The machine is booked past the deadline: not worth a bluff (slashed).
                    None => (u64::MAX, None),
                }
            }
            _ => (ctx.now.saturating_add(compute_ms), product_tree(challenge)),
        };
        let root = tree.as_ref().map(|t| Hash32(t.root())).unwrap_or_else(|| ctx.rng.hash());
        MatrixWork {
            id: challenge.id,
            ready_ms,
            root,
            tree,
            commit_sent_ms: None,
            open_sent_ms: None,
        }
    }

    /// Books the sybils' hidden machine for this challenge, if it can send the answer back in
    /// time: the challenge travels to it, waits for the challenges booked before, is computed and
    /// travels back. Returns when the answer is back.
    fn relay_to_hidden(
        &self,
        ctx: &mut Ctx<'_>,
        challenge: &Challenge,
        compute_ms: u64,
    ) -> Option<u64> {
        let machine = self.hidden.as_ref()?;
        let relay = ctx.rng.between(RELAY_HIDDEN_MS.0, RELAY_HIDDEN_MS.1);
        let mut machine = machine.borrow_mut();
        let start = machine.busy_until_ms.max(ctx.now.saturating_add(relay));
        let done = start.saturating_add(compute_ms);
        let back = done.saturating_add(relay);
        if back + POLL_SLACK_MS > challenge.deadline_ms {
            return None;
        }
        machine.busy_until_ms = done;
        Some(back)
    }

    fn commit_matrix(&mut self, ctx: &mut Ctx<'_>, challenge: &Challenge) {
        if self.challenges.matrix.as_ref().map(|w| w.id) != Some(challenge.id) {
            let work = self.start_matrix(ctx, challenge);
            self.challenges.matrix = Some(work);
        }
        let Some(work) = self.challenges.matrix.as_mut() else { return };
        // Past the deadline the answer is worthless: a rational node does not send it.
        if ctx.now < work.ready_ms || ctx.now > challenge.deadline_ms {
            return;
        }
        if !sent_recently(work.commit_sent_ms, ctx.now, RESEND_MS) {
            ctx.send(TxBody::ChallengeCommit { challenge: challenge.id, root: work.root });
            work.commit_sent_ms = Some(ctx.now);
        }
    }

    fn open_matrix(&mut self, ctx: &mut Ctx<'_>, challenge: &Challenge) {
        let known = self.challenges.matrix.as_ref().is_some_and(|w| w.id == challenge.id);
        if !known {
            // Restarted after committing: recompute the product (an honest node can).
            let tree = product_tree(challenge);
            let root = tree.as_ref().map(|t| Hash32(t.root())).unwrap_or_default();
            let work = MatrixWork {
                id: challenge.id,
                ready_ms: ctx.now,
                root,
                tree,
                commit_sent_ms: Some(ctx.now),
                open_sent_ms: None,
            };
            self.challenges.matrix = Some(work);
        }
        let Some(work) = self.challenges.matrix.as_mut() else { return };
        if sent_recently(work.open_sent_ms, ctx.now, RESEND_MS) {
            return;
        }
        let Some(drawn) = challenge.drawn_tiles() else { return };
        let count = challenge.matrix().map(|m| m.tile_count()).unwrap_or(0);
        let first = challenge.opened;
        let paths: Vec<Vec<Hash32>> = drawn
            .iter()
            .skip(first as usize)
            .take(OPENINGS_PER_TX_MAX)
            .map(|index| match &work.tree {
                Some(tree) => {
                    tree.path(*index).unwrap_or_default().into_iter().map(Hash32).collect()
                }
                // A bluffer has no tree: it sends paths of the right shape and hopes.
                None => (0..merkle::path_length(count, *index)).map(|_| ctx.rng.hash()).collect(),
            })
            .collect();
        if paths.is_empty() {
            return;
        }
        ctx.send(TxBody::ChallengeOpen { challenge: challenge.id, first, paths });
        work.open_sent_ms = Some(ctx.now);
    }

    fn solve(&mut self, ctx: &mut Ctx<'_>, puzzle: &Challenge) {
        let sent = self.challenges.puzzle_sent.filter(|(id, _)| *id == puzzle.id).map(|(_, at)| at);
        if sent_recently(sent, ctx.now, RESEND_MS) {
            return;
        }
        let posed = HashPuzzle { seed: puzzle.seed.0, difficulty: puzzle.difficulty };
        if let Ok(Some(nonce)) = solve_puzzle(&posed, 0, PUZZLE_ATTEMPTS_MAX) {
            ctx.send(TxBody::SubmitPuzzle { challenge: puzzle.id, nonce });
            self.challenges.puzzle_sent = Some((puzzle.id, ctx.now));
        }
    }
}
