//! `minf` (ISO/IEC 14496-12 section 8.4.4): media header, `dinf`, `stbl`.

pub(crate) mod stbl;

use crate::codec::{TrackConfig, TrackKind};
use crate::write::Writer;

pub(crate) fn write_minf(w: &mut Writer, cfg: &TrackConfig, tables: Option<&stbl::Tables<'_>>) {
    w.boxed(b"minf", |w| {
        match cfg.kind {
            // vmhd (section 12.1.2): flags 1, graphicsmode 0 (copy), opcolor 0,0,0.
            TrackKind::Video { .. } => w.full(b"vmhd", 0, 1, |w| w.zeros(8)),
            // smhd (section 12.2.2): balance 0, reserved.
            TrackKind::Audio { .. } => w.full(b"smhd", 0, 0, |w| w.zeros(4)),
        }
        // dinf/dref (section 8.7.1/8.7.2): one `url ` entry with flags 1 = media in this file.
        w.boxed(b"dinf", |w| {
            w.full(b"dref", 0, 0, |w| {
                w.u32(1);
                w.full(b"url ", 0, 1, |_| {});
            });
        });
        stbl::write_stbl(w, cfg, tables);
    });
}
