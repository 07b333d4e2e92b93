//! The dashboard: a static single page (`server/dashboard/`) that reads and drives the public
//! `/v1` API with the user's bearer token, like any other client. Its files are embedded in the
//! binary, so a server needs nothing on disk to serve it. `GET /` is the page; its scripts,
//! styles and the vendored charting library are under `/ui/`. Not part of `/v1` nor of the
//! OpenAPI document; unknown paths keep the problem+json 404 of the rest of the server.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

/// One embedded file.
struct Asset {
    /// Path under `/ui/` (the page itself is `index.html`, served at `/`).
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($(($path:literal, $ct:expr)),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!("../dashboard/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static ASSETS: &[Asset] = assets![
    ("index.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
    ("app.js", JS),
    ("dom.js", JS),
    ("api.js", JS),
    ("charts.js", JS),
    ("pages/devices.js", JS),
    ("pages/tables.js", JS),
    ("pages/validation.js", JS),
    ("pages/searches.js", JS),
    ("vendor/echarts.min.js", JS),
    ("vendor/ECHARTS-LICENSE", TEXT),
    ("vendor/ECHARTS-NOTICE", TEXT),
    ("vendor/ECHARTS-LICENSE-d3", TEXT),
    ("vendor/ZRENDER-LICENSE", TEXT),
];

/// Scripts and styles from this origin only (no inline script anywhere), data only from this
/// origin's API, no framing. `data:`/`blob:` images are what the charting library exports.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Strong validators, computed once per process from the embedded bytes.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
            .collect()
    })
}

/// The dashboard's routes, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path == "index.html" {
        // One address for the page.
        return not_found();
    }
    serve(&path, &headers)
}

fn not_found() -> Response {
    ApiError::not_found(
        "no_such_route",
        "no such endpoint; GET /openapi.json lists them",
    )
    .into_response()
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return not_found();
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = response.headers_mut();
    // Files change only with the binary: revalidate each time, a 304 when unchanged.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_unique_path_and_the_page_loads_only_embedded_files() {
        let mut paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        // Every `/ui/...` the page and the scripts name is embedded (a missing one would be a
        // 404 in the browser only).
        for a in ASSETS.iter().filter(|a| a.content_type != TEXT) {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            if a.path.starts_with("vendor/") {
                continue;
            }
            for (at, _) in text.match_indices("/ui/") {
                let rest = &text[at + 4..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                    .unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(
                    paths.contains(&name),
                    "{} names /ui/{name}, which is not embedded",
                    a.path
                );
            }
        }
    }
}
