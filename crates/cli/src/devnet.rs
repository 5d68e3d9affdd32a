//! `aicpw devnet`: a local network of validators on loopback, each an `aicpw validator start`
//! process with its own data directory, keys and API, optionally provider agents spread over
//! them; and `aicpw bench consensus`, which measures finality and throughput on one.

use crate::demo::{start_provider, Children};
use aicpw_consensus::validator::{deal_setups, Setup};
use aicpw_provider::client::Client;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the devnet waits for its validators to answer and finalize their first block.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// The file in the devnet directory that lists its processes and APIs.
pub const DEVNET_FILE: &str = "devnet.json";

/// A loopback address no one listens on now (the OS picks the port).
fn free_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A validator's data directory in the devnet directory.
pub fn validator_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("validator-{index}"))
}

/// Deals `validators` setups on free loopback ports and writes each into its data directory.
pub fn init(dir: &Path, validators: usize) -> Result<Vec<Setup>> {
    if validators < 4 {
        bail!("a devnet needs at least 4 validators (3f+1 with f = 1)");
    }
    let addresses: Vec<(SocketAddr, SocketAddr)> =
        (0..validators).map(|_| Ok((free_addr()?, free_addr()?))).collect::<Result<_>>()?;
    let setups = deal_setups(&addresses);
    for (i, setup) in setups.iter().enumerate() {
        setup.write(&validator_dir(dir, i)).context("cannot write a validator's setup")?;
    }
    Ok(setups)
}

/// Starts `aicpw validator start` for validator `index` of the devnet in `dir`, its log beside
/// its data directory.
pub fn start_validator(dir: &Path, index: usize) -> Result<Child> {
    let data_dir = validator_dir(dir, index);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("validator-{index}.log")))?;
    Command::new(std::env::current_exe()?)
        .args(["validator", "start", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start a validator")
}

/// The API URL of each validator of `setups`.
pub fn api_urls(setups: &[Setup]) -> Vec<String> {
    setups
        .first()
        .map(|s| s.validators.iter().map(|v| format!("http://{}", v.api)).collect())
        .unwrap_or_default()
}

/// The finalized height a validator's API reports (`None` while it does not answer).
pub fn height(client: &Client) -> Option<u64> {
    client.get("/v1/status").ok()?["height"].as_u64()
}

/// Waits until every API answers with a finalized height of at least `height`.
pub fn wait_height(clients: &[Client], at_least: u64, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    while !clients.iter().all(|c| height(c).is_some_and(|h| h >= at_least)) {
        if started.elapsed() > timeout {
            let heights: Vec<Option<u64>> = clients.iter().map(height).collect();
            bail!("validators did not reach height {at_least}: {heights:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A devnet's running processes.
pub struct Devnet {
    pub apis: Vec<String>,
    pub children: Children,
}

/// Deals and starts `validators` validators in `dir` and waits until each finalized a block.
pub fn start(dir: &Path, validators: usize) -> Result<Devnet> {
    let setups = init(dir, validators)?;
    let mut children = Children(Vec::new(), dir.to_path_buf());
    for i in 0..validators {
        children.0.push(start_validator(dir, i)?);
    }
    let apis = api_urls(&setups);
    let clients: Vec<Client> = apis.iter().map(|url| Client::new(url)).collect();
    wait_height(&clients, 1, STARTUP_TIMEOUT)
        .with_context(|| format!("the devnet did not start; see the logs in {}", dir.display()))?;
    Ok(Devnet { apis, children })
}

/// `aicpw devnet`: starts the validators and `providers` provider agents (dev accounts 1..,
/// spread over the validators' APIs), writes `devnet.json` (processes, APIs) and runs until
/// interrupted or until every validator stopped.
pub fn run(
    validators: usize,
    providers: usize,
    dir: Option<PathBuf>,
    json_output: bool,
) -> Result<()> {
    let (dir, _temp) = match dir {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::Builder::new().prefix("aicpw-devnet-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let mut devnet = start(&dir, validators)?;
    if providers > 0 {
        crate::demo::check_sandbox()?;
    }
    for i in 0..providers {
        let url = &devnet.apis[i % devnet.apis.len()];
        devnet.children.0.push(start_provider(url, &dir, i as u32 + 1, 3_600_000, &[])?);
    }
    let pids: Vec<u32> = devnet.children.0.iter().map(Child::id).collect();
    let summary = json!({
        "dir": dir,
        "validators": devnet.apis.iter().enumerate().map(|(i, api)| json!({
            "api": api,
            "pid": pids[i],
            "data_dir": validator_dir(&dir, i),
        })).collect::<Vec<Value>>(),
        "providers": pids[validators..].to_vec(),
    });
    std::fs::write(dir.join(DEVNET_FILE), serde_json::to_string_pretty(&summary)?)?;
    if json_output {
        println!("{summary}");
    } else {
        println!("devnet: {validators} validators finalizing in {}", dir.display());
        for (i, api) in devnet.apis.iter().enumerate() {
            println!("  validator {i}: {api} (pid {}, aicpw --node {api} ...)", pids[i]);
        }
        println!(
            "  restart one: aicpw validator start --data-dir {}",
            validator_dir(&dir, 0).display()
        );
        println!("Ctrl-C stops them all.");
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let running = devnet.children.0[..validators]
            .iter_mut()
            .map(|c| c.try_wait().ok().flatten().is_none())
            .filter(|running| *running)
            .count();
        if running == 0 {
            bail!("every validator stopped; see the logs in {}", dir.display());
        }
    }
}
