//! The looped media: an MKV file read whole into memory, turned into what WebRTC sends.
//!
//! Pure (no I/O, no clock): [`Clip::from_mkv`] parses bytes with `openkvs-mkv`, keeps the first
//! H.264 track and the first Opus track, converts H.264 from the MKV's AVCC framing
//! (length-prefixed NAL units, ISO/IEC 14496-15 §5.3.3) to Annex B start codes with the SPS and
//! PPS of the `avcC` CodecPrivate in front of every key frame, and computes every frame's
//! duration from the next frame's timestamp on the same track (what the RTP packetizer needs to
//! advance the RTP timestamp). Other tracks (AAC, HEVC, ...) are listed in [`Clip::skipped`]:
//! WebRTC browsers do not take AAC, and HEVC is not in the KVS WebRTC profile.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use mkv::{Event, TrackKind};

/// The largest file `openkvs camera --file` loads (it is held in memory and looped).
pub const MAX_FILE_BYTES: usize = 256 << 20;

/// Which WebRTC track a frame goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// H.264, Annex B.
    Video,
    /// Opus packets.
    Audio,
}

/// One frame ready for a WebRTC track.
#[derive(Debug, Clone)]
pub struct ClipFrame {
    /// Track it belongs to.
    pub kind: Kind,
    /// Send time from the clip's first frame: the presentation time for audio and for video
    /// without B-frames; for video with B-frames the reconstructed decode time.
    pub pts: Duration,
    /// Time until the next frame of the same track.
    pub duration: Duration,
    /// Key frame (always true for audio).
    pub keyframe: bool,
    /// Annex B H.264 access unit (SPS/PPS prepended on key frames) or one Opus packet.
    pub data: Bytes,
    /// The frame as stored in the MKV (AVCC for H.264), for re-muxing to PutMedia.
    pub mkv_payload: Bytes,
}

/// A parsed file: frames of both tracks interleaved in presentation order.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Frames sorted by send time (`pts`), video in decode order.
    pub frames: Vec<ClipFrame>,
    /// Length of one loop: the end of the last frame.
    pub loop_duration: Duration,
    /// The H.264 track entry as found in the file (for the PutMedia re-mux).
    pub video_track: Option<mkv::TrackEntry>,
    /// The Opus track entry, if any.
    pub audio_track: Option<mkv::TrackEntry>,
    /// Tracks not sent, as `codec id` strings.
    pub skipped: Vec<String>,
}

impl Clip {
    /// Whether the clip has an Opus track.
    pub fn has_audio(&self) -> bool {
        self.audio_track.is_some()
    }

    /// Parses a whole MKV file.
    pub fn from_mkv(data: &[u8]) -> anyhow::Result<Clip> {
        ensure!(
            data.len() <= MAX_FILE_BYTES,
            "file is {} bytes, more than the {} MiB openkvs camera loops from memory",
            data.len(),
            MAX_FILE_BYTES >> 20
        );
        let mut parser = mkv::Parser::builder().build();
        parser.push(data);
        let mut events = Vec::new();
        while let Some(ev) = parser.poll().context("parsing the MKV file")? {
            events.push(ev);
        }
        parser.finish().context("parsing the MKV file")?;
        while let Some(ev) = parser.poll().context("parsing the MKV file")? {
            events.push(ev);
        }

        let mut scale_ns = mkv::DEFAULT_TIMECODE_SCALE_NS;
        let mut video: Option<(mkv::TrackEntry, Avcc)> = None;
        let mut audio: Option<mkv::TrackEntry> = None;
        let mut skipped = Vec::new();
        let mut cluster_tc: i64 = 0;
        // (kind, pts in ns, keyframe, payload); durations filled in afterwards.
        let mut raw: Vec<(Kind, i64, bool, Vec<u8>)> = Vec::new();
        for ev in events {
            match ev {
                Event::Info { info, .. } => scale_ns = info.timecode_scale_ns,
                Event::Tracks { tracks, .. } => {
                    // A second document (a restarted producer) repeats the same tracks.
                    if video.is_some() || audio.is_some() || !skipped.is_empty() {
                        continue;
                    }
                    for t in tracks {
                        let codec = t.codec_id.trim_end_matches('\0');
                        match (t.kind, codec) {
                            (TrackKind::Video, "V_MPEG4/ISO/AVC") if video.is_none() => {
                                let private = t.codec_private.as_deref().with_context(|| {
                                    format!("H.264 track {} has no CodecPrivate (avcC)", t.number)
                                })?;
                                let avcc = Avcc::parse(private).with_context(|| {
                                    format!("H.264 track {} CodecPrivate", t.number)
                                })?;
                                video = Some((t, avcc));
                            }
                            (TrackKind::Audio, "A_OPUS") if audio.is_none() => audio = Some(t),
                            _ => skipped.push(codec.to_owned()),
                        }
                    }
                }
                Event::ClusterStart { timecode, .. } => {
                    cluster_tc = i64::try_from(timecode).unwrap_or(i64::MAX)
                }
                Event::Frame(f) => {
                    let pts_ns = (cluster_tc + i64::from(f.timecode_rel))
                        .saturating_mul(i64::try_from(scale_ns).unwrap_or(1_000_000));
                    if let Some((t, _)) = &video
                        && t.number == f.track
                    {
                        raw.push((Kind::Video, pts_ns, f.keyframe, f.payload));
                    } else if let Some(t) = &audio
                        && t.number == f.track
                    {
                        raw.push((Kind::Audio, pts_ns, true, f.payload));
                    }
                }
                _ => {}
            }
        }
        let Some((video_track, avcc)) = video else {
            bail!(
                "no H.264 (V_MPEG4/ISO/AVC) track in the file (tracks found: {})",
                if skipped.is_empty() {
                    "none".to_owned()
                } else {
                    skipped.join(", ")
                }
            );
        };
        ensure!(
            raw.iter().any(|r| r.0 == Kind::Video && r.2),
            "the H.264 track has no key frame"
        );
        // Video stays in decode (file) order: with B-frames, presentation timestamps are not
        // monotonic, and the RTP packetizer only moves forward. Frame i of the decode order is
        // sent at the i-th smallest presentation time (the usual DTS reconstruction); audio
        // goes by its own timestamps. Then both are merged by send time.
        let mut video_pts: Vec<i64> = raw
            .iter()
            .filter(|r| r.0 == Kind::Video)
            .map(|r| r.1)
            .collect();
        video_pts.sort_unstable();
        let mut vi = 0;
        let mut timed: Vec<(i64, Kind, bool, Vec<u8>)> = raw
            .into_iter()
            .map(|(kind, pts_ns, keyframe, payload)| {
                let t = match kind {
                    Kind::Video => {
                        vi += 1;
                        video_pts[vi - 1]
                    }
                    Kind::Audio => pts_ns,
                };
                (t, kind, keyframe, payload)
            })
            .collect();
        // Stable: decode order is kept among equal times; video before audio on ties.
        timed.sort_by_key(|r| (r.0, r.1 == Kind::Audio));
        let first_ns = timed.first().map_or(0, |r| r.0);

        let default_ns = |kind: Kind| -> i64 {
            let d = match kind {
                Kind::Video => video_track.default_duration_ns,
                Kind::Audio => audio.as_ref().and_then(|a| a.default_duration_ns),
            };
            d.and_then(|d| i64::try_from(d).ok()).unwrap_or(match kind {
                Kind::Video => 40_000_000,
                Kind::Audio => 20_000_000,
            })
        };
        let mut frames = Vec::with_capacity(timed.len());
        for (i, (t_ns, kind, keyframe, payload)) in timed.iter().enumerate() {
            let next = timed[i + 1..].iter().find(|r| r.1 == *kind).map(|r| r.0);
            let dur_ns = match next {
                Some(n) if n > *t_ns => n - t_ns,
                _ => default_ns(*kind),
            };
            let data = match kind {
                Kind::Video => Bytes::from(avcc.to_annex_b(payload, *keyframe)?),
                Kind::Audio => Bytes::from(payload.clone()),
            };
            frames.push(ClipFrame {
                kind: *kind,
                pts: ns(t_ns - first_ns),
                duration: ns(dur_ns),
                keyframe: *keyframe,
                data,
                mkv_payload: Bytes::from(payload.clone()),
            });
        }
        let loop_duration = frames
            .iter()
            .map(|f| f.pts + f.duration)
            .max()
            .unwrap_or_default();
        Ok(Clip {
            frames,
            loop_duration,
            video_track: Some(video_track),
            audio_track: audio,
            skipped,
        })
    }
}

fn ns(v: i64) -> Duration {
    Duration::from_nanos(u64::try_from(v).unwrap_or(0))
}

/// The parts of an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) needed to turn
/// AVCC samples into Annex B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avcc {
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub length_size: usize,
    /// Sequence and picture parameter sets, in record order.
    pub parameter_sets: Vec<Vec<u8>>,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

impl Avcc {
    /// Parses the record.
    pub fn parse(b: &[u8]) -> anyhow::Result<Avcc> {
        // configurationVersion, AVCProfileIndication, profile_compatibility,
        // AVCLevelIndication, 6 bits reserved + lengthSizeMinusOne, 3 bits reserved + numOfSPS.
        ensure!(b.len() >= 6, "avcC is {} bytes, shorter than 6", b.len());
        ensure!(b[0] == 1, "avcC configurationVersion is {}, not 1", b[0]);
        let length_size = usize::from(b[4] & 3) + 1;
        ensure!(
            length_size != 3,
            "avcC lengthSizeMinusOne is 2 (3-byte lengths)"
        );
        let mut pos = 5;
        let mut parameter_sets = Vec::new();
        for list in 0..2 {
            let count = *b
                .get(pos)
                .context("avcC ends before a parameter set count")?;
            let count = if list == 0 { count & 0x1f } else { count };
            pos += 1;
            for _ in 0..count {
                let len = u16::from_be_bytes([
                    *b.get(pos).context("avcC truncated")?,
                    *b.get(pos + 1).context("avcC truncated")?,
                ]) as usize;
                pos += 2;
                let ps = b
                    .get(pos..pos + len)
                    .context("avcC parameter set truncated")?;
                parameter_sets.push(ps.to_vec());
                pos += len;
            }
        }
        Ok(Avcc {
            length_size,
            parameter_sets,
        })
    }

    /// Converts one AVCC sample to Annex B; key frames get the parameter sets in front unless
    /// the sample carries its own SPS (NAL type 7).
    pub fn to_annex_b(&self, sample: &[u8], keyframe: bool) -> anyhow::Result<Vec<u8>> {
        let mut nals = Vec::new();
        let mut pos = 0;
        while pos < sample.len() {
            let len_bytes = sample
                .get(pos..pos + self.length_size)
                .context("H.264 sample ends inside a NAL length")?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            pos += self.length_size;
            let nal = sample.get(pos..pos + len).with_context(|| {
                format!(
                    "H.264 NAL unit of {len} bytes overruns the {}-byte sample",
                    sample.len()
                )
            })?;
            nals.push(nal);
            pos += len;
        }
        let has_sps = nals
            .iter()
            .any(|n| n.first().is_some_and(|h| h & 0x1f == 7));
        let mut out = Vec::with_capacity(sample.len() + 64);
        if keyframe && !has_sps {
            for ps in &self.parameter_sets {
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(ps);
            }
        }
        for nal in nals {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PATTERN: &[u8] = include_bytes!("../../../samples/ffmpeg_h264_opus.mkv");

    #[test]
    fn avcc_to_annex_b_table() {
        let avcc = Avcc {
            length_size: 4,
            parameter_sets: vec![vec![0x67, 1], vec![0x68, 2]],
        };
        struct Case {
            sample: &'static [u8],
            keyframe: bool,
            want: &'static [u8],
        }
        let cases = [
            Case {
                sample: &[0, 0, 0, 2, 0x65, 9],
                keyframe: true,
                want: &[
                    0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 9,
                ],
            },
            Case {
                sample: &[0, 0, 0, 2, 0x41, 9, 0, 0, 0, 1, 0x06],
                keyframe: false,
                want: &[0, 0, 0, 1, 0x41, 9, 0, 0, 0, 1, 0x06],
            },
            // A key frame with its own SPS gets no second copy.
            Case {
                sample: &[0, 0, 0, 2, 0x67, 7, 0, 0, 0, 1, 0x65],
                keyframe: true,
                want: &[0, 0, 0, 1, 0x67, 7, 0, 0, 0, 1, 0x65],
            },
        ];
        for c in cases {
            assert_eq!(avcc.to_annex_b(c.sample, c.keyframe).unwrap(), c.want);
        }
        assert!(avcc.to_annex_b(&[0, 0, 0, 9, 0x65], false).is_err());
        assert!(avcc.to_annex_b(&[0, 0], false).is_err());
    }

    #[test]
    fn test_pattern_has_video_and_opus() {
        let clip = Clip::from_mkv(TEST_PATTERN).unwrap();
        let video: Vec<_> = clip
            .frames
            .iter()
            .filter(|f| f.kind == Kind::Video)
            .collect();
        let audio = clip.frames.iter().filter(|f| f.kind == Kind::Audio).count();
        // 4 s at 25 fps, GOP 25; Opus in 20 ms packets.
        assert_eq!(video.len(), 100);
        assert_eq!(video.iter().filter(|f| f.keyframe).count(), 4);
        assert!((195..=205).contains(&audio), "{audio} Opus packets");
        assert!(video[0].keyframe);
        assert!(video[0].data.starts_with(&[0, 0, 0, 1, 0x67]));
        assert_eq!(video[1].duration, Duration::from_millis(40));
        assert!(clip.frames.windows(2).all(|w| w[0].pts <= w[1].pts));
        let loop_ms = clip.loop_duration.as_millis();
        assert!((3990..=4030).contains(&loop_ms), "loop of {loop_ms} ms");
        assert!(clip.has_audio());
    }

    #[test]
    fn aac_is_skipped_and_no_h264_is_an_error() {
        let clip = Clip::from_mkv(include_bytes!("../../../samples/ffmpeg_h264_aac.mkv")).unwrap();
        assert_eq!(clip.skipped, ["A_AAC"]);
        assert!(!clip.has_audio());
        let err = Clip::from_mkv(include_bytes!("../../../samples/ffmpeg_h265.mkv")).unwrap_err();
        assert!(err.to_string().contains("V_MPEGH/ISO/HEVC"), "{err}");
    }
}
