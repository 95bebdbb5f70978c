//! Store types -> MP4: GetClip plans and HLS/DASH fMP4 segments built from the fragments of
//! `samples/*.mkv` as ingest would store them, read back by the `mp4` crate and ffmpeg.
#![allow(clippy::print_stderr)] // skip reasons must be visible

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use kvs_core::FragmentNumber;
use mp4::Slice;
use openkvs_export::{
    ExportError, MediaErrorCode, clip_plan, fmp4_init, fmp4_segment, track_configs,
};
use store::{FragmentMeta, FrameEntry, TrackInfo, TrackSet};

type Stored = (TrackSet, Vec<(FragmentMeta, Vec<FrameEntry>)>, Vec<Vec<u8>>);

/// (track set, fragments with their frames, media bytes per fragment): one fragment per
/// Cluster of the first MKV document.
fn stored(name: &str) -> Stored {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../samples/{name}.mkv"));
    let events = mkv::parse_all(&std::fs::read(path).unwrap(), mkv::Parser::builder()).unwrap();
    let mut set = TrackSet {
        timecode_scale_ns: 1_000_000,
        tracks: Vec::new(),
    };
    let mut frags: Vec<(FragmentMeta, Vec<FrameEntry>)> = Vec::new();
    let mut media: Vec<Vec<u8>> = Vec::new();
    for ev in events {
        match ev {
            mkv::Event::Info { info, .. } => set.timecode_scale_ns = info.timecode_scale_ns,
            mkv::Event::Tracks { tracks, .. } if set.tracks.is_empty() => {
                set.tracks = tracks
                    .iter()
                    .map(|t| TrackInfo {
                        number: t.number,
                        uid: t.uid,
                        track_type: match t.kind {
                            mkv::TrackKind::Video => 1,
                            _ => 2,
                        },
                        codec_id: t.codec_id.clone(),
                        codec_private: t.codec_private.clone(),
                        name: None,
                        language: None,
                        default_duration_ns: t.default_duration_ns,
                        width: t.video.as_ref().map(|v| v.pixel_width),
                        height: t.video.as_ref().map(|v| v.pixel_height),
                        sampling_frequency: t.audio.as_ref().map(|a| a.sampling_frequency),
                        channels: t.audio.as_ref().map(|a| a.channels),
                        bit_depth: None,
                    })
                    .collect();
            }
            mkv::Event::ClusterStart { timecode, .. } => {
                let n = frags.len() as u128;
                frags.push((
                    FragmentMeta {
                        stream_arn: "arn:aws:kinesisvideo:us-east-1:0:stream/s/1".into(),
                        number: FragmentNumber(91343852333181432392682062600000000000 + n),
                        producer_ms: timecode as i64,
                        server_ms: timecode as i64,
                        duration_ms: 1000,
                        size_bytes: 0,
                        cluster_timecode: timecode,
                        frame_count: 0,
                        track_set_id: 1,
                        tags: Vec::new(),
                    },
                    Vec::new(),
                ));
                media.push(Vec::new());
            }
            mkv::Event::Frame(f) => {
                let (meta, frames) = frags.last_mut().unwrap();
                let m = media.last_mut().unwrap();
                frames.push(FrameEntry {
                    track: f.track,
                    keyframe: f.keyframe,
                    pts: i64::from(f.timecode_rel),
                    duration: f.duration.unwrap_or(0) as u32,
                    offset: m.len() as u32,
                    size: f.payload.len() as u32,
                });
                m.extend_from_slice(&f.payload);
                meta.size_bytes = m.len() as u64;
                meta.frame_count += 1;
            }
            mkv::Event::SegmentEnd { .. } => break,
            _ => {}
        }
    }
    (set, frags, media)
}

fn ffmpeg_decodes(name: &str, bytes: &[u8]) {
    if !Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIP ffmpeg check of {name}: ffmpeg is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.mp4"));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{name}: {stderr}"
    );
}

#[test]
fn clip_round_trip() {
    for name in [
        "ffmpeg_h264_aac",
        "kvs_style_h264",
        "ffmpeg_h265",
        "mkvmerge_h264",
    ] {
        let (set, frags, media) = stored(name);
        let plan = clip_plan(&frags, &set).unwrap();
        let mut file = Vec::new();
        for s in plan.slices(0..plan.total_len()) {
            match s {
                Slice::Bytes(b) => file.extend_from_slice(b),
                Slice::Media {
                    fragment_index,
                    offset,
                    len,
                } => file.extend_from_slice(
                    &media[fragment_index as usize][offset as usize..(offset + len) as usize],
                ),
            }
        }
        let r = mp4_rs::Mp4Reader::read_header(Cursor::new(&file), file.len() as u64).unwrap();
        for t in &set.tracks {
            let want = frags
                .iter()
                .flat_map(|(_, f)| f)
                .filter(|f| f.track == t.number)
                .count();
            assert_eq!(
                r.sample_count(t.number as u32).unwrap() as usize,
                want,
                "{name}"
            );
        }
        // AAC frames are 1024 samples each however the producer rounded its timestamps.
        for (id, track) in r.tracks() {
            if track.timescale() == 48000 {
                let stts = &track.trak.mdia.minf.stbl.stts;
                assert_eq!(
                    stts.entries.len(),
                    1,
                    "{name} track {id}: {:?}",
                    stts.entries
                );
                assert_eq!(stts.entries[0].sample_delta, 1024);
            }
        }
        ffmpeg_decodes(&format!("{name}_clip"), &file);
    }
}

#[test]
fn fmp4_round_trip() {
    for name in ["ffmpeg_h264_aac", "kvs_style_h264", "ffmpeg_h265"] {
        let (set, frags, media) = stored(name);
        for track in std::iter::once(None).chain(set.tracks.iter().map(|t| Some(t.number))) {
            let mut file = fmp4_init(&set, track).unwrap();
            for (i, (meta, frames)) in frags.iter().enumerate() {
                let seg = fmp4_segment(meta, frames, &set, i as u32 + 1, track).unwrap();
                let start = file.len();
                file.extend_from_slice(seg.plan.header());
                for r in &seg.payloads {
                    file.extend_from_slice(&media[i][r.start as usize..r.end as usize]);
                }
                assert_eq!((file.len() - start) as u64, seg.total_len());
            }
            ffmpeg_decodes(&format!("{name}_{track:?}_frag"), &file);
        }
    }
}

#[test]
fn codec_errors() {
    let (set, _, _) = stored("ffmpeg_h264_aac");
    let with = |f: &dyn Fn(&mut TrackInfo)| {
        let mut s = set.clone();
        f(&mut s.tracks[0]);
        track_configs(&s)
            .map(|_| ())
            .map_err(|e: ExportError| e.code())
    };
    assert_eq!(with(&|_| ()), Ok(()));
    assert_eq!(
        with(&|t| t.codec_id = "V_VP8".into()),
        Err(MediaErrorCode::UnsupportedStreamMediaType)
    );
    assert_eq!(
        with(&|t| t.codec_private = None),
        Err(MediaErrorCode::MissingCodecPrivateData)
    );
    assert_eq!(
        with(&|t| t.codec_private = Some(vec![1, 2, 3])),
        Err(MediaErrorCode::InvalidCodecPrivateData)
    );
    // G.711 µ-law, 8 kHz mono WAVEFORMATEX.
    assert_eq!(
        with(&|t| {
            t.codec_id = "A_MS/ACM".into();
            t.codec_private = Some(vec![
                7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0,
            ]);
        }),
        Ok(())
    );
    assert_eq!(
        MediaErrorCode::InvalidCodecPrivateData.exception(),
        Some("InvalidCodecPrivateDataException")
    );
}

/// Planning cost of an hour-long clip (GetClip's time to first byte is mostly this):
/// `cargo test --release -p openkvs-export --test mp4_export -- --ignored --nocapture plan_time`.
#[test]
#[ignore = "timing; run by hand in release"]
#[allow(clippy::disallowed_methods)] // a timing is the point of this test
fn plan_time_of_an_hour() {
    let (set, frags, _) = stored("ffmpeg_h264_aac");
    let span = frags.last().unwrap().0.cluster_timecode + 1000 - frags[0].0.cluster_timecode;
    let mut hour = Vec::new();
    for rep in 0..(3_600_000 / span) {
        for (m, f) in &frags {
            let mut m = m.clone();
            m.cluster_timecode += rep * span;
            m.number = FragmentNumber(m.number.0 + u128::from(rep) * 1000);
            hour.push((m, f.clone()));
        }
    }
    let samples: usize = hour.iter().map(|(_, f)| f.len()).sum();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let plan = clip_plan(&hour, &set).unwrap();
        eprintln!(
            "{} fragments, {samples} samples: planned in {:.1} ms, header {} bytes",
            hour.len(),
            t.elapsed().as_secs_f64() * 1e3,
            plan.header().len()
        );
    }
}
