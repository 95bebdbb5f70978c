//! Group-commit throughput and `persist` latency of `LocalFragmentStore`.
//!
//! ```text
//! cargo run --release -p openkvs-store --example fragment_bench -- [--dir DIR] [--secs N] [--tasks 1,100,1000] [--interval-ms MS]
//! ```
//!
//! For each task count, N tasks persist 1 MB fragments (60 frames) for `--secs` seconds, in two
//! layouts: one stream per task (many cameras) and all tasks on one stream. Closed loop by
//! default (each task persists again as soon as the last one returned: saturation); with
//! `--interval-ms`, each task persists one fragment per interval, starting at a random offset
//! (cameras sending fragments of that length: latency at a given load).
//! Each run uses a fresh store in a temporary directory under `--dir` (default: the system temp
//! dir), deleted afterwards. Prints a Markdown table.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvs_core::FragmentNumber;
use openkvs_store::{FragmentStore, FrameEntry, LocalFragmentStore, NewFragment, TrackSet};

const FRAGMENT_BYTES: u32 = 1 << 20;
const FRAMES: u32 = 60;

struct Args {
    dir: std::path::PathBuf,
    secs: u64,
    tasks: Vec<usize>,
    interval: Option<Duration>,
}

fn args() -> Args {
    let mut a = Args {
        dir: std::env::temp_dir(),
        secs: 8,
        tasks: vec![1, 100, 1000],
        interval: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = value.into(),
            "--secs" => a.secs = value.parse().expect("--secs N"),
            "--tasks" => {
                a.tasks = value
                    .split(',')
                    .map(|t| t.parse().expect("--tasks 1,100,1000"))
                    .collect()
            }
            "--interval-ms" => {
                a.interval = Some(Duration::from_millis(
                    value.parse().expect("--interval-ms MS"),
                ))
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

fn frames() -> Vec<FrameEntry> {
    let size = FRAGMENT_BYTES / FRAMES;
    (0..FRAMES)
        .map(|i| FrameEntry {
            track: 1,
            keyframe: i == 0,
            pts: i64::from(i) * 33,
            duration: 33,
            offset: i * size,
            size: if i == FRAMES - 1 {
                FRAGMENT_BYTES - i * size
            } else {
                size
            },
        })
        .collect()
}

struct Run {
    fragments: usize,
    secs: f64,
    latencies: Vec<Duration>,
    batches: u64,
    files_synced: u64,
}

async fn run(
    dir: &std::path::Path,
    tasks: usize,
    one_stream: bool,
    secs: u64,
    interval: Option<Duration>,
) -> Run {
    let store = LocalFragmentStore::open(dir).unwrap();
    let streams = if one_stream { 1 } else { tasks };
    let mut ids = Vec::new();
    for s in 0..streams {
        let arn = format!("arn:aws:kinesisvideo:us-east-1:123456789012:stream/bench-{s}/1");
        let ts = store
            .track_set(
                &arn,
                &TrackSet {
                    timecode_scale_ns: 1_000_000,
                    tracks: vec![],
                },
            )
            .await
            .unwrap();
        ids.push((arn, ts));
    }
    // Incompressible payload, shared (Bytes clones are reference counts).
    let mut x = 0x1234_5678_9abc_def1u64;
    let media: Bytes = (0..FRAGMENT_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let frames = Arc::new(frames());
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (store, media, frames, next) =
                (store.clone(), media.clone(), frames.clone(), next.clone());
            let (arn, ts) = ids[if one_stream { 0 } else { t }].clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                // Open loop: spread the tasks' start times over one interval.
                let mut tick = interval.map(|i| start + i.mul_f64(t as f64 / tasks as f64));
                while Instant::now() < deadline {
                    if let (Some(at), Some(interval)) = (tick.as_mut(), interval) {
                        tokio::time::sleep_until((*at).into()).await;
                        *at += interval;
                    }
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let f = NewFragment {
                        stream_arn: arn.clone(),
                        number: FragmentNumber(u128::from(n)),
                        producer_ms: n as i64,
                        server_ms: n as i64,
                        duration_ms: 2000,
                        cluster_timecode: n,
                        tracks: Arc::new(TrackSet {
                            timecode_scale_ns: 1_000_000,
                            tracks: vec![],
                        }),
                        frames: frames.to_vec(),
                        tags: vec![],
                        media: media.clone(),
                    };
                    let t0 = Instant::now();
                    store.persist(f, ts).await.unwrap();
                    // Open loop: a stream's first fragment creates its directory and first
                    // segment file; report steady state.
                    if interval.is_none() || n > tasks as u64 {
                        latencies.push(t0.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = store.writer_stats();
    latencies.sort();
    Run {
        fragments: latencies.len(),
        secs,
        latencies,
        batches: stats.batches,
        files_synced: stats.files_synced,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| tasks | streams | fragments | s | fragments/s | MB/s | p50 ms | p99 ms | batches | avg batch | fsyncs/batch |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &tasks in &args.tasks {
        for one_stream in [false, true] {
            if tasks == 1 && one_stream {
                continue; // same as one stream per task
            }
            let dir = tempfile::tempdir_in(&args.dir).unwrap();
            let r = rt.block_on(run(dir.path(), tasks, one_stream, args.secs, args.interval));
            println!(
                "| {tasks} | {} | {} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
                if one_stream { 1 } else { tasks },
                r.fragments,
                r.secs,
                r.fragments as f64 / r.secs,
                r.fragments as f64 * f64::from(FRAGMENT_BYTES) / r.secs / 1e6,
                pct(&r.latencies, 0.5).as_secs_f64() * 1e3,
                pct(&r.latencies, 0.99).as_secs_f64() * 1e3,
                r.batches,
                r.fragments as f64 / r.batches.max(1) as f64,
                r.files_synced as f64 / r.batches.max(1) as f64,
            );
        }
    }
}
