//! `aicpw bench dispatch`: submit → running latency on the embedded default. A real node serves
//! its HTTP API; each task is submitted as a signed transaction over HTTP, and the clock stops
//! when a watcher on the event stream sees the task assigned to a provider node (ledger state
//! `running`).

use aicpw_provider::client::Client;
use aicpw_types::task::{MatchStrategy, Runtime, TaskKind, Verification};
use aicpw_types::{Amount, Hardware, Keypair, Resources, TaskTerms, TxBody};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROVIDERS: u32 = 10;

fn register_providers(client: &Client) -> Result<()> {
    for i in 1..=PROVIDERS {
        let key = Keypair::dev(i);
        client.send(&key, TxBody::Bond { amount: Amount::tokens(1_000) }, false)?;
        let hardware = Hardware {
            cpu_cores: 64,
            memory_mb: 262_144,
            disk_mb: 1_000_000,
            bandwidth_mbps: 10_000,
            ..Default::default()
        };
        let body = TxBody::RegisterNode {
            hardware,
            x25519_key: key.x25519_public(),
            endpoint: format!("bench-{i}"),
            price_per_hour: Amount(3_600_000),
        };
        client.send(&key, body, true)?;
    }
    Ok(())
}

fn terms(n: usize) -> TaskTerms {
    TaskTerms {
        name: format!("dispatch-{n}"),
        kind: TaskKind::Inference,
        runtime: Runtime::Sandbox,
        resources: Resources { cpu_cores: 1, memory_mb: 256, ..Default::default() },
        time_limit_secs: 60,
        budget: Amount(100_000),
        max_price_per_hour: Amount(3_600_000),
        verification: Verification::None,
        strategy: MatchStrategy::LowestPrice,
        reputation_min: 0,
        network: false,
        encrypted: false,
        inputs_cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
        // A real key: the ledger refuses result keys of small order.
        result_key: Keypair::dev(0).x25519_public(),
        nondeterministic: None,
    }
}

pub fn run(tasks: usize) -> Result<Value> {
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let config = aicpw_node::NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        genesis: Some(aicpw_node::dev_genesis()),
        proposer: Keypair::dev(0),
        store: aicpw_node::StorePolicy::default(),
    };
    let bound = runtime.block_on(aicpw_node::Bound::open(config))?;
    let url = format!("http://{}", bound.local_addr().context("no address")?);
    runtime.spawn(bound.serve(std::future::pending()));
    let client = Client::new(&url);
    register_providers(&client)?;
    let (sender, assigned) = mpsc::channel::<(u64, Instant)>();
    let watcher = Client::new(&url);
    std::thread::spawn(move || {
        let _ = watcher.follow_events(None, |event| {
            if event["event"] == "task_assigned" {
                if let Some(task) = event["task"].as_u64() {
                    return sender.send((task, Instant::now())).is_ok();
                }
            }
            true
        });
    });
    std::thread::sleep(Duration::from_millis(200));
    let requester = Keypair::dev(0);
    let mut latencies = Vec::with_capacity(tasks);
    let mut seen: HashMap<u64, Instant> = HashMap::new();
    for n in 0..tasks {
        let started = Instant::now();
        let committed = client.send(
            &requester,
            TxBody::SubmitTask {
                terms: terms(n),
                answer_commitment: aicpw_types::Hash32(aicpw_types::seal::random_key()),
            },
            true,
        )?;
        let id = committed["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["event"] == "task_submitted"))
            .and_then(|e| e["task"].as_u64())
            .context("no task id in the receipt")?;
        let at = loop {
            if let Some(at) = seen.remove(&id) {
                break at;
            }
            let (task, at) =
                assigned.recv_timeout(Duration::from_secs(10)).context("task never assigned")?;
            seen.insert(task, at);
        };
        latencies.push(at.duration_since(started).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(json!({
        "tasks": tasks,
        "providers": PROVIDERS,
        "dispatch_p50_ms": (pick(0.50) * 100.0).round() / 100.0,
        "dispatch_p99_ms": (pick(0.99) * 100.0).round() / 100.0,
        "dispatch_max_ms": (pick(1.0) * 100.0).round() / 100.0,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bench_places_every_task_it_submits_and_reports_its_latencies() {
        let figures = super::run(5).expect("the bench runs");
        assert_eq!(figures["tasks"], 5);
        let p50 = figures["dispatch_p50_ms"].as_f64().expect("p50");
        let max = figures["dispatch_max_ms"].as_f64().expect("max");
        assert!(p50 > 0.0 && p50 <= max, "{figures}");
    }
}
