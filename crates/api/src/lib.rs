//! The HTTP edge of openkvs: axum routers, SigV4 authentication, and the mapping of errors to
//! AWS rest-json errors. Thin by design: handlers validate, call a catalog or store, and shape
//! the model's output; all protocol logic lives in the crates below.
//!
//! Request flow for the JSON operations (`POST /<operation>`):
//! 1. [`common_headers`] gives every response `x-amzn-RequestId` and `Date`, and logs failures;
//! 2. [`dispatch`] finds the operation by its exact, case-sensitive path ([`ops::OPERATIONS`]),
//!    buffers the body (bounded), verifies SigV4 ([`auth::Authenticator`]) or, for the viewer
//!    page, the session cookie and CSRF token ([`web_session`]), checks the principal's role,
//!    parses the JSON input and calls the handler.
//!
//! Besides the operations: `GET /` and `/ui/…` serve the viewer page from `web/`, and
//! `/web/v1/{login,session,logout}` its sign-in.
//!
//! What it does not do: store anything itself, or parse media.
#![deny(missing_docs)]

pub mod auth;
mod clip_url;
mod control;
pub mod error;
pub mod ice;
pub mod live;
mod media;
mod metrics;
pub mod ops;
mod playback;
mod playback_token;
pub mod retention;
pub mod signaling_ws;
mod validate;
mod web;
pub mod web_session;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kvs_core::ErrorKind;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use auth::{Authenticator, Principal, Role};
pub use error::{ApiError, ApiResult};

/// Server settings the API needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Region in ARNs and the one clients sign for (any region is accepted when signing).
    pub region: String,
    /// 12-digit account id in ARNs.
    pub account_id: String,
    /// Base URL handed out by GetDataEndpoint / GetSignalingChannelEndpoint. `None`: derived
    /// from the request's `Host` header, so clients get back the address they used.
    pub public_url: Option<String>,
    /// Whether this listener speaks TLS (derived URLs use https/wss).
    pub tls: bool,
    /// Largest accepted body of a JSON operation.
    pub max_json_body_bytes: usize,
    /// TURN credentials handed out by GetIceServerConfig; `None`: an empty `IceServerList`.
    pub turn: Option<ice::TurnConfig>,
    /// GetClip truncation.
    pub clip_cap: ClipCap,
    /// The viewer page's directory (`web/`), served at `/` and `/ui/`; `None`: no page.
    pub web_dir: Option<std::path::PathBuf>,
}

/// Where GetClip (and the ranged clip URL) truncates a clip. KVS stops at 200 fragments or
/// 100 MB; openkvs has no cap unless configured, since clips stream from the fragment files
/// with flat memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClipCap {
    /// At most this many fragments.
    pub max_fragments: Option<usize>,
    /// Stop after the fragment whose media bytes reach this total.
    pub max_bytes: Option<u64>,
}

/// Shared state of all handlers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// Streams, channels, tags.
    pub catalog: Arc<dyn store::Catalog>,
    /// Settings.
    pub config: ApiConfig,
    /// SigV4 verification and credentials.
    pub auth: Authenticator,
    /// Fragment index and media bytes.
    pub fragments: Arc<dyn store::FragmentStore>,
    /// Live notifications, producers, retention-0 buffers.
    pub live: Arc<live::Hub>,
    /// WebRTC signaling channels (WebSocket connections, SendAlexaOfferToMaster).
    pub signaling: Arc<signaling_ws::Hub>,
    /// Clip digests computed by `/clip/v1/getClip.sha256`, reused in `.mp4` responses.
    pub(crate) clip_digests: clip_url::ClipDigests,
    /// Prometheus counters (`GET /metrics`).
    pub(crate) metrics: metrics::Metrics,
    started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        catalog: Arc<dyn store::Catalog>,
        fragments: Arc<dyn store::FragmentStore>,
        config: ApiConfig,
        auth: Authenticator,
    ) -> Self {
        Self(Arc::new(Inner {
            catalog,
            config,
            auth,
            fragments,
            live: Arc::default(),
            signaling: Arc::default(),
            clip_digests: clip_url::ClipDigests::default(),
            metrics: metrics::Metrics::default(),
            started: Instant::now(),
        }))
    }

    /// The base URL for `scheme` (`http` or `ws`; upgraded to `https`/`wss` under TLS): the
    /// configured public URL, or else the request's own `Host`.
    pub(crate) fn base_url(&self, ctx: &RequestCtx, scheme: &str) -> String {
        if let Some(u) = &self.config.public_url {
            let u = u.trim_end_matches('/');
            return match scheme {
                "ws" => u
                    .replacen("https://", "wss://", 1)
                    .replacen("http://", "ws://", 1),
                _ => u.to_owned(),
            };
        }
        let s = if self.config.tls {
            format!("{scheme}s")
        } else {
            scheme.to_owned()
        };
        format!("{s}://{}", ctx.host)
    }
}

/// Per-request facts handlers may use.
#[derive(Debug, Clone)]
pub(crate) struct RequestCtx {
    /// `Host` as received.
    pub host: String,
    /// Request time, epoch milliseconds.
    pub now_ms: i64,
    /// Who is calling.
    #[allow(dead_code)]
    pub principal: Principal,
}

/// Wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::handler))
        .route("/", get(web::index).fallback(dispatch))
        .route("/ui/{*path}", get(web::asset))
        .route("/web/v1/{action}", axum::routing::any(web_session::handle))
        .route(
            "/hls/v1/{resource}",
            get(playback::hls).options(playback_preflight),
        )
        .route(
            "/dash/v1/{resource}",
            get(playback::dash).options(playback_preflight),
        )
        .route(
            "/clip/v1/{resource}",
            get(clip_url::clip).options(playback_preflight),
        )
        .fallback(dispatch)
        // Signaling WebSocket connects on `GET /` (only with an upgrade or X-Amz-ChannelARN).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            signaling_ws::intercept,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(middleware::from_fn(common_headers))
        .with_state(state)
}

/// CORS preflight of the token-authenticated playback resources (players on other origins
/// that send `Range` or other non-simple headers): any origin, GET/HEAD, cached for a day.
async fn playback_preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-None-Match, If-Range"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Content-Range, ETag, Accept-Ranges, x-amz-meta-sha256",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

async fn health(State(st): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }))
    .into_response()
}

fn rfc7231_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).expect("valid format")
}

/// Adds `x-amzn-RequestId` and `Date` to every response (botocore copies the former into
/// `ResponseMetadata`; the C WebRTC SDK computes clock skew from the latter) and logs failures.
pub async fn common_headers(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let status = resp.status();
    let h = resp.headers_mut();
    let idv = HeaderValue::from_str(&id).expect("uuid is ascii");
    h.insert("x-amzn-RequestId", idv.clone());
    h.insert("x-amz-RequestId", idv);
    h.insert(
        header::DATE,
        HeaderValue::from_str(&rfc7231_date(SystemTime::now())).expect("ascii"),
    );
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let detail = resp
        .extensions()
        .get::<error::ErrorDetail>()
        .map(|d| d.0.clone());
    match detail {
        Some(d) if status.is_server_error() => {
            tracing::error!(request_id = %id, %method, %path, status = status.as_u16(), ms, error = %d, "request failed");
        }
        Some(d) => {
            tracing::debug!(request_id = %id, %method, %path, status = status.as_u16(), ms, error = %d, "request refused")
        }
        None => {
            tracing::debug!(request_id = %id, %method, %path, status = status.as_u16(), ms, "request")
        }
    }
    resp
}

fn host_of(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn parse_input<I: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<I> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(I::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "the request body is not valid JSON for this operation: {e}"
        ))
    })
}

async fn run<I, F, Fut>(st: AppState, ctx: RequestCtx, body: &[u8], f: F) -> ApiResult<Value>
where
    I: DeserializeOwned + Default,
    F: FnOnce(AppState, RequestCtx, I) -> Fut,
    Fut: Future<Output = ApiResult<Value>>,
{
    f(st, ctx, parse_input(body)?).await
}

async fn stream_op<I, F, Fut>(
    st: AppState,
    ctx: RequestCtx,
    body: &[u8],
    f: F,
) -> ApiResult<Response>
where
    I: DeserializeOwned + Default,
    F: FnOnce(AppState, RequestCtx, I) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    f(st, ctx, parse_input(body)?).await
}

/// Serves every operation by exact path.
async fn dispatch(State(st): State<AppState>, req: Request<Body>) -> Response {
    match dispatch_inner(st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Whether `Content-Length` announces more than `limit` bytes (absent or unparsable: no; the
/// body read itself is bounded too).
fn declared_length_over(headers: &http::HeaderMap, limit: usize) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

async fn dispatch_inner(st: AppState, req: Request<Body>) -> ApiResult<Response> {
    let path = req.uri().path().to_owned();
    let Some(op) = ops::by_path(&path) else {
        return Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!(
                "{} {path} is not a Kinesis Video Streams operation",
                req.method()
            ),
        ));
    };
    if req.method() != Method::POST {
        return Err(ApiError::invalid(format!(
            "{} must be called with POST, not {}",
            op.name,
            req.method()
        )));
    }
    let (parts, body) = req.into_parts();
    if op.support == ops::Support::Route {
        // PutMedia: the body is a stream, verified with the empty-payload hash (§14.3).
        return media::put_media(st, parts, body).await;
    }
    let limit = st.config.max_json_body_bytes;
    // Refuse a declared length over the limit before reading anything: otherwise a client
    // that announces 1 GB and sends a byte now and then holds the connection (and up to
    // `limit` bytes of buffer) until it has trickled `limit` bytes.
    if declared_length_over(&parts.headers, limit) {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("{} request bodies are limited to {limit} bytes", op.name),
        ));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("{} request bodies are limited to {limit} bytes", op.name),
        )
    })?;
    let principal = web_session::authenticate(
        &st,
        &parts,
        sigv4::PayloadHash::Body(&bytes),
        web_session::CookiePolicy::Api,
    )?;
    if op.mutates && principal.role == Role::Viewer {
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            format!(
                "{} is read-only and may not call {}",
                principal.access_key_id, op.name
            ),
        ));
    }
    if op.support == ops::Support::NotYet {
        return Err(ApiError::new(
            ErrorKind::Unsupported,
            format!("openkvs does not implement {} yet", op.name),
        ));
    }
    let ctx = RequestCtx {
        host: host_of(&parts),
        now_ms: now_ms(),
        principal,
    };
    tracing::trace!(op = op.name, "dispatch");
    use control as c;
    if op.support == ops::Support::Stream {
        return match op.name {
            "GetMedia" => stream_op(st, ctx, &bytes, media::get_media).await,
            "GetClip" => stream_op(st, ctx, &bytes, playback::get_clip).await,
            "GetMediaForFragmentList" => {
                stream_op(st, ctx, &bytes, media::get_media_for_fragment_list).await
            }
            other => Err(ApiError::new(
                ErrorKind::Internal,
                format!("streaming operation {other} has no handler"),
            )),
        };
    }
    let v = match op.name {
        "CreateStream" => run(st, ctx, &bytes, c::create_stream).await,
        "DescribeStream" => run(st, ctx, &bytes, c::describe_stream).await,
        "ListStreams" => run(st, ctx, &bytes, c::list_streams).await,
        "UpdateStream" => run(st, ctx, &bytes, c::update_stream).await,
        "UpdateDataRetention" => run(st, ctx, &bytes, c::update_data_retention).await,
        "DeleteStream" => run(st, ctx, &bytes, c::delete_stream).await,
        "DescribeStreamStorageConfiguration" => {
            run(st, ctx, &bytes, c::describe_stream_storage).await
        }
        "UpdateStreamStorageConfiguration" => run(st, ctx, &bytes, c::update_stream_storage).await,
        "DescribeImageGenerationConfiguration" | "DescribeNotificationConfiguration" => {
            run(st, ctx, &bytes, c::describe_unconfigured).await
        }
        "DescribeMappedResourceConfiguration" => {
            run(st, ctx, &bytes, c::describe_mapped_resource).await
        }
        "GetDataEndpoint" => run(st, ctx, &bytes, c::get_data_endpoint).await,
        "TagStream" => run(st, ctx, &bytes, c::tag_stream).await,
        "UntagStream" => run(st, ctx, &bytes, c::untag_stream).await,
        "ListTagsForStream" => run(st, ctx, &bytes, c::list_tags_for_stream).await,
        "TagResource" => run(st, ctx, &bytes, c::tag_resource).await,
        "UntagResource" => run(st, ctx, &bytes, c::untag_resource).await,
        "ListTagsForResource" => run(st, ctx, &bytes, c::list_tags_for_resource).await,
        "CreateSignalingChannel" => run(st, ctx, &bytes, c::create_channel).await,
        "DescribeSignalingChannel" => run(st, ctx, &bytes, c::describe_channel).await,
        "ListSignalingChannels" => run(st, ctx, &bytes, c::list_channels).await,
        "UpdateSignalingChannel" => run(st, ctx, &bytes, c::update_channel).await,
        "DeleteSignalingChannel" => run(st, ctx, &bytes, c::delete_channel).await,
        "GetSignalingChannelEndpoint" => run(st, ctx, &bytes, c::get_channel_endpoint).await,
        "DescribeMediaStorageConfiguration" => {
            run(st, ctx, &bytes, c::describe_media_storage).await
        }
        "ListFragments" => run(st, ctx, &bytes, media::list_fragments).await,
        "GetHLSStreamingSessionURL" => run(st, ctx, &bytes, playback::get_hls_session_url).await,
        "GetDASHStreamingSessionURL" => run(st, ctx, &bytes, playback::get_dash_session_url).await,
        "GetIceServerConfig" => run(st, ctx, &bytes, ice::get_ice_server_config).await,
        "SendAlexaOfferToMaster" => {
            run(st, ctx, &bytes, signaling_ws::send_alexa_offer_to_master).await
        }
        other => Err(ApiError::new(
            ErrorKind::Internal,
            format!("operation {other} is marked Json in ops.rs but has no handler"),
        )),
    }?;
    Ok(axum::Json(v).into_response())
}

#[doc(hidden)]
pub fn status_of(kind: ErrorKind) -> StatusCode {
    ApiError::code_and_status(kind).1
}

#[cfg(test)]
mod body_limit_tests {
    use super::declared_length_over;

    #[test]
    fn declared_length_is_checked_before_reading() {
        for (value, want) in [
            (Some("1000000000"), true),
            (Some("1048577"), true),
            (Some("1048576"), false),
            (Some("2"), false),
            (Some("not a number"), false),
            (None, false),
        ] {
            let mut h = http::HeaderMap::new();
            if let Some(v) = value {
                h.insert(http::header::CONTENT_LENGTH, v.parse().unwrap());
            }
            assert_eq!(declared_length_over(&h, 1 << 20), want, "{value:?}");
        }
    }
}
