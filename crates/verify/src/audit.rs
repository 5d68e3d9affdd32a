//! Adaptive spot-check audits (BOINC's rule) and known-answer task injection.
//!
//! A provider with fewer than 10 clean results is audited on every task; after that with
//! probability `max(5%, 1/clean_streak)`; any failure resets the streak to zero, so audits go back
//! to 100%. Probabilities are parts per million. Draws are deterministic functions of randomness
//! fixed after the provider committed its result (e.g. the hash of the block that recorded the
//! commitment) and of the task id, each drawn under its own BLAKE3 derive-key context.

use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// One in parts per million.
pub const PPM: u32 = 1_000_000;
/// Derive-key context of the audit draw.
pub const AUDIT_CONTEXT: &str = "AICPW 2026-01 verify audit draw v1";
/// Derive-key context of the known-answer injection draw.
pub const KNOWN_ANSWER_CONTEXT: &str = "AICPW 2026-01 verify known-answer draw v1";
/// Derive-key context of the auditor choice.
pub const AUDITOR_CONTEXT: &str = "AICPW 2026-01 verify auditor choice v1";
/// Lowest known-answer injection rate a parameter set may use (1%).
pub const KNOWN_ANSWER_RATE_MIN_PPM: u32 = 10_000;
/// Highest known-answer injection rate a parameter set may use (2%).
pub const KNOWN_ANSWER_RATE_MAX_PPM: u32 = 20_000;

/// The spot-check policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPolicy {
    /// Below this clean streak every task is audited.
    pub streak_always: u32,
    /// The floor of the audit probability.
    pub rate_min_ppm: u32,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self { streak_always: 10, rate_min_ppm: 50_000 }
    }
}

impl AuditPolicy {
    /// Checks the ranges: a positive floor (zero would let a long streak go unaudited).
    pub fn validate(&self) -> Result<(), VerifyError> {
        if self.rate_min_ppm == 0 || self.rate_min_ppm > PPM {
            return Err(VerifyError::ParamsInvalid("audit rate floor must be in 1..=1_000_000"));
        }
        if self.streak_always == 0 {
            return Err(VerifyError::ParamsInvalid("streak_always must be at least 1"));
        }
        Ok(())
    }

    /// Audit probability for a provider with `clean_streak` clean results in a row.
    pub fn rate_ppm(&self, clean_streak: u32) -> u32 {
        if clean_streak < self.streak_always {
            return PPM;
        }
        (PPM / clean_streak.max(1)).max(self.rate_min_ppm).min(PPM)
    }
}

/// Whether task `task_id` is audited at `rate_ppm` (e.g. [`AuditPolicy::rate_ppm`]).
pub fn audited(rate_ppm: u32, randomness: &[u8; 32], task_id: u64) -> bool {
    draw_ppm(AUDIT_CONTEXT, randomness, task_id) < rate_ppm
}

/// The streak after one more audited result: one longer if clean, zero after any failure.
pub fn next_clean_streak(clean_streak: u32, passed: bool) -> u32 {
    if passed {
        clean_streak.saturating_add(1)
    } else {
        0
    }
}

/// Injection of tasks whose answer the network already knows, to catch lazy providers and
/// lazy auditors alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownAnswerPolicy {
    /// Share of assignment slots that carry a known-answer task.
    pub injection_rate_ppm: u32,
}

impl Default for KnownAnswerPolicy {
    fn default() -> Self {
        Self { injection_rate_ppm: 15_000 }
    }
}

impl KnownAnswerPolicy {
    /// Checks that the rate is within 1–2%.
    pub fn validate(&self) -> Result<(), VerifyError> {
        let range = KNOWN_ANSWER_RATE_MIN_PPM..=KNOWN_ANSWER_RATE_MAX_PPM;
        if !range.contains(&self.injection_rate_ppm) {
            return Err(VerifyError::ParamsInvalid("known-answer rate must be within 1%..=2%"));
        }
        Ok(())
    }

    /// Whether assignment slot `slot` carries a known-answer task.
    pub fn should_inject(&self, randomness: &[u8; 32], slot: u64) -> bool {
        draw_ppm(KNOWN_ANSWER_CONTEXT, randomness, slot) < self.injection_rate_ppm
    }
}

fn draw_reader(context: &str, randomness: &[u8; 32], id: u64) -> blake3::OutputReader {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    hasher.update(randomness);
    hasher.update(&id.to_le_bytes());
    hasher.finalize_xof()
}

/// A uniform draw in `0..PPM`: the first 64 bits of the draw, scaled by multiply-and-shift
/// (bias below `2^-44`, irrelevant for a probability in parts per million).
pub fn draw_ppm(context: &str, randomness: &[u8; 32], id: u64) -> u32 {
    let mut bytes = [0u8; 8];
    draw_reader(context, randomness, id).fill(&mut bytes);
    ((u128::from(u64::from_le_bytes(bytes)) * u128::from(PPM)) >> 64) as u32
}

/// Picks the auditor of task `task_id` uniformly among `candidates` (which must exclude the
/// provider itself), by rejection sampling; `None` if there is no candidate.
pub fn pick_auditor(randomness: &[u8; 32], task_id: u64, candidates: usize) -> Option<usize> {
    let count = u64::try_from(candidates).ok().filter(|count| *count > 0)?;
    let limit = u64::MAX - u64::MAX % count;
    let mut reader = draw_reader(AUDITOR_CONTEXT, randomness, task_id);
    loop {
        let mut bytes = [0u8; 8];
        reader.fill(&mut bytes);
        let draw = u64::from_le_bytes(bytes);
        if draw < limit {
            return usize::try_from(draw % count).ok();
        }
    }
}
