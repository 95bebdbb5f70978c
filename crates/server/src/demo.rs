//! `openkvs serve --demo`: a simulated bike-stand camera, so that a newcomer who opens the
//! printed URL sees live video and a growing archive within seconds.
//!
//! It creates stream + signaling channel [`DEMO_NAME`] (a bike stand is a channel and a stream
//! with the same name) and pushes a looping H.264 sample to the stream with PutMedia over the
//! server's own HTTP listener, as a real camera would: the sample's clusters are cut into one
//! cluster per GOP and re-timestamped with wall-clock (ABSOLUTE) timecodes, and the put-media
//! client paces them in real time (`--realtime`) and reconnects after errors.
//!
//! With the `webrtc` feature (default) it also runs `openkvs-camera` in-process as the WebRTC
//! MASTER of the channel (the built-in H.264 + Opus test pattern), so the page's live view plays
//! over WebRTC; without it the page falls back to LIVE HLS. The recorded stream and the WebRTC
//! feed are two loops of similar test patterns, not one encoder: the camera's live MKV output is
//! Opus, which the HLS/MP4 export does not carry, so the stream gets the H.264 + AAC sample.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use kvs_core::{Arn, ResourceKind};
use tokio::io::AsyncWriteExt as _;

use crate::cli::{OutputFormat, TimecodeTypeArg};
use crate::client::aws_config::ClientConfig;
use crate::client::http::Endpoint;
use crate::client::put_media;

/// Stream and channel name of the demo camera.
pub(crate) const DEMO_NAME: &str = "demo-bike-stand";

/// The looped sample: H.264 + AAC, 4 s, 320x240, GOP 1 s (samples/README.md).
const SAMPLE: &[u8] = include_bytes!("../../../samples/ffmpeg_h264_aac.mkv");

/// One frame of the sample, its time in ms from the sample's start.
#[derive(Debug, Clone)]
struct SampleFrame {
    track: u64,
    pts_ms: i64,
    keyframe: bool,
    payload: Vec<u8>,
}

/// The parsed sample: its tracks, frames in file order and loop period.
#[derive(Debug)]
struct Sample {
    tracks: Vec<mkv::TrackEntry>,
    frames: Vec<SampleFrame>,
    period_ms: i64,
    video_track: u64,
}

fn parse_sample(bytes: &[u8]) -> anyhow::Result<Sample> {
    let mut p = mkv::Parser::builder().build();
    p.push(bytes);
    p.finish().context("parsing the demo sample")?;
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    let mut scale_ns = mkv::DEFAULT_TIMECODE_SCALE_NS;
    let mut cluster_tc = 0i64;
    while let Some(ev) = p.poll().context("parsing the demo sample")? {
        match ev {
            mkv::Event::Info { info, .. } => scale_ns = info.timecode_scale_ns,
            mkv::Event::Tracks { tracks: t, .. } => tracks = t,
            mkv::Event::ClusterStart { timecode, .. } => {
                cluster_tc = i64::try_from(timecode).context("cluster timecode")?;
            }
            mkv::Event::Frame(f) => {
                let ticks = cluster_tc + i64::from(f.timecode_rel);
                let scale = i64::try_from(scale_ns).context("timecode scale")?;
                frames.push(SampleFrame {
                    track: f.track,
                    pts_ms: ticks * scale / 1_000_000,
                    keyframe: f.keyframe,
                    payload: f.payload,
                });
            }
            _ => {}
        }
    }
    let video_track = tracks
        .iter()
        .find(|t| t.kind == mkv::TrackKind::Video)
        .map(|t| t.number)
        .context("the demo sample has no video track")?;
    let first = frames.first().map(|f| f.pts_ms).unwrap_or_default();
    for f in &mut frames {
        f.pts_ms -= first;
    }
    // The loop restarts one video frame after the last video frame (25 fps: 40 ms).
    let last_video = frames
        .iter()
        .filter(|f| f.track == video_track)
        .map(|f| f.pts_ms)
        .max()
        .context("the demo sample has no video frames")?;
    Ok(Sample {
        tracks,
        frames,
        period_ms: last_video + 40,
        video_track,
    })
}

impl Sample {
    /// Frames grouped by GOP: each group starts at a video key frame.
    fn gops(&self) -> Vec<&[SampleFrame]> {
        let starts: Vec<usize> = self
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.track == self.video_track && f.keyframe)
            .map(|(i, _)| i)
            .collect();
        let mut out = Vec::new();
        for (n, &s) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(self.frames.len());
            out.push(&self.frames[s..end]);
        }
        out
    }

    /// The EBML header, unknown-size Segment, Info and Tracks of the live stream.
    fn header(&self) -> Vec<u8> {
        let mut w = mkv::Writer::new();
        w.ebml_header(&mkv::EbmlHeader::default());
        w.begin_segment(mkv::SizeMode::Unknown);
        w.info(&mkv::Info {
            title: Some("openkvs demo bike stand".into()),
            ..mkv::Info::default()
        });
        w.tracks(&self.tracks);
        w.into_bytes()
    }

    /// One cluster per GOP of loop `n`, timecodes in ms from 1970.
    fn clusters(&self, origin_ms: i64, n: i64) -> anyhow::Result<Vec<u8>> {
        let mut w = mkv::Writer::new();
        let base = origin_ms + n * self.period_ms;
        for gop in self.gops() {
            let tc = base + gop[0].pts_ms;
            let blocks: Vec<mkv::Block<'_>> = gop
                .iter()
                .map(|f| {
                    let rel = i16::try_from(base + f.pts_ms - tc).unwrap_or(i16::MAX);
                    mkv::Block::simple(f.track, rel, f.keyframe, &f.payload)
                })
                .collect();
            w.cluster(u64::try_from(tc).context("timecode")?, &blocks)
                .context("writing a demo cluster")?;
        }
        Ok(w.into_bytes())
    }
}

/// Creates the demo stream and channel if they do not exist.
pub(crate) async fn ensure_resources(state: &api::AppState) -> anyhow::Result<()> {
    let now = api::now_ms();
    let sel = store::Selector::Name(DEMO_NAME.to_owned());
    if state.catalog.stream(&sel).await.is_err() {
        let arn = Arn::new(
            &state.config.region,
            &state.config.account_id,
            ResourceKind::Stream,
            DEMO_NAME,
            now as u64,
        );
        state
            .catalog
            .create_stream(store::NewStream {
                name: DEMO_NAME.into(),
                arn: arn.to_string(),
                device_name: Some("openkvs demo camera".into()),
                media_type: Some("video/h264,audio/aac".into()),
                kms_key_id: None,
                created_ms: now,
                data_retention_hours: 24,
                storage_tier: "HOT".into(),
                tags: Default::default(),
            })
            .await
            .context("creating the demo stream")?;
    }
    if state.catalog.channel(&sel).await.is_err() {
        let arn = Arn::new(
            &state.config.region,
            &state.config.account_id,
            ResourceKind::Channel,
            DEMO_NAME,
            now as u64,
        );
        state
            .catalog
            .create_channel(store::NewChannel {
                name: DEMO_NAME.into(),
                arn: arn.to_string(),
                channel_type: "SINGLE_MASTER".into(),
                created_ms: now,
                message_ttl_seconds: 60,
                tags: Default::default(),
            })
            .await
            .context("creating the demo signaling channel")?;
    }
    Ok(())
}

/// Pushes the looping sample to the demo stream until the process ends. `endpoint` is the
/// server's own listener; `ca_bundle` its development CA under `--tls-self-signed`.
pub(crate) async fn run_camera(
    endpoint: String,
    credentials: sigv4::Credentials,
    region: String,
    ca_bundle: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let sample = parse_sample(SAMPLE)?;
    let cfg = ClientConfig {
        endpoint: Endpoint::parse(&endpoint)?,
        credentials,
        region,
        ca_bundle,
        credentials_source: "the root key (demo camera)".into(),
    };
    let settings = put_media::Settings {
        stream: DEMO_NAME.into(),
        timecode_type: TimecodeTypeArg::Absolute,
        realtime: true,
        resume: true,
        output: OutputFormat::Text,
        max_buffer: 8 << 20,
        ack_timeout: Duration::from_secs(30),
        retries: u32::MAX,
        quiet: true,
    };
    // Small pipe: the generator stays about one loop ahead of the paced upload.
    let (mut tx, rx) = tokio::io::duplex(32 << 10);
    let generator = async move {
        let origin = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        tx.write_all(&sample.header()).await?;
        for n in 0.. {
            tx.write_all(&sample.clusters(origin, n)?).await?;
        }
        anyhow::Ok(())
    };
    let upload = put_media::run(&cfg, &settings, rx, None);
    tokio::select! {
        r = generator => r.context("demo camera input"),
        r = upload => r.map(|_| ()).context("demo camera upload"),
    }
}

/// Runs the WebRTC master of the demo channel until `shutdown` completes.
#[cfg(feature = "webrtc")]
pub(crate) async fn run_webrtc_master(
    endpoint: String,
    credentials: sigv4::Credentials,
    region: String,
    ca_bundle: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let tls = if endpoint.starts_with("https://") {
        Some(crate::client::http::tls_client_config(
            ca_bundle.as_deref(),
        )?)
    } else {
        None
    };
    let mut cfg = camera::CameraConfig::new(
        endpoint,
        credentials,
        DEMO_NAME,
        camera::MediaSource::TestPattern,
    );
    cfg.region = region;
    cfg.tls = tls;
    camera::run(cfg, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_loops_in_gops_with_absolute_timecodes() {
        let s = parse_sample(SAMPLE).unwrap();
        assert_eq!(s.period_ms, 4000, "4 s sample at 25 fps");
        let gops = s.gops();
        assert_eq!(gops.len(), 4, "GOP 25 at 25 fps");
        let origin = 1_700_000_000_000;
        let mut p = mkv::Parser::builder().build();
        p.push(&s.header());
        p.push(&s.clusters(origin, 0).unwrap());
        p.push(&s.clusters(origin, 1).unwrap());
        p.finish().unwrap();
        let mut tcs = Vec::new();
        let mut frames = 0;
        while let Some(ev) = p.poll().unwrap() {
            match ev {
                mkv::Event::ClusterStart { timecode, .. } => tcs.push(timecode),
                mkv::Event::Frame(_) => frames += 1,
                _ => {}
            }
        }
        assert_eq!(frames, 2 * s.frames.len());
        let want: Vec<u64> = (0..8).map(|i| origin as u64 + i * 1000).collect();
        assert_eq!(tcs, want);
    }
}
