//! `aicpw bench consensus`: a devnet of validator processes on loopback (as `aicpw devnet`
//! starts them), loaded with signed transfers over their HTTP APIs.
//!
//! Measured: `finality_p50_ms`/`_p99_ms`, from a probe's submission of a transfer (one every
//! 100 ms, `wait=true`) to the API's answer that the block holding it was finalized and
//! committed there, under the load; `tx_per_sec`, the load's transfers over the time from the
//! first submission until every one was committed on validator 0. Each transfer goes to one
//! validator (its sender's, by index): validators do not gossip transactions, so a transfer
//! waits for its validator's turn to lead.

use crate::devnet;
use aicpw_provider::client::Client;
use aicpw_types::{Amount, Keypair, SignedTx, Tx, TxBody};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fee of each transfer, in base units.
const FEE: Amount = Amount(10);
/// How long the bench waits for the load to be committed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(300);

fn transfer(chain_id: &str, from: &Keypair, nonce: u64, to: &Keypair, amount: Amount) -> SignedTx {
    let tx = Tx {
        chain_id: chain_id.into(),
        signer: from.account(),
        nonce,
        fee: FEE,
        body: TxBody::Transfer { to: to.account(), amount },
    };
    from.sign(tx)
}

/// Submits `txs` in order, waiting and retrying while the sender's nonce window is full.
fn submit_all(client: &Client, txs: &[SignedTx]) -> Result<()> {
    for tx in txs {
        loop {
            match client.submit(tx, false) {
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.reject(),
                        Some(
                            aicpw_types::Reject::NonceTooFar
                                | aicpw_types::Reject::SignerQuotaFull
                                | aicpw_types::Reject::MempoolFull
                        )
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e).context("a load transfer was refused"),
            }
        }
    }
    Ok(())
}

fn nonce_of(client: &Client, who: &Keypair) -> u64 {
    client
        .get(&format!("/v1/accounts/{}", who.account()))
        .ok()
        .and_then(|a| a["nonce"].as_u64())
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

pub fn run(validators: usize, txs: usize, senders: usize) -> Result<Value> {
    if senders == 0 || senders > 1_000 || txs < senders {
        bail!("--senders must be 1..=1000 and at most --txs");
    }
    let temp = tempfile::Builder::new().prefix("aicpw-bench-consensus-").tempdir()?;
    let load_before = load_average();
    let net = devnet::start(temp.path(), validators)?;
    let clients: Vec<Client> = net.apis.iter().map(|url| Client::new(url)).collect();
    let chain_id = clients[0].chain_id()?;
    // Fund the senders from the dev accounts (1..=15; 0 probes), each to its own validator.
    let funders: Vec<Keypair> = (1..16).map(Keypair::dev).collect();
    let keys: Vec<Keypair> = (0..senders as u32).map(|i| Keypair::dev(10_000 + i)).collect();
    for (i, key) in keys.iter().enumerate() {
        let funder = &funders[i % funders.len()];
        let tx =
            transfer(&chain_id, funder, (i / funders.len()) as u64, key, Amount::tokens(1_000));
        submit_all(&clients[(i % funders.len()) % validators], &[tx])?;
    }
    let started = Instant::now();
    let funded = |client: &Client, key: &Keypair| {
        let account = client.get(&format!("/v1/accounts/{}", key.account())).ok();
        account.and_then(|a| a["balance"].as_str().map(|b| b != "0")).unwrap_or(false)
    };
    while !clients.iter().all(|c| keys.iter().all(|k| funded(c, k))) {
        if started.elapsed() > COMMIT_TIMEOUT {
            bail!("the senders were not funded");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The load, signed before the clock starts.
    let per_sender = txs / senders;
    let load: Vec<Vec<SignedTx>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let to = &keys[(i + 1) % keys.len()];
            (0..per_sender as u64).map(|n| transfer(&chain_id, key, n, to, Amount(1))).collect()
        })
        .collect();
    let total = per_sender * senders;
    let height_before = devnet::height(&clients[0]).unwrap_or(0);
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (done, url, chain_id) = (done.clone(), net.apis.clone(), chain_id.clone());
        std::thread::spawn(move || -> Vec<u64> {
            let clients: Vec<Client> = url.iter().map(|u| Client::new(u)).collect();
            let (key, to) = (Keypair::dev(0), Keypair::dev(1));
            let mut latencies = Vec::new();
            let mut nonce = 0;
            while !done.load(Ordering::Relaxed) {
                let tx = transfer(&chain_id, &key, nonce, &to, Amount(1));
                let sent = Instant::now();
                if clients[nonce as usize % clients.len()].submit(&tx, true).is_ok() {
                    latencies.push(sent.elapsed().as_millis() as u64);
                    nonce += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };
    let begun = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = load
            .iter()
            .enumerate()
            .map(|(i, txs)| {
                let client = &clients[i % validators];
                scope.spawn(move || submit_all(client, txs))
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        Ok(())
    })?;
    let submitted_s = begun.elapsed().as_secs_f64();
    while keys.iter().any(|k| nonce_of(&clients[0], k) < per_sender as u64) {
        if begun.elapsed() > COMMIT_TIMEOUT {
            bail!("the load was not committed within {COMMIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = begun.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let latencies = probe.join().map_err(|_| anyhow::anyhow!("the probe panicked"))?;
    let blocks = devnet::height(&clients[0]).unwrap_or(0) - height_before;
    let percentile = |p| aicpw_sim::report::percentile(&latencies, p);
    drop(net);
    Ok(json!({
        "validators": validators,
        "transport": "loopback TCP, Commonware authenticated p2p; HTTP API per validator process",
        "txs": total,
        "senders": senders,
        "tx_per_sec": (total as f64 / elapsed).round(),
        "submit_seconds": (submitted_s * 100.0).round() / 100.0,
        "commit_seconds": (elapsed * 100.0).round() / 100.0,
        "blocks": blocks,
        "txs_per_block": (total as f64 / blocks.max(1) as f64).round(),
        "finality_p50_ms": percentile(500),
        "finality_p99_ms": percentile(990),
        "finality_samples": latencies.len(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }))
}
