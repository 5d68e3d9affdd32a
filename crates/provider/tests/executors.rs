//! The guarantees every executor gives, one suite run against each: the bubblewrap sandbox and
//! the container executor on the local Docker Engine (with the busybox image that
//! `scripts/container-image.sh` builds without a registry). No mocks: each test runs a real
//! task, so the suite fails where the sandbox or the engine cannot start (`scripts/setup.sh`
//! installs and starts both) instead of passing without testing anything. The commands are
//! plain shell, which the host's `/usr` (sandbox) and busybox (container) both provide.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use aicpw_provider::executor::{
    sandbox_available, ContainerConfig, ContainerExecutor, ContainerImage, ExecutionEvent,
    ExecutionOutcome, ExecutionRequest, Executor, ExecutorError, Limits, LogStream, SandboxConfig,
    SandboxExecutor, Termination,
};

/// An executor under test and the image its requests name (containers only).
struct Flavor {
    executor: &'static dyn Executor,
    image: Option<ContainerImage>,
}

fn sandbox() -> Flavor {
    static EXECUTOR: OnceLock<SandboxExecutor> = OnceLock::new();
    let executor = EXECUTOR.get_or_init(|| {
        if let Err(error) = sandbox_available() {
            panic!("the sandbox cannot start on this machine: {error}");
        }
        SandboxExecutor::new(SandboxConfig::default()).expect("sandbox executor")
    });
    Flavor { executor, image: None }
}

fn container() -> Flavor {
    Flavor { executor: container_executor(), image: Some(test_image().clone()) }
}

fn container_executor() -> &'static ContainerExecutor {
    static EXECUTOR: OnceLock<ContainerExecutor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        ContainerExecutor::new(ContainerConfig::default())
            .unwrap_or_else(|error| panic!("no container executor on this machine: {error}"))
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds (with `scripts/container-image.sh`) an image archive, loaded into the engine unless
/// it is a variant; returns the reference that names it by digest.
fn build_image(archive: &Path, variant: Option<&str>) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/container-image.sh"))
        .arg(archive)
        .args(variant)
        .output()
        .expect("run scripts/container-image.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "container-image.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim().to_string()
}

/// The busybox test image, built and loaded once per test binary.
fn test_image() -> &'static ContainerImage {
    static IMAGE: OnceLock<ContainerImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let archive = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aicpw-busybox.tar");
        ContainerImage { reference: build_image(&archive, None), archive: None }
    })
}

/// The three directories of a run, inside one temporary directory.
struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for name in ["in", "out", "scratch"] {
            std::fs::create_dir(root.path().join(name)).expect("mkdir");
        }
        Dirs { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn request(&self, flavor: &Flavor, script: &str) -> ExecutionRequest {
        let mut request = ExecutionRequest::new(
            "sh",
            vec!["-c".into(), script.into()],
            self.path("in"),
            self.path("out"),
            self.path("scratch"),
        );
        request.limits = Limits {
            memory_mb: 128,
            processes_max: 32,
            cpu_time_secs: 60,
            wall_time_secs: 60,
            cpu_cores: 1,
            disk_mb: 64,
            gpus: 0,
        };
        request.image = flavor.image.clone();
        request
    }
}

struct Run {
    outcome: ExecutionOutcome,
    events: Vec<ExecutionEvent>,
}

impl Run {
    fn lines(&self, wanted: LogStream) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|event| match event {
                ExecutionEvent::Log { stream, line } if *stream == wanted => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    fn stdout(&self) -> String {
        self.lines(LogStream::Stdout).join("\n")
    }

    fn describe(&self) -> String {
        format!(
            "{:?}\nstdout: {}\nstderr: {}",
            self.outcome,
            self.stdout(),
            self.lines(LogStream::Stderr).join("\n")
        )
    }
}

fn execute(flavor: &Flavor, request: &ExecutionRequest) -> Run {
    let mut events = Vec::new();
    let outcome = flavor.executor.run(request, &mut |event| events.push(event)).expect("ran");
    Run { outcome, events }
}

fn run_script(
    flavor: &Flavor,
    dirs: &Dirs,
    script: &str,
    adjust: impl FnOnce(&mut ExecutionRequest),
) -> Run {
    let mut request = dirs.request(flavor, script);
    adjust(&mut request);
    execute(flavor, &request)
}

fn a_task_completes_and_its_outputs_and_logs_come_back(flavor: &Flavor) {
    let dirs = Dirs::new();
    std::fs::write(dirs.path("in").join("data.txt"), "three\nlines\nhere\n").expect("input");
    let script =
        "wc -l < data.txt > /task/out/count.txt && echo 'progress: 0.5' && echo to-stderr >&2 \
        && echo 0.75 > /tmp/.aicpw-progress && sleep 0.6 && echo done";
    let run = run_script(flavor, &dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.outcome.exit_code, Some(0));
    let count = std::fs::read_to_string(dirs.path("out").join("count.txt")).expect("output");
    assert_eq!(count.trim(), "3");
    assert!(run.lines(LogStream::Stdout).contains(&"done"), "{}", run.describe());
    assert!(run.lines(LogStream::Stderr).contains(&"to-stderr"), "{}", run.describe());
    let progress: Vec<u16> = run
        .events
        .iter()
        .filter_map(|event| match event {
            ExecutionEvent::Progress { permille } => Some(*permille),
            _ => None,
        })
        .collect();
    assert!(progress.contains(&500) && progress.contains(&750), "progress {progress:?}");
}

fn host_files_outside_the_mounts_are_invisible(flavor: &Flavor) {
    let dirs = Dirs::new();
    let secret = dirs.path("secret.txt");
    std::fs::write(&secret, "host-secret-8231").expect("secret");
    let script =
        format!("cat {} ; cat /etc/shadow ; ls /root /work /home ; echo checked", secret.display());
    let run = run_script(flavor, &dirs, &script, |_| {});
    assert!(run.stdout().contains("checked"), "{}", run.describe());
    assert!(!run.stdout().contains("host-secret-8231"), "{}", run.describe());
    assert!(!run.stdout().contains("root:"), "{}", run.describe());
}

fn the_task_has_no_network_but_its_own_loopback(flavor: &Flavor) {
    let dirs = Dirs::new();
    let run = run_script(flavor, &dirs, "cat /proc/net/dev", |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let interfaces: Vec<&str> = run
        .lines(LogStream::Stdout)
        .into_iter()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim()))
        .collect();
    assert_eq!(interfaces, ["lo"], "{}", run.describe());
}

fn the_task_runs_as_an_unprivileged_user_and_cannot_write_its_inputs(flavor: &Flavor) {
    let dirs = Dirs::new();
    std::fs::write(dirs.path("in").join("given.txt"), "given").expect("input");
    let script = "id -u; echo x > /task/in/given.txt || echo inputs-read-only; \
        echo x > /task/in/new.txt || echo no-new-inputs; echo ok > /task/out/ok.txt";
    let run = run_script(flavor, &dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let lines = run.lines(LogStream::Stdout);
    assert_ne!(lines.first().copied(), Some("0"), "the task runs as root: {}", run.describe());
    assert!(
        lines.contains(&"inputs-read-only") && lines.contains(&"no-new-inputs"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(dirs.path("in").join("given.txt")).expect("input"), "given");
    assert!(dirs.path("out").join("ok.txt").exists());
}

fn memory_over_the_limit_ends_the_task_as_memory_exceeded(flavor: &Flavor) {
    let dirs = Dirs::new();
    // `tail` keeps everything after the last newline, and /dev/zero has none.
    let run = run_script(flavor, &dirs, "tail /dev/zero", |request| request.limits.memory_mb = 32);
    assert_eq!(run.outcome.termination, Termination::MemoryExceeded, "{}", run.describe());
    assert!(run.outcome.wall_ms < 30_000, "{}", run.describe());
}

fn the_wall_time_limit_ends_the_task(flavor: &Flavor) {
    let dirs = Dirs::new();
    let run = run_script(flavor, &dirs, "sleep 30", |request| request.limits.wall_time_secs = 1);
    assert_eq!(run.outcome.termination, Termination::WallTimeExceeded, "{}", run.describe());
    assert!(run.outcome.wall_ms < 10_000, "{}", run.describe());
}

fn writing_past_the_disk_limit_is_disk_exceeded(flavor: &Flavor) {
    let dirs = Dirs::new();
    let script = "dd if=/dev/zero of=/task/out/big bs=1M count=64";
    let run = run_script(flavor, &dirs, script, |request| request.limits.disk_mb = 8);
    assert_eq!(run.outcome.termination, Termination::DiskExceeded, "{}", run.describe());
}

fn links_and_special_files_are_not_followed_out_of_the_outputs(flavor: &Flavor) {
    let dirs = Dirs::new();
    let secret = dirs.path("secret.txt");
    std::fs::write(&secret, "host-secret-4410").expect("secret");
    let script = format!(
        "echo plain > /task/out/plain.txt; ln -s {} /task/out/link; ln -s /etc/passwd /task/out/passwd; \
         mkfifo /task/out/fifo; mkdir /task/out/d; chmod 000 /task/out/plain.txt",
        secret.display()
    );
    let run = run_script(flavor, &dirs, &script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let mut names: Vec<String> = std::fs::read_dir(dirs.path("out"))
        .expect("outputs")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "plain.txt"]);
    assert_eq!(run.outcome.outputs_removed, 3);
    let plain = std::fs::read_to_string(dirs.path("out").join("plain.txt")).expect("readable");
    assert_eq!(plain, "plain\n");
}

fn a_fork_bomb_is_held_at_the_process_limit(flavor: &Flavor) {
    let dirs = Dirs::new();
    // The inner shell forks until the kernel refuses and dies of it; its sleepers hold the
    // limit while the outer one waits. Exits non-zero either way: only the process limit, seen,
    // makes it a limit's failure.
    let script = "sh -c 'for i in $(seq 1 64); do sleep 3 & done; wait'; sleep 1; exit 7";
    let run = run_script(flavor, &dirs, script, |request| request.limits.processes_max = 16);
    assert_eq!(run.outcome.termination, Termination::ProcessLimitExceeded, "{}", run.describe());
    assert!(run.outcome.processes_peak <= 16, "{}", run.describe());
}

fn a_busy_loop_is_stopped_at_its_cpu_time(flavor: &Flavor) {
    let dirs = Dirs::new();
    let run = run_script(flavor, &dirs, "while :; do :; done", |request| {
        request.limits.cpu_time_secs = 1;
        request.limits.wall_time_secs = 30;
    });
    assert_eq!(run.outcome.termination, Termination::CpuTimeExceeded, "{}", run.describe());
    assert!(run.outcome.wall_ms < 20_000, "{}", run.describe());
}

fn a_non_zero_exit_is_reported_with_its_code(flavor: &Flavor) {
    let dirs = Dirs::new();
    let run = run_script(flavor, &dirs, "echo failing; exit 3", |_| {});
    assert_eq!(run.outcome.termination, Termination::NonZeroExit, "{}", run.describe());
    assert_eq!(run.outcome.exit_code, Some(3));
}

fn cancelling_stops_the_task(flavor: &Flavor) {
    let dirs = Dirs::new();
    let request = dirs.request(flavor, "sleep 30");
    let cancel = request.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        cancel.cancel();
    });
    let run = execute(flavor, &request);
    canceller.join().expect("canceller");
    assert_eq!(run.outcome.termination, Termination::Cancelled, "{}", run.describe());
    assert!(run.outcome.wall_ms < 10_000);
}

macro_rules! suite {
    ($flavor:ident: $($test:ident),* $(,)?) => {
        mod $flavor {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::$flavor());
                }
            )*
        }
    };
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        suite!(sandbox: $($test),*);
        suite!(container: $($test),*);
    };
}

both!(
    a_task_completes_and_its_outputs_and_logs_come_back,
    host_files_outside_the_mounts_are_invisible,
    the_task_has_no_network_but_its_own_loopback,
    the_task_runs_as_an_unprivileged_user_and_cannot_write_its_inputs,
    memory_over_the_limit_ends_the_task_as_memory_exceeded,
    the_wall_time_limit_ends_the_task,
    writing_past_the_disk_limit_is_disk_exceeded,
    links_and_special_files_are_not_followed_out_of_the_outputs,
    a_fork_bomb_is_held_at_the_process_limit,
    a_busy_loop_is_stopped_at_its_cpu_time,
    a_non_zero_exit_is_reported_with_its_code,
    cancelling_stops_the_task,
);

// Container-only: the image rules and the engine's own limits.

#[test]
fn the_container_root_filesystem_is_read_only_and_capabilities_are_dropped() {
    let flavor = container();
    let dirs = Dirs::new();
    let script = "touch /etc/x || echo root-read-only; grep CapEff /proc/self/status; \
        grep NoNewPrivs /proc/self/status";
    let run = run_script(&flavor, &dirs, script, |_| {});
    let stdout = run.stdout();
    assert!(stdout.contains("root-read-only"), "{}", run.describe());
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{}", run.describe());
    assert!(stdout.contains("NoNewPrivs:\t1"), "{}", run.describe());
}

#[test]
fn an_image_named_by_tag_alone_is_refused_before_anything_runs() {
    let flavor = container();
    let dirs = Dirs::new();
    for reference in ["aicpw/busybox:latest", "aicpw/busybox", "sha256:1234", "@sha256:"] {
        let mut request = dirs.request(&flavor, "true");
        request.image = Some(ContainerImage { reference: reference.into(), archive: None });
        let refused = flavor.executor.run(&request, &mut |_| {}).expect_err(reference);
        assert!(matches!(refused, ExecutorError::InvalidRequest { .. }), "{reference}: {refused}");
    }
}

#[test]
fn an_image_outside_the_operators_allow_list_is_refused() {
    let only = "sha256:".to_string() + &"0".repeat(64);
    let executor = ContainerExecutor::new(ContainerConfig {
        images_allowed: vec![only],
        ..ContainerConfig::default()
    })
    .expect("executor");
    let dirs = Dirs::new();
    let mut request = dirs.request(&container(), "true");
    request.image = Some(test_image().clone());
    let refused = executor.run(&request, &mut |_| {}).expect_err("refused");
    assert!(matches!(refused, ExecutorError::ImageRefused { .. }), "{refused}");
}

#[test]
fn an_allow_list_entry_that_is_not_a_bare_digest_is_refused_at_start() {
    let hex = "ab".repeat(32);
    for entry in [format!("aicpw/busybox@sha256:{hex}"), "aicpw/busybox:latest".into(), hex] {
        let config = ContainerConfig { images_allowed: vec![entry.clone()], ..Default::default() };
        let refused = ContainerExecutor::new(config).expect_err(&entry);
        assert!(matches!(refused, ExecutorError::InvalidRequest { .. }), "{entry}: {refused}");
    }
}

#[test]
fn an_image_shipped_as_an_archive_is_loaded_and_checked_against_its_digest() {
    let variant = format!("archive-test-{}", std::process::id());
    let archive = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{variant}.tar"));
    let reference = build_image(&archive, Some(&variant));
    let flavor = container();
    let dirs = Dirs::new();
    let digest = reference.rsplit_once('@').expect("a digest").1.to_string();
    // The engine does not have it, and there is no registry: without the archive, nothing runs.
    let _ = Command::new("docker").args(["rmi", "-f", &digest]).output();
    let mut request = dirs.request(&flavor, "echo from-the-archive");
    request.image = Some(ContainerImage { reference: reference.clone(), archive: None });
    let missing = flavor.executor.run(&request, &mut |_| {}).expect_err("no such image");
    assert!(matches!(missing, ExecutorError::ImageUnavailable { .. }), "{missing}");
    // An archive that holds another image does not stand for the one named.
    let other = format!("aicpw/busybox@sha256:{}", "1".repeat(64));
    request.image = Some(ContainerImage { reference: other, archive: Some(archive.clone()) });
    let wrong = flavor.executor.run(&request, &mut |_| {}).expect_err("another image");
    assert!(matches!(wrong, ExecutorError::ImageUnavailable { .. }), "{wrong}");
    // The archive with the image named: loaded, checked, run.
    request.image = Some(ContainerImage { reference, archive: Some(archive.clone()) });
    let run = execute(&flavor, &request);
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.stdout(), "from-the-archive");
    // Over the operator's size cap, the archive is not even read.
    let small = ContainerExecutor::new(ContainerConfig {
        image_bytes_max: 1024,
        ..ContainerConfig::default()
    })
    .expect("executor");
    let _ = Command::new("docker").args(["rmi", "-f", &digest]).output();
    let too_big = small.run(&request, &mut |_| {}).expect_err("too big");
    assert!(matches!(too_big, ExecutorError::ImageRefused { .. }), "{too_big}");
    let _ = Command::new("docker").args(["rmi", "-f", &digest]).output();
    let _ = std::fs::remove_file(&archive);
}

#[test]
fn a_container_task_cannot_ask_for_network_access() {
    let flavor = container();
    let dirs = Dirs::new();
    let mut request = dirs.request(&flavor, "true");
    request.network = true;
    let refused = flavor.executor.run(&request, &mut |_| {}).expect_err("refused");
    assert!(matches!(refused, ExecutorError::NetworkUnavailable { .. }), "{refused}");
}

#[test]
fn the_sandbox_refuses_a_request_with_an_image() {
    let flavor = sandbox();
    let dirs = Dirs::new();
    let mut request = dirs.request(&flavor, "true");
    request.image = Some(test_image().clone());
    let refused = flavor.executor.run(&request, &mut |_| {}).expect_err("refused");
    assert!(matches!(refused, ExecutorError::InvalidRequest { .. }), "{refused}");
}
