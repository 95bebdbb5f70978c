//! One fragment as an MPEG-TS segment (HLS `ContainerFormat=MPEG_TS`): all tracks, decode
//! times derived from presentation times (B-frames: the sorted presentation times, shifted so
//! that no decode time exceeds its presentation time).

use store::{FragmentMeta, FrameEntry, TrackSet};

use crate::error::ExportError;

/// Builds the segment. `start_ms` is where the fragment's cluster timecode plays on the
/// session's media timeline (ms); frame times are written relative to it, in 90 kHz units
/// modulo 2^33.
pub fn ts_segment(
    meta: &FragmentMeta,
    frames: &[FrameEntry],
    set: &TrackSet,
    start_ms: i64,
    media: &[u8],
) -> Result<Vec<u8>, ExportError> {
    let mut configs = Vec::new();
    for t in &set.tracks {
        let private = t.codec_private.as_deref();
        let cfg = match (t.codec_id.as_str(), private) {
            ("V_MPEG4/ISO/AVC", Some(p)) => ts::StreamConfig::h264(t.number, p),
            ("V_MPEGH/ISO/HEVC", Some(p)) => ts::StreamConfig::h265(t.number, p),
            (id, Some(p)) if id.starts_with("A_AAC") => ts::StreamConfig::aac(t.number, p),
            (_, None) if t.codec_id.starts_with("V_MPEG") || t.codec_id.starts_with("A_AAC") => {
                return Err(ExportError::UnsupportedCodec {
                    track: t.number,
                    codec_id: format!("{} without CodecPrivate", t.codec_id),
                });
            }
            _ => {
                return Err(ExportError::UnsupportedCodec {
                    track: t.number,
                    codec_id: t.codec_id.clone(),
                });
            }
        };
        configs.push(cfg.map_err(|e| ExportError::UnsupportedCodec {
            track: t.number,
            codec_id: format!("{}: {e}", t.codec_id),
        })?);
    }
    let mut mux = ts::Muxer::new(&configs).map_err(|e| ExportError::UnsupportedCodec {
        track: 0,
        codec_id: e.to_string(),
    })?;
    let scale = i128::from(set.timecode_scale_ns);
    let to_90k = |ticks: i64| -> i64 { (i128::from(ticks) * scale * 9 / 100_000) as i64 };
    // Rebase: frame times are relative to the fragment's start, which plays at start_ms; the
    // muxer keeps the low 33 bits, so the 90 kHz clock wraps as MPEG-TS players expect.
    let base_90k = start_ms.saturating_mul(90);
    // Decode times per track: sorted presentation times, shifted.
    let mut dts = vec![0i64; frames.len()];
    for t in &set.tracks {
        let idx: Vec<usize> = (0..frames.len())
            .filter(|&i| frames[i].track == t.number)
            .collect();
        let mut sorted: Vec<i64> = idx.iter().map(|&i| frames[i].pts).collect();
        sorted.sort_unstable();
        let shift = idx
            .iter()
            .zip(&sorted)
            .map(|(&i, &s)| s - frames[i].pts)
            .max()
            .unwrap_or(0)
            .max(0);
        for (k, &i) in idx.iter().enumerate() {
            dts[i] = sorted[k] - shift;
        }
    }
    let mut out = Vec::with_capacity(media.len() + media.len() / 10 + 4096);
    mux.segment_start(&mut out);
    for (i, f) in frames.iter().enumerate() {
        let start = f.offset as usize;
        let data =
            media
                .get(start..start + f.size as usize)
                .ok_or(ExportError::UnsupportedCodec {
                    track: f.track,
                    codec_id: format!("fragment {}: frame outside the media bytes", meta.number),
                })?;
        let sample = ts::Sample {
            track: f.track,
            pts_90k: base_90k + to_90k(f.pts),
            dts_90k: base_90k + to_90k(dts[i]),
            sync: f.keyframe,
            data,
        };
        mux.write_sample(&sample, &mut out)
            .map_err(|e| ExportError::UnsupportedCodec {
                track: f.track,
                codec_id: e.to_string(),
            })?;
    }
    Ok(out)
}
