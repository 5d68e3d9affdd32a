//! The incremental index: buckets of nodes by GPU model, each holding one ordered list per
//! [`Order`] in summarized blocks.
//!
//! Only nodes that can take work (online, not saturated) are indexed. A placement visits the
//! buckets that can hold an eligible node, best first, and walks their lists from the best entry,
//! skipping whole blocks whose summary rules them out; most placements touch one or two buckets
//! and a few blocks.

use crate::blocks::{Blocks, Pos, Traits};
use crate::eligibility::Capacity;
use crate::NodeOffer;
use aicpw_types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way an index set lists nodes, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Cheapest first.
    Price,
    /// Highest reputation band first (bands of [`REPUTATION_BAND`] permille), then cheapest.
    Reputation,
    /// Fewest free GPUs, then least free memory, CPU and disk first: the tightest fit.
    Fit,
}

impl Order {
    pub const ALL: [Order; 3] = [Order::Price, Order::Reputation, Order::Fit];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Width of a reputation band, in permille: `ReputationFirst` prefers a higher band, and within
/// a band the cheaper node, so that a marginally better reputation does not outweigh any price.
pub const REPUTATION_BAND: u16 = 50;

/// Bits of the price inside a reputation rank (below the band).
const REPUTATION_PRICE_BITS: u32 = 53;

/// A node's place in one order, lower is better, packed in 64 bits so that index entries stay
/// small: the price (saturating at `u64::MAX` base units per hour); the reputation band above
/// the price (saturating at 2^53); or the power-of-two classes of free GPUs, memory, CPU and
/// disk. Nodes with equal ranks are equal offers: the search picks among them from the caller's
/// randomness, preferring the one that has served least, so that equal offers get work in
/// proportion over time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank(pub u64);

/// Power-of-two class of a capacity: 0 for 0, else 1 + log2 of the next power of two (<= 65).
fn class(value: u64) -> u64 {
    match value {
        0 => 0,
        _ => 1 + u64::from(value.checked_next_power_of_two().map_or(64, u64::trailing_zeros)),
    }
}

impl Rank {
    pub const MAX: Rank = Rank(u64::MAX);

    /// The ranks of a node in every order, given its free capacity.
    pub(crate) fn all(offer: &NodeOffer, free: &Capacity) -> [Rank; 3] {
        [
            Rank::price(offer.price_per_hour.0),
            Rank::reputation(offer.reputation_permille, offer.price_per_hour.0),
            Rank::fit(free),
        ]
    }

    pub(crate) fn price(price: u128) -> Rank {
        Rank(u64::try_from(price).unwrap_or(u64::MAX))
    }

    /// Rank of the band holding reputation `permille` at `price`.
    pub(crate) fn reputation(permille: u16, price: u128) -> Rank {
        // Bands are `permille / REPUTATION_BAND` (950..=999 is one), best first.
        let band = u64::from(u16::MAX / REPUTATION_BAND - permille / REPUTATION_BAND);
        let price_max = (1u64 << REPUTATION_PRICE_BITS) - 1;
        let price = u64::try_from(price).unwrap_or(u64::MAX).min(price_max);
        Rank((band << REPUTATION_PRICE_BITS) | price)
    }

    /// The last rank of this rank's reputation band at or below `price`.
    pub(crate) fn band_end(self, price: u128) -> Rank {
        let band = self.0 >> REPUTATION_PRICE_BITS;
        let price_max = (1u64 << REPUTATION_PRICE_BITS) - 1;
        let price = u64::try_from(price).unwrap_or(u64::MAX).min(price_max);
        Rank((band << REPUTATION_PRICE_BITS) | price)
    }

    /// The first rank of the next reputation band (the next lower reputation).
    pub(crate) fn next_band(self) -> Option<Rank> {
        let band = (self.0 >> REPUTATION_PRICE_BITS).checked_add(1)?;
        band.checked_shl(REPUTATION_PRICE_BITS)
            .filter(|r| r >> REPUTATION_PRICE_BITS == band)
            .map(Rank)
    }

    /// The last rank of the band holding reputation `permille`.
    pub(crate) fn band_last(permille: u16) -> Rank {
        Rank::reputation(permille, u128::MAX)
    }

    /// The fit rank: fewest free GPUs, then least memory, CPU and disk, each by its
    /// power-of-two class, so that a node moves in this order only when a class changes.
    pub(crate) fn fit(free: &Capacity) -> Rank {
        let gpus = class(u64::from(free.gpus));
        let memory = class(free.memory_mb);
        let cpu = class(u64::from(free.cpu_cores));
        let disk = class(free.disk_mb);
        Rank((gpus << 21) | (memory << 14) | (cpu << 7) | disk)
    }
}

/// One node in one ordered list. Tied nodes are ordered by `scramble` (a fixed bijection of the
/// id), from which a random starting point picks; `slot` is payload (ids are unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub rank: Rank,
    pub scramble: u64,
    pub id: NodeId,
    pub slot: u32,
}

/// Ordered by rank, scramble, id, slot; the first two, one 128-bit key, decide between any two
/// nodes' entries (the scramble is a bijection of the id), so a comparison is one wide compare.
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        let key = |e: &Entry| (u128::from(e.rank.0) << 64) | u128::from(e.scramble);
        key(self).cmp(&key(other)).then_with(|| (self.id, self.slot).cmp(&(other.id, other.slot)))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Entry {
    /// The entry of a node at `rank`.
    pub fn lowest(rank: Rank, scramble: u64) -> Entry {
        Entry { rank, scramble, id: NodeId(0), slot: 0 }
    }
    pub fn highest(rank: Rank, scramble: u64) -> Entry {
        Entry { rank, scramble, id: NodeId(u64::MAX), slot: u32::MAX }
    }
}

/// A 64-bit mixing bijection (the SplitMix64 finalizer).
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What the nodes of a bucket share: the GPU model, which a task names exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BucketKey {
    /// Interned GPU model name, lowercase ("" for none).
    pub model: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub key: BucketKey,
    /// One ordered list per [`Order`].
    pub orders: [Blocks; 3],
    /// Place in the canonical bucket order (by model name), which does not depend on the order
    /// nodes arrived in.
    pub canonical: u32,
}

impl Bucket {
    pub fn len(&self) -> usize {
        self.orders[0].len()
    }
}

/// Names interned case-insensitively (GPU models, regions); an id never changes meaning.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    /// Lowercase names by id.
    names: Vec<String>,
    /// Ids by name: the lowercase name and every spelling seen.
    ids: BTreeMap<String, u32>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if let Some(id) = self.find(name) {
            // Remember this spelling too, so that the next lookup needs no lowercase copy.
            self.ids.insert(name.to_string(), id);
            return id;
        }
        let lower = name.to_ascii_lowercase();
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(lower.clone());
        self.ids.insert(lower, id);
        id
    }

    /// The id of a name as a task spells it, matched case-insensitively.
    pub fn find(&self, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        self.ids.get(&name.to_ascii_lowercase()).copied()
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    /// Interned GPU model names.
    pub models: Names,
    /// Interned region names: nodes carry theirs in their [`Traits`], so that a search checks
    /// a task's region without looking the node up.
    pub regions: Names,
    buckets: Vec<Bucket>,
    bucket_ids: BTreeMap<BucketKey, u32>,
}

impl Index {
    pub fn bucket_id(&mut self, key: BucketKey) -> u32 {
        if let Some(id) = self.bucket_ids.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.buckets.len()).expect("fewer than 2^32 buckets");
        self.buckets.push(Bucket { key, orders: Default::default(), canonical: 0 });
        self.bucket_ids.insert(key, id);
        let mut order: Vec<u32> = (0..=id).collect();
        order.sort_by(|a, b| {
            let (a, b) = (self.buckets[*a as usize].key, self.buckets[*b as usize].key);
            self.models.names[a.model as usize].cmp(&self.models.names[b.model as usize])
        });
        for (position, bucket) in order.into_iter().enumerate() {
            self.buckets[bucket as usize].canonical = position as u32;
        }
        id
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    pub fn bucket(&self, id: u32) -> &Bucket {
        &self.buckets[id as usize]
    }

    /// Inserts a node's entries; returns where they went, as hints for later updates.
    pub fn insert(&mut self, bucket: u32, entries: &[Entry; 3], traits: Traits) -> [Pos; 3] {
        let bucket = &mut self.buckets[bucket as usize];
        [0, 1, 2].map(|order| bucket.orders[order].insert(entries[order], traits))
    }

    pub fn remove(&mut self, bucket: u32, entries: &[Entry; 3], hints: &[Pos; 3]) {
        let bucket = &mut self.buckets[bucket as usize];
        for (order, entry) in entries.iter().enumerate() {
            let removed = bucket.orders[order].remove(hints[order], entry);
            assert!(removed, "node {} missing from its bucket", entry.id);
        }
    }

    /// Replaces the traits of a node's entry that did not move; returns where it is.
    pub fn update(&mut self, bucket: u32, order: usize, at: (Pos, &Entry), traits: Traits) -> Pos {
        let updated = self.buckets[bucket as usize].orders[order].update(at.0, at.1, traits);
        updated.unwrap_or_else(|| panic!("node {} missing from its bucket", at.1.id))
    }

    /// Moves one entry of a node within its bucket; returns where it went.
    pub fn reorder(
        &mut self,
        bucket: u32,
        order: usize,
        from: (Pos, &Entry),
        to: Entry,
        traits: Traits,
    ) -> Pos {
        let list = &mut self.buckets[bucket as usize].orders[order];
        let removed = list.remove(from.0, from.1);
        assert!(removed, "node {} missing from its bucket", from.1.id);
        list.insert(to, traits)
    }

    /// Checks every list; for tests.
    pub fn check(&self) -> Result<(), String> {
        for bucket in &self.buckets {
            for list in &bucket.orders {
                list.check()?;
            }
        }
        Ok(())
    }
}
