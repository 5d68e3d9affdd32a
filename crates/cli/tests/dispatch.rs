//! `aicpw bench dispatch` run small over the real binary: a dev node and provider agent
//! processes (real bubblewrap sandbox), requesters submitting at once as `task submit` does, at
//! a stated rate.

mod common;

use common::aicpw;
use serde_json::Value;

#[test]
fn the_dispatch_bench_sees_every_tasks_process_start_and_reports_consistent_figures() {
    let out = aicpw()
        .args(["bench", "dispatch", "--tasks", "20", "--requesters", "2", "--providers", "3"])
        .args(["--rate", "8"])
        .arg("--json")
        .output()
        .expect("the bench runs");
    assert!(
        out.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Value = serde_json::from_slice(&out.stdout).expect("json figures");
    let ms = |name: &str| figures[name].as_f64().unwrap_or_else(|| panic!("{name}: {figures}"));
    assert_eq!(figures["tasks"], 20, "{figures}");
    assert_eq!((figures["requesters"].clone(), figures["providers"].clone()), (2.into(), 3.into()));
    // Every task's process wrote its start instant, and every result was fetched and accepted.
    assert_eq!(figures["started"], 20, "{figures}");
    assert_eq!(figures["completed"], 20, "{figures}");
    let (p50, p99, max) = (
        ms("submit_to_process_p50_ms"),
        ms("submit_to_process_p99_ms"),
        ms("submit_to_process_max_ms"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{figures}");
    // The lease comes before the process it starts, and both after the submission began.
    let assign = ms("assign_p50_ms");
    assert!(0.0 < assign && assign <= max, "{figures}");
    assert!(ms("assign_to_process_p50_ms") > 0.0, "{figures}");
    assert!(figures["measures"].as_str().is_some_and(|m| m.contains("submit_to_process")));
    // The load is stated: offered no faster than the rate asked for (slower only where a
    // requester's `task submit` outlasted its turn), against seats that were each held a while.
    let offered = ms("offered_tasks_per_sec");
    assert!(0.0 < offered && offered <= 8.0 * 1.05, "{figures}");
    assert!(figures["slots"].as_u64().is_some_and(|slots| slots >= 3), "{figures}");
    assert!(ms("seat_held_p50_ms") > 0.0 && ms("capacity_tasks_per_sec") > 0.0, "{figures}");
    let (wait_p50, wait_p99) = (ms("queue_wait_p50_ms"), ms("queue_wait_p99_ms"));
    assert!(0.0 <= wait_p50 && wait_p50 <= wait_p99 && wait_p99 <= max, "{figures}");
}

/// The same bench with the probes in containers of the local Docker Engine (providers started
/// with `--containers`, the busybox image `scripts/container-image.sh` loads).
#[test]
fn the_dispatch_bench_times_container_tasks_from_submit_to_process_start() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/container-image.sh");
    let archive = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dispatch-busybox.tar");
    let built =
        std::process::Command::new("bash").arg(script).arg(&archive).output().expect("bash");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let image = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let out = aicpw()
        .args(["bench", "dispatch", "--tasks", "6", "--requesters", "1", "--providers", "2"])
        .args(["--runtime", "container", "--json"])
        .output()
        .expect("the bench runs");
    assert!(
        out.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Value = serde_json::from_slice(&out.stdout).expect("json figures");
    assert_eq!(
        (figures["runtime"].as_str(), figures["image"].as_str()),
        (Some("container"), Some(image.as_str()))
    );
    assert_eq!(
        (figures["started"].clone(), figures["completed"].clone()),
        (6.into(), 6.into()),
        "{figures}"
    );
    let p50 = figures["submit_to_process_p50_ms"].as_f64().expect("p50");
    let p99 = figures["submit_to_process_p99_ms"].as_f64().expect("p99");
    assert!(0.0 < p50 && p50 <= p99, "{figures}");
}
