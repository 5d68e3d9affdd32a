//! `aicpw bench dispatch` run small over the real binary: a dev node and provider agent
//! processes (real bubblewrap sandbox), requesters submitting at once as `task submit` does.

mod common;

use common::aicpw;
use serde_json::Value;

#[test]
fn the_dispatch_bench_sees_every_tasks_process_start_and_reports_consistent_figures() {
    let out = aicpw()
        .args(["bench", "dispatch", "--tasks", "20", "--requesters", "2", "--providers", "3"])
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
}
