//! Golden test on a real ffmpeg capture, cross-checked with ffprobe/ffmpeg, and property tests
//! over arbitrary sample sequences. Both read the output back with the small demuxer below.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use openkvs_ts::{Muxer, PACKET_SIZE, SYNC_BYTE, Sample, StreamConfig};
use proptest::prelude::*;

/// One PES as read back from the packets.
#[derive(Debug)]
struct Pes {
    pid: u16,
    first_packet: usize,
    packets: usize,
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    random_access: bool,
    pcr: Option<u64>,
    /// Elementary-stream bytes after the PES header.
    es: Vec<u8>,
}

/// Reads the packets: checks sync bytes, sizes and per-PID continuity counters; returns the
/// PES packets and the indexes of PAT/PMT packets.
fn demux(ts: &[u8]) -> (Vec<Pes>, Vec<(usize, u16)>) {
    assert_eq!(ts.len() % PACKET_SIZE, 0, "not whole packets");
    let mut pes: Vec<Pes> = Vec::new();
    let mut open: HashMap<u16, usize> = HashMap::new();
    let mut cc: HashMap<u16, u8> = HashMap::new();
    let mut psi = Vec::new();
    for (i, p) in ts.chunks(PACKET_SIZE).enumerate() {
        assert_eq!(p[0], SYNC_BYTE, "packet {i}");
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let afc = p[3] >> 4;
        assert!(
            afc & 0b01 != 0,
            "packet {i}: every packet here carries payload"
        );
        let c = p[3] & 0x0F;
        if let Some(prev) = cc.insert(pid, c) {
            assert_eq!(
                c,
                (prev + 1) & 0x0F,
                "packet {i}: continuity counter of pid {pid:#x}"
            );
        }
        let mut pos = 4;
        let (mut random_access, mut pcr) = (false, None);
        if afc & 0b10 != 0 {
            let len = usize::from(p[4]);
            assert!(len <= 183, "packet {i}");
            if len > 0 {
                random_access = p[5] & 0x40 != 0;
                if p[5] & 0x10 != 0 {
                    let b = &p[6..12];
                    pcr = Some(
                        (u64::from(b[0]) << 25)
                            | (u64::from(b[1]) << 17)
                            | (u64::from(b[2]) << 9)
                            | (u64::from(b[3]) << 1)
                            | u64::from(b[4] >> 7),
                    );
                }
                assert!(
                    p[6 + if pcr.is_some() { 6 } else { 0 }..5 + len]
                        .iter()
                        .all(|&b| b == 0xFF),
                    "packet {i}: stuffing"
                );
            }
            pos += 1 + len;
        }
        let payload = &p[pos..];
        if pid == 0 || pid == openkvs_ts::PMT_PID {
            assert!(pusi);
            psi.push((i, pid));
            continue;
        }
        if pusi {
            assert_eq!(&payload[..3], &[0, 0, 1], "packet {i}: PES start code");
            let hlen = usize::from(payload[8]);
            let flags = payload[7] >> 6;
            let ts_at = |o: usize| {
                let b = &payload[o..o + 5];
                (u64::from(b[0] >> 1 & 0x07) << 30)
                    | (u64::from(b[1]) << 22)
                    | (u64::from(b[2] >> 1) << 15)
                    | (u64::from(b[3]) << 7)
                    | u64::from(b[4] >> 1)
            };
            let pts = ts_at(9);
            let dts = (flags == 0b11).then(|| ts_at(14));
            open.insert(pid, pes.len());
            pes.push(Pes {
                pid,
                first_packet: i,
                packets: 1,
                stream_id: payload[3],
                pts,
                dts,
                random_access,
                pcr,
                es: payload[9 + hlen..].to_vec(),
            });
        } else {
            let k = *open.get(&pid).expect("continuation without PES start");
            pes[k].packets += 1;
            pes[k].es.extend_from_slice(payload);
            assert!(pcr.is_none(), "packet {i}: PCR only on PES starts here");
        }
    }
    (pes, psi)
}

/// Readable dump: PSI packets and one line per PES.
fn dump(ts: &[u8]) -> String {
    let (pes, psi) = demux(ts);
    let mut s = format!(
        "{} bytes, {} packets, crc32 {:08x}\n",
        ts.len(),
        ts.len() / PACKET_SIZE,
        mkv::crc32(ts)
    );
    let mut psi = psi.into_iter().peekable();
    for p in &pes {
        while let Some((i, pid)) = psi.next_if(|(i, _)| *i < p.first_packet) {
            let _ = writeln!(s, "#{i} {}", if pid == 0 { "PAT" } else { "PMT" });
        }
        let _ = write!(
            s,
            "#{} pid={:#x} sid={:#x} pts={}",
            p.first_packet, p.pid, p.stream_id, p.pts
        );
        if let Some(d) = p.dts {
            let _ = write!(s, " dts={d}");
        }
        if let Some(pcr) = p.pcr {
            let _ = write!(s, " pcr={pcr}");
        }
        if p.random_access {
            s.push_str(" rai");
        }
        let _ = writeln!(
            s,
            " packets={} es={}B:{:08x}",
            p.packets,
            p.es.len(),
            mkv::crc32(&p.es)
        );
    }
    s
}

struct Input {
    configs: Vec<StreamConfig>,
    /// (track, pts_90k, dts_90k, sync, data) in DTS order.
    samples: Vec<(u64, i64, i64, bool, Vec<u8>)>,
    frames_per_track: HashMap<u64, usize>,
}

fn sample_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/ffmpeg_h264_aac.mkv")
}

/// Frames of the ffmpeg H.264+AAC sample. Matroska stores PTS only; DTS is the sorted PTS
/// sequence shifted by the largest reorder delay (what ffmpeg's demuxer reconstructs).
/// Everything is offset by 1 s so no timestamp is negative.
fn load_sample() -> Input {
    let data = std::fs::read(sample_path()).unwrap();
    let events = mkv::parse_all(&data, mkv::Parser::builder()).unwrap();
    let mut configs = Vec::new();
    let mut cluster_ms = 0i64;
    let mut frames: Vec<(u64, i64, bool, Vec<u8>)> = Vec::new();
    for ev in events {
        match ev {
            mkv::Event::Tracks { tracks, .. } => {
                for t in tracks {
                    let cpd = t.codec_private.as_deref().unwrap();
                    configs.push(match t.codec_id.as_str() {
                        "V_MPEG4/ISO/AVC" => StreamConfig::h264(t.number, cpd).unwrap(),
                        "A_AAC" => StreamConfig::aac(t.number, cpd).unwrap(),
                        other => panic!("unexpected codec {other}"),
                    });
                }
            }
            mkv::Event::ClusterStart { timecode, .. } => cluster_ms = timecode as i64,
            mkv::Event::Frame(f) => frames.push((
                f.track,
                cluster_ms + i64::from(f.timecode_rel),
                f.keyframe,
                f.payload,
            )),
            _ => {}
        }
    }
    let mut frames_per_track = HashMap::new();
    for f in &frames {
        *frames_per_track.entry(f.0).or_insert(0) += 1;
    }
    let video: Vec<i64> = frames.iter().filter(|f| f.0 == 1).map(|f| f.1).collect();
    let mut sorted = video.clone();
    sorted.sort_unstable();
    let delay = sorted
        .iter()
        .zip(&video)
        .map(|(s, p)| s - p)
        .max()
        .unwrap_or(0)
        .max(0);
    let mut vi = 0;
    let mut samples: Vec<(u64, i64, i64, bool, Vec<u8>)> = frames
        .into_iter()
        .map(|(track, pts_ms, key, data)| {
            let dts_ms = if track == 1 {
                vi += 1;
                sorted[vi - 1] - delay
            } else {
                pts_ms
            };
            (track, (pts_ms + 1000) * 90, (dts_ms + 1000) * 90, key, data)
        })
        .collect();
    samples.sort_by_key(|s| s.2);
    Input {
        configs,
        samples,
        frames_per_track,
    }
}

fn mux(input: &Input) -> Vec<u8> {
    let mut m = Muxer::new(&input.configs).unwrap();
    let mut out = Vec::new();
    m.segment_start(&mut out);
    for (track, pts_90k, dts_90k, sync, data) in &input.samples {
        let s = Sample {
            track: *track,
            pts_90k: *pts_90k,
            dts_90k: *dts_90k,
            sync: *sync,
            data,
        };
        m.write_sample(&s, &mut out).unwrap();
    }
    out
}

/// Brittle on purpose: any change of the output bytes shows here. Review the dump diff, then
/// regenerate with `UPDATE_GOLDEN=1 cargo test -p openkvs-ts`.
#[test]
fn golden_ffmpeg_h264_aac() {
    let input = load_sample();
    let ts = mux(&input);
    let got = dump(&ts);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ffmpeg_h264_aac.ts.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 creates it");
    assert!(
        got == want,
        "output differs from {}; UPDATE_GOLDEN=1 to accept",
        golden.display()
    );

    let (pes, _) = demux(&ts);
    for (track, pid) in [(1u64, 0x100u16), (2, 0x101)] {
        let n = pes.iter().filter(|p| p.pid == pid).count();
        assert_eq!(
            n, input.frames_per_track[&track],
            "PES count of track {track}"
        );
    }
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIP: {name} not found; install with apt-get install -y --no-install-recommends ffmpeg"
            );
        }
    }
    ok
}

fn run(cmd: &str, args: &[&str]) -> (String, String) {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn ffprobe_accepts_ffmpeg_h264_aac() {
    if !tool("ffprobe") || !tool("ffmpeg") {
        return;
    }
    let input = load_sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.ts");
    std::fs::write(&path, mux(&input)).unwrap();
    let p = path.to_str().unwrap();

    let (streams, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,nb_read_packets",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    // ffprobe lists each stream twice, under its program and at top level.
    let mut got: Vec<&str> = streams.lines().filter(|l| !l.is_empty()).collect();
    got.sort_unstable();
    got.dedup();
    let want_aac = format!("aac,{}", input.frames_per_track[&2]);
    let want_h264 = format!("h264,{}", input.frames_per_track[&1]);
    assert_eq!(got, [want_aac.as_str(), want_h264.as_str()]);

    let (first, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    assert!(
        first.trim_start().starts_with('K'),
        "first video packet flags {first:?}"
    );

    let (_, errors) = run(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-i", p, "-f", "null", "-"],
    );
    assert_eq!(errors, "", "ffmpeg decode errors");
}

/// (is_video, key, size, fill byte, DTS step, segment start before it)
type ArbSample = (bool, bool, usize, u8, i64, bool);

/// (with audio, PSI interval, samples)
fn arb_input() -> impl Strategy<Value = (bool, u32, Vec<ArbSample>)> {
    (
        any::<bool>(),
        prop_oneof![Just(0u32), 1u32..50],
        prop::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                0usize..2000,
                any::<u8>(),
                0i64..9000,
                prop::bool::weighted(0.05),
            ),
            1..120,
        ),
    )
}

const AVCC: &[u8] = &[
    1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE,
];

proptest! {
    /// Every packet is 188 bytes with sync byte 0x47, continuity counters increase by one mod
    /// 16 per PID (checked by `demux`), and every sample comes back as one PES with its bytes.
    #[test]
    fn packets_are_well_formed((with_audio, psi, samples) in arb_input()) {
        let mut configs = vec![StreamConfig::h264(1, AVCC).unwrap()];
        if with_audio {
            configs.push(StreamConfig::aac(2, &[0x11, 0x90]).unwrap());
        }
        let mut m = Muxer::new(&configs).unwrap().with_psi_interval(psi);
        let mut out = Vec::new();
        m.segment_start(&mut out);
        let mut dts = 90_000i64;
        let mut want: Vec<(u16, Vec<u8>)> = Vec::new();
        for (i, (is_video, key, size, fill, step, seg)) in samples.into_iter().enumerate() {
            if seg {
                m.segment_start(&mut out);
            }
            dts += step;
            let video = is_video || !with_audio;
            let data = if video {
                let mut d = (size as u32).to_be_bytes().to_vec();
                d.push(if key { 0x65 } else { 0x41 });
                d.resize(4 + size.max(1), fill);
                d[0..4].copy_from_slice(&(size.max(1) as u32).to_be_bytes());
                d
            } else {
                vec![fill; size]
            };
            let s = Sample { track: if video { 1 } else { 2 }, pts_90k: dts + 3600, dts_90k: dts, sync: key, data: &data };
            m.write_sample(&s, &mut out).unwrap();
            want.push((if video { 0x100 } else { 0x101 }, data));
            prop_assert!(out.len() % PACKET_SIZE == 0, "after sample {}", i);
        }
        prop_assert!(out.chunks(PACKET_SIZE).all(|p| p.len() == PACKET_SIZE && p[0] == SYNC_BYTE));
        let (pes, _) = demux(&out);
        prop_assert_eq!(pes.len(), want.len());
        for (p, (pid, data)) in pes.iter().zip(&want) {
            prop_assert_eq!(p.pid, *pid);
            if *pid == 0x101 {
                prop_assert_eq!(&p.es[7..], &data[..]);
            } else {
                // AUD, [SPS, PPS,] then the NAL unit with a start code.
                prop_assert!(p.es.ends_with(&data[4..]));
                prop_assert_eq!(&p.es[..6], &[0, 0, 0, 1, 0x09, 0xF0]);
            }
        }
    }
}

/// Found by the `ts_mux` fuzz target (RELIABILITY.md): extreme decode times overflowed the PCR
/// arithmetic (`dts - last_pcr_dts`, `dts - PCR_DELAY_90K`) and panicked in debug builds.
#[test]
fn extreme_timestamps_do_not_overflow() {
    let avcc = [
        1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE,
    ];
    let idr = [0, 0, 0, 2, 0x65, 0x88];
    for dts in [
        [0, i64::MIN],
        [i64::MIN, 0],
        [i64::MAX, i64::MIN],
        [i64::MIN, i64::MAX],
    ] {
        let mut mux = Muxer::new(&[StreamConfig::h264(1, &avcc).unwrap()]).unwrap();
        let mut out = Vec::new();
        mux.segment_start(&mut out);
        for (i, d) in dts.into_iter().enumerate() {
            let s = Sample {
                track: 1,
                pts_90k: d,
                dts_90k: d,
                sync: i == 0,
                data: &idr,
            };
            mux.write_sample(&s, &mut out).unwrap();
        }
        assert_eq!(out.len() % PACKET_SIZE, 0);
    }
}
