//! Golden dumps of real producer files in `samples/` (see `samples/README.md`).
//!
//! Each `samples/<name>.mkv` has `samples/<name>.events.txt`: one line per event in the
//! `Display` format of `Event` (payloads as length + CRC-32). Brittle on purpose: a change in
//! what the parser reports must show up as a reviewed diff. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p openkvs-mkv`.

use std::path::PathBuf;

use openkvs_mkv::ParserBuilder;

use super::{kvs_style, parse_chunks};

pub(crate) const SAMPLES: &[&str] = &[
    "ffmpeg_h264_aac",
    "ffmpeg_h265",
    "ffmpeg_live_h264",
    "gstreamer_h264",
    "mkvmerge_h264",
    "kvs_style_h264",
    "ffmpeg_h264_opus",
];

pub(crate) fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

pub(crate) fn read_sample(name: &str) -> Vec<u8> {
    let path = samples_dir().join(format!("{name}.mkv"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0")
}

#[test]
fn golden_event_dumps() {
    let mut failed = Vec::new();
    for name in SAMPLES {
        let data = read_sample(name);
        assert!(data.len() < 1 << 20, "{name} is over 1 MB");
        // 1400 bytes: about one TCP segment, so elements are split everywhere.
        let (events, err) = parse_chunks(&data, 1400, ParserBuilder::default());
        if let Some(e) = err {
            panic!("{name}: {e}");
        }
        let mut dump: String = events.iter().map(|e| format!("{e}\n")).collect();
        dump.insert_str(
            0,
            &format!(
                "# {name}.mkv: {} bytes, {} events\n",
                data.len(),
                events.len()
            ),
        );
        let path = samples_dir().join(format!("{name}.events.txt"));
        if update() {
            std::fs::write(&path, &dump).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        if want != dump {
            let line = want
                .lines()
                .zip(dump.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(dump.lines().count()));
            failed.push(format!(
                "{name}: first difference at line {}:\n  want: {}\n  got:  {}",
                line + 1,
                want.lines().nth(line).unwrap_or("<eof>"),
                dump.lines().nth(line).unwrap_or("<eof>")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "golden dumps differ (UPDATE_GOLDEN=1 to accept):\n{}",
        failed.join("\n")
    );
}

/// The committed KVS-style sample is exactly what our Writer makes from the ffmpeg sample:
/// a byte-level golden test of the writer.
#[test]
fn golden_kvs_style_writer_output() {
    let made = kvs_style::convert(&read_sample("ffmpeg_h264_aac")).unwrap();
    let path = samples_dir().join("kvs_style_h264.mkv");
    if update() {
        std::fs::write(&path, &made).unwrap();
        return;
    }
    let committed = read_sample("kvs_style_h264");
    assert!(
        made == committed,
        "writer output changed ({} vs {} bytes, crc {:08x} vs {:08x}); UPDATE_GOLDEN=1 to accept",
        made.len(),
        committed.len(),
        openkvs_mkv::crc32(&made),
        openkvs_mkv::crc32(&committed)
    );
}
