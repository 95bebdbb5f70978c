//! Element IDs used by this crate (RFC 8794 §11 for EBML, Matroska `ebml_matroska.xml`).
//!
//! IDs keep their VINT marker bit, exactly as the specs print them.

use std::fmt;

/// `EBML` header master (RFC 8794 §11.2.1).
pub const EBML: u32 = 0x1A45_DFA3;
/// `EBMLVersion`.
pub const EBML_VERSION: u32 = 0x4286;
/// `EBMLReadVersion`.
pub const EBML_READ_VERSION: u32 = 0x42F7;
/// `EBMLMaxIDLength`.
pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
/// `EBMLMaxSizeLength`.
pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
/// `DocType`.
pub const DOC_TYPE: u32 = 0x4282;
/// `DocTypeVersion`.
pub const DOC_TYPE_VERSION: u32 = 0x4287;
/// `DocTypeReadVersion`.
pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
/// `Void` (global): padding, skipped.
pub const VOID: u32 = 0xEC;
/// `CRC-32` (global): CRC of the rest of its parent's data (RFC 8794 §11.3.1).
pub const CRC32: u32 = 0xBF;

/// `Segment`, the top-level Matroska master.
pub const SEGMENT: u32 = 0x1853_8067;
/// `SeekHead` (skipped).
pub const SEEK_HEAD: u32 = 0x114D_9B74;
/// `Info` (Matroska "Segment Information").
pub const INFO: u32 = 0x1549_A966;
/// `Tracks`.
pub const TRACKS: u32 = 0x1654_AE6B;
/// `Cluster`.
pub const CLUSTER: u32 = 0x1F43_B675;
/// `Cues` (skipped).
pub const CUES: u32 = 0x1C53_BB6B;
/// `Chapters` (skipped).
pub const CHAPTERS: u32 = 0x1043_A770;
/// `Attachments` (skipped).
pub const ATTACHMENTS: u32 = 0x1941_A469;
/// `Tags`.
pub const TAGS: u32 = 0x1254_C367;

/// `TimestampScale` (called `TimecodeScale` before Matroska v4), ns per tick.
pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
/// `Duration` (float, in TimecodeScale ticks).
pub const DURATION: u32 = 0x4489;
/// `DateUTC` (ns since 2001-01-01T00:00:00Z).
pub const DATE_UTC: u32 = 0x4461;
/// `Title`.
pub const TITLE: u32 = 0x7BA9;
/// `MuxingApp`.
pub const MUXING_APP: u32 = 0x4D80;
/// `WritingApp`.
pub const WRITING_APP: u32 = 0x5741;
/// `SegmentUUID` (called `SegmentUID` in older specs).
pub const SEGMENT_UID: u32 = 0x73A4;

/// `TrackEntry`.
pub const TRACK_ENTRY: u32 = 0xAE;
/// `TrackNumber`.
pub const TRACK_NUMBER: u32 = 0xD7;
/// `TrackUID`.
pub const TRACK_UID: u32 = 0x73C5;
/// `TrackType`.
pub const TRACK_TYPE: u32 = 0x83;
/// `CodecID`.
pub const CODEC_ID: u32 = 0x86;
/// `CodecPrivate`.
pub const CODEC_PRIVATE: u32 = 0x63A2;
/// `Name` (of a track).
pub const NAME: u32 = 0x536E;
/// `Language`.
pub const LANGUAGE: u32 = 0x22_B59C;
/// `DefaultDuration` (ns).
pub const DEFAULT_DURATION: u32 = 0x23_E383;
/// `CodecDelay` (ns).
pub const CODEC_DELAY: u32 = 0x56AA;
/// `Video` master.
pub const VIDEO: u32 = 0xE0;
/// `PixelWidth`.
pub const PIXEL_WIDTH: u32 = 0xB0;
/// `PixelHeight`.
pub const PIXEL_HEIGHT: u32 = 0xBA;
/// `Audio` master.
pub const AUDIO: u32 = 0xE1;
/// `SamplingFrequency` (float, Hz).
pub const SAMPLING_FREQUENCY: u32 = 0xB5;
/// `Channels`.
pub const CHANNELS: u32 = 0x9F;
/// `BitDepth`.
pub const BIT_DEPTH: u32 = 0x6264;

/// `Tag`.
pub const TAG: u32 = 0x7373;
/// `Targets`.
pub const TARGETS: u32 = 0x63C0;
/// `TargetTypeValue`.
pub const TARGET_TYPE_VALUE: u32 = 0x68CA;
/// `TargetType`.
pub const TARGET_TYPE: u32 = 0x63CA;
/// `TagTrackUID`.
pub const TAG_TRACK_UID: u32 = 0x63C5;
/// `TagEditionUID`.
pub const TAG_EDITION_UID: u32 = 0x63C9;
/// `TagChapterUID`.
pub const TAG_CHAPTER_UID: u32 = 0x63C4;
/// `TagAttachmentUID`.
pub const TAG_ATTACHMENT_UID: u32 = 0x63C6;
/// `SimpleTag`.
pub const SIMPLE_TAG: u32 = 0x67C8;
/// `TagName`.
pub const TAG_NAME: u32 = 0x45A3;
/// `TagLanguage`.
pub const TAG_LANGUAGE: u32 = 0x447A;
/// `TagDefault`.
pub const TAG_DEFAULT: u32 = 0x4484;
/// `TagString`.
pub const TAG_STRING: u32 = 0x4487;
/// `TagBinary`.
pub const TAG_BINARY: u32 = 0x4485;

/// `Timestamp` of a Cluster (called `Timecode` before Matroska v4).
pub const TIMECODE: u32 = 0xE7;
/// `Position` (KVS producers always write 0).
pub const POSITION: u32 = 0xA7;
/// `PrevSize`.
pub const PREV_SIZE: u32 = 0xAB;
/// `SilentTracks`.
pub const SILENT_TRACKS: u32 = 0x5854;
/// `SimpleBlock`.
pub const SIMPLE_BLOCK: u32 = 0xA3;
/// `BlockGroup`.
pub const BLOCK_GROUP: u32 = 0xA0;
/// `EncryptedBlock`.
pub const ENCRYPTED_BLOCK: u32 = 0xAF;
/// `Block` (inside BlockGroup).
pub const BLOCK: u32 = 0xA1;
/// `BlockDuration`.
pub const BLOCK_DURATION: u32 = 0x9B;
/// `ReferenceBlock`.
pub const REFERENCE_BLOCK: u32 = 0xFB;

/// Human name of an ID this crate knows, for error messages and dumps.
pub fn name(id: u32) -> Option<&'static str> {
    Some(match id {
        EBML => "EBML",
        EBML_VERSION => "EBMLVersion",
        EBML_READ_VERSION => "EBMLReadVersion",
        EBML_MAX_ID_LENGTH => "EBMLMaxIDLength",
        EBML_MAX_SIZE_LENGTH => "EBMLMaxSizeLength",
        DOC_TYPE => "DocType",
        DOC_TYPE_VERSION => "DocTypeVersion",
        DOC_TYPE_READ_VERSION => "DocTypeReadVersion",
        VOID => "Void",
        CRC32 => "CRC-32",
        SEGMENT => "Segment",
        SEEK_HEAD => "SeekHead",
        INFO => "Info",
        TRACKS => "Tracks",
        CLUSTER => "Cluster",
        CUES => "Cues",
        CHAPTERS => "Chapters",
        ATTACHMENTS => "Attachments",
        TAGS => "Tags",
        TIMECODE_SCALE => "TimecodeScale",
        DURATION => "Duration",
        DATE_UTC => "DateUTC",
        TITLE => "Title",
        MUXING_APP => "MuxingApp",
        WRITING_APP => "WritingApp",
        SEGMENT_UID => "SegmentUID",
        TRACK_ENTRY => "TrackEntry",
        TRACK_NUMBER => "TrackNumber",
        TRACK_UID => "TrackUID",
        TRACK_TYPE => "TrackType",
        CODEC_ID => "CodecID",
        CODEC_PRIVATE => "CodecPrivate",
        NAME => "Name",
        LANGUAGE => "Language",
        DEFAULT_DURATION => "DefaultDuration",
        CODEC_DELAY => "CodecDelay",
        VIDEO => "Video",
        PIXEL_WIDTH => "PixelWidth",
        PIXEL_HEIGHT => "PixelHeight",
        AUDIO => "Audio",
        SAMPLING_FREQUENCY => "SamplingFrequency",
        CHANNELS => "Channels",
        BIT_DEPTH => "BitDepth",
        TAG => "Tag",
        TARGETS => "Targets",
        TARGET_TYPE_VALUE => "TargetTypeValue",
        TARGET_TYPE => "TargetType",
        TAG_TRACK_UID => "TagTrackUID",
        TAG_EDITION_UID => "TagEditionUID",
        TAG_CHAPTER_UID => "TagChapterUID",
        TAG_ATTACHMENT_UID => "TagAttachmentUID",
        SIMPLE_TAG => "SimpleTag",
        TAG_NAME => "TagName",
        TAG_LANGUAGE => "TagLanguage",
        TAG_DEFAULT => "TagDefault",
        TAG_STRING => "TagString",
        TAG_BINARY => "TagBinary",
        TIMECODE => "Timecode",
        POSITION => "Position",
        PREV_SIZE => "PrevSize",
        SILENT_TRACKS => "SilentTracks",
        SIMPLE_BLOCK => "SimpleBlock",
        BLOCK_GROUP => "BlockGroup",
        ENCRYPTED_BLOCK => "EncryptedBlock",
        BLOCK => "Block",
        BLOCK_DURATION => "BlockDuration",
        REFERENCE_BLOCK => "ReferenceBlock",
        _ => return None,
    })
}

/// Top-level and Segment-level (level 1) IDs: any of them ends an unknown-size Cluster, and the
/// first two end an unknown-size Segment (RFC 8794 §6.2, Matroska §"Unknown-sized elements").
pub(crate) fn ends_unknown_cluster(id: u32) -> bool {
    matches!(
        id,
        EBML | SEGMENT | SEEK_HEAD | INFO | TRACKS | CLUSTER | CUES | CHAPTERS | ATTACHMENTS | TAGS
    )
}

/// IDs that end an unknown-size Segment: a new EBML document or Segment.
pub(crate) fn ends_unknown_segment(id: u32) -> bool {
    matches!(id, EBML | SEGMENT)
}

/// An element ID, printed as hex plus its name when known: `0x1f43b675 (Cluster)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElementId(pub u32);

impl ElementId {
    /// Human name if this crate knows the ID.
    pub fn name(self) -> Option<&'static str> {
        name(self.0)
    }
}

impl fmt::Display for ElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{:#x} ({n})", self.0),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

impl fmt::Debug for ElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
