//! The paced frames as a live MKV stream for PutMedia (`kvs-api.md` §7.3): EBML header, an
//! unknown-size Segment, Info, Tracks, then one unknown-size Cluster per video key frame whose
//! Timecode is the wall-clock time in ms (ABSOLUTE fragment timecodes), so every loop of the
//! file lands later on the stream's timeline instead of overlapping the previous one.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mkv::{Block, SizeMode, Writer};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast;

use crate::media::{Clip, ClipFrame, Kind};

/// Track numbers in the output.
const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The stream header: EBML header, Segment (unknown size), Info, Tracks.
pub(crate) fn header(clip: &Clip) -> Vec<u8> {
    let mut w = Writer::new();
    w.ebml_header(&mkv::EbmlHeader::matroska(2));
    w.begin_segment(SizeMode::Unknown);
    w.info(&mkv::Info {
        timecode_scale_ns: mkv::DEFAULT_TIMECODE_SCALE_NS,
        muxing_app: Some("openkvs-camera".to_owned()),
        writing_app: Some("openkvs-camera".to_owned()),
        ..Default::default()
    });
    let mut tracks = Vec::new();
    if let Some(v) = &clip.video_track {
        let mut v = v.clone();
        v.number = VIDEO_TRACK;
        v.uid = VIDEO_TRACK;
        tracks.push(v);
    }
    if let Some(a) = &clip.audio_track {
        let mut a = a.clone();
        a.number = AUDIO_TRACK;
        a.uid = AUDIO_TRACK;
        tracks.push(a);
    }
    w.tracks(&tracks);
    w.into_bytes()
}

/// Builds clusters from frames as they are paced.
#[derive(Debug, Default)]
pub(crate) struct Muxer {
    cluster_ms: Option<u64>,
}

impl Muxer {
    /// The bytes for one frame sent at `now_ms`: a new Cluster first at a video key frame.
    /// Frames before the first key frame are dropped (`None`).
    pub(crate) fn frame(&mut self, f: &ClipFrame, now_ms: u64) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        let start_new = f.kind == Kind::Video && f.keyframe
            // Block timecodes are i16 ms: start a cluster before they overflow.
            || self.cluster_ms.is_some_and(|c| now_ms.saturating_sub(c) > 30_000);
        if start_new {
            w.begin_cluster(now_ms, SizeMode::Unknown);
            self.cluster_ms = Some(now_ms);
        }
        let cluster_ms = self.cluster_ms?;
        let rel = i16::try_from(now_ms.saturating_sub(cluster_ms)).unwrap_or(i16::MAX);
        let track = match f.kind {
            Kind::Video => VIDEO_TRACK,
            Kind::Audio => AUDIO_TRACK,
        };
        w.block(&Block::simple(track, rel, f.keyframe, &f.mkv_payload))
            .ok()?;
        Some(w.into_bytes())
    }
}

/// Writes the header, then every frame, into `pipe` until it closes. Never blocks the pacer: a
/// full broadcast queue skips to the next key frame.
pub(crate) async fn write(
    clip: Arc<Clip>,
    mut frames: broadcast::Receiver<ClipFrame>,
    mut pipe: tokio::io::DuplexStream,
) {
    if pipe.write_all(&header(&clip)).await.is_err() {
        return;
    }
    let mut mux = Muxer::default();
    loop {
        let f = match frames.recv().await {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "PutMedia upload fell behind; frames dropped");
                mux.cluster_ms = None;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(bytes) = mux.frame(&f, now_ms())
            && pipe.write_all(&bytes).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header plus muxed frames parse back with openkvs-mkv: tracks renumbered, a cluster
    /// per key frame at the wall-clock time, block timecodes relative to it.
    #[test]
    fn muxed_stream_parses_back() {
        let clip = Clip::from_mkv(crate::TEST_PATTERN_MKV).unwrap();
        let mut bytes = header(&clip);
        let mut mux = Muxer::default();
        let t0 = 1_700_000_000_000u64;
        let mut expected_frames = 0;
        for f in clip.frames.iter().take(60) {
            if let Some(b) = mux.frame(f, t0 + f.pts.as_millis() as u64) {
                bytes.extend(b);
                expected_frames += 1;
            }
        }
        let mut p = mkv::Parser::builder().build();
        p.push(&bytes);
        p.finish().unwrap();
        let mut clusters = Vec::new();
        let mut frames = 0;
        let mut tracks = Vec::new();
        while let Some(ev) = p.poll().unwrap() {
            match ev {
                mkv::Event::Tracks { tracks: t, .. } => tracks = t,
                mkv::Event::ClusterStart { timecode, .. } => clusters.push(timecode),
                mkv::Event::Frame(_) => frames += 1,
                _ => {}
            }
        }
        assert_eq!(
            tracks
                .iter()
                .map(|t| (t.number, t.codec_id.as_str()))
                .collect::<Vec<_>>(),
            [(1, "V_MPEG4/ISO/AVC"), (2, "A_OPUS")]
        );
        assert_eq!(frames, expected_frames);
        // 60 frames of 25 fps video + 50/s audio cover about 0.8 s: one GOP, one cluster,
        // dated when the first key frame went out.
        let key = clip
            .frames
            .iter()
            .find(|f| f.keyframe && f.kind == Kind::Video)
            .unwrap();
        assert_eq!(clusters, [t0 + key.pts.as_millis() as u64]);
    }
}
