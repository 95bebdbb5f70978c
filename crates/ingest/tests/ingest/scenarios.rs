//! Producer-shaped bodies: the exact ACK sequence, when each output appears, and the
//! fragments' timestamps, durations, frame tables and media.

use std::sync::Arc;

use kvs_core::FragmentNumber;
use mkv::{Block, SizeMode, Tag, Targets, TrackEntry, Writer, ids};
use openkvs_ingest::{Output, Session, TimecodeType};
use store::FrameEntry;

use super::*;

/// kvssink: one unknown-size cluster per GOP with absolute epoch-ms timecodes, A/V
/// interleaved, END_OF_FRAGMENT after the last cluster (kvssink-behaviour.md §5). Each cluster
/// is its own push, ~200 ms after its producer time; the last fragment must complete at the
/// END_OF_FRAGMENT tag, before the body ends (the producer waits for its PERSISTED).
#[test]
fn kvssink_one_cluster_per_gop() {
    let gop = gop_av();
    let mut b = Body::new();
    b.doc(&[video(1), audio(2)]).cluster(T0, &gop);
    let c0 = b.take();
    b.cluster(T0 + 1000, &gop);
    let c1 = b.take();
    b.cluster(T0 + 2000, &gop);
    let c2 = b.take();
    b.eof();
    let c3 = b.take();
    let now = T0 as i64 + 200;
    let mut s = Session::new(cfg());
    let steps = drive(
        &mut s,
        &[
            (c0, now),
            (c1, now + 1000),
            (c2, now + 2000),
            (c3, now + 2050),
        ],
        Some(now + 2100),
    );
    let (t0, t1, t2) = (T0, T0 + 1000, T0 + 2000);
    let (n0, n1, n2) = (now, now + 1000, now + 2000);
    let want: Vec<Vec<String>> = vec![
        vec![format!("BUFFERING tc={t0} N{n0}.0")],
        vec![
            format!("RECEIVED tc={t0} N{n0}.0"),
            format!(
                "FRAGMENT N{n0}.0 tc={t0} producer={t0} server={n0} dur=1000 frames=80 bytes=1960"
            ),
            format!("BUFFERING tc={t1} N{n1}.0"),
        ],
        vec![
            format!("RECEIVED tc={t1} N{n1}.0"),
            format!(
                "FRAGMENT N{n1}.0 tc={t1} producer={t1} server={n1} dur=1000 frames=80 bytes=1960"
            ),
            format!("BUFFERING tc={t2} N{n2}.0"),
        ],
        // END_OF_FRAGMENT: complete now, not at the end of the body.
        vec![
            format!("RECEIVED tc={t2} N{n2}.0"),
            format!(
                "FRAGMENT N{n2}.0 tc={t2} producer={t2} server={n2} dur=1000 frames=80 bytes=1960"
            ),
        ],
        vec!["END None".to_owned()],
    ];
    let got: Vec<Vec<String>> = steps.iter().map(|s| lines(s)).collect();
    assert_eq!(got, want);

    // The frame table: pts = block timecode (the cluster opened the fragment), key frame
    // first, durations unknown, payloads concatenated in arrival order.
    let all: Vec<Output> = steps.into_iter().flatten().collect();
    for (i, fr) in fragments(&all).into_iter().enumerate() {
        let tc = T0 + 1000 * i as u64;
        let mut offset = 0;
        let want: Vec<FrameEntry> = gop
            .iter()
            .map(|g| {
                let e = FrameEntry {
                    track: g.track,
                    keyframe: g.key,
                    pts: i64::from(g.rel),
                    duration: 0,
                    offset,
                    size: g.len as u32,
                };
                offset += g.len as u32;
                e
            })
            .collect();
        assert_eq!(fr.frames, want);
        assert_media_matches(fr, &gop.iter().map(|g| payload(tc, g)).collect::<Vec<_>>());
        assert_eq!(fr.stream_arn, ARN);
        assert_eq!(fr.tracks.timecode_scale_ns, 1_000_000);
        assert_eq!(fr.tracks.tracks.len(), 2);
        assert_eq!(fr.tracks.tracks[0].codec_id, "V_MPEG4/ISO/AVC");
        assert_eq!(fr.tracks.tracks[1].sampling_frequency, Some(48000.0));
        assert!(fr.tags.is_empty());
    }
    let st = s.stats();
    assert_eq!(
        (
            st.fragments,
            st.frames,
            st.stored_frames,
            st.dropped_frames,
            st.errors
        ),
        (3, 240, 240, 0, 0)
    );
}

/// ffmpeg-style frames for cluster `c` of a 200 ms-cluster stream: audio every 20 ms (ffmpeg
/// flags AAC frames key), video at 30 + 40k ms with a key frame every 25 frames (1 s), so the
/// key frame of every fifth cluster comes after two audio frames.
fn ffmpeg_cluster(c: i16) -> Vec<F> {
    let mut v: Vec<F> = (0..10).map(|j| f(2, j * 20, true, 6)).collect();
    for k in 0..5 {
        let key = (c * 5 + k) % 25 == 0;
        v.push(f(1, 30 + k * 40, key, if key { 300 } else { 30 }));
    }
    v.sort_by_key(|fr| fr.rel);
    v
}

/// ffmpeg -f matroska to a pipe: known-size 200 ms clusters with CRC-32, audio+video,
/// DefaultDuration on video, a key frame every 1 s. The stream starts mid-GOP: those frames
/// are dropped. Fragments hold five clusters each (one GOP), open on the cluster whose first
/// video frame is key and keep the two audio frames before it.
#[test]
fn ffmpeg_short_clusters_fragment_per_gop() {
    let v = TrackEntry {
        default_duration_ns: Some(40_000_000),
        ..video(1)
    };
    let mut b = Body {
        w: Writer::new().with_crc32(true),
    };
    b.doc(&[v, audio(2)]);
    for c in 2..20 {
        b.cluster_sized(200 * c as u64, &ffmpeg_cluster(c), SizeMode::Known);
    }
    let body = b.take();
    // Pushed in 1000-byte pieces: elements split everywhere.
    let chunks: Vec<(Vec<u8>, i64)> = body.chunks(1000).map(|c| (c.to_vec(), 5000)).collect();
    let mut s = Session::new(cfg());
    let out: Vec<Output> = drive(&mut s, &chunks, Some(5000))
        .into_iter()
        .flatten()
        .collect();
    assert_lines(
        &out,
        &[
            "BUFFERING tc=1000 N5000.0",
            "RECEIVED tc=1000 N5000.0",
            "FRAGMENT N5000.0 tc=1000 producer=1000 server=5000 dur=1030 frames=75 bytes=1320",
            "BUFFERING tc=2000 N5000.1",
            "RECEIVED tc=2000 N5000.1",
            "FRAGMENT N5000.1 tc=2000 producer=2000 server=5000 dur=1030 frames=75 bytes=1320",
            "BUFFERING tc=3000 N5000.2",
            "RECEIVED tc=3000 N5000.2",
            "FRAGMENT N5000.2 tc=3000 producer=3000 server=5000 dur=1030 frames=75 bytes=1320",
            "END None",
        ],
    );
    for fr in fragments(&out) {
        let heads: Vec<(u64, bool, i64, u32)> = fr.frames[..4]
            .iter()
            .map(|e| (e.track, e.keyframe, e.pts, e.duration))
            .collect();
        // Two audio frames (unknown duration), then the video key frame (DefaultDuration).
        assert_eq!(
            heads,
            [
                (2, true, 0, 0),
                (2, true, 20, 0),
                (1, true, 30, 40),
                (2, true, 40, 0)
            ]
        );
        let last = fr.frames.last().unwrap();
        assert_eq!((last.track, last.pts), (1, 990));
    }
    let st = s.stats();
    assert_eq!(
        (st.frames, st.stored_frames, st.dropped_frames, st.fragments),
        (18 * 15, 15 * 15, 3 * 15, 3)
    );
}

/// RELATIVE mode: cluster timecodes count from `x-amzn-producer-start-timestamp`; ACKs carry
/// them as sent. Without the header the first fragment's server time stands in.
#[test]
fn relative_timecodes() {
    let mut b = Body::new();
    b.doc(&[video(1)])
        .cluster(0, &gop_v(25))
        .cluster(1000, &gop_v(25))
        .eof();
    let body = b.take();
    let cases: [(Option<i64>, [i64; 2]); 2] = [
        (
            Some(1_795_306_204_485),
            [1_795_306_204_485, 1_795_306_205_485],
        ),
        (None, [7000, 8000]),
    ];
    for (start, [p0, p1]) in cases {
        let mut c = cfg();
        c.timecode_type = TimecodeType::Relative;
        c.producer_start_ms = start;
        let (out, _) = run_once(c, &body, 7000);
        assert_lines(
            &out,
            &[
                "BUFFERING tc=0 N7000.0",
                "RECEIVED tc=0 N7000.0",
                &format!(
                    "FRAGMENT N7000.0 tc=0 producer={p0} server=7000 dur=1000 frames=25 bytes=1020"
                ),
                "BUFFERING tc=1000 N7000.1",
                "RECEIVED tc=1000 N7000.1",
                &format!(
                    "FRAGMENT N7000.1 tc=1000 producer={p1} server=7000 dur=1000 frames=25 bytes=1020"
                ),
                "END None",
            ],
        );
    }
}

/// Without a video track every cluster is a fragment; it completes when the next cluster
/// starts (or at the end of the body).
#[test]
fn audio_only_fragments_by_cluster() {
    let frames: Vec<F> = (0..25).map(|j| f(1, j * 20, false, 10)).collect();
    let mut b = Body::new();
    b.doc(&[audio(1)]);
    for i in 0..3 {
        b.cluster(T0 + 500 * i, &frames);
    }
    let (out, st) = run_once(cfg(), &b.take(), 5000);
    let mut want = Vec::new();
    for i in 0..3u64 {
        let tc = T0 + 500 * i;
        want.push(format!("BUFFERING tc={tc} N5000.{i}"));
        want.push(format!("RECEIVED tc={tc} N5000.{i}"));
        want.push(format!(
            "FRAGMENT N5000.{i} tc={tc} producer={tc} server=5000 dur=500 frames=25 bytes=250"
        ));
    }
    want.push("END None".into());
    assert_eq!(lines(&out), want);
    assert_eq!((st.fragments, st.dropped_frames), (3, 0));
}

/// Producer metadata: Segment-level Tags before a cluster belong to the fragment it opens;
/// Tags inside a cluster to the current fragment; `AWS_KINESISVIDEO_*` and track-targeted
/// tags are not stored.
#[test]
fn producer_metadata_tags() {
    let mut b = Body::new();
    b.doc(&[video(1)]);
    b.tags(&[
        ("CAMERA_EVENT", "motion"),
        ("AWS_KINESISVIDEO_NOTIFICATION", "x"),
    ]);
    b.cluster(T0, &gop_v(25));
    b.tags(&[("ZONE", "door")]);
    // A known-size cluster with Tags inside it.
    b.w.begin_cluster(T0 + 1000, SizeMode::Known);
    for fr in gop_v(25) {
        b.w.block(&Block::simple(1, fr.rel, fr.key, &payload(T0 + 1000, &fr)))
            .unwrap();
    }
    b.w.tags(&[Tag::strings([("INSIDE", "1")])]);
    b.w.end_cluster().unwrap();
    b.w.tags(&[Tag {
        targets: Targets {
            track_uids: vec![1],
            ..Default::default()
        },
        simple_tags: vec![mkv::SimpleTag::string("ENCODER", "x264")],
    }]);
    b.cluster(T0 + 2000, &gop_v(25)).eof();
    let (out, _) = run_once(cfg(), &b.take(), 5000);
    let tags: Vec<Vec<(String, String)>> = fragments(&out).iter().map(|f| f.tags.clone()).collect();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        tags,
        vec![
            vec![s("CAMERA_EVENT", "motion")],
            vec![s("ZONE", "door"), s("INSIDE", "1")],
            vec![],
        ]
    );
}

/// A new EBML document mid-body (a producer restarting in the same body) completes the open
/// fragment at once; the new Tracks apply from then on. Fragments of one document share one
/// `Arc<TrackSet>`.
#[test]
fn new_document_mid_body() {
    let mut b = Body::new();
    b.doc(&[video(1)])
        .cluster(T0, &gop_v(25))
        .cluster(T0 + 1000, &gop_v(25));
    let doc1 = b.take();
    let hevc = TrackEntry {
        codec_id: "V_MPEGH/ISO/HEVC".into(),
        ..video(1)
    };
    b.doc(&[hevc, audio(2)]);
    let header2 = b.take();
    b.cluster(T0 + 2000, &gop_av())
        .cluster(T0 + 3000, &gop_av())
        .eof();
    let doc2 = b.take();
    let mut s = Session::new(cfg());
    let steps = drive(
        &mut s,
        &[(doc1, 5000), (header2, 5001), (doc2, 5002)],
        Some(5003),
    );
    assert_lines(
        &steps[1],
        &[
            &format!("RECEIVED tc={} N5000.1", T0 + 1000),
            &format!(
                "FRAGMENT N5000.1 tc={} producer={} server=5000 dur=1000 frames=25 bytes=1020",
                T0 + 1000,
                T0 + 1000
            ),
        ],
    );
    let all: Vec<Output> = steps.into_iter().flatten().collect();
    let fr = fragments(&all);
    assert_eq!(fr.len(), 4);
    assert!(Arc::ptr_eq(&fr[0].tracks, &fr[1].tracks));
    assert!(Arc::ptr_eq(&fr[2].tracks, &fr[3].tracks));
    assert_eq!(fr[1].tracks.tracks.len(), 1);
    assert_eq!(fr[2].tracks.tracks.len(), 2);
    assert_eq!(fr[2].tracks.tracks[0].codec_id, "V_MPEGH/ISO/HEVC");
    let numbers: Vec<String> = fr.iter().map(|f| num(f.number)).collect();
    assert_eq!(numbers, ["N5000.0", "N5000.1", "N5002.0", "N5002.1"]);
}

/// TimecodeScale 100 µs: producer ms, pts and durations use it.
#[test]
fn timecode_scale() {
    let frames: Vec<F> = (0..25)
        .map(|i| f(1, i * 400, i == 0, if i == 0 { 300 } else { 30 }))
        .collect();
    let mut b = Body::new();
    b.doc_scaled(&[video(1)], 100_000)
        .cluster(T0 * 10, &frames)
        .cluster(T0 * 10 + 10_000, &frames)
        .eof();
    let (out, _) = run_once(cfg(), &b.take(), 5000);
    let fr = fragments(&out);
    let got: Vec<(i64, i64, u64)> = fr
        .iter()
        .map(|f| (f.producer_ms, f.duration_ms, f.tracks.timecode_scale_ns))
        .collect();
    assert_eq!(
        got,
        [
            (T0 as i64, 1000, 100_000),
            (T0 as i64 + 1000, 1000, 100_000)
        ]
    );
    assert_eq!(fr[0].frames[24].pts, 9600);
}

/// Numbers: greater than the stream's last stored number, strictly increasing even when the
/// server clock stands still or goes back.
#[test]
fn fragment_numbers() {
    let mut b = Body::new();
    b.doc(&[video(1)]);
    let body0 = b.take();
    let mut chunks = vec![(body0, 5000)];
    for (i, now) in [5000, 5000, 4000, 6000].into_iter().enumerate() {
        b.cluster(T0 + 1000 * i as u64, &gop_v(5));
        chunks.push((b.take(), now));
    }
    let cases: [(Option<FragmentNumber>, [&str; 4]); 2] = [
        (None, ["N5000.0", "N5000.1", "N5000.2", "N6000.0"]),
        (
            Some(FragmentNumber::from_time(5_500_000, 7)),
            ["N5500.8", "N5500.9", "N5500.10", "N6000.0"],
        ),
    ];
    for (last, want) in cases {
        let mut c = cfg();
        c.last_number = last;
        let mut s = Session::new(c);
        let out: Vec<Output> = drive(&mut s, &chunks, Some(7000))
            .into_iter()
            .flatten()
            .collect();
        let got: Vec<String> = fragments(&out).iter().map(|f| num(f.number)).collect();
        assert_eq!(got, want);
    }
}

/// Bounded memory: frames held before a cluster's first video frame count against the open
/// fragment's budget. When both do not fit, the open fragment completes early (here: before
/// the key frame of the next cluster arrives).
#[test]
fn held_frames_complete_the_open_fragment_early() {
    let mut c = cfg();
    c.max_fragment_bytes = 1000;
    let mut b = Body::new();
    b.doc(&[video(1), audio(2)])
        .cluster(10_000, &[f(1, 0, true, 500), f(2, 10, false, 100)]);
    let part0 = b.take();
    b.w.begin_cluster(11_000, SizeMode::Unknown);
    for fr in [f(2, 0, false, 300), f(2, 10, false, 200)] {
        b.w.block(&Block::simple(
            fr.track,
            fr.rel,
            fr.key,
            &payload(11_000, &fr),
        ))
        .unwrap();
    }
    let part1 = b.take();
    for fr in [f(1, 20, true, 300), f(2, 30, false, 10)] {
        b.w.block(&Block::simple(
            fr.track,
            fr.rel,
            fr.key,
            &payload(11_000, &fr),
        ))
        .unwrap();
    }
    b.w.end_cluster().unwrap();
    let part2 = b.take();
    let mut s = Session::new(c);
    let steps = drive(
        &mut s,
        &[(part0, 5000), (part1, 5001), (part2, 5002)],
        Some(5003),
    );
    let got: Vec<Vec<String>> = steps.iter().map(|s| lines(s)).collect();
    assert_eq!(
        got,
        [
            vec!["BUFFERING tc=10000 N5000.0"],
            // 300 + 200 held + 600 open > 1000: fragment 0 ends before this cluster.
            vec![
                "RECEIVED tc=10000 N5000.0",
                "FRAGMENT N5000.0 tc=10000 producer=10000 server=5000 dur=10 frames=2 bytes=600",
            ],
            vec!["BUFFERING tc=11000 N5002.0"],
            vec![
                "RECEIVED tc=11000 N5002.0",
                "FRAGMENT N5002.0 tc=11000 producer=11000 server=5001 dur=50 frames=4 bytes=810",
                "END None",
            ],
        ]
    );
}

/// Laced frames (mkvmerge laces AAC) are spaced by the track's DefaultDuration.
#[test]
fn laced_frames_use_default_duration() {
    let a = TrackEntry {
        default_duration_ns: Some(21_333_333),
        ..audio(1)
    };
    let mut w = Writer::new();
    w.ebml_header(&mkv::EbmlHeader::matroska(2));
    w.begin_segment(SizeMode::Unknown);
    w.tracks(&[a]);
    w.begin_cluster(0, SizeMode::Unknown);
    let frames: Vec<&[u8]> = vec![&[1; 5], &[2; 6], &[3; 7]];
    w.block(&Block {
        lacing: mkv::Lacing::Xiph,
        frames,
        ..Block::simple(1, 0, true, &[])
    })
    .unwrap();
    w.end_cluster().unwrap();
    let (out, _) = run_once(cfg(), &w.into_bytes(), 5000);
    let fr = fragments(&out);
    let pts: Vec<(i64, u32)> = fr[0].frames.iter().map(|e| (e.pts, e.duration)).collect();
    assert_eq!(pts, [(0, 21), (21, 21), (43, 21)]);
    assert_eq!(fr[0].duration_ms, 64);
    assert_eq!(
        fr[0].media.as_ref(),
        [[1u8; 5].as_slice(), &[2; 6], &[3; 7]].concat()
    );
}

/// `Position`, `Void`, unknown elements and CRC-32 are skipped without effect.
#[test]
fn ignorable_elements() {
    let mut b = Body::new();
    b.doc(&[video(1)]);
    b.w.element(ids::VOID, &[0; 10]);
    b.cluster(T0, &gop_v(10)).eof();
    let (out, st) = run_once(cfg(), &b.take(), 5000);
    assert_eq!(fragments(&out).len(), 1);
    assert_eq!(st.errors, 0);
}
