//! The run's writable space as a filesystem of its own: a sparse image, formatted ext4 and
//! loop-mounted (`nosuid`, `nodev`), holds the outputs and scratch directories. Everything the
//! task writes there counts, files it deleted but keeps open included, and the kernel refuses
//! writes (`ENOSPC`) at the image's size; the monitor stops the task once the bytes in use pass
//! the disk limit, which lies a margin below that size. The outputs are copied to the
//! request's outputs directory after the run, and the filesystem is unmounted and deleted.
//!
//! An agent keeps a few filesystems made ahead ([`SpareDisks`], owned by root until a run takes
//! one and hands it to its uid), so that setting a run up does not wait for `mkfs` and `mount`.
//! A spare is never used twice: each run gets a filesystem no task has written to.

use std::fs;
use std::os::unix::fs::{lchown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::mount::{unmount, UnmountFlags};

use super::command::find_tool;
use super::{prepare, ExecutorError};

/// Space the filesystem's own structures take, and a margin above the limit so that the
/// monitor, not `ENOSPC`, normally ends an overrun: an eighth of the limit plus this.
const IMAGE_SLACK_MB: u64 = 16;
/// A run's filesystem in its scratch directory: `.aicpw-disk.img` mounted at `.aicpw-disk`.
const RUN_DISK_NAME: &str = "aicpw-disk";
/// Spare filesystems an executor keeps made ahead, all sizes together.
pub(crate) const SPARE_DISKS_MAX: usize = 2;

/// Removes a directory a run used, first detaching the filesystems mounted below it: an agent
/// that died mid-run leaves its run's filesystem mounted there, and a plain removal stops at
/// that mount, leaving the old run's files behind.
pub fn remove_run_dir(dir: &Path) {
    if fs::symlink_metadata(dir).is_err() {
        return;
    }
    detach_mounts_below(dir);
    let _ = fs::remove_dir_all(dir);
}

/// Detaches every filesystem mounted at or below `dir` (lazily: each goes with its last
/// user, and its loop device with it).
pub fn detach_mounts_below(dir: &Path) {
    let root = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The fifth field is the mount point.
    let mut below: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_point)
        .filter(|point| point.starts_with(&root))
        .collect();
    // The deepest first, so that each detaches from a parent that is still there.
    below.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in below {
        let _ = unmount(&point, UnmountFlags::DETACH);
    }
}

/// A mount point as `/proc/self/mountinfo` writes it: space, tab, newline and backslash as
/// a backslash and three octal digits.
fn unescape_mount_point(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match code {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The programs that make and mount the filesystem.
#[derive(Clone, Debug)]
pub(crate) struct DiskTools {
    mkfs: PathBuf,
    mount: PathBuf,
}

impl DiskTools {
    pub fn find() -> Result<DiskTools, ExecutorError> {
        Ok(DiskTools {
            mkfs: find_tool("mkfs.ext4", "e2fsprogs")?,
            mount: find_tool("mount", "mount")?,
        })
    }
}

/// A mounted run filesystem; unmounted and deleted when dropped.
#[derive(Debug)]
pub(crate) struct RunDisk {
    image: PathBuf,
    mount_point: PathBuf,
    mounted: bool,
    /// Bytes in use right after formatting (the filesystem's own), not counted as the task's.
    baseline_bytes: u64,
}

impl RunDisk {
    /// Makes a filesystem for `limit_mb` of task data in `host_dir` (a directory of the run
    /// the task never sees), owned by `uid`, with `out` and `tmp` directories.
    pub fn create(
        tools: &DiskTools,
        host_dir: &Path,
        limit_mb: u64,
        uid: u32,
    ) -> Result<RunDisk, ExecutorError> {
        RunDisk::create_named(tools, host_dir, RUN_DISK_NAME, limit_mb, uid)
    }

    /// [`RunDisk::create`] as `host_dir/.{name}.img` mounted at `host_dir/.{name}`.
    fn create_named(
        tools: &DiskTools,
        host_dir: &Path,
        name: &str,
        limit_mb: u64,
        uid: u32,
    ) -> Result<RunDisk, ExecutorError> {
        let mut disk = RunDisk {
            image: host_dir.join(format!(".{name}.img")),
            mount_point: host_dir.join(format!(".{name}")),
            mounted: false,
            baseline_bytes: 0,
        };
        remove_run_dir(&disk.mount_point);
        let size_mb = limit_mb.saturating_add(limit_mb / 8).saturating_add(IMAGE_SLACK_MB);
        let image = fs::File::create(&disk.image).map_err(|source| {
            ExecutorError::io(format!("create {}", disk.image.display()), source)
        })?;
        image
            .set_len(size_mb.saturating_mul(1 << 20))
            .map_err(|source| ExecutorError::io("size the disk image", source))?;
        let owner = format!("root_owner={uid}:{uid},nodiscard");
        run(Command::new(&tools.mkfs)
            .args(["-q", "-F", "-m", "0", "-O", "^has_journal", "-E"])
            .arg(&owner)
            .arg(&disk.image))?;
        fs::create_dir(&disk.mount_point).map_err(|source| {
            ExecutorError::io(format!("create {}", disk.mount_point.display()), source)
        })?;
        run(Command::new(&tools.mount)
            .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
            .arg(&disk.image)
            .arg(&disk.mount_point))?;
        disk.mounted = true;
        for dir in [disk.outputs(), disk.scratch()] {
            fs::create_dir(&dir)
                .map_err(|source| ExecutorError::io(format!("create {}", dir.display()), source))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|source| ExecutorError::io(format!("chmod {}", dir.display()), source))?;
            lchown(&dir, Some(uid), Some(uid))
                .map_err(|source| ExecutorError::io(format!("chown {}", dir.display()), source))?;
        }
        disk.baseline_bytes = disk.used_bytes().unwrap_or(0);
        Ok(disk)
    }

    /// Gives the filesystem (its root, `out` and `tmp`) to `uid`, as `create` would have.
    fn hand_to(&self, uid: u32) -> Result<(), ExecutorError> {
        for dir in [self.mount_point.clone(), self.outputs(), self.scratch()] {
            lchown(&dir, Some(uid), Some(uid))
                .map_err(|source| ExecutorError::io(format!("chown {}", dir.display()), source))?;
        }
        Ok(())
    }

    /// Where the task's outputs are written (mounted at `/task/out`).
    pub fn outputs(&self) -> PathBuf {
        self.mount_point.join("out")
    }

    /// The task's scratch directory (mounted at `/tmp`).
    pub fn scratch(&self) -> PathBuf {
        self.mount_point.join("tmp")
    }

    /// Bytes the task has in use: every allocated block but the filesystem's own.
    pub fn task_bytes(&self) -> Option<u64> {
        self.used_bytes().map(|used| used.saturating_sub(self.baseline_bytes))
    }

    fn used_bytes(&self) -> Option<u64> {
        let stats = rustix::fs::statvfs(&self.mount_point).ok()?;
        Some(stats.f_blocks.saturating_sub(stats.f_bfree).saturating_mul(stats.f_frsize))
    }

    /// Copies the outputs (already sanitized: directories and regular files only) to `dest`,
    /// unless their apparent sizes (sparse files count whole) add up to more than
    /// `limit_bytes`; returns whether they were copied.
    pub fn copy_outputs(&self, dest: &Path, limit_bytes: u64) -> Result<bool, ExecutorError> {
        let source = self.outputs();
        if prepare::disk_usage_bytes(&source).is_none_or(|apparent| apparent > limit_bytes) {
            return Ok(false);
        }
        let mut failure = None;
        prepare::walk(&source, &mut |path, file_type| {
            let Ok(relative) = path.strip_prefix(&source) else { return Ok(()) };
            let target = dest.join(relative);
            let copied = if relative.as_os_str().is_empty() {
                Ok(())
            } else if file_type.is_dir() {
                fs::create_dir(&target)
            } else if file_type.is_file() {
                fs::copy(path, &target).map(drop)
            } else {
                Ok(())
            };
            if let Err(error) = copied {
                failure.get_or_insert(ExecutorError::io(
                    format!("copy output {}", relative.display()),
                    error,
                ));
            }
            Ok(())
        })?;
        failure.map_or(Ok(true), Err)
    }
}

impl Drop for RunDisk {
    fn drop(&mut self) {
        // Best effort: the run's processes are gone, so the unmount only fails when someone
        // else holds the mount; a lazy unmount then lets it go with its last user.
        if self.mounted && unmount(&self.mount_point, UnmountFlags::empty()).is_err() {
            let _ = unmount(&self.mount_point, UnmountFlags::DETACH);
        }
        let _ = fs::remove_dir(&self.mount_point);
        let _ = fs::remove_file(&self.image);
    }
}

/// Filesystems made ahead for runs, in a directory of the agent's (see the module's comment).
#[derive(Debug)]
pub(crate) struct SpareDisks {
    tools: DiskTools,
    dir: PathBuf,
    made: AtomicU64,
    /// The spares ready, oldest first, with their limits in MB, and how many are being made.
    pool: Mutex<(Vec<(u64, RunDisk)>, usize)>,
}

impl SpareDisks {
    /// Keeps spares in `dir`, first clearing what an agent killed earlier left there.
    pub fn new(tools: DiskTools, dir: &Path) -> Result<Arc<SpareDisks>, ExecutorError> {
        remove_run_dir(dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| ExecutorError::io(format!("create {}", dir.display()), source))?;
        let dir = fs::canonicalize(dir)
            .map_err(|source| ExecutorError::io(format!("resolve {}", dir.display()), source))?;
        let (made, pool) = (AtomicU64::new(0), Mutex::new((Vec::new(), 0)));
        Ok(Arc::new(SpareDisks { tools, dir, made, pool }))
    }

    /// A spare of `limit_mb` handed to `uid`, if one is ready; either way another of that size
    /// is made in the background (in place of the oldest spare of another size if the pool is
    /// full), for the next run.
    pub fn take(self: &Arc<Self>, limit_mb: u64, uid: u32) -> Option<RunDisk> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let found = pool.0.iter().position(|(size, _)| *size == limit_mb);
        let taken = found.map(|index| pool.0.remove(index).1);
        if pool.0.len() + pool.1 >= SPARE_DISKS_MAX {
            match pool.0.iter().position(|(size, _)| *size != limit_mb) {
                Some(index) => drop(pool.0.remove(index)),
                None => return taken.filter(|disk| disk.hand_to(uid).is_ok()),
            }
        }
        pool.1 += 1;
        drop(pool);
        let spares = self.clone();
        std::thread::spawn(move || spares.make(limit_mb));
        taken.filter(|disk| disk.hand_to(uid).is_ok())
    }

    fn make(&self, limit_mb: u64) {
        let name = format!("aicpw-spare-{}", self.made.fetch_add(1, Ordering::Relaxed));
        let made = RunDisk::create_named(&self.tools, &self.dir, &name, limit_mb, 0);
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.1 -= 1;
        match made {
            Ok(disk) => pool.0.push((limit_mb, disk)),
            Err(error) => tracing::warn!("cannot make a spare run filesystem: {error}"),
        }
    }
}

fn run(command: &mut Command) -> Result<(), ExecutorError> {
    let output = command
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ExecutorError::io(format!("run {command:?}"), source))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ExecutorError::SandboxUnavailable {
        reason: format!(
            "{command:?} failed ({}): {}; the run's disk limit needs loop devices and ext4",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::unescape_mount_point;
    use std::path::Path;

    #[test]
    fn mount_points_are_read_back_with_their_escaped_bytes() {
        let field = r"/srv/a\040b/tab\011nl\012back\134slash/\777/end\04";
        let want = "/srv/a b/tab\tnl\nback\\slash/\\777/end\\04";
        assert_eq!(unescape_mount_point(field), Path::new(want));
    }
}
