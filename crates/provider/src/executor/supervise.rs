//! Starts one sandbox and watches it to the end: logs, progress, limits, cleanup, verdict.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags};

use super::cgroup::RunCgroup;
use super::command::Plan;
use super::disk::RunDisk;
use super::logs::{self, LogLine, RateLimiter};
use super::procfs::{self, TreeSample};
use super::verdict::{classify, Observations};
use super::{
    prepare, seccomp, ExecutionEvent, ExecutionOutcome, ExecutionRequest, ExecutorError, LogStream,
    Termination, LOG_CHANNEL_DEPTH_MAX, LOG_LINES_PER_SECOND_MAX, PROGRESS_FILE_NAME,
};

/// How often the process tree is sampled (limits, exit detection, wall time).
const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
/// How often the progress file is read.
const PROGRESS_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the outputs and scratch directories are measured.
const DISK_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long killed processes may take to disappear before the run is reported as failed.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the last log lines once every sandbox process is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Interval between dropped-lines notices.
const DROPPED_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the planned sandbox to its end and returns the verdict.
pub(crate) fn supervise(
    plan: &Plan,
    request: &ExecutionRequest,
    events: &mut dyn FnMut(ExecutionEvent),
    cgroup: Option<&RunCgroup>,
    disk: Option<&RunDisk>,
) -> Result<ExecutionOutcome, ExecutorError> {
    let progress_path = request.scratch_dir.join(PROGRESS_FILE_NAME);
    match std::fs::remove_file(&progress_path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(ExecutorError::io("remove stale progress file", error));
        }
        _ => {}
    }
    let started = Instant::now();
    let (mut child, receiver) = spawn(plan, cgroup)?;
    let mut watch = Watch::new(request, events, started, disk);
    let status = watch.run(&mut child, &receiver, &progress_path);
    let wall_ms = duration_ms(started.elapsed());
    // Whatever happened above, no sandbox process may outlive this call.
    let cleanup = cleanup(&mut child, &watch.last_sample, plan.sandbox_uid, cgroup);
    let status = status?;
    cleanup?;
    watch.drain(&receiver);
    watch.poll_progress_file(&progress_path);
    watch.report_dropped(Instant::now(), true);
    let outputs_removed = prepare::sanitize_outputs(&request.outputs_dir)?;
    // The kernel killed a process of the run at its memory limit (which one it picks, the task
    // or bubblewrap, decides nothing).
    if cgroup.is_some_and(|cgroup| cgroup.out_of_memory_kills() > 0) {
        watch.kill_reason.get_or_insert(Termination::MemoryExceeded);
    }
    let observed = Observations {
        kill_reason: watch.kill_reason,
        exit_code: status.code(),
        signal: status.signal(),
        cpu_ms: watch.cpu_ms(),
        cpu_limit_ms: request.limits.cpu_time_secs.saturating_mul(1000),
        out_of_memory_reported: watch.out_of_memory_reported,
        disk_full: watch.disk_used().is_none_or(|used| used >= disk_limit_bytes(request)),
        processes_peak: watch.processes_peak,
        processes_max: request.limits.processes_max,
    };
    let (termination, exit_code, signal) = classify(&observed);
    Ok(ExecutionOutcome {
        termination,
        exit_code,
        signal,
        wall_ms,
        cpu_ms: observed.cpu_ms,
        memory_peak_mb: watch.memory_peak_kib.div_ceil(1024),
        processes_peak: watch.processes_peak,
        log_lines_dropped: watch.dropped_total,
        outputs_removed,
    })
}

/// Starts bubblewrap, moves it into the run's cgroup, hands it its options (it reads them
/// before doing anything else, so nothing of the sandbox starts outside the cgroup) and starts
/// the two log readers.
fn spawn(
    plan: &Plan,
    cgroup: Option<&RunCgroup>,
) -> Result<(Child, Receiver<LogLine>), ExecutorError> {
    let filter = seccomp::filter_file()?;
    let mut line: Vec<&OsStr> = plan.launcher.iter().map(OsString::as_os_str).collect();
    line.push(plan.bwrap.as_os_str());
    let mut child = Command::new(line[0])
        .args(&line[1..])
        .args(["--args", "0", "--"])
        .args(&plan.command_line)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Keeps terminal signals (Ctrl-C to the agent) away from the task.
        .process_group(0)
        .spawn()
        .map_err(|source| ExecutorError::io("start bubblewrap", source))?;
    let mut options = Vec::new();
    let seccomp = ["--seccomp".to_string(), filter.as_raw_fd().to_string()];
    for option in
        plan.bwrap_options.iter().map(OsString::as_os_str).chain(seccomp.iter().map(OsStr::new))
    {
        options.extend_from_slice(option.as_bytes());
        options.push(0);
    }
    // bubblewrap holds its own copy of the filter from here on.
    drop(filter);
    let entered = cgroup.map_or(Ok(()), |cgroup| cgroup.enter(child.id()));
    let written = entered.and_then(|()| {
        match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(&options),
            None => Err(std::io::Error::other("no pipe to bubblewrap's stdin")),
        }
        .map_err(|source| ExecutorError::io("pass options to bubblewrap", source))
    });
    // The task inherits the pipe's read end, at end of file from here on: an empty stdin.
    if let Err(error) = written {
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
    let (sender, receiver) = mpsc::sync_channel(LOG_CHANNEL_DEPTH_MAX);
    let pipes: [(Option<Box<dyn Read + Send>>, LogStream); 2] = [
        (child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>), LogStream::Stdout),
        (child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>), LogStream::Stderr),
    ];
    for (pipe, stream) in pipes {
        let Some(pipe) = pipe else { continue };
        let sender = sender.clone();
        let name = format!("aicpw-log-{stream:?}").to_lowercase();
        let spawned =
            thread::Builder::new().name(name).spawn(move || logs::pump_lines(pipe, stream, sender));
        if let Err(source) = spawned {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecutorError::io("start log reader thread", source));
        }
    }
    Ok((child, receiver))
}

/// The state of one run as seen by the supervising thread.
struct Watch<'a> {
    request: &'a ExecutionRequest,
    events: &'a mut dyn FnMut(ExecutionEvent),
    started: Instant,
    disk: Option<&'a RunDisk>,
    limiter: RateLimiter,
    last_permille: Option<u16>,
    dropped_total: u64,
    dropped_unreported: u64,
    dropped_reported_at: Instant,
    out_of_memory_reported: bool,
    kill_reason: Option<Termination>,
    last_sample: TreeSample,
    cpu_ticks: u64,
    memory_peak_kib: u64,
    processes_peak: u32,
    ticks_per_second: u64,
}

impl<'a> Watch<'a> {
    fn new(
        request: &'a ExecutionRequest,
        events: &'a mut dyn FnMut(ExecutionEvent),
        started: Instant,
        disk: Option<&'a RunDisk>,
    ) -> Self {
        Watch {
            request,
            events,
            started,
            disk,
            limiter: RateLimiter::new(started),
            last_permille: None,
            dropped_total: 0,
            dropped_unreported: 0,
            dropped_reported_at: started,
            out_of_memory_reported: false,
            kill_reason: None,
            last_sample: TreeSample::default(),
            cpu_ticks: 0,
            memory_peak_kib: 0,
            processes_peak: 0,
            ticks_per_second: procfs::clock_ticks_per_second(),
        }
    }

    /// Forwards logs and enforces limits until bubblewrap has exited; returns its status.
    fn run(
        &mut self,
        child: &mut Child,
        receiver: &Receiver<LogLine>,
        progress_path: &Path,
    ) -> Result<ExitStatus, ExecutorError> {
        let root_pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let wait_error = |source| ExecutorError::io("wait for bubblewrap", source);
        let mut next_sample = self.started;
        let mut next_progress_poll = self.started + PROGRESS_POLL_INTERVAL;
        let mut next_disk_poll = self.started + DISK_POLL_INTERVAL;
        let mut readers_open = true;
        loop {
            let now = Instant::now();
            if now >= next_sample {
                next_sample = now + SAMPLE_INTERVAL;
                let sample = procfs::sample_tree(root_pid);
                let exited = match sample.root {
                    // A zombie still shows the CPU time of everything it waited for.
                    Some(root) => root.state == 'Z',
                    None => child.try_wait().map_err(wait_error)?.is_some(),
                };
                self.observe(sample);
                if exited {
                    return child.wait().map_err(wait_error);
                }
                if now >= next_progress_poll {
                    next_progress_poll = now + PROGRESS_POLL_INTERVAL;
                    self.poll_progress_file(progress_path);
                }
                // A run filesystem is measured at every sample (one statfs), a directory tree
                // only once per `DISK_POLL_INTERVAL`.
                let check_disk = self.disk.is_some() || now >= next_disk_poll;
                if check_disk {
                    next_disk_poll = now + DISK_POLL_INTERVAL;
                }
                if let Some(reason) = self.limit_crossed(now, check_disk) {
                    self.kill_reason = Some(reason);
                    kill_sandbox(child, &self.last_sample);
                    return child.wait().map_err(wait_error);
                }
            }
            let timeout = next_sample.saturating_duration_since(Instant::now());
            if readers_open {
                match receiver.recv_timeout(timeout) {
                    Ok(line) => self.on_line(line),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => readers_open = false,
                }
            } else {
                thread::sleep(timeout);
            }
        }
    }

    fn observe(&mut self, sample: TreeSample) {
        self.cpu_ticks = self.cpu_ticks.max(sample.cpu_ticks);
        self.memory_peak_kib = self.memory_peak_kib.max(sample.memory_kib);
        self.processes_peak = self.processes_peak.max(sample.task_threads);
        if sample.root.is_some() {
            self.last_sample = sample;
        }
    }

    /// The limit the sandbox has just crossed, if any (cancellation counts as one).
    fn limit_crossed(&self, now: Instant, check_disk: bool) -> Option<Termination> {
        let limits = &self.request.limits;
        let wall = Duration::from_secs(limits.wall_time_secs);
        if self.request.cancel.is_cancelled() {
            return Some(Termination::Cancelled);
        }
        if now.saturating_duration_since(self.started) >= wall {
            return Some(Termination::WallTimeExceeded);
        }
        if self.last_sample.memory_kib > limits.memory_mb.saturating_mul(1024) {
            return Some(Termination::MemoryExceeded);
        }
        if self.cpu_ms() >= limits.cpu_time_secs.saturating_mul(1000) {
            return Some(Termination::CpuTimeExceeded);
        }
        let disk_limit = disk_limit_bytes(self.request);
        if check_disk && self.disk_used().is_none_or(|used| used > disk_limit) {
            return Some(Termination::DiskExceeded);
        }
        None
    }

    /// Bytes the task has written: from its filesystem's block count when it has one (files
    /// it deleted but holds open included), else by walking its directories.
    fn disk_used(&self) -> Option<u64> {
        match self.disk {
            Some(disk) => disk.task_bytes(),
            None => disk_used_bytes(self.request),
        }
    }

    fn cpu_ms(&self) -> u64 {
        self.cpu_ticks.saturating_mul(1000) / self.ticks_per_second
    }

    fn on_line(&mut self, line: LogLine) {
        if line.stream == LogStream::Stdout {
            if let Some(permille) = logs::parse_progress_line(&line.text) {
                self.progress(permille);
            }
        } else if logs::reports_out_of_memory(&line.text) {
            self.out_of_memory_reported = true;
        }
        let now = Instant::now();
        if self.limiter.admit(now) {
            (self.events)(ExecutionEvent::Log { stream: line.stream, line: line.text });
        } else {
            self.dropped_total = self.dropped_total.saturating_add(1);
            self.dropped_unreported = self.dropped_unreported.saturating_add(1);
        }
        self.report_dropped(now, false);
    }

    /// Tells the agent, at most once per `DROPPED_NOTICE_INTERVAL`, that lines were dropped.
    fn report_dropped(&mut self, now: Instant, force: bool) {
        let due =
            now.saturating_duration_since(self.dropped_reported_at) >= DROPPED_NOTICE_INTERVAL;
        if self.dropped_unreported == 0 || !(due || force) {
            return;
        }
        let line = format!(
            "[aicpw] {} log lines dropped (more than {LOG_LINES_PER_SECOND_MAX} lines per second)",
            self.dropped_unreported
        );
        (self.events)(ExecutionEvent::Log { stream: LogStream::Stderr, line });
        self.dropped_unreported = 0;
        self.dropped_reported_at = now;
    }

    fn progress(&mut self, permille: u16) {
        if self.last_permille != Some(permille) {
            self.last_permille = Some(permille);
            (self.events)(ExecutionEvent::Progress { permille });
        }
    }

    /// Reads the progress file without following a symbolic link or blocking on a FIFO the
    /// task may have put in its place.
    fn poll_progress_file(&mut self, path: &Path) {
        if let Some(permille) = read_progress_file(path) {
            self.progress(permille);
        }
    }

    /// Forwards the lines still in the pipes after the sandbox is gone.
    fn drain(&mut self, receiver: &Receiver<LogLine>) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(timeout) {
                Ok(line) => self.on_line(line),
                Err(_) => return,
            }
        }
    }
}

/// Bytes in the outputs and scratch directories; `None` when there are too many entries.
fn disk_used_bytes(request: &ExecutionRequest) -> Option<u64> {
    [&request.outputs_dir, &request.scratch_dir]
        .into_iter()
        .map(|dir| prepare::disk_usage_bytes(dir))
        .try_fold(0u64, |total, used| used.map(|used| total.saturating_add(used)))
}

fn disk_limit_bytes(request: &ExecutionRequest) -> u64 {
    request.limits.disk_mb.saturating_mul(1 << 20)
}

pub(crate) fn read_progress_file(path: &Path) -> Option<u16> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let descriptor = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    let stat = rustix::fs::fstat(&descriptor).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(logs::PROGRESS_FILE_BYTES_MAX).unwrap_or(u64::MAX);
    File::from(descriptor).take(limit).read_to_end(&mut bytes).ok()?;
    logs::parse_progress_file(&bytes)
}

/// Kills the whole sandbox: the PID namespace's init (the kernel then kills every process in
/// the namespace) and bubblewrap outside it.
fn kill_sandbox(child: &mut Child, sample: &TreeSample) {
    let root_pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    for &pid in &sample.root_children {
        // Re-check the parent right before the signal, so a recycled pid is never hit.
        if procfs::read_stat(pid).is_some_and(|stat| stat.parent_pid == root_pid) {
            procfs::kill(pid);
        }
    }
    // An error here means bubblewrap has already exited, which is what we want.
    let _ = child.kill();
}

/// Makes sure no process of the sandbox is left: the processes of the last sample and, with a
/// dedicated uid, every process of that uid.
fn cleanup(
    child: &mut Child,
    sample: &TreeSample,
    sandbox_uid: Option<u32>,
    cgroup: Option<&RunCgroup>,
) -> Result<(), ExecutorError> {
    if matches!(child.try_wait(), Ok(None)) {
        kill_sandbox(child, sample);
        child.wait().map_err(|source| ExecutorError::io("wait for bubblewrap", source))?;
    }
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    loop {
        let mut alive: Vec<i32> = sample
            .members
            .iter()
            .filter(|member| procfs::is_alive(**member))
            .map(|member| member.pid)
            .collect();
        if let Some(uid) = sandbox_uid {
            alive.extend(procfs::processes_of_uid(uid));
        }
        alive.sort_unstable();
        alive.dedup();
        // Whatever escaped the tree and changed uid is still in the cgroup.
        let cgroup_members = cgroup.is_some_and(RunCgroup::kill_all);
        if alive.is_empty() && !cgroup_members {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ExecutorError::StrayProcesses { pids: alive });
        }
        // Members of the last sample are re-checked by start time, and uid processes belong
        // to this run's slot, so these kills cannot hit an unrelated process.
        for pid in &alive {
            procfs::kill(*pid);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
