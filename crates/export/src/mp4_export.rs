//! Stored fragments -> `openkvs-mp4` inputs: track configs from the track set, sample tables
//! from frame tables, GetClip's progressive plan and HLS/DASH fMP4 segments.
//!
//! Timing: a frame plays at `(cluster_timecode + pts) × timecode_scale_ns` ns. Those absolute
//! ticks are converted to each track's timescale (90 kHz video, the sampling rate for audio)
//! with rounding, never by summing rounded deltas, so errors do not accumulate. Decode times
//! follow from presentation times by [`mp4::timeline`]. AAC frames always hold 1024 samples
//! per channel, so their decode times advance by exactly 1024 (1 ms ticks would otherwise
//! give 1008/1056 jitter, and laced frames share one timestamp); real gaps are kept. G.711 samples last
//! `size / channels` sample periods.

use std::ops::Range;

use mp4::{
    AudioCodec, ClipChunk, ClipSample, ProgressivePlan, Sample, SegmentPlan, TimedSample,
    TrackConfig, TrackKind, TrackRun, WaveFormatEx,
};
use store::{FragmentMeta, FrameEntry, TrackInfo, TrackSet};

use crate::error::ExportError;

/// Samples per AAC frame (ISO/IEC 14496-3: 1024 for AAC LC and the core of HE-AAC).
const AAC_FRAME_SAMPLES: u32 = 1024;

/// MP4 track configs for every track of a set, in producer order; track ids are the MKV track
/// numbers (HLS/DASH `TrackNumber`).
pub fn track_configs(set: &TrackSet) -> Result<Vec<TrackConfig>, ExportError> {
    set.tracks.iter().map(track_config).collect()
}

fn track_config(t: &TrackInfo) -> Result<TrackConfig, ExportError> {
    let id = u32::try_from(t.number)
        .ok()
        .filter(|&id| id != 0)
        .ok_or(ExportError::TrackNumber { track: t.number })?;
    let mp4_err = |source| ExportError::Mp4 {
        track: t.number,
        source,
    };
    let dim = |v: Option<u64>| v.map_or(0, |v| u16::try_from(v).unwrap_or(u16::MAX));
    let cp = t.codec_private.as_deref();
    match t.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => TrackConfig::avc(id, cp, dim(t.width), dim(t.height)).map_err(mp4_err),
        "V_MPEGH/ISO/HEVC" => {
            TrackConfig::hevc(id, cp, dim(t.width), dim(t.height)).map_err(mp4_err)
        }
        // Matroska also knows legacy `A_AAC/MPEG4/LC` etc.; all carry an ASC in practice.
        c if c == "A_AAC" || c.starts_with("A_AAC/") => {
            TrackConfig::aac(id, cp, t.channels.and_then(|c| u16::try_from(c).ok()))
                .map_err(mp4_err)
        }
        "A_MS/ACM" => {
            let cp = cp.filter(|b| !b.is_empty()).ok_or(mp4_err(
                mp4::Error::MissingCodecPrivateData {
                    codec: mp4::CodecName::G711,
                },
            ))?;
            let wfx = WaveFormatEx::parse(cp).map_err(mp4_err)?;
            if !wfx.is_g711() {
                return Err(ExportError::UnsupportedCodec {
                    track: t.number,
                    codec_id: format!("A_MS/ACM wFormatTag {}", wfx.format_tag),
                });
            }
            Ok(TrackConfig::g711(
                id,
                wfx.format_tag == WaveFormatEx::ALAW,
                wfx.sample_rate,
                wfx.channels,
            ))
        }
        other => Err(ExportError::UnsupportedCodec {
            track: t.number,
            codec_id: other.to_owned(),
        }),
    }
}

/// `ticks × scale_ns` ns in `timescale` units, rounded to nearest.
fn to_units(ticks: i128, scale_ns: u64, timescale: u32) -> i128 {
    let num = ticks * i128::from(scale_ns) * i128::from(timescale);
    (num + 500_000_000).div_euclid(1_000_000_000)
}

/// One track's samples of one fragment (or of a whole clip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSamples {
    /// MP4 samples in decode order.
    pub samples: Vec<Sample>,
    /// Payload offset of each sample in its fragment's media bytes.
    pub offsets: Vec<u32>,
    /// Decode time of the first sample in the track's timescale, relative to the
    /// fragment's `cluster_timecode` (may be negative with B-frames).
    pub first_dts: i64,
    /// Presentation time of the earliest sample, same origin.
    pub first_pts: i64,
}

fn is_aac(cfg: &TrackConfig) -> bool {
    matches!(
        cfg.kind,
        TrackKind::Audio {
            codec: AudioCodec::Aac { .. },
            ..
        }
    )
}

/// AAC: every frame lasts 1024 samples, so decode times run on from the first frame's
/// presentation time in steps of 1024 whatever the (rounded, or for laced frames shared)
/// timestamps say; only a real gap (the next frame later than expected by more than a frame
/// plus a tick) stretches a sample to the next frame's time, keeping A/V sync across gaps.
fn aac_durations(samples: &mut [Sample], timed: &[TimedSample], tick: i64) {
    let frame = i64::from(AAC_FRAME_SAMPLES);
    let mut dts = timed.first().map_or(0, |s| s.pts);
    for (i, s) in samples.iter_mut().enumerate() {
        let mut duration = frame;
        if let Some(next) = timed.get(i + 1)
            && next.pts - (dts + frame) > frame + tick
        {
            duration = (next.pts - dts).min(i64::from(u32::MAX));
        }
        s.duration = duration as u32;
        s.cts_offset = 0;
        dts += duration;
    }
}

/// Builds the samples of `frames` (pts in ticks from any common origin) for one track.
fn derive(
    frames: &[(i128, FrameEntry)],
    info: &TrackInfo,
    cfg: &TrackConfig,
    scale_ns: u64,
) -> Result<(Vec<Sample>, i64, i64), ExportError> {
    let ts = cfg.timescale;
    let timed: Vec<TimedSample> = frames
        .iter()
        .map(|(ticks, f)| TimedSample {
            pts: to_units(*ticks, scale_ns, ts) as i64,
            size: f.size,
            // Audio frames are all sync samples whatever the producer flagged.
            sync: f.keyframe || !cfg.is_video(),
        })
        .collect();
    let channels = match cfg.kind {
        TrackKind::Audio { channels, .. } => u32::from(channels.max(1)),
        TrackKind::Video { .. } => 1,
    };
    let last = frames.last().map(|(_, f)| *f);
    let last_duration = match (&cfg.kind, last) {
        (_, None) => 0,
        (_, Some(_)) if is_aac(cfg) => AAC_FRAME_SAMPLES,
        (
            TrackKind::Audio {
                codec: AudioCodec::G711 { .. },
                ..
            },
            Some(f),
        ) => f.size / channels,
        (_, Some(f)) if f.duration > 0 => {
            to_units(i128::from(f.duration), scale_ns, ts).clamp(0, i128::from(u32::MAX)) as u32
        }
        (_, Some(_)) => match info.default_duration_ns {
            Some(ns) => to_units(i128::from(ns), 1, ts).clamp(0, i128::from(u32::MAX)) as u32,
            None => 0, // replaced by the previous delta below
        },
    };
    let mut t = mp4::timeline(&timed, last_duration).map_err(|source| ExportError::Mp4 {
        track: info.number,
        source,
    })?;
    let n = t.samples.len();
    if n >= 2 && t.samples[n - 1].duration == 0 {
        t.samples[n - 1].duration = t.samples[n - 2].duration;
    }
    if is_aac(cfg) {
        aac_durations(&mut t.samples, &timed, to_units(1, scale_ns, ts) as i64);
        t.first_dts = timed.first().map_or(0, |s| s.pts);
        t.shift = 0;
    }
    Ok((t.samples, t.first_dts, t.first_dts + t.shift))
}

/// Like [`derive`] but for fMP4: decode times are the sorted presentation times
/// ([`mp4::Timeline::unshifted`]), so `first_dts` is the earliest presentation time.
fn unshift(samples: &mut [Sample], first_dts: &mut i64, first_pts: i64) {
    let shift = first_pts - *first_dts;
    for s in samples {
        s.cts_offset -= shift as i32;
    }
    *first_dts = first_pts;
}

/// The samples of MKV track `track` in one fragment's frame table (decode order), timed from
/// the fragment's `cluster_timecode`.
pub fn samples_for(
    frames: &[FrameEntry],
    track: &TrackInfo,
    config: &TrackConfig,
    timecode_scale_ns: u64,
) -> Result<TrackSamples, ExportError> {
    let mine: Vec<(i128, FrameEntry)> = frames
        .iter()
        .filter(|f| f.track == track.number)
        .map(|f| (i128::from(f.pts), *f))
        .collect();
    let (samples, first_dts, first_pts) = derive(&mine, track, config, timecode_scale_ns)?;
    Ok(TrackSamples {
        samples,
        offsets: mine.iter().map(|(_, f)| f.offset).collect(),
        first_dts,
        first_pts,
    })
}

fn check_bounds(meta: &FragmentMeta, frames: &[FrameEntry]) -> Result<(), ExportError> {
    for f in frames {
        if u64::from(f.offset) + u64::from(f.size) > meta.size_bytes {
            return Err(ExportError::FrameOutOfBounds {
                fragment: meta.number,
                offset: f.offset,
                size: f.size,
                media_len: meta.size_bytes,
            });
        }
    }
    Ok(())
}

/// A clip's track: id, samples, payload offsets, and where each fragment's samples start.
type ClipTrack = (u32, Vec<Sample>, Vec<u32>, Vec<usize>);

/// GetClip's progressive MP4 over `fragments` (in order; `fragment_index` in the plan's
/// [`mp4::Slice::Media`] is the position in this slice). Each track's timeline runs across all
/// fragments from the earliest presented frame of any track; a track starting later gets an
/// empty edit. Tracks without frames in these fragments are left out. Limiting the clip to
/// 100 MB / 200 fragments (`kvs-api.md` §10) is the caller's job.
pub fn clip_plan(
    fragments: &[(FragmentMeta, Vec<FrameEntry>)],
    set: &TrackSet,
) -> Result<ProgressivePlan, ExportError> {
    let configs = track_configs(set)?;
    for (meta, frames) in fragments {
        check_bounds(meta, frames)?;
    }
    let origin = fragments
        .iter()
        .flat_map(|(m, fr)| {
            fr.iter()
                .map(move |f| i128::from(m.cluster_timecode) + i128::from(f.pts))
        })
        .min()
        .unwrap_or(0);
    let mut used = Vec::new();
    let mut delays = Vec::new();
    // Per used track: samples, and where each fragment's samples start.
    let mut per_track: Vec<ClipTrack> = Vec::new();
    for (info, cfg) in set.tracks.iter().zip(&configs) {
        let mut frames = Vec::new();
        let mut starts = Vec::with_capacity(fragments.len() + 1);
        for (meta, fr) in fragments {
            starts.push(frames.len());
            frames.extend(fr.iter().filter(|f| f.track == info.number).map(|f| {
                (
                    i128::from(meta.cluster_timecode) + i128::from(f.pts) - origin,
                    *f,
                )
            }));
        }
        starts.push(frames.len());
        if frames.is_empty() {
            continue;
        }
        let (samples, _first_dts, first_pts) = derive(&frames, info, cfg, set.timecode_scale_ns)?;
        let offsets = frames.iter().map(|(_, f)| f.offset).collect();
        used.push(cfg.clone());
        delays.push(first_pts.max(0) as u64);
        per_track.push((cfg.id, samples, offsets, starts));
    }
    let mut chunks = Vec::new();
    for fi in 0..fragments.len() {
        for (id, samples, offsets, starts) in &per_track {
            let range = starts[fi]..starts[fi + 1];
            if range.is_empty() {
                continue;
            }
            chunks.push(ClipChunk {
                track_id: *id,
                fragment_index: fi as u32,
                samples: range
                    .map(|i| ClipSample {
                        sample: samples[i],
                        offset: u64::from(offsets[i]),
                    })
                    .collect(),
            });
        }
    }
    ProgressivePlan::build_with_delays(&used, &delays, &chunks)
        .map_err(|source| ExportError::Mp4 { track: 0, source })
}

fn select(set: &TrackSet, track: Option<u64>) -> Result<Vec<&TrackInfo>, ExportError> {
    match track {
        None => Ok(set.tracks.iter().collect()),
        Some(n) => set
            .tracks
            .iter()
            .find(|t| t.number == n)
            .map(|t| vec![t])
            .ok_or(ExportError::NoSuchTrack { track: n }),
    }
}

/// The fMP4 init segment for one track (`track = Some(number)`, as HLS's
/// `getMP4InitFragment.mp4?TrackNumber=`) or all tracks.
pub fn fmp4_init(set: &TrackSet, track: Option<u64>) -> Result<Vec<u8>, ExportError> {
    let configs = select(set, track)?
        .into_iter()
        .map(track_config)
        .collect::<Result<Vec<_>, _>>()?;
    mp4::init_segment(&configs).map_err(|source| ExportError::Mp4 {
        track: track.unwrap_or(0),
        source,
    })
}

/// One fragment as an fMP4 media segment, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmp4Segment {
    /// `moof` + `mdat` header, and the payload order.
    pub plan: SegmentPlan,
    /// The fragment's media byte ranges to send after the header, in order (adjacent ranges
    /// merged).
    pub payloads: Vec<Range<u64>>,
}

impl Fmp4Segment {
    /// Length of the whole segment.
    pub fn total_len(&self) -> u64 {
        self.plan.total_len()
    }
}

/// One fragment as an fMP4 media segment (`sequence_number` in `mfhd`) for one track or all.
/// Decode times are the sorted presentation times (negative composition offsets, `trun`
/// version 1, as CMAF), so `tfdt` is the fragment's earliest presentation time on the producer
/// timeline (clamped at 0) and consecutive fragments line up without overlap whatever their
/// B-frame reordering.
pub fn fmp4_segment(
    meta: &FragmentMeta,
    frames: &[FrameEntry],
    set: &TrackSet,
    sequence_number: u32,
    track: Option<u64>,
) -> Result<Fmp4Segment, ExportError> {
    check_bounds(meta, frames)?;
    let mut built = Vec::new();
    for info in select(set, track)? {
        let cfg = track_config(info)?;
        let mut s = samples_for(frames, info, &cfg, set.timecode_scale_ns)?;
        unshift(&mut s.samples, &mut s.first_dts, s.first_pts);
        let base = to_units(
            i128::from(meta.cluster_timecode),
            set.timecode_scale_ns,
            cfg.timescale,
        ) + i128::from(s.first_dts);
        built.push((cfg.id, base.clamp(0, i128::from(u64::MAX)) as u64, s));
    }
    let runs: Vec<TrackRun<'_>> = built
        .iter()
        .map(|(id, base, s)| TrackRun {
            track_id: *id,
            base_decode_time: *base,
            samples: &s.samples,
        })
        .collect();
    let plan = mp4::media_segment(sequence_number, &runs).map_err(|source| ExportError::Mp4 {
        track: track.unwrap_or(0),
        source,
    })?;
    let mut payloads: Vec<Range<u64>> = Vec::new();
    for (run, i) in plan.payload_order() {
        let s = &built[run].2;
        let start = u64::from(s.offsets[i]);
        let end = start + u64::from(s.samples[i].size);
        match payloads.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => payloads.push(start..end),
        }
    }
    Ok(Fmp4Segment { plan, payloads })
}
