//! `ftyp` and `styp` (ISO/IEC 14496-12 sections 4.3 and 8.16.2).

use crate::write::Writer;

/// Brands of a progressive (GetClip) file: what ffmpeg's mp4 muxer writes for H.264/AAC.
pub(crate) const PROGRESSIVE_MAJOR: &[u8; 4] = b"isom";
/// `minor_version` 0x200, as ffmpeg writes with `isom`.
pub(crate) const PROGRESSIVE_MINOR: u32 = 0x200;
pub(crate) const PROGRESSIVE_COMPATIBLE: &[&[u8; 4]] = &[b"isom", b"iso2", b"mp41"];

/// Brands of an fMP4 init segment: `iso6` (tfdt v1, default-base-is-moof) and `cmfc` (CMAF).
pub(crate) const FRAGMENTED_MAJOR: &[u8; 4] = b"iso6";
pub(crate) const FRAGMENTED_COMPATIBLE: &[&[u8; 4]] = &[b"iso6", b"cmfc", b"mp41"];

/// Writes `ftyp` (or `styp`, same layout): major_brand, minor_version, compatible_brands[].
pub(crate) fn write(
    w: &mut Writer,
    fourcc: &[u8; 4],
    major: &[u8; 4],
    minor: u32,
    compatible: &[&[u8; 4]],
) {
    w.boxed(fourcc, |w| {
        w.bytes(major);
        w.u32(minor);
        for b in compatible {
            w.bytes(*b);
        }
    });
}

/// A `styp` box for the start of an fMP4 media segment (ISO/IEC 14496-12 section 8.16.2):
/// `msdh` + `msix` as in DASH (ISO/IEC 23009-1 section 6.3.4.2), and `cmfs`. Optional; prepend
/// it to [`crate::SegmentPlan`]'s header if wanted (data offsets are relative to `moof`).
pub fn styp() -> Vec<u8> {
    let mut w = Writer::new();
    write(&mut w, b"styp", b"msdh", 0, &[b"msdh", b"msix", b"cmfs"]);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progressive_ftyp_bytes() {
        let mut w = Writer::new();
        write(
            &mut w,
            b"ftyp",
            PROGRESSIVE_MAJOR,
            PROGRESSIVE_MINOR,
            PROGRESSIVE_COMPATIBLE,
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 28, b'f', b't', b'y', b'p', // size 28, type
            b'i', b's', b'o', b'm',              // major_brand
            0, 0, 2, 0,                          // minor_version 0x200
            b'i', b's', b'o', b'm', b'i', b's', b'o', b'2', b'm', b'p', b'4', b'1',
        ];
        assert_eq!(w.buf, want);
    }
}
