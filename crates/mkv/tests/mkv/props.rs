//! Property tests: parsing does not depend on how the input is split, never panics, and keeps
//! its invariants (checked after every call by `parse_split`).

use openkvs_mkv::{
    Block, BlockKind, EbmlHeader, Info, Lacing, ParserBuilder, SizeMode, Tag, TrackEntry,
    TrackKind, Writer, ids,
};
use proptest::prelude::*;
use proptest::sample::Index;

use super::parse_split;

/// Outcome as text: events hold f64s (Duration, SamplingFrequency) and a NaN decoded from
/// random bytes is not `==` to itself, while its Debug text is stable.
fn outcome(data: &[u8], splits: &[usize], builder: ParserBuilder) -> String {
    format!("{:?}", parse_split(data, splits, builder))
}

#[derive(Debug, Clone)]
struct B {
    track: u64,
    tc: i16,
    key: bool,
    lacing: u8,
    group: bool,
    sizes: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Item {
    Info,
    Tracks,
    Tags(String),
    Void(usize),
    Cluster {
        known: bool,
        tc: u64,
        blocks: Vec<B>,
        tags_inside: bool,
    },
}

#[derive(Debug, Clone)]
struct Doc {
    seg_known: bool,
    crc: bool,
    items: Vec<Item>,
}

fn block() -> impl Strategy<Value = B> {
    (
        1u64..4,
        any::<i16>(),
        any::<bool>(),
        0u8..4,
        any::<bool>(),
        prop::collection::vec(0usize..400, 1..6),
    )
        .prop_map(|(track, tc, key, lacing, group, sizes)| B {
            track,
            tc,
            key,
            lacing,
            group,
            sizes,
        })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        Just(Item::Info),
        Just(Item::Tracks),
        "[A-Z_]{0,12}".prop_map(Item::Tags),
        (0usize..300).prop_map(Item::Void),
        (
            any::<bool>(),
            any::<u64>(),
            prop::collection::vec(block(), 0..5),
            any::<bool>()
        )
            .prop_map(|(known, tc, blocks, tags_inside)| Item::Cluster {
                known,
                tc,
                blocks,
                tags_inside
            }),
    ]
}

fn docs() -> impl Strategy<Value = Vec<Doc>> {
    prop::collection::vec(
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(item(), 0..8),
        )
            .prop_map(|(seg_known, crc, items)| Doc {
                seg_known,
                crc,
                items,
            }),
        1..3,
    )
}

fn write(docs: &[Doc]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in docs {
        let mut w = Writer::new().with_crc32(d.crc);
        w.ebml_header(&EbmlHeader::matroska(2));
        w.begin_segment(if d.seg_known {
            SizeMode::Known
        } else {
            SizeMode::Unknown
        });
        for it in &d.items {
            match it {
                Item::Info => w.info(&Info::default()),
                Item::Tracks => w.tracks(&[TrackEntry {
                    number: 1,
                    uid: 1,
                    kind: TrackKind::Video,
                    codec_id: "V_MPEG4/ISO/AVC\0".to_owned(),
                    ..Default::default()
                }]),
                Item::Tags(name) => w.tags(&[Tag::strings([(name.as_str(), "v")])]),
                Item::Void(n) => w.element(ids::VOID, &vec![0; *n]),
                Item::Cluster {
                    known,
                    tc,
                    blocks,
                    tags_inside,
                } => {
                    w.begin_cluster(
                        *tc,
                        if *known {
                            SizeMode::Known
                        } else {
                            SizeMode::Unknown
                        },
                    );
                    for b in blocks {
                        let payloads: Vec<Vec<u8>> = b
                            .sizes
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| vec![i as u8; n])
                            .collect();
                        let lacing = match b.lacing {
                            0 if payloads.len() == 1 => Lacing::None,
                            1 => Lacing::Xiph,
                            2 => Lacing::FixedSize,
                            _ => Lacing::Ebml,
                        };
                        let frames: Vec<&[u8]> = if lacing == Lacing::FixedSize {
                            payloads.iter().map(|_| payloads[0].as_slice()).collect()
                        } else {
                            payloads.iter().map(Vec::as_slice).collect()
                        };
                        w.block(&Block {
                            lacing,
                            frames,
                            kind: if b.group {
                                BlockKind::Group {
                                    duration: Some(b.sizes[0] as u64),
                                }
                            } else {
                                BlockKind::Simple
                            },
                            ..Block::simple(b.track, b.tc, b.key, &[])
                        })
                        .expect("valid block");
                    }
                    if *tags_inside {
                        w.tags(&[Tag::strings([("INSIDE", "")])]);
                    }
                    if *known {
                        w.end_cluster().expect("open cluster");
                    }
                }
            }
        }
        // A still-open unknown-size cluster is closed by end_segment.
        w.end_segment().expect("open segment");
        out.extend(w.into_bytes());
    }
    out
}

fn points(len: usize, idx: &[Index]) -> Vec<usize> {
    let mut v: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    v.sort_unstable();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Valid streams parse without error and give the same events however they are split.
    #[test]
    fn same_events_however_chunked(docs in docs(), idx in prop::collection::vec(any::<Index>(), 0..24)) {
        let data = write(&docs);
        let whole = parse_split(&data, &[], ParserBuilder::default());
        prop_assert_eq!(&whole.1, &None);
        let split = parse_split(&data, &points(data.len(), &idx), ParserBuilder::default());
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<usize> = (1..data.len()).collect();
        let small = parse_split(&data, &bytewise, ParserBuilder::default().max_element_size(4096));
        prop_assert_eq!(whole, small);
    }

    /// Arbitrary bytes: no panic, invariants hold, and the outcome (events and error) does not
    /// depend on the split.
    #[test]
    fn never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..600), idx in prop::collection::vec(any::<Index>(), 0..16)) {
        let whole = outcome(&data, &[], ParserBuilder::default());
        let split = outcome(&data, &points(data.len(), &idx), ParserBuilder::default());
        prop_assert_eq!(whole, split);
    }

    /// Corrupted valid streams reach deep parser states: same properties.
    #[test]
    fn never_panics_on_corrupted_streams(
        docs in docs(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..6),
        idx in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let mut data = write(&docs);
        for (at, byte, op) in edits {
            let i = at.index(data.len() + 1);
            match op {
                0 if i < data.len() => data[i] = byte,
                1 => data.insert(i, byte),
                _ => data.truncate(i),
            }
        }
        let builder = || ParserBuilder::default().max_element_size(2048);
        let whole = outcome(&data, &[], builder());
        let split = outcome(&data, &points(data.len(), &idx), builder());
        prop_assert_eq!(whole, split);
    }
}
