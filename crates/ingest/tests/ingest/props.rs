//! Property tests: the outputs do not depend on how the body is chunked, the session never
//! panics on arbitrary or corrupted bytes, and the output contract of the crate docs holds —
//! with `check_invariants` after every step.

use mkv::{Block, SizeMode, Tag, TrackEntry};
use openkvs_ingest::{AckEvent, Output, Session, SessionConfig};
use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Item {
    /// A new document with one of the track layouts of `tracks_of`.
    Doc(u8),
    Cluster {
        tc_delta: i64,
        known: bool,
        frames: Vec<(u64, i16, bool, usize)>,
        /// Tags inside the cluster (known size only), after its frames.
        inner_tags: u8,
    },
    /// Segment-level Tags: producer tags, maybe END_OF_FRAGMENT.
    Tags { n: u8, eof: bool },
    /// A producer restart: a new document with the same tracks that re-sends the last
    /// `1 + n % 3` clusters (replays).
    Restart(u8),
}

fn tracks_of(layout: u8) -> Vec<TrackEntry> {
    match layout % 10 {
        0..=2 => vec![video(1)],
        3..=6 => vec![video(1), audio(2)],
        7 | 8 => vec![audio(1)],
        // Rare: four tracks (4012) and no Tracks at all (4010).
        _ if layout % 20 == 9 => vec![video(1), audio(2), audio(3), audio(4)],
        _ => vec![],
    }
}

/// Frames of one cluster by role (1 video, 2 audio, 3 a track no layout has; see `track_for`):
/// some audio, then a video frame that is key half of the time, then anything.
fn frames() -> impl Strategy<Value = Vec<(u64, i16, bool, usize)>> {
    let track = prop_oneof![20 => Just(1u64), 16 => Just(2u64), 1 => Just(3u64)];
    (
        prop::collection::vec((0i16..100, 0usize..60), 0..3),
        any::<bool>(),
        0usize..150,
        prop::collection::vec(
            (track, 0i16..1200, prop::bool::weighted(0.1), 0usize..80),
            0..10,
        ),
    )
        .prop_map(|(lead, key, key_len, rest)| {
            let mut v: Vec<(u64, i16, bool, usize)> = lead
                .into_iter()
                .map(|(rel, len)| (2, rel, false, len))
                .collect();
            v.push((1, 100, key, key_len));
            v.extend(rest);
            v
        })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => any::<u8>().prop_map(Item::Doc),
        12 => (
            prop_oneof![9 => 200i64..1500, 1 => -300i64..200],
            any::<bool>(),
            frames(),
            prop_oneof![6 => Just(0u8), 1 => 1u8..6],
        )
            .prop_map(|(tc_delta, known, frames, inner_tags)| Item::Cluster {
                tc_delta,
                known,
                frames,
                inner_tags,
            }),
        2 => (prop_oneof![4 => 0u8..3, 1 => 3u8..13], prop::bool::weighted(0.3))
            .prop_map(|(n, eof)| Item::Tags { n, eof }),
        1 => any::<u8>().prop_map(Item::Restart),
    ]
}

/// The track number a frame of `role` gets in a document with `tracks`: video frames go to
/// the video track (the audio track of an audio-only document), audio frames to the audio
/// track (none in a video-only document: skipped), role 3 to track 9, which no layout has.
fn track_for(role: u64, tracks: &[TrackEntry]) -> Option<u64> {
    let of = |kind| tracks.iter().find(|t| t.kind == kind).map(|t| t.number);
    match role {
        1 => of(mkv::TrackKind::Video)
            .or(of(mkv::TrackKind::Audio))
            .or(Some(1)),
        2 => of(mkv::TrackKind::Audio),
        _ => Some(9),
    }
}

/// Timecode, known size, frames by role, Tags inside.
type Cluster = (u64, bool, Vec<(u64, i16, bool, usize)>, u8);

fn write_cluster(b: &mut Body, tracks: &[TrackEntry], (tc, known, frames, inner_tags): &Cluster) {
    let size = if *known {
        SizeMode::Known
    } else {
        SizeMode::Unknown
    };
    b.w.begin_cluster(*tc, size);
    for &(role, rel, key, len) in frames {
        let Some(track) = track_for(role, tracks) else {
            continue;
        };
        let fr = f(track, rel, key, len);
        b.w.block(&Block::simple(track, rel, key, &payload(*tc, &fr)))
            .unwrap();
    }
    if *known && *inner_tags > 0 {
        let names: Vec<String> = (0..*inner_tags).map(|i| format!("IN{i}")).collect();
        b.w.tags(&[Tag::strings(names.iter().map(|n| (n.as_str(), "v")))]);
    }
    b.w.end_cluster().unwrap();
}

/// A body: always starts with a document.
fn body() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), prop::collection::vec(item(), 0..16)).prop_map(|(first, items)| {
        let mut b = Body::new();
        let mut tracks = tracks_of(first);
        b.doc(&tracks);
        let mut tc: i64 = 10_000;
        let mut written: Vec<Cluster> = Vec::new();
        for it in items {
            match it {
                Item::Doc(l) => {
                    tracks = tracks_of(l);
                    b.doc(&tracks);
                }
                Item::Cluster {
                    tc_delta,
                    known,
                    frames,
                    inner_tags,
                } => {
                    tc = (tc + tc_delta).max(0);
                    let c = (tc as u64, known, frames, inner_tags);
                    write_cluster(&mut b, &tracks, &c);
                    written.push(c);
                }
                Item::Restart(n) => {
                    b.doc(&tracks);
                    let from = written.len().saturating_sub(1 + usize::from(n % 3));
                    for c in &written[from..] {
                        write_cluster(&mut b, &tracks, c);
                    }
                }
                Item::Tags { n, eof } => {
                    let mut pairs: Vec<(String, String)> =
                        (0..n).map(|i| (format!("T{i}"), "v".into())).collect();
                    if eof {
                        pairs.push((mkv::AWS_KINESISVIDEO_END_OF_FRAGMENT.into(), String::new()));
                    }
                    b.w.tags(&[Tag::strings(
                        pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
                    )]);
                }
            }
        }
        b.take()
    })
}

fn small_cfg(max_bytes: u64, tiny_elements: bool) -> SessionConfig {
    let mut c = cfg();
    c.max_fragment_bytes = max_bytes;
    c.max_fragment_duration_ms = 2000;
    if tiny_elements {
        c.max_element_size = 100;
    }
    c
}

/// Everything about an output, for equality across runs.
fn canonical(o: &Output) -> String {
    match o {
        Output::Fragment(c) => format!(
            "{} frames={:?} tags={:?} media={:08x}",
            render(o),
            c.fragment.frames,
            c.fragment.tags,
            mkv::crc32(&c.fragment.media)
        ),
        Output::Error(e) => format!("{e:?}"),
        _ => render(o),
    }
}

/// Pushes `data` cut at `cuts`, all at `now`; returns the outputs, checking invariants after
/// every call.
fn run_split(cfg: SessionConfig, data: &[u8], cuts: &[usize], now: i64) -> Vec<Output> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([data.len()]) {
        chunks.push((data[start..end].to_vec(), now));
        start = end;
    }
    let mut s = Session::new(cfg);
    drive(&mut s, &chunks, Some(now))
        .into_iter()
        .flatten()
        .collect()
}

/// The output contract of the crate docs.
pub(crate) fn check_contract(out: &[Output], cfg: &SessionConfig) {
    let ends: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Output::End { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends, [out.len() - 1], "End exactly once, last");
    let mut last_number = None;
    for (i, o) in out.iter().enumerate() {
        match o {
            Output::Error(e) => match &out[i + 1] {
                Output::Ack(a) => {
                    assert_eq!(a.event, AckEvent::Error);
                    assert_eq!(a.error_id, Some(e.error_id()));
                }
                other => panic!("Error followed by {other:?}"),
            },
            Output::Ack(a) if a.event == AckEvent::Error => {
                assert!(
                    matches!(out[i - 1], Output::Error(_)),
                    "ERROR ack without Error"
                );
            }
            Output::Ack(a) if a.event == AckEvent::Received => match &out[i + 1] {
                Output::Fragment(c) => {
                    assert_eq!(a.fragment_number, Some(c.fragment.number));
                    assert_eq!(a.fragment_timecode, Some(c.fragment_timecode));
                }
                Output::Duplicate {
                    number,
                    fragment_timecode,
                } => {
                    assert_eq!(a.fragment_number, Some(*number));
                    assert_eq!(a.fragment_timecode, Some(*fragment_timecode));
                }
                other => panic!("RECEIVED followed by {other:?}"),
            },
            Output::Fragment(c) => {
                let fr = &c.fragment;
                assert!(matches!(&out[i - 1], Output::Ack(a) if a.event == AckEvent::Received));
                assert!(last_number < Some(fr.number), "numbers strictly increase");
                last_number = Some(fr.number);
                assert!(fr.media.len() as u64 <= cfg.max_fragment_bytes);
                assert!(fr.duration_ms <= cfg.max_fragment_duration_ms);
                assert!(!fr.frames.is_empty());
                assert!(fr.tags.len() <= cfg.max_tags_per_fragment);
                let mut at = 0;
                for e in &fr.frames {
                    assert_eq!(e.offset, at);
                    at += e.size;
                    assert!(fr.tracks.tracks.iter().any(|t| t.number == e.track));
                }
                assert_eq!(at as usize, fr.media.len());
                for t in &fr.tracks.tracks {
                    assert!(
                        fr.frames.iter().any(|e| e.track == t.number),
                        "4011 not enforced"
                    );
                }
                let video: Vec<u64> = fr
                    .tracks
                    .tracks
                    .iter()
                    .filter(|t| t.track_type == 1)
                    .map(|t| t.number)
                    .collect();
                if let Some(first) = fr.frames.iter().find(|e| video.contains(&e.track)) {
                    assert!(first.keyframe, "fragment starts with a non-key video frame");
                }
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Same outputs however the body is chunked.
    #[test]
    fn chunking_does_not_matter(
        data in body(),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        max_bytes in 200u64..3000,
        tiny in prop::bool::weighted(0.1),
    ) {
        let whole = run_split(small_cfg(max_bytes, tiny), &data, &[], 5000);
        let split = run_split(small_cfg(max_bytes, tiny), &data, &cuts, 5000);
        let byte_by_byte: Vec<usize> = if data.len() < 3000 { (1..data.len()).collect() } else { Vec::new() };
        let tiny_chunks = run_split(small_cfg(max_bytes, tiny), &data, &byte_by_byte, 5000);
        let w: Vec<String> = whole.iter().map(canonical).collect();
        prop_assert_eq!(&w, &split.iter().map(canonical).collect::<Vec<_>>());
        prop_assert_eq!(&w, &tiny_chunks.iter().map(canonical).collect::<Vec<_>>());
        check_contract(&whole, &small_cfg(max_bytes, tiny));
    }

    /// Arbitrary bytes: no panic, invariants hold, the contract holds.
    #[test]
    fn never_panics_on_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..4000),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let out = run_split(small_cfg(1000, false), &data, &cuts, 5000);
        check_contract(&out, &small_cfg(1000, false));
    }

    /// Valid bodies with corrupted bytes, optionally behind a valid header: the parser gets
    /// past the EBML header and into clusters before it hits the damage.
    #[test]
    fn never_panics_on_corrupted_bodies(
        data in body(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        truncate in any::<Option<usize>>(),
    ) {
        let mut data = data;
        for (at, x) in flips {
            let n = data.len();
            data[at % n] ^= x;
        }
        if let Some(t) = truncate {
            data.truncate(t % (data.len() + 1));
        }
        let out = run_split(small_cfg(1000, false), &data, &cuts, 5000);
        check_contract(&out, &small_cfg(1000, false));
    }
}
