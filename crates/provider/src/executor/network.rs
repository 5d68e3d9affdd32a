//! Network access for tasks that ask for it (`network: full`): egress to the internet only.
//!
//! Such a task never shares the host's network. Each run gets a network namespace of its own
//! (`ip netns add`), reached only through `slirp4netns` (user-mode TCP/IP: the task's packets
//! become ordinary sockets of a host process that keeps no capability but
//! `CAP_NET_BIND_SERVICE`, in an empty root, under seccomp), started with
//! `--disable-host-loopback` so the gateway address does not lead to the host's `127.0.0.1`.
//! Before the task starts, an nftables table in the task's namespace rejects every packet that
//! leaves it for anything but the internet: loopback, private (10/8, 172.16/12, 192.168/16),
//! shared (100.64/10), link-local (169.254/16: cloud metadata), multicast and reserved ranges,
//! every destination the host reaches other than through its default route (its own addresses,
//! the LANs it is on, its static routes), and all of IPv6 (slirp4netns gives the task none).
//! The one exception is DNS to slirp4netns's forwarder (10.0.2.3). The task runs without
//! `CAP_NET_ADMIN` in that namespace (an unprivileged uid with an empty bounding set), so it
//! can change neither the rules, nor the routes, nor the addresses.
//!
//! Creating a network namespace and nftables rules needs root: only a root agent runs network
//! tasks. The tools are Debian packages that `scripts/setup.sh` installs: `slirp4netns`,
//! `nftables` (`nft`), `iproute2` (`ip`) and `util-linux` (`nsenter`, `unshare`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::command::find_tool;
use super::ExecutorError;

/// The address of slirp4netns's DNS forwarder inside the task's namespace (its default network
/// is 10.0.2.0/24: the task is 10.0.2.100, the gateway 10.0.2.2).
const DNS_FORWARDER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The task's interface, as slirp4netns names and configures it.
const TASK_INTERFACE: &str = "tap0";
/// The MTU of that interface: slirp4netns's largest, which is also its fastest.
const MTU: u32 = 65520;
/// Longest wait for slirp4netns to configure the interface.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for slirp4netns to exit once its exit pipe is closed, before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(2);
/// The nftables table of the rules, in the task's namespace.
const TABLE: &str = "aicpw_task";

/// Destinations no task reaches whatever the host's routes: IPv4 special-purpose ranges.
const BLOCKED_RANGES: [(&str, &str); 11] = [
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier NAT; some clouds' metadata)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata at 169.254.169.254)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
];

/// The resolver configuration network tasks see as `/etc/resolv.conf` (root-owned, beside
/// the uid locks).
pub(crate) const RESOLV_CONF: &str = "/run/aicpw-sandbox/resolv.conf";

/// Absolute paths of the host programs a network namespace needs.
#[derive(Clone, Debug)]
pub(crate) struct NetworkTools {
    ip: PathBuf,
    nft: PathBuf,
    nsenter: PathBuf,
    unshare: PathBuf,
    slirp4netns: PathBuf,
    sh: PathBuf,
}

impl NetworkTools {
    /// Finds the tools, or says which package is missing.
    pub fn find() -> Result<NetworkTools, ExecutorError> {
        let find = |name: &str, package: &str| {
            find_tool(name, package)
                .map_err(|error| ExecutorError::NetworkUnavailable { reason: error.to_string() })
        };
        Ok(NetworkTools {
            ip: find("ip", "iproute2")?,
            nft: find("nft", "nftables")?,
            nsenter: find("nsenter", "util-linux")?,
            unshare: find("unshare", "util-linux")?,
            slirp4netns: find("slirp4netns", "slirp4netns")?,
            sh: find("sh", "dash")?,
        })
    }
}

/// An IPv4 prefix the rules reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Prefix {
    pub address: Ipv4Addr,
    pub length: u8,
}

impl Prefix {
    /// `a.b.c.d` or `a.b.c.d/n`, as `ip` prints a route's destination.
    pub fn parse(text: &str) -> Option<Prefix> {
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, length.parse().ok()?),
            None => (text, 32),
        };
        let address: Ipv4Addr = address.parse().ok()?;
        (length <= 32).then_some(Prefix { address, length })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// Every IPv4 destination the host reaches other than through a default route, from the
/// routes of all its tables (`ip -4 -j route show table all`): its own addresses (the `local`
/// table), the networks it is on, its static routes.
fn host_routes(tools: &NetworkTools) -> Result<Vec<Prefix>, ExecutorError> {
    let output = Command::new(&tools.ip)
        .args(["-4", "-j", "route", "show", "table", "all"])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ExecutorError::io("run `ip route`", source))?;
    if !output.status.success() {
        return Err(ExecutorError::NetworkUnavailable {
            reason: format!(
                "`ip route` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    parse_routes(&output.stdout).ok_or_else(|| ExecutorError::NetworkUnavailable {
        reason: "cannot read the routes that `ip -j route` printed".into(),
    })
}

/// The destinations of `ip -j` routes, default routes left out; `None` if one is unreadable
/// (a rule set that might miss a route is not used).
pub(crate) fn parse_routes(json: &[u8]) -> Option<Vec<Prefix>> {
    let routes: Vec<serde_json::Value> = serde_json::from_slice(json).ok()?;
    let mut prefixes = Vec::new();
    for route in &routes {
        match route["dst"].as_str()? {
            "default" => {}
            dst => prefixes.push(Prefix::parse(dst)?),
        }
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    Some(prefixes)
}

/// The nftables rules of a task's namespace: loopback inside it is fine, DNS goes to the
/// forwarder, and everything but the internet is rejected (`admin-prohibited`, so a connection
/// fails at once instead of timing out).
pub(crate) fn ruleset(host_routes: &[Prefix]) -> String {
    let reject = "reject with icmpx type admin-prohibited";
    let mut rules = format!(
        "table inet {TABLE} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\toifname \"lo\" accept\n\
         \t\tmeta nfproto ipv6 {reject}\n\
         \t\tip daddr {DNS_FORWARDER} udp dport 53 accept\n\
         \t\tip daddr {DNS_FORWARDER} tcp dport 53 accept\n"
    );
    let fixed = BLOCKED_RANGES.iter().filter_map(|(range, _)| Prefix::parse(range));
    for prefix in fixed.chain(host_routes.iter().copied()) {
        let _ = writeln!(rules, "\t\tip daddr {prefix} {reject}");
    }
    rules.push_str("\t}\n}\n");
    rules
}

/// The network namespace of one run, with slirp4netns attached and the rules in place. Dropping
/// it stops slirp4netns and deletes the namespace.
#[derive(Debug)]
pub(crate) struct TaskNetwork {
    tools: NetworkTools,
    name: String,
    slirp: Option<Child>,
    /// slirp4netns exits when this pipe closes, also when the agent dies.
    exit: Option<ChildStdin>,
}

impl TaskNetwork {
    /// The network of a run: none unless it asks for network access, which needs a
    /// root agent (`sandbox_uid`, the run's uid slot).
    pub fn for_run(
        network: bool,
        sandbox_uid: Option<u32>,
    ) -> Result<Option<TaskNetwork>, ExecutorError> {
        match (network, sandbox_uid) {
            (false, _) => Ok(None),
            (true, Some(uid)) => TaskNetwork::open(uid).map(Some),
            (true, None) => Err(ExecutorError::NetworkUnavailable {
                reason: "the agent does not run as root, which a task's own network namespace \
                         and its rules need"
                    .into(),
            }),
        }
    }

    /// Creates the namespace of run `slot` (a root agent's uid slot: one run at a time holds
    /// it, so the name is free unless a crashed agent left it, in which case it is replaced).
    pub fn open(slot: u32) -> Result<TaskNetwork, ExecutorError> {
        let tools = NetworkTools::find()?;
        let name = format!("aicpw-task-{slot}");
        // A namespace of this name is a leftover of a crashed run: never reuse its rules.
        let _ = run(&tools.ip, &["netns", "delete", &name], None);
        run(&tools.ip, &["netns", "add", &name], None)?;
        // From here on, dropping `network` deletes the namespace again.
        let mut network = TaskNetwork { tools, name, slirp: None, exit: None };
        let rules = ruleset(&host_routes(&network.tools)?);
        let netns = network.netns_option();
        let nft = network.tools.nft.to_string_lossy().into_owned();
        run(&network.tools.nsenter, &[&netns, "--", &nft, "-f", "-"], Some(rules.as_bytes()))?;
        network.start_slirp()?;
        write_resolv_conf()?;
        Ok(network)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn netns_option(&self) -> String {
        format!("--net={}", self.path().display())
    }

    /// Starts slirp4netns on the namespace and waits until it has configured the interface.
    /// It runs in a private mount namespace of its own, so that its sandbox (an empty root,
    /// every capability dropped) cannot unmount the shared `/run/netns` entries.
    fn start_slirp(&mut self) -> Result<(), ExecutorError> {
        let mtu = format!("--mtu={MTU}");
        let mut child = Command::new(&self.tools.sh)
            // The ready byte goes to fd 3, our stdout pipe; slirp4netns's messages go nowhere.
            .args(["-c", "exec \"$@\" 3>&1 1>/dev/null 2>/dev/null", "sh"])
            .arg(&self.tools.unshare)
            .args(["--mount", "--propagation", "private", "--"])
            .arg(&self.tools.slirp4netns)
            .args(["--configure", mtu.as_str(), "--disable-host-loopback", "--enable-sandbox"])
            .args(["--enable-seccomp", "--ready-fd=3", "--exit-fd=0", "--netns-type=path"])
            .arg(self.path())
            .arg(TASK_INTERFACE)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ExecutorError::io("start slirp4netns", source))?;
        self.exit = child.stdin.take();
        let ready = child.stdout.take();
        self.slirp = Some(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader =
            std::thread::Builder::new().name("aicpw-slirp-ready".into()).spawn(move || {
                let mut byte = [0u8; 1];
                let read = ready.map(|mut pipe| pipe.read(&mut byte));
                let _ = sender.send(matches!(read, Some(Ok(1))) && byte[0] == b'1');
            });
        reader.map_err(|source| ExecutorError::io("start slirp4netns ready reader", source))?;
        // On a timeout the reader ends too: dropping `self` kills slirp4netns, closing the pipe.
        match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(true) => Ok(()),
            outcome => Err(ExecutorError::NetworkUnavailable {
                reason: format!(
                    "slirp4netns did not configure the task's network within {READY_TIMEOUT:?} \
                     ({outcome:?})"
                ),
            }),
        }
    }

    /// What bubblewrap is started under so that the sandbox lives in this namespace.
    pub fn launcher(&self) -> Vec<OsString> {
        vec![self.tools.nsenter.clone().into(), self.netns_option().into(), "--".into()]
    }
}

impl Drop for TaskNetwork {
    fn drop(&mut self) {
        // Closing the exit pipe ends slirp4netns; kill it if it lingers.
        self.exit.take();
        if let Some(mut slirp) = self.slirp.take() {
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while matches!(slirp.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = slirp.kill();
            let _ = slirp.wait();
        }
        if let Err(error) = run(&self.tools.ip, &["netns", "delete", &self.name], None) {
            tracing::warn!("could not delete network namespace {}: {error}", self.name);
        }
    }
}

/// Runs a setup command to its end, with `input` on its stdin; its stderr is the error.
fn run(program: &Path, args: &[&str], input: Option<&[u8]>) -> Result<(), ExecutorError> {
    let describe = || format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecutorError::io(format!("start {}", describe()), source))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input)
            .map_err(|source| ExecutorError::io(format!("write to {}", describe()), source))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|source| ExecutorError::io(format!("wait for {}", describe()), source))?;
    if !output.status.success() {
        return Err(ExecutorError::NetworkUnavailable {
            reason: format!(
                "`{}` failed: {}",
                describe(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Writes the resolver configuration of network tasks: slirp4netns's DNS forwarder, the only
/// resolver their rules let through.
fn write_resolv_conf() -> Result<(), ExecutorError> {
    let path = Path::new(RESOLV_CONF);
    let text = format!("nameserver {DNS_FORWARDER}\n");
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|source| ExecutorError::io(format!("write {RESOLV_CONF}"), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unprivileged_agent_refuses_network_tasks_and_says_what_is_needed() {
        assert!(TaskNetwork::for_run(false, None).expect("no network asked").is_none());
        let error = TaskNetwork::for_run(true, None).expect_err("needs root");
        assert!(matches!(error, ExecutorError::NetworkUnavailable { .. }), "{error}");
        let message = error.to_string();
        for needed in ["root", "--allow-network", "scripts/setup.sh", "slirp4netns", "nftables"] {
            assert!(message.contains(needed), "{needed}: {message}");
        }
    }

    #[test]
    fn route_destinations_are_parsed_and_defaults_left_out() {
        let json = br#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
            {"dst":"192.0.2.0/24","dev":"eth0"},
            {"type":"local","dst":"192.0.2.2","dev":"eth0","table":"local"},
            {"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local"},
            {"dst":"192.0.2.0/24","dev":"eth1"}]"#;
        let prefixes = parse_routes(json).expect("routes");
        let shown: Vec<String> = prefixes.iter().map(Prefix::to_string).collect();
        assert_eq!(shown, ["127.0.0.0/8", "192.0.2.0/24", "192.0.2.2/32"]);
    }

    #[test]
    fn an_unreadable_route_refuses_the_whole_rule_set() {
        assert_eq!(parse_routes(br#"[{"dst":"192.0.2.0/33"}]"#), None);
        assert_eq!(parse_routes(br#"[{"dst":"fe80::/64"}]"#), None);
        assert_eq!(parse_routes(br#"[{"dst":"10.0.0.0/8; flush ruleset"}]"#), None);
        assert_eq!(parse_routes(br#"[{"dev":"eth0"}]"#), None);
        assert_eq!(parse_routes(b"not json"), None);
    }

    #[test]
    fn the_rules_reject_every_special_range_and_host_route_but_let_dns_through() {
        let route = Prefix::parse("203.0.113.0/24").expect("prefix");
        let rules = ruleset(&[route]);
        for (range, _) in BLOCKED_RANGES {
            assert!(rules.contains(&format!("ip daddr {range} reject")), "{range}: {rules}");
        }
        assert!(rules.contains("ip daddr 203.0.113.0/24 reject"), "{rules}");
        assert!(rules.contains("meta nfproto ipv6 reject"), "{rules}");
        // DNS to the forwarder is accepted before 10/8 is rejected.
        let dns = rules.find("ip daddr 10.0.2.3 udp dport 53 accept").expect("dns rule");
        let private = rules.find("ip daddr 10.0.0.0/8 reject").expect("10/8 rule");
        assert!(dns < private, "{rules}");
    }
}
