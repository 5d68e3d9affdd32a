//! `aicpw bench match`: times the matcher on a seeded synthetic market, one thread.

use std::time::Instant;

/// Builds a market of `nodes` nodes, places `tasks` tasks one at a time with churn between
/// placements, and returns the figures as JSON (see `aicpw_matcher::synthetic::BenchReport`),
/// plus `cpu_share`: the share of the wall time this thread ran on a core (below 1 when other
/// processes competed for the CPU, which lowers the figures).
pub fn run(nodes: usize, tasks: usize, seed: u64) -> serde_json::Value {
    let origin = Instant::now();
    let cpu_before = thread_cpu_ns();
    let mut clock = move || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let report = aicpw_matcher::synthetic::run_benchmark(nodes, tasks, seed, &mut clock);
    let wall = origin.elapsed().as_nanos() as f64;
    let mut json = serde_json::to_value(&report)
        .unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }));
    if let (Some(before), Some(after), Some(object)) =
        (cpu_before, thread_cpu_ns(), json.as_object_mut())
    {
        let share = after.saturating_sub(before) as f64 / wall.max(1.0);
        object.insert("cpu_share".into(), serde_json::json!(share));
    }
    json
}

/// Nanoseconds this thread has run on a CPU (Linux; `None` elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}
