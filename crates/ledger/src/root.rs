//! The state root: a lattice hash (LtHash) over every state entry, updated incrementally.
//!
//! Each entry's canonical bytes are expanded by BLAKE3's XOF to 1024 16-bit lanes; the state's
//! accumulator is the lane-wise sum (mod 2^16) of all entries. Changing an entry subtracts its old
//! expansion and adds its new one, so a block costs O(entries it changed), never a rehash of the
//! whole state. The published root is BLAKE3 of the accumulator.

use aicpw_types::Hash32;

const LANES: usize = 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash { lanes: Box::new([0; LANES]) }
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.root())
    }
}

fn expand(entry: &[u8]) -> [u8; LANES * 2] {
    let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 state entry lthash");
    hasher.update(entry);
    let mut out = [0u8; LANES * 2];
    hasher.finalize_xof().fill(&mut out);
    out
}

impl LtHash {
    pub fn add(&mut self, entry: &[u8]) {
        let bytes = expand(entry);
        for (lane, pair) in self.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = lane.wrapping_add(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }
    pub fn remove(&mut self, entry: &[u8]) {
        let bytes = expand(entry);
        for (lane, pair) in self.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = lane.wrapping_sub(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }
    pub fn root(&self) -> Hash32 {
        let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 state root");
        for lane in self.lanes.iter() {
            hasher.update(&lane.to_le_bytes());
        }
        Hash32(*hasher.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_depends_on_the_set_of_entries_not_their_order() {
        let mut a = LtHash::default();
        a.add(b"x");
        a.add(b"y");
        let mut b = LtHash::default();
        b.add(b"y");
        b.add(b"x");
        assert_eq!(a.root(), b.root());
        b.remove(b"y");
        assert_ne!(a.root(), b.root());
        b.remove(b"x");
        assert_eq!(b.root(), LtHash::default().root());
    }
}
