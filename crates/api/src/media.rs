//! The media data plane: PutMedia (ingest, `kvs-api.md` §7), GetMedia (§3, §8),
//! GetMediaForFragmentList (§8.4) and ListFragments (§9).
//!
//! PutMedia is a full-duplex HTTP/1.1 exchange: the 200 and a chunked stream of JSON acks go out
//! while the chunked MKV body is still arriving. The session logic is `openkvs-ingest`'s pure
//! `Session`; this shell owns the body stream, the clock, the store and the ack channel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use ingest::{Ack, Output, Session, SessionConfig, TimecodeType};
use kvs_core::{ErrorKind, FragmentNumber};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{FragmentMeta, RangeQuery, Selector, StreamRecord, TimestampKind};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::live::MemFragment;
use crate::validate as v;
use crate::{AppState, RequestCtx, Role, now_ms};

/// IDLE acks while no data arrives (KVS sends them "periodically"), and the end of a silent session.
const IDLE_ACK_EVERY: Duration = Duration::from_secs(5);
const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(30);
/// How far back a new session looks for fragments a reconnecting producer may replay.
const REPLAY_WINDOW_MS: i64 = 10 * 60 * 1000;

fn streaming_response(content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// PutMedia parameters from headers, or from the query string of a presigned URL (tools such
/// as GStreamer's curlhttpsink cannot set headers). Query names are the header names.
#[derive(Debug)]
struct PutMediaParams {
    stream: Selector,
    timecode_type: TimecodeType,
    producer_start_ms: Option<i64>,
    acks: bool,
}

fn param(parts: &Parts, name: &str) -> Option<String> {
    if let Some(h) = parts.headers.get(name).and_then(|h| h.to_str().ok()) {
        return Some(h.trim().to_owned());
    }
    let q = parts.uri.query()?;
    url_query(q)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn url_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Parses `x-amzn-producer-start-timestamp`: decimal epoch seconds. The C producer writes the
/// millisecond part without zero padding (5 ms as `.5`); like KVS we read it as a decimal.
fn parse_epoch_secs(s: &str) -> Option<i64> {
    ingest::parse_producer_start_ms(s)
}

impl PutMediaParams {
    fn from_parts(parts: &Parts) -> ApiResult<Self> {
        let name = param(parts, "x-amzn-stream-name");
        let arn = param(parts, "x-amzn-stream-arn");
        let stream = v::stream_selector(name.as_ref(), arn.as_ref(), ErrorKind::InvalidArgument).map_err(|e| {
            ApiError::invalid(format!(
                "{} (PutMedia takes the x-amzn-stream-name or x-amzn-stream-arn header, or the same name as a query parameter)",
                e.message()
            ))
        })?;
        let timecode_type = match param(parts, "x-amzn-fragment-timecode-type").as_deref() {
            None | Some("ABSOLUTE") => TimecodeType::Absolute,
            Some("RELATIVE") => TimecodeType::Relative,
            Some(o) => {
                return Err(ApiError::invalid(format!(
                    "x-amzn-fragment-timecode-type {o:?} is not ABSOLUTE or RELATIVE"
                )));
            }
        };
        let producer_start_ms = match param(parts, "x-amzn-producer-start-timestamp") {
            None => None,
            Some(s) => Some(parse_epoch_secs(&s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "x-amzn-producer-start-timestamp {s:?} is not epoch seconds"
                ))
            })?),
        };
        let acks = param(parts, "x-amzn-fragment-acknowledgment-required").as_deref() != Some("0");
        Ok(Self {
            stream,
            timecode_type,
            producer_start_ms,
            acks,
        })
    }
}

/// `POST /putMedia`.
pub(crate) async fn put_media(st: AppState, parts: Parts, body: Body) -> ApiResult<Response> {
    let principal =
        st.auth
            .authenticate(&parts, sigv4::PayloadHash::EmptyStreaming, now_ms() / 1000)?;
    if principal.role != Role::Admin {
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            format!(
                "{} is read-only and may not call PutMedia",
                principal.access_key_id
            ),
        ));
    }
    let p = PutMediaParams::from_parts(&parts)?;
    let stream = st.catalog.stream(&p.stream).await?;
    let now = now_ms();
    let last_number = st.fragments.latest(&stream.arn).await?.map(|m| m.number);
    let recent = st
        .fragments
        .range(
            &stream.arn,
            &RangeQuery {
                kind: TimestampKind::Server,
                start_ms: now - REPLAY_WINDOW_MS,
                end_ms: i64::MAX,
                after: None,
                limit: 10_000,
            },
        )
        .await?
        .into_iter()
        .map(|m| (m.producer_ms, m.number))
        .collect();
    let mut cfg = SessionConfig::new(stream.arn.clone());
    cfg.timecode_type = p.timecode_type;
    cfg.producer_start_ms = p.producer_start_ms;
    cfg.last_number = last_number;
    cfg.recent = recent;
    let guard = st.live.register_producer(&stream.arn);
    tracing::info!(stream = %stream.name, timecode_type = ?p.timecode_type, acks = p.acks, "PutMedia session started");
    if !p.acks {
        // `x-amzn-fragment-acknowledgment-required: 0`: the producer will not read a reply
        // (ffmpeg, curl-based sinks). Anything written to it while it sends would sit unread
        // in its socket, and closing a socket with unread data makes the kernel send RST,
        // which discards whatever of the body we have not read yet. So answer only after the
        // whole body is in: 200 with the ack lines as the body.
        let (tx, _rx) = mpsc::channel::<Bytes>(1);
        let name = stream.name.clone();
        let mut shell = PutMediaShell {
            st,
            stream,
            acks: true,
            tx,
            ended: false,
            collected: Some(Vec::new()),
            hold_received: false,
            held: String::new(),
            track_set: None,
        };
        shell.run(Session::new(cfg), body, guard).await;
        let out = shell.collected.take().unwrap_or_default();
        tracing::info!(stream = %name, "PutMedia session ended");
        let mut resp = Response::new(Body::from(out));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let name = stream.name.clone();
        let mut shell = PutMediaShell {
            st,
            stream,
            acks: p.acks,
            tx,
            ended: false,
            collected: None,
            hold_received: true,
            held: String::new(),
            track_set: None,
        };
        shell.run(Session::new(cfg), body, guard).await;
        tracing::info!(stream = %name, "PutMedia session ended");
    });
    Ok(streaming_response("application/json", rx))
}

struct PutMediaShell {
    st: AppState,
    stream: StreamRecord,
    acks: bool,
    tx: mpsc::Sender<Bytes>,
    ended: bool,
    /// Acks kept for a reply sent after the body (producers that do not read while sending).
    collected: Option<Vec<u8>>,
    /// Whether RECEIVED waits for the PERSISTED that follows (streams with retention).
    hold_received: bool,
    /// A held RECEIVED line.
    held: String,
    /// The track set of the last persisted fragment and its id in the store.
    track_set: Option<(Arc<store::TrackSet>, i64)>,
}

impl PutMediaShell {
    async fn send_ack(&mut self, ack: &Ack) {
        if !self.acks && ack.error_id.is_none() {
            return;
        }
        self.st.metrics.ack(ack.event.as_str(), ack.error_id);
        let mut line = ack.to_json();
        tracing::trace!(stream = %self.stream.name, ack = %line, "PutMedia ack");
        line.push('\n');
        if let Some(buf) = &mut self.collected {
            if ack.event != ingest::AckEvent::Idle {
                buf.extend_from_slice(line.as_bytes());
            }
            return;
        }
        // RECEIVED is held back and goes out in one write with the PERSISTED (or ERROR) that
        // follows a few ms later: two small writes in a row would make the second wait for
        // the producer's delayed ACK (about 40 ms of Nagle-style coalescing on loopback).
        if ack.event == ingest::AckEvent::Received && self.hold_received {
            self.held.push_str(&line);
            return;
        }
        let mut out = std::mem::take(&mut self.held);
        out.push_str(&line);
        // A producer that does not read acks (ffmpeg) closes its side; that is normal.
        let _ = self.tx.send(Bytes::from(out)).await;
    }

    /// Sends a held RECEIVED on its own (retention-0 streams get no PERSISTED).
    async fn flush_held(&mut self) {
        if !self.held.is_empty() {
            let out = std::mem::take(&mut self.held);
            let _ = self.tx.send(Bytes::from(out)).await;
        }
    }

    async fn run(
        &mut self,
        mut session: Session,
        body: Body,
        mut guard: crate::live::ProducerGuard,
    ) {
        let _gauge = crate::metrics::SessionGauge::new(self.st.clone());
        let mut body = body;
        let mut last_data = tokio::time::Instant::now();
        while !self.ended {
            tokio::select! {
                frame = tokio::time::timeout(IDLE_ACK_EVERY, body.frame()) => match frame {
                    Ok(Some(Ok(f))) => {
                        if let Ok(data) = f.into_data() {
                            tracing::trace!(stream = %self.stream.name, bytes = data.len(), "PutMedia body data");
                            last_data = tokio::time::Instant::now();
                            session.push(&data, now_ms());
                            self.drain(&mut session).await;
                        }
                    }
                    Ok(Some(Err(e))) => {
                        // The connection broke mid-body: what was complete is kept, the open
                        // fragment is not (its end never arrived).
                        tracing::info!(stream = %self.stream.name, error = %e, "PutMedia body ended with an error");
                        break;
                    }
                    Ok(None) => {
                        tracing::debug!(stream = %self.stream.name, "PutMedia body complete");
                        session.finish(now_ms());
                        self.drain(&mut session).await;
                        break;
                    }
                    Err(_) => {
                        if last_data.elapsed() >= IDLE_CLOSE_AFTER {
                            tracing::info!(stream = %self.stream.name, "no data for 30 s, closing PutMedia");
                            break;
                        }
                        self.send_ack(&Ack::idle()).await;
                    }
                },
                () = self.st.live.shutting_down() => {
                    tracing::info!(stream = %self.stream.name, "server shutting down: ending PutMedia");
                    break;
                }
                _ = guard.replaced.changed() => {
                    // Either a newer connection took over, or the stream was deleted (4008).
                    let gone = matches!(
                        self.st.catalog.stream(&Selector::Arn(self.stream.arn.clone())).await,
                        Err(ref e) if e.kind() == ErrorKind::NotFound
                    );
                    if gone {
                        tracing::info!(stream = %self.stream.name, "stream deleted during PutMedia");
                        self.send_ack(&Ack::error(None, ingest::error_id::STREAM_NOT_ACTIVE)).await;
                    } else {
                        tracing::info!(stream = %self.stream.name, "PutMedia connection replaced by a newer one");
                    }
                    break;
                }
            }
        }
        self.flush_held().await;
    }

    async fn drain(&mut self, session: &mut Session) {
        while let Some(out) = session.poll() {
            match out {
                Output::Ack(a) => self.send_ack(&a).await,
                Output::Duplicate {
                    number,
                    fragment_timecode,
                } => {
                    self.send_ack(&Ack::persisted(fragment_timecode, number))
                        .await;
                }
                Output::Fragment(cf) => self.store(session, cf).await,
                Output::Error(e) => {
                    tracing::info!(stream = %self.stream.name, error_id = e.error_id(), error = %e, "PutMedia input refused");
                }
                Output::End { error_id } => {
                    tracing::info!(stream = %self.stream.name, ?error_id, "PutMedia session ends");
                    self.ended = true;
                }
            }
            if self.ended {
                return;
            }
        }
    }

    async fn store(&mut self, session: &mut Session, cf: ingest::CompletedFragment) {
        let tc = cf.fragment_timecode;
        let number = cf.fragment.number;
        // The stream may have been deleted while the producer was pushing (ErrorId 4008).
        let current = self
            .st
            .catalog
            .stream(&Selector::Arn(self.stream.arn.clone()))
            .await;
        let current = match current {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.send_ack(&Ack::error(Some(tc), ingest::error_id::STREAM_NOT_ACTIVE))
                    .await;
                self.ended = true;
                return;
            }
            Err(e) => {
                tracing::error!(stream = %self.stream.name, error = %e, "catalog lookup failed");
                session.persist_failed(number);
                self.send_ack(&Ack::error(Some(tc), ingest::error_id::ARCHIVAL_ERROR))
                    .await;
                return;
            }
        };
        if current.data_retention_hours == 0 {
            let meta = FragmentMeta {
                stream_arn: cf.fragment.stream_arn.clone(),
                number,
                producer_ms: cf.fragment.producer_ms,
                server_ms: cf.fragment.server_ms,
                duration_ms: cf.fragment.duration_ms,
                size_bytes: cf.fragment.media.len() as u64,
                cluster_timecode: cf.fragment.cluster_timecode,
                frame_count: u32::try_from(cf.fragment.frames.len()).unwrap_or(u32::MAX),
                track_set_id: 0,
                tags: cf.fragment.tags.clone(),
            };
            let f = cf.fragment;
            self.flush_held().await;
            self.st.live.keep_in_memory(MemFragment {
                meta,
                tracks: f.tracks,
                frames: Arc::new(f.frames),
                media: f.media,
            });
            return;
        }
        let started = std::time::Instant::now();
        let result = async {
            // The session's tracks rarely change: look the set's id up once, not per fragment
            // (with the PostgreSQL index that is two round trips saved per fragment).
            let set_id = match &self.track_set {
                Some((tracks, id)) if **tracks == *cf.fragment.tracks => *id,
                _ => {
                    let id = self
                        .st
                        .fragments
                        .track_set(&cf.fragment.stream_arn, &cf.fragment.tracks)
                        .await?;
                    self.track_set = Some((cf.fragment.tracks.clone(), id));
                    id
                }
            };
            self.st.fragments.persist(cf.fragment, set_id).await
        }
        .await;
        if result.is_err() {
            // E.g. the stream was deleted and re-created: look the id up again next time.
            self.track_set = None;
        }
        match result {
            Ok(meta) => {
                self.st
                    .metrics
                    .persisted(meta.size_bytes, started.elapsed());
                self.send_ack(&Ack::persisted(tc, meta.number)).await;
                self.st.live.published(&meta.stream_arn, meta.number);
            }
            Err(e) => {
                tracing::error!(stream = %self.stream.name, fragment = %number, error = %e, "persisting a fragment failed");
                session.persist_failed(number);
                self.send_ack(&Ack::error(Some(tc), ingest::error_id::ARCHIVAL_ERROR))
                    .await;
            }
        }
    }
}

// ---------------------------------------------------------------- readers

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StartSelector {
    start_selector_type: Option<String>,
    after_fragment_number: Option<String>,
    start_timestamp: Option<Value>,
    continuation_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetMediaInput {
    #[serde(flatten)]
    stream: crate::wire::StreamRef,
    start_selector: Option<StartSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetMediaForFragmentListInput {
    #[serde(flatten)]
    stream: crate::wire::StreamRef,
    fragments: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TimestampRange {
    start_timestamp: Option<Value>,
    end_timestamp: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FragmentSelector {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<TimestampRange>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListFragmentsInput {
    #[serde(flatten)]
    stream: crate::wire::StreamRef,
    max_results: Option<i64>,
    next_token: Option<String>,
    fragment_selector: Option<FragmentSelector>,
}

/// A timestamp member: epoch seconds as a JSON number (what the SDKs send), or, leniently, a
/// numeric string or an RFC 3339 string. Returns epoch milliseconds.
pub(crate) fn timestamp_ms(v: &Value, member: &str) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "{member} must be a timestamp (epoch seconds), got {v}"
        ))
    };
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| (f * 1000.0).round() as i64)
            .ok_or_else(bad),
        Value::String(s) => {
            if let Some(ms) = parse_epoch_secs(s) {
                return Ok(ms);
            }
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| bad())?;
            Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())?)
        }
        _ => Err(bad()),
    }
}

fn parse_number(s: &str, member: &str) -> ApiResult<FragmentNumber> {
    s.parse()
        .map_err(|e: kvs_core::FragmentNumberError| ApiError::invalid(format!("{member}: {e}")))
}

/// One fragment of either kind (stored, or in memory for retention-0 streams), loaded whole.
struct Loaded {
    meta: FragmentMeta,
    tracks: Arc<store::TrackSet>,
    frames: Arc<Vec<store::FrameEntry>>,
    media: Bytes,
}

async fn load(st: &AppState, meta: FragmentMeta) -> ApiResult<Loaded> {
    let tracks = st.fragments.load_track_set(meta.track_set_id).await?;
    let frames = Arc::new(st.fragments.frames(&meta).await?);
    let media = st.fragments.read(&meta, 0, meta.size_bytes).await?;
    Ok(Loaded {
        meta,
        tracks,
        frames,
        media,
    })
}

fn chunk(l: &Loaded, post: Option<export::ChunkTags>) -> ApiResult<Bytes> {
    export::mkv_chunk(&l.meta, &l.tracks, &l.frames, &l.media, post)
        .map(Bytes::from)
        .map_err(|e| {
            ApiError::new(ErrorKind::Internal, "building a GetMedia chunk failed").with_source(e)
        })
}

async fn resolve_stream(st: &AppState, s: &crate::wire::StreamRef) -> ApiResult<StreamRecord> {
    let sel = v::stream_selector(
        s.stream_name.as_ref(),
        s.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    Ok(st.catalog.stream(&sel).await?)
}

/// Where GetMedia starts: the first fragment to send is the first with a number > `after`,
/// or exactly `first` when given.
struct Start {
    first: Option<FragmentMeta>,
    after: Option<FragmentNumber>,
}

async fn resolve_start(
    st: &AppState,
    stream: &StreamRecord,
    sel: &StartSelector,
) -> ApiResult<Start> {
    let kind = v::required(&sel.start_selector_type, "startSelector.startSelectorType")?;
    let arn = &stream.arn;
    let mem = stream.data_retention_hours == 0;
    Ok(match kind.as_str() {
        "EARLIEST" => Start {
            first: None,
            after: None,
        },
        "NOW" => {
            // Start with the newest chunk, then follow live.
            let latest = if mem {
                st.live.memory_after(arn, None).pop().map(|m| m.meta)
            } else {
                st.fragments.latest(arn).await?
            };
            match latest {
                Some(m) => Start {
                    after: None,
                    first: Some(m),
                },
                None => Start {
                    first: None,
                    after: None,
                },
            }
        }
        "FRAGMENT_NUMBER" => {
            let n = v::required(
                &sel.after_fragment_number,
                "startSelector.afterFragmentNumber",
            )?;
            Start {
                first: None,
                after: Some(parse_number(n, "AfterFragmentNumber")?),
            }
        }
        "CONTINUATION_TOKEN" => {
            let t = v::required(&sel.continuation_token, "startSelector.continuationToken")?;
            Start {
                first: None,
                after: Some(parse_number(t, "ContinuationToken")?),
            }
        }
        "SERVER_TIMESTAMP" | "PRODUCER_TIMESTAMP" => {
            let ts = timestamp_ms(
                v::required(&sel.start_timestamp, "startSelector.startTimestamp")?,
                "StartTimestamp",
            )?;
            let tk = if kind == "SERVER_TIMESTAMP" {
                TimestampKind::Server
            } else {
                TimestampKind::Producer
            };
            // The chunk containing `ts`: the last fragment starting at or before it, if it
            // still runs at `ts`; else the first one starting after it.
            let before = st
                .fragments
                .range(
                    arn,
                    &RangeQuery {
                        kind: tk,
                        start_ms: ts - 60_000,
                        end_ms: ts,
                        after: None,
                        limit: 1000,
                    },
                )
                .await?;
            let start_of = |m: &FragmentMeta| {
                if tk == TimestampKind::Server {
                    m.server_ms
                } else {
                    m.producer_ms
                }
            };
            match before
                .into_iter()
                .rev()
                .find(|m| start_of(m) + m.duration_ms > ts)
            {
                Some(m) => Start {
                    first: Some(m),
                    after: None,
                },
                None => {
                    let next = st
                        .fragments
                        .range(
                            arn,
                            &RangeQuery {
                                kind: tk,
                                start_ms: ts,
                                end_ms: i64::MAX,
                                after: None,
                                limit: 1,
                            },
                        )
                        .await?;
                    match next.into_iter().next() {
                        Some(m) => Start {
                            first: Some(m),
                            after: None,
                        },
                        // Nothing yet: follow live from the newest.
                        None => Start {
                            first: None,
                            after: st.fragments.latest(arn).await?.map(|m| m.number),
                        },
                    }
                }
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "StartSelectorType {other:?} is not one of FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN"
            )));
        }
    })
}

/// `POST /getMedia`: chunks from the start selector on, then live as fragments arrive.
pub(crate) async fn get_media(
    st: AppState,
    _ctx: RequestCtx,
    input: GetMediaInput,
) -> ApiResult<Response> {
    let stream = resolve_stream(&st, &input.stream).await?;
    let sel = v::required(&input.start_selector, "startSelector")?;
    let start = resolve_start(&st, &stream, sel).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if let Err(e) = follow(&st, &stream, start, &tx).await {
            tracing::warn!(stream = %stream.name, error = ?e, "GetMedia ended with an error");
            let _ = tx
                .send(Bytes::from(export::mkv_error_chunk(
                    None,
                    5000,
                    "InternalError",
                )))
                .await;
        }
    });
    Ok(streaming_response("video/webm", rx))
}

async fn follow(
    st: &AppState,
    stream: &StreamRecord,
    start: Start,
    tx: &mpsc::Sender<Bytes>,
) -> ApiResult<()> {
    let arn = &stream.arn;
    let mem = stream.data_retention_hours == 0;
    let mut notify = st.live.subscribe(arn);
    let mut cursor = start.after;
    // Since when the store has been failing with Unavailable, if it is.
    let mut outage: Option<std::time::Instant> = None;
    let send = |l: Loaded| async move {
        let behind = now_ms() - (l.meta.server_ms + l.meta.duration_ms);
        let post = export::ChunkTags {
            millis_behind_now: behind.max(0),
            continuation_token: l.meta.number,
        };
        let bytes = chunk(&l, Some(post))?;
        Ok::<bool, ApiError>(tx.send(bytes).await.is_ok())
    };
    if let Some(first) = start.first {
        cursor = Some(first.number);
        let l = if mem {
            match st
                .live
                .memory_after(arn, None)
                .into_iter()
                .find(|m| m.meta.number == first.number)
            {
                Some(m) => Loaded {
                    meta: m.meta,
                    tracks: m.tracks,
                    frames: m.frames,
                    media: m.media,
                },
                None => return Ok(()),
            }
        } else {
            load(st, first).await?
        };
        if !send(l).await? {
            return Ok(());
        }
    }
    loop {
        notify.borrow_and_update();
        let batch: Vec<Loaded> = if mem {
            st.live
                .memory_after(arn, cursor)
                .into_iter()
                .map(|m| Loaded {
                    meta: m.meta,
                    tracks: m.tracks,
                    frames: m.frames,
                    media: m.media,
                })
                .collect()
        } else {
            let next = async {
                let metas = st.fragments.after(arn, cursor, 8).await?;
                let mut v = Vec::with_capacity(metas.len());
                for m in metas {
                    v.push(load(st, m).await?);
                }
                Ok::<_, ApiError>(v)
            };
            match next.await {
                Ok(v) => {
                    outage = None;
                    v
                }
                // The shared index or media store is down for a moment (a PostgreSQL restart,
                // say): keep the tail open and try again after the next wake-up or poll,
                // for up to TAIL_OUTAGE_MAX; the client sees a pause, not an error.
                Err(e)
                    if e.kind() == ErrorKind::Unavailable
                        && outage.is_none_or(|t| t.elapsed() < TAIL_OUTAGE_MAX) =>
                {
                    if outage.is_none() {
                        tracing::warn!(stream = %stream.name, error = ?e, "GetMedia tail: store unavailable, retrying");
                        outage = Some(std::time::Instant::now());
                    }
                    Vec::new()
                }
                Err(e) => return Err(e),
            }
        };
        if batch.is_empty() {
            // Caught up: wait for the next fragment, checking now and then that the client
            // is still there and the stream still exists. The poll also bounds the delay when
            // an announcement is lost (another node's, while the listener reconnects).
            tokio::select! {
                () = st.live.shutting_down() => return Ok(()),
                r = notify.changed() => if r.is_err() { return Ok(()) },
                () = tokio::time::sleep(Duration::from_secs(2)) => {
                    if tx.is_closed() {
                        return Ok(());
                    }
                    // Deleted: end. A catalog that is down for a moment is not a deletion.
                    if let Err(e) = st.catalog.stream(&Selector::Arn(arn.clone())).await
                        && e.kind() != ErrorKind::Unavailable
                    {
                        return Ok(());
                    }
                }
            }
            continue;
        }
        for l in batch {
            cursor = Some(l.meta.number);
            if !send(l).await? {
                return Ok(());
            }
        }
    }
}

/// How long a live GetMedia waits out a store that answers Unavailable before it ends with
/// an error chunk.
const TAIL_OUTAGE_MAX: Duration = Duration::from_secs(60);

/// `POST /getMediaForFragmentList`: the listed fragments, in the order given.
pub(crate) async fn get_media_for_fragment_list(
    st: AppState,
    _ctx: RequestCtx,
    input: GetMediaForFragmentListInput,
) -> ApiResult<Response> {
    let stream = resolve_stream(&st, &input.stream).await?;
    let list = v::required(&input.fragments, "fragments")?;
    if list.is_empty() || list.len() > 1000 {
        return Err(ApiError::invalid(format!(
            "Fragments must list 1 to 1000 fragment numbers, got {}",
            list.len()
        )));
    }
    let numbers = list
        .iter()
        .map(|s| parse_number(s, "Fragments"))
        .collect::<ApiResult<Vec<_>>>()?;
    let mem = stream.data_retention_hours == 0;
    // Check every fragment exists before the 200 goes out.
    let mut metas = Vec::with_capacity(numbers.len());
    let memory = if mem {
        st.live.memory_after(&stream.arn, None)
    } else {
        vec![]
    };
    for n in &numbers {
        let found = if mem {
            memory
                .iter()
                .find(|m| m.meta.number == *n)
                .map(|m| m.meta.clone())
        } else {
            st.fragments.get(&stream.arn, *n).await?
        };
        metas.push(found.ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "fragment {n} is not in stream {} (expired or never stored)",
                    stream.name
                ),
            )
        })?);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for meta in metas {
            let l = if mem {
                match memory.iter().find(|m| m.meta.number == meta.number) {
                    Some(m) => Loaded {
                        meta,
                        tracks: m.tracks.clone(),
                        frames: m.frames.clone(),
                        media: m.media.clone(),
                    },
                    None => break,
                }
            } else {
                match load(&st, meta).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = ?e, "GetMediaForFragmentList: loading a fragment failed");
                        let _ = tx
                            .send(Bytes::from(export::mkv_error_chunk(
                                None,
                                5000,
                                "InternalError",
                            )))
                            .await;
                        break;
                    }
                }
            };
            let Ok(bytes) = chunk(&l, None) else { break };
            if tx.send(bytes).await.is_err() {
                break;
            }
        }
    });
    Ok(streaming_response("video/webm", rx))
}

#[derive(Debug, serde::Serialize, Deserialize)]
struct ListCursor {
    /// `s`erver or `p`roducer.
    k: String,
    s: i64,
    e: i64,
    a: Option<String>,
}

/// `POST /listFragments`.
pub(crate) async fn list_fragments(
    st: AppState,
    _ctx: RequestCtx,
    i: ListFragmentsInput,
) -> ApiResult<Value> {
    let stream = resolve_stream(&st, &i.stream).await?;
    let limit = v::max_results(i.max_results, 1000, 1000)?;
    let cursor = match i.next_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let bad = || {
                ApiError::invalid(format!(
                    "NextToken {t:?} was not returned by ListFragments; start without it"
                ))
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| bad())?;
            serde_json::from_slice::<ListCursor>(&raw).map_err(|_| bad())?
        }
        None => match &i.fragment_selector {
            None => {
                return Err(ApiError::invalid(
                    "FragmentSelector is required when NextToken is not given (FragmentSelectorType and TimestampRange)",
                ));
            }
            Some(fs) => {
                let k = match v::required(
                    &fs.fragment_selector_type,
                    "fragmentSelector.fragmentSelectorType",
                )?
                .as_str()
                {
                    "SERVER_TIMESTAMP" => "s",
                    "PRODUCER_TIMESTAMP" => "p",
                    o => {
                        return Err(ApiError::invalid(format!(
                            "FragmentSelectorType {o:?} is not one of PRODUCER_TIMESTAMP, SERVER_TIMESTAMP"
                        )));
                    }
                };
                let r = v::required(&fs.timestamp_range, "fragmentSelector.timestampRange")?;
                let s = timestamp_ms(
                    v::required(&r.start_timestamp, "timestampRange.startTimestamp")?,
                    "StartTimestamp",
                )?;
                let e = timestamp_ms(
                    v::required(&r.end_timestamp, "timestampRange.endTimestamp")?,
                    "EndTimestamp",
                )?;
                if e < s {
                    return Err(ApiError::invalid(
                        "EndTimestamp must not be earlier than StartTimestamp",
                    ));
                }
                ListCursor {
                    k: k.into(),
                    s,
                    e,
                    a: None,
                }
            }
        },
    };
    let kind = if cursor.k == "p" {
        TimestampKind::Producer
    } else {
        TimestampKind::Server
    };
    let after = cursor
        .a
        .as_deref()
        .map(|a| parse_number(a, "NextToken"))
        .transpose()?;
    let metas: Vec<FragmentMeta> = if stream.data_retention_hours == 0 {
        st.live
            .memory_after(&stream.arn, after)
            .into_iter()
            .map(|m| m.meta)
            .filter(|m| {
                let t = if kind == TimestampKind::Server {
                    m.server_ms
                } else {
                    m.producer_ms
                };
                (cursor.s..=cursor.e).contains(&t)
            })
            .take(limit + 1)
            .collect()
    } else {
        st.fragments
            .range(
                &stream.arn,
                &RangeQuery {
                    kind,
                    start_ms: cursor.s,
                    end_ms: cursor.e,
                    after,
                    limit: limit + 1,
                },
            )
            .await?
    };
    let more = metas.len() > limit;
    let page: Vec<Value> = metas
        .iter()
        .take(limit)
        .map(|m| {
            json!({
                "FragmentNumber": m.number.to_string(),
                "FragmentSizeInBytes": m.size_bytes,
                "ProducerTimestamp": m.producer_ms as f64 / 1000.0,
                "ServerTimestamp": m.server_ms as f64 / 1000.0,
                "FragmentLengthInMilliseconds": m.duration_ms,
            })
        })
        .collect();
    let mut out = json!({ "Fragments": page });
    if more {
        let last = metas[limit - 1].number.to_string();
        let c = ListCursor {
            a: Some(last),
            ..cursor
        };
        out["NextToken"] = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&c).expect("serializable"))
            .into();
    }
    Ok(out)
}
