//! Integration tests of `openkvs-ingest`: producer-shaped bodies built with `mkv::Writer`
//! (kvssink, ffmpeg, RELATIVE, audio-only), every ErrorId, replays across sessions, property
//! tests and golden runs over `samples/*.mkv`. One test binary, to link once.

mod errors;
mod golden;
mod props;
mod replay;
mod scenarios;

use kvs_core::FragmentNumber;
use mkv::{
    Audio, Block, EbmlHeader, Info, SizeMode, Tag, TrackEntry, TrackKind, Video, Writer, ids,
};
use openkvs_ingest::{Output, Session, SessionConfig, SessionStats};
use store::NewFragment;

pub(crate) const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/test/1";

/// Producer clock at the first frame in ABSOLUTE tests (2023-11-14T22:13:20Z).
pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) fn cfg() -> SessionConfig {
    SessionConfig::new(ARN)
}

pub(crate) fn video(number: u64) -> TrackEntry {
    TrackEntry {
        number,
        uid: number,
        kind: TrackKind::Video,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: Some(vec![1, 0x42, 0xc0, 0x1e]),
        name: Some("kinesis_video".into()),
        video: Some(Video {
            pixel_width: 320,
            pixel_height: 240,
        }),
        ..Default::default()
    }
}

pub(crate) fn audio(number: u64) -> TrackEntry {
    TrackEntry {
        number,
        uid: number,
        kind: TrackKind::Audio,
        codec_id: "A_AAC".into(),
        codec_private: Some(vec![0x11, 0x90]),
        name: Some("audio".into()),
        audio: Some(Audio {
            sampling_frequency: 48000.0,
            channels: 2,
            bit_depth: None,
        }),
        ..Default::default()
    }
}

/// One frame to write: track, timecode relative to its cluster, key flag, payload length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F {
    pub(crate) track: u64,
    pub(crate) rel: i16,
    pub(crate) key: bool,
    pub(crate) len: usize,
}

pub(crate) fn f(track: u64, rel: i16, key: bool, len: usize) -> F {
    F {
        track,
        rel,
        key,
        len,
    }
}

/// Deterministic payload, distinct per (cluster, frame).
pub(crate) fn payload(tc: u64, fr: &F) -> Vec<u8> {
    (0..fr.len)
        .map(|i| (tc as usize * 7 + fr.track as usize * 31 + fr.rel as usize * 13 + i) as u8)
        .collect()
}

/// Builds a PutMedia body and remembers the payloads written.
pub(crate) struct Body {
    pub(crate) w: Writer,
}

impl Body {
    pub(crate) fn new() -> Self {
        Body { w: Writer::new() }
    }

    /// EBML header, unknown-size Segment, Info (TimecodeScale `scale_ns`), Tracks — what a KVS
    /// producer sends first (kvssink-behaviour.md §5).
    pub(crate) fn doc_scaled(&mut self, tracks: &[TrackEntry], scale_ns: u64) -> &mut Self {
        self.w.ebml_header(&EbmlHeader::matroska(2));
        self.w.begin_segment(SizeMode::Unknown);
        self.w.info(&Info {
            timecode_scale_ns: scale_ns,
            title: Some("Kinesis Video SDK".into()),
            segment_uid: Some(vec![7; 16]),
            ..Default::default()
        });
        if !tracks.is_empty() {
            self.w.tracks(tracks);
        }
        self
    }

    pub(crate) fn doc(&mut self, tracks: &[TrackEntry]) -> &mut Self {
        self.doc_scaled(tracks, 1_000_000)
    }

    /// A cluster with `Timecode` `tc` (kvssink style: unknown size, `Position` 0).
    pub(crate) fn cluster(&mut self, tc: u64, frames: &[F]) -> &mut Self {
        self.cluster_sized(tc, frames, SizeMode::Unknown)
    }

    pub(crate) fn cluster_sized(&mut self, tc: u64, frames: &[F], size: SizeMode) -> &mut Self {
        self.w.begin_cluster(tc, size);
        if size == SizeMode::Unknown {
            self.w.uint_element(ids::POSITION, 0);
        }
        for fr in frames {
            let p = payload(tc, fr);
            self.w
                .block(&Block::simple(fr.track, fr.rel, fr.key, &p))
                .unwrap();
        }
        self.w.end_cluster().unwrap();
        self
    }

    /// A Tags element (Segment level, or inside a known-size cluster if one is open).
    pub(crate) fn tags(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        self.w.tags(&[Tag::strings(pairs.iter().copied())]);
        self
    }

    pub(crate) fn eof(&mut self) -> &mut Self {
        self.tags(&[(mkv::AWS_KINESISVIDEO_END_OF_FRAGMENT, "")])
    }

    /// Everything written so far, leaving the writer empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.w.take()
    }
}

/// A kvssink GOP: video key at 0, then video every 33 ms (30 frames) and audio every 20 ms
/// (50 frames) interleaved in pts order, audio never key; unknown durations.
pub(crate) fn gop_av() -> Vec<F> {
    let mut v: Vec<F> = (0..30)
        .map(|i| f(1, i * 33, i == 0, if i == 0 { 400 } else { 40 }))
        .collect();
    v.extend((0..50).map(|j| f(2, j * 20, false, 8)));
    v.sort_by_key(|fr| (fr.rel, fr.track));
    v
}

/// A video-only GOP of `n` frames every 40 ms, key first.
pub(crate) fn gop_v(n: i16) -> Vec<F> {
    (0..n)
        .map(|i| f(1, i * 40, i == 0, if i == 0 { 300 } else { 30 }))
        .collect()
}

/// The fragment-number rendering of tests: `N<ms>.<counter>` for `from_time(ms * 1000,
/// counter)`.
pub(crate) fn num(n: FragmentNumber) -> String {
    let us = n.0 >> 20;
    let c = n.0 & 0xF_FFFF;
    if us.is_multiple_of(1000) {
        format!("N{}.{c}", us / 1000)
    } else {
        format!("N{us}us.{c}")
    }
}

pub(crate) fn render_fragment(fr: &NewFragment) -> String {
    let mut s = format!(
        "FRAGMENT {} tc={} producer={} server={} dur={} frames={} bytes={}",
        num(fr.number),
        fr.cluster_timecode,
        fr.producer_ms,
        fr.server_ms,
        fr.duration_ms,
        fr.frames.len(),
        fr.media.len()
    );
    if !fr.tags.is_empty() {
        s.push_str(&format!(" tags={:?}", fr.tags));
    }
    s
}

/// One line per output, for exact expectations.
pub(crate) fn render(o: &Output) -> String {
    match o {
        Output::Ack(a) => {
            let mut s = a.event.to_string();
            if let Some(tc) = a.fragment_timecode {
                s.push_str(&format!(" tc={tc}"));
            }
            if let Some(n) = a.fragment_number {
                s.push_str(&format!(" {}", num(n)));
            }
            if let Some(e) = a.error_id {
                s.push_str(&format!(" id={e}"));
            }
            s
        }
        Output::Fragment(c) => {
            assert_eq!(c.fragment_timecode, c.fragment.cluster_timecode);
            render_fragment(&c.fragment)
        }
        Output::Duplicate {
            number,
            fragment_timecode,
        } => format!("DUPLICATE tc={fragment_timecode} {}", num(*number)),
        Output::Error(e) => format!("why {}", e.error_id()),
        Output::End { error_id } => format!("END {error_id:?}"),
    }
}

/// Drives a session: pushes `chunks` (bytes, server ms), finishes at `finish_ms`, checking
/// invariants after every call. Returns the outputs after each push (and finish, last).
pub(crate) fn drive(
    session: &mut Session,
    chunks: &[(Vec<u8>, i64)],
    finish_ms: Option<i64>,
) -> Vec<Vec<Output>> {
    let mut per_step = Vec::new();
    session.check_invariants();
    for (bytes, now) in chunks {
        session.push(bytes, *now);
        session.check_invariants();
        per_step.push(drain(session));
    }
    if let Some(now) = finish_ms {
        session.finish(now);
        session.check_invariants();
        per_step.push(drain(session));
    }
    per_step
}

pub(crate) fn drain(session: &mut Session) -> Vec<Output> {
    let mut v = Vec::new();
    while let Some(o) = session.poll() {
        session.check_invariants();
        v.push(o);
    }
    v
}

/// Runs a whole body pushed at once at `now_ms`, then finish.
pub(crate) fn run_once(
    cfg: SessionConfig,
    body: &[u8],
    now_ms: i64,
) -> (Vec<Output>, SessionStats) {
    let mut s = Session::new(cfg);
    let out = drive(&mut s, &[(body.to_vec(), now_ms)], Some(now_ms))
        .into_iter()
        .flatten()
        .collect();
    (out, s.stats())
}

pub(crate) fn lines(outputs: &[Output]) -> Vec<String> {
    outputs.iter().map(render).collect()
}

pub(crate) fn fragments(outputs: &[Output]) -> Vec<&NewFragment> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Fragment(c) => Some(&c.fragment),
            _ => None,
        })
        .collect()
}

/// Asserts `got` equals `want` line by line, printing both on failure.
#[track_caller]
pub(crate) fn assert_lines(got: &[Output], want: &[&str]) {
    let got = lines(got);
    assert_eq!(
        got,
        want,
        "\n got:\n  {}\n want:\n  {}\n",
        got.join("\n  "),
        want.join("\n  ")
    );
}

/// Asserts the media bytes are the frame payloads, in frame-table order.
#[track_caller]
pub(crate) fn assert_media_matches(fr: &NewFragment, payloads: &[Vec<u8>]) {
    let want: Vec<u8> = payloads.concat();
    assert_eq!(
        fr.media.as_ref(),
        &want[..],
        "media of fragment {}",
        num(fr.number)
    );
    assert_eq!(fr.frames.len(), payloads.len());
    for (e, p) in fr.frames.iter().zip(payloads) {
        assert_eq!(e.size as usize, p.len());
        let at = e.offset as usize;
        assert_eq!(&fr.media[at..at + p.len()], &p[..]);
    }
}
