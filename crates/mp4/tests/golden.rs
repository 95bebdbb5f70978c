//! Golden and cross-check tests: MP4 built from the frames of `samples/*.mkv`.
//!
//! For each sample, an fMP4 stream (init segment + one media segment per Matroska Cluster) and
//! a progressive file are built; their box dumps are compared with `tests/golden/*.txt`, whose
//! first line holds a SHA-256 of the exact bytes. Brittle on purpose: when the bytes change,
//! bump `FORMAT_VERSION`, regenerate with `UPDATE_GOLDEN=1 cargo test -p openkvs-mp4` and
//! review the diff. The outputs are then read back with an independent parser (the `mp4`
//! crate) and, when installed, ffprobe/ffmpeg.
#![allow(clippy::print_stderr)] // skip reasons must be visible

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use openkvs_mp4::{
    ClipChunk, ClipSample, ProgressivePlan, Sample, Slice, TimedSample, TrackConfig, TrackRun,
    dump, init_segment, media_segment, timeline,
};
use sha2::{Digest, Sha256};

const SAMPLES: &[&str] = &["ffmpeg_h264_aac", "ffmpeg_h265", "gstreamer_h264"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One frame of the input: which Cluster ("fragment"), absolute ticks, where the payload is.
#[derive(Debug, Clone, Copy)]
struct Fr {
    frag: usize,
    ticks: i64,
    key: bool,
    offset: u64,
    size: u32,
}

struct Input {
    scale_ns: u64,
    configs: Vec<TrackConfig>,
    /// Per config, its frames in decode order.
    frames: Vec<Vec<Fr>>,
    /// Per fragment, its media bytes (payloads concatenated, as the store keeps them).
    media: Vec<Vec<u8>>,
}

/// Reads the first MKV document of a sample.
fn read_input(name: &str) -> Input {
    let data = std::fs::read(repo_root().join(format!("samples/{name}.mkv"))).unwrap();
    let events = mkv::parse_all(&data, mkv::Parser::builder()).unwrap();
    let mut scale_ns = 1_000_000;
    let mut configs = Vec::new();
    let mut numbers = Vec::new();
    let mut frames: Vec<Vec<Fr>> = Vec::new();
    let mut media: Vec<Vec<u8>> = Vec::new();
    let mut cluster_tc = 0i64;
    for ev in events {
        match ev {
            mkv::Event::Info { info, .. } => scale_ns = info.timecode_scale_ns,
            mkv::Event::Tracks { tracks, .. } if configs.is_empty() => {
                for t in tracks {
                    let id = t.number as u32;
                    let cp = t.codec_private.as_deref();
                    let (w, h) = t
                        .video
                        .as_ref()
                        .map_or((0, 0), |v| (v.pixel_width as u16, v.pixel_height as u16));
                    let cfg = match t.codec_id.as_str() {
                        "V_MPEG4/ISO/AVC" => TrackConfig::avc(id, cp, w, h),
                        "V_MPEGH/ISO/HEVC" => TrackConfig::hevc(id, cp, w, h),
                        "A_AAC" => TrackConfig::aac(id, cp, None),
                        other => panic!("{name}: codec {other}"),
                    }
                    .unwrap();
                    configs.push(cfg);
                    numbers.push(t.number);
                    frames.push(Vec::new());
                }
            }
            mkv::Event::ClusterStart { timecode, .. } => {
                cluster_tc = timecode as i64;
                media.push(Vec::new());
            }
            mkv::Event::Frame(f) => {
                let i = numbers.iter().position(|&n| n == f.track).unwrap();
                let frag = media.len() - 1;
                let m = &mut media[frag];
                frames[i].push(Fr {
                    frag,
                    ticks: cluster_tc + i64::from(f.timecode_rel),
                    key: f.keyframe,
                    offset: m.len() as u64,
                    size: f.payload.len() as u32,
                });
                m.extend_from_slice(&f.payload);
            }
            mkv::Event::SegmentEnd { .. } => break,
            _ => {}
        }
    }
    Input {
        scale_ns,
        configs,
        frames,
        media,
    }
}

fn units(ticks: i64, scale_ns: u64, timescale: u32) -> i64 {
    let num = i128::from(ticks) * i128::from(scale_ns) * i128::from(timescale);
    (num + 500_000_000).div_euclid(1_000_000_000) as i64
}

fn timed(frames: &[Fr], origin: i64, scale_ns: u64, cfg: &TrackConfig) -> Vec<TimedSample> {
    frames
        .iter()
        .map(|f| TimedSample {
            pts: units(f.ticks - origin, scale_ns, cfg.timescale),
            size: f.size,
            sync: f.key || !cfg.is_video(),
        })
        .collect()
}

/// Samples with the last duration copied from the one before (1024 for a lone audio frame).
fn samples(t: &[TimedSample], cfg: &TrackConfig) -> openkvs_mp4::Timeline {
    let mut tl = timeline(t, 0).unwrap();
    let n = tl.samples.len();
    tl.samples[n - 1].duration = if n > 1 {
        tl.samples[n - 2].duration
    } else if cfg.is_video() {
        3600
    } else {
        1024
    };
    tl
}

fn origin(input: &Input) -> i64 {
    input
        .frames
        .iter()
        .flatten()
        .map(|f| f.ticks)
        .min()
        .unwrap()
}

/// Per fragment: segment bytes and, per run, (track index, base decode time, samples).
type Segments = Vec<(Vec<u8>, Vec<(usize, u64, Vec<Sample>)>)>;

/// fMP4: the init segment and the media segments.
fn build_fmp4(input: &Input) -> (Vec<u8>, Segments) {
    let init = init_segment(&input.configs).unwrap();
    let origin = origin(input);
    let mut segments = Vec::new();
    for (fi, media) in input.media.iter().enumerate() {
        let mut owned = Vec::new();
        for (ti, (cfg, frames)) in input.configs.iter().zip(&input.frames).enumerate() {
            let mine: Vec<Fr> = frames.iter().filter(|f| f.frag == fi).copied().collect();
            if mine.is_empty() {
                continue;
            }
            let tl = samples(&timed(&mine, origin, input.scale_ns, cfg), cfg).unshifted();
            owned.push((ti, tl.first_dts as u64, tl.samples, mine));
        }
        let runs: Vec<TrackRun<'_>> = owned
            .iter()
            .map(|(ti, base, s, _)| TrackRun {
                track_id: input.configs[*ti].id,
                base_decode_time: *base,
                samples: s,
            })
            .collect();
        let plan = media_segment(fi as u32 + 1, &runs).unwrap();
        let mut bytes = plan.header().to_vec();
        for (run, i) in plan.payload_order() {
            let f = owned[run].3[i];
            bytes.extend_from_slice(&media[f.offset as usize..][..f.size as usize]);
        }
        assert_eq!(bytes.len() as u64, plan.total_len());
        segments.push((bytes, owned.into_iter().map(|o| (o.0, o.1, o.2)).collect()));
    }
    (init, segments)
}

/// Progressive: the plan and, per track, its samples.
fn build_progressive(input: &Input) -> (ProgressivePlan, Vec<Vec<Sample>>) {
    let origin = origin(input);
    let mut delays = Vec::new();
    let mut all = Vec::new();
    for (cfg, frames) in input.configs.iter().zip(&input.frames) {
        let tl = samples(&timed(frames, origin, input.scale_ns, cfg), cfg);
        delays.push((tl.first_dts + tl.shift) as u64);
        all.push(tl.samples);
    }
    let mut chunks = Vec::new();
    for fi in 0..input.media.len() {
        for (ti, (cfg, frames)) in input.configs.iter().zip(&input.frames).enumerate() {
            let samples: Vec<ClipSample> = frames
                .iter()
                .zip(&all[ti])
                .filter(|(f, _)| f.frag == fi)
                .map(|(f, s)| ClipSample {
                    sample: *s,
                    offset: f.offset,
                })
                .collect();
            if !samples.is_empty() {
                chunks.push(ClipChunk {
                    track_id: cfg.id,
                    fragment_index: fi as u32,
                    samples,
                });
            }
        }
    }
    let plan = ProgressivePlan::build_with_delays(&input.configs, &delays, &chunks).unwrap();
    (plan, all)
}

fn materialize(plan: &ProgressivePlan, media: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in plan.slices(0..plan.total_len()) {
        match s {
            Slice::Bytes(b) => out.extend_from_slice(b),
            Slice::Media {
                fragment_index,
                offset,
                len,
            } => out.extend_from_slice(
                &media[fragment_index as usize][offset as usize..(offset + len) as usize],
            ),
        }
    }
    assert_eq!(out.len() as u64, plan.total_len());
    out
}

fn check_golden(file: &str, bytes: &[u8], dump_text: &str) {
    let text = format!(
        "# sha256={:x} len={} (FORMAT_VERSION {})\n{dump_text}",
        Sha256::digest(bytes),
        bytes.len(),
        openkvs_mp4::FORMAT_VERSION
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        want == text,
        "{file} differs; if intended, bump FORMAT_VERSION, regenerate with UPDATE_GOLDEN=1 and review the diff"
    );
}

/// Reads the file with the `mp4` crate and compares every sample with what we put in. For
/// fragmented files that crate only gets counts and sizes right (it takes every duration from
/// `trex` and ignores default-base-is-moof), so only those are compared; ffprobe checks the
/// timing of both kinds.
fn crosscheck_mp4_rs(
    name: &str,
    bytes: &[u8],
    configs: &[TrackConfig],
    want: &[Vec<Sample>],
    fragmented: bool,
) {
    let mut r = mp4_rs::Mp4Reader::read_header(Cursor::new(bytes), bytes.len() as u64)
        .unwrap_or_else(|e| panic!("{name}: mp4 crate: {e}"));
    for (cfg, samples) in configs.iter().zip(want) {
        let track = &r.tracks()[&cfg.id];
        assert_eq!(track.timescale(), cfg.timescale, "{name}");
        assert_eq!(
            r.sample_count(cfg.id).unwrap() as usize,
            samples.len(),
            "{name} track {}",
            cfg.id
        );
        let mut dts = None;
        for (i, s) in samples.iter().enumerate() {
            let got = r.read_sample(cfg.id, i as u32 + 1).unwrap().unwrap();
            if fragmented {
                assert_eq!(got.bytes.len(), s.size as usize, "{name} sample {i}");
                continue;
            }
            assert_eq!(
                (
                    got.duration,
                    got.is_sync,
                    got.rendering_offset,
                    got.bytes.len()
                ),
                (s.duration, s.sync, s.cts_offset, s.size as usize),
                "{name} track {} sample {i}",
                cfg.id
            );
            if let Some(prev) = dts {
                assert!(got.start_time >= prev, "{name}: decode times go back");
            }
            dts = Some(got.start_time);
        }
    }
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {name} checks: {name} is not installed");
    }
    ok
}

/// Per track, each sample with its decode time.
type Timed = Vec<Vec<(Sample, i64)>>;

/// Decode times of samples that follow each other without gaps, starting at `base`.
fn cumulative(base: i64, samples: &[Sample]) -> Vec<(Sample, i64)> {
    let mut dts = base;
    samples
        .iter()
        .map(|s| {
            dts += i64::from(s.duration);
            (*s, dts - i64::from(s.duration))
        })
        .collect()
}

/// ffmpeg decodes everything without a message; ffprobe sees the right packets.
fn crosscheck_ffmpeg(name: &str, bytes: &[u8], configs: &[TrackConfig], want: &Timed) {
    if !tool("ffmpeg") || !tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.mp4"));
    std::fs::write(&path, bytes).unwrap();
    if let Some(keep) = std::env::var_os("MP4_KEEP_DIR") {
        // For looking at the outputs with other tools.
        std::fs::write(Path::new(&keep).join(format!("{name}.mp4")), bytes).unwrap();
    }
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{name}: ffmpeg: {stderr}"
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name}: ffprobe failed");
    // (key, size, dts - first dts, pts - dts) per packet, in the stream's time base = our
    // timescale. (Not ffprobe's `duration`: for fMP4 it takes AAC durations from the frames.)
    let mut packets: HashMap<u32, Vec<(bool, u64, i64, i64)>> = HashMap::new();
    let mut codecs = Vec::new();
    for line in text.lines() {
        let fields: HashMap<&str, &str> = line
            .split('|')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if line.starts_with("packet|") {
            let idx: u32 = fields["stream_index"].parse().unwrap();
            let num = |k: &str| {
                fields[k]
                    .parse::<i64>()
                    .unwrap_or_else(|_| panic!("{name}: {k} in {line}"))
            };
            packets.entry(idx).or_default().push((
                fields["flags"].starts_with('K'),
                fields["size"].parse().unwrap(),
                num("dts"),
                num("pts") - num("dts"),
            ));
        } else if line.starts_with("stream|") {
            codecs.push(fields["codec_tag_string"].to_owned());
            let tb = format!("1/{}", configs[codecs.len() - 1].timescale);
            assert_eq!(fields["time_base"], tb, "{name}");
        }
    }
    assert_eq!(codecs.len(), configs.len(), "{name}: {codecs:?}");
    for (i, samples) in want.iter().enumerate() {
        let mut got = packets[&(i as u32)].clone();
        let first = got[0].2;
        for p in &mut got {
            p.2 -= first;
        }
        let want: Vec<(bool, u64, i64, i64)> = samples
            .iter()
            .map(|(s, dts)| {
                (
                    s.sync,
                    u64::from(s.size),
                    dts - samples[0].1,
                    i64::from(s.cts_offset),
                )
            })
            .collect();
        // ffmpeg moves decode times back by the most negative offset (its `dts_shift`), so
        // offsets compare up to one constant per stream.
        let dts_shift = got[0].3 - want[0].3;
        for p in &mut got {
            p.3 -= dts_shift;
        }
        assert_eq!(got, want, "{name}: ffprobe packets of stream {i}");
    }
}

#[test]
fn golden_fmp4() {
    for name in SAMPLES {
        let input = read_input(name);
        let (init, segments) = build_fmp4(&input);
        let mut bytes = init.clone();
        let mut text = format!("== init segment\n{}", dump(&init));
        let mut per_track: Vec<Vec<Sample>> = vec![Vec::new(); input.configs.len()];
        let mut timed: Timed = vec![Vec::new(); input.configs.len()];
        for (i, (seg, runs)) in segments.iter().enumerate() {
            text += &format!("== media segment {}\n{}", i + 1, dump(seg));
            bytes.extend_from_slice(seg);
            // Every segment begins with a sync sample in every track.
            for (t, base, s) in runs {
                assert!(s[0].sync, "{name} segment {i} track {t}");
                per_track[*t].extend_from_slice(s);
                timed[*t].extend(cumulative(*base as i64, s));
            }
        }
        check_golden(&format!("{name}.fmp4.txt"), &bytes, &text);
        crosscheck_mp4_rs(name, &bytes, &input.configs, &per_track, true);
        crosscheck_ffmpeg(&format!("{name}_frag"), &bytes, &input.configs, &timed);
    }
}

#[test]
fn golden_progressive() {
    for name in SAMPLES {
        let input = read_input(name);
        let (plan, samples) = build_progressive(&input);
        let bytes = materialize(&plan, &input.media);
        assert_eq!(&bytes[..plan.header().len()], plan.header());
        check_golden(&format!("{name}.mp4.txt"), &bytes, &dump(&bytes));
        crosscheck_mp4_rs(name, &bytes, &input.configs, &samples, false);
        let timed: Timed = samples.iter().map(|s| cumulative(0, s)).collect();
        crosscheck_ffmpeg(name, &bytes, &input.configs, &timed);
    }
}

#[test]
fn codec_strings() {
    let want = [
        ("ffmpeg_h264_aac", vec!["avc1.64000d", "mp4a.40.2"]),
        ("ffmpeg_h265", vec!["hvc1.1.6.L60.90"]),
        ("gstreamer_h264", vec!["avc1.64000d"]),
    ];
    for (name, codecs) in want {
        let got: Vec<String> = read_input(name)
            .configs
            .iter()
            .map(|c| c.codec_string().unwrap())
            .collect();
        assert_eq!(got, codecs, "{name}");
    }
}
