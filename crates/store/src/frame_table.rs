//! The compact binary frame table stored per fragment (`fragment.frames`), as specified in
//! `crates/store/DESIGN.md` ("Frame-table encoding"). The test `design_doc_table_matches_code`
//! reads that section's example table from the document and encodes it byte for byte.
//!
//! ```text
//! blob  = version(0x01) frame*
//! frame = varint((track << 1) | key)      track number and key flag
//!         varint(zigzag(pts - prev_pts))  prev_pts = previous frame's pts (any track), 0 at start
//!         varint(duration)                ticks, 0 = unknown
//!         varint(size)                    payload bytes
//! ```
//!
//! Varints are unsigned LEB128 (7 bits per byte, least significant group first, high bit set on
//! every byte but the last). Offsets are not stored: frame payloads are concatenated in frame
//! order, so a frame's offset is the sum of the sizes before it.
//!
//! Shared by every `FragmentStore` backend that keeps the index in SQL.

use crate::fragment::FrameEntry;

/// First byte of every blob; a new layout gets a new value.
pub(crate) const FORMAT_V1: u8 = 0x01;

/// Why a frame table cannot be encoded or decoded.
pub(crate) type Reason = &'static str;

/// Encodes `frames`, whose offsets must be the running sum of their sizes (checked).
///
/// Returns the blob and the total payload size.
pub(crate) fn encode(frames: &[FrameEntry]) -> Result<(Vec<u8>, u64), Reason> {
    // Typical frames take 4–6 bytes (1 + 1 + 1 + 2..3).
    let mut out = Vec::with_capacity(1 + frames.len() * 6);
    out.push(FORMAT_V1);
    let mut prev_pts = 0i64;
    let mut expected_offset = 0u64;
    for f in frames {
        if u64::from(f.offset) != expected_offset {
            return Err("frame offsets are not the running sum of frame sizes");
        }
        expected_offset += u64::from(f.size);
        if expected_offset > u64::from(u32::MAX) {
            return Err("fragment media larger than 4 GiB");
        }
        put_varint(
            &mut out,
            (u128::from(f.track) << 1) | u128::from(f.keyframe),
        );
        put_varint(&mut out, u128::from(zigzag(f.pts.wrapping_sub(prev_pts))));
        put_varint(&mut out, u128::from(f.duration));
        put_varint(&mut out, u128::from(f.size));
        prev_pts = f.pts;
    }
    Ok((out, expected_offset))
}

/// Decodes a blob written by [`encode`].
pub(crate) fn decode(blob: &[u8]) -> Result<Vec<FrameEntry>, Reason> {
    let (&version, mut rest) = blob.split_first().ok_or("empty frame table")?;
    if version != FORMAT_V1 {
        return Err("unknown frame table format version");
    }
    let mut frames = Vec::with_capacity(rest.len() / 4);
    let mut prev_pts = 0i64;
    let mut offset = 0u64;
    while !rest.is_empty() {
        let track_key = get_varint(&mut rest, 65)?;
        let pts_delta =
            unzigzag(u64::try_from(get_varint(&mut rest, 64)?).expect("at most 64 bits"));
        let duration = u32::try_from(get_varint(&mut rest, 32)?).expect("at most 32 bits");
        let size = u32::try_from(get_varint(&mut rest, 32)?).expect("at most 32 bits");
        let pts = prev_pts.wrapping_add(pts_delta);
        let frame_offset = u32::try_from(offset).map_err(|_| "fragment media larger than 4 GiB")?;
        frames.push(FrameEntry {
            track: u64::try_from(track_key >> 1).expect("at most 65 bits"),
            keyframe: track_key & 1 == 1,
            pts,
            duration,
            offset: frame_offset,
            size,
        });
        offset += u64::from(size);
        prev_pts = pts;
    }
    Ok(frames)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)).cast_unsigned()
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1).cast_signed() ^ -((v & 1).cast_signed())
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one varint whose value must fit in `bits` bits.
fn get_varint(input: &mut &[u8], bits: u32) -> Result<u128, Reason> {
    let mut v = 0u128;
    let mut shift = 0u32;
    loop {
        let (&b, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        if shift >= bits {
            return Err("varint too long");
        }
        v |= u128::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    if v >> bits != 0 {
        return Err("varint out of range");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frame(
        track: u64,
        keyframe: bool,
        pts: i64,
        duration: u32,
        offset: u32,
        size: u32,
    ) -> FrameEntry {
        FrameEntry {
            track,
            keyframe,
            pts,
            duration,
            offset,
            size,
        }
    }

    /// The example table of `DESIGN.md` ("Frame-table encoding"), byte for byte. Brittle on
    /// purpose: if this changes, the on-disk format changed; add a new format version instead.
    #[test]
    fn design_doc_example() {
        let frames = [
            frame(1, true, 0, 33, 0, 1000),
            frame(2, false, 5, 21, 1000, 300),
            frame(1, false, 67, 33, 1300, 200),
            frame(1, false, 33, 33, 1500, 150),
        ];
        let want: &[u8] = &[
            0x01, // format version
            0x03, 0x00, 0x21, 0xE8, 0x07, // track 1 key, Δpts 0, dur 33, size 1000
            0x04, 0x0A, 0x15, 0xAC, 0x02, // track 2, Δpts +5, dur 21, size 300
            0x02, 0x7C, 0x21, 0xC8, 0x01, // track 1, Δpts +62, dur 33, size 200
            0x02, 0x43, 0x21, 0x96, 0x01, // track 1, Δpts -34, dur 33, size 150
        ];
        let (blob, total) = encode(&frames).unwrap();
        assert_eq!(blob, want);
        assert_eq!(total, 1650);
        assert_eq!(decode(want).unwrap(), frames);
    }

    /// The same example, read from `DESIGN.md` itself: the doc's table cannot drift from the code.
    #[test]
    fn design_doc_table_matches_code() {
        const DOC: &str = include_str!("../DESIGN.md");
        let start = DOC
            .find("<!-- BEGIN frame-table-example -->")
            .expect("begin marker in DESIGN.md");
        let end = DOC
            .find("<!-- END frame-table-example -->")
            .expect("end marker in DESIGN.md");
        let hex = |cell: &str| -> Vec<u8> {
            cell.trim_matches('`')
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        };
        let (mut frames, mut want) = (Vec::new(), Vec::new());
        for line in DOC[start..end]
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(2)
        {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 8, "{line}");
            want.extend(hex(cells[7]));
            if cells[0] == "version" {
                continue;
            }
            let num = |i: usize| cells[i].parse::<i64>().unwrap();
            frames.push(frame(
                num(1) as u64,
                cells[2] == "yes",
                num(3),
                num(4) as u32,
                num(6) as u32,
                num(5) as u32,
            ));
        }
        assert_eq!(frames.len(), 4, "the table has four frames");
        assert_eq!(encode(&frames).unwrap().0, want);
        assert_eq!(decode(&want).unwrap(), frames);
    }

    #[test]
    fn varint_and_zigzag_table() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7F]),
            (64, &[0x80, 0x01]),
            (
                i64::MAX,
                &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
            (
                i64::MIN,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for &(v, want) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, u128::from(zigzag(v)));
            assert_eq!(out, want, "{v}");
            let mut input = want;
            assert_eq!(
                unzigzag(u64::try_from(get_varint(&mut input, 64).unwrap()).unwrap()),
                v
            );
            assert!(input.is_empty());
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], Reason)] = &[
            (&[], "empty frame table"),
            (&[0x02], "unknown frame table format version"),
            (&[0x01, 0x03, 0x00, 0x21], "truncated varint"),
            (&[0x01, 0x03, 0x00, 0x21, 0x80], "truncated varint"),
            // duration 2^32 does not fit in u32
            (
                &[0x01, 0x03, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
                "varint out of range",
            ),
            (
                &[0x01, 0x03, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00],
                "varint too long",
            ),
        ];
        for &(blob, want) in cases {
            assert_eq!(decode(blob), Err(want), "{blob:02x?}");
        }
        assert_eq!(
            encode(&[frame(1, true, 0, 0, 5, 10)]),
            Err("frame offsets are not the running sum of frame sizes")
        );
        assert_eq!(
            encode(&[
                frame(1, true, 0, 0, 0, u32::MAX),
                frame(1, false, 0, 0, u32::MAX, 1)
            ]),
            Err("fragment media larger than 4 GiB")
        );
        // Empty fragments encode to the version byte alone.
        assert_eq!(encode(&[]).unwrap(), (vec![FORMAT_V1], 0));
        assert_eq!(decode(&[FORMAT_V1]).unwrap(), vec![]);
    }

    fn arb_frames() -> impl Strategy<Value = Vec<FrameEntry>> {
        proptest::collection::vec(
            (
                any::<u64>(),
                any::<bool>(),
                any::<i64>(),
                any::<u32>(),
                0u32..(1 << 22),
            ),
            0..300,
        )
        .prop_map(|raw| {
            let mut offset = 0u32;
            raw.into_iter()
                .map(|(track, keyframe, pts, duration, size)| {
                    let f = frame(track, keyframe, pts, duration, offset, size);
                    offset += size;
                    f
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn round_trip(frames in arb_frames()) {
            let (blob, total) = encode(&frames).unwrap();
            prop_assert_eq!(total, frames.iter().map(|f| u64::from(f.size)).sum::<u64>());
            prop_assert_eq!(decode(&blob).unwrap(), frames);
        }

        #[test]
        fn decode_never_panics(blob in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&blob);
        }
    }
}
