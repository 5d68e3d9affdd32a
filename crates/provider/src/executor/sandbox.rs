//! The embedded executor: bubblewrap namespaces, per-process rlimits, a process-tree monitor.
//!
//! Isolation: new PID, IPC, UTS, cgroup and network namespaces (a task that asks for network
//! gets one with egress only, see `network`); a read-only view of the host's `/usr` and a few
//! `/etc` files; a new `/proc`, a minimal `/dev`; the inputs read-only at `/task/in`, the
//! outputs at `/task/out`, the scratch directory at `/tmp`; nothing else of the host (no `/root`, `/home`, `/work`, `/etc/shadow`).
//!
//! Identity: an agent running as an ordinary user runs bubblewrap unprivileged, which adds a
//! user namespace. An agent running as root would map the task onto host uid 0, which the
//! kernel exempts from `RLIMIT_NPROC`; so as root the task instead runs as a dedicated
//! unprivileged host uid, one per concurrent run (`SandboxConfig`), dropped to with
//! `setpriv` inside the sandbox after bubblewrap has set up the mounts.
//!
//! Limits: a root agent enforces them in the kernel: a cgroup per run (`cgroup`) for memory,
//! processes and CPU bandwidth, a filesystem per run (`disk`) for the disk limit, a seccomp
//! filter (`seccomp`) against the kernel's rarely needed interfaces. Underneath stay the
//! rlimits set with `prlimit` inside the sandbox (address space, CPU seconds, processes, file
//! size) and a monitor that sums CPU time, resident memory and threads over the process tree
//! every 50 ms and kills the sandbox when a total crosses its limit. Without cgroups and loop
//! mounts the executor refuses to start unless `SandboxConfig::require_kernel_limits` is off.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::cgroup::{Cgroups, RunCgroup};
use super::command::{self, Host};
use super::disk::{DiskTools, RunDisk, SpareDisks};
use super::gpus::{self, GpuLease, GpuPool};
use super::network::TaskNetwork;
use super::{
    prepare, procfs, supervise, ExecutionEvent, ExecutionOutcome, ExecutionRequest, Executor,
    ExecutorError, Limits, Prepared, Termination,
};

/// How a root agent assigns host user ids to tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// First host uid given to tasks (uids need no `/etc/passwd` entry; pick a range no real
    /// user or other service uses).
    pub uid_base: u32,
    /// Runs at once; run `i` uses uid `uid_base + i`, so limits and cleanup are per run.
    pub uid_slots: u32,
    /// Refuse to start without kernel-enforced limits (a cgroup and a filesystem per run), as
    /// an agent running other people's tasks must. Off only for a user's own tasks on their
    /// machine (the CLI's known-answer runs), which then have the rlimits and the monitor alone.
    pub require_kernel_limits: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { uid_base: 1_600_000_000, uid_slots: 64, require_kernel_limits: true }
    }
}

/// Who the task runs as.
#[derive(Debug)]
enum Identity {
    /// The agent is root: each run locks a free uid slot.
    Root { uid_base: u32, uid_slots: u32 },
    /// The agent is an ordinary user: bubblewrap adds a user namespace.
    Unprivileged,
}

/// Where root agents keep the slot lock files. Under `/run`, which only root can write, so
/// no other user can plant a file or link there; locks held with `flock` vanish with their
/// process, so a crashed agent leaves nothing stale and several agents never share a uid.
const SLOT_LOCK_DIR: &str = "/run/aicpw-sandbox";

/// The bubblewrap executor. Cheap to share: one instance serves concurrent runs.
#[derive(Debug)]
pub struct SandboxExecutor {
    host: Host,
    identity: Identity,
    cpus: procfs::CpuRotation,
    gpus: GpuPool,
    /// The kernel-enforced limits of a root agent: a cgroup and a filesystem per run.
    kernel_limits: Option<(Cgroups, DiskTools)>,
    /// Run filesystems made ahead ([`SandboxExecutor::keep_spare_disks`]).
    spares: Option<Arc<SpareDisks>>,
}

impl SandboxExecutor {
    /// Finds the sandbox tools and decides how tasks are identified. Does not start a
    /// sandbox: call [`SandboxExecutor::self_test`] (or [`sandbox_available`]) once at
    /// startup to check that one can start.
    pub fn new(config: SandboxConfig) -> Result<Self, ExecutorError> {
        let identity = if rustix::process::geteuid().is_root() {
            let last = config.uid_base.checked_add(config.uid_slots);
            if config.uid_slots == 0
                || config.uid_base == 0
                || last.is_none_or(|last| last == u32::MAX)
            {
                return Err(ExecutorError::invalid(format!("unusable uid range {config:?}")));
            }
            Identity::Root { uid_base: config.uid_base, uid_slots: config.uid_slots }
        } else {
            Identity::Unprivileged
        };
        let kernel_limits = match Cgroups::detect().and_then(|c| Ok((c, DiskTools::find()?))) {
            Ok(found) => Some(found),
            Err(error) if config.require_kernel_limits => return Err(error),
            Err(_) => None,
        };
        Ok(SandboxExecutor {
            host: Host::detect()?,
            identity,
            cpus: procfs::CpuRotation::new(),
            gpus: GpuPool::new(gpus::detect(Path::new("/dev"))),
            kernel_limits,
            spares: None,
        })
    }

    /// Keeps a few run filesystems made ahead in `dir` (a directory only root may enter,
    /// cleared first of what an earlier agent left), so that preparing a run takes one instead
    /// of waiting for `mkfs` and `mount`; each is used by one run only. Without kernel limits
    /// there are no run filesystems and this does nothing.
    pub fn keep_spare_disks(&mut self, dir: &Path) -> Result<(), ExecutorError> {
        if let Some((_, tools)) = &self.kernel_limits {
            self.spares = Some(SpareDisks::new(tools.clone(), dir)?);
        }
        Ok(())
    }

    /// Whether tasks run as dedicated host uids (the agent is root).
    pub fn runs_as_root(&self) -> bool {
        matches!(self.identity, Identity::Root { .. })
    }

    fn take_slot(&self) -> Result<Option<SlotGuard>, ExecutorError> {
        let Identity::Root { uid_base, uid_slots } = self.identity else { return Ok(None) };
        let lock_dir = Path::new(SLOT_LOCK_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(lock_dir)
            .map_err(|source| ExecutorError::io(format!("create {SLOT_LOCK_DIR}"), source))?;
        let metadata = fs::symlink_metadata(lock_dir)
            .map_err(|source| ExecutorError::io(format!("stat {SLOT_LOCK_DIR}"), source))?;
        if !metadata.is_dir() || metadata.uid() != 0 || metadata.mode() & 0o022 != 0 {
            return Err(ExecutorError::SandboxUnavailable {
                reason: format!(
                    "{SLOT_LOCK_DIR} must be a directory owned and writable only by root"
                ),
            });
        }
        for offset in 0..uid_slots {
            let uid = uid_base.saturating_add(offset);
            let path = lock_dir.join(format!("uid-{uid}.lock"));
            let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let lock =
                rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)).map_err(|error| {
                    ExecutorError::io(format!("open {}", path.display()), error.into())
                })?;
            match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Some(SlotGuard { uid, _lock: lock })),
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(error) => {
                    return Err(ExecutorError::io(format!("lock {}", path.display()), error.into()))
                }
            }
        }
        Err(ExecutorError::SlotsExhausted { slots: uid_slots })
    }
}

/// A uid slot held for the duration of one run; closing the file releases the lock.
struct SlotGuard {
    uid: u32,
    _lock: OwnedFd,
}

/// What one sandbox run holds besides its command, taken by [`Executor::prepare`]: the uid
/// slot, the GPUs, the network namespace, the cgroup and the run filesystem. Dropped unused, it
/// gives them all back (the filesystem unmounted and deleted, the cgroup removed, the slot
/// released last).
pub struct SandboxRun<'a> {
    limits: Limits,
    network_access: bool,
    scratch_dir: PathBuf,
    // Fields drop in this order: everything of the run before its uid slot.
    disk: Option<RunDisk>,
    cgroup: Option<RunCgroup>,
    network: Option<TaskNetwork>,
    gpus: GpuLease<'a>,
    slot: Option<SlotGuard>,
}

impl Executor for SandboxExecutor {
    fn prepare(
        &self,
        limits: &Limits,
        network_access: bool,
        scratch_dir: &Path,
    ) -> Result<Prepared<'_>, ExecutorError> {
        prepare::validate_limits(limits)?;
        prepare::validate_dir("scratch_dir", scratch_dir)?;
        let slot = self.take_slot()?;
        let sandbox_uid = slot.as_ref().map(|slot| slot.uid);
        if let Some(uid) = sandbox_uid {
            prepare::hand_over(&[("scratch_dir", scratch_dir)], uid)?;
        }
        let gpus = self.gpus.take(limits.gpus)?;
        // A task with network access gets a namespace of its own, torn down after the run.
        let network = TaskNetwork::for_run(network_access, sandbox_uid)?;
        // Kernel limits exist only for a root agent, which always holds a uid slot: the slot
        // names the cgroup, so concurrent runs (of any agent on the host) never share one.
        let (cgroup, disk) = match (&self.kernel_limits, sandbox_uid) {
            (Some((cgroups, tools)), Some(uid)) => {
                let cgroup = cgroups.create(&format!("uid-{uid}"), limits)?;
                let spare = self.spares.as_ref().and_then(|s| s.take(limits.disk_mb, uid));
                let disk = match spare {
                    Some(disk) => disk,
                    None => RunDisk::create(tools, scratch_dir, limits.disk_mb, uid)?,
                };
                (Some(cgroup), Some(disk))
            }
            _ => (None, None),
        };
        Ok(Prepared::Sandbox(Box::new(SandboxRun {
            limits: *limits,
            network_access,
            scratch_dir: scratch_dir.to_path_buf(),
            disk,
            cgroup,
            network,
            gpus,
            slot,
        })))
    }

    fn run_prepared(
        &self,
        prepared: Prepared<'_>,
        request: &ExecutionRequest,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError> {
        prepare::validate(request)?;
        let Prepared::Sandbox(mut prepared) = prepared else {
            return Err(ExecutorError::invalid("the run was prepared by another executor"));
        };
        if request.image.is_some() {
            return Err(ExecutorError::invalid("the sandbox runs no container image"));
        }
        if (request.limits, request.network, &request.scratch_dir)
            != (prepared.limits, prepared.network_access, &prepared.scratch_dir)
        {
            return Err(ExecutorError::invalid(
                "the request's limits, network access or scratch directory differ from what was \
                 prepared for it",
            ));
        }
        let sandbox_uid = prepared.slot.as_ref().map(|slot| slot.uid);
        if let Some(uid) = sandbox_uid {
            let inputs = ("inputs_dir", request.inputs_dir.as_path());
            prepare::hand_over(&[inputs, ("outputs_dir", request.outputs_dir.as_path())], uid)?;
        }
        let cpus = self.cpus.pick(request.limits.cpu_cores);
        // With a run filesystem the task writes there; its outputs are copied back after.
        let on_disk = prepared.disk.as_ref().map(|disk| ExecutionRequest {
            outputs_dir: disk.outputs(),
            scratch_dir: disk.scratch(),
            ..request.clone()
        });
        let sandboxed = on_disk.as_ref().unwrap_or(request);
        let launcher = prepared.network.as_ref().map(TaskNetwork::launcher).unwrap_or_default();
        let devices = prepared.gpus.devices();
        let plan = command::plan(&self.host, sandboxed, sandbox_uid, cpus, devices, launcher);
        tracing::debug!("run filesystem, cgroup and identity ready; starting bubblewrap");
        let (cgroup, disk) = (prepared.cgroup.as_ref(), prepared.disk.as_ref());
        let mut outcome = supervise::supervise(&plan, sandboxed, events, cgroup, disk);
        drop(prepared.network.take());
        if let (Ok(finished), Some(disk)) = (&mut outcome, &prepared.disk) {
            let limit = request.limits.disk_mb.saturating_mul(1 << 20);
            match disk.copy_outputs(&request.outputs_dir, limit) {
                Ok(true) => {}
                Ok(false) => finished.termination = Termination::DiskExceeded,
                Err(error) => outcome = Err(error),
            }
        }
        if matches!(outcome, Err(ExecutorError::StrayProcesses { .. })) {
            // Processes of this uid survived SIGKILL (stuck in the kernel): keep the slot
            // locked for the life of the agent rather than hand their uid to another task.
            std::mem::forget(prepared.slot.take());
        }
        // Otherwise the slot is released with `prepared`, after supervise has verified that no
        // process of its uid is left, so the next run on it starts with a clean process count.
        outcome
    }
}

impl SandboxExecutor {
    /// Runs a trivial task in the full sandbox (namespaces, mounts, identity switch,
    /// rlimits) and reports why it could not, with the hint to run `scripts/setup.sh`.
    pub fn self_test(&self) -> Result<(), ExecutorError> {
        self.probe(false)
    }

    /// [`SandboxExecutor::self_test`] with network access: the task's own network namespace,
    /// its egress and its rules can be set up here (`aicpw provider start --allow-network`).
    pub fn network_self_test(&self) -> Result<(), ExecutorError> {
        self.probe(true)
    }

    fn probe(&self, network: bool) -> Result<(), ExecutorError> {
        let probe = ProbeDirs::create()?;
        let mut request = ExecutionRequest::new(
            "true",
            Vec::new(),
            probe.path("in"),
            probe.path("out"),
            probe.path("scratch"),
        );
        request.limits.wall_time_secs = 30;
        request.network = network;
        let mut output = Vec::new();
        let outcome = self.run(&request, &mut |event| {
            if let ExecutionEvent::Log { line, .. } = event {
                output.push(line);
            }
        })?;
        if outcome.termination != Termination::Completed {
            return Err(ExecutorError::SandboxUnavailable {
                reason: format!(
                    "a trivial task ended with {} (exit code {:?}): {}",
                    outcome.termination,
                    outcome.exit_code,
                    output.join(" | ")
                ),
            });
        }
        Ok(())
    }
}

/// Checks that a sandbox can start here with the default configuration: the tools exist
/// and a trivial task runs to completion (see [`SandboxExecutor::self_test`]).
pub fn sandbox_available() -> Result<(), ExecutorError> {
    SandboxExecutor::new(SandboxConfig::default())?.self_test()
}

/// Throwaway directories for the availability probe, removed on drop.
struct ProbeDirs(PathBuf);

impl ProbeDirs {
    fn create() -> Result<Self, ExecutorError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let root = std::env::temp_dir().join(format!("aicpw-probe-{}-{nanos}", std::process::id()));
        // `create_dir`, not `create_dir_all`: never reuse a directory someone else made.
        fs::create_dir(&root)
            .map_err(|source| ExecutorError::io(format!("create {}", root.display()), source))?;
        let probe = ProbeDirs(root);
        for name in ["in", "out", "scratch"] {
            let dir = probe.path(name);
            fs::create_dir(&dir)
                .map_err(|source| ExecutorError::io(format!("create {}", dir.display()), source))?;
        }
        Ok(probe)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ProbeDirs {
    fn drop(&mut self) {
        // Best effort: a leftover empty probe directory in the temp dir is harmless.
        let _ = fs::remove_dir_all(&self.0);
    }
}
