//! SimpleBlock and Block structure and lacing (Matroska §10 "Block structure", §10.3 "Lacing").
//!
//! ```text
//! track number   VINT (marker removed)
//! timecode       int16, big-endian, relative to the Cluster Timecode
//! flags          SimpleBlock: 0x80 keyframe, 0x08 invisible, 0x06 lacing, 0x01 discardable
//!                Block:       0x08 invisible, 0x06 lacing (other bits reserved)
//! [lace count-1] u8, only when laced
//! [lace sizes]   Xiph: 255-runs; EBML: VINT then signed-VINT deltas; fixed: none
//! frames
//! ```

use crate::ebml::{self, write_signed_vint, write_vint_len};
use crate::error::{Error, Result};
use crate::ids::ElementId;

/// Lacing mode, bits 0x06 of the block flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lacing {
    /// One frame per block (0b00).
    #[default]
    None,
    /// Xiph lacing (0b01): sizes as runs of 255 plus a final byte.
    Xiph,
    /// Fixed-size lacing (0b10): all frames equal.
    FixedSize,
    /// EBML lacing (0b11): first size as VINT, then signed VINT differences.
    Ebml,
}

impl Lacing {
    fn from_flags(flags: u8) -> Self {
        match (flags >> 1) & 3 {
            0 => Lacing::None,
            1 => Lacing::Xiph,
            2 => Lacing::FixedSize,
            _ => Lacing::Ebml,
        }
    }

    fn flag_bits(self) -> u8 {
        match self {
            Lacing::None => 0,
            Lacing::Xiph => 0x02,
            Lacing::FixedSize => 0x04,
            Lacing::Ebml => 0x06,
        }
    }
}

/// SimpleBlock flag: keyframe.
pub(crate) const FLAG_KEYFRAME: u8 = 0x80;
/// Block/SimpleBlock flag: invisible.
pub(crate) const FLAG_INVISIBLE: u8 = 0x08;
/// SimpleBlock flag: discardable.
pub(crate) const FLAG_DISCARDABLE: u8 = 0x01;

/// A parsed block header plus the byte ranges of its frames within the block data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedBlock {
    pub(crate) track: u64,
    pub(crate) timecode_rel: i16,
    pub(crate) flags: u8,
    pub(crate) lacing: Lacing,
    /// `(start, len)` within the block data.
    pub(crate) frames: Vec<(usize, usize)>,
}

/// Parses SimpleBlock/Block data. `offset`/`id` name the element in errors.
pub(crate) fn parse_block(data: &[u8], offset: u64, id: u32) -> Result<ParsedBlock> {
    let err = |reason| Error::InvalidBlock {
        offset,
        id: ElementId(id),
        reason,
    };
    let Ok(Some(track)) = ebml::read_vint(data) else {
        return Err(err("track number is not a valid VINT"));
    };
    let mut pos = track.len;
    let Some(h) = data.get(pos..pos + 3) else {
        return Err(err("block shorter than its 4-byte minimum header"));
    };
    let timecode_rel = i16::from_be_bytes([h[0], h[1]]);
    let flags = h[2];
    pos += 3;
    let lacing = Lacing::from_flags(flags);
    let frames = if lacing == Lacing::None {
        vec![(pos, data.len() - pos)]
    } else {
        let Some(&count_minus_one) = data.get(pos) else {
            return Err(err("laced block without a frame count"));
        };
        pos += 1;
        let count = usize::from(count_minus_one) + 1;
        let mut sizes: Vec<usize> = Vec::with_capacity(count);
        match lacing {
            Lacing::Xiph => {
                for _ in 1..count {
                    let mut size = 0usize;
                    loop {
                        let Some(&b) = data.get(pos) else {
                            return Err(err("Xiph lace sizes run past the block"));
                        };
                        pos += 1;
                        size += usize::from(b);
                        if b != 255 {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
            Lacing::Ebml => {
                if count > 1 {
                    let Ok(Some(first)) = ebml::read_vint(&data[pos..]) else {
                        return Err(err("EBML lace first size is not a valid VINT"));
                    };
                    pos += first.len;
                    let mut size = i64::try_from(first.value).expect("vint < 2^56");
                    sizes.push(size as usize);
                    for _ in 2..count {
                        let Ok(Some((delta, len))) = ebml::read_signed_vint(&data[pos..]) else {
                            return Err(err("EBML lace size delta is not a valid VINT"));
                        };
                        pos += len;
                        size = size
                            .checked_add(delta)
                            .filter(|&s| s >= 0)
                            .ok_or_else(|| err("EBML lace size is negative or overflows"))?;
                        sizes.push(size as usize);
                    }
                }
            }
            Lacing::FixedSize => {
                let rest = data.len() - pos;
                if !rest.is_multiple_of(count) {
                    return Err(err("fixed-size lace does not divide the block evenly"));
                }
                sizes.resize(count - 1, rest / count);
            }
            Lacing::None => unreachable!("handled above"),
        }
        // The last frame takes what is left.
        let used: usize = sizes
            .iter()
            .try_fold(0usize, |a, &s| a.checked_add(s))
            .ok_or_else(|| err("lace sizes overflow"))?;
        let rest = (data.len() - pos)
            .checked_sub(used)
            .ok_or_else(|| err("lace sizes exceed the block"))?;
        sizes.push(rest);
        let mut frames = Vec::with_capacity(count);
        for s in sizes {
            frames.push((pos, s));
            pos += s;
        }
        frames
    };
    Ok(ParsedBlock {
        track: track.value,
        timecode_rel,
        flags,
        lacing,
        frames,
    })
}

/// Encodes block data (everything after the SimpleBlock/Block element header).
pub(crate) fn encode_block(
    out: &mut Vec<u8>,
    track: u64,
    timecode_rel: i16,
    flags: u8,
    lacing: Lacing,
    frames: &[&[u8]],
) -> Result<()> {
    if track == 0 || track > ebml::MAX_KNOWN_SIZE {
        return Err(Error::Unwritable {
            reason: "track number must be 1..2^56-2",
        });
    }
    match (lacing, frames.len()) {
        (_, 0) => {
            return Err(Error::Unwritable {
                reason: "a block needs at least one frame",
            });
        }
        (Lacing::None, 2..) => {
            return Err(Error::Unwritable {
                reason: "several frames need lacing",
            });
        }
        (_, 257..) => {
            return Err(Error::Unwritable {
                reason: "at most 256 frames per laced block",
            });
        }
        _ => {}
    }
    write_vint_len(out, track, ebml::vint_len(track));
    out.extend_from_slice(&timecode_rel.to_be_bytes());
    out.push((flags & !0x06) | lacing.flag_bits());
    if lacing != Lacing::None {
        out.push((frames.len() - 1) as u8);
        let (last, rest) = frames.split_last().expect("checked non-empty");
        match lacing {
            Lacing::Xiph => {
                for f in rest {
                    let mut n = f.len();
                    while n >= 255 {
                        out.push(255);
                        n -= 255;
                    }
                    out.push(n as u8);
                }
            }
            Lacing::Ebml => {
                if let Some((first, others)) = rest.split_first() {
                    write_vint_len(out, first.len() as u64, ebml::vint_len(first.len() as u64));
                    let mut prev = first.len() as i64;
                    for f in others {
                        write_signed_vint(out, f.len() as i64 - prev);
                        prev = f.len() as i64;
                    }
                }
            }
            Lacing::FixedSize => {
                if rest.iter().any(|f| f.len() != last.len()) {
                    return Err(Error::Unwritable {
                        reason: "fixed-size lacing needs frames of equal size",
                    });
                }
            }
            Lacing::None => unreachable!("checked above"),
        }
    }
    for f in frames {
        out.extend_from_slice(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u32 = crate::ids::SIMPLE_BLOCK;

    #[test]
    fn lacing_table() {
        // (block data, expected track, timecode, frame sizes) — byte layouts from Matroska §10.3.
        let cases: &[(&[u8], u64, i16, &[usize])] = &[
            // No lacing: track 1, tc 0, keyframe.
            (&[0x81, 0x00, 0x00, 0x80, 1, 2, 3], 1, 0, &[3]),
            // No lacing, empty payload, negative timecode, 2-byte track number 300.
            (&[0x41, 0x2C, 0xFF, 0xFE, 0x00], 300, -2, &[0]),
            // Xiph: 3 frames of 2, 300, 1: sizes 2, (255, 45); last implied.
            (
                &[
                    &[0x82u8, 0x00, 0x05, 0x02, 0x02, 0x02, 0xFF, 0x2D][..],
                    &[0u8; 303][..],
                ]
                .concat(),
                2,
                5,
                &[2, 300, 1],
            ),
            // Fixed: 4 frames over 8 bytes.
            (
                &[0x81, 0x00, 0x00, 0x04, 0x03, 1, 2, 3, 4, 5, 6, 7, 8],
                1,
                0,
                &[2, 2, 2, 2],
            ),
            // EBML: 3 frames 800, 500, 1000: 0x4320 = 800, delta -300 as 2-byte signed VINT
            // (0x5FFF - 300 = 0x5ED3), last implied.
            (
                &[
                    &[0x81u8, 0x00, 0x00, 0x06, 0x02, 0x43, 0x20, 0x5E, 0xD3][..],
                    &[0u8; 2300][..],
                ]
                .concat(),
                1,
                0,
                &[800, 500, 1000],
            ),
            // EBML with one frame: no sizes at all.
            (&[0x81, 0x00, 0x00, 0x06, 0x00, 9, 9], 1, 0, &[2]),
        ];
        for (data, track, tc, sizes) in cases {
            let b = parse_block(data, 0, ID).unwrap_or_else(|e| panic!("{data:02x?}: {e}"));
            assert_eq!(b.track, *track);
            assert_eq!(b.timecode_rel, *tc);
            let got: Vec<usize> = b.frames.iter().map(|f| f.1).collect();
            assert_eq!(&got, sizes, "{data:02x?}");
            let end = b.frames.last().map(|(s, l)| s + l);
            assert_eq!(end, Some(data.len()));
        }
    }

    #[test]
    fn invalid_blocks() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "track number is not a valid VINT"),
            (&[0x00, 0, 0, 0], "track number is not a valid VINT"),
            (
                &[0x81, 0x00],
                "block shorter than its 4-byte minimum header",
            ),
            (
                &[0x81, 0x00, 0x00, 0x02],
                "laced block without a frame count",
            ),
            (
                &[0x81, 0x00, 0x00, 0x02, 0x01, 0xFF],
                "Xiph lace sizes run past the block",
            ),
            (
                &[0x81, 0x00, 0x00, 0x02, 0x01, 0x05, 1],
                "lace sizes exceed the block",
            ),
            (
                &[0x81, 0x00, 0x00, 0x04, 0x01, 1, 2, 3],
                "fixed-size lace does not divide the block evenly",
            ),
            (
                &[0x81, 0x00, 0x00, 0x06, 0x02, 0x82, 0x80, 0, 0],
                "EBML lace size is negative or overflows",
            ),
            (
                &[0x81, 0x00, 0x00, 0x06, 0x01, 0x00],
                "EBML lace first size is not a valid VINT",
            ),
        ];
        // 256 frames with sizes growing from 2^56-2 by 2^55-1: each size fits in i64 (at most
        // 2^63-256, so the checked delta sum cannot overflow), but their total does not fit.
        let mut overflow = vec![0x81, 0x00, 0x00, 0x06, 0xFF];
        overflow.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        for _ in 0..254 {
            overflow.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        }
        let overflow_case = [(&overflow[..], "lace sizes overflow")];
        for &(data, reason) in cases.iter().chain(&overflow_case) {
            assert_eq!(
                parse_block(data, 7, ID),
                Err(Error::InvalidBlock {
                    offset: 7,
                    id: ElementId(ID),
                    reason
                }),
                "{data:02x?}"
            );
        }
    }

    #[test]
    fn encode_round_trip_each_lacing() {
        let a = vec![1u8; 10];
        let b = vec![2u8; 300];
        let c = vec![3u8; 0];
        let d = vec![4u8; 1000];
        for lacing in [Lacing::Xiph, Lacing::Ebml] {
            let frames: Vec<&[u8]> = vec![&a, &b, &c, &d];
            let mut out = Vec::new();
            encode_block(&mut out, 3, -7, FLAG_KEYFRAME, lacing, &frames).unwrap();
            let p = parse_block(&out, 0, ID).unwrap();
            assert_eq!((p.track, p.timecode_rel, p.lacing), (3, -7, lacing));
            let got: Vec<&[u8]> = p.frames.iter().map(|&(s, l)| &out[s..s + l]).collect();
            assert_eq!(got, frames);
        }
        let frames: Vec<&[u8]> = vec![&b, &b, &b];
        let mut out = Vec::new();
        encode_block(&mut out, 200, 1, 0, Lacing::FixedSize, &frames).unwrap();
        let p = parse_block(&out, 0, ID).unwrap();
        assert_eq!(p.frames.len(), 3);
        assert!(encode_block(&mut Vec::new(), 1, 0, 0, Lacing::FixedSize, &[&a, &b]).is_err());
        assert!(encode_block(&mut Vec::new(), 1, 0, 0, Lacing::None, &[&a, &b]).is_err());
        assert!(encode_block(&mut Vec::new(), 0, 0, 0, Lacing::None, &[&a]).is_err());
    }
}
