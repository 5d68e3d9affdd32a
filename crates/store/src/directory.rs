//! Adds files, directories and symlinks from disk like `ipfs add -r`.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use crate::block::BlockSink;
use crate::cid::Version;
use crate::dagpb::{self, PbLink};
use crate::error::{Result, StoreError};
use crate::importer::{import_file, put_dag_pb, AddOptions, Built};
use crate::limits::{
    DIRECTORY_ENTRIES_MAX, DIRECTORY_LINKS_SIZE_MAX, NAME_LENGTH_MAX, PATH_DEPTH_MAX,
    SYMLINK_TARGET_LENGTH_MAX,
};
use crate::unixfs;

/// Adds `path` (file, directory or symlink) and everything below it.
pub(crate) fn import_path<S: BlockSink>(
    path: &Path,
    options: &AddOptions,
    sink: &mut S,
) -> Result<Built> {
    options.validate()?;
    import_entry(path, options, sink, 0)
}

/// The CID `ipfs add -r --only-hash` prints for `path`; stores nothing.
pub fn cid_of_path(path: impl AsRef<Path>, options: &AddOptions) -> Result<crate::cid::Cid> {
    Ok(import_path(path.as_ref(), options, &mut crate::block::DiscardBlocks)?.cid)
}

fn import_entry<S: BlockSink>(
    path: &Path,
    options: &AddOptions,
    sink: &mut S,
    depth: usize,
) -> Result<Built> {
    if depth > PATH_DEPTH_MAX {
        return Err(StoreError::PathTooDeep { max: PATH_DEPTH_MAX });
    }
    let metadata =
        fs::symlink_metadata(path).map_err(|error| StoreError::io("inspecting", path, error))?;
    let file_type = metadata.file_type();
    if file_type.is_file() {
        let file = File::open(path).map_err(|error| StoreError::io("opening", path, error))?;
        import_file(BufReader::new(file), options, sink)
    } else if file_type.is_dir() {
        import_directory(path, options, sink, depth)
    } else if file_type.is_symlink() {
        let target =
            fs::read_link(path).map_err(|error| StoreError::io("reading link", path, error))?;
        let target = target_bytes(&target)?;
        check_symlink_target(&target)?;
        let (cid, length) = put_dag_pb(sink, options.cid_version, &unixfs::symlink(&target))?;
        Ok(Built { cid, content_size: target.len() as u64, cumulative_size: length as u64 })
    } else {
        Err(StoreError::FileTypeUnsupported { path: path.to_path_buf() })
    }
}

fn import_directory<S: BlockSink>(
    path: &Path,
    options: &AddOptions,
    sink: &mut S,
    depth: usize,
) -> Result<Built> {
    let names = list_directory(path, options.include_hidden)?;
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let child = import_entry(&path.join(&name), options, sink, depth + 1)?;
        entries.push((name, child));
    }
    build_directory(path, entries, options.cid_version, sink)
}

/// Entry names of a directory, sorted, hidden ones dropped unless asked for.
fn list_directory(path: &Path, include_hidden: bool) -> Result<Vec<String>> {
    let reader = fs::read_dir(path).map_err(|error| StoreError::io("listing", path, error))?;
    let mut names = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|error| StoreError::io("listing", path, error))?;
        let name = entry.file_name().into_string().map_err(|raw| StoreError::NameInvalid {
            name: raw.to_string_lossy().into_owned(),
            reason: "not UTF-8",
        })?;
        if !include_hidden && name.starts_with('.') {
            continue;
        }
        check_name(&name)?;
        if names.len() == DIRECTORY_ENTRIES_MAX {
            return Err(StoreError::DirectoryTooManyEntries {
                path: path.to_path_buf(),
                max: DIRECTORY_ENTRIES_MAX,
            });
        }
        names.push(name);
    }
    names.sort_unstable();
    Ok(names)
}

/// Writes a basic UnixFS directory node over already-built entries.
pub(crate) fn build_directory<S: BlockSink>(
    path: &Path,
    mut entries: Vec<(String, Built)>,
    version: Version,
    sink: &mut S,
) -> Result<Built> {
    // Go compares strings bytewise, which is also how Rust orders `String`.
    entries.sort_by(|left, right| left.0.cmp(&right.0));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(StoreError::NameInvalid { name: pair[0].0.clone(), reason: "duplicate entry" });
    }
    let links_size: usize =
        entries.iter().map(|(name, child)| name.len() + child.cid.to_bytes().len()).sum();
    if links_size > DIRECTORY_LINKS_SIZE_MAX {
        return Err(StoreError::DirectoryNeedsSharding {
            path: path.to_path_buf(),
            size: links_size,
            max: DIRECTORY_LINKS_SIZE_MAX,
        });
    }
    let links: Vec<PbLink> = entries
        .into_iter()
        .map(|(name, child)| PbLink {
            hash: child.cid,
            name: Some(name),
            tsize: Some(child.cumulative_size),
        })
        .collect();
    let node = unixfs::directory(links);
    let (cid, length) = put_dag_pb(sink, version, &node)?;
    Ok(Built { cid, content_size: 0, cumulative_size: dagpb::cumulative_size(length, &node.links) })
}

/// A name is one path component: no separators, not `.` or `..`, not empty, not too long.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_LENGTH_MAX {
        "longer than NAME_LENGTH_MAX"
    } else if name == "." || name == ".." {
        "reserved"
    } else if name.contains('/') || name.contains('\0') || (cfg!(windows) && name.contains('\\')) {
        "contains a path separator or NUL"
    } else {
        return Ok(());
    };
    Err(StoreError::NameInvalid { name: name.chars().take(NAME_LENGTH_MAX).collect(), reason })
}

pub(crate) fn check_symlink_target(target: &[u8]) -> Result<()> {
    if target.is_empty() {
        return Err(StoreError::SymlinkTargetInvalid { reason: "empty" });
    }
    if target.len() > SYMLINK_TARGET_LENGTH_MAX {
        return Err(StoreError::SymlinkTargetInvalid {
            reason: "longer than SYMLINK_TARGET_LENGTH_MAX",
        });
    }
    if target.contains(&0) {
        return Err(StoreError::SymlinkTargetInvalid { reason: "contains NUL" });
    }
    Ok(())
}

#[cfg(unix)]
fn target_bytes(target: &Path) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    Ok(target.as_os_str().as_bytes().to_vec())
}

#[cfg(not(unix))]
fn target_bytes(target: &Path) -> Result<Vec<u8>> {
    let text = target.to_str().ok_or(StoreError::SymlinkTargetInvalid { reason: "not UTF-8" })?;
    Ok(text.replace('\\', "/").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_rejected() {
        for bad in ["", ".", "..", "a/b", "nul\0byte"] {
            assert!(matches!(check_name(bad), Err(StoreError::NameInvalid { .. })), "{bad:?}");
        }
        assert!(matches!(check_name(&"x".repeat(256)), Err(StoreError::NameInvalid { .. })));
        for good in ["a", ".hidden", "x".repeat(255).as_str(), "with space", "ünïcode"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn symlink_targets_are_bounded() {
        assert!(check_symlink_target(b"../x").is_ok());
        assert!(check_symlink_target(b"").is_err());
        assert!(check_symlink_target(&[b'a'; 4097]).is_err());
        assert!(check_symlink_target(b"a\0b").is_err());
    }
}
