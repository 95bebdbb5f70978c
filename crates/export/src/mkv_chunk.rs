//! One GetMedia "chunk": a self-contained MKV document holding one fragment (`kvs-api.md` §8.1).
//!
//! ```text
//! EBML header (DocType matroska, DocTypeVersion 4, DocTypeReadVersion 2)
//! Segment (unknown size, never closed)
//!   Info, Tracks                      from the fragment's track set
//!   Tags  AWS_KINESISVIDEO_FRAGMENT_NUMBER / _SERVER_TIMESTAMP / _PRODUCER_TIMESTAMP
//!         (+ the producer's own fragment metadata, as a second Tag)
//!   Cluster (known size)  Timecode = the producer's cluster timecode, SimpleBlocks
//!   Tags  AWS_KINESISVIDEO_MILLIS_BEHIND_NOW / _CONTINUATION_TOKEN   (GetMedia only)
//! ```
//!
//! A fragment merged from several producer clusters can span more than the ±32767 ticks a
//! SimpleBlock's relative timecode can express; it is then written as several Clusters.

use kvs_core::FragmentNumber;
use mkv::{Block, EbmlHeader, Info, SizeMode, Tag, TrackEntry, TrackKind, Writer};
use store::{FragmentMeta, FrameEntry, TrackSet};

/// The post-cluster tags GetMedia adds (GetMediaForFragmentList does not).
#[derive(Debug, Clone, Copy)]
pub struct ChunkTags {
    /// `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`.
    pub millis_behind_now: i64,
    /// `AWS_KINESISVIDEO_CONTINUATION_TOKEN` (the fragment number, as KVS does).
    pub continuation_token: FragmentNumber,
}

/// Epoch milliseconds as KVS writes them in tags: seconds with exactly three decimals.
fn secs3(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn header() -> EbmlHeader {
    EbmlHeader {
        doc_type_version: 4,
        doc_type_read_version: 2,
        ..EbmlHeader::default()
    }
}

/// MKV `TrackEntry`s for a stored track set.
pub fn track_entries(set: &TrackSet) -> Vec<TrackEntry> {
    set.tracks
        .iter()
        .map(|t| {
            let kind = TrackKind::from_track_type(t.track_type);
            TrackEntry {
                number: t.number,
                uid: t.uid,
                kind,
                codec_id: t.codec_id.clone(),
                codec_private: t.codec_private.clone(),
                name: t.name.clone(),
                language: t.language.clone(),
                default_duration_ns: t.default_duration_ns,
                codec_delay_ns: None,
                video: match (t.width, t.height) {
                    (Some(w), Some(h)) => Some(mkv::Video {
                        pixel_width: w,
                        pixel_height: h,
                    }),
                    _ => None,
                },
                audio: t.sampling_frequency.map(|f| mkv::Audio {
                    sampling_frequency: f,
                    channels: t.channels.unwrap_or(1),
                    bit_depth: t.bit_depth,
                }),
            }
        })
        .collect()
}

/// Builds the chunk for one fragment. `media` is the fragment's whole media bytes; `frames` its
/// frame table. Fails only if the frame table points outside `media`.
pub fn mkv_chunk(
    meta: &FragmentMeta,
    set: &TrackSet,
    frames: &[FrameEntry],
    media: &[u8],
    post: Option<ChunkTags>,
) -> Result<Vec<u8>, mkv::Error> {
    let mut w = Writer::new();
    w.ebml_header(&header());
    w.begin_segment(SizeMode::Unknown);
    w.info(&Info {
        timecode_scale_ns: set.timecode_scale_ns,
        ..Info::default()
    });
    w.tracks(&track_entries(set));
    let number = meta.number.to_string();
    let mut tags = vec![Tag::strings([
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number.as_str()),
        (
            "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            secs3(meta.server_ms).as_str(),
        ),
        (
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            secs3(meta.producer_ms).as_str(),
        ),
    ])];
    if !meta.tags.is_empty() {
        tags.push(Tag::strings(
            meta.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ));
    }
    w.tags(&tags);

    // Group frames into clusters whose relative timecodes fit an i16.
    let mut i = 0;
    while i < frames.len() {
        let base = frames[i].pts;
        let mut j = i;
        while j < frames.len() && (frames[j].pts - base).abs() <= i64::from(i16::MAX) {
            j += 1;
        }
        let mut blocks = Vec::with_capacity(j - i);
        for f in &frames[i..j] {
            let start = f.offset as usize;
            let payload =
                media
                    .get(start..start + f.size as usize)
                    .ok_or(mkv::Error::Unwritable {
                        reason: "frame table points outside the fragment's media bytes",
                    })?;
            let rel = i16::try_from(f.pts - base).expect("grouped to fit");
            blocks.push(Block::simple(f.track, rel, f.keyframe, payload));
        }
        let timecode =
            u64::try_from(i128::from(meta.cluster_timecode) + i128::from(base)).unwrap_or(0);
        w.cluster(timecode, &blocks)?;
        i = j;
    }
    if let Some(p) = post {
        let token = p.continuation_token.to_string();
        w.tags(&[Tag::strings([
            (
                "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
                p.millis_behind_now.to_string().as_str(),
            ),
            ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", token.as_str()),
        ])]);
    }
    Ok(w.into_bytes())
}

/// The in-band error record of `kvs-api.md` §8.2: a mini-document whose Tags carry the
/// fragment number, `AWS_KINESISVIDEO_ERROR_ID` and `_ERROR_CODE` and no server timestamp.
pub fn mkv_error_chunk(number: Option<FragmentNumber>, error_id: u32, code: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.ebml_header(&header());
    w.begin_segment(SizeMode::Unknown);
    let number = number.map(|n| n.to_string()).unwrap_or_default();
    let id = error_id.to_string();
    w.tags(&[Tag::strings([
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number.as_str()),
        ("AWS_KINESISVIDEO_ERROR_ID", id.as_str()),
        ("AWS_KINESISVIDEO_ERROR_CODE", code),
    ])]);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkv::Event;
    use store::TrackInfo;

    fn set() -> TrackSet {
        TrackSet {
            timecode_scale_ns: 1_000_000,
            tracks: vec![TrackInfo {
                number: 1,
                uid: 1,
                track_type: 1,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                codec_private: Some(vec![1, 2, 3]),
                name: Some("kinesis_video".into()),
                language: None,
                default_duration_ns: None,
                width: Some(640),
                height: Some(480),
                sampling_frequency: None,
                channels: None,
                bit_depth: None,
            }],
        }
    }

    fn meta(frames: u32) -> FragmentMeta {
        FragmentMeta {
            stream_arn: "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1".into(),
            number: FragmentNumber(42),
            producer_ms: 1_700_000_000_005,
            server_ms: 1_700_000_000_126,
            duration_ms: 40_000,
            size_bytes: 0,
            cluster_timecode: 1_700_000_000_005,
            frame_count: frames,
            track_set_id: 1,
            tags: vec![("site".into(), "north".into())],
        }
    }

    #[test]
    fn chunk_parses_back_with_kvs_tags_and_split_clusters() {
        // 3 frames, the last 40 s after the first: needs a second cluster.
        let media = b"aaaabbbcc".to_vec();
        let frames = [
            FrameEntry {
                track: 1,
                keyframe: true,
                pts: 0,
                duration: 0,
                offset: 0,
                size: 4,
            },
            FrameEntry {
                track: 1,
                keyframe: false,
                pts: 40,
                duration: 0,
                offset: 4,
                size: 3,
            },
            FrameEntry {
                track: 1,
                keyframe: false,
                pts: 40_000,
                duration: 0,
                offset: 7,
                size: 2,
            },
        ];
        let post = ChunkTags {
            millis_behind_now: 15,
            continuation_token: FragmentNumber(42),
        };
        let bytes = mkv_chunk(&meta(3), &set(), &frames, &media, Some(post)).unwrap();
        let events = mkv::parse_all(&bytes, mkv::Parser::builder()).unwrap();
        let mut clusters = vec![];
        let mut payloads = vec![];
        let mut tag_names = vec![];
        for e in &events {
            match e {
                Event::ClusterStart { timecode, size, .. } => {
                    assert!(size.is_some(), "GetMedia clusters have a known size");
                    clusters.push(*timecode);
                }
                Event::Frame(f) => payloads.push((f.timecode_rel, f.keyframe, f.payload.clone())),
                Event::Tags { tags, .. } => {
                    for t in tags {
                        for s in &t.simple_tags {
                            tag_names
                                .push((s.name.clone(), s.as_str().unwrap_or_default().to_owned()));
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(clusters, [1_700_000_000_005, 1_700_000_040_005]);
        assert_eq!(
            payloads,
            [
                (0, true, b"aaaa".to_vec()),
                (40, false, b"bbb".to_vec()),
                (0, false, b"cc".to_vec())
            ]
        );
        let num = FragmentNumber(42).to_string();
        assert_eq!(
            tag_names,
            [
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER".to_owned(), num.clone()),
                (
                    "AWS_KINESISVIDEO_SERVER_TIMESTAMP".into(),
                    "1700000000.126".into()
                ),
                (
                    "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP".into(),
                    "1700000000.005".into()
                ),
                ("site".into(), "north".into()),
                ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW".into(), "15".into()),
                ("AWS_KINESISVIDEO_CONTINUATION_TOKEN".into(), num),
            ]
        );
    }

    #[test]
    fn bad_frame_table_is_an_error_not_a_panic() {
        let frames = [FrameEntry {
            track: 1,
            keyframe: true,
            pts: 0,
            duration: 0,
            offset: 5,
            size: 10,
        }];
        assert!(mkv_chunk(&meta(1), &set(), &frames, b"abc", None).is_err());
    }

    #[test]
    fn seconds_with_three_decimals() {
        assert_eq!(secs3(1_511_852_109_126), "1511852109.126");
        assert_eq!(secs3(5), "0.005");
        assert_eq!(secs3(-1), "-1.999");
    }
}
