//! The sandbox executor against real tasks: the example training job, isolation, every limit,
//! cleanup. No mocks: each test starts a real bubblewrap sandbox, so the suite fails (with the
//! setup hint) where the sandbox cannot start, instead of passing without testing anything.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aicpw_provider::executor::{
    sandbox_available, ExecutionEvent, ExecutionOutcome, ExecutionRequest, Executor, ExecutorError,
    Limits, LogStream, SandboxConfig, SandboxExecutor, Termination, LOG_LINES_PER_SECOND_MAX,
    LOG_LINE_BYTES_MAX,
};

/// One executor for the whole binary, as in the agent (tests run in parallel threads).
fn executor() -> &'static SandboxExecutor {
    static EXECUTOR: OnceLock<SandboxExecutor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        if let Err(error) = sandbox_available() {
            panic!("the sandbox cannot start on this machine: {error}");
        }
        SandboxExecutor::new(SandboxConfig::default()).expect("sandbox executor")
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

    fn input(&self, name: &str, contents: &str) -> &Self {
        std::fs::write(self.path("in").join(name), contents).expect("write input");
        self
    }

    fn request(&self, command: &str, args: &[&str]) -> ExecutionRequest {
        let mut request = ExecutionRequest::new(
            command,
            args.iter().map(|arg| arg.to_string()).collect(),
            self.path("in"),
            self.path("out"),
            self.path("scratch"),
        );
        request.limits = Limits {
            memory_mb: 256,
            processes_max: 32,
            cpu_time_secs: 60,
            wall_time_secs: 60,
            cpu_cores: 1,
            disk_mb: 64,
            gpus: 0,
        };
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

    fn progress(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|event| match event {
                ExecutionEvent::Progress { permille } => Some(*permille),
                _ => None,
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!("{:?}\nstderr:\n{}", self.outcome, self.lines(LogStream::Stderr).join("\n"))
    }
}

fn execute(request: &ExecutionRequest) -> Run {
    let mut events = Vec::new();
    let outcome = executor().run(request, &mut |event| events.push(event)).expect("executor runs");
    Run { outcome, events }
}

fn run_python(dirs: &Dirs, script: &str, adjust: impl FnOnce(&mut ExecutionRequest)) -> Run {
    dirs.input("task.py", script);
    let mut request = dirs.request("python3", &["task.py"]);
    adjust(&mut request);
    execute(&request)
}

/// Pids of live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(bytes) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&bytes).contains(marker) {
            found.push(pid);
        }
    }
    found
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks")
}

#[test]
fn train_example_runs_in_the_sandbox_and_writes_its_outputs() {
    let examples = examples_dir();
    let task = std::fs::read_to_string(examples.join("train-tiny-model.yaml")).expect("yaml");
    assert!(task.contains(r#"args: ["train.py", "--epochs", "300"]"#), "test follows the yaml");
    let dirs = Dirs::new();
    let script = examples.join("train-tiny-model/train.py");
    std::fs::copy(&script, dirs.path("in").join("train.py")).expect("copy train.py");
    let mut request = dirs.request("python3", &["train.py", "--epochs", "300"]);
    request.limits.memory_mb = 256;
    request.limits.wall_time_secs = 120;
    let run = execute(&request);
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.outcome.exit_code, Some(0));
    assert!(run.outcome.cpu_ms > 0 && run.outcome.cpu_ms <= run.outcome.wall_ms + 100);
    let progress = run.progress();
    assert!(progress.len() >= 10, "progress events {progress:?}");
    assert!(progress.windows(2).all(|pair| pair[0] < pair[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&1000));
    assert!(run.stdout().contains("epoch 300 loss"), "{}", run.stdout());

    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs.path("out").join("model.json")).expect("model"))
            .expect("model.json is JSON");
    assert!(model["train_accuracy"].as_f64().expect("accuracy") >= 0.9, "{model}");
    assert_eq!(model["weights"]["w1"].as_array().expect("w1").len(), 48);
    let loss = std::fs::read_to_string(dirs.path("out").join("loss.csv")).expect("loss.csv");
    let rows: Vec<&str> = loss.lines().collect();
    assert_eq!(rows.len(), 301);
    assert_eq!(rows[0], "epoch,loss");
    let first: f64 = rows[1].split(',').nth(1).and_then(|v| v.parse().ok()).expect("loss");
    let last: f64 = rows[300].split(',').nth(1).and_then(|v| v.parse().ok()).expect("loss");
    assert!(last < first / 4.0, "loss went from {first} to {last}");
    // Training is bit-for-bit reproducible: the inference example ships the model that the
    // same arguments produced outside the sandbox.
    let shipped = std::fs::read(examples.join("infer-tiny-model/model.json")).expect("shipped");
    let trained = std::fs::read(dirs.path("out").join("model.json")).expect("trained");
    assert!(
        shipped == trained,
        "train.py output changed: regenerate examples/tasks/infer-tiny-model/model.json with \
         `python3 train.py --epochs 300 --out DIR`"
    );
}

#[test]
fn inference_and_rendering_examples_run_in_the_sandbox() {
    let examples = examples_dir();
    let dirs = Dirs::new();
    for name in ["infer.py", "model.json", "points.csv"] {
        let source = examples.join("infer-tiny-model").join(name);
        std::fs::copy(&source, dirs.path("in").join(name)).expect("copy inference input");
    }
    let args = ["infer.py", "--model", "model.json", "--points", "points.csv"];
    let inference = execute(&dirs.request("python3", &args));
    assert_eq!(inference.outcome.termination, Termination::Completed, "{}", inference.describe());
    assert_eq!(inference.progress().last(), Some(&1000));
    let predictions =
        std::fs::read_to_string(dirs.path("out").join("predictions.csv")).expect("predictions");
    assert_eq!(predictions.lines().count(), 82);
    assert!(dirs.path("out").join("decision_map.txt").exists());

    let dirs = Dirs::new();
    let script = examples.join("render-mandelbrot/render.py");
    std::fs::copy(&script, dirs.path("in").join("render.py")).expect("copy render.py");
    let args = ["render.py", "--width", "64", "--height", "48", "--iterations", "64"];
    let render = execute(&dirs.request("python3", &args));
    assert_eq!(render.outcome.termination, Termination::Completed, "{}", render.describe());
    assert_eq!(render.progress().last(), Some(&1000));
    let image = std::fs::read(dirs.path("out").join("mandelbrot.pgm")).expect("image");
    let header = b"P5\n64 48\n255\n";
    assert!(image.starts_with(header));
    assert_eq!(image.len(), header.len() + 64 * 48);
}

#[test]
fn tcp_to_the_host_loopback_is_denied_without_network() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let script = format!(
        "import socket, sys\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n\
         except OSError as error:\n    print('denied', error)\n    sys.exit(0)\n\
         print('connected')\nsys.exit(1)\n"
    );
    let dirs = Dirs::new();
    let denied = run_python(&dirs, &script, |_| {});
    assert_eq!(denied.outcome.termination, Termination::Completed, "{}", denied.describe());
    assert!(denied.stdout().contains("denied"));
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|error| error.kind()),
        Err(ErrorKind::WouldBlock)
    );
}

#[test]
fn host_files_outside_the_mounts_are_invisible() {
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").expect("write secret");
    // Files given on the command line exist on the host; so do the directories below.
    let script = "import os, sys\n\
        leaked = []\n\
        for path in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       with open(path) as handle:\n\
        \x20           handle.read(1)\n\
        \x20       leaked.append(path)\n\
        \x20   except OSError as error:\n\
        \x20       print('blocked', path, type(error).__name__)\n\
        for path in ['/work', '/root', '/home']:\n\
        \x20   try:\n\
        \x20       leaked.extend(os.path.join(path, name) for name in os.listdir(path))\n\
        \x20   except OSError:\n\
        \x20       pass\n\
        print('leaked', leaked)\n";
    let dirs = Dirs::new();
    dirs.input("task.py", script);
    let secret_text = secret.to_string_lossy().into_owned();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for host_file in ["/etc/shadow", manifest, &secret_text] {
        assert!(Path::new(host_file).exists(), "{host_file} must exist on the host");
    }
    let request = dirs
        .request("python3", &["task.py", "/etc/shadow", manifest, "/root/.bashrc", &secret_text]);
    let run = execute(&request);
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.stdout().matches("blocked").count(), 4, "{}", run.stdout());
    assert!(run.stdout().contains("leaked []"));
}

#[test]
fn writing_to_the_inputs_fails_and_to_the_outputs_works() {
    let script = "import sys\n\
        try:\n    open('/task/in/new.txt', 'w').write('x')\n    sys.exit(1)\n\
        except OSError as error:\n    print('inputs read-only:', error)\n\
        try:\n    open('/task/in/task.py', 'a').write('x')\n    sys.exit(2)\n\
        except OSError as error:\n    print('inputs read-only:', error)\n\
        try:\n    open('/usr/aicpw', 'w').write('x')\n    sys.exit(3)\n\
        except OSError as error:\n    print('host read-only:', error)\n\
        try:\n    open('/aicpw', 'w').write('x')\n    sys.exit(4)\n\
        except OSError as error:\n    print('root read-only:', error)\n\
        open('/task/out/result.txt', 'w').write('ok')\n\
        open('/tmp/scratch.txt', 'w').write('ok')\n\
        print('scratch', open('/tmp/scratch.txt').read())\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(std::fs::read_to_string(dirs.path("out").join("result.txt")).expect("out"), "ok");
    // Scratch lies on the run's own filesystem, which goes with the run.
    assert!(run.stdout().lines().any(|line| line == "scratch ok"), "{}", run.describe());
    assert!(!dirs.path("in").join("new.txt").exists());
}

#[test]
fn task_sees_a_clean_environment_and_its_own_namespaces() {
    let script = "import os, socket, json\n\
        print(json.dumps({'env': dict(os.environ), 'uid': os.getuid(), 'pid': os.getpid(),\n\
        \x20   'cwd': os.getcwd(), 'host': socket.gethostname(),\n\
        \x20   'interfaces': sorted(name for _, name in socket.if_nameindex())}))\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| {
        request.env.push(("EXTRA_SETTING".into(), "42".into()));
    });
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let seen: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    let env = seen["env"].as_object().expect("env");
    assert_eq!(env["AICPW_OUTPUT_DIR"], "/task/out");
    assert_eq!(env["AICPW_PROGRESS_FILE"], "/tmp/.aicpw-progress");
    assert_eq!(env["HOME"], "/tmp");
    assert_eq!(env["EXTRA_SETTING"], "42");
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "host environment leaked: {env:?}");
    assert_ne!(seen["uid"], 0);
    assert!(seen["pid"].as_i64().expect("pid") < 10, "not in a PID namespace: {seen}");
    assert_eq!(seen["cwd"], "/task/in");
    assert_eq!(seen["host"], "aicpw-sandbox");
    assert_eq!(seen["interfaces"], serde_json::json!(["lo"]));
}

#[test]
fn memory_hog_is_stopped_with_memory_exceeded() {
    let script = "chunks = []\n\
        while True:\n    chunks.append(bytearray(8 << 20))\n    print('holding', len(chunks) * 8, 'MiB')\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.memory_mb = 64);
    assert_eq!(run.outcome.termination, Termination::MemoryExceeded, "{}", run.describe());
    assert!(run.outcome.wall_ms < 20_000);
}

#[test]
fn sleeping_past_the_wall_time_is_killed_and_leaves_no_process() {
    // A detached grandchild in its own session must die with the sandbox too.
    let marker = "987654.25";
    let script = format!(
        "import subprocess, time\n\
         subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n\
         print('sleeping', flush=True)\n\
         time.sleep(600)\n"
    );
    let dirs = Dirs::new();
    let started = Instant::now();
    let run = run_python(&dirs, &script, |request| request.limits.wall_time_secs = 2);
    assert_eq!(run.outcome.termination, Termination::WallTimeExceeded, "{}", run.describe());
    assert_eq!(run.outcome.signal, Some(9));
    assert!(run.stdout().contains("sleeping"));
    assert!((2000..6000).contains(&run.outcome.wall_ms), "{}", run.describe());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(processes_with(marker), Vec::<i32>::new(), "stray processes survived");
    assert_eq!(processes_with("time.sleep(600)"), Vec::<i32>::new());
}

#[test]
fn busy_loop_past_the_cpu_time_is_stopped() {
    let dirs = Dirs::new();
    let run = run_python(&dirs, "while True:\n    pass\n", |request| {
        request.limits.cpu_time_secs = 1;
        request.limits.wall_time_secs = 30;
    });
    assert_eq!(run.outcome.termination, Termination::CpuTimeExceeded, "{}", run.describe());
    // 1 s of CPU takes at least 1 s; /proc's per-tick accounting may report a little less.
    assert!(run.outcome.cpu_ms >= 700, "{}", run.describe());
    assert!((950..15_000).contains(&run.outcome.wall_ms), "{}", run.describe());
}

#[test]
fn fork_bomb_is_held_at_the_process_limit() {
    let marker = "forkbomb_3f9c.py";
    let dirs = Dirs::new();
    dirs.input(
        marker,
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    );
    let mut request = dirs.request("python3", &[marker]);
    request.limits.processes_max = 12;
    request.limits.wall_time_secs = 3;
    let run = execute(&request);
    assert_eq!(run.outcome.termination, Termination::ProcessLimitExceeded, "{}", run.describe());
    assert!(run.outcome.processes_peak <= 12, "{}", run.describe());
    assert_eq!(processes_with(marker), Vec::<i32>::new(), "stray processes survived");
}

#[test]
fn non_zero_exit_is_reported_with_its_code() {
    let dirs = Dirs::new();
    let run =
        run_python(&dirs, "import sys\nprint('failing', file=sys.stderr)\nsys.exit(3)\n", |_| {});
    assert_eq!(run.outcome.termination, Termination::NonZeroExit, "{}", run.describe());
    assert_eq!(run.outcome.exit_code, Some(3));
    assert_eq!(run.lines(LogStream::Stderr), vec!["failing"]);

    let missing = execute(&Dirs::new().request("no-such-program-aicpw", &[]));
    assert_eq!(missing.outcome.termination, Termination::NonZeroExit);
    assert_eq!(missing.outcome.exit_code, Some(127));
}

#[test]
fn writing_past_the_disk_limit_is_stopped() {
    let dirs = Dirs::new();
    let script = "with open('/task/out/big.bin', 'wb') as handle:\n\
        \x20   for _ in range(64):\n        handle.write(bytes(1 << 20))\n";
    let run = run_python(&dirs, script, |request| request.limits.disk_mb = 2);
    assert_eq!(run.outcome.termination, Termination::DiskExceeded, "{}", run.describe());
    let written = std::fs::metadata(dirs.path("out").join("big.bin")).map_or(0, |m| m.len());
    assert!(written <= 2 << 20, "wrote {written} bytes");
}

#[test]
fn progress_file_is_polled_without_following_links_or_blocking_on_fifos() {
    let script = "import os, time\n\
        path = os.environ['AICPW_PROGRESS_FILE']\n\
        open(path, 'w').write('0.5\\n')\n\
        time.sleep(0.7)\n\
        os.remove(path)\n\
        os.mkfifo(path)\n\
        time.sleep(0.7)\n\
        os.remove(path)\n\
        os.symlink('/task/in/task.py', path)\n\
        time.sleep(0.7)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.progress(), vec![500]);
}

#[test]
fn log_floods_are_rate_limited_and_long_lines_cut() {
    let script = "import sys\n\
        sys.stdout.write('x' * 100000 + '\\n')\n\
        for i in range(20000):\n    print('line', i)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let stdout = run.lines(LogStream::Stdout);
    assert!(stdout[0].starts_with("xxxx") && stdout[0].ends_with("[aicpw: line truncated]"));
    assert!(stdout.iter().all(|line| line.len() <= LOG_LINE_BYTES_MAX + 32));
    let allowed = u64::from(LOG_LINES_PER_SECOND_MAX) * (2 + run.outcome.wall_ms / 1000 + 1);
    assert!((stdout.len() as u64) <= allowed, "{} lines passed", stdout.len());
    assert!(run.outcome.log_lines_dropped > 0);
    assert_eq!(stdout.len() as u64 + run.outcome.log_lines_dropped, 20_001);
    assert!(run.lines(LogStream::Stderr).iter().any(|line| line.contains("log lines dropped")));
}

#[test]
fn links_and_special_files_are_removed_from_the_outputs() {
    let script = "import os\n\
        os.symlink('/etc/shadow', '/task/out/shadow')\n\
        os.mkfifo('/task/out/pipe')\n\
        open('/task/out/result.txt', 'w').write('kept')\n\
        os.mkdir('/task/out/locked')\n\
        open('/task/out/locked/inner.txt', 'w').write('kept')\n\
        os.chmod('/task/out/locked/inner.txt', 0o4000)\n\
        os.chmod('/task/out/locked', 0)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.outcome.outputs_removed, 2);
    let inner = dirs.path("out").join("locked/inner.txt");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&inner).expect("inner").permissions(),
    );
    assert_eq!(mode & 0o7777, 0o600, "owner access restored, set-id bits cleared");
    let mut left: Vec<String> = std::fs::read_dir(dirs.path("out"))
        .expect("outputs")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["locked", "result.txt"]);
}

#[test]
fn cancelling_stops_the_task() {
    let dirs = Dirs::new();
    dirs.input("task.py", "import time\ntime.sleep(600)\n");
    let request = dirs.request("python3", &["task.py"]);
    let token = request.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        token.cancel();
    });
    let run = execute(&request);
    canceller.join().expect("canceller");
    assert_eq!(run.outcome.termination, Termination::Cancelled, "{}", run.describe());
    assert!(run.outcome.wall_ms < 5000);
}

#[test]
fn invalid_requests_are_refused_before_anything_starts() {
    let dirs = Dirs::new();
    let mut request = dirs.request("python3", &[]);
    request.limits.memory_mb = 0;
    let error = executor().run(&request, &mut |_| {}).expect_err("refused");
    assert!(error.to_string().contains("memory_mb"), "{error}");
}

#[test]
fn a_task_sees_no_gpu_device_and_one_asking_for_more_gpus_than_are_free_does_not_start() {
    let dirs = Dirs::new();
    let script =
        "import os\nprint(sorted(n for n in os.listdir('/dev') if n.startswith('nvidia')))";
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.lines(LogStream::Stdout), vec!["[]"], "{}", run.describe());
    let host_gpus = std::fs::read_dir("/dev")
        .expect("/dev")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.strip_prefix("nvidia").is_some_and(|n| n.parse::<u32>().is_ok()))
        .count() as u32;
    let mut request = dirs.request("python3", &["-c", "print(1)"]);
    request.limits.gpus = host_gpus + 1;
    let error = executor().run(&request, &mut |_| {}).expect_err("not enough GPUs");
    assert!(error.to_string().contains(&format!("needs {} GPUs", host_gpus + 1)), "{error}");
}

#[test]
fn worker_processes_and_shared_memory_work_within_the_limits() {
    // What data loaders do: a process pool with semaphores and queues in /dev/shm.
    let script = "import multiprocessing as mp\n\
        def square(x):\n    return x * x\n\
        if __name__ == '__main__':\n\
        \x20   with mp.Pool(3) as pool:\n\
        \x20       print('sum', sum(pool.map(square, range(100))))\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.processes_max = 16);
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    assert_eq!(run.stdout(), "sum 328350");
    assert!(run.outcome.processes_peak <= 16);
}

#[test]
fn memory_in_memfds_counts_against_the_memory_limit() {
    // memfd pages belong to no process's resident set: only the kernel's cgroup sees them.
    let script = "import os\n\
        fds = []\n\
        for i in range(24):\n\
        \x20   fd = os.memfd_create('hoard')\n\
        \x20   os.write(fd, bytes(8 << 20))\n\
        \x20   fds.append(fd)\n\
        \x20   print('memfds hold', (i + 1) * 8, 'MiB', flush=True)\n\
        print('kept 192 MiB')\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.memory_mb = 64);
    assert_eq!(run.outcome.termination, Termination::MemoryExceeded, "{}", run.describe());
    assert!(!run.stdout().contains("kept 192 MiB"), "{}", run.describe());
}

#[test]
fn widening_the_cpu_affinity_gains_no_cpu_beyond_the_quota() {
    // Two busy workers after the task has widened its own affinity mask to every CPU: the
    // cgroup's CPU quota still holds them to the one core the run asked for.
    let script = "import os, multiprocessing, time\n\
        os.sched_setaffinity(0, range(os.cpu_count()))\n\
        print('cpus', len(os.sched_getaffinity(0)), flush=True)\n\
        def spin():\n\
        \x20   end = time.time() + 3\n\
        \x20   while time.time() < end:\n        pass\n\
        workers = [multiprocessing.Process(target=spin) for _ in range(2)]\n\
        [w.start() for w in workers]\n\
        [w.join() for w in workers]\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.cpu_cores = 1);
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let ratio = run.outcome.cpu_ms as f64 / run.outcome.wall_ms as f64;
    assert!(ratio < 1.25, "used {ratio:.2} CPUs with a quota of 1: {}", run.describe());
}

#[test]
fn namespaces_mounts_and_kernel_interfaces_are_refused_inside_the_sandbox() {
    // Each probe must fail with EPERM (or ENOSYS for clone3); any success is printed.
    let script = r#"
import ctypes, errno, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def probe(name, number, *args):
    result = libc.syscall(number, *[ctypes.c_long(a) for a in args])
    print(name, 'ok' if result >= 0 else errno.errorcode[ctypes.get_errno()], flush=True)
probe('unshare_user', 272, 0x10000000)
probe('unshare_net', 272, 0x40000000)
probe('clone_newuser', 56, 0x10000000 | 17, 0, 0, 0, 0)
probe('clone3', 435, 0, 0)
probe('setns', 308, 0, 0)
probe('mount', 165, 0, 0, 0, 0, 0)
probe('ptrace', 101, 0, 0, 0, 0)
probe('keyctl', 250, 0, 0, 0, 0, 0)
probe('add_key', 248, 0, 0, 0, 0, 0)
probe('bpf', 321, 0, 0, 0)
probe('perf_event_open', 298, 0, 0, 0, 0, 0)
probe('userfaultfd', 323, 0)
probe('io_uring_setup', 425, 1, 0)
probe('kexec_load', 246, 0, 0, 0, 0)
probe('init_module', 175, 0, 0, 0)
probe('fsopen', 430, 0, 0)
shell = subprocess.run(['unshare', '-U', '-r', 'id', '-u'], capture_output=True, text=True)
print('unshare_command', shell.returncode, shell.stdout.strip(), flush=True)
print('fork_still_works', subprocess.run(['true']).returncode, flush=True)
"#;
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let stdout = run.stdout();
    let results: std::collections::BTreeMap<&str, &str> =
        stdout.lines().filter_map(|line| line.split_once(' ')).collect();
    for name in [
        "unshare_user",
        "unshare_net",
        "clone_newuser",
        "setns",
        "mount",
        "ptrace",
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "kexec_load",
        "init_module",
        "fsopen",
    ] {
        assert_eq!(results.get(name), Some(&"EPERM"), "{name}: {}", run.describe());
    }
    assert_eq!(results.get("clone3"), Some(&"ENOSYS"), "{}", run.describe());
    let unshare = results.get("unshare_command").copied().unwrap_or_default();
    assert!(!unshare.starts_with("0 ") && !unshare.ends_with(" 0"), "unshare -U -r: {unshare}");
    assert_eq!(results.get("fork_still_works"), Some(&"0"), "{}", run.describe());
}

#[test]
fn files_deleted_but_held_open_count_against_the_disk_limit() {
    // Deleted files vanish from every directory walk; the run's own filesystem still counts
    // their blocks. The task keeps the space after ENOSPC, as an attacker would.
    let script = "import os, time\n\
        held = []\n\
        try:\n\
        \x20   for i in range(80):\n\
        \x20       path = f'/tmp/hidden-{i}'\n\
        \x20       handle = open(path, 'wb')\n\
        \x20       os.unlink(path)\n\
        \x20       handle.write(os.urandom(1 << 20))\n\
        \x20       handle.flush()\n\
        \x20       held.append(handle)\n\
        \x20   print('held 80 MiB in deleted files', flush=True)\n\
        except OSError as error:\n\
        \x20   print('refused after', len(held), 'MiB:', error, flush=True)\n\
        time.sleep(5)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.disk_mb = 50);
    assert_eq!(run.outcome.termination, Termination::DiskExceeded, "{}", run.describe());
    assert!(!run.stdout().contains("held 80 MiB"), "{}", run.describe());
    assert!(run.outcome.wall_ms < 5_000, "stopped, not left to run: {}", run.describe());
}

#[test]
fn outputs_come_back_from_the_runs_own_filesystem_and_it_is_gone_after() {
    let script = "import os\n\
        os.makedirs('/task/out/model', exist_ok=True)\n\
        open('/task/out/model/weights.bin', 'wb').write(b'w' * 1000)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let weights = std::fs::read(dirs.path("out").join("model/weights.bin")).expect("output copied");
    assert_eq!(weights, vec![b'w'; 1000]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let scratch = dirs.path("scratch");
    assert!(!mounts.contains(scratch.to_str().expect("utf-8")), "run filesystem left mounted");
}

#[test]
fn a_run_set_up_before_its_command_is_known_runs_it_under_the_same_limits_or_refuses() {
    let dirs = Dirs::new();
    let scratch = dirs.path("scratch");
    let mounted = || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        mounts.contains(scratch.to_str().expect("utf-8"))
    };
    // Set up ahead (the agent does this while the key grant is on its way): the run's own
    // filesystem is mounted before any command is known.
    let mut request = dirs.request("sh", &["-c", "head -c 40000000 /dev/zero > /task/out/big"]);
    request.limits.disk_mb = 16;
    let prepared = executor().prepare(&request.limits, false, &scratch).expect("prepared");
    assert!(mounted(), "the run filesystem is ready before the command");
    // The disk limit of the preparation holds for the command run in it.
    let mut events = Vec::new();
    let outcome =
        executor().run_prepared(prepared, &request, &mut |e| events.push(e)).expect("runs");
    assert_eq!(outcome.termination, Termination::DiskExceeded, "{outcome:?} {events:?}");
    assert!(!mounted(), "the run filesystem is gone after the run");
    // A request whose limits differ from what was prepared is refused, not run under the
    // prepared ones.
    let prepared = executor().prepare(&request.limits, false, &scratch).expect("prepared");
    let mut wider = dirs.request("true", &[]);
    wider.limits.disk_mb = 1024;
    let refused = executor().run_prepared(prepared, &wider, &mut |_| {});
    assert!(matches!(refused, Err(ExecutorError::InvalidRequest { .. })), "{refused:?}");
    assert!(!mounted(), "a refused preparation gives its filesystem back");
    // A preparation dropped unused (the lease went away) leaves nothing mounted.
    drop(executor().prepare(&request.limits, false, &scratch).expect("prepared"));
    assert!(!mounted(), "an unused preparation gives its filesystem back");
}

/// Mount points below `dir` (this process's mount namespace is the host's).
fn mounts_below(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_str().expect("utf-8");
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Waits up to 20 s for `done`.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn a_run_on_a_filesystem_made_ahead_sees_nothing_of_the_run_before_and_none_is_left_behind() {
    let spares = tempfile::tempdir().expect("tempdir");
    let mut executor = SandboxExecutor::new(SandboxConfig::default()).expect("executor");
    executor.keep_spare_disks(spares.path()).expect("spares");
    let run = |script: &str| {
        let dirs = Dirs::new();
        let request = dirs.request("sh", &["-c", script]);
        let mut events = Vec::new();
        let outcome = executor.run(&request, &mut |e| events.push(e)).expect("runs");
        assert_eq!(outcome.termination, Termination::Completed, "{outcome:?} {events:?}");
        events
    };
    // The first run makes its own filesystem and has one of its size made ahead meanwhile.
    run("echo secret > /tmp/left; echo secret > /task/out/left");
    let first_spare = spares.path().join(".aicpw-spare-0");
    let first_spare = first_spare.to_str().expect("utf-8").to_string();
    assert!(wait_until(|| mounts_below(spares.path()).contains(&first_spare)), "no spare made");
    // The next run of that size takes it: an empty filesystem, handed to its uid.
    let events = run("ls -A /tmp /task/out; touch /tmp/mine /task/out/mine && echo writable");
    let lines: Vec<&ExecutionEvent> = events
        .iter()
        .filter(|e| matches!(e, ExecutionEvent::Log { stream: LogStream::Stdout, .. }))
        .collect();
    let text = format!("{lines:?}");
    assert!(!text.contains("left") && text.contains("writable"), "{text}");
    assert!(!mounts_below(spares.path()).contains(&first_spare), "the spare was used once");
    // An executor gone leaves no filesystem mounted in its spares' directory.
    drop(executor);
    assert!(
        wait_until(|| mounts_below(spares.path()).is_empty()),
        "{:?}",
        mounts_below(spares.path())
    );
}

#[test]
fn sparse_outputs_larger_than_the_disk_limit_are_not_copied_out() {
    // Two sparse files, each within the file size limit, that hold almost no blocks: their
    // apparent sizes, which a reader would have to read, exceed the disk limit together.
    let script = "for name in ['a', 'b']:\n\
        \x20   open(f'/task/out/{name}.bin', 'wb').truncate(60 << 20)\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |request| request.limits.disk_mb = 64);
    assert_eq!(run.outcome.termination, Termination::DiskExceeded, "{}", run.describe());
    assert!(std::fs::read_dir(dirs.path("out")).expect("list").next().is_none());
}

/// Run by `an_agent_without_kernel_limits_refuses_to_start`, as an unprivileged user.
#[test]
#[ignore = "run as an unprivileged user by the test below"]
fn refusal_probe_without_root() {
    let error = SandboxExecutor::new(SandboxConfig::default()).expect_err("refused");
    println!("REFUSED: {error}");
    let own = SandboxConfig { require_kernel_limits: false, ..SandboxConfig::default() };
    assert!(SandboxExecutor::new(own).is_ok(), "the user's own tasks may still run");
}

#[test]
fn an_agent_without_kernel_limits_refuses_to_start() {
    // As an ordinary user no cgroup or loop mount can be made: the executor must refuse the
    // agent's (other people's) work and say what to enable, not run it under rlimits alone.
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "refusal_probe_without_root", "--nocapture"])
        .output()
        .expect("run the probe as nobody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().find(|line| line.starts_with("REFUSED:")).expect("refusal");
    assert!(line.contains("run the provider agent as root"), "{line}");
    assert!(line.contains("cgroup"), "{line}");
}

#[test]
fn a_nondeterministic_tasks_summary_is_read_from_its_outputs_after_the_run() {
    use aicpw_provider::agent::summary_of;
    use aicpw_types::bundle::{collect_outputs, Manifest};
    // A training run's final loss and accuracy, as float arithmetic leaves them.
    let script = "import json\n\
        loss = sum(0.1 for _ in range(10)) / 4\n\
        json.dump([loss, 0.9375, -2e-7], open('/task/out/metrics.json', 'w'))\n\
        open('/task/out/model.bin', 'wb').write(bytes(16))\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let outputs = vec!["model.bin".to_string(), "metrics.json".to_string()];
    let manifest = Manifest { command: "python3".into(), outputs, ..Manifest::default() };
    let files = collect_outputs(&dirs.path("out"), &manifest).expect("outputs");
    let terms = serde_json::json!({
        "nondeterministic": { "summary": "metrics.json", "tolerance_micros": 1000, "mode": "tolerance" }
    });
    // 0.1 summed ten times is 0.9999999999999999: a quarter of it rounds to 250000 micro-units.
    assert_eq!(summary_of(&terms, &files), Ok(vec![250_000, 937_500, 0]));
    // A deterministic task commits no summary, whatever it wrote.
    assert_eq!(summary_of(&serde_json::json!({ "nondeterministic": null }), &files), Ok(vec![]));

    // A run that forgot its summary, or wrote something else there: the task's own failure.
    let script = "open('/task/out/metrics.json', 'w').write('{\"loss\": 0.25}')\n";
    let dirs = Dirs::new();
    let run = run_python(&dirs, script, |_| {});
    assert_eq!(run.outcome.termination, Termination::Completed, "{}", run.describe());
    let manifest = Manifest { outputs: vec!["metrics.json".into()], ..manifest };
    let files = collect_outputs(&dirs.path("out"), &manifest).expect("outputs");
    let error = summary_of(&terms, &files).expect_err("not an array");
    assert!(error.contains("metrics.json"), "{error}");
    let elsewhere = serde_json::json!({ "nondeterministic": { "summary": "loss.json" } });
    assert!(summary_of(&elsewhere, &files).expect_err("missing").contains("no summary file"));
}
