//! The task bundle: a manifest (what to run, what to return) and the files that go with it, packed
//! into one byte string that is encrypted as a whole. Inputs travel as a bundle to the provider; the
//! outputs come back as a bundle to the requester.

use crate::spec::is_relative_plain_path;
use serde::{Deserialize, Serialize};
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

/// What the provider runs and returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub command: String,
    pub args: Vec<String>,
    pub outputs: Vec<String>,
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

/// Reads a file or a directory tree from disk as bundle entries under `prefix`.
pub fn collect(
    path: &Path,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), BundleError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io(path))?
            .collect::<Result<_, _>>()
            .map_err(io(path))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            collect(&entry.path(), &format!("{prefix}/{name}"), out)?;
        }
    } else if meta.is_file() {
        out.push((prefix.to_string(), std::fs::read(path).map_err(io(path))?));
    }
    if out.len() > BUNDLE_FILES_MAX {
        return Err(BundleError::TooLarge("file count"));
    }
    Ok(())
}

/// Writes bundle entries under `dir`, creating directories as needed.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), BundleError> {
    for (path, bytes) in files {
        if !is_relative_plain_path(path) {
            return Err(BundleError::UnsafePath(path.clone()));
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&target, bytes).map_err(io(&target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip() {
        let manifest =
            Manifest { command: "python3".into(), args: vec!["a.py".into()], outputs: vec![] };
        let files = vec![("a.py".to_string(), b"print(1)".to_vec()), ("d/x".into(), vec![0; 3])];
        let bytes = pack(&manifest, &files).expect("packs");
        let (m, f) = unpack(&bytes).expect("unpacks");
        assert_eq!((m, f), (manifest, files));
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
}
