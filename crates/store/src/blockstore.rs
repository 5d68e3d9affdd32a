//! Blocks on disk, one file per block, and the file/directory operations built on them.
//!
//! Layout under the store directory:
//! - `FORMAT`: a marker naming the layout version;
//! - `blocks/<shard>/<key>.data`: `<key>` is the lowercase base32 of the block's multihash
//!   (so a CIDv0 and a CIDv1 of the same bytes share one file, as in kubo's flatfs) and
//!   `<shard>` its next-to-last two characters;
//! - `tmp/`: blocks being written. An upload writes its new blocks there unsynced; its commit
//!   syncs the file system once, then renames them into place, so a crash leaves either whole
//!   blocks or leftovers in `tmp/`, which [`Store::open`] removes. A store directory belongs to
//!   one process at a time.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Blocks that [`Store::collect`] must keep although no live root names them yet.
    held: Arc<Mutex<Held>>,
}

/// Blocks handed to uploads still running, and to uploads that ended since the last collection
/// began (whose records the caller may have written after it read the live set).
#[derive(Debug, Default)]
struct Held {
    next_upload: u64,
    running: HashMap<u64, HashSet<String>>,
    ended: HashSet<String>,
}

impl Held {
    fn holds(&self, key: &str) -> bool {
        self.ended.contains(key) || self.running.values().any(|keys| keys.contains(key))
    }
}

/// What one collection removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub blocks: u64,
    pub bytes: u64,
}

/// One upload into the store: every block it writes or finds already present is kept from
/// collection while it lives, and until the next collection has begun after it ended; the caller
/// records [`Upload::blocks`] as live before dropping it.
pub struct Upload<'a> {
    store: &'a Store,
    id: u64,
    blocks: Vec<Cid>,
    /// Keys of the blocks written to `tmp/` and not yet committed into place.
    staged: Vec<String>,
}

impl Store {
    /// Opens the store in `directory`, creating it if needed.
    pub fn open(directory: impl AsRef<Path>) -> Result<Store> {
        let root = directory.as_ref().to_path_buf();
        let temporary = root.join(TEMPORARY_DIRECTORY);
        // Leftovers of writes a crash interrupted: never renamed into place, so never in use.
        match fs::remove_dir_all(&temporary) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                return Err(StoreError::io("clearing", &temporary, error));
            }
            _ => {}
        }
        for sub in [root.join(BLOCKS_DIRECTORY), temporary] {
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
        Ok(Store { root, held: Arc::default() })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().expect("no panics while the held blocks are locked")
    }

    /// Starts an upload whose blocks stay safe from [`Store::collect`].
    pub fn upload(&self) -> Upload<'_> {
        let mut held = self.held();
        let id = held.next_upload;
        held.next_upload += 1;
        held.running.insert(id, HashSet::new());
        Upload { store: self, id, blocks: Vec::new(), staged: Vec::new() }
    }

    /// Removes every block that is neither live nor held by an upload. `live` is called once the
    /// collection has begun and must name the roots' blocks of every record written before that
    /// call (an upload that ends later keeps its blocks until the next collection).
    pub fn collect<E: From<StoreError>>(
        &self,
        live: impl FnOnce() -> std::result::Result<Vec<Cid>, E>,
    ) -> std::result::Result<Collected, E> {
        self.held().ended.clear();
        let live: HashSet<String> = live()?.iter().map(block_key).collect();
        let mut collected = Collected::default();
        let blocks = self.root.join(BLOCKS_DIRECTORY);
        let io = |path: &Path, error| StoreError::io("listing", path, error);
        for shard in fs::read_dir(&blocks).map_err(|error| io(&blocks, error))? {
            let shard = shard.map_err(|error| io(&blocks, error))?.path();
            for entry in fs::read_dir(&shard).map_err(|error| io(&shard, error))? {
                let path = entry.map_err(|error| io(&shard, error))?.path();
                let Some(key) = path.file_stem().and_then(|stem| stem.to_str()) else {
                    continue;
                };
                if live.contains(key) {
                    continue;
                }
                // Under the lock, so an upload either held the block before this check or
                // finds it gone and writes it again.
                let held = self.held();
                if held.holds(key) {
                    continue;
                }
                let size = fs::symlink_metadata(&path).map_or(0, |metadata| metadata.len());
                match fs::remove_file(&path) {
                    Ok(()) => {
                        collected.blocks += 1;
                        collected.bytes += size;
                    }
                    Err(error) if error.kind() == ErrorKind::NotFound => {}
                    Err(error) => return Err(StoreError::io("removing", &path, error).into()),
                }
            }
        }
        Ok(collected)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn block_path(&self, cid: &Cid) -> PathBuf {
        self.key_path(&block_key(cid))
    }

    fn key_path(&self, key: &str) -> PathBuf {
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
        let mut upload = self.upload();
        let cid = upload.add_reader(reader, options)?;
        upload.commit()?;
        Ok(cid)
    }

    /// Adds `bytes` as a UnixFS file.
    pub fn add_bytes(&self, bytes: &[u8], options: &AddOptions) -> Result<Cid> {
        self.add_reader(bytes, options)
    }

    /// Adds a file, or a directory with everything below it (`ipfs add -r`).
    pub fn add_path(&self, path: impl AsRef<Path>, options: &AddOptions) -> Result<Cid> {
        let mut upload = self.upload();
        let cid =
            crate::directory::import_path(path.as_ref(), options, &mut UploadSink(&mut upload))?
                .cid;
        upload.commit()?;
        Ok(cid)
    }

    /// Streams the bytes of the file at `cid` into `writer`; returns the number written.
    pub fn read_to_writer<W: Write>(&self, cid: &Cid, writer: W) -> Result<u64> {
        exporter::read_from_source(self, cid, writer)
    }

    /// Writes the file, directory tree or symlink at `cid` to `path`, which must not exist.
    pub fn get_to_path(&self, cid: &Cid, path: impl AsRef<Path>) -> Result<()> {
        exporter::write_path(self, cid, path.as_ref())
    }

    /// The bytes a reader can get out of the DAG under `cid`: every block counted as often as
    /// the DAG names it (a file of repeated chunks counts each repeat). Reads each distinct block
    /// once; fails beyond [`crate::FILE_SIZE_MAX`].
    pub fn expanded_size(&self, cid: &Cid) -> Result<u64> {
        exporter::expanded_size(self, cid)
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

impl Upload<'_> {
    /// Adds the bytes of `reader` as a UnixFS file; returns its CID.
    pub fn add_reader<R: Read>(&mut self, reader: R, options: &AddOptions) -> Result<Cid> {
        Ok(import_file(reader, options, &mut UploadSink(self))?.cid)
    }

    /// Imports every block of a CARv1 file (each checked against its CID); returns its roots
    /// once all are present.
    pub fn import_car<R: Read>(&mut self, reader: R) -> Result<Vec<Cid>> {
        Ok(crate::car::import(reader, &mut UploadSink(self))?.roots)
    }

    /// Every block this upload wrote or found present, in the order it met them.
    pub fn blocks(&self) -> &[Cid] {
        &self.blocks
    }

    /// Makes the blocks written so far durable and readable: one sync of the file system for
    /// all of them, then each renamed into place, then one more sync for the renames. Until
    /// then a crash loses them whole, and dropping the upload removes them.
    pub fn commit(&mut self) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let store = self.store;
        let temporary = store.root.join(TEMPORARY_DIRECTORY);
        sync_file_system(&temporary)?;
        for key in &self.staged {
            let path = store.key_path(key);
            let shard = path.parent().expect("a block path always has a shard directory");
            fs::create_dir_all(shard)
                .map_err(|error| StoreError::io("creating directory", shard, error))?;
            let staged = self.staged_path(key);
            fs::rename(&staged, &path)
                .map_err(|error| StoreError::io("renaming into", &path, error))?;
        }
        self.staged.clear();
        sync_file_system(&temporary)
    }

    fn staged_path(&self, key: &str) -> PathBuf {
        self.store.root.join(TEMPORARY_DIRECTORY).join(format!("{}-{key}", self.id))
    }
}

/// An upload's blocks, whose CIDs the builder or the CAR reader already checked.
struct UploadSink<'a, 'b>(&'b mut Upload<'a>);

impl BlockSink for UploadSink<'_, '_> {
    fn put_block(&mut self, cid: &Cid, block: &[u8]) -> Result<()> {
        debug_assert!(cid.matches(block), "builders and the CAR reader check every block");
        let upload = &mut *self.0;
        let key = block_key(cid);
        upload.blocks.push(*cid);
        // Held before looking, so a collection either removed it already or keeps it now.
        let first = upload
            .store
            .held()
            .running
            .get_mut(&upload.id)
            .is_some_and(|keys| keys.insert(key.clone()));
        if !first || upload.store.has(cid)? {
            return Ok(());
        }
        let path = upload.staged_path(&key);
        let mut file =
            File::create(&path).map_err(|error| StoreError::io("creating", &path, error))?;
        file.write_all(block).map_err(|error| StoreError::io("writing", &path, error))?;
        upload.staged.push(key);
        Ok(())
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        for key in &self.staged {
            // Never renamed into place; one left behind is removed when the store next opens.
            let _ = fs::remove_file(self.staged_path(key));
        }
        let mut held = self.store.held();
        if let Some(keys) = held.running.remove(&self.id) {
            held.ended.extend(keys);
        }
    }
}

/// A block's file name: the lowercase base32 of its multihash.
fn block_key(cid: &Cid) -> String {
    BASE32_NOPAD.encode(&cid.multihash()).to_ascii_lowercase()
}

/// Makes every write to the file system holding `path` durable (Linux: `syncfs`, one call
/// for all of an upload's blocks instead of one `fsync` each).
#[cfg(target_os = "linux")]
fn sync_file_system(path: &Path) -> Result<()> {
    let handle = File::open(path).map_err(|error| StoreError::io("opening", path, error))?;
    rustix::fs::syncfs(&handle).map_err(|error| StoreError::io("syncing", path, error.into()))
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_path: &Path) -> Result<()> {
    rustix::fs::sync();
    Ok(())
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
