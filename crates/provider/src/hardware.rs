//! Detects the machine's hardware for registration: CPU, memory, free disk, NVIDIA GPUs.
//!
//! Parsing is kept in pure functions over the text the system reports, so it is tested with
//! sample outputs; `detect` only gathers the texts.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use aicpw_types::hardware::GPU_MODEL_BYTES_MAX;

/// Longest CPU model name kept, in bytes.
pub const CPU_MODEL_BYTES_MAX: usize = 128;
/// GPUs reported at most.
pub const GPUS_MAX: usize = 64;
/// How long `nvidia-smi` may take before it is killed (it hangs when the driver is wedged).
pub const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);
/// Output of `nvidia-smi` read at most.
pub const NVIDIA_SMI_OUTPUT_BYTES_MAX: u64 = 64 * 1024;
/// Text files read from `/proc` and `/sys` at most.
const PROC_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// A cgroup memory limit at or above this means "no limit" (cgroup v1 reports 2^63 - 4096).
const CGROUP_UNLIMITED_BYTES: u64 = 1 << 60;

/// What this machine has, as detected.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DetectedHardware {
    pub cpu_model: String,
    /// CPUs this process may use (affinity and cgroup quota respected).
    pub cpu_cores: u32,
    /// Physical memory, or the memory limit of this process's cgroup when lower.
    pub memory_mb: u64,
    /// Space available to an unprivileged user on the file system of the work directory.
    pub disk_mb: u64,
    pub gpus: Vec<DetectedGpu>,
    /// Things detection could not see that a user may want to fix (e.g. a failing
    /// `nvidia-smi`); detection still succeeds without them.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedGpu {
    pub model: String,
    pub vram_mb: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardwareError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot understand {what}: {detail}")]
    Unparsable { what: &'static str, detail: String },
    #[error("query free space of {path}: {source}")]
    Disk {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Detects CPU, memory, free disk at `work_dir` (or its nearest existing ancestor) and GPUs.
pub fn detect(work_dir: &Path) -> Result<DetectedHardware, HardwareError> {
    let cpuinfo = read_text("/proc/cpuinfo")?;
    let meminfo = read_text("/proc/meminfo")?;
    let memory_total_mb = parse_meminfo_total_mb(&meminfo).ok_or_else(|| {
        HardwareError::Unparsable { what: "/proc/meminfo", detail: "no MemTotal line".into() }
    })?;
    let cgroup_limit_mb = cgroup_memory_limit_bytes().map(|bytes| bytes >> 20);
    let mut warnings = Vec::new();
    let gpus = match query_nvidia_smi() {
        Ok(Some(output)) => parse_nvidia_smi(&output)?,
        Ok(None) => Vec::new(),
        Err(warning) => {
            warnings.push(warning);
            Vec::new()
        }
    };
    Ok(DetectedHardware {
        cpu_model: parse_cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
        cpu_cores: thread::available_parallelism()
            .map_or(1, |count| u32::try_from(count.get()).unwrap_or(u32::MAX)),
        memory_mb: cgroup_limit_mb.map_or(memory_total_mb, |limit| limit.min(memory_total_mb)),
        disk_mb: available_disk_mb(work_dir)?,
        gpus,
        warnings,
    })
}

/// The CPU model from `/proc/cpuinfo` (`model name` on x86, `Model`/`Hardware`/`cpu model`
/// elsewhere), whitespace collapsed and cut to `CPU_MODEL_BYTES_MAX` bytes.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    const KEYS: [&str; 5] = ["model name", "Model", "Hardware", "cpu model", "uarch"];
    KEYS.iter().find_map(|wanted| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            (key.trim() == *wanted && !value.is_empty())
                .then(|| truncate_to_boundary(value, CPU_MODEL_BYTES_MAX))
        })
    })
}

/// `MemTotal` from `/proc/meminfo`, in MiB.
pub fn parse_meminfo_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let amount: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(amount / 1024),
        Some(_) => None,
    }
}

/// A cgroup memory limit file (`memory.max` or `memory.limit_in_bytes`), in bytes; `None`
/// when unlimited or unreadable.
pub fn parse_cgroup_memory_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < CGROUP_UNLIMITED_BYTES).then_some(bytes)
}

/// The cgroup paths of `/proc/self/cgroup`: the v2 path (`0::/x`) and the v1 memory
/// controller's path (`4:memory:/y`).
pub fn parse_proc_self_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut unified = None;
    let mut memory = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path.to_string());
        } else if controllers.split(',').any(|controller| controller == "memory") {
            memory = Some(path.to_string());
        }
    }
    (unified, memory)
}

/// Rows of `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`:
/// `NVIDIA H100 80GB HBM3, 81559` (memory in MiB).
pub fn parse_nvidia_smi(output: &str) -> Result<Vec<DetectedGpu>, HardwareError> {
    let mut gpus = Vec::new();
    for line in output.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let unparsable = || HardwareError::Unparsable {
            what: "nvidia-smi output",
            detail: truncate_to_boundary(line.to_string(), 200),
        };
        // The memory is the last field; a model name may itself contain a comma.
        let (model, memory) = line.rsplit_once(',').ok_or_else(unparsable)?;
        let vram_mb = memory.trim().parse::<u64>().map_err(|_| unparsable())?;
        let model = model.split_whitespace().collect::<Vec<_>>().join(" ");
        if model.is_empty() {
            return Err(unparsable());
        }
        if gpus.len() == GPUS_MAX {
            break;
        }
        gpus.push(DetectedGpu { model: truncate_to_boundary(model, GPU_MODEL_BYTES_MAX), vram_mb });
    }
    Ok(gpus)
}

fn truncate_to_boundary(mut text: String, bytes_max: usize) -> String {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn read_text(path: &str) -> Result<String, HardwareError> {
    let read = |path: &str| -> std::io::Result<String> {
        let mut text = String::new();
        std::fs::File::open(path)?.take(PROC_FILE_BYTES_MAX).read_to_string(&mut text)?;
        Ok(text)
    };
    read(path).map_err(|source| HardwareError::Read { path: path.to_string(), source })
}

/// The memory limit of this process's cgroup (v2, or v1's memory controller), if any.
fn cgroup_memory_limit_bytes() -> Option<u64> {
    let (unified, memory) = parse_proc_self_cgroup(&read_text("/proc/self/cgroup").ok()?);
    let mut candidates = Vec::new();
    if let Some(path) = unified {
        candidates.push(format!("/sys/fs/cgroup{path}/memory.max"));
        candidates.push(format!("/sys/fs/cgroup/unified{path}/memory.max"));
    }
    if let Some(path) = memory {
        candidates.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
    }
    candidates.iter().filter_map(|path| parse_cgroup_memory_limit(&read_text(path).ok()?)).min()
}

/// Free space for unprivileged users (`f_bavail`) on the file system holding `work_dir`.
fn available_disk_mb(work_dir: &Path) -> Result<u64, HardwareError> {
    // The work directory may not exist yet on a first start; its file system is that of its
    // nearest existing ancestor.
    let existing = work_dir.ancestors().find(|path| path.exists()).unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing).map_err(|error| HardwareError::Disk {
        path: existing.display().to_string(),
        source: error.into(),
    })?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize) >> 20)
}

/// Runs `nvidia-smi`. `Ok(None)`: not installed (no NVIDIA GPU here). `Err`: installed but
/// failing, as a warning for the user.
fn query_nvidia_smi() -> Result<Option<String>, String> {
    let spawned = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot run nvidia-smi: {error}")),
    };
    let mut output = String::new();
    let reader = child.stdout.take().map(|stdout| {
        thread::spawn(move || {
            let mut text = String::new();
            let read = stdout.take(NVIDIA_SMI_OUTPUT_BYTES_MAX).read_to_string(&mut text);
            read.map(|_| text)
        })
    });
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT:?}"));
            }
            Err(error) => return Err(format!("waiting for nvidia-smi: {error}")),
        }
    };
    if let Some(reader) = reader {
        match reader.join() {
            Ok(Ok(text)) => output = text,
            Ok(Err(error)) => return Err(format!("reading nvidia-smi output: {error}")),
            Err(_) => return Err("nvidia-smi output reader panicked".to_string()),
        }
    }
    if !status.success() {
        return Err(format!("nvidia-smi failed ({status}); GPUs are not offered"));
    }
    Ok(Some(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO_X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        model name\t: Intel(R) Xeon(R)   Platinum 8480+\nflags\t\t: fpu vme\n\n\
        processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n";
    const CPUINFO_ARM: &str = "processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd0c\n\n\
        Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";

    #[test]
    fn cpu_model_comes_from_model_name_or_the_board_model() {
        assert_eq!(
            parse_cpu_model(CPUINFO_X86).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8480+")
        );
        assert_eq!(parse_cpu_model(CPUINFO_ARM).as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
        assert_eq!(parse_cpu_model("processor\t: 0\n"), None);
        let long = format!("model name\t: {}\n", "é".repeat(200));
        let model = parse_cpu_model(&long).expect("model");
        assert!(model.len() <= CPU_MODEL_BYTES_MAX && model.starts_with('é'));
    }

    #[test]
    fn total_memory_is_read_in_mebibytes() {
        let meminfo = "MemTotal:       24683600 kB\nMemFree:        22937472 kB\n";
        assert_eq!(parse_meminfo_total_mb(meminfo), Some(24105));
        assert_eq!(parse_meminfo_total_mb("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total_mb("MemTotal: lots kB\n"), None);
        assert_eq!(parse_meminfo_total_mb("MemTotal: 1 MB\n"), None);
    }

    #[test]
    fn cgroup_limits_treat_max_and_huge_values_as_unlimited() {
        assert_eq!(parse_cgroup_memory_limit("max\n"), None);
        assert_eq!(parse_cgroup_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_memory_limit("4294967296\n"), Some(4 << 30));
        let cgroup =
            "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(
            parse_proc_self_cgroup(cgroup),
            (Some("/user.slice".to_string()), Some("/process_api/abc".to_string()))
        );
    }

    #[test]
    fn nvidia_smi_rows_become_gpus() {
        let output = "NVIDIA H100 80GB HBM3, 81559\nNVIDIA GeForce RTX 4090, 24564\n\n";
        assert_eq!(
            parse_nvidia_smi(output).expect("parses"),
            vec![
                DetectedGpu { model: "NVIDIA H100 80GB HBM3".into(), vram_mb: 81559 },
                DetectedGpu { model: "NVIDIA GeForce RTX 4090".into(), vram_mb: 24564 },
            ]
        );
        assert_eq!(parse_nvidia_smi("").expect("empty").len(), 0);
        assert_eq!(parse_nvidia_smi("Odd, Name, 1024").expect("comma")[0].model, "Odd, Name");
        assert!(parse_nvidia_smi("NVIDIA A100, [N/A]").is_err());
        assert!(parse_nvidia_smi("no comma here").is_err());
        assert!(parse_nvidia_smi(", 1024").is_err());
    }

    #[test]
    fn this_machine_is_detected() {
        let hardware = detect(Path::new("/nonexistent/aicpw/work")).expect("detects");
        assert!(hardware.cpu_cores >= 1);
        assert!(hardware.memory_mb > 0);
        assert!(hardware.disk_mb > 0);
        assert!(!hardware.cpu_model.is_empty());
    }
}
