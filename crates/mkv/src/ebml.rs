//! EBML variable-size integers, element headers and value encodings (RFC 8794).
//!
//! Decoders return `Ok(None)` when the input ends before the value does ("need more bytes"),
//! and `Err` only when the bytes present can never form a valid value.

use std::fmt;

/// Longest element ID we accept, in bytes (Matroska: `EBMLMaxIDLength` 4, RFC 8794 §5).
pub const MAX_ID_LEN: usize = 4;
/// Longest element data size we accept, in bytes (Matroska: `EBMLMaxSizeLength` 8).
pub const MAX_SIZE_LEN: usize = 8;
/// Longest element header (ID + data size), in bytes.
pub const MAX_HEADER_LEN: usize = MAX_ID_LEN + MAX_SIZE_LEN;
/// Largest known data size an 8-byte size field can carry: 2^56 - 2 (all ones means unknown).
pub const MAX_KNOWN_SIZE: u64 = (1 << 56) - 2;
/// The 8-byte "unknown size" field that KVS producers and GetMedia use (`01 FF FF FF FF FF FF FF`).
pub const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Why a variable-size integer cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VintError {
    /// The first byte is `0x00`: the VINT would be longer than 8 bytes (RFC 8794 §4.1).
    #[error("first byte is 0x00 (VINT longer than 8 bytes)")]
    ZeroFirstByte,
    /// An element ID longer than [`MAX_ID_LEN`] bytes.
    #[error("element id is {len} bytes long; at most 4 are allowed")]
    IdTooLong {
        /// Length announced by the first byte.
        len: usize,
    },
    /// An element ID whose data bits are all 0 or all 1 (RFC 8794 §5).
    #[error("element id {id:#x} is reserved (data bits all zeros or all ones)")]
    ReservedId {
        /// The ID as read, marker bit included.
        id: u32,
    },
    /// An element ID that has a shorter valid encoding (RFC 8794 §5 requires the shortest).
    #[error("element id {id:#x} is not in its shortest encoding")]
    IdNotMinimal {
        /// The ID as read, marker bit included.
        id: u32,
    },
}

/// The data size of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// A size in bytes.
    Known(u64),
    /// All data bits set: the element extends until an element that cannot be its child
    /// (RFC 8794 §6.2). Matroska allows this only for Segment and Cluster.
    Unknown,
}

impl Size {
    /// The size in bytes, `None` when unknown.
    pub fn known(self) -> Option<u64> {
        match self {
            Size::Known(n) => Some(n),
            Size::Unknown => None,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Known(n) => write!(f, "{n}"),
            Size::Unknown => f.write_str("unknown"),
        }
    }
}

/// A decoded variable-size integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vint {
    /// The value with the length marker removed.
    pub value: u64,
    /// Encoded length in bytes (1..=8).
    pub len: usize,
}

impl Vint {
    /// True when every data bit is 1 (the reserved "unknown" value for sizes).
    pub fn is_all_ones(self) -> bool {
        self.value == all_ones(self.len)
    }
}

/// The all-ones data value of a VINT of `len` bytes: 2^(7*len) - 1.
const fn all_ones(len: usize) -> u64 {
    (1u64 << (7 * len as u32)) - 1
}

/// Decodes a VINT (RFC 8794 §4): the count of leading zero bits of the first byte plus one is
/// the length; the marker bit is removed from the value.
pub fn read_vint(buf: &[u8]) -> Result<Option<Vint>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(VintError::ZeroFirstByte);
    }
    let len = first.leading_zeros() as usize + 1;
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    // Clear the marker bit; for len 8 the whole first byte is the marker (0x01).
    let mut value = u64::from(first) & (0xFFu64 >> len);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    Ok(Some(Vint { value, len }))
}

/// Decodes a signed VINT as used by EBML lacing (Matroska §10.3.3): the unsigned value minus
/// 2^(7*len-1) - 1.
pub fn read_signed_vint(buf: &[u8]) -> Result<Option<(i64, usize)>, VintError> {
    Ok(read_vint(buf)?.map(|v| {
        let bias = (1i64 << (7 * v.len as u32 - 1)) - 1;
        // value < 2^56, so the cast is lossless.
        (v.value as i64 - bias, v.len)
    }))
}

/// Decodes an element ID. The ID keeps its marker bit, as IDs are written in the specs
/// (`0x1A45DFA3` for the EBML header).
pub fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(VintError::ZeroFirstByte);
    }
    let len = first.leading_zeros() as usize + 1;
    if len > MAX_ID_LEN {
        return Err(VintError::IdTooLong { len });
    }
    let Some(v) = read_vint(buf)? else {
        return Ok(None);
    };
    let mut id = 0u32;
    for &b in &buf[..len] {
        id = (id << 8) | u32::from(b);
    }
    if v.value == 0 || v.is_all_ones() {
        return Err(VintError::ReservedId { id });
    }
    // A shorter length could hold it unless it equals that length's all-ones value.
    if len > 1 && v.value < all_ones(len - 1) {
        return Err(VintError::IdNotMinimal { id });
    }
    Ok(Some((id, len)))
}

/// Decodes an element data size; all data bits set means [`Size::Unknown`] at any length.
pub fn read_size(buf: &[u8]) -> Result<Option<(Size, usize)>, VintError> {
    Ok(read_vint(buf)?.map(|v| {
        let size = if v.is_all_ones() {
            Size::Unknown
        } else {
            Size::Known(v.value)
        };
        (size, v.len)
    }))
}

/// An element header: ID and data size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Element ID with marker bit.
    pub id: u32,
    /// Data size.
    pub size: Size,
    /// Bytes taken by ID and size together.
    pub len: usize,
}

/// Why an element header cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The ID is invalid.
    Id(VintError),
    /// The ID is fine, the size is not.
    Size {
        /// The ID that was read.
        id: u32,
        /// What is wrong with the size.
        err: VintError,
    },
}

/// Decodes an element header (ID then size).
pub fn read_header(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let Some((id, id_len)) = read_id(buf).map_err(HeaderError::Id)? else {
        return Ok(None);
    };
    let Some((size, size_len)) =
        read_size(&buf[id_len..]).map_err(|err| HeaderError::Size { id, err })?
    else {
        return Ok(None);
    };
    Ok(Some(Header {
        id,
        size,
        len: id_len + size_len,
    }))
}

/// Decodes an unsigned integer element value (0 to 8 bytes, big-endian).
pub fn decode_uint(data: &[u8]) -> Option<u64> {
    if data.len() > 8 {
        return None;
    }
    Some(data.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// Decodes a signed integer element value (0 to 8 bytes, big-endian two's complement).
pub fn decode_int(data: &[u8]) -> Option<i64> {
    if data.is_empty() {
        return Some(0);
    }
    let u = decode_uint(data)?;
    let shift = 64 - 8 * data.len() as u32;
    // Sign-extend from the top bit of the first byte.
    Some(((u << shift) as i64) >> shift)
}

/// Decodes a float element value (0, 4 or 8 bytes, IEEE 754 big-endian).
pub fn decode_float(data: &[u8]) -> Option<f64> {
    match data.len() {
        0 => Some(0.0),
        4 => Some(f64::from(f32::from_be_bytes(data.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(data.try_into().ok()?)),
        _ => None,
    }
}

/// Decodes a String/UTF-8 element value. Trailing NUL padding is removed (GStreamer writes
/// NUL-terminated CodecIDs); invalid UTF-8 is replaced rather than rejected, because a bad
/// title must not stop ingest.
pub fn decode_string(data: &[u8]) -> String {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Appends an element ID (marker bit included, so its length is implied by its value).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = (id.leading_zeros() / 8).min(3) as usize;
    out.extend_from_slice(&bytes[skip..]);
}

/// Length of the shortest VINT that holds `value` without being all ones.
pub fn vint_len(value: u64) -> usize {
    (1..=8).find(|&len| value < all_ones(len)).unwrap_or(9)
}

/// Appends `value` as a VINT of exactly `len` bytes.
///
/// # Panics
///
/// If `len` is not 1..=8 or `value` does not fit (callers compute `len` with [`vint_len`]).
pub fn write_vint_len(out: &mut Vec<u8>, value: u64, len: usize) {
    assert!(
        (1..=8).contains(&len) && value <= all_ones(len),
        "vint does not fit"
    );
    let marked = value | (1u64 << (7 * len as u32));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Appends a data size in its shortest encoding.
///
/// # Panics
///
/// If `size` exceeds [`MAX_KNOWN_SIZE`] (no in-memory buffer can be that large).
pub fn write_size(out: &mut Vec<u8>, size: u64) {
    assert!(size <= MAX_KNOWN_SIZE, "element size {size} exceeds 2^56-2");
    write_vint_len(out, size, vint_len(size));
}

/// Appends a signed VINT (EBML lacing deltas) in its shortest encoding.
pub fn write_signed_vint(out: &mut Vec<u8>, value: i64) {
    let len = (1..=8usize)
        .find(|&len| {
            let bias = (1i64 << (7 * len as u32 - 1)) - 1;
            (-bias..=bias).contains(&value)
        })
        .expect("lace size deltas are bounded by block sizes < 2^55");
    let bias = (1i64 << (7 * len as u32 - 1)) - 1;
    write_vint_len(out, (value + bias) as u64, len);
}

/// Appends a whole element with binary data.
pub fn write_element(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    write_id(out, id);
    write_size(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends an unsigned integer element in its shortest form (at least one byte).
pub fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = ((value.leading_zeros() / 8) as usize).min(7);
    write_element(out, id, &bytes[skip..]);
}

/// Appends a signed integer element in its shortest two's complement form.
pub fn write_int(out: &mut Vec<u8>, id: u32, value: i64) {
    let bytes = value.to_be_bytes();
    let mut skip = 0;
    // Drop leading bytes that are pure sign extension of the next byte.
    while skip < 7 {
        let (b, next) = (bytes[skip], bytes[skip + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    write_element(out, id, &bytes[skip..]);
}

/// Appends an 8-byte float element.
pub fn write_float(out: &mut Vec<u8>, id: u32, value: f64) {
    write_element(out, id, &value.to_be_bytes());
}

/// Appends a string element (no NUL terminator).
pub fn write_string(out: &mut Vec<u8>, id: u32, value: &str) {
    write_element(out, id, value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table row: input bytes and the decoder's expected answer.
    type Case<T, E = VintError> = (&'static [u8], Result<Option<T>, E>);

    #[test]
    fn vint_table() {
        // (input, expected) — RFC 8794 §4 examples plus edge cases.
        let cases: &[Case<(u64, usize)>] = &[
            (&[], Ok(None)),
            (&[0x81], Ok(Some((1, 1)))),
            (&[0x40, 0x01], Ok(Some((1, 2)))),
            (&[0x20, 0x00, 0x01], Ok(Some((1, 3)))),
            (&[0x10, 0x00, 0x00, 0x01], Ok(Some((1, 4)))),
            (&[0x80], Ok(Some((0, 1)))),
            (&[0xFF], Ok(Some((127, 1)))),
            (&[0x40], Ok(None)),
            (&[0x01, 0, 0, 0, 0, 0, 0], Ok(None)),
            (&[0x01, 0, 0, 0, 0, 0, 0, 0x2A], Ok(Some((42, 8)))),
            (
                &[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                Ok(Some(((1 << 56) - 1, 8))),
            ),
            (&[0x00, 0x81], Err(VintError::ZeroFirstByte)),
        ];
        for (input, want) in cases {
            let got = read_vint(input).map(|o| o.map(|v| (v.value, v.len)));
            assert_eq!(&got, want, "input {input:02x?}");
        }
    }

    #[test]
    fn size_table() {
        let cases: &[Case<(Size, usize)>] = &[
            (&[0x80], Ok(Some((Size::Known(0), 1)))),
            (&[0xFE], Ok(Some((Size::Known(126), 1)))),
            (&[0xFF], Ok(Some((Size::Unknown, 1)))),
            (&[0x7F, 0xFF], Ok(Some((Size::Unknown, 2)))),
            (&[0x40, 0x7F], Ok(Some((Size::Known(127), 2)))),
            (&[0x3F, 0xFF, 0xFF], Ok(Some((Size::Unknown, 3)))),
            (&[0x1F, 0xFF, 0xFF, 0xFF], Ok(Some((Size::Unknown, 4)))),
            (&UNKNOWN_SIZE_8, Ok(Some((Size::Unknown, 8)))),
            (
                &[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE],
                Ok(Some((Size::Known(MAX_KNOWN_SIZE), 8))),
            ),
            (
                &[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34],
                Ok(Some((Size::Known(0x1234), 8))),
            ),
            (&[0x10, 0x00, 0x00], Ok(None)),
            (&[0x00], Err(VintError::ZeroFirstByte)),
        ];
        for (input, want) in cases {
            assert_eq!(&read_size(input), want, "input {input:02x?}");
        }
    }

    #[test]
    fn id_table() {
        let cases: &[Case<(u32, usize)>] = &[
            (&[0x1A, 0x45, 0xDF, 0xA3], Ok(Some((0x1A45_DFA3, 4)))),
            (&[0x1A, 0x45, 0xDF], Ok(None)),
            (&[0xA3], Ok(Some((0xA3, 1)))),
            (&[0x42, 0x86], Ok(Some((0x4286, 2)))),
            (&[0x2A, 0xD7, 0xB1], Ok(Some((0x2A_D7B1, 3)))),
            (&[0xEC, 0x00], Ok(Some((0xEC, 1)))),
            // 0x407F: data 127 would be all ones in one byte, so 2 bytes is the shortest.
            (&[0x40, 0x7F], Ok(Some((0x407F, 2)))),
            (&[0x40, 0x01], Err(VintError::IdNotMinimal { id: 0x4001 })),
            (&[0xFF], Err(VintError::ReservedId { id: 0xFF })),
            (&[0x80], Err(VintError::ReservedId { id: 0x80 })),
            (&[0x7F, 0xFF], Err(VintError::ReservedId { id: 0x7FFF })),
            (&[0x08, 1, 2, 3, 4], Err(VintError::IdTooLong { len: 5 })),
            (&[0x01], Err(VintError::IdTooLong { len: 8 })),
            (&[0x00], Err(VintError::ZeroFirstByte)),
        ];
        for (input, want) in cases {
            assert_eq!(&read_id(input), want, "input {input:02x?}");
        }
    }

    #[test]
    fn header_table() {
        let cases: &[Case<Header, HeaderError>] = &[
            (
                &[
                    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                ],
                Ok(Some(Header {
                    id: 0x1853_8067,
                    size: Size::Unknown,
                    len: 12,
                })),
            ),
            (
                &[0x1F, 0x43, 0xB6, 0x75, 0xFF],
                Ok(Some(Header {
                    id: 0x1F43_B675,
                    size: Size::Unknown,
                    len: 5,
                })),
            ),
            (&[0x1F, 0x43, 0xB6, 0x75], Ok(None)),
            (
                &[0xA3, 0x00],
                Err(HeaderError::Size {
                    id: 0xA3,
                    err: VintError::ZeroFirstByte,
                }),
            ),
            (
                &[0x00, 0x80],
                Err(HeaderError::Id(VintError::ZeroFirstByte)),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&read_header(input), want, "input {input:02x?}");
        }
    }

    #[test]
    fn signed_vint_table() {
        // Matroska §10.3.3: 1-byte range -63..=63, 2-byte -8191..=8191.
        let cases: &[(&[u8], (i64, usize))] = &[
            (&[0xBF], (0, 1)),
            (&[0x80], (-63, 1)),
            (&[0xFE], (63, 1)),
            (&[0x5F, 0xFF], (0, 2)),
            (&[0x40, 0x00], (-8191, 2)),
        ];
        for &(input, want) in cases {
            assert_eq!(
                read_signed_vint(input),
                Ok(Some(want)),
                "input {input:02x?}"
            );
            let mut out = Vec::new();
            write_signed_vint(&mut out, want.0);
            assert!(
                out.len() <= input.len(),
                "{want:?} not shortest: {out:02x?}"
            );
            assert_eq!(read_signed_vint(&out), Ok(Some((want.0, out.len()))));
        }
    }

    #[test]
    fn values_table() {
        assert_eq!(decode_uint(&[]), Some(0));
        assert_eq!(decode_uint(&[0x01, 0x00]), Some(256));
        assert_eq!(decode_uint(&[0; 9]), None);
        assert_eq!(decode_int(&[0xFF]), Some(-1));
        assert_eq!(decode_int(&[0xFF, 0x38]), Some(-200));
        assert_eq!(decode_int(&[0x7F]), Some(127));
        assert_eq!(decode_int(&[]), Some(0));
        assert_eq!(decode_float(&[0x47, 0x3B, 0x80, 0x00]), Some(48000.0));
        assert_eq!(decode_float(&48000.0f64.to_be_bytes()), Some(48000.0));
        assert_eq!(decode_float(&[1, 2, 3]), None);
        assert_eq!(decode_string(b"V_MPEG4/ISO/AVC\0"), "V_MPEG4/ISO/AVC");
        assert_eq!(decode_string(b"abc\0\0\0"), "abc");
        assert_eq!(decode_string(b""), "");
    }

    #[test]
    fn write_round_trips() {
        for size in [0, 1, 126, 127, 128, 16382, 16383, 1 << 40, MAX_KNOWN_SIZE] {
            let mut out = Vec::new();
            write_size(&mut out, size);
            assert_eq!(
                read_size(&out),
                Ok(Some((Size::Known(size), out.len()))),
                "{size}"
            );
        }
        for id in [0xA3u32, 0x4286, 0x2A_D7B1, 0x1A45_DFA3, 0x407F] {
            let mut out = Vec::new();
            write_id(&mut out, id);
            assert_eq!(read_id(&out), Ok(Some((id, out.len()))));
        }
        for v in [0i64, 1, -1, 127, 128, -128, -129, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_int(&mut out, 0xFB, v);
            let h = read_header(&out).unwrap().unwrap();
            assert_eq!(decode_int(&out[h.len..]), Some(v), "{v}");
        }
        for v in [0u64, 1, 255, 256, u64::MAX] {
            let mut out = Vec::new();
            write_uint(&mut out, 0xE7, v);
            let h = read_header(&out).unwrap().unwrap();
            assert_eq!(decode_uint(&out[h.len..]), Some(v), "{v}");
        }
    }
}
