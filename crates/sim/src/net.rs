//! The seeded network between simulated parties and the chain: every message is delayed by a
//! drawn amount, may be lost, and does not pass while either end is cut off by a partition.

use crate::rng::SimRng;
use serde::Serialize;

/// Who is at either end of a message: a party, or the chain's sequencer.
pub type PartyId = usize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkConfig {
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    /// Share of messages lost, in parts per million.
    pub loss_ppm: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig { delay_ms_min: 20, delay_ms_max: 400, loss_ppm: 10_000 }
    }
}

/// A party cut off from everyone (chain and other parties) during `[from_ms, until_ms)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub party: PartyId,
    pub from_ms: u64,
    pub until_ms: u64,
}

pub struct Network {
    config: NetworkConfig,
    partitions: Vec<Partition>,
    rng: SimRng,
    pub sent: u64,
    pub lost: u64,
}

impl Network {
    pub fn new(config: NetworkConfig, partitions: Vec<Partition>, seed: u64) -> Network {
        assert!(config.delay_ms_min <= config.delay_ms_max, "delay range is empty");
        Network { config, partitions, rng: SimRng::new(seed, "network"), sent: 0, lost: 0 }
    }

    /// Whether `party` can reach anyone at `now`.
    pub fn reachable(&self, party: PartyId, now: u64) -> bool {
        !self.partitions.iter().any(|p| p.party == party && (p.from_ms..p.until_ms).contains(&now))
    }

    /// When a message `party` sends at `now` to the chain arrives, or `None` if it is lost.
    pub fn to_chain(&mut self, party: PartyId, now: u64) -> Option<u64> {
        self.route(&[party], now)
    }

    /// When a message between two parties arrives, or `None` if it is lost.
    pub fn between(&mut self, from: PartyId, to: PartyId, now: u64) -> Option<u64> {
        self.route(&[from, to], now)
    }

    fn route(&mut self, ends: &[PartyId], now: u64) -> Option<u64> {
        self.sent += 1;
        // Draw both numbers whatever happens, so a partition does not shift later draws.
        let lost = self.rng.chance(self.config.loss_ppm);
        let delay = self.rng.between(self.config.delay_ms_min, self.config.delay_ms_max);
        let arrives = now + delay;
        let cut = ends.iter().any(|&p| !self.reachable(p, now) || !self.reachable(p, arrives));
        if lost || cut {
            self.lost += 1;
            return None;
        }
        Some(arrives)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitioned_party_neither_sends_nor_receives() {
        let partition = Partition { party: 1, from_ms: 1_000, until_ms: 5_000 };
        let config = NetworkConfig { loss_ppm: 0, ..NetworkConfig::default() };
        let mut net = Network::new(config, vec![partition], 3);
        assert!(net.to_chain(1, 2_000).is_none());
        assert!(net.between(0, 1, 2_000).is_none());
        assert!(net.to_chain(0, 2_000).is_some());
        let arrives = net.to_chain(1, 6_000).expect("healed");
        assert!((6_020..=6_400).contains(&arrives));
    }

    #[test]
    fn loss_rate_is_close_to_the_configured_share() {
        let config = NetworkConfig { loss_ppm: 100_000, ..NetworkConfig::default() };
        let mut net = Network::new(config, Vec::new(), 9);
        let lost = (0..10_000).filter(|_| net.to_chain(0, 0).is_none()).count();
        assert!((800..1_200).contains(&lost), "lost {lost} of 10000 at 10%");
    }
}
