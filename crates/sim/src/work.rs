//! Simulated task execution: no sandbox, no I/O. A task's output is a deterministic function of
//! its inputs, and its cost is simulated time that depends on the task and the machine's speed.

use aicpw_types::task::{CompareMode, Nondeterminism};
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

/// Classes of honest machines that agree on a non-deterministic task's output within a class and
/// differ between classes (floating-point reduction order, GPU kernels, library versions).
pub const OUTPUT_CLASSES: u64 = 3;
/// The tolerance a simulated non-deterministic task declares: 0.001 on its final loss.
pub const TOLERANCE_MICROS: u64 = 1_000;

/// What a simulated non-deterministic task declares (`TaskTerms::nondeterministic`): its run
/// writes its final loss to `metrics.json`, compared within `TOLERANCE_MICROS`, in `mode`.
pub fn nondeterminism(mode: CompareMode) -> Nondeterminism {
    Nondeterminism { summary: "metrics.json".into(), tolerance_micros: TOLERANCE_MICROS, mode }
}

/// Whether the task's honest outputs depend on the machine: the tasks that declare it.
pub fn is_nondeterministic(terms: &TaskTerms) -> bool {
    terms.nondeterministic.is_some()
}

/// The summary a run that produced `output` writes (empty for a deterministic task): the final
/// loss, in micro-units. Honest machine classes land within a third of the tolerance of the
/// true loss (so within the tolerance of each other); any other output (a forgery, which skipped
/// the training) reports a loss several tolerances away.
pub fn summary(terms: &TaskTerms, output: &Hash32) -> Vec<i64> {
    if !is_nondeterministic(terms) {
        return Vec::new();
    }
    let truth = true_output(terms);
    let draw = u64::from_le_bytes(truth.0[..8].try_into().unwrap_or([0; 8]));
    let loss = 100_000 + (draw % 900_000) as i64;
    let step = (TOLERANCE_MICROS / 3) as i64;
    let class = (0..OUTPUT_CLASSES).find(|c| honest_output(terms, *c) == *output);
    match class {
        Some(class) => vec![loss + (class as i64 - 1) * step],
        None => {
            let forged = u64::from_le_bytes(output.0[..8].try_into().unwrap_or([0; 8]));
            vec![loss + (5 + (forged % 100) as i64) * TOLERANCE_MICROS as i64]
        }
    }
}

/// The output an honest machine of output class `class` produces: the task's one true output,
/// or for a non-deterministic task one per class.
pub fn honest_output(terms: &TaskTerms, class: u64) -> Hash32 {
    let truth = true_output(terms);
    if !is_nondeterministic(terms) {
        return truth;
    }
    let mut hasher =
        blake3::Hasher::new_derive_key("aicpw 2026-12 sim machine-dependent output v1");
    hasher.update(&truth.0);
    hasher.update(&(class % OUTPUT_CLASSES).to_le_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// Whether some honest machine produces `output` for the task.
pub fn is_right(terms: &TaskTerms, output: &Hash32) -> bool {
    (0..OUTPUT_CLASSES).any(|class| honest_output(terms, class) == *output)
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

/// A run that finishes with this margin before its task's time limit is not stretched further by
/// a slow disk: the simulation's slow disks are honest, only slower than nominal.
pub const SLOW_RUN_MARGIN_MS: u64 = 15_000;

/// How long a run of `run_ms` takes on a disk that stretches it by `disk_permille`: at most
/// until `SLOW_RUN_MARGIN_MS` before the task's time limit (never shorter than `run_ms`).
pub fn slowed(run_ms: u64, disk_permille: u32) -> u64 {
    let limit_ms = crate::setup::TASK_TIME_LIMIT_SECS * 1_000 - SLOW_RUN_MARGIN_MS;
    let stretched = run_ms * u64::from(disk_permille) / u64::from(SPEED_REFERENCE);
    stretched.min(limit_ms).max(run_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::task_terms;
    use aicpw_types::Verification;

    #[test]
    fn a_nondeterministic_task_has_one_output_per_machine_class() {
        let terms = |name: &str| task_terms(name.into(), 1, Verification::Audit, "");
        let mut nondeterministic = terms("r0-t0");
        nondeterministic.nondeterministic = Some(nondeterminism(CompareMode::Tolerance));
        assert!(is_nondeterministic(&nondeterministic));
        let outputs: Vec<Hash32> =
            (0..OUTPUT_CLASSES).map(|c| honest_output(&nondeterministic, c)).collect();
        assert!(outputs.iter().all(|o| *o != true_output(&nondeterministic)));
        assert_ne!(outputs[0], outputs[1]);
        assert_ne!(outputs[1], outputs[2]);
        assert_eq!(honest_output(&nondeterministic, OUTPUT_CLASSES), outputs[0]);
        assert!(outputs.iter().all(|o| is_right(&nondeterministic, o)));
        assert!(!is_right(&nondeterministic, &forged_output(&nondeterministic, 5)));
        let rule = nondeterminism(CompareMode::Tolerance);
        let honest: Vec<Vec<i64>> = outputs.iter().map(|o| summary(&nondeterministic, o)).collect();
        assert!(honest.iter().all(|a| honest.iter().all(|b| rule.agree(a, b))), "{honest:?}");
        let forged = summary(&nondeterministic, &forged_output(&nondeterministic, 5));
        assert!(honest.iter().all(|h| !rule.agree(h, &forged)), "a forgery is outside");

        let deterministic = terms("r0-t0");
        assert!(!is_nondeterministic(&deterministic));
        let truth = true_output(&deterministic);
        assert!((0..OUTPUT_CLASSES).all(|c| honest_output(&deterministic, c) == truth));
        assert!(is_right(&deterministic, &truth));
        assert!(!is_right(&deterministic, &forged_output(&deterministic, 5)));
        assert!(summary(&deterministic, &truth).is_empty());
    }
}
