//! Ingest benchmark: N simulated cameras push live MKV to a real `openkvs serve` over loopback
//! and we measure PERSISTED ack latency after each fragment's last byte, throughput, and the
//! server's CPU and RSS, next to the raw fdatasync write throughput of the same disk.
//!
//! ```sh
//! cargo build --release -p openkvs-server -p openkvs-bench
//! target/release/ingest_bench --server target/release/openkvs --cameras 10,100,500,1000 --seconds 20
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use openkvs_bench::camera::{self, CameraSpec};
use openkvs_bench::http::{self, Target};
use openkvs_bench::server::Server;
use openkvs_bench::{percentile, procstat};
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(about = "PutMedia load generator: N cameras at a bitrate with GOP-sized fragments")]
struct Args {
    /// The openkvs binary to start (a release build gives representative numbers).
    #[arg(long, default_value = "target/release/openkvs")]
    server: PathBuf,
    /// Comma-separated camera counts, one run each.
    #[arg(long, default_value = "10,100")]
    cameras: String,
    /// Seconds of pushing per run (after a staggered start).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Bits per second per camera.
    #[arg(long, default_value_t = 4_000_000)]
    bitrate: u64,
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// GOP in frames (50 at 25 fps = 2 s fragments).
    #[arg(long, default_value_t = 50)]
    gop: u32,
    /// Data directory parent (a temp dir under it is used and removed); must be on the disk to test.
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
}

#[derive(Debug, Default)]
struct Results {
    latencies_ms: Vec<f64>,
    persisted: u64,
    sent_fragments: u64,
    errors: u64,
    bytes: u64,
}

/// Raw `write + fdatasync` throughput of 1 MiB blocks (the fragment size at 4 Mbps / 2 s GOP).
fn fdatasync_mb_s(dir: &std::path::Path) -> anyhow::Result<f64> {
    let path = dir.join("fdatasync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let mbs = n as f64 / start.elapsed().as_secs_f64() * 1.048_576;
    std::fs::remove_file(&path)?;
    Ok(mbs)
}

async fn camera_task(
    t: Target,
    stream: String,
    spec: CameraSpec,
    until: Instant,
    res: Arc<Mutex<Results>>,
) {
    let (mut body, mut acks) = match http::put_media(&t, &stream).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{stream}: {e:#}");
            res.lock().await.errors += 1;
            return;
        }
    };
    // Fragment timecode -> instant its last byte was written.
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
    let sent2 = sent.clone();
    let res2 = res.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(a)) = acks.next().await {
            match a["EventType"].as_str() {
                Some("PERSISTED") => {
                    let tc = a["FragmentTimecode"].as_u64().unwrap_or(0);
                    let t0 = sent2.lock().expect("mutex").remove(&tc);
                    let mut r = res2.lock().await;
                    r.persisted += 1;
                    if let Some(t0) = t0 {
                        r.latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                Some("ERROR") => res2.lock().await.errors += 1,
                _ => {}
            }
        }
    });
    let sizes = camera::frame_sizes(spec);
    let payload = vec![0x42u8; *sizes.iter().max().unwrap_or(&1)];
    let frame_dur = Duration::from_secs_f64(1.0 / f64::from(spec.fps));
    let mut next = tokio::time::Instant::now();
    let mut bytes = 0u64;
    let mut fragments = 0u64;
    let ok = body.chunk(&camera::header()).await.is_ok();
    let epoch_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    'outer: while ok && Instant::now() < until {
        let tc = epoch_ms();
        if body.chunk(&camera::cluster_start(tc)).await.is_err() {
            break;
        }
        for (i, size) in sizes.iter().enumerate() {
            tokio::time::sleep_until(next).await;
            next += frame_dur;
            let rel = i16::try_from(i as u64 * 1000 / u64::from(spec.fps)).unwrap_or(i16::MAX);
            let f = camera::frame(rel, i == 0, &payload[..*size]);
            bytes += f.len() as u64;
            if body.chunk(&f).await.is_err() {
                break 'outer;
            }
        }
        if body.chunk(&camera::end_of_fragment()).await.is_err() {
            break;
        }
        sent.lock().expect("mutex").insert(tc, Instant::now());
        fragments += 1;
    }
    // Give the last acks a moment, then end the body.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = body.finish().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let mut r = res.lock().await;
    r.bytes += bytes;
    r.sent_fragments += fragments;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    std::fs::create_dir_all(&a.data)?;
    let spec = CameraSpec {
        bitrate: a.bitrate,
        fps: a.fps,
        gop: a.gop,
    };
    let disk = fdatasync_mb_s(&a.data)?;
    println!("raw write+fdatasync of 1 MiB blocks on this disk: {disk:.0} MB/s");
    println!(
        "\n| cameras | offered MB/s | stored MB/s | fragments sent | PERSISTED | errors | p50 ms | p99 ms | max ms | server CPU % | server RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in a.cameras.split(',').map(|s| s.trim().parse::<usize>()) {
        let n = n?;
        let server = Server::start(&a.server, &a.data)?;
        let t = server.target();
        for i in 0..n {
            let (status, body) = http::json_call(
                &t,
                "/createStream",
                &serde_json::json!({"StreamName": format!("cam-{i}"), "DataRetentionInHours": 1}),
            )
            .await?;
            anyhow::ensure!(status == 200, "createStream: {status} {body}");
        }
        let pid = server.pid();
        let res = Arc::new(Mutex::new(Results::default()));
        let start = Instant::now();
        let until = start + Duration::from_secs(a.seconds);
        let cpu0 = procstat::cpu_seconds(pid).unwrap_or(0.0);
        let mut tasks = Vec::new();
        // Stagger starts over one GOP so fragments do not all end at the same instant.
        let gop = Duration::from_secs_f64(f64::from(a.gop) / f64::from(a.fps));
        for i in 0..n {
            let (t, res) = (t.clone(), res.clone());
            let delay = gop.mul_f64(i as f64 / n as f64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                camera_task(t, format!("cam-{i}"), spec, until, res).await;
            }));
        }
        let mut rss_max: f64 = 0.0;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_max = rss_max.max(procstat::rss_mib(pid).unwrap_or(0.0));
        }
        let cpu1 = procstat::cpu_seconds(pid).unwrap_or(0.0);
        let wall = start.elapsed().as_secs_f64();
        for t in tasks {
            let _ = t.await;
        }
        let r = res.lock().await;
        let mut lat = r.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let offered = n as f64 * a.bitrate as f64 / 8e6;
        println!(
            "| {n} | {offered:.0} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            r.bytes as f64 / wall / 1e6,
            r.sent_fragments,
            r.persisted,
            r.errors,
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            lat.last().copied().unwrap_or(f64::NAN),
            (cpu1 - cpu0) / wall * 100.0,
            rss_max,
        );
        drop(server);
    }
    Ok(())
}
