//! Cross-checks of our frames against independent demuxers: ffprobe (skipped with a printed
//! reason when it is not installed) and the matroska-demuxer crate.

use std::process::Command;

use openkvs_mkv::{Event, TrackKind, crc32};

use super::golden::{SAMPLES, read_sample, samples_dir};
use super::parse_ok;

/// One frame as every demuxer can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    /// Index of the track in Tracks (ffprobe's stream index).
    stream: usize,
    track: u64,
    pts_ms: i64,
    key: bool,
    size: usize,
    crc: u32,
    lace_index: u16,
}

/// Our frames, with absolute timestamps in ms (all samples use TimecodeScale 1 ms).
fn ours(data: &[u8]) -> (Vec<Pkt>, Vec<TrackKind>) {
    let mut cluster_tc = 0i64;
    let mut tracks = Vec::new();
    let mut pkts = Vec::new();
    for ev in parse_ok(data) {
        match ev {
            Event::Info { info, .. } => assert_eq!(info.timecode_scale_ns, 1_000_000),
            Event::Tracks { tracks: t, .. } => tracks = t,
            Event::ClusterStart { timecode, .. } => cluster_tc = timecode as i64,
            Event::Frame(f) => pkts.push(Pkt {
                stream: tracks
                    .iter()
                    .position(|t| t.number == f.track)
                    .expect("known track"),
                track: f.track,
                pts_ms: cluster_tc + i64::from(f.timecode_rel),
                key: f.keyframe,
                size: f.payload.len(),
                crc: crc32(&f.payload),
                lace_index: f.lace_index,
            }),
            _ => {}
        }
    }
    (pkts, tracks.iter().map(|t| t.kind).collect())
}

#[test]
#[allow(clippy::print_stderr)]
fn frames_match_ffprobe() {
    if Command::new("ffprobe").arg("-version").output().is_err() {
        eprintln!(
            "SKIPPED frames_match_ffprobe: ffprobe is not installed (apt-get install ffmpeg)"
        );
        return;
    }
    for name in SAMPLES {
        let path = samples_dir().join(format!("{name}.mkv"));
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "quiet",
                "-show_entries",
                "packet=stream_index,pts,flags,size",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success(), "{name}: ffprobe failed");
        let theirs: Vec<(usize, i64, bool, usize)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[3].starts_with('K'),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        let (ours, kinds) = ours(&read_sample(name));
        // ffmpeg shifts a track's timestamps back by its CodecDelay (Opus pre-skip: 6.5 ms
        // rounds to 7 in the ffmpeg_h264_opus sample); the block timecodes are not shifted.
        let delays_ms: Vec<i64> = parse_ok(&read_sample(name))
            .into_iter()
            .find_map(|ev| match ev {
                Event::Tracks { tracks, .. } => Some(
                    tracks
                        .iter()
                        .map(|t| {
                            t.codec_delay_ns
                                .map_or(0, |d| (d as i64 + 500_000) / 1_000_000)
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        assert_eq!(ours.len(), theirs.len(), "{name}: frame count");
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                (o.stream, o.size),
                (t.0, t.3),
                "{name}: packet {i} stream/size"
            );
            // ffmpeg interpolates timestamps inside a lace; compare the block's own.
            if o.lace_index == 0 {
                assert_eq!(
                    o.pts_ms - delays_ms[o.stream],
                    t.1,
                    "{name}: packet {i} pts"
                );
            }
            // ffmpeg flags every audio packet key; Matroska keyframe flags matter for video.
            if kinds[o.stream] == TrackKind::Video {
                assert_eq!(o.key, t.2, "{name}: packet {i} key flag");
            }
        }
    }
}

/// matroska-demuxer needs `Read + Seek` over a whole file with one Segment, so it checks the
/// samples it can open; those it cannot are listed with the reason.
#[test]
#[allow(clippy::print_stderr)]
fn frames_match_matroska_demuxer() {
    use matroska_demuxer::{Frame, MatroskaFile};
    let mut checked = 0;
    for name in SAMPLES {
        let data = read_sample(name);
        let (ours, _) = ours(&data);
        let mut mf = match MatroskaFile::open(std::io::Cursor::new(&data)) {
            Ok(mf) => mf,
            Err(e) => {
                eprintln!("matroska-demuxer cannot open {name}: {e}");
                continue;
            }
        };
        let mut theirs = Vec::new();
        let mut f = Frame::default();
        loop {
            match mf.next_frame(&mut f) {
                Ok(true) => theirs.push((
                    f.track,
                    f.timestamp as i64,
                    f.data.len(),
                    crc32(&f.data),
                    f.is_keyframe,
                )),
                Ok(false) => break,
                Err(e) => {
                    eprintln!(
                        "matroska-demuxer stopped in {name} after {} frames: {e}",
                        theirs.len()
                    );
                    break;
                }
            }
        }
        // A second document (kvs_style) is beyond what it reads; compare what it returned.
        assert!(
            !theirs.is_empty(),
            "{name}: matroska-demuxer returned no frames"
        );
        if theirs.len() != ours.len() {
            eprintln!(
                "matroska-demuxer read {} of our {} frames of {name}",
                theirs.len(),
                ours.len()
            );
            assert_eq!(*name, "kvs_style_h264", "{name}: frame count differs");
        }
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                (o.track, o.pts_ms, o.size, o.crc),
                (t.0, t.1, t.2, t.3),
                "{name}: frame {i}"
            );
            if let Some(key) = t.4 {
                assert_eq!(o.key, key, "{name}: frame {i} key flag");
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "matroska-demuxer opened only {checked} samples"
    );
}
