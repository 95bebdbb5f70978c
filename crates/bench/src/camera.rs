//! A synthetic camera: H.264-labelled MKV with one cluster per GOP, like the KVS producer
//! (absolute ms timecodes), and an END_OF_FRAGMENT tag after each GOP so the server completes
//! the fragment at the GOP's last byte (latency is then measured from that byte).

use mkv::{Block, EbmlHeader, Info, SizeMode, Tag, TrackEntry, TrackKind, Writer};

/// Camera parameters.
#[derive(Debug, Clone, Copy)]
pub struct CameraSpec {
    /// Bits per second.
    pub bitrate: u64,
    /// Frames per second.
    pub fps: u32,
    /// GOP length in frames.
    pub gop: u32,
}

/// The stream header: EBML header, unknown-size Segment, Info, Tracks.
pub fn header() -> Vec<u8> {
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader {
        doc_type_version: 2,
        doc_type_read_version: 2,
        ..EbmlHeader::default()
    });
    w.begin_segment(SizeMode::Unknown);
    w.info(&Info {
        title: Some("openkvs-bench".into()),
        ..Info::default()
    });
    w.tracks(&[TrackEntry {
        number: 1,
        uid: 1,
        kind: TrackKind::Video,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        // avcC for a 1280x720 High profile stream (content is filler; nothing decodes it here).
        codec_private: Some(vec![
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c,
            0x80,
        ]),
        video: Some(mkv::Video {
            pixel_width: 1280,
            pixel_height: 720,
        }),
        ..TrackEntry::default()
    }]);
    w.into_bytes()
}

/// Frame sizes of one GOP: the key frame carries 10 % of the GOP's bytes.
pub fn frame_sizes(spec: CameraSpec) -> Vec<usize> {
    let gop_bytes = spec.bitrate / 8 * u64::from(spec.gop) / u64::from(spec.fps);
    let key = gop_bytes / 10;
    let other = (gop_bytes - key) / u64::from(spec.gop - 1);
    (0..spec.gop)
        .map(|i| if i == 0 { key as usize } else { other as usize })
        .collect()
}

/// Start of a GOP cluster (unknown size) with its absolute ms timecode.
pub fn cluster_start(timecode_ms: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.begin_cluster(timecode_ms, SizeMode::Unknown);
    w.into_bytes()
}

/// One SimpleBlock.
pub fn frame(rel_ms: i16, key: bool, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.block(&Block::simple(1, rel_ms, key, payload))
        .expect("a single unlaced block always encodes");
    w.into_bytes()
}

/// The END_OF_FRAGMENT Tags element.
pub fn end_of_fragment() -> Vec<u8> {
    let mut w = Writer::new();
    w.tags(&[Tag::strings([(mkv::AWS_KINESISVIDEO_END_OF_FRAGMENT, "")])]);
    w.into_bytes()
}
