//! `GET /metrics`: the node in Prometheus text format (version 0.0.4), for operators' scrapers.
//!
//! Chain figures (height, tasks by state, escrow, nodes) are read from the ledger state at scrape
//! time; counters of what happened (transactions, events by kind: challenges, audits, slashes) and
//! the API's latency histogram are kept by the node as blocks are published and requests answered.

use crate::service::Shared;
use aicpw_types::TaskState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Upper bounds, in seconds, of the API latency histogram's buckets.
pub const LATENCY_BUCKETS_S: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// The window over which `aicpw_transactions_per_second` averages committed transactions.
pub const TX_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Blocks remembered for that average: at most one per block interval fits the window anyway.
const RECENT_BLOCKS_MAX: usize = 4_096;

#[derive(Default)]
struct Histogram {
    /// Requests at or under each bound of [`LATENCY_BUCKETS_S`], not cumulated.
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Default)]
struct Counters {
    blocks: u64,
    txs_committed: u64,
    txs_rejected: u64,
    /// Ledger events published, by their `event` name.
    events: BTreeMap<String, u64>,
    /// (when, transactions) of the blocks made in the last [`TX_RATE_WINDOW`].
    recent: VecDeque<(Instant, u64)>,
    /// API latency by route template (`/v1/tasks/{id}`) and status class (2 for 2xx).
    latency: BTreeMap<(String, u16), Histogram>,
    /// Content bytes the store's read routes handed to clients.
    store_served_bytes: u64,
}

/// What the node counts for `/metrics`.
#[derive(Default)]
pub struct Metrics(Mutex<Counters>);

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.0.lock().expect("no panics while counting")
    }

    /// A block was made with `committed` receipts, `rejected` left-out transactions and `events`
    /// (their `event` names).
    pub fn block<'a>(
        &self,
        committed: usize,
        rejected: usize,
        events: impl Iterator<Item = &'a str>,
    ) {
        let now = Instant::now();
        let mut c = self.lock();
        c.blocks += 1;
        c.txs_committed += committed as u64;
        c.txs_rejected += rejected as u64;
        for event in events {
            *c.events.entry(event.to_owned()).or_default() += 1;
        }
        c.recent.push_back((now, committed as u64));
        while c.recent.len() > RECENT_BLOCKS_MAX
            || c.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > TX_RATE_WINDOW)
        {
            c.recent.pop_front();
        }
    }

    /// The store's read routes handed `bytes` of content to a client.
    pub fn store_served(&self, bytes: u64) {
        self.lock().store_served_bytes += bytes;
    }

    fn request(&self, route: String, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut c = self.lock();
        let h = c.latency.entry((route, status / 100)).or_default();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|b| seconds <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum_s += seconds;
    }
}

/// Times every request into the latency histogram, by the route that matched it.
pub async fn track(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    s.metrics.request(route, response.status().as_u16(), start.elapsed());
    response
}

/// A label value as the text format spells it.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// The whole exposition, as `GET /metrics` answers it.
pub fn render(s: &Shared) -> String {
    let mempool = s.mempool_len();
    let mut t = Text(String::new());
    {
        let chain = s.chain();
        let state = chain.state();
        t.one("aicpw_block_height", "gauge", "Height of the newest block.", chain.height());
        t.one(
            "aicpw_mempool_transactions",
            "gauge",
            "Transactions waiting in the mempool.",
            mempool,
        );
        t.one("aicpw_accounts", "gauge", "Accounts in the state.", state.accounts.len());
        t.one("aicpw_nodes", "gauge", "Registered provider nodes.", state.nodes.len());
        t.one("aicpw_nodes_online", "gauge", "Provider nodes online.", state.index.online.len());
        t.one(
            "aicpw_escrow_tokens",
            "gauge",
            "Base units held in escrow by open tasks.",
            state.index.money.escrow,
        );
        t.one("aicpw_supply_tokens", "gauge", "Base units in circulation.", state.meta.supply.0);
        t.one("aicpw_burned_tokens", "gauge", "Base units burned.", state.meta.burned.0);
        let mut by_state: BTreeMap<&'static str, u64> =
            TASK_STATES.iter().map(|s| (*s, 0)).collect();
        for task in state.tasks.values() {
            *by_state.entry(task_state_name(task.state)).or_default() += 1;
        }
        t.family("aicpw_tasks", "gauge", "Tasks in the state, by state.");
        for (name, count) in by_state {
            t.sample("aicpw_tasks", &format!("state=\"{name}\""), count);
        }
    }
    let c = s.metrics.lock();
    t.one(
        "aicpw_blocks_made_total",
        "counter",
        "Blocks this node made since it started.",
        c.blocks,
    );
    t.one(
        "aicpw_transactions_committed_total",
        "counter",
        "Transactions committed since the node started.",
        c.txs_committed,
    );
    t.one(
        "aicpw_transactions_rejected_total",
        "counter",
        "Admitted transactions a block left out with a rejection since the node started.",
        c.txs_rejected,
    );
    t.one(
        "aicpw_store_served_bytes_total",
        "counter",
        "Content bytes the store's read routes sent since the node started.",
        c.store_served_bytes,
    );
    let window: u64 = c.recent.iter().map(|(_, n)| n).sum();
    t.one(
        "aicpw_transactions_per_second",
        "gauge",
        "Transactions committed per second over the last minute.",
        window as f64 / TX_RATE_WINDOW.as_secs_f64(),
    );
    t.family("aicpw_events_total", "counter", "Ledger events since the node started, by kind.");
    for (kind, count) in &c.events {
        t.sample("aicpw_events_total", &format!("kind=\"{}\"", label(kind)), count);
    }
    for (name, help, kinds) in EVENT_GROUPS {
        t.family(name, "counter", help);
        for kind in *kinds {
            let n = c.events.get(*kind).copied().unwrap_or(0);
            t.sample(name, &format!("outcome=\"{kind}\""), n);
        }
    }
    let name = "aicpw_api_request_duration_seconds";
    t.family(name, "histogram", "Time the API took to answer, by route and status class.");
    for ((route, status), h) in &c.latency {
        let labels = format!("route=\"{}\",status=\"{status}xx\"", label(route));
        let mut cumulated = 0;
        for (bound, n) in LATENCY_BUCKETS_S.iter().zip(h.buckets) {
            cumulated += n;
            t.sample(&format!("{name}_bucket"), &format!("{labels},le=\"{bound}\""), cumulated);
        }
        t.sample(&format!("{name}_bucket"), &format!("{labels},le=\"+Inf\""), h.count);
        t.sample(&format!("{name}_sum"), &labels, h.sum_s);
        t.sample(&format!("{name}_count"), &labels, h.count);
    }
    t.0
}

/// Counters of the events operators watch most, by outcome (each also in `aicpw_events_total`).
const EVENT_GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "aicpw_challenges_total",
        "Capacity challenges since the node started, by outcome.",
        &["challenge_issued", "challenge_passed", "challenge_failed"],
    ),
    (
        "aicpw_audits_total",
        "Audits since the node started, by outcome.",
        &["audit_drawn", "audit_passed"],
    ),
    ("aicpw_slashes_total", "Penalties (slashes) since the node started.", &["penalized"]),
];

const TASK_STATES: [&str; 6] =
    ["queued", "running", "verifying", "completed", "failed", "cancelled"];

fn task_state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Queued => TASK_STATES[0],
        TaskState::Running => TASK_STATES[1],
        TaskState::Verifying => TASK_STATES[2],
        TaskState::Completed => TASK_STATES[3],
        TaskState::Failed => TASK_STATES[4],
        TaskState::Cancelled => TASK_STATES[5],
    }
}

/// `GET /metrics`.
pub async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&s))
}
