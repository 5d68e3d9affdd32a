//! The provider's content cache: content a task names by CID (datasets, models, images), kept as
//! the store served it under `work_dir/cache`, bounded in bytes and evicted least recently used
//! first, so a second task on the same content starts without downloading it again.
//!
//! Entries are files named by their CID; a file's modification time is when it was last used.
//! Every entry was checked against its CID as it was downloaded, and sealed content stays sealed
//! here: it is decrypted into a run's inputs, never in the cache.

use crate::client::{Client, ClientError};
use aicpw_store::Cid;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The cache's bound when the operator sets none (`provider start --cache-bytes`).
pub const CACHE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the store sent other content than {0}")]
    Mismatch(String),
    #[error("{cid} is {size} bytes, more than the {room} the task's disk limit leaves for it")]
    TooLarge { cid: String, size: u64, room: u64 },
    #[error("the content cache at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.display().to_string(), source }
}

pub struct ContentCache {
    dir: PathBuf,
    bytes_max: u64,
    /// Held while an entry is looked up, fetched or evicted: one download at a time, and no
    /// entry is evicted between being found and being opened.
    lock: Mutex<()>,
}

impl ContentCache {
    /// Opens the cache in `dir`, removing downloads a crash cut short.
    pub fn open(dir: PathBuf, bytes_max: u64) -> Result<ContentCache, CacheError> {
        let partial = dir.join("partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(io(&partial))?;
        Ok(ContentCache { dir, bytes_max, lock: Mutex::new(()) })
    }

    /// The content with this CID, opened for reading: from the cache when it holds it, else
    /// downloaded from the node's store (checked against the CID as it arrives) and kept.
    /// Content of more than `size_max` bytes is refused, before it is downloaded.
    pub fn open_content(
        &self,
        client: &Client,
        cid: &Cid,
        size_max: u64,
    ) -> Result<File, CacheError> {
        let too_large = |size| CacheError::TooLarge { cid: cid.to_string(), size, room: size_max };
        let _held = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self.dir.join(cid.to_string());
        if let Ok(file) = File::open(&path) {
            let size = file.metadata().map_err(io(&path))?.len();
            if size > size_max {
                return Err(too_large(size));
            }
            file.set_modified(SystemTime::now()).map_err(io(&path))?;
            return Ok(file);
        }
        let (length, body) = client.get_stream(&format!("/store/{cid}"))?;
        // The node states the root's size, and the body is read no further than that.
        let length = length.ok_or_else(|| {
            CacheError::Client(ClientError::Protocol(format!("{cid}: the node sent no length")))
        })?;
        if length > size_max {
            return Err(too_large(length));
        }
        self.evict_for(length)?;
        let partial = self.dir.join("partial").join(cid.to_string());
        let mut writer = BufWriter::new(File::create(&partial).map_err(io(&partial))?);
        let got = aicpw_store::cid_of_copy(body, &mut writer, &aicpw_store::AddOptions::of(cid));
        let finished = writer.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all());
        match got {
            Ok(got) if got == *cid => {}
            Ok(_) => {
                let _ = std::fs::remove_file(&partial);
                return Err(CacheError::Mismatch(cid.to_string()));
            }
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                return Err(CacheError::Client(ClientError::Protocol(error.to_string())));
            }
        }
        finished.map_err(io(&partial))?;
        std::fs::rename(&partial, &path).map_err(io(&path))?;
        File::open(&path).map_err(io(&path))
    }

    /// Removes the least recently used entries until `incoming` more bytes fit the bound (or
    /// nothing is left: content larger than the bound is still fetched, and is the first to go).
    fn evict_for(&self, incoming: u64) -> Result<(), CacheError> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let metadata = entry.metadata().map_err(io(&entry.path()))?;
            if metadata.is_file() {
                let used = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.push((used, metadata.len(), entry.path()));
            }
        }
        entries.sort();
        let mut held: u64 = entries.iter().map(|(_, size, _)| size).sum();
        for (_, size, path) in entries {
            if held.saturating_add(incoming) <= self.bytes_max {
                break;
            }
            std::fs::remove_file(&path).map_err(io(&path))?;
            tracing::debug!("content cache: evicted {}", path.display());
            held -= size;
        }
        Ok(())
    }
}
