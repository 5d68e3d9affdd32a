//! The command line of one sandbox: bubblewrap's mounts and namespaces, then the wrappers that
//! switch identity, set rlimits and pin CPUs, then the task with exactly its environment.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{
    gpus, ExecutionRequest, ExecutorError, Limits, SANDBOX_INPUT_DIR, SANDBOX_OUTPUT_DIR,
    SANDBOX_PROGRESS_FILE, SANDBOX_SCRATCH_DIR,
};

/// Address space a process may map, as a multiple of the memory limit plus a constant:
/// virtual reservations (thread arenas, mapped libraries) exceed resident memory, so the
/// rlimit is a backstop that bounds the damage between two monitor samples, and the monitor's
/// resident-memory total is the limit that normally applies.
const ADDRESS_SPACE_FACTOR: u64 = 2;
const ADDRESS_SPACE_SLACK_MB: u64 = 1024;
/// Files a task process may have open.
const FILES_OPEN_MAX: u32 = 4096;
/// Size of the task's `/dev/shm` (RAM) as a fraction of its memory limit, and at most.
const SHM_FRACTION_DIVISOR: u64 = 4;
const SHM_MB_MAX: u64 = 1024;
/// Extra seconds between `RLIMIT_CPU`'s `SIGXCPU` and its `SIGKILL`.
const CPU_HARD_LIMIT_GRACE_SECS: u64 = 1;
/// Directories searched for the sandbox tools. All lie under `/usr` or its merged-`/usr`
/// symlinks, so the same paths work inside the sandbox.
const TOOL_DIRECTORIES: [&str; 5] = ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"];
/// Top-level host paths that are bound read-only (or recreated as the same symlinks).
const ROOT_ENTRIES: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// `/etc` files every task gets: the dynamic loader's cache, time zone, name service basics.
const ETC_ALWAYS: [&str; 8] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "alternatives",
];
/// `/etc` files a task with network gets in addition: TLS trust store and the like; its
/// `resolv.conf` names the forwarder of its own namespace (`network::RESOLV_CONF`).
const ETC_NETWORK: [&str; 6] =
    ["gai.conf", "protocols", "services", "ssl", "ca-certificates", "pki"];
/// Host name inside the sandbox.
const SANDBOX_HOSTNAME: &str = "aicpw-sandbox";

/// What the sandbox needs to know about the host, found once per executor.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub tools: Tools,
    pub root_entries: Vec<RootEntry>,
    /// bubblewrap 0.8 and later can forbid nested user namespaces (`--disable-userns`).
    pub bwrap_disables_userns: bool,
}

impl Host {
    pub fn detect() -> Result<Host, ExecutorError> {
        let tools = Tools::find()?;
        let help = Command::new(&tools.bwrap)
            .arg("--help")
            .env_clear()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|source| ExecutorError::SandboxUnavailable {
                reason: format!("cannot run {}: {source}", tools.bwrap.display()),
            })?;
        let bwrap_disables_userns =
            String::from_utf8_lossy(&help.stdout).contains("--disable-userns");
        Ok(Host { tools, root_entries: host_root_entries(), bwrap_disables_userns })
    }
}

/// Absolute paths of the host programs the sandbox uses.
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    pub bwrap: PathBuf,
    pub setpriv: PathBuf,
    pub prlimit: PathBuf,
    pub taskset: PathBuf,
    pub env: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools, ExecutorError> {
        Ok(Tools {
            bwrap: find_tool("bwrap", "bubblewrap")?,
            setpriv: find_tool("setpriv", "util-linux")?,
            prlimit: find_tool("prlimit", "util-linux")?,
            taskset: find_tool("taskset", "util-linux")?,
            env: find_tool("env", "coreutils")?,
        })
    }
}

pub(crate) fn find_tool(name: &str, package: &str) -> Result<PathBuf, ExecutorError> {
    TOOL_DIRECTORIES
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ExecutorError::SandboxUnavailable {
            reason: format!(
                "`{name}` (Debian package {package}) not found in {}",
                TOOL_DIRECTORIES.join(", ")
            ),
        })
}

/// A top-level host path as the sandbox reproduces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RootEntry {
    Symlink { path: &'static str, target: PathBuf },
    Directory { path: &'static str },
}

fn host_root_entries() -> Vec<RootEntry> {
    let mut entries = Vec::new();
    for path in ROOT_ENTRIES {
        let Ok(metadata) = fs::symlink_metadata(path) else { continue };
        if metadata.file_type().is_symlink() {
            if let Ok(target) = fs::read_link(path) {
                entries.push(RootEntry::Symlink { path, target });
            }
        } else if metadata.is_dir() {
            entries.push(RootEntry::Directory { path });
        }
    }
    entries
}

/// Everything needed to start one sandbox.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub bwrap: PathBuf,
    /// The program and arguments bubblewrap is started under (empty: none); a task with
    /// network access is started in its own network namespace (`network::TaskNetwork`).
    pub launcher: Vec<OsString>,
    /// bubblewrap options, passed through a pipe (`--args 0`) so that host paths do not
    /// appear in the command line that the task can read from `/proc/1/cmdline`.
    pub bwrap_options: Vec<OsString>,
    /// The program bubblewrap runs: the privilege and limit wrappers, then the task.
    pub command_line: Vec<OsString>,
    pub sandbox_uid: Option<u32>,
}

/// The plan of one run: `sandbox_uid` when the agent is root, `cpus` when pinned, the GPU
/// device numbers it holds, the launcher of its network namespace.
pub(crate) fn plan(
    host: &Host,
    request: &ExecutionRequest,
    sandbox_uid: Option<u32>,
    cpus: Option<Vec<u32>>,
    gpus: &[u32],
    launcher: Vec<OsString>,
) -> Plan {
    Plan {
        bwrap: host.tools.bwrap.clone(),
        launcher,
        bwrap_options: bwrap_options(request, host, sandbox_uid.is_some(), gpus),
        command_line: command_line(&host.tools, request, sandbox_uid, cpus),
        sandbox_uid,
    }
}

/// The mounts and namespaces of the sandbox; `gpus` are the GPU device numbers bound into it.
pub(crate) fn bwrap_options(
    request: &ExecutionRequest,
    host: &Host,
    as_root: bool,
    gpus: &[u32],
) -> Vec<OsString> {
    let mut options = Options::default();
    options.add(["--ro-bind", "/usr", "/usr"]);
    for entry in &host.root_entries {
        match entry {
            RootEntry::Symlink { path, target } => {
                options.add(["--symlink"]);
                options.add([target.as_os_str(), Path::new(path).as_os_str()]);
            }
            RootEntry::Directory { path } => options.add(["--ro-bind", path, path]),
        }
    }
    let network_etc: &[&str] = if request.network { &ETC_NETWORK } else { &[] };
    for name in ETC_ALWAYS.iter().chain(network_etc) {
        let path = format!("/etc/{name}");
        options.add(["--ro-bind-try", path.as_str(), path.as_str()]);
    }
    if request.network {
        options.add(["--ro-bind", super::network::RESOLV_CONF, "/etc/resolv.conf"]);
    }
    let shm_bytes = (request.limits.memory_mb / SHM_FRACTION_DIVISOR).clamp(1, SHM_MB_MAX) << 20;
    options.add(["--proc", "/proc", "--dev", "/dev"]);
    for device in gpus.iter().map(|&number| gpus::device_path(number)) {
        options.add(["--dev-bind", device.as_str(), device.as_str()]);
    }
    if !gpus.is_empty() {
        for device in gpus::CONTROL_DEVICES {
            options.add(["--dev-bind-try", device, device]);
        }
    }
    options.add(["--perms", "1777", "--size", shm_bytes.to_string().as_str()]);
    options.add(["--tmpfs", "/dev/shm", "--remount-ro", "/dev"]);
    options.add(["--perms", "0755", "--dir", "/task"]);
    options.add(["--ro-bind"]);
    options.add([request.inputs_dir.as_os_str(), SANDBOX_INPUT_DIR.as_ref()]);
    options.add(["--bind"]);
    options.add([request.outputs_dir.as_os_str(), SANDBOX_OUTPUT_DIR.as_ref()]);
    options.add(["--bind"]);
    options.add([request.scratch_dir.as_os_str(), SANDBOX_SCRATCH_DIR.as_ref()]);
    // Nothing may be created in the sandbox's root tmpfs: it would be RAM outside the limits.
    options.add(["--remount-ro", "/", "--chdir", SANDBOX_INPUT_DIR]);
    options.add(["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]);
    options.add(["--hostname", SANDBOX_HOSTNAME, "--new-session", "--die-with-parent"]);
    if !request.network {
        // A task with network access lives in the namespace its launcher entered.
        options.add(["--unshare-net"]);
    }
    if as_root {
        // Only what `setpriv` needs to switch to the task's uid; it drops them again.
        options.add(["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]);
    } else {
        options.add(["--unshare-user"]);
        if host.bwrap_disables_userns {
            // Nested user namespaces would hand the task a fresh set of capabilities to
            // probe the kernel with; it has no use for them.
            options.add(["--disable-userns"]);
        }
    }
    options.0
}

#[derive(Default)]
struct Options(Vec<OsString>);

impl Options {
    fn add<const N: usize, T: AsRef<std::ffi::OsStr>>(&mut self, items: [T; N]) {
        self.0.extend(items.iter().map(|item| item.as_ref().to_os_string()));
    }
}

/// `[setpriv …] prlimit … [taskset …] env -i NAME=value… command args…`
pub(crate) fn command_line(
    tools: &Tools,
    request: &ExecutionRequest,
    sandbox_uid: Option<u32>,
    cpus: Option<Vec<u32>>,
) -> Vec<OsString> {
    let limits = &request.limits;
    let mut line: Vec<OsString> = Vec::new();
    let mut push = |item: &dyn AsRef<std::ffi::OsStr>| line.push(item.as_ref().to_os_string());
    if let Some(uid) = sandbox_uid {
        push(&tools.setpriv);
        for option in [format!("--reuid={uid}"), format!("--regid={uid}")] {
            push(&option);
        }
        for option in ["--clear-groups", "--no-new-privs", "--inh-caps=-all"] {
            push(&option);
        }
        push(&"--bounding-set=-all");
        push(&"--");
    }
    push(&tools.prlimit);
    for option in rlimit_options(limits, sandbox_uid.is_none()) {
        push(&option);
    }
    push(&"--");
    if let Some(cpus) = cpus {
        push(&tools.taskset);
        push(&"--cpu-list");
        let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
        push(&list.join(","));
    }
    push(&tools.env);
    push(&"-i");
    for (key, value) in task_environment(request) {
        push(&format!("{key}={value}"));
    }
    push(&request.command);
    for arg in &request.args {
        push(arg);
    }
    line
}

/// `prlimit` options. Without a dedicated uid the sandbox's own init process shares the
/// task's user (in its user namespace) and counts against `RLIMIT_NPROC`.
fn rlimit_options(limits: &Limits, init_shares_uid: bool) -> Vec<String> {
    let address_space_mb = limits
        .memory_mb
        .saturating_mul(ADDRESS_SPACE_FACTOR)
        .saturating_add(ADDRESS_SPACE_SLACK_MB);
    let processes = limits.processes_max.saturating_add(u32::from(init_shares_uid));
    let cpu_hard = limits.cpu_time_secs.saturating_add(CPU_HARD_LIMIT_GRACE_SECS);
    vec![
        format!("--as={}", address_space_mb.saturating_mul(1 << 20)),
        format!("--cpu={}:{cpu_hard}", limits.cpu_time_secs),
        format!("--nproc={processes}"),
        format!("--fsize={}", limits.disk_mb.saturating_mul(1 << 20)),
        format!("--nofile={FILES_OPEN_MAX}"),
        "--core=0".to_string(),
    ]
}

/// The task's whole environment: defaults, then the request's variables, then the reserved
/// ones (which validation keeps the request from setting).
pub(crate) fn task_environment(request: &ExecutionRequest) -> Vec<(String, String)> {
    let cores = request.limits.cpu_cores.to_string();
    let mut env: Vec<(String, String)> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", SANDBOX_SCRATCH_DIR),
        ("TMPDIR", SANDBOX_SCRATCH_DIR),
        ("LANG", "C.UTF-8"),
        // Progress lines must reach the executor while the task runs, not at exit.
        ("PYTHONUNBUFFERED", "1"),
        ("OMP_NUM_THREADS", cores.as_str()),
        ("AICPW_CPU_CORES", cores.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    env.extend(request.env.iter().cloned());
    for (key, value) in [
        ("AICPW_INPUT_DIR", SANDBOX_INPUT_DIR),
        ("AICPW_OUTPUT_DIR", SANDBOX_OUTPUT_DIR),
        ("AICPW_PROGRESS_FILE", SANDBOX_PROGRESS_FILE),
    ] {
        env.push((key.to_string(), value.to_string()));
    }
    env
}

#[cfg(test)]
mod tests;
