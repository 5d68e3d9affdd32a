//! Consistency checks of the index against the node table, for tests and simulations.

use crate::index::{BucketKey, Rank};
use crate::matcher::Status;
use crate::Matcher;

impl Matcher {
    /// Verifies that every online node sits in its bucket at its ranks with its current traits,
    /// that no other entry exists, that every list is well formed and canonically laid out, and
    /// that the counters agree. O(nodes × log nodes); meant for tests and simulations.
    pub fn check_index(&self) -> Result<(), String> {
        self.index.check()?;
        let mut offline = 0;
        let mut indexed = 0;
        for (&id, &slot) in &self.slots {
            let node = self.slot(slot);
            if node.offer.id != id {
                return Err(format!("slot {slot} holds node {} under id {id}", node.offer.id));
            }
            let hot = self.hot(slot);
            if hot.free != node.free() || hot.served != node.served() {
                return Err(format!("node {id}: stale hot state"));
            }
            let placed = match node.status {
                Status::Offline if node.offer.online => {
                    return Err(format!("node {id} is online but not indexed"))
                }
                Status::Offline => {
                    offline += 1;
                    continue;
                }
                Status::Indexed(_) if !node.offer.online => {
                    return Err(format!("node {id} is offline but indexed"))
                }
                Status::Indexed(placed) => placed,
            };
            indexed += 1;
            let bucket = self.index.bucket(placed.bucket);
            let model = self.index.models.find(&node.offer.hardware.gpu_model);
            if model.map(|model| BucketKey { model }) != Some(bucket.key) {
                return Err(format!("node {id} is in the wrong bucket"));
            }
            if self.index.regions.find(&node.offer.hardware.region) != Some(node.region) {
                return Err(format!("node {id} has a stale region"));
            }
            if placed.ranks != Rank::all(&node.offer, &node.free()) {
                return Err(format!("node {id} has stale ranks"));
            }
            let traits = node.traits(self.is_fresh(&node.offer));
            if traits != node.traits {
                return Err(format!("node {id} has stale traits"));
            }
            for (order, rank) in placed.ranks.iter().enumerate() {
                let entry = node.entry(slot, *rank);
                if bucket.orders[order].traits_of(&entry) != Some(traits) {
                    return Err(format!("node {id} is missing from list {order} or stale there"));
                }
            }
        }
        if offline != self.offline {
            return Err(format!("{offline} nodes offline, counter says {}", self.offline));
        }
        for order in 0..3 {
            let entries: usize = self.index.buckets().iter().map(|b| b.orders[order].len()).sum();
            if entries != indexed {
                return Err(format!("list {order} holds {entries} entries for {indexed} nodes"));
            }
        }
        Ok(())
    }
}
