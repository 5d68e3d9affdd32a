//! Simulated task execution: no sandbox, no I/O. A task's output is a deterministic function of
//! its inputs, and its cost is simulated time that depends on the task and the machine's speed.

use aicpw_types::{Hash32, TaskTerms};

/// Least and most work of a simulated task, in milliseconds on the reference machine.
pub const WORK_MS_MIN: u64 = 4_000;
pub const WORK_MS_MAX: u64 = 30_000;
/// Speed of the reference machine, in permille.
pub const SPEED_REFERENCE: u32 = 1_000;

fn digest(context: &str, terms: &TaskTerms) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    hasher.update(terms.inputs_cid.as_bytes());
    hasher.update(terms.name.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The output every honest execution of the task produces.
pub fn true_output(terms: &TaskTerms) -> Hash32 {
    digest("aicpw 2026-11 sim task output v1", terms)
}

/// What a provider that skipped the work reports: a plausible hash that is not the output.
pub fn forged_output(terms: &TaskTerms, forger: u64) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key("aicpw 2026-11 sim forged output v1");
    hasher.update(&true_output(terms).0);
    hasher.update(&forger.to_le_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// Share of tasks whose command exits with an error on every machine (the task's own fault).
pub const FAILING_PPM: u64 = 30_000;

/// Whether the task fails by itself wherever it runs: the provider reports a task fault.
pub fn exits_with_error(terms: &TaskTerms) -> bool {
    let digest = digest("aicpw 2026-11 sim task exit v1", terms);
    let draw = u64::from_le_bytes(digest.0[..8].try_into().unwrap_or([0; 8]));
    draw % 1_000_000 < FAILING_PPM
}

/// Work of the task on the reference machine.
pub fn work_ms(terms: &TaskTerms) -> u64 {
    let draw = u64::from_le_bytes(
        digest("aicpw 2026-11 sim task work v1", terms).0[..8].try_into().unwrap_or([0; 8]),
    );
    WORK_MS_MIN + draw % (WORK_MS_MAX - WORK_MS_MIN + 1)
}

/// How long the task runs on a machine of `speed_permille`.
pub fn run_ms(terms: &TaskTerms, speed_permille: u32) -> u64 {
    work_ms(terms) * u64::from(SPEED_REFERENCE) / u64::from(speed_permille.max(1))
}
