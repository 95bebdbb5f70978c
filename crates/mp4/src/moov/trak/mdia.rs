//! `mdia` (ISO/IEC 14496-12 section 8.4.1): `mdhd`, `hdlr`, `minf`.

pub(crate) mod minf;

use crate::codec::{TrackConfig, TrackKind};
use crate::write::Writer;

pub(crate) fn write_mdia(
    w: &mut Writer,
    cfg: &TrackConfig,
    duration: u64,
    tables: Option<&minf::stbl::Tables<'_>>,
) {
    w.boxed(b"mdia", |w| {
        write_mdhd(w, cfg.timescale, duration);
        write_hdlr(w, &cfg.kind);
        minf::write_minf(w, cfg, tables);
    });
}

/// `mdhd` (section 8.4.2); language `und` (ISO 639-2/T, three 5-bit letters - 0x60).
fn write_mdhd(w: &mut Writer, timescale: u32, duration: u64) {
    let v1 = duration > u64::from(u32::MAX);
    w.full(b"mdhd", u8::from(v1), 0, |w| {
        if v1 {
            w.u64(0);
            w.u64(0);
            w.u32(timescale);
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(timescale);
            w.u32(duration as u32);
        }
        w.u16(0x55c4); // pad 0, 'u' 'n' 'd'
        w.u16(0); // pre_defined
    });
}

/// `hdlr` (section 8.4.3): `vide` or `soun`, NUL-terminated name.
fn write_hdlr(w: &mut Writer, kind: &TrackKind) {
    let (handler, name): (&[u8; 4], &[u8]) = match kind {
        TrackKind::Video { .. } => (b"vide", b"VideoHandler\0"),
        TrackKind::Audio { .. } => (b"soun", b"SoundHandler\0"),
    };
    w.full(b"hdlr", 0, 0, |w| {
        w.u32(0); // pre_defined
        w.bytes(handler);
        w.zeros(12); // reserved
        w.bytes(name);
    });
}
