//! The content store's routes: uploads signed by an account and charged to it, reads streamed
//! from disk block by block, so a response costs the node the same memory whatever its size.

use crate::api::{ApiError, ApiResult};
use crate::server::PacedBody;
use crate::service::{now_ms, Shared};
use aicpw_store::{AddOptions, Cid, EntryKind, Store, StoreError, Upload, Version};
use aicpw_types::upload::{UploadAuth, UPLOAD_HEADER};
use aicpw_types::Reject;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::io::{self, Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Largest upload to the content store through the API.
pub const STORE_UPLOAD_BYTES_MAX: u64 = 256 * 1024 * 1024;
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
    if auth.size > STORE_UPLOAD_BYTES_MAX || length.is_some_and(|length: u64| length > auth.size) {
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
async fn refuse(body: Body, error: ApiError) -> ApiError {
    let mut rest = PacedBody::new(body, REFUSED_BODY_DRAIN_MAX, Reject::PayloadTooLarge);
    while let Some(Ok(_)) = rest.next().await {}
    error
}

/// `PUT /store?expect=CID`: one blob, added as a UnixFS file with that CID's version.
async fn put_blob(
    State(s): State<SharedState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (auth, cid) = match authorize(&s, &headers, "/store", q.expect.as_deref()) {
        Ok(authorized) => authorized,
        Err(error) => return Err(refuse(body, error).await),
    };
    let options = match cid.version() {
        Version::V0 => AddOptions::default(),
        Version::V1 => AddOptions::cid_v1(),
    };
    receive(s, auth, cid, body, move |upload, reader| {
        let added = upload.add_reader(reader, &options)?;
        Ok(vec![added])
    })
    .await
}

/// `PUT /store/car?expect=CID`: a CAR file (every block checked against its CID) with that root.
async fn put_car(
    State(s): State<SharedState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (auth, cid) = match authorize(&s, &headers, "/store/car", q.expect.as_deref()) {
        Ok(authorized) => authorized,
        Err(error) => return Err(refuse(body, error).await),
    };
    receive(s, auth, cid, body, |upload, reader| upload.import_car(reader)).await
}

/// Streams the body into `import` on a blocking thread, then charges the upload to its signer:
/// the larger of the bytes sent and what the DAG under `cid` expands to when read, so a small
/// upload that reads back as a large file is charged as the large file.
async fn receive(
    s: SharedState,
    auth: UploadAuth,
    cid: Cid,
    body: Body,
    import: impl FnOnce(&mut Upload<'_>, &mut ChannelReader) -> Result<Vec<Cid>, StoreError>
        + Send
        + 'static,
) -> ApiResult {
    let (sender, receiver) = mpsc::channel(STREAM_CHUNKS_BUFFERED);
    let work = {
        let s = s.clone();
        let account = auth.account;
        tokio::task::spawn_blocking(move || {
            let content = &s.content;
            let mut upload = content.store.upload();
            let mut reader = ChannelReader { receiver, chunk: Bytes::new(), received: 0 };
            let roots = import(&mut upload, &mut reader).map_err(|_| Reject::ContentMismatch)?;
            if !roots.contains(&cid) {
                return Err(Reject::ContentMismatch);
            }
            let expanded =
                content.store.expanded_size(&cid).map_err(|_| Reject::ContentMismatch)?;
            let charged = expanded.max(reader.received);
            // The record is written before the upload lets go of its blocks.
            content.record(&account, &cid, charged, upload.blocks(), now_ms())
        })
    };
    let mut paced = PacedBody::new(body, auth.size, Reject::PayloadTooLarge);
    let mut refused = None;
    while let Some(chunk) = paced.next().await {
        let chunk = chunk.map_err(|reject| {
            refused = Some(reject);
            io::Error::other(reject)
        });
        let failed = chunk.is_err();
        if sender.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(sender);
    let recorded = work.await.map_err(|_| Reject::Unavailable)?;
    if let Some(reject) = refused {
        return Err(reject.into());
    }
    recorded?;
    Ok(Json(json!({ "cid": cid.to_string() })))
}

/// The body's chunks as a blocking reader, for the store's importers.
struct ChannelReader {
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
    s: &Shared,
    write: impl FnOnce(&Store, &mut ChannelWriter) -> Result<(), StoreError> + Send + 'static,
) -> Body {
    let (sender, receiver) = mpsc::channel(STREAM_CHUNKS_BUFFERED);
    let store = s.content.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter { sender, chunk: Vec::with_capacity(STREAM_CHUNK_BYTES) };
        let written = write(&store, &mut writer)
            .and_then(|()| writer.flush().map_err(StoreError::WriteOutput));
        if let Err(error) = written {
            // The client may be gone already; then nobody needs to hear of it.
            let _ = writer.sender.blocking_send(Err(io::Error::other(error.to_string())));
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

/// Sends what is written as chunks of the response body, blocking while the client is behind.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    chunk: Vec<u8>,
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
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}
