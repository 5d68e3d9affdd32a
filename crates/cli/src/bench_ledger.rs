//! `aicpw bench ledger`: signed transfers per second on a chain with many accounts, through the
//! block producer (decode, batch signature verification, apply, durable group commit in redb,
//! state checkpoints) and through the whole node (the mempool's admission first). Each run ends
//! inside its clock with the last checkpoint on disk, and each runs once with every signature
//! valid and once with one in a hundred forged.

use aicpw_ledger::{Genesis, Params};
use aicpw_node::chain::BlockOutcome;
use aicpw_node::content::Content;
use aicpw_node::{Chain, Shared, StorePolicy};
use aicpw_types::codec::{Decode, Encode};
use aicpw_types::{AccountId, Amount, Hash32, Keypair, Reject, SignedTx, Tx, TxBody};
use anyhow::{ensure, Result};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Transactions per block: small enough that a block commits well inside the latency target.
const BLOCK_TXS: usize = 1_024;
/// Distinct signing accounts; each signs `txs / SENDERS` transfers with consecutive nonces.
const SENDERS: usize = 20_000;
/// In the runs with forgeries, every transaction whose position is a multiple of this has a
/// signature that does not verify (one in a hundred).
const FORGED_EVERY: usize = 100;
const CHAIN_ID: &str = "aicpw-bench";

fn filler_account(i: usize) -> AccountId {
    AccountId(Hash32::of(&(i as u64).to_le_bytes()).0)
}

fn sender(i: usize) -> Keypair {
    Keypair::from_seed(Hash32::of(format!("bench sender {i}").as_bytes()).0)
}

fn forged(n: usize, forgeries: bool) -> bool {
    forgeries && n % FORGED_EVERY == FORGED_EVERY - 1
}

/// Signs the workload on all cores; signing is the clients' work and is not measured. A forged
/// transaction's signature has one bit flipped. A forged transfer takes no nonce, so the
/// sender's later transfers still apply.
fn signed_transfers(
    senders: &[Keypair],
    recipients: usize,
    txs: usize,
    forgeries: bool,
) -> Vec<Vec<u8>> {
    let mut nonces = vec![0u64; senders.len()];
    let plan: Vec<(usize, u64, bool)> = (0..txs)
        .map(|n| {
            let who = n % senders.len();
            let forge = forged(n, forgeries);
            let nonce = nonces[who];
            nonces[who] += u64::from(!forge);
            (who, nonce, forge)
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = txs.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .chunks(per_thread)
            .enumerate()
            .map(|(part, chunk)| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, &(who, nonce, forge))| {
                            let n = part * per_thread + i;
                            let to = filler_account((n * 7919) % recipients);
                            let body = TxBody::Transfer { to, amount: Amount(1) };
                            let key = &senders[who];
                            let tx = Tx {
                                chain_id: CHAIN_ID.into(),
                                signer: key.account(),
                                nonce,
                                fee: Amount(10),
                                body,
                            };
                            let mut signed = key.sign(tx);
                            signed.signature[0] ^= u8::from(forge);
                            signed.to_bytes()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing does not panic")).collect()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// CPU seconds this process has run, all threads (Linux, 100 ticks a second; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let (user, system): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((user + system) as f64 / 100.0)
}

/// Which code the transactions go through.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// Straight into `Chain::produce`, as a block producer that trusts its input's encoding only.
    Producer,
    /// `Shared::submit` on all cores (the mempool's checks, one signature verification each),
    /// then `Shared::produce_once`, as the node does with what its API receives.
    Node,
}

/// What one run measured.
struct Run {
    tx_per_sec: f64,
    committed: usize,
    refused: usize,
    /// Commit latency of each committed transaction's block.
    block_ms: Vec<f64>,
    /// Time of the final checkpoint (inside the clock).
    close_ms: f64,
    /// CPU time this process got over the run's wall time on all cores (below 1 when other
    /// processes competed for the CPU or the run waited on the disk).
    cpu_share: Option<f64>,
    blocks: u64,
    accounts: usize,
    state_root: Option<String>,
}

/// Decodes and admits one block's transactions on all cores; returns how many were refused,
/// each for its bad signature (anything else is a bug of the benchmark).
fn admit(node: &Shared, block: &[Vec<u8>]) -> Result<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let part = block.len().div_ceil(threads).max(1);
    let refusals: Vec<Reject> = std::thread::scope(|scope| {
        let handles: Vec<_> = block
            .chunks(part)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|bytes| match SignedTx::from_bytes(bytes) {
                            Ok(tx) => node.submit(tx, false).err(),
                            Err(_) => Some(Reject::Malformed),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("admission does not panic")).collect()
    });
    ensure!(
        refusals.iter().all(|r| *r == Reject::BadSignature),
        "the node refused a bench transfer: {:?}",
        refusals.iter().find(|r| **r != Reject::BadSignature)
    );
    Ok(refusals.len())
}

/// Where the transactions go.
enum Target {
    Producer(Box<Chain>),
    Node(Arc<Shared>),
}

/// Opens a fresh chain on disk, runs the workload through `path` and closes the chain, all
/// inside the clock but the opening.
fn measure(
    genesis: &Genesis,
    proposer: AccountId,
    workload: &[Vec<u8>],
    path: Path,
) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let mut chain = Chain::open(&dir.path().join("chain"), Some(genesis))?;
    // One unmeasured block warms the caches and the allocator, as every benchmark does.
    chain.produce(Vec::new(), 999, proposer)?;
    let mut target = match path {
        Path::Producer => Target::Producer(Box::new(chain)),
        Path::Node => {
            let content = Content::open(&dir.path().join("content"), StorePolicy::default())?;
            Target::Node(Shared::new(chain, content, proposer))
        }
    };
    let (mut block_ms, mut committed, mut refused) = (Vec::new(), 0usize, 0usize);
    let mut tally = |outcome: BlockOutcome, begun: Instant| -> Result<()> {
        let took = begun.elapsed().as_secs_f64() * 1000.0;
        block_ms.extend(std::iter::repeat_n(took, outcome.receipts.len()));
        committed += outcome.receipts.len();
        ensure!(
            outcome.rejected.iter().all(|(_, r)| *r == Reject::BadSignature),
            "bench transfers were rejected: {:?}",
            &outcome.rejected[..1]
        );
        refused += outcome.rejected.len();
        Ok(())
    };
    let mut refused_at_admission = 0;
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    match &mut target {
        Target::Node(node) => {
            for block in workload.chunks(BLOCK_TXS) {
                let begun = Instant::now();
                refused_at_admission += admit(node, block)?;
                tally(node.produce_once()?, begun)?;
            }
        }
        // Each block's commit latency runs from its decoding, while the block before it commits.
        Target::Producer(chain) => {
            let blocks = workload.chunks(BLOCK_TXS).enumerate().map(|(i, block)| {
                let begun = Instant::now();
                let decoded: Vec<SignedTx> =
                    block.iter().filter_map(|b| SignedTx::from_bytes(b).ok()).collect();
                (decoded, 1_000 + i as u64, begun)
            });
            chain.produce_pipelined(blocks, proposer, &mut tally)?;
        }
    }
    refused += refused_at_admission;
    let chain = match target {
        Target::Producer(chain) => *chain,
        Target::Node(node) => {
            Shared::into_chain(node).expect("the benchmark holds the only handle")
        }
    };
    let (blocks, accounts) = (chain.height(), chain.state().accounts.len());
    let state_root = chain.head().map(|h| h.state_root.to_string());
    let closing = Instant::now();
    chain.close()?;
    let close_ms = closing.elapsed().as_secs_f64() * 1000.0;
    let seconds = started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_share = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| round2((after - before) / (seconds * cores)));
    block_ms.sort_by(f64::total_cmp);
    Ok(Run {
        tx_per_sec: (committed as f64 / seconds).round(),
        committed,
        refused,
        block_ms,
        close_ms,
        cpu_share,
        blocks,
        accounts,
        state_root,
    })
}

impl Run {
    fn json(&self) -> Value {
        json!({
            "tx_per_sec": self.tx_per_sec,
            "txs": self.committed,
            "refused": self.refused,
            "commit_p50_ms": round2(percentile(&self.block_ms, 0.50)),
            "commit_p99_ms": round2(percentile(&self.block_ms, 0.99)),
            "close_ms": round2(self.close_ms),
            "cpu_share": self.cpu_share,
            "blocks": self.blocks,
            "accounts": self.accounts,
            "state_root": self.state_root,
        })
    }
}

pub fn run(accounts: usize, txs: usize) -> Result<Value> {
    let setup = Instant::now();
    let senders: Vec<Keypair> = (0..SENDERS.min(txs.max(1))).map(sender).collect();
    let funded = Amount::tokens(1_000);
    let fillers = accounts.saturating_sub(senders.len()).max(1);
    let mut genesis_accounts: Vec<(AccountId, Amount)> =
        senders.iter().map(|k| (k.account(), funded)).collect();
    genesis_accounts.extend((0..fillers).map(|i| (filler_account(i), funded)));
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        params: Params::default(),
        accounts: genesis_accounts,
    };
    let valid = signed_transfers(&senders, fillers, txs, false);
    let with_forged = signed_transfers(&senders, fillers, txs, true);
    let forged_count = (0..txs).filter(|n| forged(*n, true)).count();
    let setup_ms = setup.elapsed().as_millis() as u64;
    let proposer = senders[0].account();
    let mut runs = serde_json::Map::new();
    let mut rates = Vec::new();
    for (name, path, workload, forgeries) in [
        ("producer", Path::Producer, &valid, 0),
        ("producer_with_invalid", Path::Producer, &with_forged, forged_count),
        ("node", Path::Node, &valid, 0),
        ("node_with_invalid", Path::Node, &with_forged, forged_count),
    ] {
        let run = measure(&genesis, proposer, workload, path)?;
        ensure!(
            run.refused == forgeries && run.committed == txs - forgeries,
            "{name}: {} committed and {} refused, expected {} and {forgeries}",
            run.committed,
            run.refused,
            txs - forgeries
        );
        rates.push(run.tx_per_sec);
        runs.insert(name.into(), run.json());
    }
    let producer = &runs["producer"];
    Ok(json!({
        "signed_tx_per_sec": rates[0],
        "signed_tx_per_sec_with_invalid": rates[1],
        "node_tx_per_sec": rates[2],
        "node_tx_per_sec_with_invalid": rates[3],
        "commit_p50_ms": producer["commit_p50_ms"],
        "commit_p99_ms": producer["commit_p99_ms"],
        "txs": txs,
        "invalid_share": 1.0 / FORGED_EVERY as f64,
        "accounts": producer["accounts"],
        "block_txs": BLOCK_TXS,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "setup_ms": setup_ms,
        "runs": runs,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_commits_the_valid_transfers_refuses_the_forged_and_checkpoints_inside_the_clock()
    {
        let report = super::run(3_000, 2_000).expect("the benchmark runs");
        for name in ["producer", "producer_with_invalid", "node", "node_with_invalid"] {
            let run = &report["runs"][name];
            let forged = if name.ends_with("with_invalid") { 20 } else { 0 };
            assert_eq!(run["refused"], forged, "{name}: {run}");
            assert_eq!(run["txs"], 2_000 - forged, "{name}: {run}");
            assert!(run["close_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{name}: {run}");
            assert!(run["tx_per_sec"].as_f64().is_some_and(|rate| rate > 0.0), "{name}");
        }
        assert_eq!(
            report["signed_tx_per_sec_with_invalid"],
            report["runs"]["producer_with_invalid"]["tx_per_sec"]
        );
    }
}
