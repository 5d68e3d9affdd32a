//! Development runner, the same as `aicpw sim` without the CLI:
//! `cargo run --release -p aicpw-sim --example run -- summary NAME|all SEEDS` prints the summary
//! JSON; `... -- runs NAME COUNT [FIRST]` prints each run's report, one JSON line per seed
//! (`AICPW_SIM_TRACE=1` adds every block's events on stderr).

fn names(name: &str) -> Vec<&'static str> {
    if name == "all" {
        return aicpw_sim::SCENARIOS.iter().map(|s| s.name).collect();
    }
    match aicpw_sim::scenario(name) {
        Some(scenario) => vec![scenario.name],
        None => {
            eprintln!("unknown scenario {name}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("summary");
    let name = args.get(2).map(String::as_str).unwrap_or("all");
    let count: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let first: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    if mode == "summary" {
        let reports: Vec<_> = names(name)
            .into_iter()
            .filter_map(|n| aicpw_sim::run_scenario(n, count, threads))
            .collect();
        let summary = aicpw_sim::Summary::of(count, reports);
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        for name in names(name) {
            let Some(scenario) = aicpw_sim::scenario(name) else { continue };
            for seed in first..first + count {
                let report = (scenario.run)(seed);
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            }
        }
    }
    eprintln!("elapsed {:?} on {threads} threads", started.elapsed());
}
