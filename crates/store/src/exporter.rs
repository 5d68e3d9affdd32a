//! Reads UnixFS DAGs back: a file's bytes to a writer, a whole tree to disk, or a summary.
//!
//! Every block comes from a [`BlockSource`], which checks it against its CID; on top of that
//! the sizes each node claims are checked against what its children really hold.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::block::BlockSource;
use crate::cid::{Cid, Codec};
use crate::dagpb::{self, PbNode};
use crate::directory::{check_name, check_symlink_target};
use crate::error::{Result, StoreError};
use crate::limits::{DAG_DEPTH_MAX, FILE_SIZE_MAX, PATH_DEPTH_MAX};
use crate::unixfs::{self, DataType, UnixfsData};

/// What a CID points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// A HAMT-sharded directory (kubo's form for very large directories); not readable here.
    HamtShard,
}

/// Summary of the node a CID points to, read from its root block only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub kind: EntryKind,
    /// File: content bytes. Symlink: target length. Directories: 0.
    pub size: u64,
    /// Bytes of all blocks in the DAG as the root's links claim (`ipfs files stat` CumulativeSize).
    pub cumulative_size: u64,
    /// Bytes of the root block.
    pub block_size: u64,
    /// Links of the root block (entries, for a directory).
    pub links: u64,
}

/// Summary of `cid` from its root block.
pub(crate) fn stat<B: BlockSource>(source: &B, cid: &Cid) -> Result<Stat> {
    let block = source.get_block(cid)?;
    let block_size = block.len() as u64;
    if cid.codec() == Codec::Raw {
        return Ok(Stat {
            kind: EntryKind::File,
            size: block_size,
            cumulative_size: block_size,
            block_size,
            links: 0,
        });
    }
    let (node, message) = unixfs::decode_node(&block)?;
    let kind = entry_kind(cid, &message)?;
    let size = match kind {
        EntryKind::File => file_size(&message),
        EntryKind::Symlink => message.data.as_ref().map_or(0, |data| data.len() as u64),
        EntryKind::Directory | EntryKind::HamtShard => 0,
    };
    let cumulative_size = dagpb::cumulative_size(block.len(), &node.links);
    Ok(Stat { kind, size, cumulative_size, block_size, links: node.links.len() as u64 })
}

fn entry_kind(cid: &Cid, message: &UnixfsData) -> Result<EntryKind> {
    match message.data_type {
        DataType::File | DataType::Raw => Ok(EntryKind::File),
        DataType::Directory => Ok(EntryKind::Directory),
        DataType::Symlink => Ok(EntryKind::Symlink),
        DataType::HamtShard => Ok(EntryKind::HamtShard),
        DataType::Metadata => {
            Err(StoreError::NotAFile { cid: *cid, kind: DataType::Metadata.name() })
        }
    }
}

fn file_size(message: &UnixfsData) -> u64 {
    message.filesize.unwrap_or_else(|| {
        let own = message.data.as_ref().map_or(0, |data| data.len() as u64);
        message.blocksizes.iter().fold(own, |sum, size| sum.saturating_add(*size))
    })
}

/// See [`crate::Store::expanded_size`].
pub(crate) fn expanded_size<B: BlockSource>(source: &B, cid: &Cid) -> Result<u64> {
    expand(source, cid, &mut HashMap::new(), 0)
}

fn expand<B: BlockSource>(
    source: &B,
    cid: &Cid,
    sizes: &mut HashMap<Cid, u64>,
    depth: usize,
) -> Result<u64> {
    if let Some(size) = sizes.get(cid) {
        return Ok(*size);
    }
    if depth > DAG_DEPTH_MAX {
        return Err(StoreError::DagTooDeep { max: DAG_DEPTH_MAX });
    }
    let block = source.get_block(cid)?;
    let mut size = block.len() as u64;
    if cid.codec() == Codec::DagPb {
        let node = PbNode::decode(&block)?;
        drop(block);
        for link in &node.links {
            size = size
                .checked_add(expand(source, &link.hash, sizes, depth + 1)?)
                .filter(|size| *size <= FILE_SIZE_MAX)
                .ok_or(StoreError::FileTooLarge { max: FILE_SIZE_MAX })?;
        }
    }
    sizes.insert(*cid, size);
    Ok(size)
}

/// Streams the bytes of the file at `cid`, read from any block source, into `writer`;
/// returns how many were written. Holds one block per level of the DAG at a time.
pub fn read_from_source<B: BlockSource, W: Write>(
    source: &B,
    cid: &Cid,
    mut writer: W,
) -> Result<u64> {
    let written = write_node(source, cid, &mut writer, 0)?;
    writer.flush().map_err(StoreError::WriteOutput)?;
    Ok(written)
}

fn write_node<B: BlockSource, W: Write>(
    source: &B,
    cid: &Cid,
    writer: &mut W,
    depth: usize,
) -> Result<u64> {
    if depth > DAG_DEPTH_MAX {
        return Err(StoreError::DagTooDeep { max: DAG_DEPTH_MAX });
    }
    let block = source.get_block(cid)?;
    if cid.codec() == Codec::Raw {
        writer.write_all(&block).map_err(StoreError::WriteOutput)?;
        return Ok(block.len() as u64);
    }
    let (node, message) = unixfs::decode_node(&block)?;
    drop(block);
    write_decoded(source, cid, &node, &message, writer, depth)
}

/// Writes a decoded file node: its own data, then each child in link order, checking
/// that every child yields exactly the bytes its `blocksizes` entry claims.
fn write_decoded<B: BlockSource, W: Write>(
    source: &B,
    cid: &Cid,
    node: &PbNode,
    message: &UnixfsData,
    writer: &mut W,
    depth: usize,
) -> Result<u64> {
    let inconsistent = |reason| StoreError::DagInconsistent { cid: *cid, reason };
    match message.data_type {
        DataType::File | DataType::Raw => {}
        DataType::HamtShard => return Err(StoreError::HamtShardUnsupported { cid: *cid }),
        other => return Err(StoreError::NotAFile { cid: *cid, kind: other.name() }),
    }
    if message.blocksizes.len() != node.links.len() {
        return Err(inconsistent("number of blocksizes differs from number of links"));
    }
    let mut written = 0u64;
    if let Some(data) = &message.data {
        writer.write_all(data).map_err(StoreError::WriteOutput)?;
        written = data.len() as u64;
    }
    for (link, &expected) in node.links.iter().zip(&message.blocksizes) {
        let child = write_node(source, &link.hash, writer, depth + 1)?;
        if child != expected {
            return Err(inconsistent(
                "a child holds a different number of bytes than blocksizes says",
            ));
        }
        written = written.checked_add(child).ok_or(inconsistent("file size overflows"))?;
        if written > FILE_SIZE_MAX {
            return Err(StoreError::FileTooLarge { max: FILE_SIZE_MAX });
        }
    }
    if message.filesize.is_some_and(|filesize| filesize != written) {
        return Err(inconsistent("filesize differs from the bytes under the node"));
    }
    Ok(written)
}

/// Writes the file, directory tree or symlink at `cid` to `path`, which must not exist.
pub(crate) fn write_path<B: BlockSource>(source: &B, cid: &Cid, path: &Path) -> Result<()> {
    write_entry(source, cid, path, 0)
}

fn write_entry<B: BlockSource>(source: &B, cid: &Cid, path: &Path, depth: usize) -> Result<()> {
    if depth > PATH_DEPTH_MAX {
        return Err(StoreError::PathTooDeep { max: PATH_DEPTH_MAX });
    }
    if fs::symlink_metadata(path).is_ok() {
        return Err(StoreError::DestinationExists { path: path.to_path_buf() });
    }
    if cid.codec() == Codec::Raw {
        return write_file_to_path(path, |writer| write_node(source, cid, writer, 0));
    }
    let block = source.get_block(cid)?;
    let (node, message) = unixfs::decode_node(&block)?;
    drop(block);
    match message.data_type {
        DataType::File | DataType::Raw => write_file_to_path(path, |writer| {
            write_decoded(source, cid, &node, &message, writer, 0)
        }),
        DataType::Directory => {
            fs::create_dir(path)
                .map_err(|error| StoreError::io("creating directory", path, error))?;
            for link in &node.links {
                let name = link.name.as_deref().unwrap_or_default();
                check_name(name)?;
                write_entry(source, &link.hash, &path.join(name), depth + 1)?;
            }
            Ok(())
        }
        DataType::Symlink => {
            let target = message.data.unwrap_or_default();
            check_symlink_target(&target)?;
            create_symlink(&target, path)
        }
        DataType::HamtShard => Err(StoreError::HamtShardUnsupported { cid: *cid }),
        DataType::Metadata => {
            Err(StoreError::NotAFile { cid: *cid, kind: DataType::Metadata.name() })
        }
    }
}

/// Creates `path`, fills it with `write`, and removes it again if anything fails.
fn write_file_to_path<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<u64>,
{
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| StoreError::io("creating", path, error))?;
    let mut writer = BufWriter::new(file);
    let result = write(&mut writer).and_then(|_| {
        let file = writer
            .into_inner()
            .map_err(|error| StoreError::io("writing", path, error.into_error()))?;
        file.sync_all().map_err(|error| StoreError::io("syncing", path, error))
    });
    if result.is_err() {
        // The partial file is worthless; the original error is what the caller needs.
        let _ = fs::remove_file(path);
    }
    result
}

#[cfg(unix)]
fn create_symlink(target: &[u8], path: &Path) -> Result<()> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        .map_err(|error| StoreError::io("creating symlink", path, error))
}

#[cfg(not(unix))]
fn create_symlink(_target: &[u8], _path: &Path) -> Result<()> {
    Err(StoreError::SymlinkUnsupported)
}
