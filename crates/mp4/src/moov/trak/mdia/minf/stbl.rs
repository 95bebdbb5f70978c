//! `stbl` (ISO/IEC 14496-12 section 8.5.1), children in the order ffmpeg writes them:
//! `stsd stts [ctts] [stss] stsc stsz stco|co64`.

pub(crate) mod stsd;

use crate::codec::TrackConfig;
use crate::sample::Sample;
use crate::write::Writer;

/// A chunk: a run of consecutive samples of one track stored contiguously in `mdat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkEntry {
    /// Samples in the chunk.
    pub(crate) samples: u32,
    /// File offset of its first byte.
    pub(crate) offset: u64,
}

/// A progressive file's sample tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables<'a> {
    pub(crate) samples: &'a [Sample],
    pub(crate) chunks: &'a [ChunkEntry],
    /// 64-bit chunk offsets (`co64`) instead of `stco`.
    pub(crate) co64: bool,
}

/// Run-length encodes `values` as (count, value) pairs.
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

pub(crate) fn write_stbl(w: &mut Writer, cfg: &TrackConfig, tables: Option<&Tables<'_>>) {
    let empty = Tables {
        samples: &[],
        chunks: &[],
        co64: false,
    };
    let t = tables.unwrap_or(&empty);
    w.boxed(b"stbl", |w| {
        stsd::write_stsd(w, cfg);
        // stts (section 8.6.1.2): (sample_count, sample_delta) runs.
        let stts = runs(t.samples.iter().map(|s| s.duration));
        w.full(b"stts", 0, 0, |w| {
            w.u32(stts.len() as u32);
            for (n, d) in &stts {
                w.u32(*n);
                w.u32(*d);
            }
        });
        // ctts (section 8.6.1.3) only when some offset is non-zero; version 1 (signed) only
        // when some offset is negative.
        if t.samples.iter().any(|s| s.cts_offset != 0) {
            let ctts = runs(t.samples.iter().map(|s| s.cts_offset));
            let v1 = ctts.iter().any(|(_, o)| *o < 0);
            w.full(b"ctts", u8::from(v1), 0, |w| {
                w.u32(ctts.len() as u32);
                for (n, o) in &ctts {
                    w.u32(*n);
                    w.i32(*o);
                }
            });
        }
        // stss (section 8.6.2): absent = every sample is a sync sample. An fMP4 init segment
        // carries none (the fragments' sample flags say it).
        if t.samples.iter().any(|s| !s.sync) {
            let sync: Vec<u32> = (1..)
                .zip(t.samples)
                .filter(|(_, s)| s.sync)
                .map(|(i, _)| i)
                .collect();
            w.full(b"stss", 0, 0, |w| {
                w.u32(sync.len() as u32);
                for i in sync {
                    w.u32(i);
                }
            });
        }
        // stsc (section 8.7.4): (first_chunk, samples_per_chunk, sample_description_index=1),
        // one entry per change of samples_per_chunk.
        let mut stsc: Vec<(u32, u32)> = Vec::new();
        for (i, c) in (1..).zip(t.chunks) {
            if stsc.last().is_none_or(|&(_, n)| n != c.samples) {
                stsc.push((i, c.samples));
            }
        }
        w.full(b"stsc", 0, 0, |w| {
            w.u32(stsc.len() as u32);
            for (first, n) in stsc {
                w.u32(first);
                w.u32(n);
                w.u32(1);
            }
        });
        // stsz (section 8.7.3.2): one constant size when all are equal, else a table.
        let first = t.samples.first().map(|s| s.size);
        let constant = match first {
            Some(sz) if t.samples.len() > 1 && t.samples.iter().all(|s| s.size == sz) => sz,
            _ => 0,
        };
        w.full(b"stsz", 0, 0, |w| {
            w.u32(constant);
            w.u32(t.samples.len() as u32);
            if constant == 0 {
                for s in t.samples {
                    w.u32(s.size);
                }
            }
        });
        // stco / co64 (section 8.7.5).
        if t.co64 {
            w.full(b"co64", 0, 0, |w| {
                w.u32(t.chunks.len() as u32);
                for c in t.chunks {
                    w.u64(c.offset);
                }
            });
        } else {
            w.full(b"stco", 0, 0, |w| {
                w.u32(t.chunks.len() as u32);
                for c in t.chunks {
                    w.u32(u32::try_from(c.offset).expect("co64 is chosen above 4 GiB"));
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_table() {
        type Case<'a> = (&'a [u32], &'a [(u32, u32)]);
        let cases: &[Case<'_>] = &[
            (&[], &[]),
            (&[5], &[(1, 5)]),
            (&[5, 5, 6, 5], &[(2, 5), (1, 6), (1, 5)]),
        ];
        for (input, want) in cases {
            assert_eq!(runs(input.iter().copied()), *want);
        }
    }
}
