//! Signaling benchmark (issue 5): a real `openkvs serve` over loopback.
//!
//! 1. Relay: `--channels` channels, each with one MASTER and one VIEWER WebSocket. Every viewer
//!    sends ICE_CANDIDATE messages at `--rate` per second; its master sends each one straight
//!    back to that viewer. Round trip viewer → master → viewer, p50/p99, messages delivered per
//!    second, and the server's CPU time per relayed message.
//! 2. The same number of connections and the same frames at the same rate against a bare
//!    tokio-tungstenite echo server (this binary re-run with `--serve-echo`, 2 worker threads,
//!    so its CPU is measured apart from the load generator). One echo = one frame in and one out,
//!    as one relayed signaling message is.
//! 3. Idle: `--idle` connections (channels of 1 master + 9 viewers) that only stay open; the
//!    server's RSS before and after.
//!
//! With `--cross-node` it instead measures `hub = "redis"` (several nodes sharing channels
//! through Redis pub/sub): it starts a private PostgreSQL (the shared catalog), a redis-server and
//! three openkvs: one plain node (local hub) and nodes A and B (`--catalog postgres --hub redis`).
//! Per rate, three relay runs on fresh channels: the single node; masters and viewers both on A
//! (the hub's cost when nothing crosses); masters on A and viewers on B (every message goes
//! through Redis, viewer → B → Redis → A → master and back). RTT p50/p99/max and the CPU of A,
//! B and redis-server per relayed message. No echo or idle runs in this mode.
//!
//! The per-connection rate stays under openkvs' default ICE_CANDIDATE limit (20/s, `kvs-api.md`
//! §15.3). Needs `ulimit -n` above `--idle` + a few thousand for both processes:
//!
//! ```sh
//! cargo build --release -p openkvs-server -p openkvs-bench
//! (ulimit -n 65536; target/release/signaling_bench --server target/release/openkvs)
//! # across nodes (PostgreSQL and redis-server installed):
//! cargo build --release -p openkvs-server --no-default-features \
//!     --features openkvs-server/postgres,openkvs-server/redis -p openkvs-bench
//! target/release/signaling_bench --server target/release/openkvs --cross-node
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use openkvs_bench::backends::{self, Postgres, Redis};
use openkvs_bench::http::{self, Target};
use openkvs_bench::server::Server;
use openkvs_bench::{percentile, procstat};
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "Signaling relay latency/throughput vs a bare WebSocket echo server; idle RSS")]
struct Args {
    /// The openkvs binary to start (a release build gives representative numbers).
    #[arg(long, default_value = "target/release/openkvs")]
    server: PathBuf,
    /// Active channels (one master + one viewer each) for the relay runs. [default: 1000;
    /// 200 with --cross-node]
    #[arg(long)]
    channels: Option<usize>,
    /// Comma-separated messages per second per viewer, one relay run (and one echo run) each.
    /// [default: 5,10,19; 5 with --cross-node]
    #[arg(long)]
    rates: Option<String>,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Idle connections for the RSS measurement (0 skips it; not run with --cross-node).
    #[arg(long, default_value_t = 20_000)]
    idle: usize,
    /// Measure `hub = "redis"` instead: a single node, two nodes with master and viewer on the
    /// same node, and two nodes with master on A and viewer on B (PostgreSQL + redis-server are
    /// started here).
    #[arg(long)]
    cross_node: bool,
    /// The redis-server binary for --cross-node.
    #[arg(long, default_value = "redis-server")]
    redis_server: PathBuf,
    /// Directory with PostgreSQL's `initdb` and `postgres` for --cross-node [default: the newest
    /// /usr/lib/postgresql/<version>/bin].
    #[arg(long)]
    pg_bin: Option<PathBuf>,
    /// Data directory parent (a temp dir under it is used and removed).
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
    /// Internal: run the echo server and print its port.
    #[arg(long, hide = true)]
    serve_echo: bool,
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Padding so a frame is about the size of a real trickled candidate message (~300 bytes).
const PAD: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 49152 typ srflx raddr 10.0.0.2 rport 49152 generation 0 ufrag abcd network-cost 999";

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Opens TCP from one of 127.0.0.2..=127.0.0.201 (spreads the ephemeral ports over many source
/// addresses, so 20,000 connections plus TIME_WAIT leftovers do not run out of ports).
async fn tcp(addr: SocketAddr, i: usize) -> anyhow::Result<tokio::net::TcpStream> {
    let s = TcpSocket::new_v4()?;
    let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8);
    s.bind(SocketAddr::from((src, 0)))?;
    let stream = s.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn presigned(t: &Target, wss: &str, arn: &str, client_id: Option<&str>) -> String {
    let creds = sigv4::Credentials::new(t.akid.clone(), t.secret.clone());
    let mut params = vec![("X-Amz-ChannelARN", arn)];
    if let Some(c) = client_id {
        params.push(("X-Amz-ClientId", c));
    }
    sigv4::presign_url(
        &sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            now_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        },
        &sigv4::PresignRequest {
            method: "GET",
            endpoint: wss,
            params: &params,
            expires_secs: 299,
        },
    )
}

/// Connects to signaling, retrying while the per-channel connect rate limit (3/s) refuses.
async fn connect_signaling(
    t: &Target,
    addr: SocketAddr,
    wss: &str,
    arn: &str,
    client_id: Option<&str>,
    i: usize,
) -> anyhow::Result<Ws> {
    let mut last = None;
    for _ in 0..40 {
        let url = presigned(t, wss, arn, client_id);
        let stream = tcp(addr, i).await?;
        match tokio_tungstenite::client_async(url, stream).await {
            Ok((ws, _)) => return Ok(ws),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    }
    bail!(
        "connecting: {}",
        last.map_or(String::new(), |e| e.to_string())
    )
}

async fn create_channels(t: &Target, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..n {
        let t = t.clone();
        let sem = sem.clone();
        let name = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let (status, body) = http::json_call(
                &t,
                "/createSignalingChannel",
                &serde_json::json!({ "ChannelName": name }),
            )
            .await?;
            if status != 200 {
                bail!("CreateSignalingChannel: HTTP {status} {body}");
            }
            let v: serde_json::Value = serde_json::from_str(&body)?;
            Ok::<_, anyhow::Error>(
                v["ChannelARN"]
                    .as_str()
                    .context("no ChannelARN")?
                    .to_owned(),
            )
        }));
    }
    let mut arns = Vec::with_capacity(n);
    for t in tasks {
        arns.push(t.await??);
    }
    Ok(arns)
}

async fn wss_endpoint(t: &Target, arn: &str) -> anyhow::Result<String> {
    let (status, body) = http::json_call(
        t,
        "/getSignalingChannelEndpoint",
        &serde_json::json!({
            "ChannelARN": arn,
            "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS"], "Role": "MASTER"},
        }),
    )
    .await?;
    if status != 200 {
        bail!("GetSignalingChannelEndpoint: HTTP {status} {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    Ok(v["ResourceEndpointList"][0]["ResourceEndpoint"]
        .as_str()
        .context("no endpoint")?
        .to_owned())
}

#[derive(Debug, Default)]
struct Stats {
    /// Round trips are recorded only while set (after the warm-up).
    measuring: AtomicBool,
    rtts_us: Mutex<Vec<f64>>,
    delivered: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
}

/// The frame a viewer sends: its send time is in the payload.
fn viewer_frame(t_ns: u64, signaling: bool) -> String {
    let payload = B64.encode(format!("{t_ns}|{PAD}"));
    if signaling {
        format!(r#"{{"action":"ICE_CANDIDATE","messagePayload":"{payload}"}}"#)
    } else {
        // The echo server returns it as is; same size as what openkvs delivers.
        format!(
            r#"{{"messageType":"ICE_CANDIDATE","senderClientId":"v","messagePayload":"{payload}"}}"#
        )
    }
}

fn payload_of(text: &str) -> Option<&str> {
    let i = text.find("\"messagePayload\":\"")? + 18;
    let rest = &text[i..];
    Some(&rest[..rest.find('"')?])
}

fn sent_ns(text: &str) -> Option<u64> {
    let raw = B64.decode(payload_of(text)?).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    s.split('|').next()?.parse().ok()
}

/// Sends at `rate`/s until `stop`, records the round trip of every frame that comes back.
async fn viewer_loop(ws: Ws, rate: u32, signaling: bool, stop: Arc<AtomicBool>, st: Arc<Stats>) {
    let (mut tx, mut rx) = ws.split();
    let st2 = st.clone();
    let stop2 = stop.clone();
    let reader = tokio::spawn(async move {
        let mut local = Vec::new();
        loop {
            let next = if stop2.load(Ordering::Relaxed) {
                // Stopped: take what is still in flight, then finish.
                match tokio::time::timeout(Duration::from_millis(300), rx.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                }
            } else {
                rx.next().await
            };
            let Some(Ok(m)) = next else { break };
            if let Message::Text(t) = m
                && let Some(sent) = sent_ns(&t)
            {
                st2.delivered.fetch_add(1, Ordering::Relaxed);
                if st2.measuring.load(Ordering::Relaxed) {
                    local.push((now_ns() - sent) as f64 / 1000.0);
                }
            }
        }
        st2.rtts_us.lock().await.extend(local);
    });
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    // Spread the first sends over one period.
    tokio::time::sleep(period.mul_f64(rand::random::<f64>())).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if tx
            .send(Message::Text(viewer_frame(now_ns(), signaling).into()))
            .await
            .is_err()
        {
            st.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        st.sent.fetch_add(1, Ordering::Relaxed);
    }
    let _ = reader.await;
    let _ = tx.close().await;
}

/// A master that sends every ICE_CANDIDATE back to its sender.
async fn master_loop(ws: Ws, st: Arc<Stats>) {
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(m)) = rx.next().await {
        let Message::Text(t) = m else { continue };
        if !t.contains("\"ICE_CANDIDATE\"") {
            continue;
        }
        st.delivered.fetch_add(1, Ordering::Relaxed);
        let (Some(p), Some(sender)) = (payload_of(&t), sender_of(&t)) else {
            continue;
        };
        let reply = format!(
            r#"{{"action":"ICE_CANDIDATE","recipientClientId":"{sender}","messagePayload":"{p}"}}"#
        );
        if tx.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}

fn sender_of(text: &str) -> Option<&str> {
    let i = text.find("\"senderClientId\":\"")? + 18;
    let rest = &text[i..];
    Some(&rest[..rest.find('"')?])
}

struct RunResult {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    delivered_per_s: f64,
    /// CPU time per delivered message of each process in `pids`, in order.
    cpu_us_per_msg: Vec<f64>,
    errors: u64,
}

fn cpu_all(pids: &[u32]) -> Vec<f64> {
    pids.iter()
        .map(|&p| procstat::cpu_seconds(p).unwrap_or(f64::NAN))
        .collect()
}

/// Runs viewers at `rate` for `secs`; `masters` (if any) were started already. The CPU of every
/// process in `pids` is sampled over the measured window.
async fn run_load(
    viewers: Vec<Ws>,
    rate: u32,
    secs: u64,
    signaling: bool,
    st: Arc<Stats>,
    pids: &[u32],
) -> RunResult {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for ws in viewers {
        tasks.push(tokio::spawn(viewer_loop(
            ws,
            rate,
            signaling,
            stop.clone(),
            st.clone(),
        )));
    }
    // Warm-up second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    st.measuring.store(true, Ordering::Relaxed);
    let d0 = st.delivered.load(Ordering::Relaxed);
    let cpu1 = cpu_all(pids);
    let m0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let d1 = st.delivered.load(Ordering::Relaxed);
    let cpu2 = cpu_all(pids);
    let elapsed = m0.elapsed().as_secs_f64();
    st.measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = t0;
    let mut rtts = std::mem::take(&mut *st.rtts_us.lock().await);
    rtts.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let delivered = (d1 - d0) as f64;
    RunResult {
        p50_us: percentile(&rtts, 50.0),
        p99_us: percentile(&rtts, 99.0),
        max_us: rtts.last().copied().unwrap_or(f64::NAN),
        delivered_per_s: delivered / elapsed,
        cpu_us_per_msg: cpu1
            .iter()
            .zip(&cpu2)
            .map(|(c1, c2)| {
                if delivered > 0.0 {
                    (c2 - c1) * 1e6 / delivered
                } else {
                    f64::NAN
                }
            })
            .collect(),
        errors: st.errors.load(Ordering::Relaxed),
    }
}

// ---------------------------------------------------------------- echo server

async fn serve_echo() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(m)) = rx.next().await {
                if m.is_text() && tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_openkvs(bin: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let child = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-turn",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("OPENKVS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("OPENKVS_SECRET_ACCESS_KEY", "bench-secret")
        .env(
            "RUST_LOG",
            std::env::var("OPENKVS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let child = Child(child);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok((child, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "openkvs did not start (see {})",
        dir.join("server.log").display()
    )
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.serve_echo {
        // Like the server: a multi-threaded runtime with one worker per core (2 here).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return rt.block_on(serve_echo());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On Ctrl-C the run future is dropped, and with it every child process and temp dir.
    rt.block_on(async {
        tokio::select! {
            r = async { if a.cross_node { cross_node(a).await } else { bench(a).await } } => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}

async fn bench(a: Args) -> anyhow::Result<()> {
    epoch();
    let rates = parse_rates(a.rates.as_deref().unwrap_or("5,10,19"))?;
    let channels = a.channels.unwrap_or(1000);
    let dir = a.data.join(format!("signaling-{}", std::process::id()));
    let (server, addr) = start_openkvs(&a.server, &dir)?;
    let pid = server.0.id();
    let sock: SocketAddr = addr.parse()?;
    let t = Target {
        addr: addr.clone(),
        akid: "AKIDBENCH".into(),
        secret: "bench-secret".into(),
    };
    let rss_start = procstat::rss_mib(pid).unwrap_or(f64::NAN);

    // ------------------------------------------------------------ relay
    let arns = create_channels(&t, "relay", channels).await?;
    let wss = wss_endpoint(&t, &arns[0]).await?;
    println!(
        "openkvs {} | {} channels (1 master + 1 viewer each) | {} s per run | frames ~{} B",
        a.server.display(),
        channels,
        a.seconds,
        viewer_frame(now_ns(), true).len()
    );
    let mut echo_child = std::process::Command::new(std::env::current_exe()?)
        .arg("--serve-echo")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let echo_port: u16 = {
        use std::io::BufRead as _;
        let out = echo_child.stdout.take().context("echo stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        line.trim().parse().context("echo server port")?
    };
    let echo = Child(echo_child);
    let echo_pid = echo.0.id();
    let echo_addr = SocketAddr::from(([127, 0, 0, 1], echo_port));

    println!();
    println!(
        "| target | msgs/s per viewer | offered msgs/s | delivered msgs/s | RTT p50 | RTT p99 | server CPU per msg |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &rate in &rates {
        // openkvs: connect masters then viewers, fresh per run.
        let st = Arc::new(Stats::default());
        let mut masters = Vec::new();
        let mut conns = Vec::new();
        for (i, arn) in arns.iter().enumerate() {
            let (t, wss, arn) = (t.clone(), wss.clone(), arn.clone());
            conns.push(tokio::spawn(async move {
                let m = connect_signaling(&t, sock, &wss, &arn, None, 2 * i).await?;
                let v = connect_signaling(&t, sock, &wss, &arn, Some(&format!("v{i}")), 2 * i + 1)
                    .await?;
                Ok::<_, anyhow::Error>((m, v))
            }));
        }
        let mut viewers = Vec::new();
        for c in conns {
            let (m, v) = c.await??;
            masters.push(tokio::spawn(master_loop(m, st.clone())));
            viewers.push(v);
        }
        let r = run_load(viewers, rate, a.seconds, true, st.clone(), &[pid]).await;
        for m in masters {
            m.abort();
        }
        // Relayed messages: viewer→master and master→viewer both count.
        let offered = 2.0 * channels as f64 * f64::from(rate);
        print_row("openkvs relay", rate, offered, &r);

        // Echo: the same number of connections (2 per channel), all sending.
        let st = Arc::new(Stats::default());
        let mut conns = Vec::new();
        for i in 0..2 * channels {
            conns.push(tokio::spawn(async move {
                let s = tcp(echo_addr, i).await?;
                let (ws, _) =
                    tokio_tungstenite::client_async(format!("ws://{echo_addr}/"), s).await?;
                Ok::<_, anyhow::Error>(ws)
            }));
        }
        let mut viewers = Vec::new();
        for c in conns {
            viewers.push(c.await??);
        }
        let r = run_load(viewers, rate, a.seconds, false, st, &[echo_pid]).await;
        print_row("tokio-tungstenite echo", rate, offered, &r);
    }
    let rss_after_relay = procstat::rss_mib(pid).unwrap_or(f64::NAN);

    // ------------------------------------------------------------ idle
    if a.idle > 0 {
        let per_channel = 10;
        let n_channels = a.idle.div_ceil(per_channel);
        let idle_arns = create_channels(&t, "idle", n_channels).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_before = procstat::rss_mib(pid).unwrap_or(f64::NAN);
        let opened = Arc::new(AtomicU64::new(0));
        let keep = Arc::new(Mutex::new(Vec::with_capacity(a.idle)));
        let t_open = Instant::now();
        let mut tasks = Vec::new();
        for (ci, arn) in idle_arns.iter().enumerate() {
            let (t, wss, arn) = (t.clone(), wss.clone(), arn.clone());
            let (opened, keep) = (opened.clone(), keep.clone());
            let n = per_channel.min(a.idle - ci * per_channel);
            tasks.push(tokio::spawn(async move {
                for k in 0..n {
                    let id = format!("idle{k}");
                    let cid = (k > 0).then_some(id.as_str());
                    let ws =
                        connect_signaling(&t, sock, &wss, &arn, cid, ci * per_channel + k).await?;
                    keep.lock().await.push(ws);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        let mut failed = 0;
        for task in tasks {
            if let Err(e) = task.await? {
                failed += 1;
                if failed <= 3 {
                    eprintln!("idle connect failed: {e:#}");
                }
            }
        }
        let open_s = t_open.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_idle = procstat::rss_mib(pid).unwrap_or(f64::NAN);
        let n = opened.load(Ordering::Relaxed);
        println!();
        println!(
            "| idle connections | open in | server RSS before | with them open | per connection |"
        );
        println!("|---|---|---|---|---|");
        println!(
            "| {n} ({n_channels} channels x {per_channel}) | {open_s:.1} s | {rss_before:.0} MiB | {rss_idle:.0} MiB | {:.1} KiB |",
            (rss_idle - rss_before) * 1024.0 / n.max(1) as f64
        );
        drop(keep);
    }
    println!();
    println!(
        "server RSS: {rss_start:.0} MiB at start, {rss_after_relay:.0} MiB after the relay runs"
    );
    drop(echo);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_row(name: &str, rate: u32, offered: f64, r: &RunResult) {
    println!(
        "| {name} | {rate} | {offered:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.1} µs |{}",
        r.delivered_per_s,
        r.p50_us / 1000.0,
        r.p99_us / 1000.0,
        r.cpu_us_per_msg[0],
        if r.errors > 0 {
            format!(" ({} send errors)", r.errors)
        } else {
            String::new()
        }
    );
}

fn parse_rates(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--rates")
}

// ---------------------------------------------------------------- across nodes

/// One openkvs node as the load generator reaches it.
#[derive(Debug, Clone)]
struct Node {
    t: Target,
    sock: SocketAddr,
    wss: String,
}

impl Node {
    /// `server`, with the WSS endpoint it hands out for `arn` (its own address).
    async fn of(server: &Server, arn: &str) -> anyhow::Result<Node> {
        let t = server.target();
        let wss = wss_endpoint(&t, arn).await?;
        Ok(Node {
            sock: server.addr.parse()?,
            t,
            wss,
        })
    }
}

/// One relay run on fresh connections: per channel a MASTER on `m` (connected first, so its node
/// runs the channel) and a VIEWER on `v`.
async fn relay_run(
    m: &Node,
    v: &Node,
    arns: &[String],
    rate: u32,
    secs: u64,
    pids: &[u32],
) -> anyhow::Result<RunResult> {
    let st = Arc::new(Stats::default());
    let mut conns = Vec::new();
    for (i, arn) in arns.iter().enumerate() {
        let (m, v, arn) = (m.clone(), v.clone(), arn.clone());
        conns.push(tokio::spawn(async move {
            let mw = connect_signaling(&m.t, m.sock, &m.wss, &arn, None, 2 * i).await?;
            let vw = connect_signaling(
                &v.t,
                v.sock,
                &v.wss,
                &arn,
                Some(&format!("v{i}")),
                2 * i + 1,
            )
            .await?;
            Ok::<_, anyhow::Error>((mw, vw))
        }));
    }
    let mut masters = Vec::new();
    let mut viewers = Vec::new();
    for c in conns {
        let (mw, vw) = c.await??;
        masters.push(tokio::spawn(master_loop(mw, st.clone())));
        viewers.push(vw);
    }
    let r = run_load(viewers, rate, secs, true, st, pids).await;
    for m in masters {
        m.abort();
    }
    Ok(r)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "?".into())
}

/// The servers' log dir, removed when dropped (also on Ctrl-C) unless forgotten.
struct LogDir(PathBuf);

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--cross-node`: the single node against two nodes joined by `hub = "redis"`.
async fn cross_node(a: Args) -> anyhow::Result<()> {
    epoch();
    let dir = a
        .data
        .join(format!("signaling-nodes-{}", std::process::id()));
    let logs = LogDir(dir.clone());
    match cross_node_run(&a, &dir).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Every child process is stopped by now; keep the servers' logs.
            std::mem::forget(logs);
            Err(e.context(format!("server logs kept in {}", dir.display())))
        }
    }
}

async fn cross_node_run(a: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let rates = parse_rates(a.rates.as_deref().unwrap_or("5"))?;
    let channels = a.channels.unwrap_or(200);
    let pg_bin = backends::find_pg_bin(a.pg_bin.as_deref())?;
    for n in ["single", "a", "b"] {
        std::fs::create_dir_all(dir.join(n))?;
    }
    // Declared before the nodes, so dropped (stopped) after them, also on error or Ctrl-C.
    let pg = Postgres::start(&pg_bin)?;
    let redis = Redis::start(&a.redis_server)?;
    let hub_args: Vec<String> = [
        "--catalog",
        "postgres",
        "--postgres-url",
        &pg.url(),
        "--hub",
        "redis",
        "--redis-url",
        &redis.url(),
    ]
    .map(str::to_owned)
    .into();
    let single = Server::start(&a.server, &dir.join("single"))?;
    // A first: it creates the catalog's tables.
    let node_a = Server::start_with(&a.server, &dir.join("a"), &hub_args, &[])?;
    let node_b = Server::start_with(&a.server, &dir.join("b"), &hub_args, &[])?;
    let hub_pids = [node_a.pid(), node_b.pid(), redis.pid()];

    println!(
        "openkvs {} | {} channels (1 master + 1 viewer each) | {} s per run | frames ~{} B",
        a.server.display(),
        channels,
        a.seconds,
        viewer_frame(now_ns(), true).len()
    );
    println!(
        "nodes A and B: --catalog postgres (one private PostgreSQL) --hub redis (one redis-server); single node: embedded catalog, hub local"
    );
    println!("load average at start: {}", load_average());
    println!();
    println!(
        "| setup | msgs/s per viewer | offered msgs/s | delivered msgs/s | RTT p50 | RTT p99 | RTT max | openkvs A CPU per msg | openkvs B CPU per msg | redis-server CPU per msg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &rate in &rates {
        let offered = 2.0 * channels as f64 * f64::from(rate);

        let arns = create_channels(&single.target(), &format!("single-{rate}"), channels).await?;
        let n = Node::of(&single, &arns[0]).await?;
        let r = relay_run(&n, &n, &arns, rate, a.seconds, &[single.pid()]).await?;
        print_cross_row("1 node (hub = local)", rate, offered, &r);
        // Let the finished channels' tasks end (and release their Redis leases) between runs.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let arns = create_channels(&node_a.target(), &format!("same-{rate}"), channels).await?;
        let na = Node::of(&node_a, &arns[0]).await?;
        let nb = Node::of(&node_b, &arns[0]).await?;
        let r = relay_run(&na, &na, &arns, rate, a.seconds, &hub_pids).await?;
        print_cross_row(
            "2 nodes (hub = redis), master + viewer on A",
            rate,
            offered,
            &r,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;

        let arns = create_channels(&node_a.target(), &format!("cross-{rate}"), channels).await?;
        let r = relay_run(&na, &nb, &arns, rate, a.seconds, &hub_pids).await?;
        print_cross_row(
            "2 nodes (hub = redis), master on A, viewer on B",
            rate,
            offered,
            &r,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!();
    println!("load average at end: {}", load_average());
    Ok(())
}

fn print_cross_row(name: &str, rate: u32, offered: f64, r: &RunResult) {
    let cpu = |i: usize| {
        r.cpu_us_per_msg
            .get(i)
            .map_or_else(|| "–".to_owned(), |c| format!("{c:.1} µs"))
    };
    println!(
        "| {name} | {rate} | {offered:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} | {} |{}",
        r.delivered_per_s,
        r.p50_us / 1000.0,
        r.p99_us / 1000.0,
        r.max_us / 1000.0,
        cpu(0),
        cpu(1),
        cpu(2),
        if r.errors > 0 {
            format!(" ({} send errors)", r.errors)
        } else {
            String::new()
        }
    );
}
