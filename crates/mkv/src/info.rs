//! Segment `Info` (Matroska §5.1.2, "Segment Information").

use crate::ebml;
use crate::error::{Error, Result};
use crate::ids::{self, ElementId};
use crate::master::Master;

/// Matroska's default TimecodeScale: 1 ms per tick.
pub const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;

/// Segment information.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    /// `TimestampScale`: nanoseconds per timecode tick (default 1,000,000 = 1 ms). Never 0.
    pub timecode_scale_ns: u64,
    /// `Duration` in ticks, when the muxer knew it.
    pub duration: Option<f64>,
    /// `DateUTC`: nanoseconds since 2001-01-01T00:00:00 UTC.
    pub date_utc_ns: Option<i64>,
    /// `Title`.
    pub title: Option<String>,
    /// `MuxingApp`.
    pub muxing_app: Option<String>,
    /// `WritingApp`.
    pub writing_app: Option<String>,
    /// `SegmentUUID` (16 bytes when valid; kept as found).
    pub segment_uid: Option<Vec<u8>>,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            timecode_scale_ns: DEFAULT_TIMECODE_SCALE_NS,
            duration: None,
            date_utc_ns: None,
            title: None,
            muxing_app: None,
            writing_app: None,
            segment_uid: None,
        }
    }
}

impl Info {
    pub(crate) fn parse(m: Master<'_>, verify_crc: bool) -> Result<Self> {
        if verify_crc {
            m.check_crc()?;
        }
        let mut info = Info::default();
        for c in m.children() {
            let c = c?;
            match c.id {
                ids::TIMECODE_SCALE => {
                    info.timecode_scale_ns = c.uint()?;
                    if info.timecode_scale_ns == 0 {
                        return Err(Error::InvalidValue {
                            offset: c.offset,
                            id: ElementId(c.id),
                            reason: "TimecodeScale greater than 0",
                        });
                    }
                }
                ids::DURATION => info.duration = Some(c.float()?),
                ids::DATE_UTC => info.date_utc_ns = Some(c.int()?),
                ids::TITLE => info.title = Some(c.string()),
                ids::MUXING_APP => info.muxing_app = Some(c.string()),
                ids::WRITING_APP => info.writing_app = Some(c.string()),
                ids::SEGMENT_UID => info.segment_uid = Some(c.data.to_vec()),
                _ => {}
            }
        }
        Ok(info)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut c = Vec::new();
        if let Some(uid) = &self.segment_uid {
            ebml::write_element(&mut c, ids::SEGMENT_UID, uid);
        }
        ebml::write_uint(&mut c, ids::TIMECODE_SCALE, self.timecode_scale_ns);
        if let Some(d) = self.duration {
            ebml::write_float(&mut c, ids::DURATION, d);
        }
        if let Some(d) = self.date_utc_ns {
            ebml::write_int(&mut c, ids::DATE_UTC, d);
        }
        if let Some(t) = &self.title {
            ebml::write_string(&mut c, ids::TITLE, t);
        }
        if let Some(t) = &self.muxing_app {
            ebml::write_string(&mut c, ids::MUXING_APP, t);
        }
        if let Some(t) = &self.writing_app {
            ebml::write_string(&mut c, ids::WRITING_APP, t);
        }
        c
    }
}
