//! `moof` (ISO/IEC 14496-12 section 8.8.4): `mfhd`, then per track `traf` with `tfhd`, `tfdt`,
//! `trun`.

use crate::fmp4::TrackRun;
use crate::write::Writer;

/// `sample_flags` (section 8.8.3.1) of a sync sample: sample_depends_on = 2 (does not depend
/// on others).
pub(crate) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub(crate) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// `tfhd` flag default-base-is-moof (section 8.8.7.1): data offsets count from the moof's
/// first byte.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// `trun` flags (section 8.8.8.1).
const DATA_OFFSET_PRESENT: u32 = 0x000001;
const SAMPLE_DURATION_PRESENT: u32 = 0x000100;
const SAMPLE_SIZE_PRESENT: u32 = 0x000200;
const SAMPLE_FLAGS_PRESENT: u32 = 0x000400;
const SAMPLE_CTS_OFFSET_PRESENT: u32 = 0x000800;

/// Writes the moof and returns, per run, the buffer position of its `trun` data_offset field
/// (patched by the caller once the moof's size is known).
pub(crate) fn write_moof(
    w: &mut Writer,
    sequence_number: u32,
    runs: &[TrackRun<'_>],
) -> Vec<usize> {
    let mut positions = Vec::with_capacity(runs.len());
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence_number)); // section 8.8.5
        for run in runs {
            w.boxed(b"traf", |w| {
                w.full(b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |w| w.u32(run.track_id));
                // tfdt (section 8.8.12), always version 1: 64-bit decode times.
                w.full(b"tfdt", 1, 0, |w| w.u64(run.base_decode_time));
                let any_cts = run.samples.iter().any(|s| s.cts_offset != 0);
                let negative_cts = run.samples.iter().any(|s| s.cts_offset < 0);
                let mut flags = DATA_OFFSET_PRESENT
                    | SAMPLE_DURATION_PRESENT
                    | SAMPLE_SIZE_PRESENT
                    | SAMPLE_FLAGS_PRESENT;
                if any_cts {
                    flags |= SAMPLE_CTS_OFFSET_PRESENT;
                }
                w.full(b"trun", u8::from(negative_cts), flags, |w| {
                    w.u32(run.samples.len() as u32);
                    positions.push(w.buf.len());
                    w.i32(0); // data_offset, patched
                    for s in run.samples {
                        w.u32(s.duration);
                        w.u32(s.size);
                        w.u32(if s.sync {
                            SYNC_SAMPLE_FLAGS
                        } else {
                            NON_SYNC_SAMPLE_FLAGS
                        });
                        if any_cts {
                            w.i32(s.cts_offset);
                        }
                    }
                });
            });
        }
    });
    positions
}
