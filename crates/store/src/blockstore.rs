//! Blocks on disk, one file per block, and the file/directory operations built on them.
//!
//! Layout under the store directory:
//! - `FORMAT`: a marker naming the layout version;
//! - `blocks/<shard>/<key>.data`: `<key>` is the lowercase base32 of the block's multihash
//!   (so a CIDv0 and a CIDv1 of the same bytes share one file, as in kubo's flatfs) and
//!   `<shard>` its next-to-last two characters;
//! - `tmp/`: blocks being written; each is fsynced, then renamed into place, so a crash
//!   leaves either the whole block or nothing.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use data_encoding::BASE32_NOPAD;

use crate::block::{check_block, BlockSink, BlockSource};
use crate::cid::Cid;
use crate::error::{Result, StoreError};
use crate::exporter::{self, Stat};
use crate::importer::{import_file, AddOptions};
use crate::limits::BLOCK_SIZE_MAX;

const FORMAT_FILE: &str = "FORMAT";
const FORMAT_MARKER: &str = "aicpw-store blocks v1\n";
const BLOCKS_DIRECTORY: &str = "blocks";
const TEMPORARY_DIRECTORY: &str = "tmp";

/// A content-addressed block store in a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store in `directory`, creating it if needed.
    pub fn open(directory: impl AsRef<Path>) -> Result<Store> {
        let root = directory.as_ref().to_path_buf();
        for sub in [root.join(BLOCKS_DIRECTORY), root.join(TEMPORARY_DIRECTORY)] {
            fs::create_dir_all(&sub)
                .map_err(|error| StoreError::io("creating directory", &sub, error))?;
        }
        let format_path = root.join(FORMAT_FILE);
        match fs::read_to_string(&format_path) {
            Ok(found) if found == FORMAT_MARKER => {}
            Ok(found) => {
                let found = found.chars().take(64).collect();
                return Err(StoreError::StoreFormatUnknown { path: format_path, found });
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                write_atomically(
                    &root.join(TEMPORARY_DIRECTORY),
                    &format_path,
                    FORMAT_MARKER.as_bytes(),
                )?;
            }
            Err(error) => return Err(StoreError::io("reading", &format_path, error)),
        }
        Ok(Store { root })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn block_path(&self, cid: &Cid) -> PathBuf {
        let key = BASE32_NOPAD.encode(&cid.multihash()).to_ascii_lowercase();
        let shard = &key[key.len() - 3..key.len() - 1];
        self.root.join(BLOCKS_DIRECTORY).join(shard).join(format!("{key}.data"))
    }

    /// Whether the block is present (its integrity is checked on read, not here).
    pub fn has(&self, cid: &Cid) -> Result<bool> {
        let path = self.block_path(cid);
        match fs::symlink_metadata(&path) {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(StoreError::io("inspecting", &path, error)),
        }
    }

    /// Stores a block after checking that it hashes to `cid`.
    pub fn put_block(&self, cid: &Cid, block: &[u8]) -> Result<()> {
        check_block(cid, block)?;
        self.write_block(cid, block)
    }

    fn write_block(&self, cid: &Cid, block: &[u8]) -> Result<()> {
        if self.has(cid)? {
            return Ok(());
        }
        let path = self.block_path(cid);
        let shard = path.parent().expect("a block path always has a shard directory");
        fs::create_dir_all(shard)
            .map_err(|error| StoreError::io("creating directory", shard, error))?;
        write_atomically(&self.root.join(TEMPORARY_DIRECTORY), &path, block)
    }

    /// Reads a block and checks that it hashes to `cid`.
    pub fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        let path = self.block_path(cid);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(StoreError::BlockNotFound { cid: *cid })
            }
            Err(error) => return Err(StoreError::io("opening", &path, error)),
        };
        let mut block = Vec::new();
        let limit = BLOCK_SIZE_MAX as u64 + 1;
        file.take(limit)
            .read_to_end(&mut block)
            .map_err(|error| StoreError::io("reading", &path, error))?;
        if block.len() > BLOCK_SIZE_MAX {
            return Err(StoreError::BlockTooLarge {
                size: block.len() as u64,
                max: BLOCK_SIZE_MAX,
            });
        }
        if !cid.matches(&block) {
            return Err(StoreError::BlockCorrupted { cid: *cid });
        }
        Ok(block)
    }

    /// Adds the bytes of `reader` as a UnixFS file; returns the CID `ipfs add` would print.
    pub fn add_reader<R: Read>(&self, reader: R, options: &AddOptions) -> Result<Cid> {
        Ok(import_file(reader, options, &mut VerifiedSink(self))?.cid)
    }

    /// Adds `bytes` as a UnixFS file.
    pub fn add_bytes(&self, bytes: &[u8], options: &AddOptions) -> Result<Cid> {
        self.add_reader(bytes, options)
    }

    /// Adds a file, or a directory with everything below it (`ipfs add -r`).
    pub fn add_path(&self, path: impl AsRef<Path>, options: &AddOptions) -> Result<Cid> {
        Ok(crate::directory::import_path(path.as_ref(), options, &mut VerifiedSink(self))?.cid)
    }

    /// Streams the bytes of the file at `cid` into `writer`; returns the number written.
    pub fn read_to_writer<W: Write>(&self, cid: &Cid, writer: W) -> Result<u64> {
        exporter::read_from_source(self, cid, writer)
    }

    /// Writes the file, directory tree or symlink at `cid` to `path`, which must not exist.
    pub fn get_to_path(&self, cid: &Cid, path: impl AsRef<Path>) -> Result<()> {
        exporter::write_path(self, cid, path.as_ref())
    }

    /// Kind and sizes of what `cid` points to, from its root block.
    pub fn stat(&self, cid: &Cid) -> Result<Stat> {
        exporter::stat(self, cid)
    }
}

impl BlockSource for Store {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        Store::get_block(self, cid)
    }
}

impl BlockSink for Store {
    fn put_block(&mut self, cid: &Cid, block: &[u8]) -> Result<()> {
        Store::put_block(self, cid, block)
    }
}

/// Blocks whose CID was computed from (or already checked against) their bytes: no second hash.
pub(crate) struct VerifiedSink<'a>(pub(crate) &'a Store);

impl BlockSink for VerifiedSink<'_> {
    fn put_block(&mut self, cid: &Cid, block: &[u8]) -> Result<()> {
        debug_assert!(cid.matches(block), "builders hand over blocks with their own CID");
        self.0.write_block(cid, block)
    }
}

/// Writes `bytes` to a temporary file in `temporary_directory`, fsyncs it, renames it to
/// `path` and fsyncs the parent directory, so `path` never holds a partial write.
fn write_atomically(temporary_directory: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = tempfile::NamedTempFile::new_in(temporary_directory).map_err(|error| {
        StoreError::io("creating temporary file in", temporary_directory, error)
    })?;
    temporary
        .write_all(bytes)
        .map_err(|error| StoreError::io("writing", temporary.path(), error))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(|error| StoreError::io("syncing", temporary.path(), error))?;
    temporary.persist(path).map_err(|error| StoreError::io("renaming into", path, error.error))?;
    sync_directory(path.parent().unwrap_or(path))
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| StoreError::io("syncing directory", directory, error))
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> Result<()> {
    // Directories cannot be opened for syncing on this platform; the rename is still atomic.
    Ok(())
}
