//! GetClip benchmark: a long archive is ingested into a real `openkvs serve`, then exported
//! whole with GetClip over loopback, next to two references on the same bytes in the same run:
//! `ffmpeg -i archive.mkv -c copy -movflags +faststart` (a streamable MP4 needs its moov first,
//! so that is the fair peer) and a plain sendfile transfer of the archive over loopback (the
//! ceiling). Then HLS: the ON_DEMAND media playlist of a 24 h archive (5,000 fragments listed)
//! fetched repeatedly, and how long a fragment takes from its PERSISTED ack to its first
//! appearance in a LIVE media playlist polled in a tight loop.
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
use openkvs_bench::server::Server;
use openkvs_bench::{percentile, procstat};
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
    /// Hours of the small-fragment archive behind the HLS playlist measurement (2 s fragments);
    /// 0 skips the HLS measurements.
    #[arg(long, default_value_t = 24)]
    day_hours: u64,
    /// Media playlist GETs to time.
    #[arg(long, default_value_t = 300)]
    playlist_gets: usize,
    /// Live fragments to time from PERSISTED to the LIVE playlist (one every 500 ms).
    #[arg(long, default_value_t = 100)]
    live_fragments: usize,
}

/// avcC of a real 1280x720 High-profile stream (SPS/PPS), so ffmpeg accepts the track.
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// AAC-LC 48 kHz stereo AudioSpecificConfig.
const ASC: &[u8] = &[0x11, 0x90];

/// What an archive looks like: `fps` video frames of `frame_bytes` per second, a key frame
/// every `gop` frames, one cluster per GOP, optional 128 kbps AAC.
#[derive(Debug, Clone, Copy)]
struct Spec {
    fps: u64,
    gop: u64,
    frame_bytes: usize,
    audio: bool,
}

fn header(spec: Spec) -> Vec<u8> {
    let mut w = Writer::new();
    w.ebml_header(&EbmlHeader {
        doc_type_version: 4,
        doc_type_read_version: 2,
        ..EbmlHeader::default()
    });
    w.begin_segment(SizeMode::Unknown);
    w.info(&Info::default());
    let mut tracks = vec![TrackEntry {
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
    }];
    if spec.audio {
        tracks.push(TrackEntry {
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
        });
    }
    w.tracks(&tracks);
    w.take()
}

/// One GOP as a cluster at `tc` (epoch ms).
fn gop_cluster(spec: Spec, tc: u64) -> anyhow::Result<Vec<u8>> {
    // A length-prefixed NAL (AVCC, 4-byte length) of the frame's size: type 5 (IDR) or 1.
    let mk = |idr: bool| {
        let mut v = vec![0x5au8; spec.frame_bytes.max(5)];
        let len = (v.len() - 4) as u32;
        v[..4].copy_from_slice(&len.to_be_bytes());
        v[4] = if idr { 0x65 } else { 0x41 };
        v
    };
    let (idr, non) = (mk(true), mk(false));
    let aac = vec![0x21u8; 341]; // ~128 kbps at 46.875 frames/s
    let mut blocks = Vec::new();
    let mut a = 0u64;
    for i in 0..spec.gop {
        let t = i * 1000 / spec.fps;
        while spec.audio && a * 1024 * 1000 / 48_000 <= t {
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
    Ok(w.take())
}

/// Writes `seconds` of `spec` with epoch-ms timecodes from `start_ms`; returns its bytes.
fn write_archive(path: &Path, seconds: u64, spec: Spec, start_ms: u64) -> anyhow::Result<u64> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let head = header(spec);
    f.write_all(&head)?;
    let mut total = head.len() as u64;
    for g in 0..seconds * spec.fps / spec.gop {
        let bytes = gop_cluster(spec, start_ms + g * spec.gop * 1000 / spec.fps)?;
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

/// Times `gets` GETs of the ON_DEMAND media playlist of `stream` over [start, end] (producer
/// timestamps) with 5,000 fragments per playlist; returns (fragments listed, sorted ms).
async fn playlist_latency(
    t: &Target,
    stream: &str,
    start_ms: u64,
    end_ms: u64,
    gets: usize,
) -> anyhow::Result<(usize, Vec<f64>)> {
    let (status, body) = http::json_call(
        t,
        "/getHLSStreamingSessionURL",
        &serde_json::json!({
            "StreamName": stream,
            "PlaybackMode": "ON_DEMAND",
            "MaxMediaPlaylistFragmentResults": 5000,
            "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start_ms as f64 / 1000.0,
                                   "EndTimestamp": end_ms as f64 / 1000.0}
            }
        }),
    )
    .await?;
    anyhow::ensure!(status == 200, "GetHLSStreamingSessionURL {status}: {body}");
    let path = media_playlist_path(&body)?;
    let mut conn = http::GetConn::connect(&t.addr).await?;
    let (status, text) = conn.get(&path).await?;
    anyhow::ensure!(status == 200, "media playlist {status}");
    let listed = String::from_utf8_lossy(&text).matches("#EXTINF").count();
    let mut ms = Vec::with_capacity(gets);
    for _ in 0..gets {
        let t0 = Instant::now();
        let (status, _) = conn.get(&path).await?;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status == 200, "media playlist {status}");
    }
    ms.sort_by(f64::total_cmp);
    Ok((listed, ms))
}

/// `/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken=…` from a GetHLSStreamingSessionURL answer.
fn media_playlist_path(answer: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(answer)?;
    let url = v["HLSStreamingSessionURL"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no HLSStreamingSessionURL in {answer}"))?;
    let query = url
        .split_once('?')
        .map(|(_, q)| q)
        .ok_or_else(|| anyhow::anyhow!("no query in {url}"))?;
    Ok(format!("/hls/v1/getHLSMediaPlaylist.m3u8?{query}"))
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Pushes `n` small fragments live (one every 500 ms, each closed by END_OF_FRAGMENT) while
/// a LIVE media playlist is polled in a tight loop; returns the sorted delays (ms) from each
/// fragment's PERSISTED ack to its first appearance in the playlist (negative: the playlist
/// showed it before the ack reached the producer).
async fn live_visibility(t: &Target, stream: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let spec = Spec {
        fps: 4,
        gop: 2,
        frame_bytes: 2_000,
        audio: false,
    };
    let (mut body, mut acks) = http::put_media(t, stream).await?;
    let persisted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let p2 = Arc::clone(&persisted);
    let reader = tokio::spawn(async move {
        while let Ok(Some(a)) = acks.next().await {
            if a["EventType"] == "PERSISTED"
                && let Some(num) = a["FragmentNumber"].as_str()
            {
                p2.lock()
                    .expect("mutex")
                    .insert(num.to_owned(), Instant::now());
            }
        }
    });
    body.chunk(&header(spec)).await?;
    // LIVE needs a recent fragment before the session can start.
    send_live_fragment(&mut body, spec).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, answer) = http::json_call(
        t,
        "/getHLSStreamingSessionURL",
        &serde_json::json!({"StreamName": stream, "PlaybackMode": "LIVE"}),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "GetHLSStreamingSessionURL {status}: {answer}"
    );
    let path = media_playlist_path(&answer)?;
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let addr = t.addr.clone();
    let poll_start = Instant::now();
    let poller = tokio::spawn(async move {
        let mut conn = http::GetConn::connect(&addr).await?;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let (status, text) = conn.get(&path).await?;
            let now = Instant::now();
            anyhow::ensure!(status == 200, "LIVE playlist {status}");
            let text = String::from_utf8_lossy(&text);
            let mut s = s2.lock().expect("mutex");
            for num in text.split("FragmentNumber=").skip(1) {
                let num: String = num.chars().take_while(char::is_ascii_digit).collect();
                s.entry(num).or_insert(now);
            }
        }
        anyhow::Ok(())
    });
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send_live_fragment(&mut body, spec).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.await??;
    body.finish().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let persisted = persisted.lock().expect("mutex");
    let seen = seen.lock().expect("mutex");
    let mut delays: Vec<f64> = persisted
        .iter()
        .filter(|(_, acked)| **acked > poll_start)
        .filter_map(|(num, acked)| {
            let shown = seen.get(num)?;
            Some(if shown >= acked {
                shown.duration_since(*acked).as_secs_f64() * 1000.0
            } else {
                -(acked.duration_since(*shown).as_secs_f64() * 1000.0)
            })
        })
        .collect();
    anyhow::ensure!(
        delays.len() + 1 >= n,
        "only {} of {n} live fragments were seen in the LIVE playlist",
        delays.len()
    );
    delays.sort_by(f64::total_cmp);
    Ok(delays)
}

/// One live fragment stamped now, closed at once with END_OF_FRAGMENT.
async fn send_live_fragment(body: &mut http::BodyWriter, spec: Spec) -> anyhow::Result<()> {
    body.chunk(&gop_cluster(spec, epoch_ms())?).await?;
    body.chunk(&openkvs_bench::camera::end_of_fragment())
        .await?;
    Ok(())
}

/// Samples the RSS of `pid` every 20 ms until dropped; `max()` is the peak so far.
struct RssPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p = std::sync::Arc::clone(&peak);
        let task = tokio::spawn(async move {
            loop {
                let kib = (procstat::rss_mib(pid).unwrap_or(0.0) * 1024.0) as u64;
                p.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RssPeak { peak, task }
    }

    fn max_mib(&self) -> f64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let archive = a.dir.join("archive.mkv");
    let start_ms = 1_700_000_000_000u64;
    let t0 = Instant::now();
    let spec = Spec {
        fps: 25,
        gop: 50,
        frame_bytes: (a.bitrate / 8 / 25) as usize,
        audio: true,
    };
    let bytes = write_archive(&archive, a.seconds, spec, start_ms)?;
    eprintln!(
        "archive: {:.2} GB in {:.1}s",
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    // Page cache warm for every contender: read it once.
    let _ = std::fs::read(&archive)?.len();

    let server = Server::start(&a.server, &a.dir)?;
    let t = server.target();
    for name in ["archive", "day", "live"] {
        let (s, b) = http::json_call(
            &t,
            "/createStream",
            &serde_json::json!({"StreamName": name, "DataRetentionInHours": 24 * 400}),
        )
        .await?;
        anyhow::ensure!(s == 200, "createStream {s} {b}");
    }
    let t1 = Instant::now();
    push(&t, "archive", &archive).await?;
    eprintln!("ingest took {:.1}s", t1.elapsed().as_secs_f64());
    let pid = server.pid();
    let rss0 = procstat::rss_mib(pid).unwrap_or(0.0);
    let end_ms = start_ms + a.seconds * 1000;
    let sampler = RssPeak::start(pid);
    let (ttfb, clip_time, clip_bytes) = get_clip(&t, "archive", start_ms, end_ms).await?;
    let rss_peak = sampler.max_mib();
    drop(sampler);
    // Time to first byte alone, on a warm server.
    let (ttfb2, _, _) = get_clip(&t, "archive", start_ms, end_ms).await?;

    // HLS: a day of 2 s fragments, then the ON_DEMAND playlist of its first 5,000.
    let hls = if a.day_hours > 0 {
        let day = a.dir.join("day.mkv");
        let day_spec = Spec {
            fps: 1,
            gop: 2,
            frame_bytes: 200,
            audio: false,
        };
        write_archive(&day, a.day_hours * 3600, day_spec, start_ms)?;
        let t3 = Instant::now();
        push(&t, "day", &day).await?;
        eprintln!("day archive ingest took {:.1}s", t3.elapsed().as_secs_f64());
        let day_end = start_ms + a.day_hours * 3_600_000;
        let (listed, pl) = playlist_latency(&t, "day", start_ms, day_end, a.playlist_gets).await?;
        let live = live_visibility(&t, "live", a.live_fragments).await?;
        Some((listed, pl, live))
    } else {
        None
    };
    drop(server);

    // ffmpeg remux to a streamable MP4
    let out = a.dir.join("ffmpeg.mp4");
    let t2 = Instant::now();
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&archive)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .stderr(std::process::Stdio::null())
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
        "| openkvs GetClip over loopback | {:.2} | {:.0} | TTFB {:.1} ms (warm {:.1} ms); server RSS {:.0} MiB before, peak {:.0} MiB during |",
        clip_time.as_secs_f64(),
        mbs(clip_bytes, clip_time),
        ttfb.as_secs_f64() * 1000.0,
        ttfb2.as_secs_f64() * 1000.0,
        rss0,
        rss_peak
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
        "\nGetClip vs ffmpeg: {:.1}x faster; GetClip / sendfile rate: {:.0} %; clip {:.0} MB",
        ffmpeg_time.as_secs_f64() / clip_time.as_secs_f64(),
        mbs(clip_bytes, clip_time) / mbs(sf_bytes, sf_time) * 100.0,
        clip_bytes as f64 / 1e6
    );
    if let Some((listed, pl, live)) = hls {
        println!("\n| HLS | n | p50 ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| ON_DEMAND media playlist, {listed} fragments listed, {} h archive | {} | {:.2} | {:.2} | {:.2} |",
            a.day_hours,
            pl.len(),
            percentile(&pl, 50.0),
            percentile(&pl, 99.0),
            pl.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "| PERSISTED ack → first seen in the LIVE playlist | {} | {:.2} | {:.2} | {:.2} |",
            live.len(),
            percentile(&live, 50.0),
            percentile(&live, 99.0),
            live.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = std::fs::remove_dir_all(&a.dir);
    Ok(())
}
