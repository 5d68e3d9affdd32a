//! The data that crosses the executor boundary: requests, limits, events, outcomes, errors.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What to run, with which files, under which limits.
#[derive(Clone, Debug)]
pub struct ExecutionRequest {
    /// Program to run inside the sandbox: a name looked up in the sandbox's `PATH`
    /// (`python3`), or a path (`./run.sh` is relative to the inputs directory).
    pub command: String,
    pub args: Vec<String>,
    /// Host directory mounted read-only at `/task/in` (the working directory).
    pub inputs_dir: PathBuf,
    /// Host directory that holds the outputs after the run: mounted read-write at `/task/out`
    /// (`$AICPW_OUTPUT_DIR`), or, with kernel limits, where they are copied from the run's own
    /// filesystem.
    pub outputs_dir: PathBuf,
    /// Host directory private to this run: mounted read-write at `/tmp` (`$HOME`, `$TMPDIR`),
    /// or, with kernel limits, holding the run's own filesystem, whose `/tmp` goes with it.
    pub scratch_dir: PathBuf,
    pub limits: Limits,
    /// Share the host's network; otherwise the task sees only its own loopback interface.
    pub network: bool,
    /// Extra environment variables for the task (the host environment is never inherited).
    pub env: Vec<(String, String)>,
    /// Set it from another thread to stop the task; the outcome is then `Cancelled`.
    pub cancel: CancelToken,
    /// The image of a container run (the container executor needs one, the sandbox takes none).
    pub image: Option<ContainerImage>,
}

/// The image a container run starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerImage {
    /// `name@sha256:<64 hex>` or `sha256:<64 hex>`: the image's id or a registry digest of it.
    pub reference: String,
    /// A `docker save` archive that holds the image, loaded when the engine does not have it.
    pub archive: Option<PathBuf>,
}

impl ExecutionRequest {
    /// A request with default limits, no network, no extra environment.
    pub fn new(
        command: impl Into<String>,
        args: Vec<String>,
        inputs_dir: impl Into<PathBuf>,
        outputs_dir: impl Into<PathBuf>,
        scratch_dir: impl Into<PathBuf>,
    ) -> Self {
        ExecutionRequest {
            command: command.into(),
            args,
            inputs_dir: inputs_dir.into(),
            outputs_dir: outputs_dir.into(),
            scratch_dir: scratch_dir.into(),
            limits: Limits::default(),
            network: false,
            env: Vec::new(),
            cancel: CancelToken::default(),
            image: None,
        }
    }
}

/// Resource limits of one run. Every field but `gpus` must be at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Resident memory of all the task's processes together.
    pub memory_mb: u64,
    /// Processes and threads the task may have at once.
    pub processes_max: u32,
    /// CPU time of all the task's processes together.
    pub cpu_time_secs: u64,
    /// Elapsed time from start to end.
    pub wall_time_secs: u64,
    /// CPU cores the task is pinned to (all allowed cores when it asks for at least as many).
    pub cpu_cores: u32,
    /// Bytes the task may write to its outputs and scratch directories together.
    pub disk_mb: u64,
    /// Whole GPUs the run gets for itself (0: it sees none), at most [`super::GPUS_MAX`].
    pub gpus: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 512,
            processes_max: 64,
            cpu_time_secs: 3600,
            wall_time_secs: 3600,
            cpu_cores: 1,
            disk_mb: 1024,
            gpus: 0,
        }
    }
}

/// Which pipe a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Something the task did while running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutionEvent {
    /// One line of output (without its newline, lossily decoded as UTF-8, at most
    /// `LOG_LINE_BYTES_MAX` bytes). Lines written by the executor itself start with `[aicpw]`.
    Log { stream: LogStream, line: String },
    /// Progress in thousandths, from a `progress: 0.42` stdout line or the progress file.
    /// Sent only when the value changes.
    Progress { permille: u16 },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionOutcome {
    pub termination: Termination,
    /// The task's exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended the task, when one did (including the executor's own `SIGKILL`).
    pub signal: Option<i32>,
    pub wall_ms: u64,
    /// CPU time (user plus system) of all the task's processes.
    pub cpu_ms: u64,
    /// Highest resident memory of all the task's processes together, as sampled.
    pub memory_peak_mb: u64,
    /// Highest number of processes and threads at once, as sampled.
    pub processes_peak: u32,
    /// Log lines dropped by the rate limit.
    pub log_lines_dropped: u64,
    /// Symbolic links and special files the task left in its outputs, removed by the executor
    /// (which also restores the owner's access to, and clears set-id bits of, what remains).
    pub outputs_removed: u32,
}

/// Why a run ended. The numeric codes are stable: they appear in reports and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Termination {
    /// Exited with code 0.
    Completed,
    /// Exited with a non-zero code (see `exit_code`).
    NonZeroExit,
    WallTimeExceeded,
    CpuTimeExceeded,
    MemoryExceeded,
    ProcessLimitExceeded,
    /// Ended by a signal the executor did not send for a limit (see `signal`).
    Signaled,
    DiskExceeded,
    /// Stopped through the request's `CancelToken`.
    Cancelled,
}

impl Termination {
    pub const ALL: [Termination; 9] = [
        Termination::Completed,
        Termination::NonZeroExit,
        Termination::WallTimeExceeded,
        Termination::CpuTimeExceeded,
        Termination::MemoryExceeded,
        Termination::ProcessLimitExceeded,
        Termination::Signaled,
        Termination::DiskExceeded,
        Termination::Cancelled,
    ];

    /// Stable numeric code.
    pub fn code(self) -> u16 {
        match self {
            Termination::Completed => 0,
            Termination::NonZeroExit => 1,
            Termination::WallTimeExceeded => 2,
            Termination::CpuTimeExceeded => 3,
            Termination::MemoryExceeded => 4,
            Termination::ProcessLimitExceeded => 5,
            Termination::Signaled => 6,
            Termination::DiskExceeded => 7,
            Termination::Cancelled => 8,
        }
    }

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Termination::Completed => "completed",
            Termination::NonZeroExit => "non_zero_exit",
            Termination::WallTimeExceeded => "wall_time_exceeded",
            Termination::CpuTimeExceeded => "cpu_time_exceeded",
            Termination::MemoryExceeded => "memory_exceeded",
            Termination::ProcessLimitExceeded => "process_limit_exceeded",
            Termination::Signaled => "signaled",
            Termination::DiskExceeded => "disk_exceeded",
            Termination::Cancelled => "cancelled",
        }
    }

    /// The termination with this code, if any.
    pub fn from_code(code: u16) -> Option<Termination> {
        Termination::ALL.into_iter().find(|termination| termination.code() == code)
    }

    /// Whether the task finished its work.
    pub fn is_success(self) -> bool {
        self == Termination::Completed
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A shared flag that asks a running execution to stop.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the executor could not run a task (as opposed to the task failing, which is an
/// `Ok(ExecutionOutcome)` with a non-success `Termination`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    #[error(
        "sandbox unavailable: {reason}. Run `bash scripts/setup.sh` as root \
         (or with sudo) to install and check bubblewrap, util-linux and python3"
    )]
    SandboxUnavailable { reason: String },
    #[error(
        "network access unavailable: {reason}. A task with `network: full` runs only on an agent \
         started as root with `--allow-network` where `bash scripts/setup.sh` installed \
         slirp4netns, nftables and iproute2"
    )]
    NetworkUnavailable { reason: String },
    #[error("invalid execution request: {reason}")]
    InvalidRequest { reason: String },
    #[error("all {slots} sandbox user ids are in use; wait for a running task to end")]
    SlotsExhausted { slots: u32 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the task needs {wanted} GPUs; {free} of this machine's {total} are free")]
    GpusUnavailable { wanted: u32, free: u32, total: u32 },
    #[error("sandbox processes {pids:?} were still alive after being killed")]
    StrayProcesses { pids: Vec<i32> },
    #[error(
        "no Docker Engine answers at {address}: {reason}. Container tasks need one: run \
         `bash scripts/setup.sh` as root to install and start it, or set DOCKER_HOST"
    )]
    EngineUnavailable { address: String, reason: String },
    #[error("the Docker Engine failed to {context}: {reason}")]
    Engine { context: String, reason: String },
    #[error("image {image} refused: {reason}")]
    ImageRefused { image: String, reason: String },
    #[error("image {image} unavailable: {reason}")]
    ImageUnavailable { image: String, reason: String },
}

impl ExecutorError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        ExecutorError::InvalidRequest { reason: reason.into() }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExecutorError::Io { context: context.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_codes_and_names_are_unique_and_round_trip() {
        let mut codes = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for termination in Termination::ALL {
            assert!(codes.insert(termination.code()));
            assert!(names.insert(termination.name()));
            assert_eq!(Termination::from_code(termination.code()), Some(termination));
        }
        assert_eq!(Termination::from_code(999), None);
        assert_eq!(Termination::MemoryExceeded.to_string(), "memory_exceeded");
    }

    #[test]
    fn cancel_token_is_shared_between_clones() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!clone.is_cancelled());
        token.cancel();
        assert!(clone.is_cancelled());
    }
}
