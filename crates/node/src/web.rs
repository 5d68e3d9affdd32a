//! The web DApp at `/`: plain HTML, CSS and JavaScript written by hand in `crates/node/web/`,
//! compiled into the binary (`include_str!`), so the node serves it with nothing fetched at
//! build or run time. The page reads the same API as every other client and signs in the
//! browser (WebCrypto Ed25519): the node never sees a key. `seal.js` is the requester's
//! cryptography (sealing, content keys, bundles, CIDs), checked against the Rust code's vectors.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Scripts, styles and connections from this origin only, no inline script, no frames: data
/// from the chain (node endpoints, GPU names, addresses) is only ever shown as text, and this
/// keeps a mistake there from running anything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");
const SEAL_JS: &str = include_str!("../web/seal.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub fn routes() -> Router<Arc<crate::Shared>> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/seal.js", get(|| async { asset("text/javascript; charset=utf-8", SEAL_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}
