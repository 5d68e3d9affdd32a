//! Indices derived from the nodes' challenge records, and the state's challenge queries.

use super::{challengeable, Challenge, ChallengeStatus};
use crate::state::{Node, State};
use aicpw_types::{ChallengeId, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Indices derived from the nodes' challenge records: never stored, never hashed.
#[derive(Clone, Debug, Default)]
pub struct ChallengeIndex {
    /// (due, node) for challengeable nodes.
    pub due: BTreeSet<(u64, NodeId)>,
    /// (deadline, challenge) for issued challenges and drawn openings.
    pub deadlines: BTreeSet<(u64, ChallengeId)>,
    /// (commit height, challenge) for commitments whose tiles are not drawn yet.
    pub draws: BTreeSet<(u64, ChallengeId)>,
    /// The node of every current challenge.
    pub nodes: BTreeMap<ChallengeId, NodeId>,
    /// Openings × n checked in the current block.
    pub verify_work_in_block: u64,
}

impl ChallengeIndex {
    /// Replaces what `old` contributed with what `new` does.
    pub fn update(&mut self, old: Option<&Node>, new: Option<&Node>) {
        if let Some(old) = old {
            self.due.remove(&(old.capacity.due_ms, old.id));
            for challenge in old.capacity.challenges() {
                self.nodes.remove(&challenge.id);
                self.draws.remove(&(challenge.committed_height, challenge.id));
                if let Some(deadline) = challenge.deadline() {
                    self.deadlines.remove(&(deadline, challenge.id));
                }
            }
        }
        let Some(new) = new else { return };
        if challengeable(new) {
            self.due.insert((new.capacity.due_ms, new.id));
        }
        for challenge in new.capacity.challenges() {
            self.nodes.insert(challenge.id, new.id);
            if challenge.status == ChallengeStatus::Committed {
                self.draws.insert((challenge.committed_height, challenge.id));
            }
            if let Some(deadline) = challenge.deadline() {
                self.deadlines.insert((deadline, challenge.id));
            }
        }
    }
}

impl State {
    /// Challenge `id`, if it is a node's current one.
    pub fn challenge(&self, id: ChallengeId) -> Option<&Challenge> {
        let node = self.nodes.get(self.index.challenge.nodes.get(&id)?)?;
        node.capacity.challenges().find(|challenge| challenge.id == id)
    }

    /// The current challenges of `node`, or of every node, in ascending ids after `after`, at
    /// most `limit`: a page of `GET /v1/challenges`.
    pub fn challenges(
        &self,
        node: Option<NodeId>,
        after: Option<ChallengeId>,
        limit: usize,
    ) -> Vec<&Challenge> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        match node {
            Some(node) => {
                let mut list: Vec<&Challenge> = self
                    .nodes
                    .get(&node)
                    .map(|node| node.capacity.challenges().collect())
                    .unwrap_or_default();
                list.sort_by_key(|challenge| challenge.id);
                list.retain(|challenge| after.is_none_or(|after| challenge.id > after));
                list.truncate(limit);
                list
            }
            None => self
                .index
                .challenge
                .nodes
                .range((from, Bound::Unbounded))
                .filter_map(|(id, _)| self.challenge(*id))
                .take(limit)
                .collect(),
        }
    }
}
