//! `openkvs put-media`: streams an MKV file or stdin to PutMedia as one chunked, full-duplex
//! HTTP/1.1 request, prints the ACKs, resumes after errors, and tells whether everything was
//! PERSISTED.
//!
//! One task, one `select!` loop (STYLE.md §2) over: input chunks from a reader task, the body
//! channel's free slot (paced by media time with `--realtime`), the response head, response
//! body frames (ACKs), and one timer (pace, reconnect back-off, ACK timeout). The protocol
//! state lives in [`Upload`]; this file only moves bytes and decides when to reconnect.

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::mpsc;

use crate::cli::{OutputFormat, PutMediaArgs, TimecodeTypeArg};
use crate::client::ack::{Ack, AckKind, AckScanner, error_id_meaning};
use crate::client::aws_config::{self, ClientConfig};
use crate::client::http::{ChannelBody, ConnTask, ConnectError, Connector};
use crate::client::upload::{AckEffect, Stats, Upload};

/// 2000-01-01T00:00:00Z in ms: a first cluster later than this carries wall-clock
/// (ABSOLUTE) timecodes, as the KVS producer SDK writes them.
const ABSOLUTE_THRESHOLD_MS: u128 = 946_684_800_000;
/// How long to wait for the response to end after the body ended.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Input read size.
const READ_CHUNK: usize = 64 << 10;

/// Everything `put-media` needs besides the endpoint and credentials.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) stream: String,
    pub(crate) timecode_type: TimecodeTypeArg,
    pub(crate) realtime: bool,
    pub(crate) resume: bool,
    pub(crate) output: OutputFormat,
    pub(crate) max_buffer: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) retries: u32,
    /// Hide the progress bar and human lines (tests).
    pub(crate) quiet: bool,
}

/// Result of an upload.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) stats: Stats,
    pub(crate) elapsed: Duration,
    pub(crate) connections: u32,
    /// Every cluster of the input was ACKed PERSISTED.
    pub(crate) complete: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(0.001);
        write!(
            f,
            "{}: {}/{} fragments persisted, {} error ACKs, {} connection{}; ",
            if self.complete { "done" } else { "incomplete" },
            s.fragments_persisted,
            s.fragments_sent,
            s.error_acks,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
        )?;
        write!(
            f,
            "{} read, {} sent in {secs:.1} s ({:.0} kbit/s)",
            indicatif::HumanBytes(s.input_bytes),
            indicatif::HumanBytes(s.sent_bytes),
            s.sent_bytes as f64 * 8.0 / 1000.0 / secs,
        )
    }
}

/// `openkvs put-media`.
pub(crate) fn command(args: &PutMediaArgs) -> anyhow::Result<()> {
    let cfg = aws_config::resolve(&args.client)?;
    kvs_core::StreamName::parse(&args.stream)
        .with_context(|| format!("--stream `{}`", args.stream))?;
    let settings = Settings {
        stream: args.stream.clone(),
        timecode_type: args.timecode_type,
        realtime: args.realtime,
        resume: !args.no_resume,
        output: args.output,
        max_buffer: usize::try_from(args.buffer_size).unwrap_or(usize::MAX),
        ack_timeout: args.ack_timeout,
        retries: args.retries,
        quiet: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        if args.input.as_os_str() == "-" {
            run(&cfg, &settings, tokio::io::stdin(), None).await
        } else {
            let path: &Path = &args.input;
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            let len = file.metadata().await.ok().map(|m| m.len());
            run(&cfg, &settings, file, len).await
        }
    });
    // A pending read of stdin would otherwise keep the runtime from shutting down.
    rt.shutdown_background();
    let summary = result?;
    if !summary.complete {
        bail!(
            "not everything was persisted: {} of {} fragments",
            summary.stats.fragments_persisted,
            summary
                .stats
                .fragments_sent
                .max(summary.stats.fragments_persisted)
        );
    }
    Ok(())
}

/// What goes into the request headers, fixed for the whole upload (re-signed per connection).
#[derive(Debug, Clone)]
struct RequestParams {
    timecode_type: &'static str,
    /// `x-amzn-producer-start-timestamp`: epoch seconds with milliseconds.
    producer_start: String,
}

/// Picks the timecode type and the producer start timestamp from the first cluster.
fn decide_params(
    arg: TimecodeTypeArg,
    first: (u64, u64),
    now: SystemTime,
) -> (RequestParams, String) {
    let (timecode, scale_ns) = first;
    let first_ms = u128::from(timecode) * u128::from(scale_ns) / 1_000_000;
    let looks_absolute = first_ms >= ABSOLUTE_THRESHOLD_MS;
    let absolute = match arg {
        TimecodeTypeArg::Absolute => true,
        TimecodeTypeArg::Relative => false,
        TimecodeTypeArg::Auto => looks_absolute,
    };
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let start_ms = if absolute { first_ms } else { now_ms };
    let producer_start = format!("{}.{:03}", start_ms / 1000, start_ms % 1000);
    let note = match (absolute, looks_absolute) {
        (true, true) => {
            format!("timecodes are wall-clock times (first cluster {producer_start} s): ABSOLUTE")
        }
        (true, false) => format!(
            "ABSOLUTE, but the first cluster is at {:.3} s after 1970: fragments will be dated 1970 \
             (use --timecode-type relative for files that count from 0)",
            first_ms as f64 / 1000.0
        ),
        (false, _) => format!(
            "RELATIVE timecodes (first cluster at {:.3} s), producer start {producer_start}",
            first_ms as f64 / 1000.0
        ),
    };
    (
        RequestParams {
            timecode_type: if absolute { "ABSOLUTE" } else { "RELATIVE" },
            producer_start,
        },
        note,
    )
}

/// Builds the signed PutMedia request. The signature covers the same headers as the KVS C
/// producer's (kvs-api.md §14.1): connection, host, transfer-encoding, user-agent, x-amz-date and
/// the x-amzn-* parameters; the payload hash is that of the empty string (§14.3).
fn build_request(
    cfg: &ClientConfig,
    stream: &str,
    params: &RequestParams,
    body: ChannelBody,
) -> anyhow::Result<hyper::Request<ChannelBody>> {
    let path = cfg.endpoint.path("/putMedia");
    let user_agent = format!("openkvs/{}", env!("CARGO_PKG_VERSION"));
    let host = cfg.endpoint.authority();
    let headers: [(&str, &str); 8] = [
        ("connection", "keep-alive"),
        ("host", &host),
        ("transfer-encoding", "chunked"),
        ("user-agent", &user_agent),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("x-amzn-fragment-timecode-type", params.timecode_type),
        ("x-amzn-producer-start-timestamp", &params.producer_start),
        ("x-amzn-stream-name", stream),
    ];
    let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let auth = sigv4::sign_headers(
        &sigv4::SigningParams {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "kinesisvideo",
            now_unix,
        },
        &sigv4::Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
        },
        &names,
        sigv4::EMPTY_SHA256,
    );
    let mut b = hyper::Request::builder().method("POST").uri(&path);
    for (n, v) in headers
        .iter()
        .copied()
        .chain(auth.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        b = b.header(n, v);
    }
    b = b.header("content-type", "video/x-matroska");
    b.body(body).context("building the PutMedia request")
}

/// Reads the input in a task so a blocking stdin never stalls the loop; the channel's capacity
/// is the read-ahead.
fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    mut input: R,
) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match input.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    rx
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = hyper::Result<hyper::Response<Incoming>>> + Send>>;

enum Response {
    Waiting(ResponseFuture),
    Streaming(Incoming),
    Ended,
}

/// One PutMedia connection.
struct Conn {
    /// Dropping it ends the request body.
    body_tx: Option<mpsc::Sender<Bytes>>,
    response: Response,
    /// Keeps the request sender alive for the connection's lifetime.
    _sender: hyper::client::conn::http1::SendRequest<ChannelBody>,
    _task: ConnTask,
    scanner: AckScanner,
    /// Connection start or the last PERSISTED ACK on it.
    last_progress: Instant,
    /// When the body was ended.
    body_ended: Option<Instant>,
}

enum Event {
    Input(Option<std::io::Result<Bytes>>),
    Permit(Result<mpsc::OwnedPermit<Bytes>, mpsc::error::SendError<()>>),
    Head(hyper::Result<hyper::Response<Incoming>>),
    Frame(Option<hyper::Result<hyper::body::Frame<Bytes>>>),
    Timer,
}

/// Human output, progress bar and JSON ACK lines.
struct Reporter {
    bar: ProgressBar,
    json: bool,
    quiet: bool,
}

impl Reporter {
    fn new(settings: &Settings, total: Option<u64>) -> Self {
        let target = if settings.quiet {
            ProgressDrawTarget::hidden()
        } else {
            // Hidden by indicatif when stderr is not a terminal.
            ProgressDrawTarget::stderr()
        };
        let bar = match total {
            Some(len) => ProgressBar::with_draw_target(Some(len), target).with_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {bytes} sent {binary_bytes_per_sec} {msg}")
                    .expect("valid template"),
            ),
        };
        Reporter {
            bar,
            json: settings.output == OutputFormat::Json,
            quiet: settings.quiet,
        }
    }

    fn line(&self, msg: &str) {
        if !self.quiet {
            self.bar.suspend(|| {
                let _ = writeln!(std::io::stderr(), "{msg}");
            });
        }
    }

    fn ack(&self, ack: &Ack) {
        if self.json {
            if !self.quiet {
                self.bar.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", ack.to_json());
                    let _ = out.flush();
                });
            }
        } else if matches!(
            ack.kind,
            AckKind::Persisted | AckKind::Error | AckKind::Other(_)
        ) {
            self.line(&ack.to_string());
        }
    }

    fn progress(&self, stats: &Stats, buffered: usize) {
        self.bar.set_position(stats.sent_bytes);
        self.bar.set_message(format!(
            "{}/{} fragments persisted, {} buffered",
            stats.fragments_persisted,
            stats.fragments_sent,
            indicatif::HumanBytes(buffered as u64)
        ));
    }
}

/// Ends the body of a connection given up on (the terminating chunk, as kvssink sends after an
/// ERROR ACK) and lets the server end its response, in the background, for at most 2 s.
fn close_gracefully(mut old: Conn) {
    old.body_tx = None;
    tokio::spawn(async move {
        // Move the whole connection in (not just the fields the block uses): its task and
        // sender must live until the response ends.
        let mut old = old;
        let drain = async {
            if let Response::Waiting(f) = &mut old.response {
                match f.await {
                    Ok(resp) => old.response = Response::Streaming(resp.into_body()),
                    Err(_) => return,
                }
            }
            if let Response::Streaming(body) = &mut old.response {
                while let Some(Ok(_)) = body.frame().await {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    });
}

/// Back-off before reconnect attempt `n` (1-based): 0.25 s, 0.5 s, 1 s … capped at 8 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << n.saturating_sub(1).min(5)))
        .min(Duration::from_secs(8))
}

/// Reads an AWS JSON error response (kvs-api.md §1.4): `(type, message)`.
async fn read_error(resp: hyper::Response<Incoming>) -> (String, String) {
    let header_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(':').next().unwrap_or(s).to_owned());
    let status = resp.status();
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let kind = header_type
        .or_else(|| field("__type").map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned()))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = field("message")
        .or_else(|| field("Message"))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned());
    (kind, message)
}

/// What to tell the user about an error response, and whether retrying may help.
fn explain_error(
    status: u16,
    kind: &str,
    message: &str,
    cfg: &ClientConfig,
    stream: &str,
) -> (String, bool) {
    let retryable = status >= 500
        || matches!(
            kind,
            "ClientLimitExceededException"
                | "ConnectionLimitExceededException"
                | "ThrottlingException"
        );
    let hint = match kind {
        "ResourceNotFoundException" => format!(
            "\ncreate the stream first, e.g.: aws kinesisvideo create-stream --endpoint-url {} \
             --stream-name {stream} --data-retention-in-hours 24",
            cfg.endpoint.base_url()
        ),
        "UnrecognizedClientException" => format!(
            "\nthe server does not know access key {} (from {})",
            cfg.credentials.access_key_id, cfg.credentials_source
        ),
        "InvalidSignatureException" => format!(
            "\ncheck the secret key (from {}) and that this machine's clock is right",
            cfg.credentials_source
        ),
        "NotAuthorizedException" | "AccessDeniedException" => {
            "\nthese credentials may not write media (viewer credentials?)".to_owned()
        }
        _ => String::new(),
    };
    (
        format!("PutMedia failed: HTTP {status} {kind}: {message}{hint}"),
        retryable,
    )
}

/// Runs the upload. `total` is the input size, when known, for the progress bar.
pub(crate) async fn run<R: AsyncRead + Unpin + Send + 'static>(
    cfg: &ClientConfig,
    settings: &Settings,
    input: R,
    total: Option<u64>,
) -> anyhow::Result<Summary> {
    let connector = Connector::new(cfg.endpoint.clone(), cfg.ca_bundle.as_deref())?;
    let reporter = Reporter::new(settings, total);
    let mut uploader = Uploader {
        cfg,
        settings,
        connector: &connector,
        reporter: &reporter,
        upload: Upload::new(settings.max_buffer, !settings.realtime),
        params: None,
        conn: None,
        retry_at: None,
        failures: 0,
        last_error: None,
        connections: 0,
        pace_origin: None,
        started: Instant::now(),
    };
    let result = uploader.run(input).await;
    // Dropping the uploader closes a connection still open after an error.
    let summary = uploader.summary();
    drop(uploader);
    reporter.bar.finish_and_clear();
    // Nothing sent (refused before the first byte): the error says it all.
    if summary.stats.sent_bytes > 0 {
        reporter.line(&summary.to_string());
    }
    result.map(|()| summary)
}

struct Uploader<'a> {
    cfg: &'a ClientConfig,
    settings: &'a Settings,
    connector: &'a Connector,
    reporter: &'a Reporter,
    upload: Upload,
    params: Option<RequestParams>,
    conn: Option<Conn>,
    /// When to open the next connection.
    retry_at: Option<Instant>,
    /// Consecutive failed connections without a PERSISTED ACK in between.
    failures: u32,
    /// `(FragmentTimecode, ErrorId)` of the last ERROR ACK since the last PERSISTED one.
    last_error: Option<(Option<u64>, u32)>,
    connections: u32,
    /// `(wall clock, media time ns)` of the first paced chunk.
    pace_origin: Option<(Instant, i64)>,
    started: Instant,
}

impl Uploader<'_> {
    fn summary(&self) -> Summary {
        Summary {
            stats: self.upload.stats().clone(),
            elapsed: self.started.elapsed(),
            connections: self.connections,
            complete: self.upload.is_complete(),
        }
    }

    async fn run<R: AsyncRead + Unpin + Send + 'static>(&mut self, input: R) -> anyhow::Result<()> {
        let mut input_rx = spawn_reader(input);
        loop {
            let now = Instant::now();
            if self.upload.is_complete() {
                match &mut self.conn {
                    None => return Ok(()),
                    Some(c) => {
                        // Every fragment is PERSISTED: end the body (kvssink sends the terminating
                        // chunk only now) and let the server end the response.
                        c.body_tx = None;
                        let since = *c.body_ended.get_or_insert(now);
                        if matches!(c.response, Response::Ended) || now >= since + CLOSE_GRACE {
                            return Ok(());
                        }
                    }
                }
            }
            if self.params.is_none()
                && let Some(first) = self.upload.first_cluster()
            {
                let (params, note) =
                    decide_params(self.settings.timecode_type, first, SystemTime::now());
                self.reporter.line(&note);
                self.params = Some(params);
                self.retry_at = Some(now);
            }
            if self.conn.is_none()
                && let Some(at) = self.retry_at
                && at <= now
            {
                self.retry_at = None;
                self.connect().await?;
                continue;
            }

            // What may happen next.
            let mut wake: Option<Instant> = self.retry_at;
            let mut earliest = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
            let want_input = !self.upload.input_done() && !self.upload.input_paused();
            let body_open = self.conn.as_ref().is_some_and(|c| c.body_tx.is_some());
            let send_ready = body_open
                && match self.upload.next_pace() {
                    None => false,
                    Some(None) => true,
                    Some(Some(_)) if !self.settings.realtime => true,
                    Some(Some(pace)) => {
                        let (t0, p0) = *self.pace_origin.get_or_insert((now, pace));
                        let due = t0
                            + Duration::from_nanos(
                                u64::try_from(pace.saturating_sub(p0)).unwrap_or(0),
                            );
                        if due <= now {
                            true
                        } else {
                            earliest(due);
                            false
                        }
                    }
                };
            if let Some(c) = &self.conn {
                if self.upload.awaiting_acks() && c.body_ended.is_none() {
                    earliest(c.last_progress + self.settings.ack_timeout);
                }
                if let Some(t) = c.body_ended {
                    earliest(t + CLOSE_GRACE);
                }
            }
            let tx = self
                .conn
                .as_ref()
                .and_then(|c| c.body_tx.clone())
                .filter(|_| send_ready);
            let (head, frames) = match self.conn.as_mut().map(|c| &mut c.response) {
                Some(Response::Waiting(f)) => (Some(f), None),
                Some(Response::Streaming(b)) => (None, Some(b)),
                _ => (None, None),
            };
            let (has_tx, has_head, has_frames) = (tx.is_some(), head.is_some(), frames.is_some());
            let sleep_until = wake.unwrap_or(now + Duration::from_secs(3600));
            let event = tokio::select! {
                r = input_rx.recv(), if want_input => Event::Input(r),
                p = async { tx.expect("guarded").reserve_owned().await }, if has_tx => Event::Permit(p),
                h = async { head.expect("guarded").await }, if has_head => Event::Head(h),
                f = async { frames.expect("guarded").frame().await }, if has_frames => Event::Frame(f),
                () = tokio::time::sleep_until(sleep_until.into()) => Event::Timer,
            };
            self.handle(event).await?;
        }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let params = self
            .params
            .clone()
            .expect("connect after the first cluster");
        match self.connector.connect::<ChannelBody>().await {
            Ok((mut sender, task)) => {
                let (tx, body) = ChannelBody::channel(2);
                let req = build_request(self.cfg, &self.settings.stream, &params, body)?;
                let fut: ResponseFuture = Box::pin(sender.send_request(req));
                self.upload.start_connection();
                self.connections += 1;
                if self.connections > 1 {
                    self.reporter.line(&format!(
                        "connection {}: resuming from the fragment at timecode {}",
                        self.connections,
                        self.upload
                            .resume_timecode()
                            .map_or_else(|| "(end)".to_owned(), |t| t.to_string())
                    ));
                }
                self.conn = Some(Conn {
                    body_tx: Some(tx),
                    response: Response::Waiting(fut),
                    _sender: sender,
                    _task: task,
                    scanner: AckScanner::default(),
                    last_progress: Instant::now(),
                    body_ended: None,
                });
                Ok(())
            }
            Err(ConnectError::Fatal(e)) => Err(e),
            Err(ConnectError::Transient(e)) => self.failed(&format!("{e:#}")),
        }
    }

    /// The connection failed: retry after a back-off, or give up.
    fn failed(&mut self, reason: &str) -> anyhow::Result<()> {
        if let Some(old) = self.conn.take() {
            close_gracefully(old);
        }
        self.upload.end_connection();
        if !self.settings.resume {
            bail!("{reason} (not resuming: --no-resume)");
        }
        self.failures += 1;
        if self.failures > self.settings.retries {
            bail!(
                "giving up after {} attempts without progress: {reason}",
                self.failures
            );
        }
        let delay = backoff(self.failures);
        self.reporter.line(&format!(
            "{reason}; reconnecting in {:.2} s (attempt {}/{})",
            delay.as_secs_f64(),
            self.failures,
            self.settings.retries
        ));
        self.retry_at = Some(Instant::now() + delay);
        Ok(())
    }

    async fn handle(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Input(Some(Ok(bytes))) => {
                self.upload.push_input(&bytes).with_context(|| {
                    format!("at input byte {}", self.upload.stats().input_bytes)
                })?;
            }
            Event::Input(Some(Err(e))) => {
                return Err(anyhow::Error::new(e).context("reading the input"));
            }
            Event::Input(None) => self.upload.finish_input()?,
            Event::Permit(Ok(permit)) => {
                if let Some(bytes) = self.upload.take_next() {
                    permit.send(bytes);
                }
                self.reporter
                    .progress(self.upload.stats(), self.upload.buffered_bytes());
            }
            Event::Permit(Err(_)) => {
                // hyper dropped the body: the connection is gone. The response future or frame
                // stream tells why; if it has nothing to say, this is the reason.
                if let Some(c) = &mut self.conn {
                    c.body_tx = None;
                    if matches!(c.response, Response::Ended) {
                        return self.failed("the server closed the connection");
                    }
                }
            }
            Event::Head(result) => {
                // The response future is done: never poll it again.
                if let Some(c) = &mut self.conn {
                    c.response = Response::Ended;
                }
                let resp = match result {
                    Ok(resp) => resp,
                    Err(e) => return self.failed(&format!("PutMedia request failed: {e}")),
                };
                let status = resp.status();
                if status == hyper::StatusCode::OK {
                    if let Some(c) = &mut self.conn {
                        c.response = Response::Streaming(resp.into_body());
                    }
                } else {
                    let (kind, message) = read_error(resp).await;
                    let (msg, retryable) = explain_error(
                        status.as_u16(),
                        &kind,
                        &message,
                        self.cfg,
                        &self.settings.stream,
                    );
                    if !retryable {
                        bail!(msg);
                    }
                    return self.failed(&msg);
                }
            }
            Event::Frame(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    self.on_response_data(&data)?;
                }
            }
            Event::Frame(Some(Err(e))) => {
                if self.upload.is_complete() {
                    if let Some(c) = &mut self.conn {
                        c.response = Response::Ended;
                    }
                } else {
                    return self.failed(&format!("connection lost: {e}"));
                }
            }
            Event::Frame(None) => {
                if let Some(c) = &mut self.conn {
                    c.response = Response::Ended;
                }
                if !self.upload.is_complete() {
                    return self.failed(
                        "the server ended the response before all fragments were persisted",
                    );
                }
            }
            Event::Timer => {
                let Some(c) = &self.conn else { return Ok(()) };
                if c.body_ended.is_none()
                    && self.upload.awaiting_acks()
                    && Instant::now() >= c.last_progress + self.settings.ack_timeout
                {
                    let stats = self.upload.stats();
                    if stats.fragments_persisted == 0 && self.upload.received_not_persisted() > 0 {
                        bail!(
                            "the server ACKed {} fragment(s) RECEIVED but none PERSISTED within {:?}: \
                             a stream without data retention stores nothing. Create the stream with \
                             --data-retention-in-hours > 0 (aws kinesisvideo update-data-retention …)",
                            self.upload.received_not_persisted(),
                            self.settings.ack_timeout
                        );
                    }
                    return self.failed(&format!(
                        "no PERSISTED ACK for {:?} (--ack-timeout)",
                        self.settings.ack_timeout
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_response_data(&mut self, data: &[u8]) -> anyhow::Result<()> {
        let Some(c) = &mut self.conn else {
            return Ok(());
        };
        c.scanner.push(data);
        let mut acks = Vec::new();
        while let Some(a) = c.scanner.next_ack() {
            match a {
                Ok(a) => acks.push(a),
                Err(e) => self
                    .reporter
                    .line(&format!("ignoring an unreadable ACK: {e}")),
            }
        }
        for ack in acks {
            self.reporter.ack(&ack);
            match self.upload.on_ack(&ack) {
                AckEffect::None => {}
                AckEffect::Persisted => {
                    self.failures = 0;
                    self.last_error = None;
                    if let Some(c) = &mut self.conn {
                        c.last_progress = Instant::now();
                    }
                    self.reporter
                        .progress(self.upload.stats(), self.upload.buffered_bytes());
                }
                AckEffect::Error { error_id, fatal } => {
                    let what = format!(
                        "ERROR ACK {error_id} ({}) for the fragment at timecode {}",
                        error_id_meaning(error_id),
                        ack.fragment_timecode
                            .map_or_else(|| "(none)".to_owned(), |t| t.to_string())
                    );
                    if fatal {
                        bail!("{what}: re-sending cannot fix this");
                    }
                    // The same fragment refused twice for the same reason (too long, too large,
                    // timecodes out of order…): the next try would be refused again.
                    let key = (ack.fragment_timecode, error_id);
                    if self.last_error == Some(key) {
                        bail!("{what}, again after re-sending it: giving up");
                    }
                    self.last_error = Some(key);
                    // kvssink ends the body at once and opens a new PutMedia that re-sends from
                    // the oldest fragment not PERSISTED (kvssink-behaviour.md §6).
                    return self.failed(&what);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
