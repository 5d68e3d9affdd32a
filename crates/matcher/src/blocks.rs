//! An ordered list of index entries in small sorted blocks, each with a summary of what its nodes
//! offer (most free capacity, stake, proven units and reputation, lowest price). A search skips a
//! whole block whose summary cannot meet the task, so cheap-but-small or busy nodes ahead in
//! price order cost one check per block instead of one per node.

use crate::index::{mix64, Entry};
pub(crate) use crate::traits::{Filter, Traits, CONTAINERS, NETWORK, NEW_PROVIDER, TEE};

#[derive(Clone, Debug, Default)]
struct Block {
    entries: Vec<Entry>,
    traits: Vec<Traits>,
}

impl Block {
    fn summary(&self) -> Traits {
        let mut summary = Traits::EMPTY;
        self.traits.iter().for_each(|t| summary.widen(t));
        summary
    }
}

/// Expected entries per block: an entry starts a block when its hash is 0 modulo this. Block
/// boundaries thus depend only on which entries the list holds, never on the order they came
/// in, so a matcher rebuilt from the ledger's tables has the same blocks, does the same work
/// and reaches the same bounds as one updated incrementally.
pub(crate) const BLOCK_TARGET: u64 = 32;

/// Blocks per group; a group has a summary too, so a search skips about 1,000 entries at once.
pub(crate) const GROUP_BLOCKS: usize = 32;

fn starts_block(entry: &Entry) -> bool {
    mix64(entry.scramble ^ 0xb10c_b10c).is_multiple_of(BLOCK_TARGET)
}

/// A position in a [`Blocks`] list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub block: usize,
    pub index: usize,
}

/// A sorted list in blocks, with block and group summaries kept in flat arrays so that skipping
/// reads contiguous memory. Summaries are exact.
#[derive(Clone, Debug, Default)]
pub(crate) struct Blocks {
    blocks: Vec<Block>,
    /// The first entry of each block, for a cache-friendly binary search.
    firsts: Vec<Entry>,
    summaries: Vec<Traits>,
    /// Summary and entry count of each group of `GROUP_BLOCKS` consecutive blocks.
    groups: Vec<Traits>,
    group_lens: Vec<usize>,
    /// Summary of the whole list, so that a search skips a list that cannot hold the task.
    total: Traits,
    len: usize,
}

impl Blocks {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn first(&self) -> Option<&Entry> {
        self.firsts.first()
    }

    /// The summary of every entry.
    pub fn total(&self) -> &Traits {
        &self.total
    }

    /// The block that holds `entry`, or would: the last block starting at or before it.
    fn locate(&self, entry: &Entry) -> usize {
        self.firsts.partition_point(|first| first <= entry).max(1) - 1
    }

    /// Where `entry` is: at `hint` if it still is there, else in the hint's block if that
    /// still spans it (entries moved up or down in it), else found by binary search.
    fn find(&self, hint: Pos, entry: &Entry) -> Option<Pos> {
        let hinted = self.blocks.get(hint.block).map(|b| &b.entries[..]);
        if hinted.and_then(|entries| entries.get(hint.index)) == Some(entry) {
            return Some(hint);
        }
        if let Some(entries) = hinted {
            if entries.first().is_some_and(|first| first <= entry)
                && entries.last().is_some_and(|last| entry <= last)
            {
                let index = entries.binary_search(entry).ok()?;
                return Some(Pos { block: hint.block, index });
            }
        }
        if self.blocks.is_empty() {
            return None;
        }
        let block = self.locate(entry);
        let index = self.blocks[block].entries.binary_search(entry).ok()?;
        Some(Pos { block, index })
    }

    /// Inserts an entry; returns where it went (a hint for later updates).
    pub fn insert(&mut self, entry: Entry, traits: Traits) -> Pos {
        self.len += 1;
        if self.blocks.is_empty() {
            let block = Block { entries: vec![entry], traits: vec![traits] };
            self.summaries.push(block.summary());
            self.blocks.push(block);
            self.firsts.push(entry);
            self.regroup_from(0);
            return Pos { block: 0, index: 0 };
        }
        let b = self.locate(&entry);
        let block = &mut self.blocks[b];
        let at = block.entries.partition_point(|e| *e < entry);
        assert!(block.entries.get(at) != Some(&entry), "entry {entry:?} inserted twice");
        block.entries.insert(at, entry);
        block.traits.insert(at, traits);
        self.firsts[b] = block.entries[0];
        if at > 0 && starts_block(&entry) {
            self.split(b, at);
            return Pos { block: b + 1, index: 0 };
        }
        if at == 0 && block.entries.len() > 1 && starts_block(&block.entries[1]) {
            self.split(b, 1);
        } else {
            self.summaries[b].widen(&traits);
            self.groups[b / GROUP_BLOCKS].widen(&traits);
            self.group_lens[b / GROUP_BLOCKS] += 1;
            self.total.widen(&traits);
        }
        Pos { block: b, index: at }
    }

    fn split(&mut self, b: usize, at: usize) {
        let block = &mut self.blocks[b];
        let upper =
            Block { entries: block.entries.split_off(at), traits: block.traits.split_off(at) };
        self.summaries[b] = block.summary();
        self.firsts.insert(b + 1, upper.entries[0]);
        self.summaries.insert(b + 1, upper.summary());
        self.blocks.insert(b + 1, upper);
        self.regroup_from(b);
    }

    /// Removes `entry` (looked for at `hint` first); false if it is absent.
    pub fn remove(&mut self, hint: Pos, entry: &Entry) -> bool {
        let Some(Pos { block: b, index: at }) = self.find(hint, entry) else { return false };
        let block = &mut self.blocks[b];
        block.entries.remove(at);
        let traits = block.traits.remove(at);
        self.len -= 1;
        if block.entries.is_empty() {
            self.blocks.remove(b);
            self.firsts.remove(b);
            self.summaries.remove(b);
            self.regroup_from(b);
        } else if at == 0 && b > 0 {
            let tail = self.blocks.remove(b);
            self.firsts.remove(b);
            self.summaries.remove(b);
            let previous = &mut self.blocks[b - 1];
            previous.entries.extend(tail.entries);
            previous.traits.extend(tail.traits);
            self.summaries[b - 1] = previous.summary();
            self.regroup_from(b - 1);
        } else {
            self.firsts[b] = block.entries[0];
            self.group_lens[b / GROUP_BLOCKS] -= 1;
            self.refresh(b, &traits, None);
        }
        true
    }

    /// Replaces the traits of an entry (looked for at `hint` first) in place; returns where it
    /// is, or `None` if it is absent.
    pub fn update(&mut self, hint: Pos, entry: &Entry, traits: Traits) -> Option<Pos> {
        let pos = self.find(hint, entry)?;
        let b = pos.block;
        let old = std::mem::replace(&mut self.blocks[b].traits[pos.index], traits);
        self.refresh(b, &old, Some(&traits));
        Some(pos)
    }

    /// Brings block `b`'s summary (and its group's) up to date after `old` left it, replaced by
    /// `new` if given: widens by `new`, recomputes only the dimensions `old` bounded.
    fn refresh(&mut self, b: usize, old: &Traits, new: Option<&Traits>) {
        let before = self.summaries[b];
        let stale = before.stale(old, new);
        let summary = &mut self.summaries[b];
        if let Some(new) = new {
            summary.widen(new);
        }
        if stale != 0 {
            summary.recompute(stale, &self.blocks[b].traits);
        }
        let after = *summary;
        if after == before {
            return;
        }
        let group = b / GROUP_BLOCKS;
        if stale == 0 {
            self.groups[group].widen(&after);
            self.total.widen(&after);
        } else {
            let start = group * GROUP_BLOCKS;
            let end = (start + GROUP_BLOCKS).min(self.blocks.len());
            let mut merged = Traits::EMPTY;
            self.summaries[start..end].iter().for_each(|s| merged.widen(s));
            if std::mem::replace(&mut self.groups[group], merged) != merged {
                self.retotal();
            }
        }
    }

    fn retotal(&mut self) {
        let mut total = Traits::EMPTY;
        self.groups.iter().for_each(|g| total.widen(g));
        self.total = total;
    }

    fn regroup(&mut self, group: usize) {
        let start = group * GROUP_BLOCKS;
        let end = (start + GROUP_BLOCKS).min(self.blocks.len());
        let mut summary = Traits::EMPTY;
        self.summaries[start..end].iter().for_each(|s| summary.widen(s));
        self.groups[group] = summary;
        self.group_lens[group] = self.blocks[start..end].iter().map(|b| b.entries.len()).sum();
    }

    /// Recomputes the groups from the one holding block `b` on, after blocks moved.
    fn regroup_from(&mut self, b: usize) {
        let groups = self.blocks.len().div_ceil(GROUP_BLOCKS);
        self.groups.resize(groups, Traits::EMPTY);
        self.group_lens.resize(groups, 0);
        for group in b / GROUP_BLOCKS..groups {
            self.regroup(group);
        }
        self.retotal();
    }

    /// The first position at or after `from` whose entry is at least `key`: searched in `from`'s
    /// block first, where a walk usually finds it.
    pub fn seek_from(&self, from: Pos, key: &Entry) -> Pos {
        if let Some(block) = self.blocks.get(from.block) {
            if block.entries.last().is_some_and(|last| last >= key) {
                let tail = &block.entries[from.index.min(block.entries.len())..];
                let index = from.index + tail.partition_point(|e| e < key);
                return Pos { block: from.block, index };
            }
        }
        self.seek(key)
    }

    /// The first position whose entry is at least `key`.
    pub fn seek(&self, key: &Entry) -> Pos {
        if self.firsts.first().is_none_or(|first| key <= first) {
            return Pos { block: 0, index: 0 };
        }
        let block = self.locate(key);
        let index = self.blocks[block].entries.partition_point(|e| e < key);
        if index == self.blocks[block].entries.len() {
            return Pos { block: block + 1, index: 0 };
        }
        Pos { block, index }
    }

    /// The first entry and length of block `block`, from the flat arrays.
    pub fn block_start(&self, block: usize) -> Option<(&Entry, usize)> {
        Some((self.firsts.get(block)?, 0))
    }

    pub fn next_block(&self, pos: Pos) -> Pos {
        Pos { block: pos.block + 1, index: 0 }
    }

    /// The entries of block `block` and their traits, side by side.
    pub fn block_entries(&self, block: usize) -> (&[Entry], &[Traits]) {
        self.blocks.get(block).map_or((&[], &[]), |b| (&b.entries, &b.traits))
    }

    pub fn at(&self, pos: Pos) -> Option<(&Entry, &Traits)> {
        let block = self.blocks.get(pos.block)?;
        Some((block.entries.get(pos.index)?, &block.traits[pos.index]))
    }

    pub fn next(&self, pos: Pos) -> Pos {
        if pos.index + 1 < self.blocks.get(pos.block).map_or(0, |b| b.entries.len()) {
            Pos { index: pos.index + 1, ..pos }
        } else {
            Pos { block: pos.block + 1, index: 0 }
        }
    }

    /// The entry before `pos`, if any.
    pub fn before(&self, pos: Pos) -> Option<&Entry> {
        if pos.index > 0 {
            return self.blocks.get(pos.block)?.entries.get(pos.index - 1);
        }
        self.blocks.get(pos.block.checked_sub(1)?)?.entries.last()
    }

    /// At the start of a group: its summary, entry count and the position after it.
    pub fn group_at(&self, pos: Pos) -> Option<(&Traits, usize, Pos)> {
        if pos.index != 0 || !pos.block.is_multiple_of(GROUP_BLOCKS) {
            return None;
        }
        let group = pos.block / GROUP_BLOCKS;
        let after = Pos { block: pos.block + GROUP_BLOCKS, index: 0 };
        Some((self.groups.get(group)?, self.group_lens[group], after))
    }

    /// How many entries lie from `from` (inclusive) to `to` (exclusive), counted by blocks.
    pub fn count_between(&self, from: Pos, to: Pos) -> usize {
        if from.block >= to.block {
            return to.index.saturating_sub(from.index);
        }
        let first = self.blocks.get(from.block).map_or(0, |b| b.entries.len()) - from.index;
        let middle: usize = self.blocks[from.block + 1..to.block.min(self.blocks.len())]
            .iter()
            .map(|b| b.entries.len())
            .sum();
        first + middle + to.index
    }

    /// The position `count` entries after `pos`, stepping over whole blocks.
    pub fn advance(&self, mut pos: Pos, mut count: usize) -> Pos {
        while let Some(block) = self.blocks.get(pos.block) {
            let left = block.entries.len() - pos.index;
            if count < left {
                return Pos { index: pos.index + count, ..pos };
            }
            count -= left;
            pos = Pos { block: pos.block + 1, index: 0 };
        }
        pos
    }

    /// The summary of the block at `pos`, its entry count from `pos` on, and the position after.
    pub fn block_at(&self, pos: Pos) -> (&Traits, usize, Pos) {
        let rest = self.blocks[pos.block].entries.len() - pos.index;
        (&self.summaries[pos.block], rest, Pos { block: pos.block + 1, index: 0 })
    }

    /// The traits stored with `entry`, if present.
    pub fn traits_of(&self, entry: &Entry) -> Option<Traits> {
        let pos = self.find(Pos::default(), entry)?;
        Some(self.blocks[pos.block].traits[pos.index])
    }

    /// Every entry with its position.
    pub fn positions(&self) -> impl Iterator<Item = (Pos, &Entry)> {
        self.blocks.iter().enumerate().flat_map(|(block, b)| {
            b.entries.iter().enumerate().map(move |(index, entry)| (Pos { block, index }, entry))
        })
    }

    /// Every entry in order; for tests.
    #[cfg(test)]
    pub fn entries(&self) -> Vec<Entry> {
        self.blocks.iter().flat_map(|b| b.entries.iter().copied()).collect()
    }

    /// The first entry of every block; for tests of the canonical layout.
    #[cfg(test)]
    pub fn block_firsts(&self) -> Vec<Entry> {
        self.firsts.clone()
    }

    /// Checks the block structure, summaries and the canonical layout; for tests.
    pub fn check(&self) -> Result<(), String> {
        let mut previous: Option<&Entry> = None;
        let mut count = 0;
        for (b, block) in self.blocks.iter().enumerate() {
            if block.entries.is_empty() || block.entries.len() != block.traits.len() {
                return Err(format!("block {b} is empty or ragged"));
            }
            if self.firsts[b] != block.entries[0] || block.summary() != self.summaries[b] {
                return Err(format!("block {b}: stale first entry or summary"));
            }
            for (index, entry) in block.entries.iter().enumerate() {
                if previous.is_some_and(|p| p >= entry) {
                    return Err(format!("block {b}: entries out of order"));
                }
                if starts_block(entry) != (index == 0 && b > 0) && !(b == 0 && index == 0) {
                    return Err(format!("block {b}: layout is not canonical at {index}"));
                }
                previous = Some(entry);
                count += 1;
            }
        }
        for (group, summary) in self.groups.iter().enumerate() {
            let start = group * GROUP_BLOCKS;
            let end = (start + GROUP_BLOCKS).min(self.blocks.len());
            let mut expected = Traits::EMPTY;
            self.summaries[start..end].iter().for_each(|s| expected.widen(s));
            let len: usize = self.blocks[start..end].iter().map(|b| b.entries.len()).sum();
            if expected != *summary || len != self.group_lens[group] {
                return Err(format!("group {group}: stale summary or length"));
            }
        }
        let groups = self.blocks.len().div_ceil(GROUP_BLOCKS);
        if self.groups.len() != groups || self.group_lens.len() != groups {
            return Err("group count mismatch".into());
        }
        let mut total = Traits::EMPTY;
        self.groups.iter().for_each(|g| total.widen(g));
        if !self.groups.is_empty() && total != self.total {
            return Err("stale total summary".into());
        }
        if count != self.len || self.firsts.len() != self.blocks.len() {
            return Err("length mismatch".into());
        }
        Ok(())
    }
}
