use super::*;

fn tools() -> Tools {
    Tools {
        bwrap: "/usr/bin/bwrap".into(),
        setpriv: "/usr/bin/setpriv".into(),
        prlimit: "/usr/bin/prlimit".into(),
        taskset: "/usr/bin/taskset".into(),
        env: "/usr/bin/env".into(),
    }
}

fn host(root_entries: Vec<RootEntry>) -> Host {
    Host { tools: tools(), root_entries, bwrap_disables_userns: true }
}

fn request() -> ExecutionRequest {
    let mut request = ExecutionRequest::new(
        "python3",
        vec!["train.py".into(), "--epochs".into(), "3".into()],
        "/host/in",
        "/host/out",
        "/host/scratch",
    );
    request.env.push(("SEED".into(), "7".into()));
    request
}

fn strings(items: &[OsString]) -> Vec<String> {
    items.iter().map(|item| item.to_string_lossy().into_owned()).collect()
}

fn contains_sequence(haystack: &[String], needle: &[&str]) -> bool {
    haystack.windows(needle.len()).any(|window| window.iter().zip(needle).all(|(a, b)| a == b))
}

#[test]
fn mounts_put_inputs_read_only_and_outputs_and_scratch_read_write() {
    let entries = vec![
        RootEntry::Symlink { path: "/bin", target: "usr/bin".into() },
        RootEntry::Directory { path: "/lib" },
    ];
    let options = strings(&bwrap_options(&request(), &host(entries), true, &[]));
    assert!(contains_sequence(&options, &["--ro-bind", "/usr", "/usr"]));
    assert!(contains_sequence(&options, &["--symlink", "usr/bin", "/bin"]));
    assert!(contains_sequence(&options, &["--ro-bind", "/lib", "/lib"]));
    assert!(contains_sequence(&options, &["--ro-bind", "/host/in", "/task/in"]));
    assert!(contains_sequence(&options, &["--bind", "/host/out", "/task/out"]));
    assert!(contains_sequence(&options, &["--bind", "/host/scratch", "/tmp"]));
    assert!(contains_sequence(&options, &["--remount-ro", "/"]));
    assert!(options.contains(&"--unshare-net".to_string()));
    assert!(options.contains(&"--die-with-parent".to_string()));
    assert!(!options.iter().any(|option| option.contains("shadow") || option == "/root"));
}

#[test]
fn network_requests_stay_in_their_launchers_namespace_with_its_resolver() {
    let mut with_network = request();
    with_network.network = true;
    let options = strings(&bwrap_options(&with_network, &host(Vec::new()), true, &[]));
    assert!(!options.contains(&"--unshare-net".to_string()));
    let resolver = ["--ro-bind", crate::executor::network::RESOLV_CONF, "/etc/resolv.conf"];
    assert!(contains_sequence(&options, &resolver));
    assert!(!contains_sequence(&options, &["/etc/resolv.conf", "/etc/resolv.conf"]));
    let without = strings(&bwrap_options(&request(), &host(Vec::new()), true, &[]));
    assert!(!without.iter().any(|option| option == "/etc/resolv.conf"));
}

#[test]
fn unprivileged_agents_get_a_user_namespace_and_root_agents_a_uid_switch() {
    let unprivileged = strings(&bwrap_options(&request(), &host(Vec::new()), false, &[]));
    assert!(unprivileged.contains(&"--unshare-user".to_string()));
    assert!(unprivileged.contains(&"--disable-userns".to_string()));
    assert!(!unprivileged.contains(&"--cap-add".to_string()));
    let line = strings(&command_line(&tools(), &request(), Some(1_600_000_003), None));
    assert_eq!(line[0], "/usr/bin/setpriv");
    assert!(line.contains(&"--reuid=1600000003".to_string()));
    assert!(line.contains(&"--no-new-privs".to_string()));
    assert!(line.contains(&"--nproc=64".to_string()));
    let line = strings(&command_line(&tools(), &request(), None, None));
    assert_eq!(line[0], "/usr/bin/prlimit");
    // The sandbox's init shares the task's uid in its user namespace and needs one more.
    assert!(line.contains(&"--nproc=65".to_string()));
}

#[test]
fn task_runs_last_with_a_cleared_environment_and_reserved_variables_last() {
    let line = strings(&command_line(&tools(), &request(), None, Some(vec![2, 3])));
    assert!(contains_sequence(&line, &["/usr/bin/taskset", "--cpu-list", "2,3"]));
    let env_at = line.iter().position(|item| item == "/usr/bin/env").expect("env");
    assert_eq!(line[env_at + 1], "-i");
    assert_eq!(&line[line.len() - 4..], ["python3", "train.py", "--epochs", "3"]);
    let assignments = &line[env_at + 2..line.len() - 4];
    assert!(assignments.contains(&"SEED=7".to_string()));
    assert_eq!(
        assignments.last().map(String::as_str),
        Some("AICPW_PROGRESS_FILE=/tmp/.aicpw-progress")
    );
    assert!(assignments.iter().all(|assignment| assignment.contains('=')));
}

#[test]
fn rlimits_follow_the_requested_limits() {
    let limits = Limits {
        memory_mb: 100,
        processes_max: 5,
        cpu_time_secs: 7,
        wall_time_secs: 9,
        cpu_cores: 1,
        disk_mb: 3,
        gpus: 0,
    };
    let options = rlimit_options(&limits, false);
    assert!(options.contains(&format!("--as={}", (200 + ADDRESS_SPACE_SLACK_MB) << 20)));
    assert!(options.contains(&"--cpu=7:8".to_string()));
    assert!(options.contains(&"--nproc=5".to_string()));
    assert!(options.contains(&format!("--fsize={}", 3u64 << 20)));
    assert!(options.contains(&"--core=0".to_string()));
}

#[test]
fn a_missing_tool_is_reported_with_the_setup_hint() {
    let error = find_tool("aicpw-no-such-tool", "aicpw-package").expect_err("missing");
    let message = error.to_string();
    assert!(message.contains("aicpw-no-such-tool") && message.contains("aicpw-package"));
    assert!(message.contains("scripts/setup.sh"), "{message}");
}

#[test]
fn the_plan_runs_bubblewrap_with_the_options_and_the_command_line() {
    let plan = plan(&host(Vec::new()), &request(), None, None, &[], Vec::new());
    assert_eq!(plan.bwrap, PathBuf::from("/usr/bin/bwrap"));
    assert_eq!(plan.sandbox_uid, None);
    assert_eq!(strings(&plan.command_line)[0], "/usr/bin/prlimit");
    assert!(strings(&plan.bwrap_options).contains(&"--unshare-pid".to_string()));
}

#[test]
fn a_run_sees_only_the_gpus_it_holds_and_the_driver_control_devices() {
    let options = strings(&bwrap_options(&request(), &host(Vec::new()), true, &[1, 3]));
    assert!(contains_sequence(&options, &["--dev-bind", "/dev/nvidia1", "/dev/nvidia1"]));
    assert!(contains_sequence(&options, &["--dev-bind", "/dev/nvidia3", "/dev/nvidia3"]));
    assert!(contains_sequence(&options, &["--dev-bind-try", "/dev/nvidiactl", "/dev/nvidiactl"]));
    assert!(contains_sequence(&options, &["--dev-bind-try", "/dev/nvidia-uvm", "/dev/nvidia-uvm"]));
    assert!(!options.iter().any(|option| option == "/dev/nvidia0" || option == "/dev/nvidia2"));
    // The device nodes are bound into the fresh /dev before it is made read-only.
    let position = |needle: &[&str]| {
        options.windows(needle.len()).position(|w| w.iter().zip(needle).all(|(a, b)| a == b))
    };
    let dev = position(&["--dev", "/dev"]).expect("a fresh /dev");
    let gpu = position(&["--dev-bind", "/dev/nvidia1"]).expect("the GPU");
    let read_only = position(&["--remount-ro", "/dev"]).expect("read-only /dev");
    assert!(dev < gpu && gpu < read_only);
    let without = strings(&bwrap_options(&request(), &host(Vec::new()), true, &[]));
    assert!(!without.iter().any(|option| option.starts_with("/dev/nvidia")));
}
