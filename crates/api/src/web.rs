//! The viewer page's files: `GET /` serves `<web_dir>/index.html`, `GET /ui/<path>` the files
//! under `<web_dir>` (the page's own modules and `node_modules/` after `npm ci`).
//!
//! Read from disk per request (the page is small and this keeps `web/` editable while the server
//! runs). Paths are checked component by component: no `..`, no hidden files, known types only.

use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Content-Security-Policy of the page: only this server's scripts, media from this server and
/// MSE blobs (hls.js), workers from blobs (hls.js's transmuxer), WebSocket to this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
    media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// Maps a URL path below `/ui/` to a file below `root`, or `None` if it is not servable.
fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for c in rel.split('/') {
        if c.is_empty()
            || c.starts_with('.')
            || c.contains('\\')
            || c.contains('\0')
            || c.contains(':')
        {
            return None;
        }
        p.push(c);
    }
    content_type(&p)?;
    Some(p)
}

fn security_headers(h: &mut HeaderMap) {
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
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

async fn file(path: &Path) -> Option<Response> {
    let bytes = tokio::fs::read(path).await.ok()?;
    let ct = content_type(path)?;
    let mut r = bytes.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    security_headers(r.headers_mut());
    Some(r)
}

fn not_found(what: &str) -> Response {
    let mut r = (StatusCode::NOT_FOUND, format!("{what} not found\n")).into_response();
    security_headers(r.headers_mut());
    r
}

/// `GET /`: the page, or a short explanation when the server has no `web/` directory.
pub(crate) async fn index(State(st): State<AppState>) -> Response {
    let Some(dir) = &st.config.web_dir else {
        return missing_page("this server was started without a web directory");
    };
    match file(&dir.join("index.html")).await {
        Some(r) => r,
        None => missing_page(&format!(
            "{} has no index.html; start openkvs from the repository root or pass --web-dir",
            dir.display()
        )),
    }
}

fn missing_page(why: &str) -> Response {
    let esc = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>openkvs</title>\
         <h1>openkvs is running</h1><p>The viewer page is not available: {esc}.</p>\
         <p>The API (AWS SDKs, CLI) works regardless.</p></html>"
    );
    let mut r = (StatusCode::NOT_FOUND, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(r.headers_mut());
    r
}

/// `GET /ui/{*path}`.
pub(crate) async fn asset(State(st): State<AppState>, req: Request) -> Response {
    let Some(dir) = &st.config.web_dir else {
        return not_found("web directory");
    };
    let rel = req.uri().path().strip_prefix("/ui/").unwrap_or("");
    let Some(path) = resolve(dir, rel) else {
        return not_found(rel);
    };
    match file(&path).await {
        Some(r) => r,
        None => not_found(rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let root = Path::new("/srv/web");
        let cases: &[(&str, Option<&str>)] = &[
            ("app.js", Some("/srv/web/app.js")),
            (
                "node_modules/hls.js/dist/hls.mjs",
                Some("/srv/web/node_modules/hls.js/dist/hls.mjs"),
            ),
            ("../secret.js", None),
            ("a/../../b.js", None),
            (".env", None),
            ("x/.git/config.js", None),
            ("a//b.js", None),
            ("", None),
            ("server-key.hex", None),
            ("a\\..\\b.js", None),
            ("c:/x.js", None),
        ];
        for (rel, want) in cases {
            assert_eq!(resolve(root, rel).as_deref(), want.map(Path::new), "{rel}");
        }
    }
}
