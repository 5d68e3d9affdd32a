//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;

use sha2::{Digest, Sha256};

/// The byte stream kubo's test harness feeds to `ipfs add` for its deterministic vectors
/// (`DeterministicRandomReaderBytes` in kubo's test/cli/testutils/random_deterministic.go):
/// the ChaCha20 (RFC 8439) keystream under key `sha256(seed)`, zero nonce, counter from 0.
pub struct DeterministicBytes {
    key: [u32; 8],
    counter: u32,
    block: [u8; 64],
    position: usize,
    remaining: u64,
}

impl DeterministicBytes {
    pub fn new(seed: &str, length: u64) -> Self {
        let digest = Sha256::digest(seed.as_bytes());
        Self::with_key(digest.into(), length)
    }

    pub fn with_key(key_bytes: [u8; 32], length: u64) -> Self {
        let mut key = [0u32; 8];
        for (word, bytes) in key.iter_mut().zip(key_bytes.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        DeterministicBytes { key, counter: 0, block: [0; 64], position: 64, remaining: length }
    }

    fn refill(&mut self) {
        let mut initial = [0u32; 16];
        initial[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        initial[4..12].copy_from_slice(&self.key);
        initial[12] = self.counter;
        let mut state = initial;
        for _ in 0..10 {
            for [a, b, c, d] in [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]] {
                quarter_round(&mut state, a, b, c, d);
            }
            for [a, b, c, d] in [[0, 5, 10, 15], [1, 6, 11, 12], [2, 7, 8, 13], [3, 4, 9, 14]] {
                quarter_round(&mut state, a, b, c, d);
            }
        }
        for (index, word) in state.iter().enumerate() {
            let sum = word.wrapping_add(initial[index]);
            self.block[index * 4..index * 4 + 4].copy_from_slice(&sum.to_le_bytes());
        }
        self.counter += 1;
        self.position = 0;
    }
}

fn quarter_round(state: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(16);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(12);
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(8);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(7);
}

impl Read for DeterministicBytes {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written < out.len() && self.remaining > 0 {
            if self.position == 64 {
                self.refill();
            }
            let available = (64 - self.position).min(out.len() - written);
            let count = available.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            out[written..written + count]
                .copy_from_slice(&self.block[self.position..self.position + count]);
            self.position += count;
            written += count;
            self.remaining -= count as u64;
        }
        Ok(written)
    }
}

/// A cheap non-repeating pattern for round trips (not a published vector).
pub fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index.wrapping_mul(31) ^ (index >> 11)) as u8).collect()
}

pub fn deterministic(seed: &str, length: u64) -> Vec<u8> {
    let mut out = Vec::new();
    DeterministicBytes::new(seed, length).read_to_end(&mut out).expect("in-memory reader");
    out
}
