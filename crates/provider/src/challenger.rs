//! The agent's answers to capacity challenges: watch the ledger for challenges to this node, solve
//! matrix challenges with [`crate::challenge::Solver`] (a GPU when the build has the `cuda`
//! feature and one passes its self-test, else every core), commit the root, open the tiles the
//! ledger draws in the next block, and solve hash puzzles.
//!
//! The ledger's event stream wakes the loop the moment a challenge is issued or its tiles are
//! drawn (the response time counts from the issuing block), and `GET /v1/challenges?node=` is
//! what the loop acts on, so a missed event costs at most [`POLL_INTERVAL_IDLE`]. The solved
//! product is kept until the challenge is resolved: up to `4n²` bytes (1 GiB at `n = 16384`).

use crate::challenge::{MatrixResponse, Solver};
use crate::client::{Client, ClientError, EventsAbout};
use aicpw_types::{ChallengeId, ComputeUnits, Hash32, Keypair, NodeId, Reject, TxBody};
use aicpw_verify::matrix::TILE_DEFAULT;
use aicpw_verify::puzzle::solve_puzzle;
use aicpw_verify::{open_indices, HashPuzzle, MatrixChallenge};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the loop waits for an event before it looks at its challenges anyway.
pub const POLL_INTERVAL_IDLE: Duration = Duration::from_secs(1);
/// Drawn tiles per `ChallengeOpen`: within the ledger's limit (96) and its per-block budget.
pub const OPENINGS_PER_TX: usize = 64;
/// Nonces tried per pass of the loop, so a hard puzzle never holds up a matrix challenge's
/// commitment or openings (about 0.1 s on one core).
const PUZZLE_ATTEMPTS_PER_PASS: u64 = 1 << 18;
/// A rejected answer that may succeed later (busy block, nonce race) is sent again this often.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Attempts per answer before the loop looks at the ledger again.
const ATTEMPTS_MAX: u32 = 5;
/// Edge of the matrix the claim is measured on at start.
pub const CLAIM_PROBE_N: u32 = 512;
/// The claim is this share (percent) of the probe's speed: a claim sizes the challenge and sets
/// its deadline, so a low claim costs a little score and a high one risks a late answer.
const CLAIM_PERCENT: u64 = 50;

#[derive(Clone, Debug)]
pub struct ChallengerConfig {
    /// Threads a matrix solve uses: every core by default.
    pub threads: usize,
    /// Edge of the probe solved at start to claim half of this machine's speed; 0: no claim.
    pub claim_probe_n: u32,
}

impl Default for ChallengerConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        ChallengerConfig { threads, claim_probe_n: CLAIM_PROBE_N }
    }
}

/// A challenge as `GET /v1/challenges` shows it (the fields the challenger needs).
#[derive(Clone, Debug, Deserialize)]
struct ChallengeView {
    id: ChallengeId,
    kind: String,
    seed: Hash32,
    n: u32,
    tile: u32,
    open_count: u32,
    difficulty: u32,
    status: String,
    issued_ms: u64,
    deadline_ms: u64,
    root: Option<Hash32>,
    open_randomness: Option<Hash32>,
    opened: u32,
}

/// Starts the challenger on its own thread; it runs until `stop` is set.
pub fn spawn(
    node_url: &str,
    key: Keypair,
    node: NodeId,
    config: ChallengerConfig,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let url = node_url.to_string();
    std::thread::spawn(move || run(&url, &key, node, &config, &stop))
}

/// The loop: claim, then answer whatever the ledger asks of `node` until `stop` is set. Returns
/// at once on a chain that issues no challenges.
pub fn run(
    node_url: &str,
    key: &Keypair,
    node: NodeId,
    config: &ChallengerConfig,
    stop: &AtomicBool,
) {
    let client = Client::new(node_url);
    match client.get("/v1/params") {
        Ok(params) if params["challenges"]["interval_ms"].as_u64() == Some(0) => return,
        Ok(_) => {}
        Err(e) => tracing::warn!("node {node}: cannot read the chain's parameters: {e}"),
    }
    let (wake, woken) = mpsc::sync_channel(1);
    let watcher = {
        let (url, stop_watch) = (node_url.to_string(), Arc::new(AtomicBool::new(false)));
        let flag = stop_watch.clone();
        (std::thread::spawn(move || watch(&url, node, &wake, &flag)), stop_watch)
    };
    let solver = Solver::detect(config.threads);
    match solver.gpu_unavailable() {
        None => tracing::info!("node {node}: challenges are solved on the GPU"),
        Some(why) => tracing::info!("node {node}: challenges are solved on the CPU ({why})"),
    }
    if config.claim_probe_n > 0 {
        if let Err(e) = claim(&client, key, node, config.claim_probe_n, &solver) {
            tracing::warn!("node {node}: capacity claim failed: {e}");
        }
    }
    let mut challenger =
        Challenger { client, key: key.clone(), node, solver, solved: None, puzzle: None };
    while !stop.load(Ordering::SeqCst) {
        let busy = challenger.answer_all().unwrap_or_else(|e| {
            tracing::warn!("node {node}: answering challenges failed: {e}");
            false
        });
        wait(&woken, if busy { Duration::ZERO } else { POLL_INTERVAL_IDLE });
    }
    watcher.1.store(true, Ordering::SeqCst);
    // The watcher sees the flag at its next event or keep-alive (at most a second).
    let _ = watcher.0.join();
}

fn wait(woken: &Receiver<()>, timeout: Duration) {
    let _ = woken.recv_timeout(timeout);
}

/// Follows the event stream and wakes the loop on every challenge event about `node`.
fn watch(node_url: &str, node: NodeId, wake: &SyncSender<()>, stop: &AtomicBool) {
    let client = Client::new(node_url);
    while !stop.load(Ordering::SeqCst) {
        let followed = client.follow_events(EventsAbout::Node(node.0), |event| {
            let challenge = event["event"].as_str().is_some_and(|e| e.starts_with("challenge_"));
            if challenge {
                // A full channel already holds a wake-up: nothing is lost.
                let _ = wake.try_send(());
            }
            !stop.load(Ordering::SeqCst)
        });
        if let Err(e) = followed {
            tracing::debug!("node {node}: event stream: {e}");
            std::thread::sleep(POLL_INTERVAL_IDLE);
        }
    }
}

/// Measures a small solve and claims [`CLAIM_PERCENT`] of its speed, unless the ledger already
/// holds a claim within a factor of two of it (a restart does not send another).
fn claim(
    client: &Client,
    key: &Keypair,
    node: NodeId,
    probe_n: u32,
    solver: &Solver,
) -> Result<(), ClientError> {
    let seed = *b"AICPW challenger capacity probe.";
    let probe = MatrixChallenge::new(seed, probe_n, TILE_DEFAULT)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let Ok(solved) = solver.solve(&probe) else { return Ok(()) };
    let seconds = solved.timings().total().as_secs_f64().max(1e-6);
    let units = (probe.work() as f64 / seconds / 1e9) as u64 * CLAIM_PERCENT / 100;
    let units = units.max(1);
    let current = client.get(&format!("/v1/nodes/{node}"))?["capacity"]["claimed_units"].as_u64();
    let close = |held: u64| held > 0 && held >= units / 2 && held <= units.saturating_mul(2);
    if current.is_some_and(close) {
        return Ok(());
    }
    client.send(key, TxBody::ClaimCapacity { node, units: ComputeUnits(units) }, true)?;
    tracing::info!("node {node}: claimed {units} compute units");
    Ok(())
}

struct Challenger {
    client: Client,
    key: Keypair,
    node: NodeId,
    solver: Solver,
    /// The product of the matrix challenge being answered.
    solved: Option<(ChallengeId, MatrixResponse)>,
    /// The puzzle being solved and the next nonce to try.
    puzzle: Option<(ChallengeId, u64)>,
}

impl Challenger {
    fn challenges(&self) -> Result<Vec<ChallengeView>, ClientError> {
        let list = self.client.get(&format!("/v1/challenges?node={}", self.node))?;
        serde_json::from_value(list).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Answers every open challenge of the node, the matrix one first (its time counts); returns
    /// whether work is left (a puzzle not solved yet).
    fn answer_all(&mut self) -> Result<bool, ClientError> {
        let challenges = self.challenges()?;
        let open = |kind: &str, status: &str| {
            challenges.iter().find(|c| c.kind == kind && c.status == status).cloned()
        };
        let waiting = ["issued", "committed", "opening"];
        let unresolved = |id: ChallengeId| {
            challenges.iter().any(|c| c.id == id && waiting.contains(&c.status.as_str()))
        };
        if self.solved.as_ref().is_some_and(|(id, _)| !unresolved(*id)) {
            self.solved = None;
        }
        if let Some(matrix) = open("matrix", "issued") {
            self.commit(&matrix)?;
        }
        if let Some(matrix) = open("matrix", "opening") {
            self.open(&matrix)?;
        }
        match open("puzzle", "issued") {
            Some(puzzle) => self.solve_puzzle(&puzzle),
            None => Ok(false),
        }
    }

    /// Sends `body`, again after a short wait when the ledger may take it later.
    fn send(&self, body: TxBody) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.client.send(&self.key, body.clone(), true) {
                Ok(_) => return Ok(()),
                Err(e) if attempt < ATTEMPTS_MAX && retryable(&e) => {
                    std::thread::sleep(RETRY_DELAY)
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn solve(&self, view: &ChallengeView) -> Result<MatrixResponse, ClientError> {
        let challenge = MatrixChallenge::new(view.seed.0, view.n, view.tile)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.solver.solve(&challenge).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn commit(&mut self, view: &ChallengeView) -> Result<(), ClientError> {
        let started = Instant::now();
        let response = self.solve(view)?;
        let root = Hash32(response.root());
        self.solved = Some((view.id, response));
        self.send(TxBody::ChallengeCommit { challenge: view.id, root })?;
        tracing::info!(
            "node {}: challenge {} (n = {}) committed after {} ms (deadline {} ms after issue)",
            self.node,
            view.id,
            view.n,
            started.elapsed().as_millis(),
            view.deadline_ms - view.issued_ms
        );
        Ok(())
    }

    /// Opens the drawn tiles from the first one not yet opened, a transaction at a time.
    fn open(&mut self, view: &ChallengeView) -> Result<(), ClientError> {
        let (Some(root), Some(randomness)) = (view.root, view.open_randomness) else {
            return Ok(());
        };
        if self.solved.as_ref().is_none_or(|(id, _)| *id != view.id) {
            // Committed by an earlier run of the agent: the product is a function of the seed, so
            // solving again yields the committed root (the opening window allows for it).
            let response = self.solve(view)?;
            if response.root() != root.0 {
                return Err(ClientError::Protocol(format!("challenge {}: root differs", view.id)));
            }
            self.solved = Some((view.id, response));
        }
        let Some((_, response)) = self.solved.as_ref() else { return Ok(()) };
        let drawn = open_indices(response.challenge(), &root.0, &randomness.0, view.open_count)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut first = view.opened as usize;
        while first < drawn.len() {
            let tiles = &drawn[first..(first + OPENINGS_PER_TX).min(drawn.len())];
            let openings =
                response.open(tiles).map_err(|e| ClientError::Protocol(e.to_string()))?;
            let paths = openings
                .into_iter()
                .map(|o| o.merkle_path.into_iter().map(Hash32).collect())
                .collect();
            self.send(TxBody::ChallengeOpen { challenge: view.id, first: first as u32, paths })?;
            first += tiles.len();
        }
        Ok(())
    }

    /// Tries the next nonces of the puzzle; returns whether it is still unsolved.
    fn solve_puzzle(&mut self, view: &ChallengeView) -> Result<bool, ClientError> {
        let puzzle = HashPuzzle { seed: view.seed.0, difficulty: view.difficulty };
        let first = match self.puzzle {
            Some((id, next)) if id == view.id => next,
            _ => 0,
        };
        let found = solve_puzzle(&puzzle, first, PUZZLE_ATTEMPTS_PER_PASS)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.puzzle = Some((view.id, first.saturating_add(PUZZLE_ATTEMPTS_PER_PASS)));
        match found {
            Some(nonce) => {
                self.send(TxBody::SubmitPuzzle { challenge: view.id, nonce })?;
                Ok(false)
            }
            None => Ok(true),
        }
    }
}

/// Rejections that a later block may not repeat.
fn retryable(error: &ClientError) -> bool {
    matches!(
        error.reject(),
        Some(
            Reject::ChallengeVerifyBusy
                | Reject::OpeningsNotDrawn
                | Reject::NonceReplayed
                | Reject::NonceGap
                | Reject::MempoolFull
        )
    )
}
