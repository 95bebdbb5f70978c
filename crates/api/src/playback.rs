//! HLS and DASH streaming sessions (`kvs-api.md` §11) and GetClip (§10): request validation,
//! session tokens, and the resources under `/hls/v1/`, `/dash/v1/` and `/clip/v1/`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kvs_core::{ErrorKind, FragmentNumber};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{FragmentMeta, RangeQuery, StreamRecord, TimestampKind};

use crate::error::{ApiError, ApiResult};
use crate::media::timestamp_ms;
use crate::playback_token::{self, Claims};
use crate::validate as v;
use crate::wire::StreamRef;
use crate::{AppState, RequestCtx, now_ms};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Range {
    start_timestamp: Option<Value>,
    end_timestamp: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Selector {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<Range>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SessionInput {
    #[serde(flatten)]
    stream: StreamRef,
    playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector")]
    hls_selector: Option<Selector>,
    #[serde(rename = "DASHFragmentSelector")]
    dash_selector: Option<Selector>,
    container_format: Option<String>,
    discontinuity_mode: Option<String>,
    display_fragment_timestamp: Option<String>,
    display_fragment_number: Option<String>,
    expires: Option<i64>,
    max_media_playlist_fragment_results: Option<i64>,
    max_manifest_fragment_results: Option<i64>,
}

fn one_of<'a>(
    v: Option<&'a String>,
    member: &str,
    allowed: &[&'a str],
    default: &'a str,
) -> ApiResult<&'a str> {
    match v {
        None => Ok(default),
        Some(s) => allowed
            .iter()
            .find(|a| **a == s.as_str())
            .copied()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "{member} {s:?} is not one of {}",
                    allowed.join(", ")
                ))
            }),
    }
}

pub(crate) async fn resolve_stream(st: &AppState, s: &StreamRef) -> ApiResult<StreamRecord> {
    let sel = v::stream_selector(
        s.stream_name.as_ref(),
        s.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let rec = st.catalog.stream(&sel).await?;
    if rec.data_retention_hours == 0 {
        return Err(ApiError::new(
            ErrorKind::NoDataRetention,
            format!(
                "stream {} keeps no data (DataRetentionInHours is 0); playback needs retention",
                rec.name
            ),
        ));
    }
    Ok(rec)
}

fn kind_of(selector: &str) -> TimestampKind {
    if selector == "PRODUCER_TIMESTAMP" {
        TimestampKind::Producer
    } else {
        TimestampKind::Server
    }
}

/// Validates a GetHLS/DASHStreamingSessionURL request into session claims.
async fn session_claims(
    st: &AppState,
    i: SessionInput,
    dash: bool,
) -> ApiResult<(StreamRecord, Claims)> {
    let stream = resolve_stream(st, &i.stream).await?;
    let mode = one_of(
        i.playback_mode.as_ref(),
        "PlaybackMode",
        &["LIVE", "LIVE_REPLAY", "ON_DEMAND"],
        "LIVE",
    )?;
    let sel = if dash {
        i.dash_selector.as_ref()
    } else {
        i.hls_selector.as_ref()
    };
    let selector = one_of(
        sel.and_then(|s| s.fragment_selector_type.as_ref()),
        "FragmentSelectorType",
        &["SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"],
        "SERVER_TIMESTAMP",
    )?;
    let range = sel.and_then(|s| s.timestamp_range.as_ref());
    let start = range
        .and_then(|r| r.start_timestamp.as_ref())
        .map(|t| timestamp_ms(t, "StartTimestamp"))
        .transpose()?;
    let end = range
        .and_then(|r| r.end_timestamp.as_ref())
        .map(|t| timestamp_ms(t, "EndTimestamp"))
        .transpose()?;
    let now = now_ms();
    match mode {
        "LIVE" if range.is_some() => {
            return Err(ApiError::invalid(
                "TimestampRange must not be given with PlaybackMode LIVE",
            ));
        }
        "ON_DEMAND" if start.is_none() || end.is_none() => {
            return Err(ApiError::invalid(
                "PlaybackMode ON_DEMAND needs TimestampRange with StartTimestamp and EndTimestamp",
            ));
        }
        "LIVE_REPLAY" if start.is_none() => {
            return Err(ApiError::invalid(
                "PlaybackMode LIVE_REPLAY needs TimestampRange.StartTimestamp",
            ));
        }
        _ => {}
    }
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(ApiError::invalid(
                "EndTimestamp must be later than StartTimestamp",
            ));
        }
        if e - s > 24 * 3_600_000 {
            return Err(ApiError::invalid(
                "the TimestampRange may span at most 24 hours",
            ));
        }
        if selector == "SERVER_TIMESTAMP" && e > now + 1000 && mode == "ON_DEMAND" {
            return Err(ApiError::invalid(
                "with SERVER_TIMESTAMP the EndTimestamp must be in the past",
            ));
        }
    }
    let container = if dash {
        "FRAGMENTED_MP4"
    } else {
        one_of(
            i.container_format.as_ref(),
            "ContainerFormat",
            &["FRAGMENTED_MP4", "MPEG_TS"],
            "FRAGMENTED_MP4",
        )?
    };
    let default_disc = if selector == "SERVER_TIMESTAMP" {
        "ALWAYS"
    } else {
        "NEVER"
    };
    let discontinuity = if dash {
        "NEVER"
    } else {
        one_of(
            i.discontinuity_mode.as_ref(),
            "DiscontinuityMode",
            &["ALWAYS", "NEVER", "ON_DISCONTINUITY"],
            default_disc,
        )?
    };
    let display_timestamp = one_of(
        i.display_fragment_timestamp.as_ref(),
        "DisplayFragmentTimestamp",
        &["ALWAYS", "NEVER"],
        "NEVER",
    )? == "ALWAYS";
    let display_number = one_of(
        i.display_fragment_number.as_ref(),
        "DisplayFragmentNumber",
        &["ALWAYS", "NEVER"],
        "NEVER",
    )? == "ALWAYS";
    let expires = i.expires.unwrap_or(300);
    if !(300..=43_200).contains(&expires) {
        return Err(ApiError::invalid(format!(
            "Expires must be between 300 and 43200 seconds, got {expires}"
        )));
    }
    let max = if dash {
        i.max_manifest_fragment_results
    } else {
        i.max_media_playlist_fragment_results
    };
    let default_max = if mode == "ON_DEMAND" { 1000 } else { 5 };
    let max_results = match max {
        None => default_max,
        Some(n) if (1..=5000).contains(&n) => u32::try_from(n).expect("range checked"),
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "the fragment result limit must be 1 to 5000, got {n}"
            )));
        }
    };
    let claims = Claims {
        kind: if dash { "dash" } else { "hls" }.into(),
        arn: stream.arn.clone(),
        mode: mode.into(),
        selector: selector.into(),
        start_ms: start,
        end_ms: end,
        container: container.into(),
        discontinuity: discontinuity.into(),
        display_timestamp,
        display_number,
        max_results,
        created_ms: now,
        exp: now / 1000 + expires,
    };
    // KVS answers 404 when the session would have nothing to play.
    if session_fragments(st, &claims, now).await?.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            match mode {
                "LIVE" => format!(
                    "stream {} has no fragment from the last 30 seconds; is the producer running?",
                    stream.name
                ),
                _ => format!(
                    "stream {} has no fragments in the requested range",
                    stream.name
                ),
            },
        ));
    }
    Ok((stream, claims))
}

/// The fragments a session shows right now, oldest first.
pub(crate) async fn session_fragments(
    st: &AppState,
    c: &Claims,
    now: i64,
) -> ApiResult<Vec<FragmentMeta>> {
    let kind = kind_of(&c.selector);
    let max = c.max_results as usize;
    Ok(match c.mode.as_str() {
        "ON_DEMAND" => {
            let q = RangeQuery {
                kind,
                start_ms: c.start_ms.unwrap_or(i64::MIN),
                end_ms: c.end_ms.unwrap_or(i64::MAX),
                after: None,
                limit: max,
            };
            st.fragments.range(&c.arn, &q).await?
        }
        "LIVE_REPLAY" => {
            let start = c.start_ms.unwrap_or(now);
            let horizon = start + (now - c.created_ms).max(0);
            let end = c.end_ms.map_or(horizon, |e| e.min(horizon));
            let q = RangeQuery {
                kind,
                start_ms: start,
                end_ms: end,
                after: None,
                limit: 100_000,
            };
            let mut all = st.fragments.range(&c.arn, &q).await?;
            // The first fragment is always visible; later ones as playback time reaches them.
            if all.is_empty() {
                let q = RangeQuery {
                    kind,
                    start_ms: start,
                    end_ms: c.end_ms.unwrap_or(i64::MAX),
                    after: None,
                    limit: 1,
                };
                all = st.fragments.range(&c.arn, &q).await?;
            }
            let skip = all.len().saturating_sub(max);
            all.split_off(skip)
        }
        _ => {
            // LIVE: the newest fragments by ingestion, from the last 30 s at least.
            let q = RangeQuery {
                kind: TimestampKind::Server,
                start_ms: now - 5 * 60_000,
                end_ms: i64::MAX,
                after: None,
                limit: 100_000,
            };
            let mut all = st.fragments.range(&c.arn, &q).await?;
            if all
                .last()
                .is_none_or(|m| m.server_ms + m.duration_ms < now - 30_000)
                && now - c.created_ms < 1000
            {
                return Ok(Vec::new());
            }
            let skip = all.len().saturating_sub(max);
            all.split_off(skip)
        }
    })
}

/// `POST /getHLSStreamingSessionURL`.
pub(crate) async fn get_hls_session_url(
    st: AppState,
    ctx: RequestCtx,
    i: SessionInput,
) -> ApiResult<Value> {
    let (stream, claims) = session_claims(&st, i, false).await?;
    export_check(&st, &claims).await?;
    let token = playback_token::seal(st.auth.token_key(), &claims);
    tracing::info!(stream = %stream.name, mode = %claims.mode, container = %claims.container, "HLS session created");
    Ok(
        json!({ "HLSStreamingSessionURL": format!("{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}", st.base_url(&ctx, "http")) }),
    )
}

/// `POST /getDASHStreamingSessionURL`.
pub(crate) async fn get_dash_session_url(
    st: AppState,
    ctx: RequestCtx,
    i: SessionInput,
) -> ApiResult<Value> {
    let (stream, claims) = session_claims(&st, i, true).await?;
    export_check(&st, &claims).await?;
    let token = playback_token::seal(st.auth.token_key(), &claims);
    tracing::info!(stream = %stream.name, mode = %claims.mode, "DASH session created");
    Ok(
        json!({ "DASHStreamingSessionURL": format!("{}/dash/v1/getDASHManifest.mpd?SessionToken={token}", st.base_url(&ctx, "http")) }),
    )
}

/// The stream's current track set must be packageable (KVS checks at session creation).
async fn export_check(st: &AppState, c: &Claims) -> ApiResult<()> {
    let frags = session_fragments(st, c, now_ms()).await?;
    if let Some(last) = frags.last() {
        let set = st.fragments.load_track_set(last.track_set_id).await?;
        export::track_configs(&set)?;
    }
    Ok(())
}

fn start_of(c: &Claims, m: &FragmentMeta) -> i64 {
    if c.selector == "PRODUCER_TIMESTAMP" {
        m.producer_ms
    } else {
        m.server_ms
    }
}

fn with_cors(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn q<'a>(query: &'a HashMap<String, String>, name: &str) -> ApiResult<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::invalid(format!("the {name} query parameter is required")))
}

fn opt_track(query: &HashMap<String, String>) -> ApiResult<Option<u64>> {
    query
        .get("TrackNumber")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("TrackNumber {t:?} is not a number")))
        })
        .transpose()
}

async fn open_session(
    st: &AppState,
    query: &HashMap<String, String>,
    kind: &str,
) -> ApiResult<(Claims, String)> {
    let token = q(query, "SessionToken")?;
    let c = playback_token::open(st.auth.token_key(), token, now_ms() / 1000)?;
    if c.kind != kind {
        return Err(ApiError::new(
            ErrorKind::InvalidSignature,
            format!("this SessionToken is for {}, not {kind}", c.kind),
        ));
    }
    // A deleted (or deleted and re-created) stream ends its sessions.
    st.catalog
        .stream(&store::Selector::Arn(c.arn.clone()))
        .await?;
    Ok((c, token.to_owned()))
}

/// Reads a fragment's media bytes and frames, checking it belongs to the session's stream.
async fn fragment_for(
    st: &AppState,
    c: &Claims,
    number: &str,
) -> ApiResult<(
    FragmentMeta,
    Vec<store::FrameEntry>,
    Arc<store::TrackSet>,
    Bytes,
)> {
    let n: FragmentNumber = number.parse().map_err(|e: kvs_core::FragmentNumberError| {
        ApiError::invalid(format!("FragmentNumber: {e}"))
    })?;
    let meta = st.fragments.get(&c.arn, n).await?.ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("fragment {number} is not in this session's stream (expired?)"),
        )
    })?;
    let frames = st.fragments.frames(&meta).await?;
    let set = st.fragments.load_track_set(meta.track_set_id).await?;
    let media = st.fragments.read(&meta, 0, meta.size_bytes).await?;
    Ok((meta, frames, set, media))
}

/// The fragment with its cluster timecode rebased so that it starts at `start_ms` on the
/// session's media timeline: HLS/DASH players then see media times that agree with the
/// playlist and manifest.
fn rebased(start_ms: i64, meta: &FragmentMeta, set: &store::TrackSet) -> FragmentMeta {
    let ticks = i128::from(start_ms) * 1_000_000 / i128::from(set.timecode_scale_ns.max(1));
    FragmentMeta {
        cluster_timecode: u64::try_from(ticks.max(0)).unwrap_or(0),
        ..meta.clone()
    }
}

/// Where a segment starts on the media timeline: the fragment's producer timestamp. The
/// producer timeline is the one a live producer keeps contiguous (a fragment's frames end
/// where the next fragment's begin); server timestamps carry network and upload jitter (a
/// burst upload gets them milliseconds apart), which would make segments overlap.
///
/// KVS rewrites the DASH timeline to hide gaps; openkvs keeps them (explicit `S@t`), because a
/// shifted segment would need its position in its URL, and ffmpeg's DASH demuxer truncates
/// segment URLs longer than the manifest's own.
fn timeline_start(meta: &FragmentMeta) -> i64 {
    meta.producer_ms
}

async fn fmp4_media(
    st: &AppState,
    c: &Claims,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let (meta, frames, set, media) = fragment_for(st, c, q(query, "FragmentNumber")?).await?;
    let track = opt_track(query)?;
    let seq = u32::try_from(meta.number.0 & 0xFFFF_FFFF).unwrap_or(0);
    let start = timeline_start(&meta);
    let seg = export::fmp4_segment(&rebased(start, &meta, &set), &frames, &set, seq, track)?;
    let mut out = Vec::with_capacity(usize::try_from(seg.total_len()).unwrap_or(0));
    out.extend_from_slice(seg.plan.header());
    for r in &seg.payloads {
        let (a, b) = (
            usize::try_from(r.start).unwrap_or(usize::MAX),
            usize::try_from(r.end).unwrap_or(usize::MAX),
        );
        out.extend_from_slice(media.get(a..b).ok_or_else(|| {
            ApiError::new(ErrorKind::Internal, "segment plan outside the fragment")
        })?);
    }
    Ok(with_cors(Body::from(out).into_response(), "video/mp4"))
}

async fn fmp4_init(
    st: &AppState,
    c: &Claims,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let frags = session_fragments(st, c, now_ms()).await?;
    let last = frags
        .last()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "the session has no fragments"))?;
    let set = st.fragments.load_track_set(last.track_set_id).await?;
    let init = export::fmp4_init(&set, opt_track(query)?)?;
    Ok(with_cors(Body::from(init).into_response(), "video/mp4"))
}

async fn media_sequence(st: &AppState, c: &Claims, first: &FragmentMeta) -> ApiResult<u64> {
    if c.mode == "ON_DEMAND" {
        return Ok(0);
    }
    // Fragments that left the window since the session began (bounded by its 12 h maximum).
    let kind = kind_of(&c.selector);
    let from = match c.mode.as_str() {
        "LIVE_REPLAY" => c.start_ms.unwrap_or(0),
        _ => c.created_ms - 5 * 60_000,
    };
    let q = RangeQuery {
        kind,
        start_ms: from,
        end_ms: start_of(c, first) - 1,
        after: None,
        limit: 1_000_000,
    };
    Ok(st.fragments.range(&c.arn, &q).await?.len() as u64)
}

fn manifest_session(
    c: &Claims,
    set: &store::TrackSet,
    frags: &[FragmentMeta],
    ended: bool,
) -> ApiResult<manifest::Session> {
    let configs = export::track_configs(set)?;
    let total_ms: i64 = frags.iter().map(|f| f.duration_ms).sum::<i64>().max(1);
    let total_bytes: u64 = frags.iter().map(|f| f.size_bytes).sum();
    let bandwidth = total_bytes * 8 * 1000 / u64::try_from(total_ms).unwrap_or(1);
    let frames: u64 = frags.iter().map(|f| u64::from(f.frame_count)).sum();
    let mut video = None;
    let mut audio = None;
    for (t, cfg) in set.tracks.iter().zip(&configs) {
        let codec = cfg
            .codec_string()
            .map_err(|e| ApiError::new(ErrorKind::InvalidCodecPrivateData, e.to_string()))?;
        if t.track_type == 1 && video.is_none() {
            video = Some(manifest::VideoTrack {
                track: t.number,
                codec,
                width: u32::try_from(t.width.unwrap_or(0)).unwrap_or(0),
                height: u32::try_from(t.height.unwrap_or(0)).unwrap_or(0),
                // Frames of all tracks over time overestimates with audio; good enough as a hint.
                frame_rate: (frames > 0 && set.tracks.len() == 1)
                    .then(|| frames as f64 * 1000.0 / total_ms as f64),
                bandwidth_bps: bandwidth.max(1),
            });
        } else if t.track_type == 2 && audio.is_none() {
            audio = Some(manifest::AudioTrack {
                track: t.number,
                codec,
                sample_rate_hz: t.sampling_frequency.map_or(48_000, |f| f as u32),
                channels: u32::try_from(t.channels.unwrap_or(2)).unwrap_or(2),
                bandwidth_bps: 128_000,
            });
        }
    }
    let mode = match c.mode.as_str() {
        "ON_DEMAND" => manifest::PlaybackMode::OnDemand,
        "LIVE_REPLAY" => manifest::PlaybackMode::LiveReplay,
        _ => manifest::PlaybackMode::Live,
    };
    let container = if c.container == "MPEG_TS" {
        manifest::ContainerFormat::MpegTs
    } else {
        manifest::ContainerFormat::FragmentedMp4
    };
    let discontinuity_mode = match c.discontinuity.as_str() {
        "NEVER" => manifest::DiscontinuityMode::Never,
        "ON_DISCONTINUITY" => manifest::DiscontinuityMode::OnDiscontinuity,
        _ => manifest::DiscontinuityMode::Always,
    };
    Ok(manifest::Session {
        mode,
        container,
        discontinuity_mode,
        display_fragment_timestamp: c.display_timestamp,
        display_fragment_number: c.display_number,
        video,
        audio,
        hls_audio: manifest::HlsAudio::Muxed,
        ended,
    })
}

fn manifest_fragments(c: &Claims, frags: &[FragmentMeta]) -> Vec<manifest::Fragment> {
    let mut out: Vec<manifest::Fragment> = frags
        .iter()
        .map(|m| manifest::Fragment {
            number: m.number.to_string(),
            start_ms: m.producer_ms,
            display_ms: start_of(c, m),
            duration_ms: m.duration_ms.max(1),
            discontinuity: c.discontinuity == "ALWAYS",
        })
        .collect();
    if c.discontinuity == "ON_DISCONTINUITY" {
        manifest::mark_discontinuities(&mut out);
    }
    out
}

fn session_ended(c: &Claims, now: i64) -> bool {
    match c.mode.as_str() {
        "ON_DEMAND" => true,
        "LIVE_REPLAY" => c
            .end_ms
            .is_some_and(|e| c.start_ms.unwrap_or(0) + (now - c.created_ms) >= e),
        _ => false,
    }
}

async fn playlist_parts(
    st: &AppState,
    c: &Claims,
) -> ApiResult<(Vec<FragmentMeta>, Arc<store::TrackSet>, bool)> {
    let now = now_ms();
    let frags = session_fragments(st, c, now).await?;
    let last = frags
        .last()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "no fragments in this session yet"))?;
    let set = st.fragments.load_track_set(last.track_set_id).await?;
    Ok((frags, set, session_ended(c, now)))
}

/// `GET /hls/v1/{resource}`.
pub(crate) async fn hls(
    State(st): State<AppState>,
    Path(res): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    hls_inner(st, &res, &query)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn hls_inner(
    st: AppState,
    res: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let (c, token) = open_session(&st, query, "hls").await?;
    let urls = manifest::KvsUrls::new(&token);
    match res {
        "getHLSMasterPlaylist.m3u8" => {
            let (frags, set, ended) = playlist_parts(&st, &c).await?;
            let s = manifest_session(&c, &set, &frags, ended)?;
            let text = manifest::hls_master_playlist(&s, &urls)
                .map_err(|e| ApiError::new(ErrorKind::Internal, "playlist").with_source(e))?;
            Ok(with_cors(
                text.into_response(),
                "application/vnd.apple.mpegurl",
            ))
        }
        "getHLSMediaPlaylist.m3u8" => {
            let (frags, set, ended) = playlist_parts(&st, &c).await?;
            let s = manifest_session(&c, &set, &frags, ended)?;
            let mf = manifest_fragments(&c, &frags);
            let seq = media_sequence(&st, &c, &frags[0]).await?;
            let disc_seq = if c.discontinuity == "ALWAYS" { seq } else { 0 };
            let window = manifest::Window {
                fragments: &mf,
                media_sequence: seq,
                discontinuity_sequence: disc_seq,
            };
            let text = manifest::hls_media_playlist(&s, &urls, opt_track(query)?, &window)
                .map_err(|e| ApiError::new(ErrorKind::Internal, "playlist").with_source(e))?;
            Ok(with_cors(
                text.into_response(),
                "application/vnd.apple.mpegurl",
            ))
        }
        "getMP4InitFragment.mp4" => fmp4_init(&st, &c, query).await,
        "getMP4MediaFragment.mp4" => fmp4_media(&st, &c, query).await,
        "getTSFragment.ts" => {
            let (meta, frames, set, media) =
                fragment_for(&st, &c, q(query, "FragmentNumber")?).await?;
            let start = timeline_start(&meta);
            let ts = export::ts_segment(&meta, &frames, &set, start, &media)?;
            Ok(with_cors(Body::from(ts).into_response(), "video/mp2t"))
        }
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("/hls/v1/{other} is not an HLS resource"),
        )),
    }
}

/// `GET /dash/v1/{resource}`.
pub(crate) async fn dash(
    State(st): State<AppState>,
    Path(res): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    dash_inner(st, &res, &query)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn dash_inner(
    st: AppState,
    res: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let (c, token) = open_session(&st, query, "dash").await?;
    let urls = manifest::KvsUrls::new(&token);
    match res {
        "getDASHManifest.mpd" => {
            let now = now_ms();
            let (frags, set, ended) = playlist_parts(&st, &c).await?;
            let s = manifest_session(&c, &set, &frags, ended)?;
            let mf = manifest_fragments(&c, &frags);
            let (anchor, live) = if ended {
                (mf[0].start_ms, None)
            } else {
                // Dynamic: the period starts at media time 0 (the producer epoch), which keeps
                // every refresh of the MPD on the same timeline, and wall clock = media time +
                // `lag`: how far the server's clock runs ahead of the producer's.
                let lag = match c.mode.as_str() {
                    // Replay paced from the session's creation, from its first fragment.
                    "LIVE_REPLAY" => c.created_ms - mf[0].start_ms,
                    // The latest arrival delay seen, but never so late that the newest listed
                    // segment would not be available yet.
                    _ => {
                        let last = &mf[mf.len() - 1];
                        frags
                            .iter()
                            .map(|m| m.server_ms - m.producer_ms)
                            .max()
                            .unwrap_or(0)
                            .min(now - (last.start_ms + last.duration_ms))
                    }
                };
                (0, Some(manifest::DashLive::new(now, lag, &mf)))
            };
            let window = manifest::Window::first(&mf);
            let text = manifest::dash_manifest(&s, &urls, &window, anchor, live.as_ref())
                .map_err(|e| ApiError::new(ErrorKind::Internal, "manifest").with_source(e))?;
            Ok(with_cors(text.into_response(), "application/dash+xml"))
        }
        "getMP4InitFragment.mp4" => fmp4_init(&st, &c, query).await,
        "getMP4MediaFragment.mp4" => fmp4_media(&st, &c, query).await,
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("/dash/v1/{other} is not a DASH resource"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ClipInput {
    #[serde(flatten)]
    stream: StreamRef,
    clip_fragment_selector: Option<Selector>,
}

/// Without a configured cap, a clip range may hold at most this many fragments (about 55 h of
/// 2 s GOPs): the plan (one entry per frame) is built in memory before the first byte.
const MAX_CLIP_FRAGMENTS: usize = 100_000;

/// A clip ready to stream: the stream, its progressive MP4 plan and the fragments the plan
/// reads from (in plan order).
pub(crate) struct PlannedClip {
    pub(crate) stream: StreamRecord,
    pub(crate) plan: mp4::ProgressivePlan,
    pub(crate) metas: Vec<FragmentMeta>,
}

/// Validates GetClip's selector members (shared by `POST /getClip` and the ranged clip URL):
/// the selector type and the time range, as epoch milliseconds.
pub(crate) fn clip_range(
    kind: Option<&String>,
    start: Option<&Value>,
    end: Option<&Value>,
) -> ApiResult<(TimestampKind, i64, i64)> {
    let kind = one_of(
        kind,
        "FragmentSelectorType",
        &["SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"],
        "",
    )?;
    if kind.is_empty() {
        return Err(ApiError::invalid(
            "ClipFragmentSelector.FragmentSelectorType is required",
        ));
    }
    let start = timestamp_ms(
        v::required(&start, "timestampRange.startTimestamp")?,
        "StartTimestamp",
    )?;
    let end = timestamp_ms(
        v::required(&end, "timestampRange.endTimestamp")?,
        "EndTimestamp",
    )?;
    if end <= start {
        return Err(ApiError::invalid(
            "EndTimestamp must be later than StartTimestamp",
        ));
    }
    Ok((kind_of(kind), start, end))
}

/// Plans the progressive MP4 of `stream` between `start` and `end` (epoch ms, GetClip's range
/// semantics, `kvs-api.md` §10): 404 when no fragment is in range; the clip stops at the first
/// fragment whose track layout differs from the first one's.
pub(crate) async fn plan_clip(
    st: &AppState,
    stream: StreamRecord,
    kind: TimestampKind,
    start: i64,
    end: i64,
) -> ApiResult<PlannedClip> {
    let cap = st.config.clip_cap;
    let limit = cap
        .max_fragments
        .unwrap_or(MAX_CLIP_FRAGMENTS)
        .min(MAX_CLIP_FRAGMENTS);
    let q = RangeQuery {
        kind,
        start_ms: start,
        end_ms: end,
        after: None,
        limit: limit + 1,
    };
    let t0 = std::time::Instant::now();
    let mut metas = st.fragments.range(&stream.arn, &q).await?;
    let t_range = t0.elapsed();
    if metas.len() > limit {
        if cap.max_fragments.is_some_and(|m| m <= MAX_CLIP_FRAGMENTS) {
            metas.truncate(limit);
        } else {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "the range holds more than {MAX_CLIP_FRAGMENTS} fragments; ask for a shorter \
                     range (or configure --max-clip-fragments to truncate, as KVS does)"
                ),
            ));
        }
    }
    if let Some(max_bytes) = cap.max_bytes {
        // Keep fragments until the one that reaches the byte cap (at least one).
        let mut total = 0u64;
        let keep = metas
            .iter()
            .position(|m| {
                total += m.size_bytes;
                total >= max_bytes
            })
            .map_or(metas.len(), |i| i + 1);
        metas.truncate(keep);
    }
    let Some(first) = metas.first() else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "stream {} has no fragments in the requested range",
                stream.name
            ),
        ));
    };
    // One clip has one track layout: stop at the first fragment whose tracks differ.
    let set_id = first.track_set_id;
    let set = st.fragments.load_track_set(set_id).await?;
    let same_layout = metas
        .iter()
        .position(|m| m.track_set_id != set_id)
        .unwrap_or(metas.len());
    metas.truncate(same_layout);
    let tables = st.fragments.frames_many(&metas).await?;
    let t_frames = t0.elapsed();
    let frags: Vec<_> = metas.into_iter().zip(tables).collect();
    let plan = export::clip_plan(&frags, &set)?;
    tracing::debug!(
        stream = %stream.name,
        fragments = frags.len(),
        bytes = plan.total_len(),
        range_ms = t_range.as_secs_f64() * 1e3,
        frames_ms = (t_frames - t_range).as_secs_f64() * 1e3,
        plan_ms = (t0.elapsed() - t_frames).as_secs_f64() * 1e3,
        "clip planned"
    );
    let metas = frags.into_iter().map(|(m, _)| m).collect();
    Ok(PlannedClip {
        stream,
        plan,
        metas,
    })
}

/// `POST /getClip`: a progressive MP4, planned first and streamed from the fragment files.
pub(crate) async fn get_clip(st: AppState, ctx: RequestCtx, i: ClipInput) -> ApiResult<Response> {
    // Exporting is an operator action, as on the clip URL (`clip_url.rs`).
    if ctx.principal.role != crate::Role::Admin {
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            format!(
                "{} is read-only; exporting clips needs an admin key",
                ctx.principal.access_key_id
            ),
        ));
    }
    let stream = resolve_stream(&st, &i.stream).await?;
    let sel = v::required(&i.clip_fragment_selector, "clipFragmentSelector")?;
    let kind = sel.fragment_selector_type.as_ref();
    let r = v::required(&sel.timestamp_range, "clipFragmentSelector.timestampRange")?;
    let (kind, start, end) =
        clip_range(kind, r.start_timestamp.as_ref(), r.end_timestamp.as_ref())?;
    let clip = plan_clip(&st, stream, kind, start, end).await?;
    let total = clip.plan.total_len();
    tracing::info!(stream = %clip.stream.name, fragments = clip.metas.len(), bytes = total, "GetClip");
    let mut resp = Response::new(plan_body(st, clip.plan, clip.metas, 0..total));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    Ok(resp)
}

/// A response body streaming `range` of `plan` from a background task.
pub(crate) fn plan_body(
    st: AppState,
    plan: mp4::ProgressivePlan,
    metas: Vec<FragmentMeta>,
    range: std::ops::Range<u64>,
) -> Body {
    let rx = spawn_plan(st, plan, metas, range);
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }))
}

/// Streams `range` of `plan` into a small channel from a background task; a failure ends the
/// channel with an error item.
pub(crate) fn spawn_plan(
    st: AppState,
    plan: mp4::ProgressivePlan,
    metas: Vec<FragmentMeta>,
    range: std::ops::Range<u64>,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if let Err(e) = stream_plan(&st, &plan, &metas, range, &tx).await {
            tracing::warn!(error = ?e, "clip stream stopped");
            let _ = tx
                .send(Err(std::io::Error::other("clip read failed")))
                .await;
        }
    });
    rx
}

/// Streams `range` of a plan: its own header bytes and byte ranges of the fragments' media.
/// Each fragment's media is read once, whole (a plan visits a fragment's samples together),
/// and the many small sample slices are copied into pieces of about 1 MiB, so a clip costs
/// one read per fragment and one channel message per MiB; memory stays flat (a fragment plus
/// a piece).
async fn stream_plan(
    st: &AppState,
    plan: &mp4::ProgressivePlan,
    metas: &[FragmentMeta],
    range: std::ops::Range<u64>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> ApiResult<()> {
    const PIECE: usize = 1 << 20;
    let mut out = bytes::BytesMut::with_capacity(PIECE);
    let mut cached: Option<(usize, Bytes)> = None;
    // Collected first: the iterator borrows the plan across awaits otherwise.
    let slices: Vec<mp4::Slice<'_>> = plan.slices(range).collect();
    for slice in slices {
        match slice {
            mp4::Slice::Bytes(b) => out.extend_from_slice(b),
            mp4::Slice::Media {
                fragment_index,
                offset,
                len,
            } => {
                let fi = fragment_index as usize;
                if cached.as_ref().is_none_or(|(i, _)| *i != fi) {
                    let meta = metas.get(fi).ok_or_else(|| {
                        ApiError::new(ErrorKind::Internal, "plan refers to a missing fragment")
                    })?;
                    let media = st.fragments.read(meta, 0, meta.size_bytes).await?;
                    cached = Some((fi, media));
                }
                let media = &cached.as_ref().expect("just cached").1;
                let piece = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(offset + len).ok())
                    .and_then(|(a, b)| media.get(a..b))
                    .ok_or_else(|| {
                        ApiError::new(ErrorKind::Internal, "short read from the fragment store")
                    })?;
                out.extend_from_slice(piece);
            }
        }
        if out.len() >= PIECE && tx.send(Ok(out.split().freeze())).await.is_err() {
            return Ok(());
        }
    }
    if !out.is_empty() {
        let _ = tx.send(Ok(out.freeze())).await;
    }
    Ok(())
}
