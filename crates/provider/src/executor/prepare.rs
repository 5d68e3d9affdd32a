//! Checks a request and prepares (and afterwards cleans) the host directories of a run.

use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{
    ExecutionRequest, ExecutorError, Limits, ARGS_BYTES_MAX, ARGS_COUNT_MAX, ENV_BYTES_MAX,
    ENV_COUNT_MAX, LIMIT_CPU_CORES_MAX, LIMIT_DISK_MB_MAX, LIMIT_MEMORY_MB_MAX,
    LIMIT_PROCESSES_MAX, LIMIT_TIME_SECS_MAX,
};

/// Directory entries walked when changing ownership, sanitizing outputs or measuring disk use.
pub(crate) const DIRECTORY_ENTRIES_MAX: usize = 200_000;
/// Directory nesting walked; deeper trees are refused rather than walked.
pub(crate) const DIRECTORY_DEPTH_MAX: usize = 64;

/// Environment variables the executor sets and a request may not override.
pub(crate) const RESERVED_ENV: [&str; 3] =
    ["AICPW_INPUT_DIR", "AICPW_OUTPUT_DIR", "AICPW_PROGRESS_FILE"];

/// Rejects requests the sandbox cannot run faithfully.
pub(crate) fn validate(request: &ExecutionRequest) -> Result<(), ExecutorError> {
    let command = &request.command;
    if command.is_empty() || command.starts_with('-') || command.contains(['=', '\0']) {
        // `env` would read a `NAME=value` command as an assignment and a `-x` one as an option.
        return Err(ExecutorError::invalid(format!(
            "command {command:?} must be non-empty, not start with '-' and contain no '=' or NUL"
        )));
    }
    if request.args.len() > ARGS_COUNT_MAX {
        return Err(ExecutorError::invalid(format!("more than {ARGS_COUNT_MAX} arguments")));
    }
    let args_bytes: usize = request.args.iter().map(|arg| arg.len() + 1).sum();
    if args_bytes > ARGS_BYTES_MAX || request.args.iter().any(|arg| arg.contains('\0')) {
        return Err(ExecutorError::invalid(format!(
            "arguments must total at most {ARGS_BYTES_MAX} bytes and contain no NUL"
        )));
    }
    validate_env(&request.env)?;
    validate_limits(&request.limits)?;
    for (name, dir) in directories(request) {
        validate_dir(name, dir)?;
    }
    validate_disjoint(request)
}

/// Rejects a run directory that is not an absolute path to a directory (a symlink included).
pub(crate) fn validate_dir(name: &str, dir: &Path) -> Result<(), ExecutorError> {
    let metadata = fs::symlink_metadata(dir)
        .map_err(|source| ExecutorError::io(format!("{name} {}", dir.display()), source))?;
    if !metadata.is_dir() || !dir.is_absolute() {
        return Err(ExecutorError::invalid(format!(
            "{name} {} must be an absolute path to a directory (not a symlink)",
            dir.display()
        )));
    }
    Ok(())
}

/// The three directories must not overlap: outputs inside the inputs would make the inputs
/// writable, inputs inside the outputs would let the task tamper with them.
fn validate_disjoint(request: &ExecutionRequest) -> Result<(), ExecutorError> {
    let mut canonical = Vec::new();
    for (name, dir) in directories(request) {
        let path = fs::canonicalize(dir)
            .map_err(|source| ExecutorError::io(format!("{name} {}", dir.display()), source))?;
        canonical.push((name, path));
    }
    for (index, (name, path)) in canonical.iter().enumerate() {
        for (other_name, other) in &canonical[index + 1..] {
            if path.starts_with(other) || other.starts_with(path) {
                return Err(ExecutorError::invalid(format!("{name} and {other_name} overlap")));
            }
        }
    }
    Ok(())
}

fn validate_env(env: &[(String, String)]) -> Result<(), ExecutorError> {
    if env.len() > ENV_COUNT_MAX {
        return Err(ExecutorError::invalid(format!("more than {ENV_COUNT_MAX} env variables")));
    }
    let bytes: usize = env.iter().map(|(key, value)| key.len() + value.len() + 2).sum();
    if bytes > ENV_BYTES_MAX {
        return Err(ExecutorError::invalid(format!("env larger than {ENV_BYTES_MAX} bytes")));
    }
    for (key, value) in env {
        let well_formed = key.chars().next().is_some_and(|first| !first.is_ascii_digit())
            && key.chars().all(|character| character.is_ascii_alphanumeric() || character == '_');
        if !well_formed || value.contains('\0') {
            return Err(ExecutorError::invalid(format!(
                "env variable {key:?} must match [A-Za-z_][A-Za-z0-9_]* and its value hold no NUL"
            )));
        }
        if RESERVED_ENV.contains(&key.as_str()) {
            return Err(ExecutorError::invalid(format!(
                "env variable {key} is set by the executor"
            )));
        }
    }
    Ok(())
}

pub(crate) fn validate_limits(limits: &Limits) -> Result<(), ExecutorError> {
    let checks: [(&str, u64, u64); 6] = [
        ("memory_mb", limits.memory_mb, LIMIT_MEMORY_MB_MAX),
        ("processes_max", u64::from(limits.processes_max), u64::from(LIMIT_PROCESSES_MAX)),
        ("cpu_time_secs", limits.cpu_time_secs, LIMIT_TIME_SECS_MAX),
        ("wall_time_secs", limits.wall_time_secs, LIMIT_TIME_SECS_MAX),
        ("cpu_cores", u64::from(limits.cpu_cores), u64::from(LIMIT_CPU_CORES_MAX)),
        ("disk_mb", limits.disk_mb, LIMIT_DISK_MB_MAX),
    ];
    for (name, value, max) in checks {
        if value == 0 || value > max {
            return Err(ExecutorError::invalid(format!("limit {name} = {value} not in 1..={max}")));
        }
    }
    if limits.gpus > super::GPUS_MAX {
        let (gpus, max) = (limits.gpus, super::GPUS_MAX);
        return Err(ExecutorError::invalid(format!("limit gpus = {gpus} not in 0..={max}")));
    }
    Ok(())
}

fn directories(request: &ExecutionRequest) -> [(&'static str, &PathBuf); 3] {
    [
        ("inputs_dir", &request.inputs_dir),
        ("outputs_dir", &request.outputs_dir),
        ("scratch_dir", &request.scratch_dir),
    ]
}

/// Gives the sandbox user ownership of a run's directories, named for errors (only when the
/// agent runs as root and the task as an unprivileged user id). Inputs stay read-only through
/// the mount.
pub(crate) fn hand_over(dirs: &[(&str, &Path)], uid: u32) -> Result<(), ExecutorError> {
    for (name, dir) in dirs {
        walk(dir, &mut |path, _| {
            lchown(path, Some(uid), Some(uid)).map_err(|source| {
                ExecutorError::io(format!("chown {name} {}", path.display()), source)
            })
        })?;
    }
    Ok(())
}

/// Makes the outputs safe and readable for the agent once the task is gone: removes symbolic
/// links, FIFOs, sockets and device nodes (a link could point the agent at a host file, a FIFO
/// could block its reader), gives the owner read and write access back (a task may `chmod
/// 000` to make the upload fail) and clears setuid, setgid and sticky bits. Returns how many
/// entries were removed.
pub(crate) fn sanitize_outputs(outputs_dir: &Path) -> Result<u32, ExecutorError> {
    let mut special = Vec::new();
    walk(outputs_dir, &mut |path, file_type| {
        let owner_bits = if file_type.is_dir() {
            0o700
        } else if file_type.is_file() {
            0o600
        } else {
            special.push(path.to_path_buf());
            return Ok(());
        };
        let metadata = fs::symlink_metadata(path)
            .map_err(|source| ExecutorError::io(format!("stat {}", path.display()), source))?;
        let mode = (metadata.permissions().mode() | owner_bits) & 0o777;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|source| ExecutorError::io(format!("chmod {}", path.display()), source))
    })?;
    for path in &special {
        fs::remove_file(path)
            .map_err(|source| ExecutorError::io(format!("remove {}", path.display()), source))?;
    }
    Ok(u32::try_from(special.len()).unwrap_or(u32::MAX))
}

/// Bytes used by regular files below `dir` (apparent sizes), or `None` when the tree has
/// more than `DIRECTORY_ENTRIES_MAX` entries or nests deeper than `DIRECTORY_DEPTH_MAX`.
pub(crate) fn disk_usage_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut entries = 0usize;
    let mut pending = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = pending.pop() {
        let Ok(listing) = fs::read_dir(&path) else { continue };
        for entry in listing.flatten() {
            entries += 1;
            if entries > DIRECTORY_ENTRIES_MAX {
                return None;
            }
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                if depth + 1 > DIRECTORY_DEPTH_MAX {
                    return None;
                }
                pending.push((entry.path(), depth + 1));
            } else {
                total = total.saturating_add(metadata.len());
            }
        }
    }
    Some(total)
}

/// Visits `root` and everything below it without following symbolic links, bounded in
/// entries and depth.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, fs::FileType) -> Result<(), ExecutorError>,
) -> Result<(), ExecutorError> {
    let too_big = || {
        ExecutorError::invalid(format!(
            "{} holds more than {DIRECTORY_ENTRIES_MAX} entries or nests deeper than \
             {DIRECTORY_DEPTH_MAX}",
            root.display()
        ))
    };
    let metadata = fs::symlink_metadata(root)
        .map_err(|source| ExecutorError::io(format!("stat {}", root.display()), source))?;
    visit(root, metadata.file_type())?;
    let mut entries = 0usize;
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let listing = fs::read_dir(&dir)
            .map_err(|source| ExecutorError::io(format!("list {}", dir.display()), source))?;
        for entry in listing {
            let entry = entry
                .map_err(|source| ExecutorError::io(format!("list {}", dir.display()), source))?;
            entries += 1;
            if entries > DIRECTORY_ENTRIES_MAX {
                return Err(too_big());
            }
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|source| ExecutorError::io(format!("stat {}", path.display()), source))?;
            visit(&path, file_type)?;
            if file_type.is_dir() {
                if depth + 1 > DIRECTORY_DEPTH_MAX {
                    return Err(too_big());
                }
                pending.push((path, depth + 1));
            }
        }
    }
    Ok(())
}

/// Whether a file type is one the executor removes from outputs.
#[cfg(test)]
fn is_special(file_type: fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file_type.is_symlink()
        || file_type.is_fifo()
        || file_type.is_socket()
        || file_type.is_block_device()
        || file_type.is_char_device()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ExecutionRequest;

    fn request_in(dir: &Path) -> ExecutionRequest {
        for name in ["in", "out", "tmp"] {
            fs::create_dir_all(dir.join(name)).expect("mkdir");
        }
        let args = vec!["train.py".into()];
        ExecutionRequest::new("python3", args, dir.join("in"), dir.join("out"), dir.join("tmp"))
    }

    #[test]
    fn well_formed_request_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(validate(&request_in(dir.path())).is_ok());
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        type Mutation = Box<dyn Fn(&mut ExecutionRequest)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("empty command", Box::new(|r| r.command.clear())),
            ("command with =", Box::new(|r| r.command = "A=b".into())),
            ("option-like command", Box::new(|r| r.command = "-i".into())),
            ("NUL in argument", Box::new(|r| r.args.push("a\0b".into()))),
            ("too many arguments", Box::new(|r| r.args = vec![String::new(); ARGS_COUNT_MAX + 1])),
            ("reserved env", Box::new(|r| r.env.push(("AICPW_OUTPUT_DIR".into(), "/".into())))),
            ("bad env name", Box::new(|r| r.env.push(("1X".into(), "v".into())))),
            ("env name with =", Box::new(|r| r.env.push(("A=B".into(), "v".into())))),
            ("zero memory", Box::new(|r| r.limits.memory_mb = 0)),
            ("huge wall time", Box::new(|r| r.limits.wall_time_secs = LIMIT_TIME_SECS_MAX + 1)),
            ("relative dir", Box::new(|r| r.inputs_dir = PathBuf::from("relative"))),
            ("missing dir", Box::new(|r| r.outputs_dir = PathBuf::from("/nonexistent/aicpw"))),
            ("same dir twice", Box::new(|r| r.outputs_dir = r.inputs_dir.clone())),
            ("nested dirs", Box::new(|r| r.scratch_dir = r.outputs_dir.join(".."))),
        ];
        for (name, mutate) in cases {
            let mut request = request_in(dir.path());
            mutate(&mut request);
            assert!(validate(&request).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn outputs_are_sanitized_for_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("nested");
        fs::create_dir(&nested).expect("mkdir");
        let model = nested.join("model.json");
        fs::write(&model, b"{}").expect("write");
        std::os::unix::fs::symlink("/etc/shadow", nested.join("leak")).expect("symlink");
        std::os::unix::net::UnixListener::bind(dir.path().join("socket")).expect("bind");
        fs::set_permissions(&model, fs::Permissions::from_mode(0o4000)).expect("chmod file");
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o000)).expect("chmod dir");
        assert_eq!(sanitize_outputs(dir.path()).expect("sanitize"), 2);
        let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&model), 0o600);
        let mut left = Vec::new();
        walk(dir.path(), &mut |path, file_type| {
            assert!(!is_special(file_type), "{} left", path.display());
            left.push(path.to_path_buf());
            Ok(())
        })
        .expect("walk");
        assert_eq!(left.len(), 3);
        assert_eq!(disk_usage_bytes(dir.path()), Some(2));
    }
}
