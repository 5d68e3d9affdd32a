//! The HTTP JSON API: submit signed transactions, query state, stream events, store content.

use crate::server::PacedBody;
use crate::service::Shared;
use aicpw_ledger::block::task_request;
use aicpw_store::Cid;
use aicpw_types::codec::Decode;
use aicpw_types::tx::TX_BYTES_MAX;
use aicpw_types::{
    AccountId, Amount, ChallengeId, Hash32, NodeId, Reject, SignedTx, TaskId, Tx, TxBody,
};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use utoipa::ToSchema;

/// Largest JSON-encoded transaction accepted (its binary form must still fit `TX_BYTES_MAX`).
pub const TX_JSON_BYTES_MAX: usize = 4 * TX_BYTES_MAX;
/// Most items a list query returns, and most entries one list query looks at under the chain
/// lock: a filtered list that found fewer in that many answers with what it found and a cursor.
pub const LIST_ITEMS_MAX: usize = 1_000;
/// The response header naming the cursor of a list's next page; absent on the last page.
pub const NEXT_CURSOR_HEADER: &str = "aicpw-next-cursor";

type SharedState = Arc<Shared>;

/// An error as the API shows it: the stable reject code, its name and message.
pub struct ApiError(pub Reject);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            Reject::NotFound
            | Reject::UnknownAccount
            | Reject::UnknownNode
            | Reject::UnknownTask
            | Reject::UnknownChallenge => StatusCode::NOT_FOUND,
            Reject::Oversize | Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::MempoolFull | Reject::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reject::BadRequest | Reject::Malformed => StatusCode::BAD_REQUEST,
            Reject::UploadUnsigned | Reject::UploadSignatureInvalid | Reject::UploadStale => {
                StatusCode::UNAUTHORIZED
            }
            Reject::UploaderUnfunded | Reject::StoreQuotaExceeded => StatusCode::FORBIDDEN,
            Reject::StoreFull => StatusCode::INSUFFICIENT_STORAGE,
            Reject::BodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        (status, Json(ErrorBody { error: RejectView::from(self.0) })).into_response()
    }
}

/// What every error answers: `{"error": {code, name, message}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: RejectView,
}

/// A rejection: its stable code (`types::reject`), name and message.
#[derive(Serialize, ToSchema)]
pub struct RejectView {
    pub code: u16,
    pub name: String,
    pub message: String,
}

impl From<Reject> for RejectView {
    fn from(reject: Reject) -> Self {
        RejectView {
            code: reject.code(),
            name: reject.name().into(),
            message: reject.message().into(),
        }
    }
}

/// `GET /v1/status`.
#[derive(Serialize, ToSchema)]
pub struct StatusView {
    pub chain_id: String,
    pub height: u64,
    /// Hex; null before the first block.
    #[schema(value_type = Option<String>)]
    pub block_hash: Option<Hash32>,
    #[schema(value_type = Option<String>)]
    pub state_root: Option<Hash32>,
    pub time_ms: Option<u64>,
    /// Base units, as a decimal string.
    #[schema(value_type = String)]
    pub supply: Amount,
    #[schema(value_type = String)]
    pub burned: Amount,
    pub accounts: u64,
    pub nodes: u64,
    pub tasks: u64,
    pub queued: u64,
    pub mempool: u64,
}

/// `GET /v1/accounts/{address}`.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    #[schema(value_type = String)]
    pub address: AccountId,
    #[schema(value_type = String)]
    pub balance: Amount,
    pub nonce: u64,
    /// The nonce to sign next: after the committed ones and this signer's waiting run.
    pub next_nonce: u64,
    #[schema(value_type = String)]
    pub staked: Amount,
    #[schema(value_type = Vec<Object>)]
    pub unbonding: Vec<aicpw_ledger::state::Unbonding>,
    pub nodes: u32,
    pub store_bytes: u64,
}

/// `POST /v1/tx` without `wait`: admitted to the mempool.
#[derive(Serialize, ToSchema)]
pub struct Pending {
    #[schema(value_type = String)]
    pub tx_id: Hash32,
    /// Always `pending`.
    pub status: String,
}

/// `POST /v1/tx/signing-bytes`.
#[derive(Serialize, ToSchema)]
pub struct SigningBytes {
    /// Hex of the domain tag and the canonical encoding: what the signer signs with ed25519.
    pub signing_bytes: String,
}

/// `POST /v1/task-files`: a task file read by the parser every client uses.
#[derive(Serialize, ToSchema)]
pub struct TaskFileView {
    /// The terms to sign, `inputs_cid` empty and `result_key` zero: the client fills them in
    /// once its sealed inputs are stored.
    #[schema(value_type = Object)]
    pub terms: aicpw_types::TaskTerms,
    /// The input bundle's manifest (command, args, outputs).
    #[schema(value_type = Object)]
    pub manifest: aicpw_types::bundle::Manifest,
    /// The inputs the file names, in order; the bundle holds each under its file name.
    pub inputs: Vec<String>,
}

/// One transaction of a block as `GET /v1/blocks/{height}` lists it.
#[derive(Serialize, ToSchema)]
pub struct TxSummary {
    #[schema(value_type = String)]
    pub tx_id: Hash32,
    pub kind: String,
    #[schema(value_type = String)]
    pub signer: AccountId,
}

/// `GET /v1/blocks/{height}`.
#[derive(Serialize, ToSchema)]
pub struct BlockView {
    #[schema(value_type = String)]
    pub hash: Hash32,
    #[schema(value_type = Object)]
    pub header: aicpw_types::BlockHeader,
    pub txs: Vec<TxSummary>,
}

/// One entry of `GET /v1/nodes/{id}/leases`.
#[derive(Serialize, ToSchema)]
pub struct LeaseView<'a> {
    #[schema(value_type = Object)]
    pub task: &'a aicpw_ledger::state::Task,
    #[schema(value_type = Object)]
    pub lease: &'a aicpw_ledger::state::Lease,
    pub reveal_open: bool,
}

/// `GET /v1/nodes/{id}/why`: why the matcher does or does not place tasks on a node.
#[derive(Serialize, ToSchema)]
pub struct NodeWhy {
    pub node: u64,
    #[schema(value_type = String)]
    pub status: aicpw_ledger::state::NodeStatus,
    pub online: bool,
    pub running: u32,
    #[schema(value_type = Object)]
    pub explanation: aicpw_matcher::explain::NodeExplanation,
}

/// `GET /v1/tasks/{id}/why`: why a task is (not) placed.
#[derive(Serialize, ToSchema)]
pub struct TaskWhy {
    pub task: u64,
    #[schema(value_type = String)]
    pub state: aicpw_types::TaskState,
    #[schema(value_type = Option<Object>)]
    pub reason: Option<aicpw_types::FailureReason>,
    pub attempts: u32,
    #[schema(value_type = Object)]
    pub explanation: aicpw_matcher::explain::TaskExplanation,
}

/// Every error answers in the one shape, [`ErrorBody`]: those the router and extractors make
/// (unknown path, wrong method, a path or query that does not parse) are given the reject that
/// fits their status.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let reject = match status {
        StatusCode::NOT_FOUND => Reject::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => Reject::PayloadTooLarge,
        s if s.is_server_error() => Reject::Unavailable,
        _ => Reject::BadRequest,
    };
    (status, Json(ErrorBody { error: RejectView::from(reject) })).into_response()
}

impl From<Reject> for ApiError {
    fn from(reject: Reject) -> Self {
        ApiError(reject)
    }
}

pub type ApiResult = Result<Json<Value>, ApiError>;

fn to_json(value: impl serde::Serialize) -> ApiResult {
    serde_json::to_value(value).map(Json).map_err(|_| ApiError(Reject::Unavailable))
}

pub fn router(shared: SharedState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/tx", post(submit_tx).layer(DefaultBodyLimit::disable()))
        .route("/v1/tx/signing-bytes", post(signing_bytes).layer(DefaultBodyLimit::disable()))
        .route("/v1/task-files", post(task_file).layer(DefaultBodyLimit::disable()))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/nodes", get(nodes))
        .route("/v1/nodes/{id}", get(node))
        .route("/v1/nodes/{id}/why", get(node_why))
        .route("/v1/nodes/{id}/leases", get(node_leases))
        .route("/v1/params", get(params))
        .route("/v1/tasks", get(tasks))
        .route("/v1/tasks/{id}", get(task))
        .route("/v1/tasks/{id}/why", get(task_why))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/events", get(events))
        .route("/v1/challenges", get(challenges))
        .route("/v1/challenges/{id}", get(challenge))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(crate::store_api::routes())
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), crate::metrics::track))
        .with_state(shared)
}

async fn status(State(s): State<SharedState>) -> Result<Json<StatusView>, ApiError> {
    let mempool = s.mempool_len();
    let chain = s.chain();
    let state = chain.state();
    let head = chain.head();
    Ok(Json(StatusView {
        chain_id: chain.genesis().chain_id.clone(),
        height: chain.height(),
        block_hash: head.map(|h| h.hash()),
        state_root: head.map(|h| h.state_root),
        time_ms: head.map(|h| h.time_ms),
        supply: state.meta.supply,
        burned: state.meta.burned,
        accounts: state.accounts.len() as u64,
        nodes: state.nodes.len() as u64,
        tasks: state.tasks.len() as u64,
        queued: state.index.queued.len() as u64,
        mempool: mempool as u64,
    }))
}

#[derive(Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    wait: bool,
}

/// Takes a signed transaction in its canonical binary encoding, or as JSON
/// (`content-type: application/json`, the shape `GET /v1/blocks` and receipts use).
async fn submit_tx(
    State(s): State<SharedState>,
    Query(q): Query<SubmitQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Read at most the limit, so an oversize body gets its own code and costs little. The JSON
    // form spells bytes in hex, so it may be larger; the binary limit is checked after decoding.
    let limit = if json { TX_JSON_BYTES_MAX } else { TX_BYTES_MAX };
    let body = PacedBody::new(body, limit as u64, Reject::Oversize).collect().await?;
    let tx = if json {
        serde_json::from_slice::<SignedTx>(&body).map_err(|_| Reject::Malformed)?
    } else {
        SignedTx::from_bytes(&body).map_err(|_| Reject::Malformed)?
    };
    if let TxBody::RevealResult { result_cid, .. } = &tx.tx.body {
        result_available(&s, result_cid.clone()).await?;
    }
    let (id, waiter) = s.submit(tx, q.wait)?;
    match waiter {
        None => to_json(Pending { tx_id: id, status: "pending".into() }),
        Some(waiter) => match waiter.await {
            Ok(Ok(committed)) => to_json(committed),
            Ok(Err(reject)) => Err(reject.into()),
            Err(_) => Err(Reject::Unavailable.into()),
        },
    }
}

/// `POST /v1/tx/signing-bytes`: the bytes a signer signs for an unsigned transaction given as
/// JSON (`{chain_id, signer, nonce, fee, body}`), in hex, so a client without the canonical
/// encoding (the web page) signs exactly what the node will check. The answer is only bytes: a
/// node that lied would get a signature over something the signer never saw, so a careful
/// client compares the bytes with its own encoding; the web page trusts the node that serves it.
async fn signing_bytes(body: Body) -> ApiResult {
    let body = PacedBody::new(body, TX_JSON_BYTES_MAX as u64, Reject::Oversize).collect().await?;
    let tx: Tx = serde_json::from_slice(&body).map_err(|_| Reject::Malformed)?;
    to_json(SigningBytes { signing_bytes: hex::encode(tx.signing_bytes()) })
}

/// `POST /v1/task-files`: reads a task file (YAML) as `aicpw task submit` does, so a client
/// without the parser (the web page) builds exactly the terms and manifest the CLI would. A file
/// the parser refuses answers `TaskFileInvalid` 740 with the parser's line, field and reason.
async fn task_file(body: Body) -> Result<Json<TaskFileView>, Response> {
    let limit = aicpw_types::spec::TASK_FILE_BYTES_MAX as u64;
    let body = PacedBody::new(body, limit, Reject::PayloadTooLarge)
        .collect()
        .await
        .map_err(IntoResponse::into_response)?;
    let invalid = |message: String| {
        let error = RejectView { message, ..RejectView::from(Reject::TaskFileInvalid) };
        (StatusCode::UNPROCESSABLE_ENTITY, Json(ErrorBody { error })).into_response()
    };
    let text = String::from_utf8(body).map_err(|_| invalid("the task file is not UTF-8".into()))?;
    let file = aicpw_types::spec::TaskFile::parse(&text).map_err(|e| invalid(e.to_string()))?;
    Ok(Json(TaskFileView {
        terms: file.terms(String::new(), [0; 32]),
        manifest: file.manifest(),
        inputs: file.inputs.clone(),
    }))
}

/// A reveal must name a result the requester can fetch: the node admits it only while its
/// content store holds all of `cid` (every block read back and rehashed). The ledger is pure and
/// cannot look, so this admission is where availability is checked; the CID itself is bound into
/// the lease's commitment, so it cannot be swapped after the reveal.
async fn result_available(s: &SharedState, cid: String) -> Result<(), ApiError> {
    let cid: Cid = cid.parse().map_err(|_| Reject::ResultUnavailable)?;
    let store = s.content.store.clone();
    tokio::task::spawn_blocking(move || store.read_to_writer(&cid, std::io::sink()))
        .await
        .map_err(|_| Reject::Unavailable)?
        .map_err(|_| Reject::ResultUnavailable)?;
    Ok(())
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError(Reject::BadRequest))
}

async fn account(State(s): State<SharedState>, Path(address): Path<String>) -> ApiResult {
    let id: AccountId = parse(&address)?;
    let account = s.chain().state().accounts.get(&id).cloned().unwrap_or_default();
    let store_bytes = s.content.usage(&id).map_err(|_| Reject::Unavailable)?;
    to_json(AccountView {
        address: id,
        balance: account.balance,
        nonce: account.nonce,
        next_nonce: s.next_nonce(&id, account.nonce),
        staked: account.staked,
        unbonding: account.unbonding,
        nodes: account.nodes,
        store_bytes,
    })
}

/// One page of a list: `?cursor=` where the previous page ended (its `aicpw-next-cursor`),
/// `?limit=` up to [`LIST_ITEMS_MAX`].
#[derive(Deserialize)]
struct Page {
    cursor: Option<u64>,
    limit: Option<usize>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(LIST_ITEMS_MAX).clamp(1, LIST_ITEMS_MAX)
    }
}

/// A page as the API answers it: a JSON array, and the next page's cursor in a header.
fn page(items: Vec<Value>, next: Option<u64>) -> Response {
    let mut response = Json(Value::Array(items)).into_response();
    if let Some(next) = next {
        response.headers_mut().insert(HeaderName::from_static(NEXT_CURSOR_HEADER), next.into());
    }
    response
}

/// `GET /v1/nodes`: nodes by id, a page at a time.
async fn nodes(State(s): State<SharedState>, Query(p): Query<Page>) -> Result<Response, ApiError> {
    let limit = p.limit();
    let chain = s.chain();
    let after = p.cursor.map_or(Unbounded, |c| Excluded(NodeId(c)));
    let mut range = chain.state().nodes.range((after, Unbounded));
    let mut items = Vec::new();
    let mut next = None;
    for (id, node) in range.by_ref() {
        items.push(serde_json::to_value(node).map_err(|_| Reject::Unavailable)?);
        if items.len() == limit {
            next = Some(id.0);
            break;
        }
    }
    if range.next().is_none() {
        next = None;
    }
    Ok(page(items, next))
}

async fn node(State(s): State<SharedState>, Path(id): Path<u64>) -> ApiResult {
    let chain = s.chain();
    to_json(chain.state().nodes.get(&NodeId(id)).ok_or(Reject::UnknownNode)?)
}

async fn node_why(State(s): State<SharedState>, Path(id): Path<u64>) -> ApiResult {
    let chain = s.chain();
    let state = chain.state();
    let node = state.nodes.get(&NodeId(id)).ok_or(Reject::UnknownNode)?;
    let pending: Vec<_> = state
        .index
        .queued
        .iter()
        .take(LIST_ITEMS_MAX)
        .filter_map(|t| state.tasks.get(t))
        .map(|t| task_request(state, t))
        .collect();
    let explanation = state.index.matcher.explain_node(node.id, &pending);
    to_json(NodeWhy {
        node: node.id.0,
        status: node.status,
        online: node.online,
        running: node.running,
        explanation,
    })
}

/// The open tasks in which a node holds a lease of the current round (running, committed or
/// revealed, not yet judged), with that lease and whether the round's reveals are open: what a
/// provider agent acts on, whatever the lease's role (worker, replica, auditor, referee,
/// committee member); and the tasks (open or ended) where it holds a withheld lease it may still
/// open: `lease.withheld_until_ms` is set and `reveal_open` is true until that deadline. By task
/// id, a page of `limit` tasks at a time (a task with both kinds of lease answers both).
async fn node_leases(
    State(s): State<SharedState>,
    Path(id): Path<u64>,
    Query(p): Query<Page>,
) -> Result<Response, ApiError> {
    let limit = p.limit();
    let chain = s.chain();
    let state = chain.state();
    let node = NodeId(id);
    state.nodes.get(&node).ok_or(Reject::UnknownNode)?;
    let after = p.cursor.map_or(Unbounded, |c| Excluded((node, TaskId(c))));
    let range = (after, std::ops::Bound::Included((node, TaskId(u64::MAX))));
    let current = state
        .index
        .node_leases
        .range(range)
        .filter_map(|(_, task)| state.tasks.get(task))
        .filter_map(|task| task.pending_lease(node).map(|i| (task, &task.leases[i])))
        .map(|(task, lease)| LeaseView { task, lease, reveal_open: task.reveal_open_ms.is_some() });
    let withheld = state
        .index
        .node_withheld
        .range(range)
        .filter_map(|(_, task)| state.tasks.get(task))
        .filter_map(|task| {
            let lease = task
                .leases
                .iter()
                .find(|l| l.node == node && l.late_reveal_deadline().is_some())?;
            Some(LeaseView { task, lease, reveal_open: true })
        });
    // Each list is in task order; one more than a page of each holds every lease of the first
    // `limit` tasks of both.
    let list = current.take(limit + 1).chain(withheld.take(limit + 1));
    let (list, next) = page_by_task(list.map(|view| (view.task.id, view)).collect(), limit);
    let items = list
        .iter()
        .map(|view| serde_json::to_value(view).map_err(|_| Reject::Unavailable))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(items, next))
}

/// One page of entries about tasks: every entry of the first `limit` tasks (a task may have
/// several), by task id, and the cursor after them when more tasks follow.
fn page_by_task<T>(mut list: Vec<(TaskId, T)>, limit: usize) -> (Vec<T>, Option<u64>) {
    list.sort_by_key(|(task, _)| *task);
    let mut tasks: Vec<TaskId> = list.iter().map(|(task, _)| *task).collect();
    tasks.dedup();
    let next = tasks.get(limit).map(|cut| {
        list.retain(|(task, _)| task < cut);
        tasks[limit - 1].0
    });
    (list.into_iter().map(|(_, entry)| entry).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_by_task_keeps_every_entry_of_a_task_together() {
        let t = TaskId;
        // Two lists in task order (a task's current lease, then its withheld one), merged.
        let list = vec![(t(1), "1a"), (t(4), "4a"), (t(7), "7a"), (t(4), "4w"), (t(9), "9w")];
        assert_eq!(page_by_task(list.clone(), 2), (vec!["1a", "4a", "4w"], Some(4)));
        assert_eq!(page_by_task(list.clone(), 1), (vec!["1a"], Some(1)));
        assert_eq!(page_by_task(list.clone(), 4), (vec!["1a", "4a", "4w", "7a", "9w"], None));
        assert_eq!(page_by_task(Vec::<(TaskId, &str)>::new(), 3), (vec![], None));
    }
}

/// The network's parameters, verification economics included.
async fn params(State(s): State<SharedState>) -> ApiResult {
    let chain = s.chain();
    to_json(&chain.state().params)
}

#[derive(Deserialize)]
struct TaskFilter {
    requester: Option<String>,
    /// Tasks with a lease on this node.
    node: Option<u64>,
    state: Option<String>,
    cursor: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/tasks`: newest first, filtered. One query looks at no more than [`LIST_ITEMS_MAX`]
/// tasks under the chain lock; the cursor continues where it stopped, so a filter that matches
/// few tasks may answer pages with fewer items than asked for (even none) before the last.
async fn tasks(
    State(s): State<SharedState>,
    Query(filter): Query<TaskFilter>,
) -> Result<Response, ApiError> {
    let requester: Option<AccountId> = filter.requester.as_deref().map(parse).transpose()?;
    let limit = Page { cursor: None, limit: filter.limit }.limit();
    let wanted = |t: &aicpw_ledger::state::Task| {
        requester.is_none_or(|r| t.requester == r)
            && filter.node.is_none_or(|n| t.leases.iter().any(|l| l.node.0 == n))
            && filter.state.as_deref().is_none_or(|want| {
                serde_json::to_value(t.state).ok().and_then(|v| v.as_str().map(|s| s == want))
                    == Some(true)
            })
    };
    let chain = s.chain();
    let before = filter.cursor.map_or(Unbounded, |c| Excluded(TaskId(c)));
    let mut range = chain.state().tasks.range((Unbounded, before)).rev();
    let (mut items, mut examined, mut next) = (Vec::new(), 0, None);
    for (id, task) in range.by_ref() {
        examined += 1;
        if wanted(task) {
            items.push(serde_json::to_value(task).map_err(|_| Reject::Unavailable)?);
        }
        if items.len() == limit || examined == LIST_ITEMS_MAX {
            next = Some(id.0);
            break;
        }
    }
    if range.next().is_none() {
        next = None;
    }
    Ok(page(items, next))
}

async fn task(State(s): State<SharedState>, Path(id): Path<u64>) -> ApiResult {
    let chain = s.chain();
    to_json(chain.state().tasks.get(&TaskId(id)).ok_or(Reject::UnknownTask)?)
}

async fn task_why(State(s): State<SharedState>, Path(id): Path<u64>) -> ApiResult {
    let chain = s.chain();
    let state = chain.state();
    let task = state.tasks.get(&TaskId(id)).ok_or(Reject::UnknownTask)?;
    let explanation = state.index.matcher.explain_task(&task_request(state, task));
    to_json(TaskWhy {
        task: task.id.0,
        state: task.state,
        reason: task.failure,
        attempts: task.attempts,
        explanation,
    })
}

async fn block(State(s): State<SharedState>, Path(height): Path<String>) -> ApiResult {
    let chain = s.chain();
    let height = if height == "latest" { chain.height() } else { parse(&height)? };
    let block = chain.block(height).map_err(|_| Reject::Unavailable)?.ok_or(Reject::NotFound)?;
    let txs = block
        .txs
        .iter()
        .map(|t| TxSummary { tx_id: t.id(), kind: t.tx.body.kind().into(), signer: t.tx.signer })
        .collect();
    to_json(BlockView { hash: block.header.hash(), header: block.header, txs })
}

#[derive(Deserialize)]
struct EventFilter {
    task: Option<u64>,
    /// Events about this node (its leases, challenges, sanctions).
    node: Option<u64>,
}

async fn events(
    State(s): State<SharedState>,
    Query(filter): Query<EventFilter>,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let stream = BroadcastStream::new(s.events.subscribe()).filter_map(move |item| match item {
        Ok(value) => {
            let about = |field: &str, id: Option<u64>| {
                id.is_none_or(|id| value.get(field).and_then(Value::as_u64) == Some(id))
            };
            let wanted = about("task", filter.task) && about("node", filter.node);
            wanted.then(|| Ok(SseEvent::default().data(value.to_string())))
        }
        Err(_) => Some(Ok(SseEvent::default().event("lagged").data("{}"))),
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(1)))
}

#[derive(Deserialize)]
struct ChallengeFilter {
    node: Option<u64>,
    cursor: Option<u64>,
    limit: Option<usize>,
}

/// A challenge as the API shows it: the ledger's record, plus the drawn tiles once drawn.
#[derive(Serialize)]
pub struct ChallengeView<'a> {
    #[serde(flatten)]
    pub challenge: &'a aicpw_ledger::challenge::Challenge,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawn_tiles: Option<Vec<u32>>,
}

impl<'a> ChallengeView<'a> {
    fn of(challenge: &'a aicpw_ledger::challenge::Challenge) -> Self {
        ChallengeView { challenge, drawn_tiles: challenge.drawn_tiles() }
    }
}

/// `GET /v1/challenges[?node=]`: a node's current challenges (open or just resolved), or every
/// node's, by id, a page at a time; a provider's challenger polls this.
async fn challenges(
    State(s): State<SharedState>,
    Query(filter): Query<ChallengeFilter>,
) -> Result<Response, ApiError> {
    let limit = Page { cursor: None, limit: filter.limit }.limit();
    let chain = s.chain();
    let node = filter.node.map(NodeId);
    let list = chain.state().challenges(node, filter.cursor.map(ChallengeId), limit + 1);
    let next = (list.len() > limit).then(|| list[limit - 1].id.0);
    let items = list
        .into_iter()
        .take(limit)
        .map(|c| serde_json::to_value(ChallengeView::of(c)).map_err(|_| Reject::Unavailable))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(items, next))
}

async fn challenge(State(s): State<SharedState>, Path(id): Path<u64>) -> ApiResult {
    let chain = s.chain();
    let challenge = chain.state().challenge(ChallengeId(id)).ok_or(Reject::UnknownChallenge)?;
    to_json(ChallengeView::of(challenge))
}
