//! Honest nodes under stress beyond the outages of `honest`: slow disks and outputs that differ
//! by machine.

use super::{honest_setup, run, SHORT_OUTAGE_MS};
use crate::report::RunReport;
use crate::setup::SlowDisk;
use aicpw_types::task::CompareMode;

/// `honest` (crashes, a partition, up to 5% message loss, slow nodes) with two providers on slow
/// disks and two requesters whose tasks declare themselves non-deterministic.
pub fn honest_stress(seed: u64) -> RunReport {
    let (mut setup, mut rng) = honest_setup(seed, SHORT_OUTAGE_MS);
    let providers = setup.providers.len() as u64;
    setup.slow_disks = (0..2)
        .map(|_| SlowDisk {
            provider: rng.below(providers) as usize,
            factor_permille: rng.between(2_000, 4_000) as u32,
        })
        .collect();
    setup.requesters[1].nondeterministic = Some(CompareMode::Tolerance);
    setup.requesters[2].nondeterministic = Some(CompareMode::Committee);
    run("honest-stress", &setup, None, None)
}
