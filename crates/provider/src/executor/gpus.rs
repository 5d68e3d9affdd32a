//! GPUs for the tasks that ask for them: every run gets whole NVIDIA devices of its own, bound
//! into its sandbox with the driver's control devices, and no two concurrent runs share one. A
//! run without GPUs sees no GPU device at all.
//!
//! The devices are the host's `/dev/nvidiaN` nodes, as NVIDIA's container runtime binds them; the
//! driver's user-space libraries come with the sandbox's read-only `/usr`. A task sees only the
//! device nodes it was given, so CUDA enumerates those alone.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::ExecutorError;

/// Devices of the NVIDIA driver that every GPU run needs, bound when present.
pub(crate) const CONTROL_DEVICES: [&str; 3] =
    ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"];
/// Most GPUs a host is searched for.
pub const GPUS_MAX: u32 = 64;

/// The device number of a `/dev` entry named `nvidiaN`.
fn device_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("nvidia")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&number| number < GPUS_MAX)
}

/// The GPU device numbers under `dev` (the host's `/dev`), in order.
pub(crate) fn detect(dev: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dev) else { return Vec::new() };
    let found: BTreeSet<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(device_number))
        .collect();
    found.into_iter().collect()
}

/// The path of GPU device `number`.
pub(crate) fn device_path(number: u32) -> String {
    format!("/dev/nvidia{number}")
}

/// The host's GPUs and which of them runs hold.
#[derive(Debug)]
pub(crate) struct GpuPool {
    devices: Vec<u32>,
    busy: Mutex<BTreeSet<u32>>,
}

impl GpuPool {
    pub fn new(devices: Vec<u32>) -> Self {
        GpuPool { devices, busy: Mutex::new(BTreeSet::new()) }
    }

    /// Takes `count` free GPUs (none for 0) until the lease drops.
    pub fn take(&self, count: u32) -> Result<GpuLease<'_>, ExecutorError> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let free: Vec<u32> =
            self.devices.iter().copied().filter(|device| !busy.contains(device)).collect();
        let wanted = usize::try_from(count).unwrap_or(usize::MAX);
        if free.len() < wanted {
            return Err(ExecutorError::GpusUnavailable {
                wanted: count,
                free: free.len() as u32,
                total: self.devices.len() as u32,
            });
        }
        let devices = free[..wanted].to_vec();
        busy.extend(&devices);
        Ok(GpuLease { pool: self, devices })
    }
}

/// GPUs held by one run; returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct GpuLease<'a> {
    pool: &'a GpuPool,
    devices: Vec<u32>,
}

impl GpuLease<'_> {
    pub fn devices(&self) -> &[u32] {
        &self.devices
    }
}

impl Drop for GpuLease<'_> {
    fn drop(&mut self) {
        let mut busy = self.pool.busy.lock().unwrap_or_else(PoisonError::into_inner);
        for device in &self.devices {
            busy.remove(device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_nvidia_devices_are_gpus() {
        let names = [
            ("nvidia0", Some(0)),
            ("nvidia7", Some(7)),
            ("nvidia63", Some(63)),
            ("nvidia64", None),
            ("nvidiactl", None),
            ("nvidia-uvm", None),
            ("nvidia-caps", None),
            ("nvidia+1", None),
            ("nvidia", None),
            ("nvme0", None),
        ];
        for (name, number) in names {
            assert_eq!(device_number(name), number, "{name}");
        }
    }

    #[test]
    fn gpus_are_found_in_a_dev_directory() {
        let dev = tempfile::tempdir().expect("temp dir");
        for name in ["nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm", "null"] {
            std::fs::write(dev.path().join(name), b"").expect("write");
        }
        assert_eq!(detect(dev.path()), vec![0, 1]);
        assert_eq!(detect(&dev.path().join("missing")), Vec::<u32>::new());
    }

    #[test]
    fn concurrent_runs_never_share_a_gpu_and_a_dropped_lease_frees_its_gpus() {
        let pool = GpuPool::new(vec![0, 1, 2]);
        let none = pool.take(0).expect("no GPU needed");
        assert!(none.devices().is_empty());
        let first = pool.take(2).expect("two free");
        let second = pool.take(1).expect("one free");
        assert_eq!(first.devices(), &[0, 1]);
        assert_eq!(second.devices(), &[2]);
        let refused = pool.take(1).expect_err("none free");
        assert!(matches!(refused, ExecutorError::GpusUnavailable { wanted: 1, free: 0, total: 3 }));
        drop(first);
        assert_eq!(pool.take(2).expect("freed").devices(), &[0, 1]);
    }
}
