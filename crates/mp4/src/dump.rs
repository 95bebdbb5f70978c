//! A readable box tree with the key fields of every box this crate writes: the format of the
//! golden `tests/golden/*.txt` files and of the `.mp4.txt` debug view. Not a general MP4
//! reader: unknown boxes print their type and size only, and a truncated input (e.g. a plan's
//! header without its payloads) prints what is there.

use std::fmt::Write as _;

/// Dumps the boxes in `data`, one line per box (plus one per table entry), two spaces of
/// indentation per level.
pub fn dump(data: &[u8]) -> String {
    let mut out = String::new();
    boxes(data, 0, 0, &mut out);
    out
}

const CONTAINERS: &[&[u8; 4]] = &[
    b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf", b"edts",
    b"udta",
];

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.d.get(self.p..self.p.checked_add(n)?)?;
        self.p += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u24(&mut self) -> Option<u32> {
        let b = self.take(3)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    /// 32- or 64-bit field by full-box version.
    fn uv(&mut self, v1: bool) -> Option<u64> {
        if v1 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }
    fn rest(&self) -> &'a [u8] {
        &self.d[self.p.min(self.d.len())..]
    }
}

fn fourcc(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// FNV-1a 64, to fingerprint payload and parameter-set bytes in dumps without a dependency.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn boxes(data: &[u8], base: usize, depth: usize, out: &mut String) {
    let mut p = 0;
    while p < data.len() {
        let indent = "  ".repeat(depth);
        let mut c = Cur { d: data, p };
        let (Some(size32), Some(kind)) = (c.u32(), c.take(4)) else {
            let _ = writeln!(out, "{indent}!{} trailing bytes", data.len() - p);
            return;
        };
        let (size, hlen) = match size32 {
            1 => match c.u64() {
                Some(s) => (s, 16),
                None => {
                    let _ = writeln!(out, "{indent}!truncated largesize");
                    return;
                }
            },
            0 => ((data.len() - p) as u64, 8),
            s => (u64::from(s), 8),
        };
        let kind: [u8; 4] = kind.try_into().expect("4 bytes");
        let avail = (data.len() - p) as u64;
        let truncated = size > avail;
        let end = p + size.min(avail) as usize;
        let body = if size < hlen {
            &[][..]
        } else {
            &data[(p + hlen as usize).min(end)..end]
        };
        let _ = write!(out, "{indent}{} @{} size={size}", fourcc(&kind), base + p);
        if truncated {
            let _ = write!(out, " (truncated: {avail} bytes present)");
        }
        if CONTAINERS.contains(&&kind) {
            out.push('\n');
            boxes(body, base + p + hlen as usize, depth + 1, out);
        } else if fields(&kind, body, base + p + hlen as usize, depth, out).is_none() {
            let _ = writeln!(out, " !short");
        }
        if size < hlen {
            let _ = writeln!(out, "{indent}!box size {size} below its header");
            return;
        }
        p = end;
    }
}

/// Prints the rest of a box's line (and sub-lines); `None` if the body is too short.
fn fields(kind: &[u8; 4], body: &[u8], base: usize, depth: usize, out: &mut String) -> Option<()> {
    let mut c = Cur { d: body, p: 0 };
    let ind = "  ".repeat(depth + 1);
    let full = |c: &mut Cur<'_>| -> Option<(u8, u32)> { Some((c.u8()?, c.u24()?)) };
    match kind {
        b"ftyp" | b"styp" => {
            let major = fourcc(c.take(4)?);
            let minor = c.u32()?;
            let compat: Vec<String> = c.rest().chunks(4).map(fourcc).collect();
            let _ = writeln!(out, " major={major} minor={minor:#x} compatible={compat:?}");
        }
        b"mvhd" => {
            let (v, _) = full(&mut c)?;
            c.uv(v == 1)?;
            c.uv(v == 1)?;
            let timescale = c.u32()?;
            let duration = c.uv(v == 1)?;
            let rate = c.u32()?;
            let volume = c.u16()?;
            c.take(10 + 36 + 24)?;
            let next = c.u32()?;
            let _ = writeln!(
                out,
                " v{v} timescale={timescale} duration={duration} rate={rate:#x} volume={volume:#x} next_track_id={next}"
            );
        }
        b"tkhd" => {
            let (v, flags) = full(&mut c)?;
            c.uv(v == 1)?;
            c.uv(v == 1)?;
            let id = c.u32()?;
            c.u32()?;
            let duration = c.uv(v == 1)?;
            c.take(8)?;
            let (layer, group, volume) = (c.u16()?, c.u16()?, c.u16()?);
            c.take(2 + 36)?;
            let (wd, ht) = (c.u32()?, c.u32()?);
            let _ = writeln!(
                out,
                " v{v} flags={flags:#x} track_id={id} duration={duration} layer={layer} alternate_group={group} volume={volume:#x} width={} height={}",
                f64::from(wd) / 65536.0,
                f64::from(ht) / 65536.0
            );
        }
        b"mdhd" => {
            let (v, _) = full(&mut c)?;
            c.uv(v == 1)?;
            c.uv(v == 1)?;
            let timescale = c.u32()?;
            let duration = c.uv(v == 1)?;
            let lang = c.u16()?;
            let l: String = [10u16, 5, 0]
                .iter()
                .map(|s| (((lang >> s) & 0x1f) as u8 + 0x60) as char)
                .collect();
            let _ = writeln!(
                out,
                " v{v} timescale={timescale} duration={duration} language={l}"
            );
        }
        b"hdlr" => {
            full(&mut c)?;
            c.u32()?;
            let handler = fourcc(c.take(4)?);
            c.take(12)?;
            let name = String::from_utf8_lossy(c.rest().split(|&b| b == 0).next()?).into_owned();
            let _ = writeln!(out, " handler={handler} name={name:?}");
        }
        b"vmhd" | b"smhd" | b"url " | b"mfhd" | b"tfhd" | b"tfdt" | b"mehd" => {
            let (v, flags) = full(&mut c)?;
            let _ = write!(out, " v{v} flags={flags:#x}");
            match kind {
                b"mfhd" => {
                    let _ = write!(out, " sequence_number={}", c.u32()?);
                }
                b"tfhd" => {
                    let _ = write!(out, " track_id={}", c.u32()?);
                }
                b"tfdt" => {
                    let _ = write!(out, " base_media_decode_time={}", c.uv(v == 1)?);
                }
                _ => {}
            }
            out.push('\n');
        }
        b"dref" | b"stsd" => {
            let (v, _) = full(&mut c)?;
            let n = c.u32()?;
            let _ = writeln!(out, " v{v} entries={n}");
            boxes(c.rest(), base + c.p, depth + 1, out);
        }
        b"avc1" | b"hvc1" | b"avc3" | b"hev1" => {
            c.take(6)?;
            let dri = c.u16()?;
            c.take(16)?;
            let (wd, ht) = (c.u16()?, c.u16()?);
            c.take(4 + 4 + 4 + 2 + 32 + 2 + 2)?;
            let _ = writeln!(out, " data_reference_index={dri} width={wd} height={ht}");
            boxes(c.rest(), base + c.p, depth + 1, out);
        }
        b"mp4a" | b"alaw" | b"ulaw" => {
            c.take(6)?;
            let dri = c.u16()?;
            c.take(8)?;
            let (ch, bits) = (c.u16()?, c.u16()?);
            c.take(4)?;
            let rate = c.u32()?;
            let _ = writeln!(
                out,
                " data_reference_index={dri} channels={ch} samplesize={bits} samplerate={}",
                rate >> 16
            );
            boxes(c.rest(), base + c.p, depth + 1, out);
        }
        b"avcC" => {
            let _ = writeln!(
                out,
                " {} ({}) len={} fnv={:016x}",
                crate::AvcConfig::parse(body)
                    .map(|a| a.codec_string())
                    .unwrap_or_else(|e| e.to_string()),
                hex(&body[..body.len().min(6)]),
                body.len(),
                fnv(body)
            );
        }
        b"hvcC" => {
            let _ = writeln!(
                out,
                " {} len={} fnv={:016x}",
                crate::HevcConfig::parse(body)
                    .map(|a| a.codec_string())
                    .unwrap_or_else(|e| e.to_string()),
                body.len(),
                fnv(body)
            );
        }
        b"esds" => {
            full(&mut c)?;
            let _ = writeln!(out, " descriptors={}", hex(c.rest()));
        }
        b"stts" | b"ctts" => {
            let (v, _) = full(&mut c)?;
            let n = c.u32()?;
            let _ = writeln!(out, " v{v} entries={n}");
            for _ in 0..n {
                let (count, value) = (c.u32()?, c.u32()?);
                let value = if kind == b"ctts" && v == 1 {
                    i64::from(value as i32)
                } else {
                    i64::from(value)
                };
                let label = if kind == b"stts" { "delta" } else { "offset" };
                let _ = writeln!(out, "{ind}count={count} {label}={value}");
            }
        }
        b"stss" | b"stco" | b"co64" => {
            full(&mut c)?;
            let n = c.u32()?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(if kind == b"co64" {
                    c.u64()?
                } else {
                    u64::from(c.u32()?)
                });
            }
            let _ = writeln!(out, " entries={n} {v:?}");
        }
        b"stsc" => {
            full(&mut c)?;
            let n = c.u32()?;
            let _ = writeln!(out, " entries={n}");
            for _ in 0..n {
                let (first, spc, sdi) = (c.u32()?, c.u32()?, c.u32()?);
                let _ = writeln!(
                    out,
                    "{ind}first_chunk={first} samples_per_chunk={spc} sample_description_index={sdi}"
                );
            }
        }
        b"stsz" => {
            full(&mut c)?;
            let (size, n) = (c.u32()?, c.u32()?);
            let _ = write!(out, " sample_size={size} sample_count={n}");
            if size == 0 {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(c.u32()?);
                }
                let _ = write!(out, " {v:?}");
            }
            out.push('\n');
        }
        b"elst" => {
            let (v, _) = full(&mut c)?;
            let n = c.u32()?;
            let _ = writeln!(out, " v{v} entries={n}");
            for _ in 0..n {
                let dur = c.uv(v == 1)?;
                let mt = if v == 1 {
                    c.u64()? as i64
                } else {
                    i64::from(c.u32()? as i32)
                };
                let (ri, rf) = (c.u16()?, c.u16()?);
                let _ = writeln!(
                    out,
                    "{ind}segment_duration={dur} media_time={mt} rate={ri}.{rf}"
                );
            }
        }
        b"trex" => {
            full(&mut c)?;
            let _ = writeln!(
                out,
                " track_id={} sample_description_index={} duration={} size={} flags={:#x}",
                c.u32()?,
                c.u32()?,
                c.u32()?,
                c.u32()?,
                c.u32()?
            );
        }
        b"trun" => {
            let (v, flags) = full(&mut c)?;
            let n = c.u32()?;
            let _ = write!(out, " v{v} flags={flags:#x} sample_count={n}");
            if flags & 0x1 != 0 {
                let _ = write!(out, " data_offset={}", c.u32()? as i32);
            }
            if flags & 0x4 != 0 {
                let _ = write!(out, " first_sample_flags={:#x}", c.u32()?);
            }
            out.push('\n');
            for i in 0..n {
                let _ = write!(out, "{ind}[{i}]");
                if flags & 0x100 != 0 {
                    let _ = write!(out, " duration={}", c.u32()?);
                }
                if flags & 0x200 != 0 {
                    let _ = write!(out, " size={}", c.u32()?);
                }
                if flags & 0x400 != 0 {
                    let _ = write!(out, " flags={:#010x}", c.u32()?);
                }
                if flags & 0x800 != 0 {
                    let cts = c.u32()?;
                    let cts = if v == 1 {
                        i64::from(cts as i32)
                    } else {
                        i64::from(cts)
                    };
                    let _ = write!(out, " cts_offset={cts}");
                }
                out.push('\n');
            }
        }
        b"mdat" => {
            let _ = writeln!(out, " payload_fnv={:016x}", fnv(body));
        }
        _ => {
            let _ = writeln!(out, " body_fnv={:016x}", fnv(body));
        }
    }
    Some(())
}
