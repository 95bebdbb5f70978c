//! Ingest benchmark: N simulated cameras push live MKV to a real `openkvs serve` over loopback
//! and we measure PERSISTED ack latency after each fragment's last byte, throughput, and the
//! server's CPU and RSS, next to the raw fdatasync write throughput of the same disk.
//!
//! `--backends` runs the same workload against each backend in turn: `embedded` (local files +
//! SQLite) and the scale-out store (S3 + PostgreSQL) with its S3 server named, `moto` or
//! `s3s-fs`. For a scale-out row the bench starts its own PostgreSQL and S3 server
//! (`openkvs_bench::backends`) and reports their CPU too; they are part of the cost.
//!
//! ```sh
//! cargo build --release -p openkvs-server -p openkvs-bench
//! target/release/ingest_bench --server target/release/openkvs --cameras 10,100,500,1000 --seconds 20
//! cargo build --release -p openkvs-server --no-default-features --features openkvs-server/s3 -p openkvs-bench
//! target/release/ingest_bench --cameras 100 --backends embedded,moto,s3s-fs
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use openkvs_bench::backends::{self, Postgres, S3Kind, S3Server};
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
    /// Comma-separated backends, each run with every camera count: `embedded` (local files +
    /// SQLite), `moto` or `s3s-fs` (S3 + PostgreSQL, with that S3 server started here).
    #[arg(long, default_value = "embedded")]
    backends: String,
    /// moto's server script.
    #[arg(long, default_value = ".venv/bin/moto_server")]
    moto: PathBuf,
    /// The s3s-fs binary (`cargo install s3s-fs@0.14.1 --locked --features binary`); default:
    /// `s3s-fs` on PATH, else in ~/.cargo/bin.
    #[arg(long)]
    s3s_fs: Option<PathBuf>,
    /// Directory with PostgreSQL's `initdb`, `postgres` and `psql`; default: the newest
    /// /usr/lib/postgresql/<version>/bin.
    #[arg(long)]
    pg_bin: Option<PathBuf>,
}

/// What one row runs against.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// Local files + SQLite, the single-binary default.
    Embedded,
    /// S3 + PostgreSQL, with this S3 server.
    ScaleOut(S3Kind),
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Backend> {
        Ok(match s.trim() {
            "embedded" => Backend::Embedded,
            "moto" => Backend::ScaleOut(S3Kind::Moto),
            "s3s-fs" => Backend::ScaleOut(S3Kind::S3sFs),
            other => anyhow::bail!("unknown backend {other:?} (embedded, moto, s3s-fs)"),
        })
    }
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (files + SQLite)",
            Backend::ScaleOut(S3Kind::Moto) => "S3 (moto) + PostgreSQL",
            Backend::ScaleOut(S3Kind::S3sFs) => "S3 (s3s-fs) + PostgreSQL",
        }
    }
}

fn find_s3s_fs(explicit: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").join("s3s-fs"));
    on_path
        .into_iter()
        .chain(cargo_bin)
        .find(|p| p.is_file())
        .context("s3s-fs not found (cargo install s3s-fs@0.14.1 --locked --features binary, or pass --s3s-fs)")
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
    // On Ctrl-C the run future is dropped, and with it every child process and temp dir.
    tokio::select! {
        r = run(a) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

/// One row's measurements.
#[derive(Debug)]
struct Row {
    wall_s: f64,
    results: Results,
    server_cpu_s: f64,
    server_rss_mib: f64,
    pg_cpu_s: Option<f64>,
    s3_cpu_s: Option<f64>,
    s3_rss_mib: Option<f64>,
    load_1m: f64,
    /// PostgreSQL fragment index after the run.
    pg_index: Option<PgIndex>,
}

/// Size of the PostgreSQL fragment index after a run.
#[derive(Debug)]
struct PgIndex {
    rows: u64,
    /// `pg_total_relation_size('fragment')`: heap, its three indexes, TOAST, free-space maps.
    fragment_bytes: u64,
    /// The same for `fragment_frames`.
    frames_bytes: u64,
    /// Average `pg_column_size` of a `fragment` row (the tuple alone, no page or index
    /// overhead): what a large table converges to before indexes.
    fragment_row_bytes: u64,
    /// The same for a `fragment_frames` row.
    frames_row_bytes: u64,
}

async fn run(a: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data)?;
    let spec = CameraSpec {
        bitrate: a.bitrate,
        fps: a.fps,
        gop: a.gop,
    };
    let backends: Vec<Backend> = a
        .backends
        .split(',')
        .map(str::parse)
        .collect::<anyhow::Result<_>>()?;
    let cameras: Vec<usize> = a
        .cameras
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    // Resolve every tool before the first row, so a missing one fails in seconds.
    let pg_bin = if backends.iter().any(|b| matches!(b, Backend::ScaleOut(_))) {
        Some(backends::find_pg_bin(a.pg_bin.as_deref())?)
    } else {
        None
    };
    let s3s_fs = if backends
        .iter()
        .any(|b| matches!(b, Backend::ScaleOut(S3Kind::S3sFs)))
    {
        Some(find_s3s_fs(a.s3s_fs.as_deref())?)
    } else {
        None
    };
    let disk = fdatasync_mb_s(&a.data)?;
    println!("raw write+fdatasync of 1 MiB blocks on this disk: {disk:.0} MB/s");
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    println!(
        "\n| backend | cameras | offered MB/s | stored MB/s | fragments/s | fragments sent | PERSISTED | errors | ack p50 ms | ack p99 ms | ack max ms | openkvs CPU % | openkvs RSS MiB | PostgreSQL CPU % | S3 server CPU % | S3 server RSS MiB | load 1 min |"
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut notes = Vec::new();
    for &n in &cameras {
        for &backend in &backends {
            let s3_bin = match backend {
                Backend::ScaleOut(S3Kind::Moto) => Some(a.moto.clone()),
                Backend::ScaleOut(S3Kind::S3sFs) => s3s_fs.clone(),
                Backend::Embedded => None,
            };
            let row = run_row(&a, spec, n, backend, pg_bin.as_deref(), s3_bin.as_deref())
                .await
                .with_context(|| format!("{} with {n} cameras", backend.label()))?;
            let r = &row.results;
            let mut lat = r.latencies_ms.clone();
            lat.sort_by(f64::total_cmp);
            let offered = n as f64 * a.bitrate as f64 / 8e6;
            let pct = |cpu: Option<f64>| {
                cpu.map_or("–".to_owned(), |c| {
                    format!("{:.0}", c / row.wall_s * 100.0)
                })
            };
            println!(
                "| {} | {n} | {offered:.0} | {:.0} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {} | {} | {:.2} |",
                backend.label(),
                r.bytes as f64 / row.wall_s / 1e6,
                r.persisted as f64 / row.wall_s,
                r.sent_fragments,
                r.persisted,
                r.errors,
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
                lat.last().copied().unwrap_or(f64::NAN),
                row.server_cpu_s / row.wall_s * 100.0,
                row.server_rss_mib,
                pct(row.pg_cpu_s),
                pct(row.s3_cpu_s),
                row.s3_rss_mib.map_or("–".to_owned(), |m| format!("{m:.0}")),
                row.load_1m,
            );
            if let Some(ix) = &row.pg_index {
                let per = |b: u64| b as f64 / ix.rows.max(1) as f64;
                notes.push(format!(
                    "{} with {n} cameras: PostgreSQL index {} fragment rows; `fragment` {:.2} MiB in all ({:.0} B per row with its 3 indexes; tuple alone {} B), `fragment_frames` {:.2} MiB ({:.0} B per row; tuple alone {} B)",
                    backend.label(),
                    ix.rows,
                    ix.fragment_bytes as f64 / 1_048_576.0,
                    per(ix.fragment_bytes),
                    ix.fragment_row_bytes,
                    ix.frames_bytes as f64 / 1_048_576.0,
                    per(ix.frames_bytes),
                    ix.frames_row_bytes,
                ));
            }
        }
    }
    for note in notes {
        println!("\n{note}");
    }
    println!(
        "\nload average at end: {}",
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    Ok(())
}

/// Starts the backend's processes and the server, pushes `n` cameras for `a.seconds`, stops
/// everything (guards: also on error).
async fn run_row(
    a: &Args,
    spec: CameraSpec,
    n: usize,
    backend: Backend,
    pg_bin: Option<&std::path::Path>,
    s3_bin: Option<&std::path::Path>,
) -> anyhow::Result<Row> {
    // Declared before the server so they are dropped after it.
    let mut pg = None;
    let mut s3 = None;
    let server = match backend {
        Backend::Embedded => Server::start(&a.server, &a.data)?,
        Backend::ScaleOut(kind) => {
            let p = pg.insert(Postgres::start(pg_bin.context("PostgreSQL binaries")?)?);
            let s = s3
                .insert(S3Server::start(kind, s3_bin.context("S3 server binary")?, &a.data).await?);
            let args: Vec<String> = [
                "--store",
                "s3",
                "--catalog",
                "postgres",
                "--postgres-url",
                &p.url(),
                "--s3-bucket",
                backends::BUCKET,
                "--s3-endpoint-url",
                &s.url(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let env = [
                (
                    "OPENKVS_S3_ACCESS_KEY_ID".to_owned(),
                    backends::S3_AKID.to_owned(),
                ),
                (
                    "OPENKVS_S3_SECRET_ACCESS_KEY".to_owned(),
                    backends::S3_SECRET.to_owned(),
                ),
            ];
            Server::start_with(&a.server, &a.data, &args, &env)?
        }
    };
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
    let pg_pid = pg.as_ref().map(Postgres::pid);
    let s3_pid = s3.as_ref().map(S3Server::pid);
    let res = Arc::new(Mutex::new(Results::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let cpu0 = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let pg0 = pg_pid.and_then(procstat::tree_cpu_seconds);
    let s30 = s3_pid.and_then(procstat::tree_cpu_seconds);
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
    let mut s3_rss_max: f64 = 0.0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_max = rss_max.max(procstat::rss_mib(pid).unwrap_or(0.0));
        if let Some(p) = s3_pid {
            s3_rss_max = s3_rss_max.max(procstat::rss_mib(p).unwrap_or(0.0));
        }
    }
    let cpu1 = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let pg1 = pg_pid.and_then(procstat::tree_cpu_seconds);
    let s31 = s3_pid.and_then(procstat::tree_cpu_seconds);
    let load_1m = procstat::load_average_1m().unwrap_or(f64::NAN);
    let wall_s = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let pg_index = match &pg {
        Some(p) => {
            let out = p.query(
                "SELECT (SELECT count(*) FROM fragment), pg_total_relation_size('fragment'), \
                 pg_total_relation_size('fragment_frames'), \
                 (SELECT coalesce(avg(pg_column_size(f.*)), 0)::bigint FROM fragment f), \
                 (SELECT coalesce(avg(pg_column_size(g.*)), 0)::bigint FROM fragment_frames g)",
            )?;
            let f: Vec<u64> = out
                .split('|')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .with_context(|| format!("psql answered {out:?}"))?;
            anyhow::ensure!(f.len() == 5, "psql answered {out:?}");
            Some(PgIndex {
                rows: f[0],
                fragment_bytes: f[1],
                frames_bytes: f[2],
                fragment_row_bytes: f[3],
                frames_row_bytes: f[4],
            })
        }
        None => None,
    };
    drop(server);
    let results = std::mem::take(&mut *res.lock().await);
    Ok(Row {
        wall_s,
        results,
        server_cpu_s: cpu1 - cpu0,
        server_rss_mib: rss_max,
        pg_cpu_s: pg0.zip(pg1).map(|(a, b)| b - a),
        s3_cpu_s: s30.zip(s31).map(|(a, b)| b - a),
        s3_rss_mib: s3_pid.map(|_| s3_rss_max),
        load_1m,
        pg_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names() {
        let cases = [
            ("embedded", Some("embedded (files + SQLite)")),
            (" moto", Some("S3 (moto) + PostgreSQL")),
            ("s3s-fs", Some("S3 (s3s-fs) + PostgreSQL")),
            ("scaleout", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Backend>().ok().map(Backend::label);
            assert_eq!(got, want, "{input:?}");
        }
    }
}
