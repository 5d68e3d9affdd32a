//! Tasks with network access (`network: full`) against real namespaces, slirp4netns and nftables:
//! egress to the internet works, the host's loopback, its LAN, private ranges and the cloud
//! metadata address do not, and the task cannot change the rules. Every address a test touches
//! is loopback or lives in a network namespace the test creates; nothing else is contacted.
//! Needs root (as the agent that runs such tasks does) and `scripts/setup.sh`'s tools.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use aicpw_provider::agent::{self, AgentConfig};
use aicpw_provider::client::Client;
use aicpw_provider::executor::{
    sandbox_available, ExecutionEvent, ExecutionRequest, Executor, LogStream, SandboxConfig,
    SandboxExecutor, Termination,
};
use aicpw_types::{Amount, Hardware, Keypair, NodeId};
use common::TestNode;

/// The port every test server listens on inside the test's own namespaces.
const PORT: u16 = 8080;

fn executor() -> &'static SandboxExecutor {
    static EXECUTOR: OnceLock<SandboxExecutor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        assert!(
            rustix::process::geteuid().is_root(),
            "network tasks run only under a root agent: run these tests as root"
        );
        if let Err(error) = sandbox_available() {
            panic!("the sandbox cannot start on this machine: {error}");
        }
        let executor = SandboxExecutor::new(SandboxConfig::default()).expect("sandbox executor");
        if let Err(error) = executor.network_self_test() {
            panic!("network tasks cannot be confined on this machine: {error}");
        }
        executor
    })
}

/// Runs a Python script as a task with network access; returns its stdout and termination.
fn run_with_network(script: &str) -> (Termination, String, String) {
    let root = tempfile::tempdir().expect("tempdir");
    for name in ["in", "out", "scratch"] {
        std::fs::create_dir(root.path().join(name)).expect("mkdir");
    }
    std::fs::write(root.path().join("in/probe.py"), script).expect("write script");
    let mut request = ExecutionRequest::new(
        "python3",
        vec!["probe.py".into()],
        root.path().join("in"),
        root.path().join("out"),
        root.path().join("scratch"),
    );
    request.limits.wall_time_secs = 60;
    request.network = true;
    let mut lines: Vec<(LogStream, String)> = Vec::new();
    let outcome = executor()
        .run(&request, &mut |event| {
            if let ExecutionEvent::Log { stream, line } = event {
                lines.push((stream, line));
            }
        })
        .expect("the task runs");
    let of = |wanted: LogStream| {
        let text: Vec<&str> =
            lines.iter().filter(|(s, _)| *s == wanted).map(|(_, l)| l.as_str()).collect();
        text.join("\n")
    };
    (outcome.termination, of(LogStream::Stdout), of(LogStream::Stderr))
}

/// A probe that connects to each `(label, address)` and prints `label reached` with the
/// server's greeting, or `label blocked` with the error.
fn probe_script(targets: &[(&str, &str, u16)]) -> String {
    let list: Vec<String> =
        targets.iter().map(|(label, ip, port)| format!("('{label}', '{ip}', {port})")).collect();
    format!(
        "import socket\n\
         for label, ip, port in [{}]:\n\
         \x20   try:\n\
         \x20       s = socket.create_connection((ip, port), timeout=5)\n\
         \x20       s.sendall(b'hello\\n')\n\
         \x20       data = s.recv(100)\n\
         \x20       print(label, 'reached' if data else 'closed', data.decode(errors='replace').strip())\n\
         \x20   except OSError as error:\n\
         \x20       print(label, 'blocked', error)\n",
        list.join(", ")
    )
}

/// The task's own view of its network and rules: the default route, and whether it may
/// flush the nftables rules of its namespace.
const SELF_CHECK: &str = "import subprocess\n\
    routes = open('/proc/net/route').read().splitlines()[1:]\n\
    default = [r.split()[0] for r in routes if r.split()[1] == '00000000']\n\
    print('default-route', ','.join(default))\n\
    flush = subprocess.run(['/usr/sbin/nft', 'flush', 'ruleset'], capture_output=True, text=True)\n\
    print('flush-exit', flush.returncode, flush.stderr.strip()[:80])\n";

#[test]
fn a_network_task_cannot_reach_the_host_loopback_through_any_address() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    // 127.0.0.1 is the task's own loopback; 10.0.2.2 is slirp4netns's gateway, which would lead
    // to the host's loopback without `--disable-host-loopback` and the rules.
    let script = probe_script(&[("loopback", "127.0.0.1", port), ("gateway", "10.0.2.2", port)])
        + SELF_CHECK;
    let (termination, stdout, stderr) = run_with_network(&script);
    assert_eq!(termination, Termination::Completed, "{stdout}\n{stderr}");
    assert!(stdout.contains("loopback blocked"), "{stdout}");
    assert!(stdout.contains("gateway blocked"), "{stdout}");
    assert!(!stdout.contains("reached"), "{stdout}");
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|error| error.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the host's listener saw a connection"
    );
    // The task has a working interface of its own, and cannot touch its rules.
    assert!(stdout.contains("default-route tap0"), "{stdout}");
    let flush = stdout.lines().find(|l| l.starts_with("flush-exit")).expect("flush line");
    assert!(!flush.starts_with("flush-exit 0"), "the task flushed its rules: {flush}");
}

/// A namespace the test creates, deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new(role: &str) -> Namespace {
        let name = format!("aicpw-test-{role}-{}", std::process::id());
        let mut stale = Command::new("ip");
        let _ = stale.args(["netns", "delete", &name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", &name]);
        Namespace(name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A Python server in this namespace, greeting every connection with the address it
    /// reached, on each of `addresses`; returns once all listen.
    fn serve(&self, addresses: &[&str]) -> Server {
        let script = format!(
            "import socket, threading\n\
             def serve(s, ip):\n\
             \x20   while True:\n\
             \x20       c, _ = s.accept()\n\
             \x20       c.sendall(('server at ' + ip + '\\n').encode())\n\
             \x20       c.close()\n\
             for ip in {addresses:?}:\n\
             \x20   s = socket.socket()\n\
             \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             \x20   s.bind((ip, {PORT}))\n\
             \x20   s.listen(16)\n\
             \x20   threading.Thread(target=serve, args=(s, ip), daemon=True).start()\n\
             print('listening', flush=True)\n\
             threading.Event().wait()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a test server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("server stdout");
        BufReader::new(stdout).read_line(&mut line).expect("server ready");
        assert_eq!(line.trim(), "listening");
        Server(child)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// A host of the test's own: namespace `host` (where the agent runs, loopback and LAN address
/// 203.0.113.1/24) and namespace `internet` behind its default route, holding a public
/// address (198.51.100.7), a private one (10.77.0.1), the metadata address (169.254.169.254)
/// and the LAN neighbour 203.0.113.2. A task run from `host` reaches only the public address.
#[test]
fn a_network_task_reaches_the_internet_but_not_the_lan_private_ranges_or_metadata() {
    executor(); // set up and checked in the machine's own namespace
    let host = Namespace::new("host");
    let internet = Namespace::new("internet");
    let (h, i) = (host.0.as_str(), internet.0.as_str());
    ip(&["link", "add", "aicpw-h0", "netns", h, "type", "veth", "peer", "aicpw-i0", "netns", i]);
    host.ip(&["addr", "add", "203.0.113.1/24", "dev", "aicpw-h0"]);
    host.ip(&["link", "set", "aicpw-h0", "up"]);
    host.ip(&["link", "set", "lo", "up"]);
    host.ip(&["route", "add", "default", "via", "203.0.113.2"]);
    internet.ip(&["addr", "add", "203.0.113.2/24", "dev", "aicpw-i0"]);
    internet.ip(&["link", "set", "aicpw-i0", "up"]);
    internet.ip(&["link", "set", "lo", "up"]);
    let far = ["198.51.100.7", "10.77.0.1", "169.254.169.254"];
    for address in far {
        internet.ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
    }
    let _far_servers = internet.serve(&[far[0], far[1], far[2], "203.0.113.2"]);
    let _host_servers = host.serve(&["127.0.0.1", "203.0.113.1"]);

    let script = probe_script(&[
        ("public", "198.51.100.7", PORT),
        ("private", "10.77.0.1", PORT),
        ("metadata", "169.254.169.254", PORT),
        ("lan", "203.0.113.2", PORT),
        ("host-address", "203.0.113.1", PORT),
        ("host-loopback-via-gateway", "10.0.2.2", PORT),
    ]);
    // The agent's side of the run (slirp4netns, the route lookup) happens in `host`.
    let host_path = host.path();
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let netns = File::open(&host_path).expect("open the host namespace");
                rustix::thread::move_into_link_name_space(
                    netns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("enter the host namespace");
                run_with_network(&script)
            })
            .join()
            .expect("the run thread")
    });
    let (termination, stdout, stderr) = outcome;
    assert_eq!(termination, Termination::Completed, "{stdout}\n{stderr}");
    // Egress works: the public address answers through slirp4netns.
    assert!(stdout.contains("public reached server at 198.51.100.7"), "{stdout}\n{stderr}");
    for label in ["private", "metadata", "lan", "host-address", "host-loopback-via-gateway"] {
        assert!(stdout.contains(&format!("{label} blocked")), "{label}: {stdout}");
    }
}

/// Runs the agent against `url` until it has registered; returns the node it serves as.
fn start_agent_once(url: &str, work_dir: &Path, allow_network: bool) -> NodeId {
    let config = AgentConfig {
        key: Keypair::dev(2),
        stake: Amount::tokens(1_000),
        price_per_hour: Amount(3_600_000),
        work_dir: work_dir.to_path_buf(),
        endpoint: "network-test".into(),
        hardware: Some(Hardware { cpu_cores: 2, memory_mb: 4_096, ..Default::default() }),
        region: String::new(),
        allow_network,
        containers: None,
        cache_bytes: aicpw_provider::cache::CACHE_BYTES_DEFAULT,
    };
    let executor = Arc::new(SandboxExecutor::new(SandboxConfig::default()).expect("executor"));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, registered) = mpsc::channel();
    let url = url.to_string();
    let agent_stop = stop.clone();
    let thread = std::thread::spawn(move || {
        agent::run(&url, config, executor, agent_stop, |node| {
            let _ = ready.send(node);
        })
    });
    let node = registered.recv_timeout(Duration::from_secs(60)).expect("the agent registers");
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("the agent thread").expect("the agent stops cleanly");
    node
}

/// The operator's choice is what the ledger (and so the matcher) sees: registered with
/// `--allow-network`, withdrawn by a restart without it, given again by a restart with it.
#[test]
fn the_agent_registers_the_operators_network_opt_in_and_follows_it_on_restart() {
    let node_server = TestNode::start(Default::default());
    let client = Client::new(&node_server.url);
    let work_dir = tempfile::tempdir().expect("work dir");
    let allows = |node: NodeId| {
        let record = client.get(&format!("/v1/nodes/{node}")).expect("node");
        record["hardware"]["allows_network"].as_bool().expect("the registered opt-in")
    };
    let node = start_agent_once(&node_server.url, work_dir.path(), true);
    assert!(allows(node), "registered with --allow-network");
    assert_eq!(start_agent_once(&node_server.url, work_dir.path(), false), node);
    assert!(!allows(node), "a restart without --allow-network withdraws it");
    assert_eq!(start_agent_once(&node_server.url, work_dir.path(), true), node);
    assert!(allows(node));
}
