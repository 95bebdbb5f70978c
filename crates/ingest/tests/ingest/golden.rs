//! Real producer files from `samples/` (see `samples/README.md`) through a session.
//!
//! For every `samples/*.mkv`: the output contract holds, no errors, every fragment starts on
//! a video key frame and lasts about as long as the gap to the next one (whole GOPs, no
//! holes). For the files with a dump in `tests/golden/<name>.txt` the exact outputs must match
//! it — brittle on purpose: a change in fragmenting, timing or numbering must show up as a
//! reviewed diff. Regenerate with `UPDATE_GOLDEN=1 cargo test -p openkvs-ingest`.

use std::fmt::Write as _;
use std::path::PathBuf;

use openkvs_ingest::{Output, Session};
use store::NewFragment;

use super::*;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0")
}

/// Server time of chunk `i`: one ms per 1400-byte chunk.
const NOW0: i64 = 1_800_000_000_000;
const CHUNK: usize = 1400;

fn run_sample(data: &[u8]) -> (Vec<Output>, openkvs_ingest::SessionStats) {
    let chunks: Vec<(Vec<u8>, i64)> = data
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (c.to_vec(), NOW0 + i as i64))
        .collect();
    let finish = NOW0 + chunks.len() as i64;
    let mut s = Session::new(cfg());
    let out = drive(&mut s, &chunks, Some(finish))
        .into_iter()
        .flatten()
        .collect();
    (out, s.stats())
}

fn dump(name: &str, data: &[u8], out: &[Output], st: &openkvs_ingest::SessionStats) -> String {
    let mut s = format!(
        "# {name}.mkv: {} bytes in {CHUNK}-byte chunks, chunk i at server ms {NOW0} + i\n",
        data.len()
    );
    for o in out {
        s.push_str(&render(o));
        s.push('\n');
        if let Output::Fragment(c) = o {
            let fr = &c.fragment;
            let tracks: Vec<String> = fr
                .tracks
                .tracks
                .iter()
                .map(|t| format!("{}:{}", t.number, t.codec_id))
                .collect();
            let keys: Vec<String> = fr
                .frames
                .iter()
                .filter(|e| {
                    e.keyframe
                        && fr
                            .tracks
                            .tracks
                            .iter()
                            .any(|t| t.number == e.track && t.track_type == 1)
                })
                .map(|e| e.pts.to_string())
                .collect();
            let first = &fr.frames[0];
            writeln!(
                s,
                "  tracks=[{}] scale={} first=track{}@{}{} video_keys_at=[{}] media_crc={:08x}",
                tracks.join(" "),
                fr.tracks.timecode_scale_ns,
                first.track,
                first.pts,
                if first.keyframe { "/key" } else { "" },
                keys.join(" "),
                mkv::crc32(&fr.media)
            )
            .unwrap();
        }
    }
    writeln!(s, "# {st:?}").unwrap();
    s
}

#[test]
#[allow(clippy::print_stderr)] // says which samples were skipped
fn samples() {
    let Ok(dir) = std::fs::read_dir(samples_dir()) else {
        eprintln!("skipped: no samples/ directory");
        return;
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".mkv").map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut failed = Vec::new();
    for name in &names {
        let data = std::fs::read(samples_dir().join(format!("{name}.mkv"))).unwrap();
        let (out, st) = run_sample(&data);
        check_sample(name, &out);
        let text = dump(name, &data, &out, &st);
        let path = golden_dir().join(format!("{name}.txt"));
        if update() {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(_) => failed.push(format!(
                "{name}: outputs differ from {} (UPDATE_GOLDEN=1 to accept):\n{text}",
                path.display()
            )),
            Err(_) => eprintln!("{name}: no golden dump yet (UPDATE_GOLDEN=1 writes one)"),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// What must hold for any real producer file.
fn check_sample(name: &str, out: &[Output]) {
    super::props::check_contract(out, &cfg());
    let errors: Vec<String> = out
        .iter()
        .filter(|o| matches!(o, Output::Error(_)))
        .map(render)
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}");
    let fr = fragments(out);
    assert!(!fr.is_empty(), "{name}: no fragments");
    // A fragment covers [producer_ms + its smallest pts, + duration): with B-frames in decode
    // order (ffmpeg's HEVC) the last B-frames of a GOP arrive after the next key frame, in the
    // next cluster, with negative relative timecodes.
    let span = |f: &NewFragment| {
        let min_pts = f.frames.iter().map(|e| e.pts).min().unwrap();
        let start = f.producer_ms
            + (i128::from(min_pts) * i128::from(f.tracks.timecode_scale_ns) / 1_000_000) as i64;
        (start, start + f.duration_ms)
    };
    for w in fr.windows(2) {
        let ((_, end), (next, _)) = (span(w[0]), span(w[1]));
        // Whole GOPs: no holes beyond frame rounding; overlap only by the audio that muxers
        // put before the next key frame's cluster (ffmpeg: up to ~100 ms).
        assert!(
            next - end <= 25 && end - next <= 120,
            "{name}: fragment at {} ends at {end} but the next starts at {next}",
            w[0].producer_ms,
        );
    }
    for f in &fr {
        assert!(
            f.duration_ms > 0 && f.duration_ms <= 10_000,
            "{name}: {}",
            f.duration_ms
        );
    }
}

/// `samples/kvs_style_h264.mkv` is laid out like kvssink (one GOP per cluster, metadata Tags
/// before the third cluster, END_OF_FRAGMENT) and then restarts with a new document that
/// re-sends the last GOP.
#[test]
#[allow(clippy::print_stderr)] // says why it was skipped
fn kvs_style_sample() {
    let Ok(data) = std::fs::read(samples_dir().join("kvs_style_h264.mkv")) else {
        eprintln!("skipped: samples/kvs_style_h264.mkv not present");
        return;
    };
    let (out, st) = run_sample(&data);
    let fr = fragments(&out);
    let producer: Vec<i64> = fr.iter().map(|f| f.producer_ms).collect();
    let base = 1_700_000_000_021;
    assert_eq!(producer, [base, base + 1000, base + 2000, base + 3000]);
    assert_eq!(
        fr[2].tags,
        [
            ("CAMERA_EVENT".to_owned(), "motion".to_owned()),
            ("ZONE".to_owned(), "door".to_owned())
        ]
    );
    let dups: Vec<String> = out
        .iter()
        .filter(|o| matches!(o, Output::Duplicate { .. }))
        .map(render)
        .collect();
    assert_eq!(
        dups,
        [format!(
            "DUPLICATE tc={} {}",
            base + 3000,
            num(fr[3].number)
        )]
    );
    assert_eq!((st.fragments, st.duplicates, st.errors), (4, 1, 0));
}
