//! GetClip benchmark: a long archive is ingested into a real `openkvs serve`, then exported
//! whole with GetClip over loopback, next to two references on the same bytes in the same run:
//! `ffmpeg -i archive.mkv -c copy -movflags +faststart` (a streamable MP4 needs its moov first,
//! so that is the fair peer) and a plain sendfile transfer of the archive over loopback (the
//! ceiling).
//!
//! ```sh
//! cargo build --release -p openkvs-server -p openkvs-bench
//! target/release/clip_bench --server target/release/openkvs --seconds 3600
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use mkv::{Block, EbmlHeader, Info, SizeMode, TrackEntry, TrackKind, Writer};
use openkvs_bench::http::{self, Target};
use openkvs_bench::procstat;
use tokio::io::AsyncReadExt as _;

#[derive(Debug, Parser)]
#[command(about = "GetClip of a long archive vs ffmpeg remux and a sendfile transfer")]
struct Args {
    /// The openkvs binary to start.
    #[arg(long, default_value = "target/release/openkvs")]
    server: PathBuf,
    /// Archive length in seconds (3600 = the 1 h of the goal).
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
    /// Video bits per second.
    #[arg(long, default_value_t = 4_000_000)]
    bitrate: u64,
    /// Work directory (the archive, the server's data dir, outputs); removed at the end.
    #[arg(long, default_value = "target/clip-bench")]
    dir: PathBuf,
}

/// avcC of a real 1280x720 High-profile stream (SPS/PPS), so ffmpeg accepts the track.
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
];
/// AAC-LC 48 kHz stereo AudioSpecificConfig.
const ASC: &[u8] = &[0x11, 0x90];

/// Writes the archive: one cluster per 2 s GOP at 25 fps, video + 128 kbps AAC, epoch-ms
/// timecodes starting `start_ms`. Returns (path, bytes).
fn write_archive(path: &Path, seconds: u64, bitrate: u64, start_ms: u64) -> anyhow::Result<u64> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader {
        doc_type_version: 4,
        doc_type_read_version: 2,
        ..EbmlHeader::default()
    });
    w.begin_segment(SizeMode::Unknown);
    w.info(&Info::default());
    w.tracks(&[
        TrackEntry {
            number: 1,
            uid: 1,
            kind: TrackKind::Video,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Some(AVCC.to_vec()),
            video: Some(mkv::Video {
                pixel_width: 1280,
                pixel_height: 720,
            }),
            ..TrackEntry::default()
        },
        TrackEntry {
            number: 2,
            uid: 2,
            kind: TrackKind::Audio,
            codec_id: "A_AAC".into(),
            codec_private: Some(ASC.to_vec()),
            audio: Some(mkv::Audio {
                sampling_frequency: 48_000.0,
                channels: 2,
                bit_depth: None,
            }),
            ..TrackEntry::default()
        },
    ]);
    f.write_all(&w.take())?;
    let fps = 25u64;
    let gop = 50u64;
    let frame_bytes = (bitrate / 8 / fps) as usize;
    // A length-prefixed NAL (AVCC, 4-byte length) of the frame's size: type 5 (IDR) or 1.
    let mk = |idr: bool| {
        let mut v = vec![0x5au8; frame_bytes];
        let len = (frame_bytes - 4) as u32;
        v[..4].copy_from_slice(&len.to_be_bytes());
        v[4] = if idr { 0x65 } else { 0x41 };
        v
    };
    let (idr, non) = (mk(true), mk(false));
    let aac = vec![0x21u8; 341]; // ~128 kbps at 46.875 frames/s
    let mut total = 0u64;
    for g in 0..seconds * fps / gop {
        let tc = start_ms + g * gop * 1000 / fps;
        let mut blocks = Vec::new();
        let mut a = 0u64;
        for i in 0..gop {
            let t = i * 1000 / fps;
            while a * 1024 * 1000 / 48_000 <= t {
                blocks.push(Block::simple(
                    2,
                    i16::try_from(a * 1024 * 1000 / 48_000).unwrap_or(0),
                    true,
                    &aac,
                ));
                a += 1;
            }
            blocks.push(Block::simple(
                1,
                i16::try_from(t).unwrap_or(0),
                i == 0,
                if i == 0 { &idr } else { &non },
            ));
        }
        let mut w = Writer::new();
        w.cluster(tc, &blocks)?;
        let bytes = w.take();
        total += bytes.len() as u64;
        f.write_all(&bytes)?;
    }
    f.flush()?;
    Ok(total)
}

async fn push(t: &Target, stream: &str, path: &Path) -> anyhow::Result<()> {
    let (mut body, mut acks) = http::put_media(t, stream).await?;
    let reader = tokio::spawn(async move {
        let mut persisted = 0u64;
        while let Ok(Some(a)) = acks.next().await {
            if a["EventType"] == "PERSISTED" {
                persisted += 1;
            }
        }
        persisted
    });
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.chunk(&buf[..n]).await?;
    }
    body.chunk(&openkvs_bench::camera::end_of_fragment())
        .await?;
    body.finish().await?;
    let persisted = reader.await?;
    eprintln!("ingested: {persisted} fragments PERSISTED");
    Ok(())
}

/// POST /getClip; returns (time to first byte, total time, bytes).
async fn get_clip(
    t: &Target,
    stream: &str,
    start_ms: u64,
    end_ms: u64,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let body = serde_json::json!({
        "StreamName": stream,
        "ClipFragmentSelector": {
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": start_ms as f64 / 1000.0, "EndTimestamp": end_ms as f64 / 1000.0}
        }
    });
    let start = Instant::now();
    let (mut r, status, len) = http::json_call_stream(t, "/getClip", &body).await?;
    if status != 200 {
        let mut text = String::new();
        let _ = (&mut r)
            .take(len.min(65_536))
            .read_to_string(&mut text)
            .await;
        anyhow::bail!("GetClip answered {status}: {text}");
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let mut ttfb = None;
    while got < len {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        ttfb.get_or_insert_with(|| start.elapsed());
        got += n as u64;
    }
    Ok((ttfb.unwrap_or_default(), start.elapsed(), got))
}

/// Serves `path` once over loopback with `std::io::copy` (sendfile on Linux) and reads it.
async fn sendfile_transfer(path: &Path) -> anyhow::Result<(Duration, u64)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let p = path.to_owned();
    let server = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut f = std::fs::File::open(p)?;
        std::io::copy(&mut f, &mut s)
    });
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let _ = server.join();
    Ok((start.elapsed(), got))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let archive = a.dir.join("archive.mkv");
    let start_ms = 1_700_000_000_000u64;
    let t0 = Instant::now();
    let bytes = write_archive(&archive, a.seconds, a.bitrate, start_ms)?;
    eprintln!(
        "archive: {:.2} GB in {:.1}s",
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    // Page cache warm for every contender: read it once.
    let _ = std::fs::read(&archive)?.len();

    // openkvs
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data = a.dir.join("data");
    let mut child = std::process::Command::new(&a.server)
        .args([
            "serve",
            "--no-turn",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("OPENKVS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("OPENKVS_SECRET_ACCESS_KEY", "bench-secret")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let addr = format!("127.0.0.1:{port}");
    while std::net::TcpStream::connect(&addr).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Target {
        addr,
        akid: "AKIDBENCH".into(),
        secret: "bench-secret".into(),
    };
    let (s, b) = http::json_call(
        &t,
        "/createStream",
        &serde_json::json!({"StreamName": "archive", "DataRetentionInHours": 24}),
    )
    .await?;
    anyhow::ensure!(s == 200, "createStream {s} {b}");
    let t1 = Instant::now();
    push(&t, "archive", &archive).await?;
    eprintln!("ingest took {:.1}s", t1.elapsed().as_secs_f64());
    let pid = child.id();
    let rss0 = procstat::rss_mib(pid).unwrap_or(0.0);
    let end_ms = start_ms + a.seconds * 1000;
    let (ttfb, clip_time, clip_bytes) = get_clip(&t, "archive", start_ms, end_ms).await?;
    let rss1 = procstat::rss_mib(pid).unwrap_or(0.0);
    // Time to first byte alone, on a warm server.
    let (ttfb2, _, _) = get_clip(&t, "archive", start_ms, end_ms).await?;
    let _ = child.kill();
    let _ = child.wait();

    // ffmpeg remux to a streamable MP4
    let out = a.dir.join("ffmpeg.mp4");
    let t2 = Instant::now();
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&archive)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .status();
    let ffmpeg_time = t2.elapsed();
    let ffmpeg_ok = st.as_ref().is_ok_and(|s| s.success());
    let (sf_time, sf_bytes) = sendfile_transfer(&archive).await?;

    let mbs = |b: u64, d: Duration| b as f64 / d.as_secs_f64() / 1e6;
    println!(
        "\narchive: {} s, {:.2} GB, 1280x720 H.264 {} kbps + AAC, 2 s GOPs\n",
        a.seconds,
        bytes as f64 / 1e9,
        a.bitrate / 1000
    );
    println!("| contender | time s | MB/s | notes |");
    println!("|---|---:|---:|---|");
    println!(
        "| openkvs GetClip over loopback | {:.2} | {:.0} | TTFB {:.1} ms (warm {:.1} ms); server RSS {:.0} → {:.0} MiB |",
        clip_time.as_secs_f64(),
        mbs(clip_bytes, clip_time),
        ttfb.as_secs_f64() * 1000.0,
        ttfb2.as_secs_f64() * 1000.0,
        rss0,
        rss1
    );
    if ffmpeg_ok {
        println!(
            "| ffmpeg -c copy -movflags +faststart | {:.2} | {:.0} | to a local file |",
            ffmpeg_time.as_secs_f64(),
            mbs(bytes, ffmpeg_time)
        );
    } else {
        println!("| ffmpeg -c copy -movflags +faststart | failed | | {st:?} |");
    }
    println!(
        "| sendfile of the archive over loopback | {:.2} | {:.0} | ceiling |",
        sf_time.as_secs_f64(),
        mbs(sf_bytes, sf_time)
    );
    println!(
        "\nGetClip vs ffmpeg: {:.1}x faster; GetClip / sendfile rate: {:.0} %",
        ffmpeg_time.as_secs_f64() / clip_time.as_secs_f64(),
        mbs(clip_bytes, clip_time) / mbs(sf_bytes, sf_time) * 100.0
    );
    let _ = std::fs::remove_dir_all(&a.dir);
    Ok(())
}
