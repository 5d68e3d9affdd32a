//! Kernel-enforced limits of one run: a cgroup of its own for memory (everything the kernel
//! charges to it: anonymous memory, shared memory, memfds, tmpfs and page cache, without swap),
//! processes and threads (`pids`) and CPU bandwidth (a quota of `cpu_cores` CPUs, however wide
//! the task sets its affinity). bubblewrap is moved into it before it reads its options, so
//! every process of the sandbox starts inside; the agent reads the kernel's own out-of-memory
//! kill count for the verdict and kills what is left in it at the end.
//!
//! Both layouts are supported: cgroup v2 (the `memory`, `pids` and `cpu` controllers enabled
//! below `/sys/fs/cgroup`, where the agent, as root, creates `aicpw/`) and the v1 controllers
//! mounted separately (Docker's hybrid layout), where runs are created below the agent's own
//! cgroup of each controller, so the host's limits on the agent still cover its tasks.

use std::fs;
use std::path::{Path, PathBuf};

use super::{procfs, ExecutorError, Limits};

const V1_ROOT: &str = "/sys/fs/cgroup";
const V2_ROOT: &str = "/sys/fs/cgroup";
/// The CPU bandwidth period; the quota is `cpu_cores` periods per period.
const CPU_PERIOD_US: u64 = 100_000;
/// Processes of the sandbox itself besides the task's: bubblewrap outside and its init inside.
const SANDBOX_PROCESSES: u32 = 2;

/// Where the run cgroups are created, found once per executor.
#[derive(Clone, Debug)]
pub(crate) enum Cgroups {
    /// One directory per controller: memory, pids, cpu.
    V1 { memory: PathBuf, pids: PathBuf, cpu: PathBuf },
    /// The parent of the runs in the unified hierarchy.
    V2 { parent: PathBuf },
}

/// What to install or enable when no cgroup can enforce the limits.
const HINT: &str = "run the provider agent as root on a host with cgroup v2 (controllers \
    memory, pids and cpu enabled in /sys/fs/cgroup/cgroup.subtree_control) or with the cgroup \
    v1 memory, pids and cpu controllers mounted under /sys/fs/cgroup";

impl Cgroups {
    /// Finds a writable cgroup layout with the memory, pids and cpu controllers.
    pub fn detect() -> Result<Cgroups, ExecutorError> {
        let unavailable = |why: String| ExecutorError::SandboxUnavailable {
            reason: format!("no kernel-enforced limits ({why}); {HINT}"),
        };
        if !rustix::process::geteuid().is_root() {
            return Err(unavailable("the agent is not root".into()));
        }
        let v2_controllers = fs::read_to_string(Path::new(V2_ROOT).join("cgroup.controllers"));
        if let Ok(controllers) = v2_controllers {
            let root = Path::new(V2_ROOT);
            let missing = missing_v2_controllers(&controllers);
            if missing.is_empty() && root.join("cgroup.subtree_control").exists() {
                let parent = root.join("aicpw");
                create_dir(&parent)?;
                write(&root.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                return Ok(Cgroups::V2 { parent });
            }
        }
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|source| ExecutorError::io("read /proc/self/cgroup", source))?;
        let mut dirs = Vec::new();
        for (controller, probe) in [
            ("memory", "memory.limit_in_bytes"),
            ("pids", "cgroup.procs"),
            ("cpu", "cpu.cfs_quota_us"),
        ] {
            let mount = Path::new(V1_ROOT).join(controller);
            if !mount.join(probe).exists() {
                return Err(unavailable(format!("no cgroup v1 `{controller}` controller")));
            }
            let own_path = v1_own_path(&own, controller).unwrap_or_default();
            let parent = mount.join(own_path.trim_start_matches('/')).join("aicpw");
            create_dir(&parent)?;
            dirs.push(parent);
        }
        let [memory, pids, cpu]: [PathBuf; 3] =
            dirs.try_into().map_err(|_| unavailable("three controllers expected".into()))?;
        Ok(Cgroups::V1 { memory, pids, cpu })
    }

    /// Creates the cgroup of one run, named `name`, with `limits` in force. A leftover of the
    /// same name (an agent that crashed mid-run) is emptied and replaced.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<RunCgroup, ExecutorError> {
        let memory = limits.memory_mb.saturating_mul(1 << 20).to_string();
        let pids = limits.processes_max.saturating_add(SANDBOX_PROCESSES).to_string();
        let quota = u64::from(limits.cpu_cores).saturating_mul(CPU_PERIOD_US);
        let run = match self {
            Cgroups::V1 { memory: memory_parent, pids: pids_parent, cpu: cpu_parent } => {
                let run = RunCgroup {
                    dirs: vec![
                        memory_parent.join(name),
                        pids_parent.join(name),
                        cpu_parent.join(name),
                    ],
                    v2: false,
                };
                run.recreate()?;
                let [memory_dir, pids_dir, cpu_dir] = [0, 1, 2].map(|i| &run.dirs[i]);
                write(&memory_dir.join("memory.swappiness"), "0")?;
                write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
                let with_swap = memory_dir.join("memory.memsw.limit_in_bytes");
                if with_swap.exists() {
                    write(&with_swap, &memory)?;
                }
                write(&pids_dir.join("pids.max"), &pids)?;
                write(&cpu_dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu_dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                run
            }
            Cgroups::V2 { parent } => {
                let run = RunCgroup { dirs: vec![parent.join(name)], v2: true };
                run.recreate()?;
                let dir = &run.dirs[0];
                write(&dir.join("memory.max"), &memory)?;
                // Present only where the kernel accounts swap.
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                // An out-of-memory kill ends the whole run, not one process of it.
                write(&dir.join("memory.oom.group"), "1")?;
                write(&dir.join("pids.max"), &pids)?;
                write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                run
            }
        };
        Ok(run)
    }
}

fn missing_v2_controllers(controllers: &str) -> Vec<&'static str> {
    ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|wanted| !controllers.split_whitespace().any(|have| have == *wanted))
        .collect()
}

/// The agent's own cgroup path in the v1 hierarchy of `controller` (`4:memory:/a/b` → `/a/b`).
fn v1_own_path(proc_self_cgroup: &str, controller: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|name| name == controller).then(|| path.to_string())
    })
}

/// The cgroup (one directory per v1 controller, or one v2 directory) of one run; removed
/// when dropped, once [`RunCgroup::kill_all`] has emptied it.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl RunCgroup {
    fn recreate(&self) -> Result<(), ExecutorError> {
        for dir in &self.dirs {
            if dir.exists() {
                kill_members(dir);
                remove(dir)?;
            }
            create_dir(dir)?;
        }
        Ok(())
    }

    /// Moves process `pid` (and the children it starts from then on) into the run's cgroup,
    /// and makes it the first the kernel's out-of-memory killer picks on the host.
    pub fn enter(&self, pid: u32) -> Result<(), ExecutorError> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        write(Path::new(&format!("/proc/{pid}/oom_score_adj")), "1000")
    }

    /// How many processes the kernel killed for crossing the memory limit.
    pub fn out_of_memory_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        let text = fs::read_to_string(self.dirs[0].join(file)).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(name, _)| *name == key)
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Kills every process in the cgroup; returns whether any was found.
    pub fn kill_all(&self) -> bool {
        let mut found = false;
        for dir in &self.dirs {
            found |= kill_members(dir);
        }
        found
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Best effort: a cgroup still holding a process stuck in the kernel stays behind
            // and is replaced by the next run of the same name.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Kills the processes listed in `dir/cgroup.procs`; returns whether there were any.
fn kill_members(dir: &Path) -> bool {
    let members = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let mut found = false;
    for pid in members.lines().filter_map(|line| line.trim().parse::<i32>().ok()) {
        procfs::kill(pid);
        found = true;
    }
    found
}

fn create_dir(dir: &Path) -> Result<(), ExecutorError> {
    match fs::create_dir(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(ExecutorError::SandboxUnavailable {
                reason: format!("cannot create cgroup {}: {error}; {HINT}", dir.display()),
            })
        }
        _ => Ok(()),
    }
}

fn remove(dir: &Path) -> Result<(), ExecutorError> {
    fs::remove_dir(dir)
        .map_err(|source| ExecutorError::io(format!("remove {}", dir.display()), source))
}

fn write(path: &Path, value: &str) -> Result<(), ExecutorError> {
    fs::write(path, value).map_err(|source| {
        ExecutorError::io(format!("write {value:?} to {}", path.display()), source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_own_v1_cgroup_is_found_by_controller() {
        let own = "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(v1_own_path(own, "memory").as_deref(), Some("/process_api/abc"));
        assert_eq!(v1_own_path(own, "cpu").as_deref(), Some("/x"));
        assert_eq!(v1_own_path(own, "pids"), None);
        assert_eq!(missing_v2_controllers("cpuset cpu io memory pids"), Vec::<&str>::new());
        assert_eq!(missing_v2_controllers("hugetlb"), ["memory", "pids", "cpu"]);
    }
}
