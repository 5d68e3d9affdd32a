//! `GET /openapi.json`: the API described in OpenAPI 3.1, built from the response types of
//! `api` (their `ToSchema`) and the table of routes below. `crates/node/openapi.json` is this
//! document committed; `tests/openapi.rs` fails when the two differ or when a route of the
//! router is missing here, and `scripts/test.sh` runs schemathesis against a live node with it.
//! Ledger records (tasks, nodes, leases, parameters, events) are described as objects only.

use crate::api::{
    AccountView, BlockView, ErrorBody, LeaseView, NodeWhy, Pending, RejectView, SigningBytes,
    StatusView, TaskFileView, TaskWhy, TxSummary, NEXT_CURSOR_HEADER,
};
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder,
};

/// What an operation answers with 200, or takes as its body.
#[derive(Clone, Copy)]
enum Body {
    /// A named schema of `components`.
    Named(&'static str),
    /// A list of a named schema.
    ListOf(&'static str),
    /// A ledger record, described as an object.
    Object,
    /// A list of ledger records.
    Objects,
    /// Bytes of this media type.
    Media(&'static str),
}

/// A parameter's JSON type.
#[derive(Clone, Copy)]
enum Kind {
    /// A u64: id, height, cursor, limit.
    Int,
    Str,
    Bool,
}

#[derive(Clone, Copy)]
enum Param {
    Path(&'static str, Kind),
    Query(&'static str, Kind),
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    fn http(self) -> HttpMethod {
        match self {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Put => HttpMethod::Put,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

struct Route {
    method: Method,
    path: &'static str,
    summary: &'static str,
    params: &'static [Param],
    body: Option<Body>,
    ok: Body,
}

use Body::{ListOf, Media, Named, Object, Objects};
use Param::{Path, Query};
const INT: Kind = Kind::Int;
const STR: Kind = Kind::Str;
const PAGE: [Param; 2] = [Query("cursor", INT), Query("limit", INT)];

/// Every route the node serves, in the router's order.
const ROUTES: &[Route] = &[
    Route { method: Method::Get, path: "/v1/status", summary: "Chain head and sizes", params: &[], body: None, ok: Named("StatusView") },
    Route { method: Method::Post, path: "/v1/tx", summary: "Submit a signed transaction (binary, or JSON with content-type application/json); with wait=true, answer once committed", params: &[Query("wait", Kind::Bool)], body: Some(Object), ok: Object },
    Route { method: Method::Post, path: "/v1/tx/signing-bytes", summary: "The bytes to sign for an unsigned JSON transaction", params: &[], body: Some(Object), ok: Named("SigningBytes") },
    Route { method: Method::Post, path: "/v1/task-files", summary: "Read a task file (YAML) into the terms to sign and the input bundle's manifest", params: &[], body: Some(Media("text/plain")), ok: Named("TaskFileView") },
    Route { method: Method::Get, path: "/v1/accounts/{address}", summary: "An account (hex address)", params: &[Path("address", STR)], body: None, ok: Named("AccountView") },
    Route { method: Method::Get, path: "/v1/nodes", summary: "Provider nodes by id, a page at a time (next cursor in aicpw-next-cursor)", params: &PAGE, body: None, ok: Objects },
    Route { method: Method::Get, path: "/v1/nodes/{id}", summary: "A provider node", params: &[Path("id", INT)], body: None, ok: Object },
    Route { method: Method::Get, path: "/v1/nodes/{id}/why", summary: "Why the matcher does or does not place tasks on a node", params: &[Path("id", INT)], body: None, ok: Named("NodeWhy") },
    Route { method: Method::Get, path: "/v1/nodes/{id}/leases", summary: "The leases a node must act on, by task, a page at a time", params: &[Path("id", INT), Query("cursor", INT), Query("limit", INT)], body: None, ok: ListOf("LeaseView") },
    Route { method: Method::Get, path: "/v1/params", summary: "The network's parameters", params: &[], body: None, ok: Object },
    Route { method: Method::Get, path: "/v1/tasks", summary: "Tasks, newest first, filtered, a page at a time", params: &[Query("requester", STR), Query("node", INT), Query("state", STR), Query("cursor", INT), Query("limit", INT)], body: None, ok: Objects },
    Route { method: Method::Get, path: "/v1/tasks/{id}", summary: "A task", params: &[Path("id", INT)], body: None, ok: Object },
    Route { method: Method::Get, path: "/v1/tasks/{id}/why", summary: "Why a task is or is not placed", params: &[Path("id", INT)], body: None, ok: Named("TaskWhy") },
    Route { method: Method::Get, path: "/v1/blocks/{height}", summary: "A block by height, or latest", params: &[Path("height", STR)], body: None, ok: Named("BlockView") },
    Route { method: Method::Get, path: "/v1/events", summary: "Ledger events as server-sent events, optionally about one task or node", params: &[Query("task", INT), Query("node", INT)], body: None, ok: Media("text/event-stream") },
    Route { method: Method::Get, path: "/v1/challenges", summary: "Current capacity challenges, optionally of one node, by id, a page at a time", params: &[Query("node", INT), Query("cursor", INT), Query("limit", INT)], body: None, ok: Objects },
    Route { method: Method::Get, path: "/v1/challenges/{id}", summary: "A capacity challenge", params: &[Path("id", INT)], body: None, ok: Object },
    Route { method: Method::Get, path: "/metrics", summary: "Prometheus metrics", params: &[], body: None, ok: Media("text/plain") },
    Route { method: Method::Get, path: "/openapi.json", summary: "This document", params: &[], body: None, ok: Object },
    Route { method: Method::Put, path: "/store", summary: "Upload one blob (signed aicpw-upload header)", params: &[Query("expect", STR)], body: Some(Media("application/octet-stream")), ok: Object },
    Route { method: Method::Put, path: "/store/car", summary: "Upload a CAR (signed aicpw-upload header)", params: &[Query("expect", STR)], body: Some(Media("application/octet-stream")), ok: Object },
    Route { method: Method::Get, path: "/store/{cid}", summary: "A stored file", params: &[Path("cid", STR)], body: None, ok: Media("application/octet-stream") },
    Route { method: Method::Get, path: "/store/{cid}/car", summary: "A stored DAG as a CAR", params: &[Path("cid", STR)], body: None, ok: Media("application/vnd.ipld.car") },
    Route { method: Method::Get, path: "/", summary: "The web DApp", params: &[], body: None, ok: Media("text/html") },
    Route { method: Method::Get, path: "/app.js", summary: "The web DApp's script", params: &[], body: None, ok: Media("text/javascript") },
    Route { method: Method::Get, path: "/seal.js", summary: "The web DApp's cryptography (sealing, content keys, bundles, CIDs)", params: &[], body: None, ok: Media("text/javascript") },
    Route { method: Method::Get, path: "/style.css", summary: "The web DApp's style", params: &[], body: None, ok: Media("text/css") },
];

fn object() -> Schema {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

fn named(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The media type and schema of a body.
fn content(body: Body) -> (&'static str, RefOr<Schema>) {
    let list = |item: RefOr<Schema>| RefOr::T(ArrayBuilder::new().items(item).into());
    match body {
        Named(name) => ("application/json", named(name)),
        ListOf(name) => ("application/json", list(named(name))),
        Object => ("application/json", RefOr::T(object())),
        Objects => ("application/json", list(RefOr::T(object()))),
        Media(media) => (media, RefOr::T(ObjectBuilder::new().schema_type(Type::String).into())),
    }
}

fn parameter(param: Param) -> utoipa::openapi::path::Parameter {
    let (name, at, kind, required) = match param {
        Path(name, kind) => (name, ParameterIn::Path, kind, Required::True),
        Query(name, kind) => (name, ParameterIn::Query, kind, Required::False),
    };
    let schema = match kind {
        Kind::Int => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0usize))
            .maximum(Some(u64::MAX as usize)),
        Kind::Str => ObjectBuilder::new().schema_type(Type::String),
        Kind::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(required)
        .schema(Some(schema))
        .build()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let (ok_type, ok_schema) = content(route.ok);
        let error = ContentBuilder::new().schema(Some(named("ErrorBody"))).build();
        let mut ok = ResponseBuilder::new()
            .description("Success")
            .content(ok_type, ContentBuilder::new().schema(Some(ok_schema)).build());
        if route.params.iter().any(|p| matches!(p, Query("cursor", _))) {
            let next = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]+$")))
                .description(Some("The cursor of the next page; absent on the last page"));
            ok = ok.header(NEXT_CURSOR_HEADER, next.build());
        }
        let mut operation =
            OperationBuilder::new().summary(Some(route.summary)).response("200", ok).response(
                "default",
                ResponseBuilder::new()
                    .description("A rejection, with its stable code")
                    .content("application/json", error),
            );
        for param in route.params {
            operation = operation.parameter(parameter(*param));
        }
        if let Some(body) = route.body {
            let (media, schema) = content(body);
            let request = RequestBodyBuilder::new()
                .content(media, ContentBuilder::new().schema(Some(schema)).build());
            operation = operation.request_body(Some(request.build()));
        }
        paths = paths.path(route.path, PathItem::new(route.method.http(), operation));
    }
    let components = ComponentsBuilder::new()
        .schema_from::<ErrorBody>()
        .schema_from::<RejectView>()
        .schema_from::<StatusView>()
        .schema_from::<AccountView>()
        .schema_from::<Pending>()
        .schema_from::<SigningBytes>()
        .schema_from::<TaskFileView>()
        .schema_from::<TxSummary>()
        .schema_from::<BlockView>()
        .schema_from::<LeaseView<'static>>()
        .schema_from::<NodeWhy>()
        .schema_from::<TaskWhy>()
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("AICPW node API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("A decentralized marketplace for AI compute: one node's API."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The document as `GET /openapi.json` answers it (and as `crates/node/openapi.json` holds it).
pub fn document_json() -> String {
    document().to_pretty_json().expect("the document serializes")
}

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}

/// The routes of the table, as (method, path), for the drift test.
pub fn routes() -> Vec<(String, &'static str)> {
    ROUTES.iter().map(|r| (r.method.name().to_owned(), r.path)).collect()
}
