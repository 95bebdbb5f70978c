//! Byte layouts of ISO/IEC 13818-1 (MPEG-2 Systems): transport packets with adaptation fields
//! (§2.4.3.2-§2.4.3.5), PES headers (§2.4.3.6-§2.4.3.7), PAT/PMT sections (§2.4.4.3, §2.4.4.8)
//! and the section CRC (Annex A).

/// Bytes in a transport packet.
pub const PACKET_SIZE: usize = 188;
/// Transport packet sync byte.
pub const SYNC_BYTE: u8 = 0x47;
/// Timestamps (PTS, DTS, PCR base) are 33-bit counters of the 90 kHz clock.
pub(crate) const TS_MASK: i64 = (1 << 33) - 1;

/// Adaptation field flags of one packet (§2.4.3.4). Empty = no field unless stuffing needs one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adaptation {
    pub(crate) discontinuity: bool,
    pub(crate) random_access: bool,
    /// PCR base in 90 kHz ticks (the 27 MHz extension is always 0).
    pub(crate) pcr_90k: Option<i64>,
}

impl Adaptation {
    fn needed(&self) -> bool {
        self.discontinuity || self.random_access || self.pcr_90k.is_some()
    }
}

/// Appends one 188-byte packet carrying as much of `payload` as fits; returns how many
/// payload bytes it took. A short payload is padded with adaptation-field stuffing (0xFF), the
/// only padding allowed for PES packets (§2.4.3.5).
pub(crate) fn write_packet(
    out: &mut Vec<u8>,
    pid: u16,
    payload_unit_start: bool,
    cc: u8,
    af: Adaptation,
    payload: &[u8],
) -> usize {
    let start = out.len();
    // Adaptation field length including its own length byte.
    let mut af_total = if af.needed() {
        2 + if af.pcr_90k.is_some() { 6 } else { 0 }
    } else {
        0
    };
    let space = PACKET_SIZE - 4 - af_total;
    let n = payload.len().min(space);
    af_total += space - n;
    let afc = if af_total > 0 { 0b11 } else { 0b01 };
    out.extend_from_slice(&[
        SYNC_BYTE,
        (u8::from(payload_unit_start) << 6) | ((pid >> 8) as u8 & 0x1F),
        pid as u8,
        (afc << 4) | (cc & 0x0F),
    ]);
    if af_total > 0 {
        // adaptation_field_length counts the bytes after itself; 0 is a lone stuffing byte.
        out.push((af_total - 1) as u8);
        if af_total > 1 {
            out.push(
                (u8::from(af.discontinuity) << 7)
                    | (u8::from(af.random_access) << 6)
                    | (u8::from(af.pcr_90k.is_some()) << 4),
            );
            if let Some(pcr) = af.pcr_90k {
                out.extend_from_slice(&encode_pcr(pcr));
            }
            out.resize(start + 4 + af_total, 0xFF);
        }
    }
    out.extend_from_slice(&payload[..n]);
    debug_assert_eq!(out.len() - start, PACKET_SIZE);
    n
}

/// Appends one packet carrying a whole PSI `section` (pointer_field included), padded with
/// 0xFF after the section (§2.4.4.2: stuffing bytes after a section end are allowed).
pub(crate) fn write_psi_packet(out: &mut Vec<u8>, pid: u16, cc: u8, section: &[u8]) {
    debug_assert!(section.len() <= PACKET_SIZE - 4);
    let start = out.len();
    out.extend_from_slice(&[
        SYNC_BYTE,
        0x40 | (pid >> 8) as u8,
        pid as u8,
        0x10 | (cc & 0x0F),
    ]);
    out.extend_from_slice(section);
    out.resize(start + PACKET_SIZE, 0xFF);
}

/// `program_clock_reference_base` 33 | reserved 6 (all ones) | extension 9 (= 0).
pub(crate) fn encode_pcr(pcr_90k: i64) -> [u8; 6] {
    let b = (pcr_90k & TS_MASK) as u64;
    [
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        (((b & 1) as u8) << 7) | 0x7E,
        0,
    ]
}

/// A 5-byte PTS/DTS field: `prefix` 4 | ts[32..30] | 1 | ts[29..15] | 1 | ts[14..0] | 1.
pub(crate) fn encode_timestamp(prefix: u8, ts_90k: i64) -> [u8; 5] {
    let t = (ts_90k & TS_MASK) as u64;
    [
        (prefix << 4) | (((t >> 29) as u8) & 0x0E) | 1,
        (t >> 22) as u8,
        (((t >> 14) as u8) & 0xFE) | 1,
        (t >> 7) as u8,
        (((t << 1) as u8) & 0xFE) | 1,
    ]
}

/// The PES header (§2.4.3.7) for an elementary-stream payload of `es_len` bytes.
/// `data_alignment_indicator` is set: every PES starts with an access unit (AUD / ADTS sync).
/// The DTS is written only when it differs from the PTS (§2.4.3.7 forbids `'01'` and makes a
/// DTS equal to the PTS redundant). `PES_packet_length` is 0 ("unbounded", allowed for video
/// only) when the packet is longer than 65535 bytes.
pub(crate) fn pes_header(stream_id: u8, pts_90k: i64, dts_90k: i64, es_len: usize) -> Vec<u8> {
    let with_dts = (pts_90k & TS_MASK) != (dts_90k & TS_MASK);
    let header_data_len: u8 = if with_dts { 10 } else { 5 };
    let pes_len = 3 + usize::from(header_data_len) + es_len;
    let pes_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(&[0, 0, 1, stream_id]);
    h.extend_from_slice(&pes_len.to_be_bytes());
    // '10' | scrambling 00 | priority 0 | data_alignment 1 | copyright 0 | original 0
    h.push(0x84);
    // PTS_DTS_flags | ESCR, ES_rate, DSM trick mode, additional copy info, CRC, extension: 0
    h.push(if with_dts { 0xC0 } else { 0x80 });
    h.push(header_data_len);
    if with_dts {
        h.extend_from_slice(&encode_timestamp(0b0011, pts_90k));
        h.extend_from_slice(&encode_timestamp(0b0001, dts_90k));
    } else {
        h.extend_from_slice(&encode_timestamp(0b0010, pts_90k));
    }
    h
}

/// CRC-32/MPEG-2 (Annex A): polynomial 0x04C11DB7, initial value all ones, no reflection, no
/// final XOR.
pub(crate) fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Wraps section fields after `section_length` into a complete section with CRC, preceded by
/// the `pointer_field` (0) a section-starting packet payload needs.
fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
    let section_length = body.len() + 4; // + CRC
    let mut s = vec![
        0, // pointer_field
        table_id,
        // section_syntax_indicator 1 | '0' | reserved 11 | section_length 12
        0xB0 | ((section_length >> 8) as u8 & 0x0F),
        section_length as u8,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s[1..]);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// Program association section: transport_stream_id 1, one program (1) at `pmt_pid`.
pub(crate) fn pat_section(pmt_pid: u16) -> Vec<u8> {
    section(
        0x00,
        &[
            0x00,
            0x01, // transport_stream_id
            0xC1, // reserved 11 | version 0 | current_next 1
            0x00, // section_number
            0x00, // last_section_number
            0x00,
            0x01, // program_number 1
            0xE0 | (pmt_pid >> 8) as u8,
            pmt_pid as u8,
        ],
    )
}

/// Program map section of program 1: `(stream_type, pid)` per elementary stream, no
/// descriptors.
pub(crate) fn pmt_section(pcr_pid: u16, streams: &[(u8, u16)]) -> Vec<u8> {
    let mut body = vec![
        0x00,
        0x01, // program_number
        0xC1, // reserved | version 0 | current_next 1
        0x00,
        0x00,
        0xE0 | (pcr_pid >> 8) as u8,
        pcr_pid as u8,
        0xF0, // reserved 1111 | program_info_length 0
        0x00,
    ];
    for &(stream_type, pid) in streams {
        body.extend_from_slice(&[stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x00]);
    }
    section(0x02, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_table() {
        // (prefix, ts, bytes) — bit layout of §2.4.3.7, markers in bits 0 of bytes 0, 2, 4.
        let cases: &[(u8, i64, [u8; 5])] = &[
            (0b0010, 0, [0x21, 0x00, 0x01, 0x00, 0x01]),
            (0b0010, 90_000, [0x21, 0x00, 0x05, 0xBF, 0x21]),
            (0b0011, 126_000, [0x31, 0x00, 0x07, 0xD8, 0x61]),
            (0b0001, 122_400, [0x11, 0x00, 0x07, 0xBC, 0x41]),
            (0b0010, TS_MASK, [0x2F, 0xFF, 0xFF, 0xFF, 0xFF]),
            // 33-bit wrap: 2^33 + 1 is 1, and -1 is 2^33 - 1.
            (0b0010, TS_MASK + 2, [0x21, 0x00, 0x01, 0x00, 0x03]),
            (0b0010, -1, [0x2F, 0xFF, 0xFF, 0xFF, 0xFF]),
        ];
        for &(prefix, ts, want) in cases {
            assert_eq!(encode_timestamp(prefix, ts), want, "{ts}");
        }
    }

    #[test]
    fn pes_header_table() {
        // (stream_id, pts, dts, es_len, header)
        let cases: &[(u8, i64, i64, usize, &[u8])] = &[
            (
                0xC0,
                90_000,
                90_000,
                199,
                &[
                    0, 0, 1, 0xC0, 0x00, 0xCF, 0x84, 0x80, 0x05, 0x21, 0x00, 0x05, 0xBF, 0x21,
                ],
            ),
            (
                0xE0,
                126_000,
                122_400,
                1000,
                &[
                    0, 0, 1, 0xE0, 0x03, 0xF5, 0x84, 0xC0, 0x0A, 0x31, 0x00, 0x07, 0xD8, 0x61,
                    0x11, 0x00, 0x07, 0xBC, 0x41,
                ],
            ),
            // Too long for PES_packet_length: 0 (video only).
            (
                0xE0,
                0,
                0,
                70_000,
                &[
                    0, 0, 1, 0xE0, 0, 0, 0x84, 0x80, 0x05, 0x21, 0x00, 0x01, 0x00, 0x01,
                ],
            ),
        ];
        for &(sid, pts, dts, len, want) in cases {
            assert_eq!(pes_header(sid, pts, dts, len), want, "{sid:x} {pts} {dts}");
        }
    }

    #[test]
    fn pcr_table() {
        let cases: &[(i64, [u8; 6])] = &[
            (0, [0, 0, 0, 0, 0x7E, 0]),
            (1, [0, 0, 0, 0, 0xFE, 0]),
            (90_000, [0x00, 0x00, 0xAF, 0xC8, 0x7E, 0x00]),
            (TS_MASK, [0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0]),
        ];
        for &(pcr, want) in cases {
            assert_eq!(encode_pcr(pcr), want, "{pcr}");
        }
    }

    #[test]
    fn crc_check_value() {
        // CRC-32/MPEG-2 catalogue check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        // A section followed by its CRC has remainder 0 (how demuxers verify it).
        let pat = pat_section(0x1000);
        assert_eq!(crc32_mpeg2(&pat[1..]), 0);
        let pmt = pmt_section(0x100, &[(0x1B, 0x100), (0x0F, 0x101)]);
        assert_eq!(crc32_mpeg2(&pmt[1..]), 0);
    }

    #[test]
    fn pat_bytes() {
        // ffmpeg's PAT for the same ids (mpegts muxer defaults: tsid 1, program 1, PMT 0x1000).
        assert_eq!(
            pat_section(0x1000),
            [
                0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A,
                0xB1, 0x04, 0xB2
            ]
        );
    }

    #[test]
    fn packet_stuffing_table() {
        // (payload len, adaptation, want adaptation_field_length or None, payload bytes taken)
        let pcr = Adaptation {
            pcr_90k: Some(0),
            ..Default::default()
        };
        let cases: &[(usize, Adaptation, Option<u8>, usize)] = &[
            (184, Adaptation::default(), None, 184),
            (500, Adaptation::default(), None, 184),
            (183, Adaptation::default(), Some(0), 183), // one stuffing byte: length 0 only
            (182, Adaptation::default(), Some(1), 182), // length + flags
            (10, Adaptation::default(), Some(173), 10),
            (500, pcr, Some(7), 176),
            (176, pcr, Some(7), 176),
            (100, pcr, Some(83), 100),
        ];
        for &(len, af, want_af, want_n) in cases {
            let payload = vec![0xAB; len];
            let mut out = Vec::new();
            let n = write_packet(&mut out, 0x100, true, 5, af, &payload);
            assert_eq!(out.len(), PACKET_SIZE);
            assert_eq!(n, want_n, "len {len}");
            assert_eq!(out[0], SYNC_BYTE);
            assert_eq!(out[1], 0x41);
            assert_eq!(out[3] & 0x0F, 5);
            match want_af {
                None => assert_eq!(out[3] >> 4, 0b01),
                Some(l) => {
                    assert_eq!(out[3] >> 4, 0b11, "len {len}");
                    assert_eq!(out[4], l, "len {len}");
                }
            }
            assert!(out[PACKET_SIZE - n..].iter().all(|&b| b == 0xAB));
        }
    }
}
