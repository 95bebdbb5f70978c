//! The ranged clip URL, beyond KVS: `GET|HEAD /clip/v1/getClip.mp4?StreamName=…` and its
//! integrity sidecar `GET /clip/v1/getClip.sha256?…`.
//!
//! GetClip (`kvs-api.md` §10) answers a signed `POST`, which browsers, `<video>` elements, curl
//! and download managers cannot send, and it cannot resume. This resource serves the same clip
//! (same range semantics and errors, the same bytes) for a SigV4 **presigned GET** (§14.2,
//! `openkvs presign get-clip`), with HTTP range requests, an `ETag` and `Content-Disposition`.
//!
//! Query parameters: `StreamName` or `StreamARN`, `FragmentSelectorType`
//! (`SERVER_TIMESTAMP` | `PRODUCER_TIMESTAMP`), `StartTimestamp` and `EndTimestamp` (epoch
//! seconds, or RFC 3339), and the `X-Amz-*` presigning parameters. Exporting is an operator
//! action: only admin principals may use it (viewers get 401 `NotAuthorizedException`).

use std::collections::HashMap;
use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvs_core::ErrorKind;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::playback::{self, PlannedClip};
use crate::wire::StreamRef;
use crate::{AppState, Role, now_ms};

/// Headers a browser script may read from a cross-origin clip response.
const EXPOSE_HEADERS: &str =
    "Content-Length, Content-Range, Accept-Ranges, ETag, Content-Disposition, x-amz-meta-sha256";

/// How many clip digests [`ClipDigests`] remembers.
const DIGEST_CACHE_ENTRIES: usize = 1024;

/// SHA-256 digests of clips computed by the `.sha256` sidecar, by ETag, so that later `.mp4`
/// responses of the same clip can carry `x-amz-meta-sha256` for free.
#[derive(Debug, Default)]
pub(crate) struct ClipDigests(std::sync::Mutex<HashMap<String, String>>);

impl ClipDigests {
    fn get(&self, etag: &str) -> Option<String> {
        self.0.lock().ok()?.get(etag).cloned()
    }

    fn put(&self, etag: String, digest: String) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= DIGEST_CACHE_ENTRIES {
                m.clear();
            }
            m.insert(etag, digest);
        }
    }
}

/// `GET|HEAD /clip/v1/{resource}`.
pub(crate) async fn clip(
    State(st): State<AppState>,
    Path(res): Path<String>,
    req: Request,
) -> Response {
    clip_inner(st, &res, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn clip_inner(st: AppState, res: &str, req: Request) -> ApiResult<Response> {
    let (parts, _body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let principal = authenticate(&st, &parts, res)?;
    if principal.role != Role::Admin {
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            format!(
                "{} is read-only; exporting clips needs an admin key",
                principal.access_key_id
            ),
        ));
    }
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::invalid(format!("bad query string: {e}")))?;
    match res {
        "getClip.mp4" => {
            let clip = planned(&st, &query).await?;
            Ok(mp4_response(st, clip, &query, &parts.headers, head))
        }
        "getClip.sha256" => {
            let clip = planned(&st, &query).await?;
            let etag = etag_of(&clip);
            let digest = sha256_of(&st, clip).await?;
            st.clip_digests.put(etag.clone(), digest.clone());
            let mut r = format!("{digest}\n").into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            cors(h);
            if let Ok(v) = HeaderValue::from_str(&etag) {
                h.insert(header::ETAG, v);
            }
            Ok(r)
        }
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("/clip/v1/{other} is not a clip resource (getClip.mp4, getClip.sha256)"),
        )),
    }
}

/// Verifies the presigned (or header-signed) request.
///
/// - A URL presigned for GET also serves HEAD (as for a GET, no body is signed): the signature
///   is checked over the GET the URL was made for.
/// - A URL presigned for `getClip.mp4` also serves `getClip.sha256` with the same parameters
///   (the digest reveals less than the clip), so holders of a clip URL can verify it.
fn authenticate(
    st: &AppState,
    parts: &axum::http::request::Parts,
    res: &str,
) -> ApiResult<crate::Principal> {
    let now = now_ms() / 1000;
    let as_get = |path: Option<&str>| -> ApiResult<axum::http::request::Parts> {
        let uri = match path {
            None => parts.uri.clone(),
            Some(p) => {
                let pq = match parts.uri.query() {
                    Some(q) => format!("{p}?{q}"),
                    None => p.to_owned(),
                };
                pq.parse()
                    .map_err(|_| ApiError::invalid("the request URI cannot be rewritten"))?
            }
        };
        let mut b = axum::http::Request::builder().method(Method::GET).uri(uri);
        for (k, v) in &parts.headers {
            b = b.header(k, v);
        }
        Ok(b.body(())
            .map_err(|e| ApiError::new(ErrorKind::Internal, "request copy").with_source(e))?
            .into_parts()
            .0)
    };
    let first = if parts.method == Method::HEAD {
        crate::web_session::authenticate(
            st,
            &as_get(None)?,
            sigv4::PayloadHash::EmptyStreaming,
            crate::web_session::CookiePolicy::Api,
        )
    } else {
        crate::web_session::authenticate(
            st,
            parts,
            sigv4::PayloadHash::EmptyStreaming,
            crate::web_session::CookiePolicy::Api,
        )
    };
    match first {
        Err(e) if res == "getClip.sha256" => {
            let mp4_path = parts
                .uri
                .path()
                .strip_suffix("getClip.sha256")
                .map(|p| format!("{p}getClip.mp4"));
            let Some(mp4_path) = mp4_path else {
                return Err(e);
            };
            st.auth
                .authenticate(
                    &as_get(Some(&mp4_path))?,
                    sigv4::PayloadHash::EmptyStreaming,
                    now,
                )
                .map_err(|_| e)
        }
        other => other,
    }
}

async fn planned(st: &AppState, query: &HashMap<String, String>) -> ApiResult<PlannedClip> {
    let stream_ref = StreamRef {
        stream_name: query.get("StreamName").cloned(),
        stream_arn: query.get("StreamARN").cloned(),
    };
    let stream = playback::resolve_stream(st, &stream_ref).await?;
    let start = query
        .get("StartTimestamp")
        .map(|s| Value::String(s.clone()));
    let end = query.get("EndTimestamp").map(|s| Value::String(s.clone()));
    let (kind, start, end) = playback::clip_range(
        query.get("FragmentSelectorType"),
        start.as_ref(),
        end.as_ref(),
    )?;
    playback::plan_clip(st, stream, kind, start, end).await
}

/// A strong ETag over what determines the clip's bytes: the MP4 layout version, the stream and
/// the fragments (numbers and sizes) the clip is built from.
fn etag_of(clip: &PlannedClip) -> String {
    let mut h = Sha256::new();
    h.update(b"openkvs-clip\0");
    h.update(mp4::FORMAT_VERSION.to_be_bytes());
    h.update(clip.stream.arn.as_bytes());
    h.update(b"\0");
    for m in &clip.metas {
        h.update(m.number.to_string().as_bytes());
        h.update(b":");
        h.update(m.size_bytes.to_be_bytes());
    }
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

/// Hashes the whole clip by streaming its plan (memory stays flat).
async fn sha256_of(st: &AppState, clip: PlannedClip) -> ApiResult<String> {
    let total = clip.plan.total_len();
    let mut rx = playback::spawn_plan(st.clone(), clip.plan, clip.metas, 0..total);
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(b) = rx.recv().await {
        let b = b.map_err(|e| ApiError::new(ErrorKind::Internal, "clip read").with_source(e))?;
        n += b.len() as u64;
        h.update(&b);
    }
    if n != total {
        return Err(ApiError::new(
            ErrorKind::Internal,
            format!("clip stream ended after {n} of {total} bytes"),
        ));
    }
    Ok(hex::encode(h.finalize()))
}

fn cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

/// Whether `If-None-Match` matches `etag` (weak comparison, RFC 9110 §13.1.2).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// The `.mp4` response.
///
/// `x-amz-meta-sha256` is set only when the digest is already known (the `.sha256` sidecar
/// computed it earlier for the same ETag); hashing a clip costs reading it whole, so it is never
/// computed per request. **The `.sha256` sidecar is the integrity source**: fetch it to verify
/// a downloaded clip, do not rely on the header being present.
fn mp4_response(
    st: AppState,
    clip: PlannedClip,
    query: &HashMap<String, String>,
    req_headers: &HeaderMap,
    head: bool,
) -> Response {
    let total = clip.plan.total_len();
    let etag = etag_of(&clip);
    let digest = st.clip_digests.get(&etag);
    let filename = format!(
        "{}_{}_{}.mp4",
        clip.stream.name,
        query.get("StartTimestamp").map_or("", String::as_str),
        query.get("EndTimestamp").map_or("", String::as_str),
    )
    .replace(['"', '\\', '/'], "_");

    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    cors(h);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(d) = digest.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert("x-amz-meta-sha256", d);
    }
    if none_match(req_headers, &etag) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let range = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let r = match parse_range(range, total) {
        ByteRange::Full => 0..total,
        ByteRange::Partial(r) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let cr = format!("bytes {}-{}/{total}", r.start, r.end - 1);
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&cr).expect("ascii"),
            );
            r
        }
        ByteRange::Unsatisfiable => {
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).expect("ascii"),
            );
            h.remove(header::CONTENT_DISPOSITION);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            return resp;
        }
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
    tracing::info!(stream = %clip.stream.name, fragments = clip.metas.len(), bytes = total, range = ?r, head, "clip URL");
    if !head && r.start < r.end {
        *resp.body_mut() = playback::plan_body(st, clip.plan, clip.metas, r);
    }
    resp
}

/// What a `Range` header asks of a `total`-byte representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No usable range: send everything with 200 (no header, another unit, a malformed or
    /// multi-range request — RFC 9110 §14.2 lets a server ignore those).
    Full,
    /// One satisfiable range, end exclusive: 206.
    Partial(Range<u64>),
    /// The range starts at or after the end: 416.
    Unsatisfiable,
}

/// Parses a single-range `Range: bytes=a-b | a- | -n` header (RFC 9110 §14.1.2).
pub(crate) fn parse_range(header: Option<&str>, total: u64) -> ByteRange {
    let Some(h) = header else {
        return ByteRange::Full;
    };
    let h = h.trim();
    let Some(spec) = h
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("bytes="))
        .map(|_| h[6..].trim())
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match num(b) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if total == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial(total.saturating_sub(n)..total),
        },
        // bytes=a-: from a to the end.
        (false, true) => match num(a) {
            None => ByteRange::Full,
            Some(a) if a >= total => ByteRange::Unsatisfiable,
            Some(a) => ByteRange::Partial(a..total),
        },
        (false, false) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= total {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Partial(a..b.min(total - 1) + 1)
                }
            }
            _ => ByteRange::Full,
        },
        (true, true) => ByteRange::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        use ByteRange::{Full, Partial, Unsatisfiable};
        let cases: [(Option<&str>, u64, ByteRange); 22] = [
            (None, 100, Full),
            (Some("bytes=0-9"), 100, Partial(0..10)),
            (Some("bytes=10-19"), 100, Partial(10..20)),
            (Some("bytes=90-200"), 100, Partial(90..100)),
            (Some("bytes=99-99"), 100, Partial(99..100)),
            (Some("bytes=0-"), 100, Partial(0..100)),
            (Some("bytes=50-"), 100, Partial(50..100)),
            (Some("bytes=-10"), 100, Partial(90..100)),
            (Some("bytes=-500"), 100, Partial(0..100)),
            (Some("Bytes= 5 - 6 "), 100, Partial(5..7)),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=100-200"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=9-5"), 100, Full),
            (Some("bytes=0-1,5-6"), 100, Full),
            (Some("items=0-1"), 100, Full),
            (Some("bytes=a-b"), 100, Full),
            (Some("bytes=-"), 100, Full),
            (Some("bytes=+1-2"), 100, Full),
            (Some("bytes=99999999999999999999999-"), 100, Full),
        ];
        for (h, total, want) in cases {
            assert_eq!(parse_range(h, total), want, "{h:?} of {total}");
        }
    }

    #[test]
    fn if_none_match() {
        let etag = "\"abc\"";
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("", false),
        ];
        for (v, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            assert_eq!(none_match(&h, etag), want, "{v:?}");
        }
        assert!(!none_match(&HeaderMap::new(), etag));
    }
}
