//! `moov` (ISO/IEC 14496-12 section 8.2.1) and its direct children `mvhd` and `mvex`.

pub(crate) mod trak;

use crate::codec::TrackConfig;
use crate::write::Writer;

/// Movie timescale of every file we write: 1 kHz, fine enough for mvhd/tkhd durations and
/// edit lists, which are the only values in it.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// `mvhd` (section 8.2.2): version 1 only when the duration needs 64 bits. Creation and
/// modification times are 0 ("unknown"): this crate reads no clock and the bytes stay
/// reproducible.
pub(crate) fn write_mvhd(w: &mut Writer, duration: u64, next_track_id: u32) {
    let v1 = duration > u64::from(u32::MAX);
    w.full(b"mvhd", u8::from(v1), 0, |w| {
        if v1 {
            w.u64(0); // creation_time
            w.u64(0); // modification_time
            w.u32(MOVIE_TIMESCALE);
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(MOVIE_TIMESCALE);
            w.u32(duration as u32);
        }
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(2 + 8); // reserved
        w.unity_matrix();
        w.zeros(24); // pre_defined
        w.u32(next_track_id);
    });
}

/// `mvex` (section 8.8.1) with one `trex` (section 8.8.3) per track: sample description 1,
/// no other defaults (every `trun` carries its own values).
pub(crate) fn write_mvex(w: &mut Writer, tracks: &[TrackConfig]) {
    w.boxed(b"mvex", |w| {
        for t in tracks {
            w.full(b"trex", 0, 0, |w| {
                w.u32(t.id);
                w.u32(1); // default_sample_description_index
                w.u32(0); // default_sample_duration
                w.u32(0); // default_sample_size
                w.u32(0); // default_sample_flags
            });
        }
    });
}

/// Converts a duration from a track's timescale to [`MOVIE_TIMESCALE`], rounding to nearest.
pub fn to_movie_time(duration: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale.max(1));
    ((u128::from(duration) * u128::from(MOVIE_TIMESCALE) + ts / 2) / ts) as u64
}
