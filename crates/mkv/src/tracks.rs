//! `Tracks` and `TrackEntry` (Matroska §5.1.4).

use crate::ebml;
use crate::error::{Error, Result};
use crate::ids::{self, ElementId};
use crate::master::{Master, write_master};

/// What a track carries, from `TrackType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// TrackType 1.
    Video,
    /// TrackType 2.
    Audio,
    /// Any other TrackType (complex 3, logo 0x10, subtitle 0x11, buttons 0x12, control 0x20,
    /// metadata 0x21, ...). Never holds 1 or 2.
    Other(u64),
}

impl Default for TrackKind {
    /// `Other(0)`: only hand-built values have it; parsed tracks always carry a TrackType.
    fn default() -> Self {
        TrackKind::Other(0)
    }
}

impl TrackKind {
    /// From the `TrackType` value.
    pub fn from_track_type(v: u64) -> Self {
        match v {
            1 => TrackKind::Video,
            2 => TrackKind::Audio,
            n => TrackKind::Other(n),
        }
    }

    /// The `TrackType` value.
    pub fn track_type(self) -> u64 {
        match self {
            TrackKind::Video => 1,
            TrackKind::Audio => 2,
            TrackKind::Other(n) => n,
        }
    }
}

/// `Video` settings of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Video {
    /// `PixelWidth` (0 when absent).
    pub pixel_width: u64,
    /// `PixelHeight` (0 when absent).
    pub pixel_height: u64,
}

/// `Audio` settings of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Audio {
    /// `SamplingFrequency` in Hz (default 8000).
    pub sampling_frequency: f64,
    /// `Channels` (default 1).
    pub channels: u64,
    /// `BitDepth`.
    pub bit_depth: Option<u64>,
}

impl Default for Audio {
    fn default() -> Self {
        Audio {
            sampling_frequency: 8000.0,
            channels: 1,
            bit_depth: None,
        }
    }
}

/// One `TrackEntry`.
///
/// `TrackNumber` and `TrackType` are required (ingest cannot route frames without them); other
/// absent children take defaults (`uid` 0, empty `codec_id`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackEntry {
    /// `TrackNumber`, what blocks refer to. Never 0.
    pub number: u64,
    /// `TrackUID`, what Tags target.
    pub uid: u64,
    /// From `TrackType`.
    pub kind: TrackKind,
    /// `CodecID` with trailing NULs removed, e.g. `V_MPEG4/ISO/AVC`, `A_AAC`, `V_MPEGH/ISO/HEVC`.
    pub codec_id: String,
    /// `CodecPrivate` (avcC / hvcC / AudioSpecificConfig ...).
    pub codec_private: Option<Vec<u8>>,
    /// `Name`.
    pub name: Option<String>,
    /// `Language`.
    pub language: Option<String>,
    /// `DefaultDuration` in ns.
    pub default_duration_ns: Option<u64>,
    /// `CodecDelay` in ns.
    pub codec_delay_ns: Option<u64>,
    /// `Video` master.
    pub video: Option<Video>,
    /// `Audio` master.
    pub audio: Option<Audio>,
}

impl TrackEntry {
    fn parse(m: Master<'_>) -> Result<Self> {
        let mut t = TrackEntry::default();
        let mut number = None;
        let mut kind = None;
        for c in m.children() {
            let c = c?;
            match c.id {
                ids::TRACK_NUMBER => number = Some((c.uint()?, c.offset)),
                ids::TRACK_UID => t.uid = c.uint()?,
                ids::TRACK_TYPE => kind = Some(TrackKind::from_track_type(c.uint()?)),
                ids::CODEC_ID => t.codec_id = c.string(),
                ids::CODEC_PRIVATE => t.codec_private = Some(c.data.to_vec()),
                ids::NAME => t.name = Some(c.string()),
                ids::LANGUAGE => t.language = Some(c.string()),
                ids::DEFAULT_DURATION => t.default_duration_ns = Some(c.uint()?),
                ids::CODEC_DELAY => t.codec_delay_ns = Some(c.uint()?),
                ids::VIDEO => {
                    let mut v = Video::default();
                    for c in c.as_master().children() {
                        let c = c?;
                        match c.id {
                            ids::PIXEL_WIDTH => v.pixel_width = c.uint()?,
                            ids::PIXEL_HEIGHT => v.pixel_height = c.uint()?,
                            _ => {}
                        }
                    }
                    t.video = Some(v);
                }
                ids::AUDIO => {
                    let mut a = Audio::default();
                    for c in c.as_master().children() {
                        let c = c?;
                        match c.id {
                            ids::SAMPLING_FREQUENCY => a.sampling_frequency = c.float()?,
                            ids::CHANNELS => a.channels = c.uint()?,
                            ids::BIT_DEPTH => a.bit_depth = Some(c.uint()?),
                            _ => {}
                        }
                    }
                    t.audio = Some(a);
                }
                _ => {}
            }
        }
        let missing = |id| Error::MissingElement {
            offset: m.offset,
            id: ElementId(ids::TRACK_ENTRY),
            missing: ElementId(id),
        };
        match number {
            None => return Err(missing(ids::TRACK_NUMBER)),
            Some((0, offset)) => {
                return Err(Error::InvalidValue {
                    offset,
                    id: ElementId(ids::TRACK_NUMBER),
                    reason: "TrackNumber greater than 0",
                });
            }
            Some((n, _)) => t.number = n,
        }
        t.kind = kind.ok_or_else(|| missing(ids::TRACK_TYPE))?;
        Ok(t)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut c = Vec::new();
        ebml::write_uint(&mut c, ids::TRACK_NUMBER, self.number);
        ebml::write_uint(&mut c, ids::TRACK_UID, self.uid);
        ebml::write_uint(&mut c, ids::TRACK_TYPE, self.kind.track_type());
        ebml::write_string(&mut c, ids::CODEC_ID, &self.codec_id);
        if let Some(n) = &self.name {
            ebml::write_string(&mut c, ids::NAME, n);
        }
        if let Some(l) = &self.language {
            ebml::write_string(&mut c, ids::LANGUAGE, l);
        }
        if let Some(d) = self.default_duration_ns {
            ebml::write_uint(&mut c, ids::DEFAULT_DURATION, d);
        }
        if let Some(d) = self.codec_delay_ns {
            ebml::write_uint(&mut c, ids::CODEC_DELAY, d);
        }
        if let Some(p) = &self.codec_private {
            ebml::write_element(&mut c, ids::CODEC_PRIVATE, p);
        }
        if let Some(v) = &self.video {
            let mut vc = Vec::new();
            ebml::write_uint(&mut vc, ids::PIXEL_WIDTH, v.pixel_width);
            ebml::write_uint(&mut vc, ids::PIXEL_HEIGHT, v.pixel_height);
            write_master(&mut c, ids::VIDEO, &vc, false);
        }
        if let Some(a) = &self.audio {
            let mut ac = Vec::new();
            ebml::write_float(&mut ac, ids::SAMPLING_FREQUENCY, a.sampling_frequency);
            ebml::write_uint(&mut ac, ids::CHANNELS, a.channels);
            if let Some(b) = a.bit_depth {
                ebml::write_uint(&mut ac, ids::BIT_DEPTH, b);
            }
            write_master(&mut c, ids::AUDIO, &ac, false);
        }
        write_master(out, ids::TRACK_ENTRY, &c, false);
    }
}

/// Parses the data of a `Tracks` element.
pub(crate) fn parse_tracks(m: Master<'_>, verify_crc: bool) -> Result<Vec<TrackEntry>> {
    if verify_crc {
        m.check_crc()?;
    }
    let mut tracks = Vec::new();
    for c in m.children() {
        let c = c?;
        if c.id == ids::TRACK_ENTRY {
            tracks.push(TrackEntry::parse(c.as_master())?);
        }
    }
    Ok(tracks)
}

/// Encodes the children of a `Tracks` element.
pub(crate) fn encode_tracks(tracks: &[TrackEntry]) -> Vec<u8> {
    let mut c = Vec::new();
    for t in tracks {
        t.encode(&mut c);
    }
    c
}
