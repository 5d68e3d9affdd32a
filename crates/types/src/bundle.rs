//! The task bundle: a manifest (what to run, what to return) and the files that go with it, packed
//! into one byte string that is encrypted as a whole. Inputs travel as a bundle to the provider; the
//! outputs come back as a bundle to the requester.

use crate::spec::{is_relative_plain_path, INPUT_CIDS_MAX, PATHS_MAX};
use crate::Hash32;
use rustix::fs::{openat, Dir, Mode, OFlags, CWD};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"AICPWB1\n";
/// Largest bundle, in bytes.
pub const BUNDLE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Most files in a bundle.
pub const BUNDLE_FILES_MAX: usize = 4096;
const MANIFEST_BYTES_MAX: usize = 64 * 1024;
const PATH_BYTES_MAX: usize = 1024;

/// Bundle entries: (path inside the bundle, bytes).
pub type Files = Vec<(String, Vec<u8>)>;
/// One bundle entry.
pub type Entry = (String, Vec<u8>);

/// What the provider runs and returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub command: String,
    pub args: Vec<String>,
    pub outputs: Vec<String>,
    /// A container task's image, named by digest (`spec::image_digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The bundle file holding the image as a `docker save` archive, if the task ships it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_archive: Option<String>,
    /// Inputs named by CID, placed beside the bundle's files. Only an input bundle has them:
    /// the provider takes them out before anything hashes or returns the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// An input named by CID (`inputs_by_cid`): the content the node's store holds under `cid`, put
/// in the inputs directory as `name`; `key` opens it when it was sealed (`seal_stream`). The
/// key travels only here, inside the task's sealed bundle, so it reaches exactly the nodes the
/// task's own key is granted to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub cid: String,
    #[serde(default)]
    pub key: Option<Hash32>,
}

impl Manifest {
    /// Every declared output (and the image archive) is a plain relative path (no `/` at the
    /// start, no `.` or `..`), so it names something inside the outputs (inputs) directory;
    /// every reference's name is one such path component, a file directly in the inputs.
    fn check_paths(&self) -> Result<(), BundleError> {
        if self.outputs.len() > PATHS_MAX || self.references.len() > INPUT_CIDS_MAX {
            return Err(BundleError::TooLarge("output or reference count"));
        }
        let bad_output = self
            .outputs
            .iter()
            .chain(&self.image_archive)
            .find(|o| !is_relative_plain_path(o) || o.len() > PATH_BYTES_MAX);
        let bad_name =
            self.references.iter().map(|r| &r.name).find(|n| {
                !is_relative_plain_path(n) || n.contains('/') || n.len() > PATH_BYTES_MAX
            });
        match bad_output.or(bad_name) {
            Some(bad) => Err(BundleError::UnsafePath(bad.clone())),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a bundle (bad magic)")]
    BadMagic,
    #[error("bundle ended early")]
    Truncated,
    #[error("bundle exceeds a limit: {0}")]
    TooLarge(&'static str),
    #[error("unsafe path in bundle: {0}")]
    UnsafePath(String),
    #[error("bad manifest: {0}")]
    Manifest(String),
    #[error("declared output {0} is missing")]
    MissingOutput(String),
    #[error("{0} already exists where the bundle would write it")]
    Exists(String),
    #[error("i/o on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.display().to_string(), source }
}

/// Packs a manifest and files given as (path inside the bundle, bytes).
pub fn pack(manifest: &Manifest, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BundleError> {
    if files.len() > BUNDLE_FILES_MAX {
        return Err(BundleError::TooLarge("file count"));
    }
    let manifest =
        serde_json::to_vec(manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for (path, bytes) in files {
        if !is_relative_plain_path(path) || path.len() > PATH_BYTES_MAX {
            return Err(BundleError::UnsafePath(path.clone()));
        }
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
        if out.len() as u64 > BUNDLE_BYTES_MAX {
            return Err(BundleError::TooLarge("total size"));
        }
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], BundleError> {
        let n = usize::try_from(n).map_err(|_| BundleError::Truncated)?;
        if self.0.len() < n {
            return Err(BundleError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, BundleError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
    fn u64(&mut self) -> Result<u64, BundleError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(out))
    }
}

/// Unpacks a bundle, checking every limit and every path.
pub fn unpack(bytes: &[u8]) -> Result<(Manifest, Files), BundleError> {
    if bytes.len() as u64 > BUNDLE_BYTES_MAX {
        return Err(BundleError::TooLarge("total size"));
    }
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err(BundleError::BadMagic);
    }
    let manifest_len = r.u32()? as usize;
    if manifest_len > MANIFEST_BYTES_MAX {
        return Err(BundleError::TooLarge("manifest"));
    }
    let manifest: Manifest = serde_json::from_slice(r.take(manifest_len as u64)?)
        .map_err(|e| BundleError::Manifest(e.to_string()))?;
    manifest.check_paths()?;
    let count = r.u32()? as usize;
    if count > BUNDLE_FILES_MAX {
        return Err(BundleError::TooLarge("file count"));
    }
    let mut files = Vec::with_capacity(count);
    for _ in 0..count {
        let path_len = r.u32()? as usize;
        if path_len > PATH_BYTES_MAX {
            return Err(BundleError::TooLarge("path"));
        }
        let path = String::from_utf8(r.take(path_len as u64)?.to_vec())
            .map_err(|_| BundleError::UnsafePath("(not UTF-8)".into()))?;
        if !is_relative_plain_path(&path) {
            return Err(BundleError::UnsafePath(path));
        }
        let size = r.u64()?;
        files.push((path, r.take(size)?.to_vec()));
    }
    if !r.0.is_empty() {
        return Err(BundleError::Truncated);
    }
    Ok((manifest, files))
}

/// Where a result bundle holds the task's log tail: always its last entry, never part of the
/// output hash (a declared output may be named `logs` too).
pub const RESULT_LOG_PATH: &str = "logs/task.log";

/// The output hash a provider commits to and a requester checks: the manifest and the declared
/// outputs' entries, without the log. The one definition both sides call.
pub fn output_hash(
    manifest: &Manifest,
    outputs: &[(String, Vec<u8>)],
) -> Result<Hash32, BundleError> {
    Ok(Hash32::of(&pack(manifest, outputs)?))
}

/// Splits a result bundle's entries into the outputs and the log tail (its last entry).
pub fn split_result(files: &[Entry]) -> Result<(&[Entry], &[u8]), BundleError> {
    match files.split_last() {
        Some(((path, log), outputs)) if path == RESULT_LOG_PATH => Ok((outputs, log)),
        _ => Err(BundleError::Manifest(format!("a result bundle ends with {RESULT_LOG_PATH}"))),
    }
}

/// Reads a file or a directory tree from disk as bundle entries under `prefix` (see
/// [`collect_outputs`] for how links, special files and sizes are handled).
pub fn collect(path: &Path, prefix: &str, out: &mut Files) -> Result<(), BundleError> {
    let file = open_no_follow(CWD, path.as_os_str(), path)?;
    collect_open(file, prefix, out)
}

/// Reads the manifest's declared outputs from `dir`, as a provider returns them and a known
/// answer is hashed. Each name is opened relative to `dir` one component at a time and never
/// through a symbolic link, so whatever the task left there (or the manifest names) nothing
/// outside `dir` is read; links and special files are refused, not skipped; every file's size
/// is checked from its metadata before it is read, against [`BUNDLE_BYTES_MAX`] in total.
pub fn collect_outputs(dir: &Path, manifest: &Manifest) -> Result<Files, BundleError> {
    manifest.check_paths()?;
    let root = open_no_follow(CWD, dir.as_os_str(), dir)?;
    let mut out = Vec::new();
    for name in &manifest.outputs {
        let mut current = root.try_clone().map_err(io(dir))?;
        for part in name.split('/') {
            current = match open_no_follow(&current, part.as_ref(), Path::new(name)) {
                Err(BundleError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    return Err(BundleError::MissingOutput(name.clone()))
                }
                opened => opened?,
            };
        }
        collect_open(current, name, &mut out)?;
    }
    Ok(out)
}

/// Opens `name` relative to `dir` without following a final symbolic link (refused as
/// unsafe, like a socket) and without blocking on a FIFO.
fn open_no_follow<Fd: AsFd>(dir: Fd, name: &OsStr, shown: &Path) -> Result<File, BundleError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        // A link (`ELOOP`) or a socket (`ENXIO`).
        Err(Errno::LOOP | Errno::NXIO) => Err(BundleError::UnsafePath(shown.display().to_string())),
        Err(error) => Err(io(shown)(error.into())),
    }
}

fn collect_open(file: File, prefix: &str, out: &mut Files) -> Result<(), BundleError> {
    if prefix.len() > PATH_BYTES_MAX {
        return Err(BundleError::TooLarge("path"));
    }
    let shown = Path::new(prefix);
    let meta = file.metadata().map_err(io(shown))?;
    if meta.is_dir() {
        let mut names = Vec::new();
        for entry in Dir::read_from(&file).map_err(|e| io(shown)(e.into()))? {
            let entry = entry.map_err(|e| io(shown)(e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        for name in names {
            let text = String::from_utf8(name.clone())
                .map_err(|_| BundleError::UnsafePath(format!("{prefix}/(not UTF-8)")))?;
            let path = format!("{prefix}/{text}");
            let child = open_no_follow(&file, OsStr::from_bytes(&name), Path::new(&path))?;
            collect_open(child, &path, out)?;
        }
    } else if meta.is_file() {
        let used: u64 = out.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        if used.saturating_add(meta.len()) > BUNDLE_BYTES_MAX {
            return Err(BundleError::TooLarge("total size"));
        }
        let mut bytes = Vec::new();
        file.take(meta.len()).read_to_end(&mut bytes).map_err(io(shown))?;
        out.push((prefix.to_string(), bytes));
    } else {
        return Err(BundleError::UnsafePath(prefix.to_string()));
    }
    if out.len() > BUNDLE_FILES_MAX {
        return Err(BundleError::TooLarge("file count"));
    }
    Ok(())
}

/// Writes bundle entries under `dir`, creating directories as needed. Nothing already in `dir`
/// is followed or replaced: each file is created new (`O_CREAT | O_EXCL`, which also refuses a
/// symbolic link in its place), and each directory on its way is made here or is a real
/// directory, never a link; an entry in the way is [`BundleError::Exists`], found before
/// anything is written.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), BundleError> {
    use std::io::{ErrorKind, Write};
    for (path, _) in files {
        if !is_relative_plain_path(path) {
            return Err(BundleError::UnsafePath(path.clone()));
        }
        let mut at = dir.to_path_buf();
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            at.push(part);
            let Ok(meta) = std::fs::symlink_metadata(&at) else { break };
            if parts.peek().is_none() || !meta.is_dir() {
                return Err(BundleError::Exists(path.clone()));
            }
        }
    }
    for (path, bytes) in files {
        let exists = |e: std::io::Error, at: &Path| match e.kind() {
            ErrorKind::AlreadyExists => BundleError::Exists(path.clone()),
            _ => io(at)(e),
        };
        let mut at = dir.to_path_buf();
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            at.push(part);
            if parts.peek().is_none() {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&at)
                    .map_err(|e| exists(e, &at))?;
                file.write_all(bytes).map_err(io(&at))?;
            } else if let Err(e) = std::fs::create_dir(&at) {
                let real_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
                if !real_dir {
                    return Err(exists(e, &at));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_travel_in_the_manifest_and_name_one_file_each() {
        let reference = |name: &str| Reference {
            name: name.into(),
            cid: "bafkreiabc".into(),
            key: Some(Hash32([3; 32])),
        };
        let manifest = Manifest { references: vec![reference("data.bin")], ..Manifest::default() };
        let bytes = pack(&manifest, &[]).expect("packs");
        assert_eq!(unpack(&bytes).expect("unpacks").0, manifest);
        for bad in ["../data.bin", "d/data.bin", "/etc/passwd", ".."] {
            let manifest = Manifest { references: vec![reference(bad)], ..Manifest::default() };
            let bytes = pack(&manifest, &[]).expect("packs");
            assert!(matches!(unpack(&bytes), Err(BundleError::UnsafePath(_))), "{bad}");
        }
        // A manifest without references packs as it did before they existed.
        let plain = pack(&Manifest::default(), &[]).expect("packs");
        assert!(!String::from_utf8_lossy(&plain).contains("references"));
    }

    #[test]
    fn bundles_round_trip() {
        let manifest = Manifest {
            command: "python3".into(),
            args: vec!["a.py".into()],
            ..Manifest::default()
        };
        let files = vec![("a.py".to_string(), b"print(1)".to_vec()), ("d/x".into(), vec![0; 3])];
        let bytes = pack(&manifest, &files).expect("packs");
        let (m, f) = unpack(&bytes).expect("unpacks");
        assert_eq!((m, f), (manifest, files));
    }

    #[test]
    fn writing_never_follows_or_replaces_what_is_already_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let target = outside.path().join("authorized_keys");
        std::fs::write(&target, b"mine").expect("write");
        std::os::unix::fs::symlink(&target, dir.path().join("out.txt")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).expect("symlink");
        std::fs::write(dir.path().join("old.txt"), b"old").expect("write");
        for name in ["out.txt", "d/x", "old.txt", "old.txt/x"] {
            let refused = write_files(dir.path(), &[(name.to_string(), b"evil".to_vec())]);
            assert!(matches!(&refused, Err(BundleError::Exists(p)) if p == name), "{refused:?}");
        }
        assert_eq!(std::fs::read(&target).expect("read"), b"mine");
        assert_eq!(std::fs::read_dir(outside.path()).expect("dir").count(), 1);
        assert_eq!(std::fs::read(dir.path().join("old.txt")).expect("read"), b"old");
        let blocked = [("new.txt".to_string(), vec![1]), ("d/y".to_string(), vec![2])];
        assert!(matches!(write_files(dir.path(), &blocked), Err(BundleError::Exists(_))));
        assert!(!dir.path().join("new.txt").exists(), "nothing written when one entry is refused");
        let fresh = [("a/b/c".to_string(), b"1".to_vec()), ("a/d".to_string(), b"2".to_vec())];
        write_files(dir.path(), &fresh).expect("new entries are written");
        assert_eq!(std::fs::read(dir.path().join("a/b/c")).expect("read"), b"1");
    }

    #[test]
    fn escaping_paths_and_truncation_are_rejected() {
        let manifest = Manifest::default();
        assert!(matches!(
            pack(&manifest, &[("../x".into(), vec![])]),
            Err(BundleError::UnsafePath(_))
        ));
        let bytes = pack(&manifest, &[("x".into(), vec![1, 2, 3])]).expect("packs");
        assert!(matches!(unpack(&bytes[..bytes.len() - 1]), Err(BundleError::Truncated)));
        let mut evil = bytes.clone();
        let at = evil.len() - 3 - 8 - 1;
        evil[at] = b'/';
        assert!(unpack(&evil).is_err());
    }

    fn manifest(outputs: &[&str]) -> Manifest {
        Manifest {
            command: "python3".into(),
            args: vec![],
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
            ..Manifest::default()
        }
    }

    #[test]
    fn an_output_named_logs_hashes_the_same_for_provider_and_requester() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("logs")).expect("mkdir");
        std::fs::write(dir.path().join("logs/metrics.json"), b"{\"loss\": 0.1}").expect("write");
        let manifest = manifest(&["logs"]);
        // The provider: the declared outputs, hashed, then the log tail appended.
        let mut files = collect_outputs(dir.path(), &manifest).expect("collect");
        let committed = output_hash(&manifest, &files).expect("hash");
        files.push((RESULT_LOG_PATH.to_string(), b"epoch 1".to_vec()));
        let result = pack(&manifest, &files).expect("pack");
        // The requester: unpack, drop the log, hash with the same function.
        let (manifest, files) = unpack(&result).expect("unpack");
        let (outputs, log) = split_result(&files).expect("split");
        assert_eq!(log, b"epoch 1");
        assert_eq!(outputs.len(), 1);
        assert_eq!(output_hash(&manifest, outputs).expect("hash"), committed);
    }

    #[test]
    fn manifests_naming_outputs_outside_the_outputs_directory_are_refused_on_unpack() {
        for bad in ["/proc/kmsg", "../../etc/shadow", "a/../../b", "./x", ""] {
            let bytes = pack(&manifest(&[bad]), &[]).expect("pack does not judge outputs");
            assert!(matches!(unpack(&bytes), Err(BundleError::UnsafePath(_))), "{bad:?}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = collect_outputs(dir.path(), &manifest(&["/proc/kmsg"]));
        assert!(matches!(refused, Err(BundleError::UnsafePath(_))));
    }

    #[test]
    fn outputs_are_read_without_following_links_or_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path();
        std::os::unix::fs::symlink("/proc/kmsg", out.join("kmsg")).expect("symlink");
        std::os::unix::fs::symlink("/proc", out.join("proc")).expect("symlink");
        std::os::unix::fs::symlink("/etc", out.join("etc")).expect("symlink");
        std::fs::create_dir(out.join("d")).expect("mkdir");
        std::os::unix::fs::symlink("/etc/hostname", out.join("d/leak")).expect("symlink");
        std::os::unix::net::UnixListener::bind(out.join("socket")).expect("bind");
        // Whatever the host holds behind a link, the failure is the same: unsafe, nothing read.
        for name in ["kmsg", "proc/kmsg", "etc/hostname", "etc/no-such-file", "d", "socket"] {
            let refused = collect_outputs(out, &manifest(&[name]));
            assert!(matches!(refused, Err(BundleError::UnsafePath(_))), "{name}: {refused:?}");
        }
        let missing = collect_outputs(out, &manifest(&["model.bin"]));
        assert!(matches!(missing, Err(BundleError::MissingOutput(name)) if name == "model.bin"));
    }

    #[test]
    fn a_sparse_output_larger_than_a_bundle_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("huge")).expect("create");
        file.set_len(1 << 30).expect("a 1 GiB sparse file");
        let started = std::time::Instant::now();
        let refused = collect_outputs(dir.path(), &manifest(&["huge"]));
        assert!(matches!(refused, Err(BundleError::TooLarge("total size"))), "{refused:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "it was not read");
    }
}
