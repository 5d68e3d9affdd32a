//! Runs a task's command in isolation under resource limits, streaming its logs and progress.
//!
//! [`Executor`] is the seam between the provider agent and an isolation technology: the agent
//! builds an [`ExecutionRequest`], calls [`Executor::run`] on a blocking thread, receives
//! [`ExecutionEvent`]s while the task runs and an [`ExecutionOutcome`] at the end. The embedded
//! default is [`SandboxExecutor`] (bubblewrap namespaces plus per-process rlimits plus a
//! process-tree monitor); [`ContainerExecutor`] runs `runtime: container` tasks in containers of
//! the local Docker Engine behind the same trait.
//!
//! Inside: `sandbox` (identity, uid slots, self-test), `command` (bubblewrap options and the
//! wrapper chain), `supervise` (the run loop), `procfs` (process-tree sampling), `logs` (line
//! bounds, rate limit, progress), `prepare` (request checks, directory hand-over and clean-up),
//! `verdict` (from observations to a `Termination`), `gpus` (whole GPUs per run), `network`
//! (the namespace, egress and rules of a task with network access), `container` (the Docker
//! Engine executor).

mod cgroup;
mod command;
mod container;
mod disk;
mod gpus;
mod logs;
mod network;
mod prepare;
mod procfs;
mod sandbox;
mod seccomp;
mod supervise;
mod types;
mod verdict;

pub use container::{ContainerConfig, ContainerExecutor, ContainerRun};
pub use disk::{detach_mounts_below, remove_run_dir};
pub use gpus::GPUS_MAX;
pub use sandbox::{sandbox_available, SandboxConfig, SandboxExecutor, SandboxRun};
pub use types::{
    CancelToken, ContainerImage, ExecutionEvent, ExecutionOutcome, ExecutionRequest, ExecutorError,
    Limits, LogStream, Termination,
};

/// A run set up by [`Executor::prepare`], for the executor that made it. Dropped unused, it
/// gives back what it holds.
pub enum Prepared<'a> {
    Sandbox(Box<SandboxRun<'a>>),
    Container(ContainerRun<'a>),
}

/// Where the task's inputs appear inside the sandbox (read-only); also its working directory.
pub const SANDBOX_INPUT_DIR: &str = "/task/in";
/// Where the task writes its results inside the sandbox (read-write).
pub const SANDBOX_OUTPUT_DIR: &str = "/task/out";
/// The task's private scratch space inside the sandbox (`$HOME`, `$TMPDIR`).
pub const SANDBOX_SCRATCH_DIR: &str = "/tmp";
/// File a task may write a fraction `0..=1` into to report progress; polled by the executor.
pub const SANDBOX_PROGRESS_FILE: &str = "/tmp/.aicpw-progress";
/// Name of the progress file inside the scratch directory (host side of `SANDBOX_PROGRESS_FILE`).
pub const PROGRESS_FILE_NAME: &str = ".aicpw-progress";

/// Longest log line forwarded, in bytes; the rest of a longer line is dropped and marked.
pub const LOG_LINE_BYTES_MAX: usize = 4096;
/// Log lines forwarded per second (both streams together, with a burst of the same size);
/// beyond it lines are counted and dropped, so a chatty task cannot flood the agent.
pub const LOG_LINES_PER_SECOND_MAX: u32 = 200;
/// Lines buffered between the pipe readers and the supervising thread.
pub const LOG_CHANNEL_DEPTH_MAX: usize = 1024;

/// Arguments a request may carry, and their total size in bytes.
pub const ARGS_COUNT_MAX: usize = 256;
pub const ARGS_BYTES_MAX: usize = 64 * 1024;
/// Environment variables a request may carry, and their total size in bytes.
pub const ENV_COUNT_MAX: usize = 64;
pub const ENV_BYTES_MAX: usize = 32 * 1024;

/// Largest accepted value of each [`Limits`] field (a sanity bound, not a policy).
pub const LIMIT_MEMORY_MB_MAX: u64 = 4 * 1024 * 1024;
pub const LIMIT_PROCESSES_MAX: u32 = 16_384;
pub const LIMIT_TIME_SECS_MAX: u64 = 30 * 24 * 3600;
pub const LIMIT_CPU_CORES_MAX: u32 = 4096;
pub const LIMIT_DISK_MB_MAX: u64 = 64 * 1024 * 1024;

/// The executor abstraction the agent depends on.
///
/// A run is set up in two steps: [`Executor::prepare`] takes what the run holds whatever its
/// command (for the sandbox: a uid slot, GPUs, a network namespace, a cgroup, a filesystem), so
/// the agent can do it while it still waits for the task's content key; [`Executor::run_prepared`]
/// starts the command in it. `run_prepared` blocks until the task has ended and every process it
/// started is gone. Events are delivered on the calling thread, in order, while the task runs.
pub trait Executor: Send + Sync {
    /// Sets up a run under `limits`, with or without network access, whose scratch directory
    /// is `scratch_dir` (an existing absolute directory).
    fn prepare(
        &self,
        limits: &Limits,
        network: bool,
        scratch_dir: &std::path::Path,
    ) -> Result<Prepared<'_>, ExecutorError>;

    /// Runs `request` in `prepared` (set up for the request's limits, network access and
    /// scratch directory, or refused as invalid) to completion, or until a limit or
    /// cancellation stops it.
    fn run_prepared(
        &self,
        prepared: Prepared<'_>,
        request: &ExecutionRequest,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError>;

    /// Checks, prepares and runs `request` in one go (nothing is set up for a request refused).
    fn run(
        &self,
        request: &ExecutionRequest,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError> {
        prepare::validate(request)?;
        let prepared = self.prepare(&request.limits, request.network, &request.scratch_dir)?;
        self.run_prepared(prepared, request, events)
    }
}
