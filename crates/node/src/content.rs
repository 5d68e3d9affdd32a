//! The content store as the node runs it: every upload is charged to the account that signed it,
//! each account has a quota and the node a capacity, and what no open task names is collected.
//!
//! `uploads.redb` holds, per (account, CID), the bytes charged and until when the upload is
//! held, and the blocks it handed the store. An upload is held for `hold_ms` after it arrived and
//! after the last collection that found an open task naming it (as its inputs, a revealed result
//! or its verified result), so a requester still has `hold_ms` to download a finished task's
//! result. A collection drops the records no longer held, then removes every block that no
//! remaining record (and no upload in flight) names.

use crate::db::DbError;
use crate::service::{now_ms, Shared};
use aicpw_store::{Cid, Collected, Store, StoreError};
use aicpw_types::{AccountId, Amount, Reject};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::HashSet;
use std::path::Path;

/// (account ‖ CID bytes) → (bytes charged, held until ms).
const UPLOADS: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("uploads");
/// (account ‖ CID bytes) → the upload's block CIDs, each as a length byte then the CID bytes.
const UPLOAD_BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("upload_blocks");
/// Account → bytes its held uploads are charged; the empty key → all accounts together.
const USAGE: TableDefinition<&[u8], u64> = TableDefinition::new("usage");
const TOTAL: &[u8] = &[];

/// What the store takes, and from whom.
#[derive(Clone, Copy, Debug)]
pub struct StorePolicy {
    /// Bytes one account's held uploads may be charged.
    pub quota_bytes: u64,
    /// Bytes all held uploads together may be charged.
    pub capacity_bytes: u64,
    /// How long an upload is held after it arrived, and after an open task last named it.
    pub hold_ms: u64,
    /// The least balance plus stake an account needs to upload.
    pub balance_min: Amount,
    /// How long an unfinished upload waits for its uploader to resume it before it is dropped.
    pub upload_idle_ms: u64,
}

impl Default for StorePolicy {
    fn default() -> Self {
        StorePolicy {
            quota_bytes: 4 << 30,
            capacity_bytes: 256 << 30,
            hold_ms: 24 * 3600 * 1000,
            balance_min: Amount::tokens(1),
            upload_idle_ms: 60 * 1000,
        }
    }
}

impl StorePolicy {
    /// How often the node collects: a quarter of the hold time, at least every 5 minutes.
    pub fn collect_interval_ms(&self) -> u64 {
        (self.hold_ms / 4).clamp(100, 5 * 60 * 1000)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("content store: {0}")]
    Store(#[from] StoreError),
}

/// A store-database failure as a client sees it.
fn unavailable<E>(_: E) -> Reject {
    Reject::Unavailable
}

fn db<E: Into<DbError>>(error: E) -> ContentError {
    ContentError::Db(error.into())
}

/// The node's content store and who pays for what is in it.
pub struct Content {
    pub store: Store,
    pub policy: StorePolicy,
    uploads: Database,
    /// Uploads begun and not yet finished, which their uploader may resume.
    pub(crate) sessions: crate::store_api::Sessions,
}

fn record_key(account: &AccountId, cid: &Cid) -> Vec<u8> {
    let mut key = account.0.to_vec();
    key.extend_from_slice(&cid.to_bytes());
    key
}

fn encode_blocks(blocks: &[Cid]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(blocks.len() * 37);
    for cid in blocks {
        let cid = cid.to_bytes();
        bytes.push(cid.len() as u8);
        bytes.extend_from_slice(&cid);
    }
    bytes
}

fn decode_blocks(mut bytes: &[u8], into: &mut Vec<Cid>) -> Result<(), ContentError> {
    while let Some((&length, rest)) = bytes.split_first() {
        let corrupt = || DbError::Corrupt("an upload's block list is truncated".into());
        let cid = rest.get(..usize::from(length)).ok_or_else(corrupt)?;
        into.push(Cid::from_bytes(cid)?);
        bytes = &rest[usize::from(length)..];
    }
    Ok(())
}

impl Content {
    pub fn open(dir: &Path, policy: StorePolicy) -> Result<Content, ContentError> {
        let store = Store::open(dir.join("store"))?;
        let file = crate::db::file(dir, "uploads.redb")?;
        let uploads =
            Database::builder().create_with_backend(crate::db::LengthSynced(file)).map_err(db)?;
        let txn = uploads.begin_write().map_err(db)?;
        txn.open_table(UPLOADS).map_err(db)?;
        txn.open_table(UPLOAD_BLOCKS).map_err(db)?;
        txn.open_table(USAGE).map_err(db)?;
        txn.commit().map_err(db)?;
        Ok(Content { store, policy, uploads, sessions: Default::default() })
    }

    /// Bytes charged to `account`'s held uploads.
    pub fn usage(&self, account: &AccountId) -> Result<u64, ContentError> {
        let txn = self.uploads.begin_read().map_err(db)?;
        let usage = txn.open_table(USAGE).map_err(db)?;
        Ok(usage.get(account.0.as_slice()).map_err(db)?.map_or(0, |v| v.value()))
    }

    /// Whether `account` and the node have room for `size` more bytes of `cid` (an upload of
    /// a CID the account already holds replaces its charge): checked before the body is read,
    /// and again when the upload is recorded.
    pub fn admit(&self, account: &AccountId, cid: &Cid, size: u64) -> Result<(), Reject> {
        let txn = self.uploads.begin_read().map_err(unavailable)?;
        let uploads = txn.open_table(UPLOADS).map_err(unavailable)?;
        let key = record_key(account, cid);
        let held = uploads.get(key.as_slice()).map_err(unavailable)?.map_or(0, |v| v.value().0);
        let usage = txn.open_table(USAGE).map_err(unavailable)?;
        self.check_room(&usage, account, size, held)
    }

    fn check_room(
        &self,
        usage: &impl ReadableTable<&'static [u8], u64>,
        account: &AccountId,
        add: u64,
        release: u64,
    ) -> Result<(), Reject> {
        let get = |key: &[u8]| -> Result<u64, Reject> {
            let value = usage.get(key).map_err(unavailable)?;
            Ok(value.map_or(0, |v| v.value()).saturating_sub(release))
        };
        if get(account.0.as_slice())?.saturating_add(add) > self.policy.quota_bytes {
            return Err(Reject::StoreQuotaExceeded);
        }
        if get(TOTAL)?.saturating_add(add) > self.policy.capacity_bytes {
            return Err(Reject::StoreFull);
        }
        Ok(())
    }

    /// Records a finished upload of `cid` by `account`, charged `charged` bytes and held for
    /// the hold time from `now_ms`. The same account uploading the same CID again renews its
    /// record and is charged once.
    pub fn record(
        &self,
        account: &AccountId,
        cid: &Cid,
        charged: u64,
        blocks: &[Cid],
        now_ms: u64,
    ) -> Result<(), Reject> {
        let key = record_key(account, cid);
        let txn = self.uploads.begin_write().map_err(unavailable)?;
        {
            let mut uploads = txn.open_table(UPLOADS).map_err(unavailable)?;
            let mut usage = txn.open_table(USAGE).map_err(unavailable)?;
            let before = uploads.get(key.as_slice()).map_err(unavailable)?.map(|v| v.value());
            let (old_charge, old_until) = before.unwrap_or((0, 0));
            self.check_room(&usage, account, charged, old_charge)?;
            let until = old_until.max(now_ms.saturating_add(self.policy.hold_ms));
            uploads.insert(key.as_slice(), (charged, until)).map_err(unavailable)?;
            for usage_key in [account.0.as_slice(), TOTAL] {
                let held = usage.get(usage_key).map_err(unavailable)?.map_or(0, |v| v.value());
                let held = held.saturating_sub(old_charge).saturating_add(charged);
                usage.insert(usage_key, held).map_err(unavailable)?;
            }
            let mut table = txn.open_table(UPLOAD_BLOCKS).map_err(unavailable)?;
            table.insert(key.as_slice(), encode_blocks(blocks).as_slice()).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)
    }

    /// Renews every upload of a CID in `referenced` (those an open task names), drops the
    /// records held no longer, and removes the blocks no remaining record names.
    pub fn collect(
        &self,
        referenced: &HashSet<Cid>,
        now_ms: u64,
    ) -> Result<Collected, ContentError> {
        self.store.collect(|| {
            let txn = self.uploads.begin_write().map_err(db)?;
            let mut live = Vec::new();
            {
                let mut uploads = txn.open_table(UPLOADS).map_err(db)?;
                let mut blocks = txn.open_table(UPLOAD_BLOCKS).map_err(db)?;
                let mut usage = txn.open_table(USAGE).map_err(db)?;
                let mut renew = Vec::new();
                let mut drop = Vec::new();
                for entry in uploads.iter().map_err(db)? {
                    let (key, value) = entry.map_err(db)?;
                    let (key, (charged, until)) = (key.value().to_vec(), value.value());
                    let cid = Cid::from_bytes(&key[32..])?;
                    if referenced.contains(&cid) {
                        renew.push((key, charged, until));
                    } else if until <= now_ms {
                        drop.push((key, charged));
                    }
                }
                let renewed = now_ms.saturating_add(self.policy.hold_ms);
                for (key, charged, until) in renew {
                    uploads.insert(key.as_slice(), (charged, until.max(renewed))).map_err(db)?;
                }
                for (key, charged) in drop {
                    uploads.remove(key.as_slice()).map_err(db)?;
                    blocks.remove(key.as_slice()).map_err(db)?;
                    for usage_key in [&key[..32], TOTAL] {
                        let held = usage.get(usage_key).map_err(db)?.map_or(0, |v| v.value());
                        match held.saturating_sub(charged) {
                            0 => usage.remove(usage_key).map_err(db)?,
                            held => usage.insert(usage_key, held).map_err(db)?,
                        };
                    }
                }
                for entry in blocks.iter().map_err(db)? {
                    let (_, value) = entry.map_err(db)?;
                    decode_blocks(value.value(), &mut live)?;
                }
            }
            txn.commit().map_err(db)?;
            Ok::<_, ContentError>(live)
        })
    }
}

/// Tasks looked at per hold of the chain lock while gathering the CIDs open tasks name.
const TASKS_PER_LOCK: usize = 1_000;

/// The CIDs open tasks name: inputs (the bundle and those named by CID), revealed results,
/// verified results. Gathered a slice of tasks at a time, letting go of the chain lock in
/// between.
pub fn referenced(shared: &Shared) -> HashSet<Cid> {
    let mut found = HashSet::new();
    let mut after = None;
    loop {
        let chain = shared.chain();
        let tasks = &chain.state().tasks;
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let slice: Vec<_> =
            tasks.range((start, std::ops::Bound::Unbounded)).take(TASKS_PER_LOCK).collect();
        for (_, task) in slice.iter().filter(|(_, task)| !task.state.is_terminal()) {
            let reveals = task.leases.iter().filter_map(|lease| lease.reveal.as_ref());
            let results = reveals.map(|reveal| &reveal.result_cid);
            let verified = task.result.as_ref().map(|result| &result.result_cid);
            let inputs = std::iter::once(&task.terms.inputs_cid).chain(&task.terms.input_cids);
            for cid in results.chain(verified).chain(inputs) {
                if let Ok(cid) = cid.parse() {
                    found.insert(cid);
                }
            }
        }
        match slice.last() {
            Some((id, _)) if slice.len() == TASKS_PER_LOCK => after = Some(**id),
            _ => return found,
        }
    }
}

/// One collection: renews what open tasks name, drops what is held no longer.
pub fn collect(shared: &Shared) -> Result<Collected, ContentError> {
    let referenced = referenced(shared);
    shared.content.collect(&referenced, now_ms())
}

/// Collects every [`StorePolicy::collect_interval_ms`], for as long as the node runs.
pub async fn run_collector(shared: std::sync::Arc<Shared>) {
    let interval = std::time::Duration::from_millis(shared.content.policy.collect_interval_ms());
    loop {
        tokio::time::sleep(interval).await;
        let shared = shared.clone();
        match tokio::task::spawn_blocking(move || collect(&shared)).await {
            Ok(Ok(collected)) if collected.blocks > 0 => {
                tracing::info!("collected {} blocks, {} bytes", collected.blocks, collected.bytes)
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!("collecting the content store: {error}"),
            Err(error) => tracing::warn!("collecting the content store: {error}"),
        }
    }
}
