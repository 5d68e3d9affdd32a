//! The container executor: a task's command in a container of the local Docker Engine.
//!
//! The engine enforces the limits: memory (swap included, so the kernel's OOM killer ends a
//! task over it, recorded as `OOMKilled`), CPUs pinned with a cpuset, processes with the pids
//! controller, no new privileges, every capability dropped, the engine's default seccomp
//! profile, a read-only root filesystem, a non-root user, no network (`network_mode: none`)
//! and no log kept by the engine (the executor reads the task's output as it is written). The
//! disk limit is the sandbox's: a filesystem per run of the limit's size, whose `out` and `tmp`
//! are the only writable places (`/task/out`, `/tmp`); the outputs are copied from it without
//! following a link. The executor samples the container's cgroup every 50 ms for the peaks of
//! its processes and memory and for its CPU time, and stops it at the CPU-time limit, the wall
//! time, the disk limit or a cancellation. GPUs are given whole, by device ids, through a device request (NVIDIA's
//! container runtime; an engine without it refuses the run).
//!
//! The image is named by digest, never by a tag alone: `name@sha256:<hex>` or `sha256:<hex>`,
//! where the digest is the image's id (the hash of its config, what `docker save` and `docker
//! load` keep) or a registry digest of it. The executor uses the engine's copy if it has one,
//! else loads the archive the task shipped and checks that it holds that image, else pulls by
//! digest from a registry; the operator's allow-list and size cap apply to all three.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aicpw_types::spec::image_digest;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountTypeEnum,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptions, CreateImageOptionsBuilder,
    ImportImageOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::disk::{DiskTools, RunDisk};
use super::gpus::{self, GpuLease, GpuPool};
use super::logs::{self, LineSplitter, RateLimiter};
use super::verdict::{classify, Observations};
use super::{
    command, prepare, procfs, supervise, ContainerImage, ExecutionEvent, ExecutionOutcome,
    ExecutionRequest, Executor, ExecutorError, Limits, LogStream, Prepared, Termination,
    LOG_LINES_PER_SECOND_MAX, PROGRESS_FILE_NAME, SANDBOX_INPUT_DIR, SANDBOX_OUTPUT_DIR,
    SANDBOX_SCRATCH_DIR,
};

/// How often the executor checks cancellation, wall time, progress and disk use.
const TICK: Duration = Duration::from_millis(50);
/// How long to wait for the last output once the container has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Smallest memory limit the engine accepts for a container.
const MEMORY_MB_MIN: u64 = 6;
/// The engine's answer to a call that does not come back in time.
const ENGINE_TIMEOUT_SECS: u64 = 120;

/// What the operator accepts and how tasks run in containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerConfig {
    /// Host uid and gid the task runs as inside the container (not root, no host user's).
    pub uid: u32,
    /// Image digests (`sha256:<hex>`, an id or a registry digest) this provider runs; empty
    /// accepts any image a task names by digest.
    pub images_allowed: Vec<String>,
    /// Largest image accepted, in bytes: an archive shipped with the task, or the image's size
    /// in the engine.
    pub image_bytes_max: u64,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            uid: 1_599_000_000,
            images_allowed: Vec::new(),
            image_bytes_max: 16 << 30,
        }
    }
}

/// The Docker Engine executor. Cheap to share: one instance serves concurrent runs.
pub struct ContainerExecutor {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
    config: ContainerConfig,
    tools: DiskTools,
    cpus: procfs::CpuRotation,
    gpus: GpuPool,
}

impl std::fmt::Debug for ContainerExecutor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ContainerExecutor").field("config", &self.config).finish()
    }
}

/// What one container run holds before its command is known: its filesystem and its GPUs.
pub struct ContainerRun<'a> {
    limits: Limits,
    scratch_dir: PathBuf,
    disk: RunDisk,
    gpus: GpuLease<'a>,
}

/// Where the engine listens: `DOCKER_HOST`, else its Unix socket.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn unavailable(reason: impl Into<String>) -> ExecutorError {
    ExecutorError::EngineUnavailable { address: engine_address(), reason: reason.into() }
}

fn engine(context: &str, error: EngineError) -> ExecutorError {
    ExecutorError::Engine { context: context.to_string(), reason: error.to_string() }
}

impl ContainerExecutor {
    /// Connects to the engine (`DOCKER_HOST`, or `/var/run/docker.sock`) and agrees on an API
    /// version with it; says clearly when no engine answers. Needs root, like the sandbox's
    /// kernel limits (each run's filesystem is a loop mount).
    pub fn new(config: ContainerConfig) -> Result<Self, ExecutorError> {
        if config.uid == 0 {
            return Err(ExecutorError::invalid("container tasks never run as root (uid 0)"));
        }
        if let Some(bad) =
            config.images_allowed.iter().find(|image| image_digest(image) != Some(image.as_str()))
        {
            return Err(ExecutorError::invalid(format!(
                "the allow-list names images by digest alone (`sha256:<64 hex>`), not {bad:?}"
            )));
        }
        if !rustix::process::geteuid().is_root() {
            return Err(unavailable("the agent must run as root to give each run its own disk"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aicpw-engine")
            .enable_all()
            .build()
            .map_err(|source| ExecutorError::io("start the engine client's runtime", source))?;
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unavailable(e.to_string()))?
            .with_timeout(Duration::from_secs(ENGINE_TIMEOUT_SECS));
        let docker = runtime.block_on(async {
            docker.ping().await.map_err(|e| unavailable(e.to_string()))?;
            docker.negotiate_version().await.map_err(|e| unavailable(e.to_string()))
        })?;
        Ok(ContainerExecutor {
            docker,
            runtime,
            config,
            tools: DiskTools::find()?,
            cpus: procfs::CpuRotation::new(),
            gpus: GpuPool::new(gpus::detect(Path::new("/dev"))),
        })
    }

    /// The engine's version, as it reports it.
    pub fn engine_version(&self) -> Result<String, ExecutorError> {
        let version = self.runtime.block_on(self.docker.version());
        let version = version.map_err(|e| engine("ask the engine's version", e))?;
        Ok(version.version.unwrap_or_default())
    }

    /// The id of the image `image` names, made present in the engine: its copy, the archive
    /// the task shipped (checked to hold that image), or a pull by digest.
    async fn resolve(&self, image: &ContainerImage) -> Result<String, ExecutorError> {
        let digest = image_digest(&image.reference).ok_or_else(|| {
            ExecutorError::invalid(format!(
                "image {:?} must be named by digest: `name@sha256:<64 hex>` or `sha256:<64 hex>`",
                image.reference
            ))
        })?;
        if !self.config.images_allowed.is_empty()
            && !self.config.images_allowed.iter().any(|allowed| allowed == digest)
        {
            return Err(ExecutorError::ImageRefused {
                image: image.reference.clone(),
                reason: "not in this provider's allow-list".into(),
            });
        }
        if let Some(id) = self.present(&image.reference, digest).await? {
            return Ok(id);
        }
        if let Some(archive) = &image.archive {
            self.load(archive, &image.reference).await?;
        } else if image.reference.contains('@') {
            let options = CreateImageOptionsBuilder::new().from_image(&image.reference).build();
            let mut pull = self.docker.create_image(Some(options), None, None);
            while let Some(step) = pull.next().await {
                step.map_err(|e| ExecutorError::ImageUnavailable {
                    image: image.reference.clone(),
                    reason: format!("not in the engine and not pulled: {e}"),
                })?;
            }
        }
        self.present(&image.reference, digest).await?.ok_or_else(|| {
            ExecutorError::ImageUnavailable {
                image: image.reference.clone(),
                reason: "neither in the engine, nor in an archive of the task, nor pulled".into(),
            }
        })
    }

    /// The id of the engine's image whose id or registry digest is `digest`, within the size
    /// cap; `None` when the engine has no such image.
    async fn present(
        &self,
        reference: &str,
        digest: &str,
    ) -> Result<Option<String>, ExecutorError> {
        // By id (`sha256:<hex>`), then by registry digest (`name@sha256:<hex>`).
        for name in [digest, reference] {
            let inspected = match self.docker.inspect_image(name).await {
                Ok(inspected) => inspected,
                Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(engine("inspect an image", e)),
            };
            let id = inspected.id.unwrap_or_default();
            let digests = inspected.repo_digests.unwrap_or_default();
            let matches = id == digest
                || digests.iter().any(|d| d.rsplit_once('@').is_some_and(|(_, d)| d == digest));
            if !matches {
                continue;
            }
            let size = u64::try_from(inspected.size.unwrap_or(0)).unwrap_or(u64::MAX);
            if size > self.config.image_bytes_max {
                return Err(ExecutorError::ImageRefused {
                    image: reference.to_string(),
                    reason: format!(
                        "{size} bytes, over the cap of {}",
                        self.config.image_bytes_max
                    ),
                });
            }
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// Loads a `docker save` archive into the engine, within the size cap.
    async fn load(&self, archive: &Path, reference: &str) -> Result<(), ExecutorError> {
        let refused =
            |reason: String| ExecutorError::ImageRefused { image: reference.to_string(), reason };
        let metadata = std::fs::symlink_metadata(archive)
            .map_err(|e| refused(format!("archive {}: {e}", archive.display())))?;
        if !metadata.is_file() || metadata.len() > self.config.image_bytes_max {
            return Err(refused(format!(
                "the archive is not a file of at most {} bytes",
                self.config.image_bytes_max
            )));
        }
        let bytes = tokio::fs::read(archive)
            .await
            .map_err(|source| ExecutorError::io("read the image archive", source))?;
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let body = bollard::body_full(bytes.into());
        let mut loading = self.docker.import_image(options, body, None);
        while let Some(step) = loading.next().await {
            let step = step.map_err(|e| refused(format!("the engine cannot load it: {e}")))?;
            if let Some(error) = step.error_detail.and_then(|detail| detail.message) {
                return Err(refused(format!("the engine cannot load it: {error}")));
            }
        }
        Ok(())
    }

    /// Runs the container to its end: create, attach, start, watch, collect the verdict,
    /// remove (whatever happened before).
    async fn run_container(
        &self,
        run: &ContainerRun<'_>,
        request: &ExecutionRequest,
        image: &ContainerImage,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError> {
        let image_id = self.resolve(image).await?;
        let body = self.container_body(run, request, image_id);
        let created = self.docker.create_container(None::<CreateContainerOptions>, body).await;
        let id = created.map_err(|e| engine("create the container", e))?.id;
        let outcome = self.watch(&id, run, request, events).await;
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let removed = self.docker.remove_container(&id, Some(options)).await;
        let outcome = outcome?;
        removed.map_err(|e| engine("remove the container", e))?;
        Ok(outcome)
    }

    fn container_body(
        &self,
        run: &ContainerRun<'_>,
        request: &ExecutionRequest,
        image_id: String,
    ) -> ContainerCreateBody {
        let limits = &request.limits;
        let memory = i64::try_from(limits.memory_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let bind = |source: &Path, target: &str, read_only: bool| Mount {
            target: Some(target.to_string()),
            source: Some(source.display().to_string()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(read_only),
            ..Mount::default()
        };
        let host_config = HostConfig {
            memory: Some(memory),
            // Swap equal to memory: none, so the kernel kills at the limit instead of swapping.
            memory_swap: Some(memory),
            oom_kill_disable: Some(false),
            cpuset_cpus: self
                .cpus
                .pick(limits.cpu_cores)
                .map(|cpus| cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            pids_limit: Some(i64::from(limits.processes_max)),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            network_mode: Some("none".into()),
            ipc_mode: Some("private".into()),
            log_config: Some(HostConfigLogConfig { typ: Some("none".into()), config: None }),
            mounts: Some(vec![
                bind(&request.inputs_dir, SANDBOX_INPUT_DIR, true),
                bind(&run.disk.outputs(), SANDBOX_OUTPUT_DIR, false),
                bind(&run.disk.scratch(), SANDBOX_SCRATCH_DIR, false),
            ]),
            device_requests: gpu_requests(run.gpus.devices()),
            ..HostConfig::default()
        };
        // The image's own variables (its PATH) stay; the task's are added or override them.
        let env = command::task_environment(request)
            .into_iter()
            .filter(|(key, _)| key != "PATH")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let uid = self.config.uid;
        ContainerCreateBody {
            image: Some(image_id),
            user: Some(format!("{uid}:{uid}")),
            entrypoint: Some(vec![request.command.clone()]),
            cmd: Some(request.args.clone()),
            env: Some(env),
            working_dir: Some(SANDBOX_INPUT_DIR.into()),
            network_disabled: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        }
    }

    /// Attaches, starts and watches the container until it has exited; the verdict.
    async fn watch(
        &self,
        id: &str,
        run: &ContainerRun<'_>,
        request: &ExecutionRequest,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError> {
        let attach = AttachContainerOptionsBuilder::new().stdout(true).stderr(true).stream(true);
        let attached = self.docker.attach_container(id, Some(attach.build())).await;
        let mut output = attached.map_err(|e| engine("attach to the container", e))?.output;
        let started = Instant::now();
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| engine("start the container", e))?;
        // The engine's cgroup of the container, sampled for the peaks (and the process limit's
        // reason: the kernel refuses a fork over it, which the task sees as a failed fork).
        let inspected = self.docker.inspect_container(id, None::<InspectContainerOptions>).await;
        let pid = inspected.ok().and_then(|i| i.state).and_then(|state| state.pid);
        let cgroup = pid.filter(|pid| *pid > 0).map(|pid| CgroupFiles::of(pid, id));
        let wait = WaitContainerOptionsBuilder::new().condition("not-running").build();
        let mut waiting = self.docker.wait_container(id, Some(wait));
        let progress_path = run.disk.scratch().join(PROGRESS_FILE_NAME);
        let mut watch = Watch::new(request, events, started);
        let mut tick = tokio::time::interval(TICK);
        let mut output_open = true;
        let status = loop {
            tokio::select! {
                chunk = output.next(), if output_open => match chunk {
                    Some(Ok(chunk)) => watch.on_output(chunk),
                    _ => output_open = false,
                },
                waited = waiting.next() => break waited,
                _ = tick.tick() => {
                    watch.sample(cgroup.as_ref());
                    watch.poll_progress(&progress_path);
                    if watch.kill_reason.is_none() {
                        let used = run.disk.task_bytes();
                        if let Some(reason) = watch.limit_crossed(used) {
                            watch.kill_reason = Some(reason);
                            let kill = KillContainerOptionsBuilder::new().signal("KILL").build();
                            // An error: the container has already exited, as wanted.
                            let _ = self.docker.kill_container(id, Some(kill)).await;
                        }
                    }
                }
            }
        };
        let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let exit_code = match status {
            Some(Ok(response)) => response.status_code,
            Some(Err(EngineError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(engine("wait for the container", e)),
            None => return Err(unavailable("the engine ended the wait without a status")),
        };
        let drain_until = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while output_open {
            match tokio::time::timeout_at(drain_until, output.next()).await {
                Ok(Some(Ok(chunk))) => watch.on_output(chunk),
                _ => output_open = false,
            }
        }
        watch.finish_lines();
        watch.poll_progress(&progress_path);
        watch.report_dropped();
        let inspected = self.docker.inspect_container(id, None::<InspectContainerOptions>).await;
        let state = inspected.map_err(|e| engine("inspect the container", e))?.state;
        // The kernel's OOM killer ended a process of the container at its memory limit.
        if state.and_then(|state| state.oom_killed) == Some(true) {
            watch.kill_reason.get_or_insert(Termination::MemoryExceeded);
        }
        let outputs_removed = prepare::sanitize_outputs(&run.disk.outputs())?;
        let disk_limit = request.limits.disk_mb.saturating_mul(1 << 20);
        let observed = Observations {
            kill_reason: watch.kill_reason,
            exit_code: Some(i32::try_from(exit_code).unwrap_or(i32::MAX)),
            signal: None,
            cpu_ms: watch.cpu_ms,
            cpu_limit_ms: request.limits.cpu_time_secs.saturating_mul(1000),
            out_of_memory_reported: watch.out_of_memory_reported,
            disk_full: run.disk.task_bytes().is_none_or(|used| used >= disk_limit),
            processes_peak: watch.processes_peak,
            processes_max: request.limits.processes_max,
        };
        let (mut termination, exit_code, signal) = classify(&observed);
        if termination.is_success() || termination == Termination::NonZeroExit {
            match run.disk.copy_outputs(&request.outputs_dir, disk_limit)? {
                true => {}
                false => termination = Termination::DiskExceeded,
            }
        }
        Ok(ExecutionOutcome {
            termination,
            exit_code,
            signal,
            wall_ms,
            cpu_ms: watch.cpu_ms,
            memory_peak_mb: watch.memory_peak_bytes.div_ceil(1 << 20),
            processes_peak: watch.processes_peak,
            log_lines_dropped: watch.dropped_total,
            outputs_removed,
        })
    }
}

impl Executor for ContainerExecutor {
    fn prepare(
        &self,
        limits: &Limits,
        network: bool,
        scratch_dir: &Path,
    ) -> Result<Prepared<'_>, ExecutorError> {
        prepare::validate_limits(limits)?;
        prepare::validate_dir("scratch_dir", scratch_dir)?;
        if network {
            return Err(ExecutorError::NetworkUnavailable {
                reason: "container tasks run without network access".into(),
            });
        }
        if limits.memory_mb < MEMORY_MB_MIN {
            return Err(ExecutorError::invalid(format!(
                "a container needs a memory limit of at least {MEMORY_MB_MIN} MB"
            )));
        }
        let gpus = self.gpus.take(limits.gpus)?;
        let disk = RunDisk::create(&self.tools, scratch_dir, limits.disk_mb, self.config.uid)?;
        Ok(Prepared::Container(ContainerRun {
            limits: *limits,
            scratch_dir: scratch_dir.to_path_buf(),
            disk,
            gpus,
        }))
    }

    fn run_prepared(
        &self,
        prepared: Prepared<'_>,
        request: &ExecutionRequest,
        events: &mut dyn FnMut(ExecutionEvent),
    ) -> Result<ExecutionOutcome, ExecutorError> {
        prepare::validate(request)?;
        let Prepared::Container(run) = prepared else {
            return Err(ExecutorError::invalid("the run was prepared by another executor"));
        };
        let Some(image) = &request.image else {
            return Err(ExecutorError::invalid("a container run needs an image"));
        };
        if (request.limits, request.network, &request.scratch_dir)
            != (run.limits, false, &run.scratch_dir)
        {
            return Err(ExecutorError::invalid(
                "the request's limits, network access or scratch directory differ from what was \
                 prepared for it",
            ));
        }
        // The inputs are read through a read-only mount, as the task's user.
        prepare::hand_over(&[("inputs_dir", request.inputs_dir.as_path())], self.config.uid)?;
        self.runtime.block_on(self.run_container(&run, request, image, events))
    }
}

/// The engine's device request for the whole GPUs a run holds (`docker run --gpus device=…`):
/// NVIDIA's container runtime hook gives the container those devices and their driver files;
/// an engine without it refuses to create the container. `None` for a run without GPUs.
fn gpu_requests(devices: &[u32]) -> Option<Vec<DeviceRequest>> {
    (!devices.is_empty()).then(|| {
        vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: None,
            device_ids: Some(devices.iter().map(u32::to_string).collect()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: None,
        }]
    })
}

/// The files of a container's cgroup the executor samples: its tasks (processes and threads),
/// its memory in use and its CPU time, found from its first process's `/proc/PID/cgroup` (cgroup v1: one
/// hierarchy per controller; v2: one directory). `None` where the file is not there.
#[derive(Debug, Default)]
struct CgroupFiles {
    tasks: Option<PathBuf>,
    /// `pids.events`: its `max` counts the forks the kernel refused at the limit.
    task_events: Option<PathBuf>,
    memory: Option<PathBuf>,
    /// v1 `cpuacct.usage` (ns), or v2 `cpu.stat` (its `usage_usec`).
    cpu: Option<PathBuf>,
}

impl CgroupFiles {
    /// The cgroup files of container `id` whose first process is `pid`: only paths that name
    /// the container (the engine's `/docker/<id>` or `docker-<id>.scope`), so a process that
    /// has already exited (its pid reused, or gone) never points the samples elsewhere.
    fn of(pid: i64, id: &str) -> CgroupFiles {
        let mut files = CgroupFiles::default();
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return files;
        };
        let root = Path::new("/sys/fs/cgroup");
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if id.is_empty() || !path.contains(id) {
                continue;
            }
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                let dir = root.join(path);
                files.tasks.get_or_insert(dir.join("pids.current"));
                files.task_events.get_or_insert(dir.join("pids.events"));
                files.memory.get_or_insert(dir.join("memory.current"));
                files.cpu.get_or_insert(dir.join("cpu.stat"));
            }
            for controller in controllers.split(',') {
                match controller {
                    "pids" => {
                        let dir = root.join("pids").join(path);
                        files.tasks = Some(dir.join("pids.current"));
                        files.task_events = Some(dir.join("pids.events"));
                    }
                    "memory" => {
                        let dir = root.join("memory").join(path);
                        files.memory = Some(dir.join("memory.usage_in_bytes"));
                    }
                    "cpuacct" => {
                        let dir = root.join(controllers).join(path);
                        files.cpu = Some(dir.join("cpuacct.usage"));
                    }
                    _ => {}
                }
            }
        }
        files
    }

    fn read(path: Option<&PathBuf>) -> Option<u64> {
        std::fs::read_to_string(path?).ok()?.trim().parse().ok()
    }

    /// Whether the kernel has refused a fork at the process limit.
    fn fork_refused(&self) -> bool {
        let Some(text) = self.task_events.as_ref().and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return false;
        };
        let refused = text.lines().find_map(|line| line.strip_prefix("max "));
        refused.and_then(|count| count.trim().parse::<u64>().ok()).is_some_and(|count| count > 0)
    }

    /// CPU time of the container's processes so far, in ms.
    fn cpu_ms(&self) -> Option<u64> {
        let path = self.cpu.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        if path.ends_with("cpuacct.usage") {
            return text.trim().parse::<u64>().ok().map(|ns| ns / 1_000_000);
        }
        let usec = text.lines().find_map(|line| line.strip_prefix("usage_usec "))?;
        usec.trim().parse::<u64>().ok().map(|us| us / 1_000)
    }
}

/// The output of one run as the executor forwards it: lines, progress, the rate limit.
struct Watch<'a> {
    request: &'a ExecutionRequest,
    events: &'a mut dyn FnMut(ExecutionEvent),
    started: Instant,
    stdout: LineSplitter,
    stderr: LineSplitter,
    limiter: RateLimiter,
    last_permille: Option<u16>,
    dropped_total: u64,
    dropped_unreported: u64,
    out_of_memory_reported: bool,
    kill_reason: Option<Termination>,
    processes_peak: u32,
    memory_peak_bytes: u64,
    cpu_ms: u64,
}

impl<'a> Watch<'a> {
    fn new(
        request: &'a ExecutionRequest,
        events: &'a mut dyn FnMut(ExecutionEvent),
        started: Instant,
    ) -> Self {
        Watch {
            request,
            events,
            started,
            stdout: LineSplitter::default(),
            stderr: LineSplitter::default(),
            limiter: RateLimiter::new(started),
            last_permille: None,
            dropped_total: 0,
            dropped_unreported: 0,
            out_of_memory_reported: false,
            kill_reason: None,
            processes_peak: 0,
            memory_peak_bytes: 0,
            cpu_ms: 0,
        }
    }

    fn on_output(&mut self, chunk: bollard::container::LogOutput) {
        use bollard::container::LogOutput;
        let (stream, lines) = match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, self.stdout.push(&message))
            }
            LogOutput::StdErr { message } => (LogStream::Stderr, self.stderr.push(&message)),
            LogOutput::StdIn { .. } => return,
        };
        for line in lines {
            self.on_line(stream, line);
        }
    }

    fn finish_lines(&mut self) {
        if let Some(line) = self.stdout.finish() {
            self.on_line(LogStream::Stdout, line);
        }
        if let Some(line) = self.stderr.finish() {
            self.on_line(LogStream::Stderr, line);
        }
    }

    fn on_line(&mut self, stream: LogStream, line: String) {
        if stream == LogStream::Stdout {
            if let Some(permille) = logs::parse_progress_line(&line) {
                self.progress(permille);
            }
        } else if logs::reports_out_of_memory(&line) {
            self.out_of_memory_reported = true;
        }
        if self.limiter.admit(Instant::now()) {
            (self.events)(ExecutionEvent::Log { stream, line });
        } else {
            self.dropped_total = self.dropped_total.saturating_add(1);
            self.dropped_unreported = self.dropped_unreported.saturating_add(1);
        }
    }

    fn report_dropped(&mut self) {
        if self.dropped_unreported > 0 {
            let line = format!(
                "[aicpw] {} log lines dropped (more than {LOG_LINES_PER_SECOND_MAX} lines per second)",
                self.dropped_unreported
            );
            (self.events)(ExecutionEvent::Log { stream: LogStream::Stderr, line });
            self.dropped_unreported = 0;
        }
    }

    fn progress(&mut self, permille: u16) {
        if self.last_permille != Some(permille) {
            self.last_permille = Some(permille);
            (self.events)(ExecutionEvent::Progress { permille });
        }
    }

    /// Samples the container's cgroup (where found) for the peaks of its tasks and memory and
    /// for its CPU time.
    fn sample(&mut self, cgroup: Option<&CgroupFiles>) {
        let Some(cgroup) = cgroup else { return };
        if let Some(tasks) = CgroupFiles::read(cgroup.tasks.as_ref()) {
            let tasks = u32::try_from(tasks).unwrap_or(u32::MAX);
            self.processes_peak = self.processes_peak.max(tasks);
        }
        // A refused fork means the container held its limit's worth at that moment, which a
        // sample may have missed.
        if cgroup.fork_refused() {
            self.processes_peak = self.processes_peak.max(self.request.limits.processes_max);
        }
        if let Some(bytes) = CgroupFiles::read(cgroup.memory.as_ref()) {
            self.memory_peak_bytes = self.memory_peak_bytes.max(bytes);
        }
        if let Some(cpu_ms) = cgroup.cpu_ms() {
            self.cpu_ms = self.cpu_ms.max(cpu_ms);
        }
    }

    fn poll_progress(&mut self, path: &Path) {
        if let Some(permille) = supervise::read_progress_file(path) {
            self.progress(permille);
        }
    }

    /// The limit the executor itself enforces that the run has crossed: wall time, CPU time
    /// (sampled from the cgroup), cancellation, and the disk (which the filesystem enforces;
    /// this check names it). The engine enforces memory, CPUs and processes.
    fn limit_crossed(&self, disk_used: Option<u64>) -> Option<Termination> {
        let limits = &self.request.limits;
        if self.request.cancel.is_cancelled() {
            return Some(Termination::Cancelled);
        }
        if self.started.elapsed() >= Duration::from_secs(limits.wall_time_secs) {
            return Some(Termination::WallTimeExceeded);
        }
        if self.cpu_ms >= limits.cpu_time_secs.saturating_mul(1000) {
            return Some(Termination::CpuTimeExceeded);
        }
        if disk_used.is_none_or(|used| used > limits.disk_mb.saturating_mul(1 << 20)) {
            return Some(Termination::DiskExceeded);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No GPU on the machines these tests run on: the request the engine would get is checked,
    /// not a run on a GPU.
    #[test]
    fn gpus_are_requested_whole_by_device_id_from_the_nvidia_runtime() {
        assert_eq!(gpu_requests(&[]), None, "no GPUs: no device request at all");
        let requests = gpu_requests(&[1, 3]).expect("a request");
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.driver.as_deref(), Some("nvidia"));
        // By id, never a count: the engine must not pick GPUs another run holds.
        assert_eq!(request.count, None);
        assert_eq!(request.device_ids, Some(vec!["1".to_string(), "3".to_string()]));
        assert_eq!(request.capabilities, Some(vec![vec!["gpu".to_string()]]));
    }
}
