//! The `aicpw` command: run a node or a provider, send transactions, submit tasks, query the
//! ledger, use the content store, run the demo and the benchmarks.

mod bench_challenge;
mod bench_cheaters;
#[cfg(feature = "consensus")]
mod bench_consensus;
mod bench_dispatch;
mod bench_ledger;
mod bench_match;
mod bench_store;
mod commands;
mod demo;
#[cfg(feature = "consensus")]
mod devnet;
mod injector;
mod known_answers;
mod requester;
mod sim;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "aicpw", version, about = "AICPW: a decentralized marketplace for AI compute")]
struct Cli {
    /// The node's API address.
    #[arg(long, global = true, env = "AICPW_NODE", default_value = "http://127.0.0.1:8645")]
    node: String,
    /// How logs are written to stderr: `text` for people, `json` (one object a line, with the
    /// span and event fields) for log collectors. The level comes from `RUST_LOG` (default warn).
    #[arg(long, global = true, env = "AICPW_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run or check a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Create and show account keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Send a transaction (waits until it is committed unless --no-wait).
    #[command(subcommand)]
    Tx(TxCommand),
    /// Read the ledger.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Submit, follow and collect tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run a provider agent, or ask why a node gets no work.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Put files into the node's content store and get them back.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Start a local network (node, 3 providers, requester), run a real task end to end, settle.
    Demo {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Keep the temporary directory (logs, data) instead of deleting it.
        #[arg(long)]
        keep: bool,
    },
    /// Run the seeded whole-network simulation: the honest network with faults, and the red team.
    Sim {
        /// A scenario name, or `all`.
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Seeds per scenario (runs are reproducible by seed).
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        #[arg(long)]
        json: bool,
        /// Run validators under BFT consensus (Commonware simplex on its deterministic runtime
        /// and simulated network) instead of the single sequencer; needs the `consensus` feature.
        #[arg(long)]
        consensus: bool,
        /// With --consensus: `all`, `none`, or a comma list of crash, partition, lossy, liar.
        #[arg(long, default_value = "all")]
        faults: String,
    },
    /// Start a local network of validators under BFT consensus on loopback, each a process
    /// with its own data directory, keys and API (any of them serves the CLI and providers);
    /// needs the `consensus` feature.
    Devnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Provider agents to start (dev accounts 1.., spread over the validators).
        #[arg(long, default_value_t = 0)]
        providers: usize,
        /// Where the validators keep their data (a temporary directory by default).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the validators' APIs and processes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one validator (see `devnet`); needs the `consensus` feature.
    #[command(subcommand)]
    Validator(ValidatorCommand),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum ValidatorCommand {
    /// Run the validator whose setup (`validator.json`: keys, share, the set) is in its data
    /// directory; it resumes from the blocks committed there and catches up from its peers.
    Start {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start a node: the single sequencer of a local network, with its API and content store.
    Start {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8645")]
        listen: String,
        /// Create a dev chain with funded, deterministic accounts (see `keys dev`) if new.
        #[arg(long)]
        dev: bool,
        /// Key of the account that receives block fees (default: dev account 0 on dev chains).
        #[arg(long)]
        proposer_key: Option<PathBuf>,
        /// Bytes of content one account may keep in the store (uploads held, and those open
        /// tasks name).
        #[arg(long, default_value_t = aicpw_node::StorePolicy::default().quota_bytes)]
        store_quota_bytes: u64,
        /// Seconds content is held after its upload, and after an open task last named it;
        /// then it is collected.
        #[arg(long, default_value_t = aicpw_node::StorePolicy::default().hold_ms / 1000)]
        store_hold_secs: u64,
        /// Seconds an unfinished upload waits for its uploader to resume it; then it is dropped.
        #[arg(long, default_value_t = aicpw_node::StorePolicy::default().upload_idle_ms / 1000)]
        store_upload_idle_secs: u64,
        /// Connections one client address may hold at once; more are closed on arrival. Raise
        /// it where many provider agents share one address (one machine, one NAT).
        #[arg(long, default_value_t = aicpw_node::server::CONNECTIONS_PER_ADDRESS_MAX)]
        connections_per_address: usize,
    },
    /// Re-execute the stored block log from genesis and check it ends at the stored state root.
    Replay {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new random key.
    New {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show a key file's address (on the last line).
    Show { file: PathBuf },
    /// Write the N deterministic dev keys funded by a dev genesis (dev-0.json ...).
    Dev {
        count: u32,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct Send {
    /// Return once the node accepted the transaction, without waiting for its block.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
enum TxCommand {
    /// Move tokens to another account.
    Transfer {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: String,
        /// Amount in base units.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: Send,
    },
    /// Bond stake (needed to register provider nodes).
    Bond {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: Send,
    },
    /// Start unbonding stake; it becomes withdrawable after the unbonding delay.
    Unbond {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: Send,
    },
    /// Move matured unbonded stake back to the balance.
    Withdraw {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        send: Send,
    },
}

#[derive(Subcommand)]
enum QueryCommand {
    /// An account: balance, nonce, stake (amounts in base units).
    Account {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// A provider node.
    Node {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// A task.
    Task {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// A block by height, or `latest`.
    Block {
        height: String,
        #[arg(long)]
        json: bool,
    },
    /// The chain: height, state root, supply.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Upload a task's inputs (sealed), lock its budget in escrow, grant the content key to the
    /// nodes placed on it at once, print the task id. Nodes placed later (when none was free,
    /// replacements, auditors) get the key from `task watch ID --key KEY`; a node not granted
    /// within the ledger's grant wait (30 s) is released and paid its wait from the budget.
    Submit {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Submit it as a known-answer task: a directory holding the outputs it must produce.
        /// Prints the answer hash and the salt to keep for `task reveal-answer`.
        #[arg(long)]
        known_answer: Option<PathBuf>,
        /// Let the task file name inputs outside its own directory (absolute paths, `..`, links
        /// leading out). Without it such a task file is refused (code 650).
        #[arg(long)]
        allow_input_outside: bool,
    },
    /// Open the known answer of a task submitted with `--known-answer`: a result that differs is
    /// slashed and the task refunded; a matching one is accepted.
    RevealAnswer {
        id: u64,
        /// The answer hash `task submit --known-answer` printed.
        #[arg(long)]
        answer: String,
        /// The salt `task submit --known-answer` printed.
        #[arg(long)]
        salt: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Dispute a verified result before accepting it: a committee of two other nodes re-runs
    /// the task; the bond (at least two runs at the maximum price) pays them.
    Dispute {
        id: u64,
        /// Bond in base units.
        #[arg(long)]
        bond: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Show a task.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Follow a task's progress until it has a result or ends; with --key, grant the content
    /// key to each node placed on it meanwhile (and to no other).
    Watch {
        id: u64,
        /// The requester's key: grant the task's content key to the nodes placed on it.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Download, check and decrypt a task's result, then accept it (which pays the provider).
    /// Files are only ever created in --out: an entry of the result that already exists there
    /// (a file, a directory in the way, a link) is refused (code 652), never followed.
    Result {
        id: u64,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Do not accept the result on the ledger.
        #[arg(long)]
        no_accept: bool,
    },
    /// Cancel a task: its escrow back while queued; later only verified work is paid (intervals
    /// already released, upheld results, or without verification the time a provider ran it) and
    /// the rest is refunded. While results revealed against each other are being judged, the
    /// cancel waits for the verdict (the loser is still slashed), then the task ends cancelled;
    /// a second cancel meanwhile is refused (510 CancelPending).
    Cancel {
        id: u64,
        #[arg(long)]
        key: PathBuf,
    },
    /// Rate the provider of a completed task, 1 to 5.
    Rate {
        id: u64,
        stars: u8,
        #[arg(long)]
        key: PathBuf,
    },
    /// Explain why a task waits: which requirement no node meets.
    Why {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Keep the known-answer library: tasks whose answer this requester computed itself.
    #[command(subcommand)]
    KnownAnswer(KnownAnswerCommand),
    /// Mix known-answer tasks from the library into this account's tasks and reveal their answers.
    ///
    /// Follows the node's events until stopped. For each task the account submits (by any
    /// process), it draws with probability --rate whether to submit a library entry too, after a
    /// random delay, exactly like a normal task of the account. It reveals the answer as soon as
    /// the result is verified (the ledger takes it only while the result awaits acceptance: 10
    /// minutes by default) and prints one line per injection, confirmation and caught provider.
    /// Keep it running while the account submits; its journal (injector.json in the library)
    /// survives restarts.
    InjectKnownAnswers {
        /// The account's key: its tasks are the traffic, and it signs the injections.
        #[arg(long)]
        key: PathBuf,
        /// The library directory [default: ~/.aicpw/known-answers].
        #[arg(long)]
        library: Option<PathBuf>,
        /// Share of the account's tasks followed by an injection, in parts per million; 0
        /// injects nothing (pending injections are still revealed). At most 100,000 (10%) unless the environment sets
        /// AICPW_TEST_ANY_KNOWN_ANSWER_RATE=1 (for tests: up to 1,000,000).
        #[arg(long, visible_alias = "known-answer-rate", default_value_t = injector::RATE_DEFAULT_PPM)]
        rate: u32,
        /// Injections of one entry before it is retired (a provider that saw an entry's inputs
        /// before could recognise them), 1 to 1000.
        #[arg(long, default_value_t = injector::USES_DEFAULT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(injector::USES_MAX)))]
        uses_max: u32,
        /// Longest random wait between the task that drew an injection and the injection, in
        /// seconds (0 to 3600).
        #[arg(long, default_value_t = injector::DELAY_DEFAULT_SECS,
              value_parser = clap::value_parser!(u64).range(0..=injector::DELAY_MAX_SECS))]
        delay_max_secs: u64,
    },
}

#[derive(Subcommand)]
enum KnownAnswerCommand {
    /// Run a task file twice in the local sandbox (the providers' executor, the file's limits)
    /// and keep its inputs, terms and answer hash in the library. Refuses a task whose two
    /// answers differ, and tasks with network access, GPUs or a container runtime.
    Add {
        file: PathBuf,
        /// The library directory [default: ~/.aicpw/known-answers].
        #[arg(long)]
        library: Option<PathBuf>,
    },
    /// List the library's entries, how often each was injected, and the injector's totals.
    List {
        #[arg(long)]
        library: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Register this machine (bonding the stake if needed) and run assigned tasks in the sandbox.
    Start {
        #[arg(long)]
        key: PathBuf,
        /// Stake to keep bonded, in base units (at least the network's node minimum).
        #[arg(long, default_value = "1000000000")]
        stake: String,
        #[arg(long)]
        work_dir: PathBuf,
        /// Price per hour of this machine, in base units.
        #[arg(long, default_value = "3600000")]
        price: String,
        /// The region this machine is in (tasks may require one), e.g. eu-west.
        #[arg(long, default_value = "")]
        region: String,
        /// Also take tasks that ask for network access (`network: full`). Each runs in its own
        /// network namespace with egress to the internet only (no host loopback, LAN, private,
        /// link-local or cloud metadata addresses). Needs root and slirp4netns, nftables and
        /// iproute2 (`scripts/setup.sh`); checked at start.
        #[arg(long)]
        allow_network: bool,
        /// Also take container tasks (`runtime: container`), run on the local Docker Engine
        /// (`DOCKER_HOST`, or /var/run/docker.sock; `scripts/setup.sh` installs and starts one).
        /// Checked at start: the engine must answer.
        #[arg(long)]
        containers: bool,
        /// With --containers: the only images taken (`sha256:<hex>`, an image id or a registry
        /// digest; repeat the flag). None: any image a task names by digest.
        #[arg(long = "image")]
        images: Vec<String>,
        /// With --containers: the largest image taken, in MB (a shipped archive, or the image
        /// in the engine).
        #[arg(long, default_value = "16384")]
        image_mb_max: u64,
        /// Bytes of content named by CID (datasets, models) kept in `work_dir/cache` for later
        /// tasks; the least recently used goes first.
        #[arg(long, default_value_t = aicpw_provider::cache::CACHE_BYTES_DEFAULT)]
        cache_bytes: u64,
    },
    /// Explain why a node gets no work.
    Why {
        node: u64,
        #[arg(long)]
        json: bool,
    },
    /// Ask the stakers to unfreeze a frozen node (its owner's key).
    Appeal {
        node: u64,
        #[arg(long)]
        key: PathBuf,
    },
    /// Vote on a frozen node's appeal, weighted by the key's bonded stake.
    Vote {
        node: u64,
        /// Vote to unfreeze; without it, the vote is to keep the node frozen.
        #[arg(long)]
        approve: bool,
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Add a file or directory; prints its CID (the same as `ipfs add`).
    Add {
        path: PathBuf,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        cid_version: u8,
        /// Key of the account that signs the upload; the content counts against its quota.
        #[arg(long, required_unless_present = "only_hash")]
        key: Option<PathBuf>,
        /// Only compute the CID, here, without a node (as `ipfs add --only-hash`).
        #[arg(long, conflicts_with = "seal")]
        only_hash: bool,
        /// Seal the file first (chunked XChaCha20-Poly1305 under a key only this account derives):
        /// its tasks name it by CID (`inputs_by_cid`) and grant its key per task.
        #[arg(long)]
        seal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Get a file or directory by CID, checking every block.
    Get {
        cid: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where `bench dispatch` runs its probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeArg {
    Sandbox,
    Container,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Signed transfers per second through decode, batch verify, apply and durable commit.
    Ledger {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1_000_000)]
        accounts: usize,
        #[arg(long, default_value_t = 200_000)]
        txs: usize,
    },
    /// Submit → process started in the sandbox: a dev node and provider agent processes (as the
    /// demo starts them), requesters submitting concurrently as `task submit` does.
    Dispatch {
        #[arg(long)]
        json: bool,
        /// Tasks submitted in all.
        #[arg(long, default_value_t = 1_000)]
        tasks: usize,
        /// Requesters submitting at the same time, each its tasks one after another.
        #[arg(long, default_value_t = 10)]
        requesters: usize,
        /// Provider agents (`aicpw provider start` processes, bubblewrap sandbox).
        #[arg(long, default_value_t = 20)]
        providers: usize,
        /// Tasks per second offered in all, evenly spaced and spread over the requesters (each
        /// starts a task on its schedule, or when its previous `task submit` returned if that is
        /// later); 0: each requester submits as soon as its previous `task submit` returned.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Keep the temporary directory (node and provider logs, data) instead of deleting it.
        #[arg(long)]
        keep: bool,
        /// Where the probes run: the bubblewrap sandbox, or containers of the local Docker
        /// Engine (providers started with `--containers`).
        #[arg(long, value_enum, default_value = "sandbox")]
        runtime: RuntimeArg,
        /// With `--runtime container`: the probes' image, by digest (default: the engine's
        /// aicpw/busybox:latest, built by `scripts/container-image.sh`).
        #[arg(long)]
        image: Option<String>,
    },
    /// Content store: MB/s of `store add` and `store get` of files of each size through a dev
    /// node's API, and the peak memory of the node and of the client.
    Store {
        #[arg(long)]
        json: bool,
        /// File sizes in MiB, one run each (1 GiB and 10 GiB by default).
        #[arg(long, value_delimiter = ',', default_values_t = [1024u64, 10240])]
        sizes_mib: Vec<u64>,
        /// Also check each file's CID against js-ipfs' UnixFS importer: the path of
        /// `tools/ipfs-cid/cid.mjs` (after `scripts/setup.sh` installed it).
        #[arg(long)]
        js_ipfs_tool: Option<PathBuf>,
    },
    /// Capacity challenge: solver speed against this machine's INT8 peak, overhead, detection;
    /// built with `--features cuda`, also the GPU solver's against the GPU's vendor peak.
    Challenge {
        #[arg(long)]
        json: bool,
        /// Matrix edge; 0 is the size the ledger would give this machine.
        #[arg(long, default_value_t = 0)]
        n: u32,
        /// Solver threads; 0 is all cores.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Tiles opened per challenge.
        #[arg(long, default_value_t = 256)]
        k: u32,
    },
    /// Finality and signed transfers per second of validators on loopback (a devnet of
    /// validator processes loaded over their APIs); needs the `consensus` feature.
    Consensus {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Signed transfers in the load.
        #[arg(long, default_value_t = 20_000)]
        txs: usize,
        /// Accounts sending the load, each to one validator, one thread each.
        #[arg(long, default_value_t = 64)]
        senders: usize,
        #[arg(long)]
        json: bool,
    },
    /// Placements per second of the matcher on a synthetic population.
    Match {
        #[arg(long, default_value_t = 100_000)]
        nodes: usize,
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Err(error) = commands::run(&cli.node, cli.command) {
        let code = error
            .downcast_ref::<aicpw_provider::client::ClientError>()
            .and_then(|e| e.reject())
            .map(|r| format!(" (code {})", r.code()))
            .unwrap_or_default();
        eprintln!("error{code}: {error:#}");
        std::process::exit(1);
    }
}
