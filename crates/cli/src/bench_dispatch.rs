//! `aicpw bench dispatch`: from `task submit` to the task's process started in the sandbox, under
//! concurrent load, on the network `aicpw demo` starts: a dev node process and provider agent
//! processes (`aicpw provider start`, bubblewrap sandbox), all on this machine.
//!
//! `requesters` threads submit `tasks` tasks in all, each through `requester::submit` (the path
//! of `aicpw task submit`: sealed inputs uploaded to the store with a signed upload, the signed
//! `SubmitTask` over HTTP, waiting for its block, the content key granted to the seat placed with
//! it). Seats placed later (no node was free at submission) get their grant from a thread of their
//! requester when the event stream shows them, as `aicpw task watch --key` does. The task is one process,
//! a shell whose first act is `date +%s%N`, logging the wall-clock instant it started, then an
//! output alike on every machine: the bench fetches and decrypts each result
//! (`requester::fetch_result`, accepting it) and reads that instant from the log that came with
//! it. Every figure is wall-clock time on this one machine.

use crate::demo;
use crate::requester;
use aicpw_provider::client::Client;
use aicpw_types::{bundle, Amount, Keypair, TxBody};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The task every requester submits: its one process logs the instant it started (the log
/// comes back with the result) and writes the same output on every machine, so that a spot
/// audit's re-run agrees with it.
const TASK_YAML: &str = r#"version: 1
name: dispatch-probe
kind: inference
runtime: sandbox
command: sh
args: ["-c", "date +%s%N; echo probe > \"$AICPW_OUTPUT_DIR/out\""]
inputs: []
outputs: ["out"]
resources: { cpu_cores: 1, memory_mb: 64, disk_mb: 16, gpu_count: 0, gpu_model: "", gpu_vram_mb: 0, compute_units_min: 0 }
time_limit_secs: 60
budget: "200000"
max_price_per_hour: "3600000"
verification: spot
encrypt: true
network: none
"#;
/// What each provider charges per hour, in base units (all alike: the matcher's choice among
/// them is then by load).
const PROVIDER_PRICE: u64 = 3_600_000;
/// Tokens sent to each provider and requester account before the run.
const ACCOUNT_FUNDING_TOKENS: u64 = 10_000;
/// Connections one provider agent or requester may hold open to the node at once (event streams,
/// pooled and concurrent requests), with room to spare.
const CONNECTIONS_PER_PARTY: usize = 16;
/// Longest the bench waits for one task's result once every task is submitted.
const RESULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How many tasks, from how many requesters, over how many provider agents, offered at what
/// rate.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub tasks: usize,
    pub requesters: usize,
    pub providers: usize,
    /// Tasks per second in all, evenly spaced over the requesters; 0: each requester submits as
    /// soon as its previous submission returned.
    pub rate: f64,
}

/// One submitted task, as its requester saw it.
struct Submitted {
    id: u64,
    /// Wall clock when `task submit` began (with a rate: when it was due, if that was
    /// earlier), in µs since the epoch.
    submit_us: u64,
    /// Wall clock when `task submit` returned (inputs stored, task committed, first seat
    /// granted), in µs.
    submitted_us: u64,
    /// Wall clock when the task's process started (written by the process), in µs.
    process_us: Option<u64>,
    completed: bool,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Dev account of provider `i` (1-based, as `demo::start_provider` names them) and of requester
/// `j` (after the providers).
fn requester_key(load: &Load, j: usize) -> Keypair {
    Keypair::dev((load.providers + 1 + j) as u32)
}

fn fund(client: &Client, load: &Load) -> Result<()> {
    let bank = Keypair::dev(0);
    let accounts: Vec<Keypair> = (1..=load.providers as u32)
        .map(Keypair::dev)
        .chain((0..load.requesters).map(|j| requester_key(load, j)))
        .collect();
    for (n, key) in accounts.iter().enumerate() {
        let body =
            TxBody::Transfer { to: key.account(), amount: Amount::tokens(ACCOUNT_FUNDING_TOKENS) };
        // The last one waits for its block, which holds the earlier ones (same signer, in order).
        client.send(&bank, body, n + 1 == accounts.len())?;
    }
    Ok(())
}

/// Tasks of the probe's size (one core) the registered nodes can run at once.
fn slots(client: &Client) -> Result<u64> {
    let nodes = client.get("/v1/nodes")?;
    let nodes = nodes.as_array().context("a node list")?;
    Ok(nodes.iter().filter_map(|n| n["hardware"]["cpu_cores"].as_u64()).sum())
}

/// What the event stream showed about each task: its requester and block, and when it was
/// first seen assigned.
#[derive(Default)]
struct Seen {
    submitted: HashMap<u64, (String, u64)>,
    /// When each task's submission was seen committed.
    submitted_us: HashMap<u64, u64>,
    assigned_us: HashMap<u64, u64>,
    /// When the first result commitment of each task was seen: its seat's capacity is free
    /// again from that block on.
    committed_us: HashMap<u64, u64>,
    /// When the first key grant of each task was seen.
    granted_us: HashMap<u64, u64>,
    /// Tasks first assigned in a later block than their submission's (no node was free).
    placed_later: HashSet<u64>,
}

/// Follows every event: records first assignments, and sends each seat placed after its task's
/// submission block (its requester's `task submit` did not see it) to its requester's granter.
fn watch(url: &str, seen: Arc<Mutex<Seen>>, granters: HashMap<String, mpsc::Sender<u64>>) {
    let client = Client::new(url);
    let _ = client.follow_events(aicpw_provider::client::EventsAbout::All, |event| {
        let at = now_us();
        let task = event["task"].as_u64();
        let height = event["height"].as_u64().unwrap_or(0);
        let mut guard = seen.lock().expect("no panics while locked");
        let seen = &mut *guard;
        match (event["event"].as_str(), task) {
            (Some("task_submitted"), Some(task)) => {
                let requester = event["requester"].as_str().unwrap_or("").to_string();
                seen.submitted.insert(task, (requester, height));
                seen.submitted_us.entry(task).or_insert(at);
            }
            (Some("result_committed"), Some(task)) => {
                seen.committed_us.entry(task).or_insert(at);
            }
            (Some("key_granted"), Some(task)) => {
                seen.granted_us.entry(task).or_insert(at);
            }
            (Some("task_assigned"), Some(task)) => {
                let placed_later = seen.submitted.get(&task).is_some_and(|(_, h)| *h < height);
                if let std::collections::hash_map::Entry::Vacant(first) =
                    seen.assigned_us.entry(task)
                {
                    first.insert(at);
                    if placed_later {
                        seen.placed_later.insert(task);
                    }
                }
                let requester = seen.submitted.get(&task).map(|(r, _)| r.as_str());
                if let Some(granter) = requester.and_then(|r| granters.get(r)) {
                    if placed_later && granter.send(task).is_err() {
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    });
}

/// One requester's `task watch --key`: grants the content key to its seats placed after
/// submission.
fn grant_late(url: &str, key: &Keypair, late: mpsc::Receiver<u64>) {
    let client = Client::new(url);
    for task in late {
        let Ok(found) = client.get(&format!("/v1/tasks/{task}")) else { continue };
        if let Err(e) = requester::grant_placed(&client, key, &found) {
            tracing::warn!("task {task}: cannot grant the key: {e:#}");
        }
    }
}

/// When a requester starts each of its submissions: its `n`-th at `first + n * every`, or as
/// soon as the one before returned if that is later (no schedule: always then).
struct Schedule {
    first: Instant,
    every: Option<Duration>,
}

/// One requester: submits `count` tasks one after another on `schedule`, then collects each
/// result.
fn requester_run(
    url: &str,
    key: &Keypair,
    yaml: &Path,
    count: usize,
    schedule: &Schedule,
    out: &Path,
) -> Result<Vec<Submitted>> {
    let client = Client::new(url);
    let mut submitted = Vec::with_capacity(count);
    for n in 0..count {
        // A task is counted from when it was due: a requester still busy with the one before
        // (a slow `task submit`) adds to its latency.
        let mut late = Duration::ZERO;
        if let Some(every) = schedule.every {
            let due = schedule.first + every.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            late = Instant::now().saturating_duration_since(due);
        }
        let submit_us = now_us().saturating_sub(late.as_micros() as u64);
        let id = requester::submit(&client, key, yaml, false)?;
        let submitted_us = now_us();
        submitted.push(Submitted {
            id,
            submit_us,
            submitted_us,
            process_us: None,
            completed: false,
        });
    }
    for task in &mut submitted {
        let deadline = Instant::now() + RESULT_TIMEOUT;
        let state = loop {
            let found = client.get(&format!("/v1/tasks/{}", task.id))?;
            let state = found["state"].as_str().unwrap_or("").to_string();
            if matches!(state.as_str(), "verifying" | "completed" | "failed" | "cancelled") {
                break state;
            }
            if Instant::now() > deadline {
                bail!("task {} is still {state} after {RESULT_TIMEOUT:?}", task.id);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if state == "verifying" {
            let dir = out.join(task.id.to_string());
            requester::fetch_result(&client, key, task.id, &dir, true)?;
            let log = std::fs::read_to_string(dir.join(bundle::RESULT_LOG_PATH))?;
            let nanos = log.lines().find_map(|line| line.trim().parse::<u64>().ok());
            let nanos = nanos.context("the task's start instant in its log")?;
            task.process_us = Some(nanos / 1_000);
            let ended = client.get(&format!("/v1/tasks/{}", task.id))?;
            task.completed = ended["state"] == "completed";
        }
    }
    Ok(submitted)
}

/// The value at quantile `q` of sorted `values` (nearest rank), in ms with two decimals.
fn quantile_ms(sorted_us: &[i64], q: f64) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let index = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    json!((sorted_us[index] as f64 / 10.0).round() / 100.0)
}

/// The probe task: in the sandbox, or (with an image) in a container of that image. Busybox's
/// `date` has no nanoseconds, so the container's process reads the clock with `adjtimex`.
fn task_yaml(image: Option<&str>) -> String {
    let Some(image) = image else { return TASK_YAML.to_string() };
    // Inside the YAML string of `args`: `\"` is a quote, `\\n` awk's newline.
    let clock =
        r#"adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { printf \"%d%06d000\\n\", s, $2 }'"#;
    TASK_YAML
        .replace("runtime: sandbox", &format!("runtime: container\nimage: {image}"))
        .replace("date +%s%N", clock)
}

/// The image of the container probes: `reference`, else the id of the engine's
/// `aicpw/busybox:latest` (which `scripts/container-image.sh` builds and loads), by digest.
pub fn probe_image(reference: Option<String>) -> Result<String> {
    if let Some(reference) = reference {
        return Ok(reference);
    }
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", "aicpw/busybox:latest"])
        .output()
        .context("cannot run `docker`: container probes need a Docker Engine (scripts/setup.sh)")?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || aicpw_types::spec::image_digest(&id).is_none() {
        bail!(
            "the engine has no aicpw/busybox:latest: build it with `bash scripts/container-image.sh` \
             or pass --image NAME@sha256:…"
        );
    }
    Ok(format!("aicpw/busybox@{id}"))
}

/// Runs the bench, in containers of `image` when one is given; with `keep`, leaves its
/// directory (logs, data) in place and names it.
pub fn run(load: Load, keep: bool, image: Option<String>) -> Result<Value> {
    if load.tasks == 0 || load.requesters == 0 || load.providers == 0 {
        bail!("the bench needs at least one task, one requester and one provider");
    }
    if !(load.rate.is_finite() && load.rate >= 0.0) {
        bail!("the rate is a number of tasks per second, 0 or more");
    }
    demo::check_sandbox()?;
    let started = Instant::now();
    let temp = tempfile::Builder::new().prefix("aicpw-bench-dispatch-").tempdir()?;
    let root = temp.path().to_path_buf();
    // Every agent and requester here shares one address, which a real network does not: the node
    // lets this one address hold what they need (a few connections each).
    let per_address = (CONNECTIONS_PER_PARTY * (load.providers + load.requesters + 2)).to_string();
    let (node, url) = demo::start_node(
        &root.join("node"),
        &root.join("node.log"),
        &["--connections-per-address", &per_address],
    )?;
    let mut children = demo::Children(vec![node], root.clone());
    let client = Client::new(&url);
    fund(&client, &load).context("funding the providers and requesters")?;
    for i in 1..=load.providers as u32 {
        let extra: &[&str] = if image.is_some() { &["--containers"] } else { &[] };
        children.0.push(demo::start_provider(&url, &root, i, PROVIDER_PRICE, extra)?);
    }
    demo::wait_for_nodes(&client, load.providers).context("starting the providers")?;
    let slots = slots(&client)?;
    let yaml = root.join("dispatch-probe.yaml");
    std::fs::write(&yaml, task_yaml(image.as_deref()))?;
    let mut granters = HashMap::new();
    for j in 0..load.requesters {
        let (late, late_tasks) = mpsc::channel();
        let (url, key) = (url.clone(), requester_key(&load, j));
        granters.insert(key.account().to_string(), late);
        std::thread::spawn(move || grant_late(&url, &key, late_tasks));
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    {
        let (url, seen) = (url.clone(), seen.clone());
        std::thread::spawn(move || watch(&url, seen, granters));
    }
    // The event stream is followed before the first submission.
    std::thread::sleep(Duration::from_millis(200));
    let submitting = Instant::now();
    let results: Vec<Result<Vec<Submitted>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..load.requesters)
            .map(|j| {
                let count =
                    load.tasks / load.requesters + usize::from(j < load.tasks % load.requesters);
                let (url, yaml, out) = (&url, &yaml, root.join(format!("results-{j}")));
                let key = requester_key(&load, j);
                // Requester j's tasks are every `requesters`-th of one evenly spaced stream.
                let gap = (load.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / load.rate));
                let schedule = Schedule {
                    first: submitting + gap.unwrap_or_default().saturating_mul(j as u32),
                    every: gap.map(|gap| gap.saturating_mul(load.requesters as u32)),
                };
                scope.spawn(move || {
                    requester_run(url, &key, yaml, count, &schedule, &out)
                        .with_context(|| format!("requester {j}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a requester thread panicked")).collect()
    });
    let run_ms = submitting.elapsed().as_millis() as u64;
    let mut tasks = Vec::new();
    for result in results {
        tasks.extend(result?);
    }
    let seen = seen.lock().expect("no panics while locked");
    // Signed: an instant before its reference would show here, not be hidden.
    let between = |from: u64, to: u64| to as i64 - from as i64;
    let mut to_process: Vec<i64> =
        tasks.iter().filter_map(|t| Some(between(t.submit_us, t.process_us?))).collect();
    let mut to_assign: Vec<i64> = tasks
        .iter()
        .filter_map(|t| Some(between(t.submit_us, *seen.assigned_us.get(&t.id)?)))
        .collect();
    let mut assign_to_process: Vec<i64> = tasks
        .iter()
        .filter_map(|t| Some(between(*seen.assigned_us.get(&t.id)?, t.process_us?)))
        .collect();
    let mut assign_to_grant: Vec<i64> = tasks
        .iter()
        .filter_map(|t| Some(between(*seen.assigned_us.get(&t.id)?, *seen.granted_us.get(&t.id)?)))
        .collect();
    let mut grant_to_process: Vec<i64> = tasks
        .iter()
        .filter_map(|t| Some(between(*seen.granted_us.get(&t.id)?, t.process_us?)))
        .collect();
    let mut placed_at_once: Vec<i64> = tasks
        .iter()
        .filter(|t| !seen.placed_later.contains(&t.id))
        .filter_map(|t| Some(between(t.submit_us, t.process_us?)))
        .collect();
    let mut submit_call: Vec<i64> =
        tasks.iter().map(|t| between(t.submit_us, t.submitted_us)).collect();
    let mut queue_wait: Vec<i64> = tasks
        .iter()
        .filter_map(|t| {
            Some(between(*seen.submitted_us.get(&t.id)?, *seen.assigned_us.get(&t.id)?))
        })
        .collect();
    let mut seat_held: Vec<i64> = tasks
        .iter()
        .filter_map(|t| {
            Some(between(*seen.assigned_us.get(&t.id)?, *seen.committed_us.get(&t.id)?))
        })
        .collect();
    // The offered load: tasks over the span of their submissions' starts.
    let starts = tasks.iter().map(|t| t.submit_us);
    let span_us = starts.clone().max().unwrap_or(0).saturating_sub(starts.min().unwrap_or(0));
    let offered_per_sec = (load.tasks.saturating_sub(1)) as f64 * 1e6 / span_us.max(1) as f64;
    // What the providers can serve: their seats (each task asks for one core) over how long a
    // seat stays taken on average.
    let held_mean_us = seat_held.iter().sum::<i64>() as f64 / seat_held.len().max(1) as f64;
    let capacity_per_sec = slots as f64 * 1e6 / held_mean_us.max(1.0);
    for list in [
        &mut to_process,
        &mut to_assign,
        &mut assign_to_process,
        &mut assign_to_grant,
        &mut grant_to_process,
        &mut submit_call,
        &mut placed_at_once,
        &mut queue_wait,
        &mut seat_held,
    ] {
        list.sort_unstable();
    }
    drop(children);
    if keep {
        eprintln!("kept {}", temp.keep().display());
    }
    Ok(json!({
        "measures": "wall-clock ms on this machine, from the start of `task submit` (a requester \
                     thread's call of requester::submit) to the instant the task's process logged \
                     as its first act in the sandbox (submit_to_process_*), to the moment this \
                     process saw the task_assigned event on the node's event stream \
                     (assign_p50_ms: the ledger's lease), and from that event to the process \
                     start (assign_to_process_p50_ms), split at the key_granted event (assign_to_grant_*: \
                     the requester seeing the lease and its grant's block; grant_to_process_*: \
                     the agent waking, fetching and opening the inputs, the sandbox starting); \
                     submit_call_p50_ms is how long `task submit` \
                     itself took (upload, the task's block, the first grant's block); \
                     placed_later counts tasks no node was free for in their submission's \
                     block, and placed_at_submission_to_process_* is submit_to_process over \
                     the other tasks (a node was free: no wait for capacity); queue_wait_* is \
                     from the task_submitted event to the task_assigned event seen (the wait \
                     for a free seat, 0 where the submission's block placed it); the load: \
                     with rate 0 each requester thread submits its next task as soon as its \
                     previous `task submit` returned (closed loop); with a rate R, task k of \
                     an evenly spaced stream of R a second is due at k/R s and its requester \
                     (k mod requesters) starts it then or, if later, when its previous \
                     returned, and the task is timed from when it was due; \
                     offered_tasks_per_sec is the tasks over the span of their submissions; slots is the cores the nodes \
                     registered (each task asks for one core, 64 MB, 16 MB of disk, and runs \
                     one `date`), seat_held_* is from task_assigned to result_committed (the \
                     ledger frees the seat at the commitment), capacity_tasks_per_sec is \
                     slots over the mean seat_held; run_ms is from the first submission to \
                     the last result fetched and accepted; with runtime container the process \
                     is a container's (image named), its clock read with adjtimex",
        "runtime": if image.is_some() { "container" } else { "sandbox" },
        "image": image,
        "tasks": load.tasks,
        "requesters": load.requesters,
        "providers": load.providers,
        "rate": load.rate,
        "started": to_process.len(),
        "completed": tasks.iter().filter(|t| t.completed).count(),
        "submit_to_process_p50_ms": quantile_ms(&to_process, 0.50),
        "submit_to_process_p99_ms": quantile_ms(&to_process, 0.99),
        "submit_to_process_max_ms": quantile_ms(&to_process, 1.0),
        "assign_p50_ms": quantile_ms(&to_assign, 0.50),
        "assign_p99_ms": quantile_ms(&to_assign, 0.99),
        "assign_to_process_p50_ms": quantile_ms(&assign_to_process, 0.50),
        "assign_to_process_p99_ms": quantile_ms(&assign_to_process, 0.99),
        "assign_to_grant_p50_ms": quantile_ms(&assign_to_grant, 0.50),
        "grant_to_process_p50_ms": quantile_ms(&grant_to_process, 0.50),
        "grant_to_process_p99_ms": quantile_ms(&grant_to_process, 0.99),
        "submit_call_p50_ms": quantile_ms(&submit_call, 0.50),
        "placed_later": seen.placed_later.len(),
        "placed_at_submission_to_process_p50_ms": quantile_ms(&placed_at_once, 0.50),
        "placed_at_submission_to_process_p99_ms": quantile_ms(&placed_at_once, 0.99),
        "queue_wait_p50_ms": quantile_ms(&queue_wait, 0.50),
        "queue_wait_p99_ms": quantile_ms(&queue_wait, 0.99),
        "slots": slots,
        "seat_held_p50_ms": quantile_ms(&seat_held, 0.50),
        "seat_held_p99_ms": quantile_ms(&seat_held, 0.99),
        "offered_tasks_per_sec": (offered_per_sec * 10.0).round() / 10.0,
        "capacity_tasks_per_sec": (capacity_per_sec * 10.0).round() / 10.0,
        "run_ms": run_ms,
        "total_ms": started.elapsed().as_millis() as u64,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}
