//! Stream structure and error tables: hand-built byte sequences and what the parser must make
//! of them.

use openkvs_mkv::ebml::{VintError, write_element, write_id};
use openkvs_mkv::{
    Block, EbmlHeader, ElementId, Error, Event, ParserBuilder, SizeMode, Writer, ids,
};

use super::{parse_chunks, parse_split, summary};

/// An element with an explicit size field (`size` is the raw encoded size bytes).
fn el_raw(id: u32, size: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_id(&mut out, id);
    out.extend_from_slice(size);
    out.extend_from_slice(data);
    out
}

fn el(id: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_element(&mut out, id, data);
    out
}

fn ebml() -> Vec<u8> {
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader::matroska(2));
    w.into_bytes()
}

/// SimpleBlock, track 1, tc 0, keyframe, 3 payload bytes.
fn sblock() -> Vec<u8> {
    el(ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 1, 2, 3])
}

fn timecode(tc: u8) -> Vec<u8> {
    el(ids::TIMECODE, &[tc])
}

const UNKNOWN: &[u8] = &[0xFF];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

type Want = Result<&'static [&'static str], fn(&Error) -> bool>;

/// (name, input, expected summary or error predicate). Every case is also run byte by byte.
fn cases() -> Vec<(&'static str, Vec<u8>, Want)> {
    let e = ebml();
    let seg_u = el_raw(ids::SEGMENT, UNKNOWN, &[]);
    let clu_u = el_raw(ids::CLUSTER, UNKNOWN, &[]);
    let tc0 = timecode(0);
    let sb = sblock();
    let cluster_known = el(ids::CLUSTER, &cat(&[&tc0, &sb]));
    let void = el(ids::VOID, &[0; 5]);
    let tags = el(
        ids::TAGS,
        &el(ids::TAG, &el(ids::SIMPLE_TAG, &el(ids::TAG_NAME, b"N"))),
    );
    vec![
        ("empty input", vec![], Ok(&[])),
        ("only an EBML header", e.clone(), Ok(&["Ebml"])),
        (
            "unknown-size segment and cluster end at end of input",
            cat(&[&e, &seg_u, &clu_u, &tc0, &sb]),
            Ok(&[
                "Ebml",
                "Segment?",
                "Cluster?@0",
                "F1:0",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "shorter all-ones unknown sizes (2 and 4 bytes)",
            cat(&[
                &e,
                &el_raw(ids::SEGMENT, &[0x7F, 0xFF], &[]),
                &el_raw(ids::CLUSTER, &[0x1F, 0xFF, 0xFF, 0xFF], &[]),
                &tc0,
            ]),
            Ok(&["Ebml", "Segment?", "Cluster?@0", "/Cluster", "/Segment"]),
        ),
        (
            "8-byte sizes on every element",
            cat(&[
                &e,
                &el_raw(ids::SEGMENT, &[0x01, 0, 0, 0, 0, 0, 0, 35], &[]),
                &el_raw(ids::CLUSTER, &[0x01, 0, 0, 0, 0, 0, 0, 23], &[]),
                &el_raw(ids::TIMECODE, &[0x01, 0, 0, 0, 0, 0, 0, 1], &[7]),
                &el_raw(
                    ids::SIMPLE_BLOCK,
                    &[0x01, 0, 0, 0, 0, 0, 0, 4],
                    &[0x81, 0, 0, 0],
                ),
            ]),
            Ok(&[
                "Ebml",
                "Segment",
                "Cluster@7",
                "F1:0",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "unknown-size cluster ended by the next cluster, tags, cues and a new document",
            cat(&[
                &e,
                &seg_u,
                &clu_u,
                &tc0,
                &clu_u,
                &timecode(1),
                &tags,
                &clu_u,
                &timecode(2),
                &el(ids::CUES, &[1, 2, 3]),
                &clu_u,
                &timecode(3),
                &e,
                &seg_u,
                &clu_u,
                &timecode(4),
            ]),
            Ok(&[
                "Ebml",
                "Segment?",
                "Cluster?@0",
                "/Cluster",
                "Cluster?@1",
                "/Cluster",
                "Tags(N)",
                "Cluster?@2",
                "/Cluster",
                "Cluster?@3",
                "/Cluster",
                "/Segment",
                "Ebml",
                "Segment?",
                "Cluster?@4",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "unknown-size segment ended by a new Segment",
            cat(&[&e, &seg_u, &seg_u]),
            Ok(&["Ebml", "Segment?", "/Segment", "Segment?", "/Segment"]),
        ),
        (
            "unknown-size cluster inside a known-size segment ends with the segment",
            cat(&[
                &e,
                &el_raw(ids::SEGMENT, &[0x80 | 8], &[]),
                &clu_u,
                &tc0,
                &e,
            ]),
            Ok(&[
                "Ebml",
                "Segment",
                "Cluster?@0",
                "/Cluster",
                "/Segment",
                "Ebml",
            ]),
        ),
        (
            "void, CRC-less unknown and skipped level-1 elements",
            cat(&[
                &e,
                &void,
                &seg_u,
                &void,
                &el(ids::SEEK_HEAD, &[0; 20]),
                &el(ids::CHAPTERS, &[1]),
                &el(ids::ATTACHMENTS, &[2]),
                &el(0x4123, &[9; 3]),
                &clu_u,
                &void,
                &tc0,
                &void,
                &el(ids::POSITION, &[0]),
                &el(ids::PREV_SIZE, &[1]),
                &el(0x4123, &[]),
                &sb,
                &el(ids::CUES, &[0; 300]),
            ]),
            Ok(&[
                "Ebml",
                "Segment?",
                "Cluster?@0",
                "F1:0",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "tags inside a known-size cluster",
            cat(&[&e, &seg_u, &el(ids::CLUSTER, &cat(&[&tc0, &sb, &tags]))]),
            Ok(&[
                "Ebml",
                "Segment?",
                "Cluster@0",
                "F1:0",
                "Tags(in:N)",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "a known-size cluster then more segment children",
            cat(&[&e, &seg_u, &cluster_known, &tags, &cluster_known]),
            Ok(&[
                "Ebml",
                "Segment?",
                "Cluster@0",
                "F1:0",
                "/Cluster",
                "Tags(N)",
                "Cluster@0",
                "F1:0",
                "/Cluster",
                "/Segment",
            ]),
        ),
        (
            "does not start with an EBML header",
            cat(&[&seg_u]),
            Err(|e| {
                *e == Error::ExpectedEbmlHeader {
                    offset: 0,
                    id: ElementId(ids::SEGMENT),
                }
            }),
        ),
        (
            "first byte 0x00",
            vec![0x00, 0x01],
            Err(|e| {
                *e == Error::InvalidId {
                    offset: 0,
                    source: VintError::ZeroFirstByte,
                }
            }),
        ),
        (
            "size with 0x00 first byte",
            cat(&[&e, &[0x18, 0x53, 0x80, 0x67, 0x00]]),
            Err(|e| {
                matches!(
                    e,
                    Error::InvalidSize {
                        source: VintError::ZeroFirstByte,
                        ..
                    }
                )
            }),
        ),
        (
            "unknown size on Info",
            cat(&[&e, &seg_u, &el_raw(ids::INFO, UNKNOWN, &[])]),
            Err(
                |e| matches!(e, Error::UnknownSizeNotAllowed { id, .. } if *id == ElementId(ids::INFO)),
            ),
        ),
        (
            "unknown size on SimpleBlock",
            cat(&[
                &e,
                &seg_u,
                &clu_u,
                &tc0,
                &el_raw(ids::SIMPLE_BLOCK, UNKNOWN, &[]),
            ]),
            Err(|e| matches!(e, Error::UnknownSizeNotAllowed { .. })),
        ),
        (
            "unknown size on a skipped element",
            cat(&[&e, &seg_u, &el_raw(ids::CUES, UNKNOWN, &[])]),
            Err(|e| matches!(e, Error::UnknownSizeNotAllowed { .. })),
        ),
        (
            "unknown-size cluster inside a cluster",
            cat(&[&e, &seg_u, &el_raw(ids::CLUSTER, &[0x85], &[]), &clu_u]),
            Err(|e| matches!(e, Error::UnknownSizeNotAllowed { .. })),
        ),
        (
            "child overruns its known-size cluster",
            cat(&[
                &e,
                &seg_u,
                &el_raw(ids::CLUSTER, &[0x80 | 5], &[]),
                &tc0,
                &sb,
            ]),
            Err(|e| {
                matches!(e, Error::Overrun { id, parent, .. }
                    if *id == ElementId(ids::SIMPLE_BLOCK) && *parent == ElementId(ids::CLUSTER))
            }),
        ),
        (
            "block before the cluster timecode",
            cat(&[&e, &seg_u, &clu_u, &sb]),
            Err(|e| matches!(e, Error::MissingClusterTimecode { .. })),
        ),
        (
            "known-size cluster without timecode",
            cat(&[&e, &seg_u, &el(ids::CLUSTER, &[])]),
            Err(
                |e| matches!(e, Error::MissingClusterTimecode { found, .. } if *found == ElementId(ids::CLUSTER)),
            ),
        ),
        (
            "two timecodes",
            cat(&[&e, &seg_u, &clu_u, &tc0, &tc0]),
            Err(|e| matches!(e, Error::InvalidValue { .. })),
        ),
        (
            "truncated inside a block",
            {
                let mut v = cat(&[&e, &seg_u, &clu_u, &tc0, &sb]);
                v.pop();
                v
            },
            Err(
                |e| matches!(e, Error::Truncated { id, .. } if *id == ElementId(ids::SIMPLE_BLOCK)),
            ),
        ),
        (
            "truncated inside a header",
            cat(&[&e, &[0x18, 0x53]]),
            Err(|e| matches!(e, Error::TruncatedHeader { .. })),
        ),
        (
            "truncated inside a skipped element",
            cat(&[&e, &seg_u, &el(ids::CUES, &[0; 10])[..5]]),
            Err(|e| matches!(e, Error::Truncated { id, .. } if *id == ElementId(ids::CUES))),
        ),
        (
            "truncated known-size segment",
            cat(&[&e, &el_raw(ids::SEGMENT, &[0x80 | 50], &[]), &cluster_known]),
            Err(|e| matches!(e, Error::Truncated { id, .. } if *id == ElementId(ids::SEGMENT))),
        ),
        (
            "EBMLReadVersion 2 is refused",
            el(ids::EBML, &el(ids::EBML_READ_VERSION, &[2])),
            Err(|e| matches!(e, Error::InvalidValue { .. })),
        ),
        (
            "TimecodeScale 0",
            cat(&[&e, &seg_u, &el(ids::INFO, &el(ids::TIMECODE_SCALE, &[0]))]),
            Err(|e| matches!(e, Error::InvalidValue { .. })),
        ),
        (
            "9-byte integer",
            cat(&[
                &e,
                &seg_u,
                &el(ids::INFO, &el(ids::TIMECODE_SCALE, &[1; 9])),
            ]),
            Err(|e| matches!(e, Error::InvalidValue { .. })),
        ),
        (
            "track entry without TrackNumber",
            cat(&[
                &e,
                &seg_u,
                &el(
                    ids::TRACKS,
                    &el(ids::TRACK_ENTRY, &el(ids::TRACK_TYPE, &[1])),
                ),
            ]),
            Err(|e| matches!(e, Error::MissingElement { .. })),
        ),
        (
            "child of Tracks overruns it",
            cat(&[
                &e,
                &seg_u,
                &el(ids::TRACKS, &el_raw(ids::TRACK_ENTRY, &[0x85], &[1])),
            ]),
            Err(|e| matches!(e, Error::Overrun { .. })),
        ),
        (
            "BlockGroup without Block",
            cat(&[
                &e,
                &seg_u,
                &clu_u,
                &tc0,
                &el(ids::BLOCK_GROUP, &el(ids::BLOCK_DURATION, &[1])),
            ]),
            Err(|e| matches!(e, Error::MissingElement { .. })),
        ),
        (
            "bad lacing",
            cat(&[
                &e,
                &seg_u,
                &clu_u,
                &tc0,
                &el(ids::SIMPLE_BLOCK, &[0x81, 0, 0, 0x04, 1, 7]),
            ]),
            Err(|e| matches!(e, Error::InvalidBlock { .. })),
        ),
        (
            "nesting bomb of SimpleTags",
            {
                let mut st = el(ids::TAG_NAME, b"x");
                for _ in 0..40 {
                    st = el(ids::SIMPLE_TAG, &st);
                }
                cat(&[&e, &seg_u, &el(ids::TAGS, &el(ids::TAG, &st))])
            },
            Err(|e| matches!(e, Error::TooDeep { .. })),
        ),
    ]
}

#[test]
fn structure_table() {
    for (name, input, want) in cases() {
        for chunk in [input.len().max(1), 1, 3] {
            let (events, err) = parse_chunks(&input, chunk, ParserBuilder::default());
            match (&want, err) {
                (Ok(want), None) => assert_eq!(summary(&events), *want, "{name} (chunk {chunk})"),
                (Ok(_), Some(e)) => panic!("{name} (chunk {chunk}): unexpected error {e}"),
                (Err(pred), Some(e)) => {
                    assert!(pred(&e), "{name} (chunk {chunk}): wrong error {e:?}")
                }
                (Err(_), None) => panic!(
                    "{name} (chunk {chunk}): no error; got {:?}",
                    summary(&events)
                ),
            }
        }
    }
}

/// Offsets in events and errors are absolute stream offsets.
#[test]
fn offsets() {
    let e = ebml();
    let seg = el_raw(ids::SEGMENT, UNKNOWN, &[]);
    let clu = el_raw(ids::CLUSTER, UNKNOWN, &[]);
    let input = cat(&[&e, &seg, &clu, &timecode(9), &sblock()]);
    let (ev, err) = parse_chunks(&input, 2, ParserBuilder::default());
    assert_eq!(err, None);
    let seg_at = e.len() as u64;
    let clu_at = seg_at + seg.len() as u64;
    let block_at = clu_at + clu.len() as u64 + 3;
    assert_eq!(
        ev[1],
        Event::SegmentStart {
            offset: seg_at,
            data_offset: seg_at + 5,
            size: None
        }
    );
    assert_eq!(
        ev[2],
        Event::ClusterStart {
            offset: clu_at,
            size: None,
            timecode: 9
        }
    );
    let Event::Frame(f) = &ev[3] else { panic!() };
    assert_eq!((f.block_offset, f.payload_offset), (block_at, block_at + 6));
    assert_eq!(
        ev[4],
        Event::ClusterEnd {
            offset_end: input.len() as u64
        }
    );

    let bad = cat(&[&e, &seg, &clu, &[0x00]]);
    let (_, err) = parse_chunks(&bad, 1, ParserBuilder::default());
    assert_eq!(
        err,
        Some(Error::InvalidId {
            offset: clu_at + clu.len() as u64,
            source: VintError::ZeroFirstByte
        })
    );
    let msg = err.unwrap().to_string();
    assert!(msg.contains(&format!("byte {}", clu_at + 5)), "{msg}");
}

/// A block over the limit fails as soon as its header is seen, before its data arrives;
/// skipped elements of any size pass with a tiny buffer.
#[test]
fn buffering_bound() {
    let builder = || ParserBuilder::default().max_element_size(1000);
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader::matroska(2));
    w.begin_segment(SizeMode::Unknown);
    w.element(ids::VOID, &vec![0; 100_000]);
    w.element(ids::CUES, &vec![0; 50_000]);
    w.begin_cluster(0, SizeMode::Unknown);
    w.block(&Block::simple(1, 0, true, &[7; 990])).unwrap();
    w.element(0x4123, &vec![0; 20_000]);
    let ok = w.bytes().to_vec();
    for chunk in [1, 100, 4096, ok.len()] {
        // parse_chunks checks the bound (check_invariants) after every poll.
        let (ev, err) = parse_chunks(&ok, chunk, builder());
        assert_eq!(err, None);
        assert_eq!(ev.len(), 6, "{chunk}");
    }
    // The skip fast path keeps the buffer empty while skipping.
    let mut p = builder().build();
    p.push(&ok[..200]);
    while p.poll().unwrap().is_some() {}
    p.push(&ok[200..60_000]);
    assert_eq!(p.buffered(), 0);

    w.block(&Block::simple(1, 1, false, &[7; 2000])).unwrap();
    let big = w.into_bytes();
    let block_at = ok.len() as u64;
    let mut p = builder().build();
    p.push(&big[..ok.len() + 4]); // header of the big block only
    let err = loop {
        match p.poll() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("expected ElementTooLarge before the data arrives"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        Error::ElementTooLarge {
            offset: block_at,
            id: ElementId(ids::SIMPLE_BLOCK),
            size: 2004,
            max: 1000
        }
    );
    assert_eq!(err.kind(), kvs_core::ErrorKind::LimitExceeded);
    // Sticky.
    assert_eq!(p.poll(), Err(err.clone()));
    assert_eq!(p.finish(), Err(err));
}

/// CRC-32 is verified in buffered masters and in streamed clusters, and can be turned off.
#[test]
fn crc_mismatch() {
    let mut w = Writer::new().with_crc32(true);
    w.ebml_header(&EbmlHeader::matroska(4));
    w.begin_segment(SizeMode::Unknown);
    w.info(&openkvs_mkv::Info::default());
    w.begin_cluster(0, SizeMode::Known);
    w.block(&Block::simple(1, 0, true, &[1; 100])).unwrap();
    w.end_cluster().unwrap();
    let good = w.into_bytes();
    assert_eq!(parse_chunks(&good, 7, ParserBuilder::default()).1, None);
    let last = good.len() - 1;
    let info_byte = good
        .windows(3)
        .position(|w| w == [0x2A, 0xD7, 0xB1])
        .unwrap()
        + 4; // the TimecodeScale value
    for (at, id) in [(info_byte, ids::INFO), (last, ids::CLUSTER)] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let (_, err) = parse_chunks(&bad, 7, ParserBuilder::default());
        assert!(
            matches!(err, Some(Error::CrcMismatch { id: got, .. }) if got == ElementId(id)),
            "{err:?}"
        );
        let (_, err) = parse_split(&bad, &[], ParserBuilder::default().verify_crc(false));
        assert_eq!(err, None);
    }
}

#[test]
fn push_after_finish() {
    let mut p = ParserBuilder::default().build();
    p.push(&ebml());
    p.finish().unwrap();
    assert!(matches!(p.poll(), Ok(Some(Event::EbmlHeader { .. }))));
    assert_eq!(p.poll(), Ok(None));
    p.push(&[1]);
    assert!(matches!(p.poll(), Err(Error::InputAfterFinish { .. })));
}
