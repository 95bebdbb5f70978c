//! What [`crate::Parser::poll`] yields. Events own their data, so a shell can keep them after
//! the parser moved on.

use std::fmt;

use crate::crc::crc32;
use crate::header::EbmlHeader;
use crate::info::Info;
use crate::tags::{SimpleTag, Tag, TagValue};
use crate::tracks::{TrackEntry, TrackKind};

/// One parse event. Offsets are absolute byte offsets from the first byte ever pushed.
///
/// Order within one document (`*` = any number, `?` = optional):
///
/// ```text
/// EbmlHeader SegmentStart (Info | Tracks | Tags)*
///   ( ClusterStart (Frame | Tags)* ClusterEnd | Info | Tracks | Tags )*
/// SegmentEnd
/// ```
///
/// then possibly the next document's `EbmlHeader` (KVS producers restart with a new document
/// in the same body). The only exception: Tags inside a Cluster but before its Timecode come
/// before that Cluster's `ClusterStart`, because `ClusterStart` carries the Timecode.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An EBML header was read whole.
    EbmlHeader {
        /// Offset of the element.
        offset: u64,
        /// Its contents.
        header: EbmlHeader,
    },
    /// A Segment began.
    SegmentStart {
        /// Offset of the Segment element.
        offset: u64,
        /// Offset of its first child.
        data_offset: u64,
        /// Data size; `None` when unknown (live producers).
        size: Option<u64>,
    },
    /// Segment information.
    Info {
        /// Offset of the Info element.
        offset: u64,
        /// Its contents.
        info: Info,
    },
    /// The track list.
    Tracks {
        /// Offset of the Tracks element.
        offset: u64,
        /// Entries in file order.
        tracks: Vec<TrackEntry>,
    },
    /// A Tags element, at Segment level or inside a Cluster.
    Tags {
        /// Offset of the Tags element.
        offset: u64,
        /// True when found inside a known-size Cluster. (A Tags element ends an unknown-size
        /// Cluster, so it is then reported at Segment level, after `ClusterEnd`.)
        in_cluster: bool,
        /// Tags in file order.
        tags: Vec<Tag>,
    },
    /// A Cluster began and its Timecode is known.
    ClusterStart {
        /// Offset of the Cluster element.
        offset: u64,
        /// Data size; `None` when unknown.
        size: Option<u64>,
        /// Cluster `Timecode`, in TimecodeScale ticks.
        timecode: u64,
    },
    /// One frame (one per laced frame).
    Frame(Frame),
    /// The current Cluster ended: its known size was reached, an element that cannot be its
    /// child began (unknown size), or the input ended (unknown size).
    ClusterEnd {
        /// Offset one past its last byte.
        offset_end: u64,
    },
    /// The current Segment ended (known size reached; or, for unknown size, a new EBML
    /// header/Segment began or the input ended).
    SegmentEnd {
        /// Offset one past its last byte.
        offset_end: u64,
    },
}

/// A frame from a SimpleBlock or a BlockGroup's Block.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Track number (`TrackEntry::number`).
    pub track: u64,
    /// Timecode relative to the Cluster Timecode, in ticks. Laced frames share the block's.
    pub timecode_rel: i16,
    /// SimpleBlock keyframe flag; for a BlockGroup, true iff it has no ReferenceBlock.
    pub keyframe: bool,
    /// Invisible flag.
    pub invisible: bool,
    /// SimpleBlock discardable flag (always false for a BlockGroup).
    pub discardable: bool,
    /// `BlockDuration` of a BlockGroup, in ticks.
    pub duration: Option<u64>,
    /// True when the frame came from a BlockGroup rather than a SimpleBlock.
    pub block_group: bool,
    /// Offset of the SimpleBlock or BlockGroup element.
    pub block_offset: u64,
    /// Index of this frame within its lace (0 when not laced).
    pub lace_index: u16,
    /// Frames in the lace (1 when not laced).
    pub lace_count: u16,
    /// Offset of the first payload byte.
    pub payload_offset: u64,
    /// The frame data.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads are large; print length and CRC instead.
        f.debug_struct("Frame")
            .field("track", &self.track)
            .field("timecode_rel", &self.timecode_rel)
            .field("keyframe", &self.keyframe)
            .field("invisible", &self.invisible)
            .field("discardable", &self.discardable)
            .field("duration", &self.duration)
            .field("block_group", &self.block_group)
            .field("block_offset", &self.block_offset)
            .field("lace", &(self.lace_index, self.lace_count))
            .field("payload_offset", &self.payload_offset)
            .field(
                "payload",
                &format_args!("{}B:{:08x}", self.payload.len(), crc32(&self.payload)),
            )
            .finish()
    }
}

/// `N B:crc32` for byte strings in dumps.
struct Bytes<'a>(&'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B:{:08x}", self.0.len(), crc32(self.0))
    }
}

struct Opt<'a, T>(&'a Option<T>);

impl<T: fmt::Debug> fmt::Display for Opt<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => f.write_str("-"),
        }
    }
}

fn fmt_track(f: &mut fmt::Formatter<'_>, t: &TrackEntry) -> fmt::Result {
    let kind = match t.kind {
        TrackKind::Video => "video".to_owned(),
        TrackKind::Audio => "audio".to_owned(),
        TrackKind::Other(n) => format!("type{n}"),
    };
    write!(
        f,
        " [#{} uid={} {kind} codec={:?} private=",
        t.number, t.uid, t.codec_id
    )?;
    match &t.codec_private {
        Some(p) => write!(f, "{}", Bytes(p))?,
        None => f.write_str("-")?,
    }
    write!(
        f,
        " name={} lang={} default_duration_ns={}",
        Opt(&t.name),
        Opt(&t.language),
        Opt(&t.default_duration_ns)
    )?;
    if let Some(v) = &t.video {
        write!(f, " video={}x{}", v.pixel_width, v.pixel_height)?;
    }
    if let Some(a) = &t.audio {
        write!(
            f,
            " audio={}Hz/{}ch/{}bit",
            a.sampling_frequency,
            a.channels,
            Opt(&a.bit_depth)
        )?;
    }
    f.write_str("]")
}

fn fmt_simple_tag(f: &mut fmt::Formatter<'_>, s: &SimpleTag) -> fmt::Result {
    write!(f, " {:?}=", s.name)?;
    match &s.value {
        Some(TagValue::String(v)) => write!(f, "{v:?}")?,
        Some(TagValue::Binary(v)) => write!(f, "{}", Bytes(v))?,
        None => f.write_str("-")?,
    }
    if let Some(l) = &s.language {
        write!(f, " lang={l:?}")?;
    }
    if let Some(d) = s.default {
        write!(f, " default={d}")?;
    }
    if !s.children.is_empty() {
        f.write_str(" {")?;
        for c in &s.children {
            fmt_simple_tag(f, c)?;
        }
        f.write_str(" }")?;
    }
    Ok(())
}

/// One line per event, without payload bytes (length and CRC-32 instead). This is the format
/// of the golden dumps in `samples/*.events.txt`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::EbmlHeader { offset, header: h } => write!(
                f,
                "EbmlHeader @{offset} doc_type={:?} doc_type_version={} doc_type_read_version={} \
                 ebml_version={} read_version={} max_id_length={} max_size_length={}",
                h.doc_type,
                h.doc_type_version,
                h.doc_type_read_version,
                h.version,
                h.read_version,
                h.max_id_length,
                h.max_size_length
            ),
            Event::SegmentStart {
                offset,
                data_offset,
                size,
            } => write!(
                f,
                "SegmentStart @{offset} data_offset={data_offset} size={}",
                Opt(size)
            ),
            Event::Info { offset, info: i } => {
                write!(
                    f,
                    "Info @{offset} timecode_scale_ns={} duration={} date_utc_ns={} title={} \
                     muxing_app={} writing_app={} segment_uid=",
                    i.timecode_scale_ns,
                    Opt(&i.duration),
                    Opt(&i.date_utc_ns),
                    Opt(&i.title),
                    Opt(&i.muxing_app),
                    Opt(&i.writing_app)
                )?;
                match &i.segment_uid {
                    Some(u) => write!(f, "{}", Bytes(u)),
                    None => f.write_str("-"),
                }
            }
            Event::Tracks { offset, tracks } => {
                write!(f, "Tracks @{offset} n={}", tracks.len())?;
                for t in tracks {
                    fmt_track(f, t)?;
                }
                Ok(())
            }
            Event::Tags {
                offset,
                in_cluster,
                tags,
            } => {
                write!(f, "Tags @{offset} in_cluster={in_cluster} n={}", tags.len())?;
                for t in tags {
                    f.write_str(" [")?;
                    let tg = &t.targets;
                    if tg.type_value.is_some() || tg.target_type.is_some() {
                        write!(
                            f,
                            "target={}/{} ",
                            Opt(&tg.type_value),
                            Opt(&tg.target_type)
                        )?;
                    }
                    for (what, uids) in [
                        ("track", &tg.track_uids),
                        ("edition", &tg.edition_uids),
                        ("chapter", &tg.chapter_uids),
                        ("attachment", &tg.attachment_uids),
                    ] {
                        if !uids.is_empty() {
                            write!(f, "{what}_uids={uids:?} ")?;
                        }
                    }
                    f.write_str("simple_tags:")?;
                    for s in &t.simple_tags {
                        fmt_simple_tag(f, s)?;
                    }
                    f.write_str("]")?;
                }
                Ok(())
            }
            Event::ClusterStart {
                offset,
                size,
                timecode,
            } => write!(
                f,
                "ClusterStart @{offset} size={} timecode={timecode}",
                Opt(size)
            ),
            Event::Frame(fr) => {
                write!(
                    f,
                    "Frame @{} track={} tc={}",
                    fr.block_offset, fr.track, fr.timecode_rel
                )?;
                for (on, name) in [
                    (fr.keyframe, " key"),
                    (fr.invisible, " invisible"),
                    (fr.discardable, " discardable"),
                    (fr.block_group, " group"),
                ] {
                    if on {
                        f.write_str(name)?;
                    }
                }
                if let Some(d) = fr.duration {
                    write!(f, " duration={d}")?;
                }
                if fr.lace_count > 1 {
                    write!(f, " lace={}/{}", fr.lace_index, fr.lace_count)?;
                }
                write!(f, " payload=@{}+{}", fr.payload_offset, Bytes(&fr.payload))
            }
            Event::ClusterEnd { offset_end } => write!(f, "ClusterEnd @{offset_end}"),
            Event::SegmentEnd { offset_end } => write!(f, "SegmentEnd @{offset_end}"),
        }
    }
}
