//! `trak` (ISO/IEC 14496-12 section 8.3.1): `tkhd`, `edts`/`elst`, `mdia`.

pub(crate) mod mdia;

use crate::codec::{TrackConfig, TrackKind};
use crate::write::Writer;

/// One entry of an edit list (section 8.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// In the movie timescale.
    pub(crate) segment_duration: u64,
    /// In the media timescale; -1 = empty edit (a delay).
    pub(crate) media_time: i64,
}

/// Everything a `trak` needs beyond its config.
#[derive(Debug)]
pub(crate) struct TrakParams<'a> {
    /// tkhd duration, movie timescale.
    pub(crate) movie_duration: u64,
    /// mdhd duration, media timescale.
    pub(crate) media_duration: u64,
    /// Edit list entries; empty = no `edts`.
    pub(crate) edits: &'a [Edit],
    /// Sample tables; `None` = empty tables (fMP4 init segment).
    pub(crate) tables: Option<mdia::minf::stbl::Tables<'a>>,
}

pub(crate) fn write_trak(w: &mut Writer, cfg: &TrackConfig, p: &TrakParams<'_>) {
    w.boxed(b"trak", |w| {
        write_tkhd(w, cfg, p.movie_duration);
        if !p.edits.is_empty() {
            write_edts(w, p.edits);
        }
        mdia::write_mdia(w, cfg, p.media_duration, p.tables.as_ref());
    });
}

/// `tkhd` (section 8.3.2), flags 3 = track_enabled | track_in_movie.
fn write_tkhd(w: &mut Writer, cfg: &TrackConfig, duration: u64) {
    let v1 = duration > u64::from(u32::MAX);
    let (volume, width, height) = match cfg.kind {
        TrackKind::Video { width, height, .. } => (0, width, height),
        TrackKind::Audio { .. } => (0x0100, 0, 0),
    };
    w.full(b"tkhd", u8::from(v1), 3, |w| {
        if v1 {
            w.u64(0); // creation_time
            w.u64(0); // modification_time
            w.u32(cfg.id);
            w.u32(0); // reserved
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(cfg.id);
            w.u32(0);
            w.u32(duration as u32);
        }
        w.zeros(8); // reserved
        w.u16(0); // layer
        w.u16(0); // alternate_group
        w.u16(volume);
        w.u16(0); // reserved
        w.unity_matrix();
        w.u32(u32::from(width) << 16); // 16.16 fixed point
        w.u32(u32::from(height) << 16);
    });
}

/// `edts` with an `elst` (section 8.6.6), rate 1.0.
fn write_edts(w: &mut Writer, edits: &[Edit]) {
    let v1 = edits
        .iter()
        .any(|e| e.segment_duration > u64::from(u32::MAX) || i32::try_from(e.media_time).is_err());
    w.boxed(b"edts", |w| {
        w.full(b"elst", u8::from(v1), 0, |w| {
            w.u32(edits.len() as u32);
            for e in edits {
                if v1 {
                    w.u64(e.segment_duration);
                    w.u64(e.media_time as u64);
                } else {
                    w.u32(e.segment_duration as u32);
                    w.i32(e.media_time as i32);
                }
                w.u16(1); // media_rate_integer
                w.u16(0); // media_rate_fraction
            }
        });
    });
}
