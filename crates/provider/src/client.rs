//! The node's HTTP API as a client sees it: used by the provider agent and the `aicpw` CLI.

use aicpw_types::codec::Encode;
use aicpw_types::upload::{UploadAuth, UPLOAD_HEADER, UPLOAD_OFFSET_HEADER};
use aicpw_types::{AccountId, Amount, Keypair, Reject, SignedTx, Tx, TxBody};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::time::Duration;

/// Largest response body read into memory (content downloads stream to a writer instead).
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest a request may take, except event streams.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries per transaction when its nonce was taken by another sender with the same key.
pub const SEND_ATTEMPTS_MAX: u64 = 5;
/// The fee the client pays per transaction.
pub const FEE: Amount = Amount(10);

/// Requests an upload makes without progress (connections broken, parts refused) before it
/// gives up.
pub const UPLOAD_TRIES_MAX: u64 = 8;
/// Longest a streamed transfer may wait for the other side to read or write anything.
pub const STREAM_STALL_MAX: Duration = Duration::from_secs(120);

/// Why one part of an upload did not finish it.
enum UploadFailure {
    /// The node holds the content up to this offset: the rest may follow from there.
    At(u64),
    /// The connection broke: ask the node where it stands.
    Broken(ClientError),
    /// The node refused the upload.
    Refused(ClientError),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("rejected: {} {}: {}", .0.code(), .0.name(), .0.message())]
    Rejected(Reject),
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

impl ClientError {
    pub fn reject(&self) -> Option<Reject> {
        match self {
            ClientError::Rejected(reject) => Some(*reject),
            _ => None,
        }
    }
}

/// Which events [`Client::follow_events`] follows.
#[derive(Clone, Copy, Debug)]
pub enum EventsAbout {
    All,
    Task(u64),
    Node(u64),
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// For transfers of any size: no deadline for the whole, only for each stall.
    streams: ureq::Agent,
    /// The next nonce per signer this client will use, so it can send several transactions
    /// without waiting for each block.
    nonces: Mutex<std::collections::BTreeMap<AccountId, u64>>,
    chain_id: Mutex<Option<String>>,
    /// One transaction at a time per client: the nonce it takes is the one it submits.
    sending: Mutex<()>,
}

fn error_from(url: &str, error: ureq::Error) -> ClientError {
    match error {
        ureq::Error::Status(_, response) => {
            let body: Value = response.into_json().unwrap_or_default();
            let code = body["error"]["code"].as_u64().and_then(|c| u16::try_from(c).ok());
            match code.and_then(Reject::from_code) {
                Some(reject) => ClientError::Rejected(reject),
                None => ClientError::Protocol(body.to_string()),
            }
        }
        ureq::Error::Transport(t) => {
            ClientError::Unreachable { url: url.to_string(), message: t.to_string() }
        }
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).build();
        let streams = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(STREAM_STALL_MAX)
            .timeout_write(STREAM_STALL_MAX)
            .build();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
            streams,
            nonces: Mutex::new(Default::default()),
            chain_id: Mutex::new(None),
            sending: Mutex::new(()),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn read_json(response: ureq::Response) -> Result<Value, ClientError> {
        let mut text = String::new();
        response
            .into_reader()
            .take(RESPONSE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .call()
            .map_err(|e| error_from(&url, e))?;
        Self::read_json(response)
    }

    pub fn chain_id(&self) -> Result<String, ClientError> {
        let mut cached = self.chain_id.lock().expect("no panics while holding the lock");
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        let status = self.get("/v1/status")?;
        let id = status["chain_id"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("status has no chain_id".into()))?
            .to_string();
        *cached = Some(id.clone());
        Ok(id)
    }

    pub fn submit(&self, tx: &SignedTx, wait: bool) -> Result<Value, ClientError> {
        let url = format!("{}/v1/tx?wait={wait}", self.base);
        let response = self
            .agent
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .set("content-type", "application/octet-stream")
            .send_bytes(&tx.to_bytes())
            .map_err(|e| error_from(&url, e))?;
        Self::read_json(response)
    }

    fn next_nonce(&self, who: AccountId) -> Result<u64, ClientError> {
        if let Some(nonce) = self.nonces.lock().expect("no panics while locked").get(&who) {
            return Ok(*nonce);
        }
        let account = self.get(&format!("/v1/accounts/{who}"))?;
        account["next_nonce"]
            .as_u64()
            .ok_or_else(|| ClientError::Protocol("account has no nonce".into()))
    }

    /// Signs `body` with the next nonce and submits it; with `wait`, returns once it is committed.
    /// A nonce conflict (another client, or another process, used the key) refreshes the nonce
    /// from the node and retries, a few times.
    pub fn send(&self, key: &Keypair, body: TxBody, wait: bool) -> Result<Value, ClientError> {
        let who = key.account();
        let chain_id = self.chain_id()?;
        let _one_at_a_time = self.sending.lock().expect("no panics while sending");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let nonce = self.next_nonce(who)?;
            let tx =
                Tx { chain_id: chain_id.clone(), signer: who, nonce, fee: FEE, body: body.clone() };
            let result = self.submit(&key.sign(tx), wait);
            let mut nonces = self.nonces.lock().expect("no panics while locked");
            match &result {
                Ok(_) => {
                    nonces.insert(who, nonce + 1);
                }
                Err(e) => {
                    // Whether the node took it is unknown after some errors: ask it next time.
                    nonces.remove(&who);
                    let stale = matches!(
                        e.reject(),
                        Some(
                            Reject::NonceReplayed
                                | Reject::NonceGap
                                | Reject::NoncePending
                                | Reject::DuplicateTransaction
                        )
                    );
                    if stale && attempt < SEND_ATTEMPTS_MAX {
                        drop(nonces);
                        std::thread::sleep(Duration::from_millis(20 * attempt));
                        continue;
                    }
                }
            }
            return result;
        }
    }

    /// PUTs raw bytes to `path` and returns the JSON answer.
    pub fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .put(&url)
            .timeout(REQUEST_TIMEOUT)
            .send_bytes(bytes)
            .map_err(|e| error_from(&url, e))?;
        Self::read_json(response)
    }

    /// GETs raw bytes from `path`, at most a bundle's size.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .call()
            .map_err(|e| error_from(&url, e))?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(aicpw_types::bundle::BUNDLE_BYTES_MAX + 1024 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(bytes)
    }

    /// Uploads to the content store, signed by `key`, who is charged for it: `route` is `/store`
    /// (one blob, added as a UnixFS file) or `/store/car` (a CAR file); `cid` is the content's CID
    /// (the CAR's root), computed beforehand. Streams `length` bytes from `body` (so a caller can
    /// show progress) and, when a connection breaks, resumes from the offset the node holds,
    /// seeking `body` there; returns the CID the node stored.
    pub fn upload(
        &self,
        key: &Keypair,
        route: &str,
        cid: &str,
        mut body: impl Read + Seek,
        length: u64,
    ) -> Result<String, ClientError> {
        let mut offset = 0;
        let mut tries = 0;
        loop {
            let sent = body
                .seek(SeekFrom::Start(offset))
                .map_err(|e| {
                    UploadFailure::Refused(ClientError::Protocol(format!(
                        "cannot read the content: {e}"
                    )))
                })
                .and_then(|_| {
                    let rest = (&mut body).take(length - offset);
                    self.upload_part(key, route, cid, length, offset, rest, length - offset)
                });
            let before = offset;
            match sent {
                Ok(stored) => return Ok(stored),
                Err(UploadFailure::At(at)) => offset = at,
                Err(UploadFailure::Broken(error)) => {
                    tries += 1;
                    if tries >= UPLOAD_TRIES_MAX {
                        return Err(error);
                    }
                    std::thread::sleep(Duration::from_millis(200 * tries));
                    // Asks where the node stands: an empty part is answered with its offset.
                    match self.upload_part(key, route, cid, length, 0, std::io::empty(), 0) {
                        Err(UploadFailure::At(at)) => offset = at,
                        Err(UploadFailure::Broken(_)) => continue,
                        Err(UploadFailure::Refused(error)) => return Err(error),
                        Ok(stored) => return Ok(stored),
                    }
                }
                Err(UploadFailure::Refused(error)) => return Err(error),
            }
            if offset <= before {
                tries += 1;
                if tries >= UPLOAD_TRIES_MAX {
                    return Err(ClientError::Protocol(format!(
                        "the upload makes no progress: the node holds {offset} of {length} bytes"
                    )));
                }
            }
        }
    }

    /// Sends `part_length` bytes of `part` as the content from `offset` on.
    #[allow(clippy::too_many_arguments)]
    fn upload_part(
        &self,
        key: &Keypair,
        route: &str,
        cid: &str,
        length: u64,
        offset: u64,
        part: impl Read,
        part_length: u64,
    ) -> Result<String, UploadFailure> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let chain_id = self.chain_id().map_err(UploadFailure::Refused)?;
        let auth = UploadAuth::sign(key, &chain_id, route, cid, length, now_ms);
        let url = format!("{}{route}?expect={cid}", self.base);
        let response = self
            .streams
            .put(&url)
            .set(UPLOAD_HEADER, &auth.to_header())
            .set(UPLOAD_OFFSET_HEADER, &offset.to_string())
            .set("content-length", &part_length.to_string())
            .send(part);
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(409, response)) => {
                let body: Value = response.into_json().unwrap_or_default();
                return match body["offset"].as_u64() {
                    Some(at) => Err(UploadFailure::At(at)),
                    None => Err(UploadFailure::Refused(ClientError::Protocol(body.to_string()))),
                };
            }
            Err(error @ ureq::Error::Status(..)) => {
                return Err(UploadFailure::Refused(error_from(&url, error)))
            }
            Err(error) => return Err(UploadFailure::Broken(error_from(&url, error))),
        };
        let value = Self::read_json(response).map_err(UploadFailure::Broken)?;
        value["cid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| UploadFailure::Refused(ClientError::Protocol(value.to_string())))
    }

    /// Streams the body of `GET path` to the caller: its length when the node says it, and a
    /// reader that fails if the node cuts the body short.
    pub fn get_stream(&self, path: &str) -> Result<(Option<u64>, impl Read), ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.streams.get(&url).call().map_err(|e| error_from(&url, e))?;
        let length = response.header("content-length").and_then(|v| v.parse().ok());
        Ok((length, response.into_reader()))
    }

    /// Stores one blob (CIDv1, raw leaves), signed by `key`, and returns its CID.
    pub fn put_store(&self, key: &Keypair, bytes: &[u8]) -> Result<String, ClientError> {
        let cid = aicpw_store::cid_of_reader(bytes, &aicpw_store::AddOptions::cid_v1())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.upload(
            key,
            "/store",
            &cid.to_string(),
            std::io::Cursor::new(bytes),
            bytes.len() as u64,
        )
    }

    pub fn get_store(&self, cid: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!("/store/{cid}"))
    }

    /// Follows the node's event stream (all of it, or the events naming one task or one node),
    /// calling `on_event` for each event (and with `Value::Null` for each keep-alive) until it
    /// returns `false`.
    pub fn follow_events(
        &self,
        about: EventsAbout,
        mut on_event: impl FnMut(&Value) -> bool,
    ) -> Result<(), ClientError> {
        let url = match about {
            EventsAbout::All => format!("{}/v1/events", self.base),
            EventsAbout::Task(task) => format!("{}/v1/events?task={task}", self.base),
            EventsAbout::Node(node) => format!("{}/v1/events?node={node}", self.base),
        };
        let response = self.agent.get(&url).call().map_err(|e| error_from(&url, e))?;
        let reader = BufReader::new(response.into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| ClientError::Protocol(e.to_string()))?;
            // Keep-alive comments arrive as `Value::Null`, so a caller can re-check state often.
            let event = match line.strip_prefix("data:") {
                Some(data) => serde_json::from_str::<Value>(data.trim()).unwrap_or_default(),
                None if line.starts_with(':') => Value::Null,
                None => continue,
            };
            if !on_event(&event) {
                return Ok(());
            }
        }
        Err(ClientError::Protocol("the event stream ended".into()))
    }
}
