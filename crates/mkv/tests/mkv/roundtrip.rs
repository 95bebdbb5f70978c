//! Writer -> parser round trips for every element type the writer produces.

use openkvs_mkv::{
    AWS_KINESISVIDEO_END_OF_FRAGMENT, Audio, Block, BlockKind, EbmlHeader, Event, Info, Lacing,
    ParserBuilder, SimpleTag, SizeMode, Tag, TagValue, Targets, TrackEntry, TrackKind, Video,
    Writer,
};

use super::{parse_chunks, parse_ok, summary};

fn sample_info() -> Info {
    Info {
        timecode_scale_ns: 1_000_000,
        duration: Some(4021.5),
        date_utc_ns: Some(-5),
        title: Some("Kinesis Video SDK".to_owned()),
        muxing_app: Some("Kinesis Video SDK 1.1.0".to_owned()),
        writing_app: Some("openkvs ü".to_owned()),
        segment_uid: Some((0..16).collect()),
    }
}

fn sample_tracks() -> Vec<TrackEntry> {
    vec![
        TrackEntry {
            number: 1,
            uid: 0xFFFF_FFFF_FFFF_FFFF,
            kind: TrackKind::Video,
            codec_id: "V_MPEG4/ISO/AVC".to_owned(),
            codec_private: Some(vec![1, 0x64, 0, 0x1F, 0xFF]),
            name: Some("kinesis_video".to_owned()),
            language: Some("und".to_owned()),
            default_duration_ns: Some(40_000_000),
            codec_delay_ns: None,
            video: Some(Video {
                pixel_width: 1920,
                pixel_height: 1080,
            }),
            audio: None,
        },
        TrackEntry {
            number: 2,
            uid: 2,
            kind: TrackKind::Audio,
            codec_id: "A_OPUS".to_owned(),
            codec_private: Some(b"OpusHead".to_vec()),
            name: Some("audio".to_owned()),
            language: None,
            default_duration_ns: None,
            codec_delay_ns: Some(6_500_000),
            video: None,
            audio: Some(Audio {
                sampling_frequency: 48000.0,
                channels: 2,
                bit_depth: Some(16),
            }),
        },
        TrackEntry {
            number: 300,
            uid: 3,
            kind: TrackKind::Other(0x11),
            codec_id: "S_TEXT/UTF8".to_owned(),
            ..Default::default()
        },
    ]
}

fn sample_tags() -> Vec<Tag> {
    vec![
        Tag {
            targets: Targets {
                type_value: Some(50),
                target_type: Some("MOVIE".to_owned()),
                track_uids: vec![1, 2],
                edition_uids: vec![7],
                chapter_uids: vec![8],
                attachment_uids: vec![9],
            },
            simple_tags: vec![
                SimpleTag {
                    name: "ENCODER".to_owned(),
                    language: Some("und".to_owned()),
                    default: Some(true),
                    value: Some(TagValue::String("x264".to_owned())),
                    children: vec![SimpleTag {
                        name: "NESTED".to_owned(),
                        value: Some(TagValue::Binary(vec![0, 1, 2, 255])),
                        children: vec![SimpleTag::string("DEEPER", "3")],
                        ..Default::default()
                    }],
                },
                SimpleTag {
                    name: "NO_VALUE".to_owned(),
                    ..Default::default()
                },
            ],
        },
        Tag::strings([
            (
                "AWS_KINESISVIDEO_FRAGMENT_NUMBER",
                "91343852333181432392682062607743920146159169392",
            ),
            ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", "1511852109.126"),
            (AWS_KINESISVIDEO_END_OF_FRAGMENT, ""),
        ]),
    ]
}

#[test]
fn ebml_header() {
    for h in [
        EbmlHeader::default(),
        EbmlHeader::matroska(2),
        EbmlHeader::matroska(4),
        EbmlHeader {
            doc_type: "webm".to_owned(),
            ..EbmlHeader::matroska(4)
        },
    ] {
        let mut w = Writer::new();
        w.ebml_header(&h);
        let ev = parse_ok(w.bytes());
        assert_eq!(
            ev,
            vec![Event::EbmlHeader {
                offset: 0,
                header: h
            }]
        );
    }
}

/// Info, Tracks and Tags survive a round trip, with and without CRC-32 elements.
#[test]
fn metadata_elements() {
    for crc in [false, true] {
        for info in [Info::default(), sample_info()] {
            let mut w = Writer::new().with_crc32(crc);
            w.ebml_header(&EbmlHeader::matroska(4));
            w.begin_segment(SizeMode::Known);
            w.info(&info);
            w.tracks(&sample_tracks());
            w.tags(&sample_tags());
            w.end_segment().unwrap();
            let bytes = w.into_bytes();
            let ev = parse_ok(&bytes);
            assert_eq!(
                summary(&ev),
                [
                    "Ebml",
                    "Segment",
                    "Info",
                    "Tracks3",
                    "Tags(ENCODER)",
                    "/Segment"
                ]
            );
            match &ev[2] {
                Event::Info { info: got, .. } => assert_eq!(got, &info),
                other => panic!("{other:?}"),
            }
            match &ev[3] {
                Event::Tracks { tracks, .. } => assert_eq!(tracks, &sample_tracks()),
                other => panic!("{other:?}"),
            }
            match &ev[4] {
                Event::Tags {
                    tags, in_cluster, ..
                } => {
                    assert_eq!(tags, &sample_tags());
                    assert!(!in_cluster);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                ev[5],
                Event::SegmentEnd {
                    offset_end: bytes.len() as u64
                }
            );
        }
    }
}

fn frames_of(events: &[Event]) -> Vec<&openkvs_mkv::Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// Every block form: flags, each lacing, BlockGroup with/without duration and reference,
/// in known- and unknown-size clusters; payload offsets point at the payload bytes.
#[test]
fn blocks() {
    let big = vec![0xAB; 70_000];
    let small: Vec<u8> = (0..=255).collect();
    let empty: &[u8] = &[];
    let blocks = vec![
        Block::simple(1, 0, true, &big),
        Block {
            invisible: true,
            discardable: true,
            ..Block::simple(1, -32768, false, &small)
        },
        Block {
            lacing: Lacing::Xiph,
            frames: vec![&small, &big[..600], empty, &small[..3]],
            ..Block::simple(2, 32767, true, empty)
        },
        Block {
            lacing: Lacing::Ebml,
            frames: vec![&big[..1000], &small, &big[..5000], &small[..1], &big[..20]],
            ..Block::simple(2, 5, false, empty)
        },
        Block {
            lacing: Lacing::FixedSize,
            frames: vec![&small[..10]; 256],
            ..Block::simple(2, 6, true, empty)
        },
        Block {
            kind: BlockKind::Group { duration: Some(40) },
            ..Block::simple(1, 40, true, &small)
        },
        Block {
            kind: BlockKind::Group { duration: None },
            invisible: true,
            ..Block::simple(1, 80, false, &small[..7])
        },
        Block {
            kind: BlockKind::Group { duration: Some(1) },
            lacing: Lacing::Ebml,
            frames: vec![&small[..2], &small[..9]],
            ..Block::simple(300, 81, true, empty)
        },
    ];
    for size in [SizeMode::Known, SizeMode::Unknown] {
        for crc in [false, true] {
            let mut w = Writer::new().with_crc32(crc);
            w.ebml_header(&EbmlHeader::matroska(4));
            w.begin_segment(size);
            w.tracks(&sample_tracks());
            w.begin_cluster(123_456_789_000, size);
            for b in &blocks {
                w.block(b).unwrap();
            }
            w.end_segment().unwrap();
            let bytes = w.into_bytes();
            for chunk in [bytes.len(), 1000, 7] {
                let (ev, err) = parse_chunks(&bytes, chunk, ParserBuilder::default());
                assert_eq!(err, None);
                let want_tc = 123_456_789_000;
                assert!(ev.iter().any(|e| matches!(
                    e,
                    Event::ClusterStart { timecode, .. } if *timecode == want_tc
                )));
                let frames = frames_of(&ev);
                let want: Vec<(&Block, usize, &[u8])> = blocks
                    .iter()
                    .flat_map(|b| b.frames.iter().enumerate().map(move |(i, f)| (b, i, *f)))
                    .collect();
                assert_eq!(frames.len(), want.len());
                for (f, (b, i, payload)) in frames.iter().zip(&want) {
                    let group = matches!(b.kind, BlockKind::Group { .. });
                    assert_eq!(f.track, b.track);
                    assert_eq!(f.timecode_rel, b.timecode_rel);
                    assert_eq!(f.keyframe, b.keyframe);
                    assert_eq!(f.invisible, b.invisible);
                    assert_eq!(f.discardable, b.discardable);
                    assert_eq!(f.block_group, group);
                    let duration = match b.kind {
                        BlockKind::Group { duration } => duration,
                        BlockKind::Simple => None,
                    };
                    assert_eq!(f.duration, duration);
                    assert_eq!(usize::from(f.lace_index), *i);
                    assert_eq!(usize::from(f.lace_count), b.frames.len());
                    assert_eq!(&f.payload[..], *payload);
                    let at = f.payload_offset as usize;
                    assert_eq!(&bytes[at..at + payload.len()], *payload);
                }
            }
        }
    }
}

/// Tags inside a known-size Cluster are reported in place; a Tags element after the Timecode
/// of an unknown-size Cluster ends it and is reported at Segment level.
#[test]
fn tags_around_clusters() {
    let eofr = [Tag::strings([(AWS_KINESISVIDEO_END_OF_FRAGMENT, "")])];
    let meta = [Tag::strings([("CAMERA", "1")])];
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader::matroska(2));
    w.begin_segment(SizeMode::Unknown);
    w.tags(&meta);
    w.begin_cluster(1000, SizeMode::Known);
    w.block(&Block::simple(1, 0, true, b"key")).unwrap();
    w.tags(&eofr);
    w.end_cluster().unwrap();
    w.begin_cluster(2000, SizeMode::Unknown);
    w.block(&Block::simple(1, 0, true, b"key2")).unwrap();
    w.tags(&eofr);
    w.begin_cluster(3000, SizeMode::Unknown);
    w.block(&Block::simple(1, 0, true, b"key3")).unwrap();
    let ev = parse_ok(w.bytes());
    assert_eq!(
        summary(&ev),
        [
            "Ebml",
            "Segment?",
            "Tags(CAMERA)",
            "Cluster@1000",
            "F1:0",
            "Tags(in:AWS_KINESISVIDEO_END_OF_FRAGMENT)",
            "/Cluster",
            "Cluster?@2000",
            "F1:0",
            "/Cluster",
            "Tags(AWS_KINESISVIDEO_END_OF_FRAGMENT)",
            "Cluster?@3000",
            "F1:0",
            "/Cluster",
            "/Segment"
        ]
    );
    let Event::Tags { tags, .. } = &ev[5] else {
        panic!()
    };
    assert_eq!(tags[0].simple_tags[0].as_str(), Some(""));
}

/// The GetMedia chunk layout of kvs-api.md §8.1: self-contained documents with an unknown-size
/// Segment, known-size Cluster and Tags before and after it, concatenated.
#[test]
fn get_media_chunks() {
    let mut body = Vec::new();
    for (i, fragment) in [
        "91343852333181432392682062607743920146159169392",
        "9134385233318143239268206260774392014615916940",
    ]
    .iter()
    .enumerate()
    {
        let mut w = Writer::new();
        w.ebml_header(&EbmlHeader::matroska(4));
        w.begin_segment(SizeMode::Unknown);
        w.info(&sample_info());
        w.tracks(&sample_tracks()[..1]);
        w.tags(&[Tag::strings([
            ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", *fragment),
            ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", "1511852109.126"),
            ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "1511852108.513"),
        ])]);
        w.cluster(
            2000 * i as u64,
            &[
                Block::simple(1, 0, true, b"idr"),
                Block::simple(1, 40, false, b"p"),
            ],
        )
        .unwrap();
        w.tags(&[Tag::strings([
            ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "15858"),
            ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", *fragment),
        ])]);
        // Streaming: only unknown-size elements are open, so everything can be taken.
        body.extend(w.take());
        assert!(w.is_empty());
    }
    let ev = parse_ok(&body);
    let doc = [
        "Info",
        "Tracks1",
        "Tags(AWS_KINESISVIDEO_FRAGMENT_NUMBER)",
        "Cluster@X",
        "F1:0",
        "F1:40",
        "/Cluster",
        "Tags(AWS_KINESISVIDEO_MILLIS_BEHIND_NOW)",
        "/Segment",
    ];
    let mut want = Vec::new();
    for tc in ["0", "2000"] {
        want.push("Ebml".to_owned());
        want.push("Segment?".to_owned());
        want.extend(doc.iter().map(|s| s.replace('X', tc)));
    }
    assert_eq!(summary(&ev), want);
}

/// `take()` hands out finished bytes only; the concatenation equals a one-shot write.
#[test]
fn writer_take_streams() {
    let write = |w: &mut Writer, out: &mut Vec<u8>| {
        w.ebml_header(&EbmlHeader::matroska(2));
        w.begin_segment(SizeMode::Unknown);
        out.extend(w.take());
        w.begin_cluster(5, SizeMode::Known);
        w.block(&Block::simple(1, 0, true, b"a")).unwrap();
        assert!(
            w.take().is_empty(),
            "an open known-size cluster is not finished"
        );
        w.end_cluster().unwrap();
        out.extend(w.take());
        w.begin_cluster(6, SizeMode::Unknown);
        w.block(&Block::simple(1, 0, true, b"b")).unwrap();
        out.extend(w.take());
        w.end_segment().unwrap();
        out.extend(w.take());
    };
    let mut streamed = Vec::new();
    write(&mut Writer::new(), &mut streamed);
    let mut whole = Writer::new();
    write(&mut whole, &mut Vec::new());
    let mut once = Writer::new();
    once.ebml_header(&EbmlHeader::matroska(2));
    once.begin_segment(SizeMode::Unknown);
    once.cluster(5, &[Block::simple(1, 0, true, b"a")]).unwrap();
    once.begin_cluster(6, SizeMode::Unknown);
    once.block(&Block::simple(1, 0, true, b"b")).unwrap();
    once.end_segment().unwrap();
    assert_eq!(streamed, once.into_bytes());
    assert_eq!(
        summary(&parse_ok(&streamed)),
        [
            "Ebml",
            "Segment?",
            "Cluster@5",
            "F1:0",
            "/Cluster",
            "Cluster?@6",
            "F1:0",
            "/Cluster",
            "/Segment"
        ]
    );
}

#[test]
fn writer_rejects_impossible_requests() {
    let mut w = Writer::new();
    assert!(w.end_cluster().is_err());
    assert!(w.end_segment().is_err());
    let group_discardable = Block {
        discardable: true,
        kind: BlockKind::Group { duration: None },
        ..Block::simple(1, 0, true, b"x")
    };
    assert!(w.block(&group_discardable).is_err());
    assert!(
        w.block(&Block {
            frames: vec![],
            ..Block::simple(1, 0, true, b"")
        })
        .is_err()
    );
    let many = Block {
        lacing: Lacing::Xiph,
        frames: vec![b"x".as_slice(); 257],
        ..Block::simple(1, 0, true, b"")
    };
    assert!(w.block(&many).is_err());
}
