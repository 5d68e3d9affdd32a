//! The content store's routes: uploads signed by an account and charged to it, reads streamed
//! from disk block by block, so a response costs the node the same memory whatever its size.
//!
//! An upload streams into the store as it arrives and may be resumed: a connection that breaks
//! leaves it waiting [`crate::StorePolicy::upload_idle_ms`] for the same account to send the rest
//! of the same content (same route, CID and signed size) from the offset the node names. Its
//! blocks become part of the store only once all of it arrived and has the signed CID.

use crate::api::ApiError;
use crate::server::PacedBody;
use crate::service::{now_ms, Shared};
use aicpw_store::{AddOptions, Cid, EntryKind, Store, StoreError, Upload, Version};
use aicpw_types::upload::{UploadAuth, UPLOAD_HEADER, UPLOAD_OFFSET_HEADER};
use aicpw_types::{AccountId, Reject};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes per chunk of a streamed response, and chunks buffered ahead of the client: what one
/// download holds in memory besides one block per level of its DAG.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;
const STREAM_CHUNKS_BUFFERED: usize = 4;
/// Bytes of a refused upload's body read and dropped before the answer, so that a client still
/// sending reads the refusal rather than a reset connection.
const REFUSED_BODY_DRAIN_MAX: u64 = 1024 * 1024;

type SharedState = Arc<Shared>;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/store", put(put_blob).layer(DefaultBodyLimit::disable()))
        .route("/store/car", put(put_car).layer(DefaultBodyLimit::disable()))
        .route("/store/{cid}", get(get_file))
        .route("/store/{cid}/car", get(get_car))
}

#[derive(Deserialize)]
struct UploadQuery {
    /// The CID the content must have (for a CAR, one of its roots): the one the uploader signed.
    expect: Option<String>,
}

/// Checks an upload's signature, freshness, account and room before its body is read.
fn authorize(
    s: &Shared,
    headers: &HeaderMap,
    route: &str,
    expect: Option<&str>,
) -> Result<(UploadAuth, Cid), ApiError> {
    let auth = headers.get(UPLOAD_HEADER).ok_or(Reject::UploadUnsigned)?;
    let auth = auth.to_str().ok().and_then(UploadAuth::from_header).ok_or(Reject::BadRequest)?;
    let expect = expect.ok_or(Reject::UploadUnsigned)?;
    let cid: Cid = expect.parse().map_err(|_| Reject::BadRequest)?;
    let chain_id = s.chain().genesis().chain_id.clone();
    if !auth.verify(&chain_id, route, expect) {
        return Err(Reject::UploadSignatureInvalid.into());
    }
    if !auth.is_fresh(now_ms()) {
        return Err(Reject::UploadStale.into());
    }
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    if auth.size > aicpw_store::FILE_SIZE_MAX
        || length.is_some_and(|length: u64| length > auth.size)
    {
        return Err(Reject::PayloadTooLarge.into());
    }
    let holds = {
        let chain = s.chain();
        let account = chain.state().accounts.get(&auth.account);
        account.map_or(0, |a| a.balance.0.saturating_add(a.staked.0))
    };
    if holds < s.content.policy.balance_min.0 {
        return Err(Reject::UploaderUnfunded.into());
    }
    s.content.admit(&auth.account, &cid, auth.size)?;
    Ok((auth, cid))
}

/// Answers a refused upload once its body (up to [`REFUSED_BODY_DRAIN_MAX`]) is read.
async fn refuse(body: Body, error: Refusal) -> Response {
    let mut rest = PacedBody::new(body, REFUSED_BODY_DRAIN_MAX, Reject::PayloadTooLarge);
    while let Some(Ok(_)) = rest.next().await {}
    error.into_response()
}

/// Unfinished uploads the node keeps at once, and per account.
pub const UPLOAD_SESSIONS_MAX: usize = 64;
pub const UPLOAD_SESSIONS_PER_ACCOUNT: usize = 4;
/// How long a request waits for the one feeding the same upload (whose connection may have
/// broken unnoticed yet) to let go of it.
const UPLOAD_TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// A refusal; one that names where the upload stands carries the offset to resume at.
enum Refusal {
    Plain(Reject),
    At(Reject, u64),
}

impl From<Reject> for Refusal {
    fn from(reject: Reject) -> Self {
        Refusal::Plain(reject)
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal::Plain(error.0)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Plain(reject) => ApiError(reject).into_response(),
            Refusal::At(reject, offset) => {
                let body = Json(json!({ "error": reject, "offset": offset }));
                (StatusCode::CONFLICT, body).into_response()
            }
        }
    }
}

/// Who uploads what: a resumed request must match all of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SessionKey {
    account: AccountId,
    route: &'static str,
    cid: Cid,
    size: u64,
}

/// Unfinished uploads by what they upload.
pub(crate) type Sessions = StdMutex<HashMap<SessionKey, Arc<Session>>>;

/// One unfinished upload: the channel into its importing thread, held by one request at a time.
pub(crate) struct Session {
    feed: tokio::sync::Mutex<Feed>,
}

struct Feed {
    /// `None` once the upload finished or was dropped.
    sender: Option<mpsc::Sender<io::Result<Bytes>>>,
    work: Option<tokio::task::JoinHandle<Result<(), Reject>>>,
    /// Bytes of the content handed to the importer so far.
    offset: u64,
    /// Counts the requests that fed it, so an idle timer knows whether one came since.
    attached: u64,
}

/// What the importing thread does with the bytes: build the DAG, check it has `cid`, commit its
/// blocks, and say how many bytes to charge for it.
type Import = Box<dyn FnOnce(&mut Upload<'_>, &mut ChannelReader) -> Result<u64, Reject> + Send>;

/// A store failure while importing, as the uploader sees it.
fn import_reject(error: StoreError) -> Reject {
    match error {
        StoreError::Io { .. } => Reject::Unavailable,
        StoreError::ReadInput(_) => Reject::BadRequest,
        StoreError::FileTooLarge { .. } => Reject::PayloadTooLarge,
        _ => Reject::UploadMalformed,
    }
}

/// `PUT /store?expect=CID`: one blob, added as a UnixFS file with that CID's version.
async fn put_blob(
    State(s): State<SharedState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (auth, cid) = match authorize(&s, &headers, "/store", q.expect.as_deref()) {
        Ok(authorized) => authorized,
        Err(error) => return refuse(body, error.into()).await,
    };
    let options = match cid.version() {
        Version::V0 => AddOptions::default(),
        Version::V1 => AddOptions::cid_v1(),
    };
    let store = s.content.store.clone();
    let import: Import = Box::new(move |upload, reader| {
        let added = upload.add_reader(reader, &options).map_err(import_reject)?;
        if added != cid {
            return Err(Reject::ContentMismatch);
        }
        upload.commit().map_err(import_reject)?;
        // Built here from the bytes sent, so the sizes its root claims are true.
        Ok(store.stat(&cid).map_err(import_reject)?.cumulative_size)
    });
    receive(s, "/store", auth, cid, &headers, body, import).await
}

/// `PUT /store/car?expect=CID`: a CAR file (every block checked against its CID) with that root.
async fn put_car(
    State(s): State<SharedState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (auth, cid) = match authorize(&s, &headers, "/store/car", q.expect.as_deref()) {
        Ok(authorized) => authorized,
        Err(error) => return refuse(body, error.into()).await,
    };
    let store = s.content.store.clone();
    let import: Import = Box::new(move |upload, reader| {
        let roots = upload.import_car(reader).map_err(import_reject)?;
        if !roots.contains(&cid) {
            return Err(Reject::ContentMismatch);
        }
        upload.commit().map_err(import_reject)?;
        // The sender built this DAG: charge what it expands to when read, not what it claims.
        store.expanded_size(&cid).map_err(import_reject)
    });
    receive(s, "/store/car", auth, cid, &headers, body, import).await
}

/// Feeds the body into the upload it belongs to (a new one at offset 0, or the unfinished one it
/// resumes); answers the CID once all the signed bytes arrived, were imported and recorded.
async fn receive(
    s: SharedState,
    route: &'static str,
    auth: UploadAuth,
    cid: Cid,
    headers: &HeaderMap,
    body: Body,
    import: Import,
) -> Response {
    let offset = match headers.get(UPLOAD_OFFSET_HEADER) {
        None => Some(0),
        Some(value) => value.to_str().ok().and_then(|text| text.parse::<u64>().ok()),
    };
    let Some(offset) = offset.filter(|offset| *offset <= auth.size) else {
        return refuse(body, Reject::BadRequest.into()).await;
    };
    let key = SessionKey { account: auth.account, route, cid, size: auth.size };
    let session = match session_for(&s, &key, offset, import) {
        Ok(session) => session,
        Err(refusal) => return refuse(body, refusal).await,
    };
    let Ok(mut feed) = tokio::time::timeout(UPLOAD_TAKEOVER_WAIT, session.feed.lock()).await else {
        return refuse(body, Reject::UploadBusy.into()).await;
    };
    let Some(sender) = feed.sender.clone() else {
        // Finished or dropped while this request waited for it.
        return refuse(body, Reject::UploadBusy.into()).await;
    };
    if feed.offset != offset {
        let at = feed.offset;
        drop(feed);
        return refuse(body, Refusal::At(Reject::UploadOffsetMismatch, at)).await;
    }
    feed.attached += 1;
    let mut paced = PacedBody::new(body, key.size - offset, Reject::PayloadTooLarge);
    let ended = loop {
        match paced.next().await {
            None if feed.offset == key.size => break Ended::Whole,
            None => break Ended::Short,
            Some(Ok(chunk)) => {
                let length = chunk.len() as u64;
                if sender.send(Ok(chunk)).await.is_err() {
                    // The importer stopped early: its answer says why.
                    break Ended::Whole;
                }
                feed.offset += length;
            }
            // What a connection that broke looks like from here.
            Some(Err(Reject::BadRequest)) => break Ended::Short,
            Some(Err(reject)) => break Ended::Refused(reject),
        }
    };
    drop(sender);
    match ended {
        Ended::Whole => {
            let work = finish(&s, &key, &session, &mut feed);
            drop(feed);
            let recorded = match work {
                Some(work) => work.await.unwrap_or(Err(Reject::Unavailable)),
                None => Err(Reject::Unavailable),
            };
            match recorded {
                Ok(()) => Json(json!({ "cid": cid.to_string() })).into_response(),
                Err(reject) => ApiError(reject).into_response(),
            }
        }
        // The rest may follow, from where this request left off.
        Ended::Short => {
            let at = feed.offset;
            let attached = feed.attached;
            drop(feed);
            expire_when_idle(s, key, session, attached);
            Refusal::At(Reject::UploadIncomplete, at).into_response()
        }
        Ended::Refused(reject) => {
            if let Some(sender) = feed.sender.as_ref() {
                // Tells the importer the input failed, so it stops at once.
                let _ = sender.send(Err(io::Error::other(reject))).await;
            }
            let work = finish(&s, &key, &session, &mut feed);
            drop(feed);
            drop(work);
            ApiError(reject).into_response()
        }
    }
}

/// How a request's body ended.
enum Ended {
    /// All the signed bytes arrived, or the importer stopped taking them.
    Whole,
    /// The body stopped short: the connection broke, or the uploader sent less.
    Short,
    /// The body broke a rule: the upload is dropped.
    Refused(Reject),
}

/// The unfinished upload `key` names, or a new one when `offset` is 0 and there is room.
fn session_for(
    s: &SharedState,
    key: &SessionKey,
    offset: u64,
    import: Import,
) -> Result<Arc<Session>, Refusal> {
    let mut sessions = s.content.sessions.lock().expect("no panics while holding the sessions");
    if let Some(session) = sessions.get(key) {
        return Ok(session.clone());
    }
    if offset != 0 {
        return Err(Refusal::At(Reject::UploadOffsetMismatch, 0));
    }
    let of_account = sessions.keys().filter(|other| other.account == key.account).count();
    if sessions.len() >= UPLOAD_SESSIONS_MAX || of_account >= UPLOAD_SESSIONS_PER_ACCOUNT {
        return Err(Reject::UploadSessionsFull.into());
    }
    let (sender, receiver) = mpsc::channel(STREAM_CHUNKS_BUFFERED);
    let work = {
        let s = s.clone();
        let (account, cid) = (key.account, key.cid);
        tokio::task::spawn_blocking(move || {
            let content = &s.content;
            let mut upload = content.store.upload();
            let mut reader = ChannelReader { receiver, chunk: Bytes::new(), received: 0 };
            let expanded = import(&mut upload, &mut reader)?;
            let charged = expanded.max(reader.received);
            // The record is written before the upload lets go of its blocks.
            content.record(&account, &cid, charged, upload.blocks(), now_ms())
        })
    };
    let feed = Feed { sender: Some(sender), work: Some(work), offset: 0, attached: 0 };
    let session = Arc::new(Session { feed: tokio::sync::Mutex::new(feed) });
    sessions.insert(key.clone(), session.clone());
    Ok(session)
}

/// Ends an upload: no request may feed it any more; its importer sees the end of its input
/// and stops (with an error if the content is short). Returns the importer, if not taken yet.
fn finish(
    s: &Shared,
    key: &SessionKey,
    session: &Arc<Session>,
    feed: &mut Feed,
) -> Option<tokio::task::JoinHandle<Result<(), Reject>>> {
    feed.sender = None;
    let mut sessions = s.content.sessions.lock().expect("no panics while holding the sessions");
    if sessions.get(key).is_some_and(|current| Arc::ptr_eq(current, session)) {
        sessions.remove(key);
    }
    feed.work.take()
}

/// Drops the upload if no request fed it for the idle time after the one numbered `attached`.
fn expire_when_idle(s: SharedState, key: SessionKey, session: Arc<Session>, attached: u64) {
    let idle = Duration::from_millis(s.content.policy.upload_idle_ms);
    tokio::spawn(async move {
        tokio::time::sleep(idle).await;
        let mut feed = session.feed.lock().await;
        if feed.attached == attached && feed.sender.is_some() {
            if let Some(sender) = feed.sender.as_ref() {
                // Tells the importer the input failed, so a partial blob is not even hashed.
                let _ = sender.send(Err(io::Error::other("the upload expired"))).await;
            }
            drop(finish(&s, &key, &session, &mut feed));
        }
    });
}

/// The body's chunks as a blocking reader, for the store's importers.
pub(crate) struct ChannelReader {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
    received: u64,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        self.received += n as u64;
        Ok(n)
    }
}

fn parse_cid(text: &str) -> Result<Cid, ApiError> {
    text.parse().map_err(|_| ApiError(Reject::BadRequest))
}

/// `GET /store/{cid}`: the file's bytes, streamed; the length is the one its root claims, and a
/// DAG that breaks that claim ends the response early.
async fn get_file(
    State(s): State<SharedState>,
    Path(cid): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    let store = s.content.store.clone();
    let stat = tokio::task::spawn_blocking(move || store.stat(&cid))
        .await
        .map_err(|_| Reject::Unavailable)?
        .map_err(|_| Reject::NotFound)?;
    if stat.kind != EntryKind::File {
        return Err(Reject::NotAFile.into());
    }
    let body = stream(&s, move |store, writer| store.read_to_writer(&cid, writer).map(drop));
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, stat.size.to_string()),
    ];
    Ok((headers, body).into_response())
}

/// `GET /store/{cid}/car`: the DAG under `cid` as a CAR file, streamed, for clients that check
/// every block themselves.
async fn get_car(
    State(s): State<SharedState>,
    Path(cid): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    let store = s.content.store.clone();
    let present = tokio::task::spawn_blocking(move || store.has(&cid))
        .await
        .map_err(|_| Reject::Unavailable)?
        .map_err(|_| Reject::Unavailable)?;
    if !present {
        return Err(Reject::NotFound.into());
    }
    let body = stream(&s, move |store, writer| store.export_car(&cid, writer).map(drop));
    Ok(([(header::CONTENT_TYPE, "application/vnd.ipld.car")], body).into_response())
}

/// A response body that `write` fills on a blocking thread, at most a few chunks ahead of the
/// client; a client that goes away stops the writer. A failure mid-way ends the body with an
/// error, so the client sees a cut response, never a short one passing for whole.
fn stream(
    s: &SharedState,
    write: impl FnOnce(&Store, &mut ChannelWriter) -> Result<(), StoreError> + Send + 'static,
) -> Body {
    let (sender, receiver) = mpsc::channel(STREAM_CHUNKS_BUFFERED);
    let store = s.content.store.clone();
    let shared = s.clone();
    tokio::task::spawn_blocking(move || {
        let chunk = Vec::with_capacity(STREAM_CHUNK_BYTES);
        let mut writer = ChannelWriter { sender, chunk, shared };
        let written = write(&store, &mut writer)
            .and_then(|()| writer.flush().map_err(StoreError::WriteOutput));
        if let Err(error) = written {
            // The client may be gone already; then nobody needs to hear of it.
            let _ = writer.sender.blocking_send(Err(io::Error::other(error.to_string())));
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

/// Sends what is written as chunks of the response body, blocking while the client is behind,
/// and counts each chunk handed on as served (`aicpw_store_served_bytes_total`).
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    chunk: Vec<u8>,
    shared: SharedState,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(STREAM_CHUNK_BYTES - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == STREAM_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(STREAM_CHUNK_BYTES));
        let length = chunk.len() as u64;
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.shared.metrics.store_served(length);
        Ok(())
    }
}
