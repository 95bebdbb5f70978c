//! `put-media` against a tiny in-process PutMedia server: a tokio `TcpListener` that reads the
//! chunked body incrementally, answers `200` at once and writes one ACK per fragment while the
//! body is still arriving — and, per connection, may drop the connection or send an `ERROR`.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::client::http::Endpoint;

const AKID: &str = "AKIDTEST";
const SECRET: &str = "test/secret+key";

/// What the fake server does on one connection.
#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// Drop the connection right after this many PERSISTED ACKs (0: before any body).
    drop_after: Option<usize>,
    /// After this many PERSISTED ACKs, answer the next fragment with this ERROR and keep reading.
    error_after: Option<(usize, u32)>,
    /// Answer with this status and AWS error type instead of 200.
    reject: Option<(u16, &'static str)>,
}

/// What the fake server saw on one connection.
#[derive(Debug, Default, Clone)]
struct ConnLog {
    headers: Vec<(String, String)>,
    signature_ok: bool,
    /// The de-chunked body.
    body: Vec<u8>,
    /// The terminating `0\r\n\r\n` arrived.
    body_complete: bool,
    acks: Vec<String>,
    /// ACKs written before the read that brought the terminating chunk.
    acks_before_body_end: usize,
}

impl ConnLog {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
struct Dechunker {
    buf: Vec<u8>,
    /// Bytes left in the current chunk; `None` when a size line is next.
    left: Option<usize>,
    done: bool,
}

impl Dechunker {
    fn push(&mut self, d: &[u8]) {
        self.buf.extend_from_slice(d);
    }

    fn line(&mut self) -> Option<String> {
        let pos = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8(self.buf[..pos].to_vec()).expect("ASCII chunk line");
        self.buf.drain(..pos + 2);
        Some(line)
    }

    /// Decoded data available now.
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.done {
                return None;
            }
            match self.left {
                None => {
                    let line = self.line()?;
                    let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                        .expect("hex size");
                    if size == 0 {
                        // Trailers end with an empty line.
                        loop {
                            if self.line()?.is_empty() {
                                self.done = true;
                                return None;
                            }
                        }
                    }
                    self.left = Some(size);
                }
                Some(0) => {
                    if self.buf.len() < 2 {
                        return None;
                    }
                    assert_eq!(&self.buf[..2], b"\r\n", "chunk data ends with CRLF");
                    self.buf.drain(..2);
                    self.left = None;
                }
                Some(n) => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let k = n.min(self.buf.len());
                    self.left = Some(n - k);
                    return Some(self.buf.drain(..k).collect());
                }
            }
        }
    }
}

/// The server's fragment rule in miniature: a fragment opens at a cluster whose first video
/// frame is a key frame and closes at the next one, at END_OF_FRAGMENT, or at a new document.
#[derive(Default)]
struct FakeIngest {
    parser: Option<mkv::Parser>,
    video: Vec<u64>,
    cluster_tc: u64,
    decided: bool,
    open: Option<u64>,
}

impl FakeIngest {
    /// Feeds body bytes; returns the timecodes of fragments closed.
    fn push(&mut self, data: &[u8]) -> Vec<u64> {
        let p = self
            .parser
            .get_or_insert_with(|| mkv::Parser::builder().build());
        p.push(data);
        let mut closed = Vec::new();
        while let Some(ev) = p.poll().expect("the client sends valid MKV") {
            match ev {
                mkv::Event::EbmlHeader { .. } => closed.extend(self.open.take()),
                mkv::Event::Tracks { tracks, .. } => {
                    self.video = tracks
                        .iter()
                        .filter(|t| t.kind == mkv::TrackKind::Video)
                        .map(|t| t.number)
                        .collect();
                }
                mkv::Event::ClusterStart { timecode, .. } => {
                    self.cluster_tc = timecode;
                    self.decided = false;
                }
                mkv::Event::Frame(f) if !self.decided && self.video.contains(&f.track) => {
                    self.decided = true;
                    if f.keyframe {
                        closed.extend(self.open.take());
                        self.open = Some(self.cluster_tc);
                    }
                }
                mkv::Event::Tags { tags, .. } => {
                    let eofr = tags
                        .iter()
                        .flat_map(|t| &t.simple_tags)
                        .any(|s| s.name == mkv::AWS_KINESISVIDEO_END_OF_FRAGMENT);
                    if eofr {
                        closed.extend(self.open.take());
                    }
                }
                _ => {}
            }
        }
        closed
    }
}

async fn write_chunk(sock: &mut TcpStream, text: &str) -> std::io::Result<()> {
    let line = format!("{text}\n");
    sock.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
        .await?;
    sock.flush().await
}

fn verify_signature(method: &str, target: &str, headers: &[(String, String)]) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = sigv4::Request {
        method,
        path,
        query,
        headers: &pairs,
    };
    let lookup = |akid: &str, _: Option<&str>| {
        if akid == AKID {
            Ok(sigv4::SecretKey::new(SECRET))
        } else {
            Err(sigv4::AuthError::UnknownAccessKey {
                access_key_id: akid.to_owned(),
            })
        }
    };
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    sigv4::verify(
        &req,
        sigv4::PayloadHash::EmptyStreaming,
        now,
        &sigv4::VerifyConfig::default(),
        &lookup,
    )
    .is_ok()
}

/// Serves one PutMedia connection.
async fn serve_conn(mut sock: TcpStream, b: Behaviour, number: &mut u64) -> ConnLog {
    let mut log = ConnLog::default();
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 << 10];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut tmp).await.unwrap();
        assert!(n > 0, "client closed before the request head");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
    for l in lines {
        let (n, v) = l.split_once(':').unwrap();
        log.headers
            .push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    log.signature_ok = verify_signature(method, target, &log.headers);
    if let Some((status, kind)) = b.reject {
        let body = format!(r#"{{"__type":"{kind}","message":"rejected by the fake server"}}"#);
        let resp = format!(
            "HTTP/1.1 {status} Error\r\nx-amzn-ErrorType: {kind}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        // Lingering close, as real servers do: without it the unread body makes the kernel
        // reset the connection, which can destroy the response in flight.
        let _ = sock.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while matches!(sock.read(&mut tmp).await, Ok(n) if n > 0) {}
        })
        .await;
        return log;
    }
    // 200 at once, before reading any body (full duplex).
    sock.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let mut de = Dechunker::default();
    de.push(&buf[head_end + 4..]);
    if b.drop_after == Some(0) {
        return log;
    }
    let mut ingest = FakeIngest::default();
    let mut persisted = 0usize;
    // ACKs written before the last socket read: if the terminating chunk is in that read, they
    // all reached the client while its body was still open.
    let mut acks_before_last_read = 0;
    loop {
        while let Some(data) = de.next() {
            log.body.extend_from_slice(&data);
            for tc in ingest.push(&data) {
                *number += 1;
                let ack = match b.error_after {
                    Some((n, id)) if persisted == n => {
                        format!(r#"{{"EventType":"ERROR","FragmentTimecode":{tc},"ErrorId":{id}}}"#)
                    }
                    _ => {
                        persisted += 1;
                        format!(
                            r#"{{"EventType":"PERSISTED","FragmentTimecode":{tc},"FragmentNumber":"{:047}"}}"#,
                            *number
                        )
                    }
                };
                if write_chunk(&mut sock, &ack).await.is_err() {
                    return log;
                }
                log.acks.push(ack);
                if b.drop_after == Some(persisted) {
                    // Half-close so the ACK arrives, then drop the connection mid-body.
                    let _ = sock.shutdown().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return log;
                }
            }
        }
        if de.done {
            log.body_complete = true;
            log.acks_before_body_end = acks_before_last_read;
            let _ = sock.write_all(b"0\r\n\r\n").await;
            return log;
        }
        acks_before_last_read = log.acks.len();
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return log,
            Ok(n) => de.push(&tmp[..n]),
        }
    }
}

/// Starts a server that handles one connection per behaviour, in order, then returns the logs.
async fn fake_server(
    behaviours: Vec<Behaviour>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<ConnLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut logs = Vec::new();
        let mut number = 0u64;
        for b in behaviours {
            let (sock, _) = listener.accept().await.unwrap();
            logs.push(serve_conn(sock, b, &mut number).await);
        }
        logs
    });
    (addr, task)
}

fn client_config(addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        endpoint: Endpoint::parse(&format!("http://{addr}")).unwrap(),
        credentials: sigv4::Credentials::new(AKID, SECRET),
        region: "us-east-1".into(),
        ca_bundle: None,
        credentials_source: "test".into(),
    }
}

fn settings() -> Settings {
    Settings {
        stream: "test-stream".into(),
        timecode_type: TimecodeTypeArg::Auto,
        realtime: false,
        resume: true,
        output: OutputFormat::Text,
        max_buffer: 128 << 20,
        ack_timeout: Duration::from_secs(10),
        retries: 3,
        quiet: true,
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn cluster_timecodes(body: &[u8]) -> Vec<u64> {
    mkv::parse_all(body, mkv::Parser::builder())
        .expect("each PutMedia body is valid MKV")
        .into_iter()
        .filter_map(|e| match e {
            mkv::Event::ClusterStart { timecode, .. } => Some(timecode),
            _ => None,
        })
        .collect()
}

async fn upload(addr: SocketAddr, s: &Settings, input: Vec<u8>) -> anyhow::Result<Summary> {
    tokio::time::timeout(
        Duration::from_secs(30),
        run(&client_config(addr), s, std::io::Cursor::new(input), None),
    )
    .await
    .expect("the upload finishes")
}

async fn logs(task: tokio::task::JoinHandle<Vec<ConnLog>>) -> Vec<ConnLog> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the fake server finishes")
        .unwrap()
}

/// The client only ends the body once every fragment is PERSISTED, and the server writes the
/// ACKs before it has the terminating chunk: the upload can only finish if the client read the
/// ACKs while its request body was still open — full duplex over one HTTP/1.1 connection.
#[tokio::test]
async fn full_duplex_one_connection() {
    let input = sample("ffmpeg_h264_aac.mkv");
    let want = cluster_timecodes(&input);
    let (addr, server) = fake_server(vec![Behaviour::default()]).await;
    let summary = upload(addr, &settings(), input).await.unwrap();
    let logs = logs(server).await;
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert!(
        log.signature_ok,
        "SigV4 with the empty-string payload hash verifies"
    );
    assert!(
        log.body_complete,
        "the body ended with the terminating chunk"
    );
    assert_eq!(log.acks.len(), want.len());
    assert_eq!(
        log.acks_before_body_end,
        want.len(),
        "all ACKs went out before the body ended"
    );
    assert_eq!(cluster_timecodes(&log.body), want);
    assert!(
        log.body
            .ends_with(&crate::client::cutter::end_of_fragment_tags())
    );
    for (name, value) in [
        ("x-amzn-stream-name", "test-stream"),
        ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("transfer-encoding", "chunked"),
        ("host", addr.to_string().as_str()),
    ] {
        assert_eq!(log.header(name), Some(value), "{name}");
    }
    let auth = log.header("authorization").unwrap();
    assert!(
        auth.contains("SignedHeaders=connection;host;transfer-encoding;user-agent;x-amz-date;x-amzn-fragment-acknowledgment-required;x-amzn-fragment-timecode-type;x-amzn-producer-start-timestamp;x-amzn-stream-name"),
        "{auth}"
    );
    assert!(summary.complete);
    assert_eq!(summary.connections, 1);
    assert_eq!(summary.stats.fragments_persisted, 4);
    assert_eq!(summary.stats.fragments_sent, 4);
}

/// The server drops the connection after two PERSISTED ACKs, mid-body. The client reconnects and
/// re-sends, after a fresh header, exactly the clusters without a PERSISTED ACK.
#[tokio::test]
async fn resumes_from_the_first_unpersisted_cluster_after_a_drop() {
    let input = sample("ffmpeg_h264_aac.mkv");
    let want = cluster_timecodes(&input);
    let (addr, server) = fake_server(vec![
        Behaviour {
            drop_after: Some(2),
            ..Behaviour::default()
        },
        Behaviour::default(),
    ])
    .await;
    let summary = upload(addr, &settings(), input.clone()).await.unwrap();
    let logs = logs(server).await;
    assert_eq!(logs.len(), 2);
    assert!(!logs[0].body_complete);
    assert_eq!(logs[0].acks.len(), 2);
    let second = &logs[1];
    assert!(second.signature_ok);
    assert!(
        second.body.starts_with(&input[..40]),
        "the new body starts with the EBML header"
    );
    assert_eq!(
        cluster_timecodes(&second.body),
        want[2..],
        "re-sent from the first unpersisted cluster"
    );
    assert!(second.body_complete);
    assert!(summary.complete);
    assert_eq!(summary.connections, 2);
    assert_eq!(summary.stats.fragments_persisted, 4);
    // The producer start timestamp stays the same, so re-sent fragments keep their timestamps.
    assert_eq!(
        logs[0].header("x-amzn-producer-start-timestamp"),
        second.header("x-amzn-producer-start-timestamp")
    );
}

/// An ERROR ACK: the client ends that body cleanly (terminating chunk, as kvssink) and re-sends
/// from the fragment that failed on a new connection.
#[tokio::test]
async fn resumes_after_an_error_ack() {
    let input = sample("ffmpeg_h264_aac.mkv");
    let want = cluster_timecodes(&input);
    let (addr, server) = fake_server(vec![
        Behaviour {
            error_after: Some((1, 5001)),
            ..Behaviour::default()
        },
        Behaviour::default(),
    ])
    .await;
    let summary = upload(addr, &settings(), input).await.unwrap();
    let logs = logs(server).await;
    assert!(logs[0].acks[1].contains(r#""ErrorId":5001"#));
    assert!(
        logs[0].body_complete,
        "the failed body was ended with the terminating chunk"
    );
    assert_eq!(cluster_timecodes(&logs[1].body), want[1..]);
    assert!(summary.complete);
    assert_eq!(summary.stats.error_acks, 1);
    assert_eq!(summary.connections, 2);
}

/// The same fragment refused twice with the same ErrorId: re-sending would not help.
#[tokio::test]
async fn a_fragment_refused_twice_ends_the_upload() {
    let refuse_second = Behaviour {
        error_after: Some((1, 4002)),
        ..Behaviour::default()
    };
    let (addr, server) = fake_server(vec![
        refuse_second,
        Behaviour {
            error_after: Some((0, 4002)),
            ..Behaviour::default()
        },
    ])
    .await;
    let err = upload(addr, &settings(), sample("ffmpeg_h264_aac.mkv"))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("4002") && msg.contains("again"), "{msg}");
    assert_eq!(logs(server).await.len(), 2);
}

#[tokio::test]
async fn no_resume_fails_at_the_first_drop() {
    let (addr, server) = fake_server(vec![Behaviour {
        drop_after: Some(1),
        ..Behaviour::default()
    }])
    .await;
    let s = Settings {
        resume: false,
        ..settings()
    };
    let err = upload(addr, &s, sample("ffmpeg_h264_aac.mkv"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--no-resume"), "{err:#}");
    logs(server).await;
}

#[tokio::test]
async fn gives_up_after_the_retries() {
    let drop_at_once = Behaviour {
        drop_after: Some(0),
        ..Behaviour::default()
    };
    let s = Settings {
        retries: 2,
        ..settings()
    };
    let (addr, server) = fake_server(vec![drop_at_once; 3]).await;
    let err = upload(addr, &s, sample("ffmpeg_h264_aac.mkv"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("giving up after 3 attempts"),
        "{err:#}"
    );
    assert_eq!(logs(server).await.len(), 3);
}

#[tokio::test]
async fn a_missing_stream_is_explained_and_not_retried() {
    let (addr, server) = fake_server(vec![Behaviour {
        reject: Some((404, "ResourceNotFoundException")),
        ..Behaviour::default()
    }])
    .await;
    let err = upload(addr, &settings(), sample("ffmpeg_h264_aac.mkv"))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("ResourceNotFoundException") && msg.contains("create-stream"),
        "{msg}"
    );
    assert_eq!(logs(server).await.len(), 1);
}

/// The KVS-style sample (ABSOLUTE timecodes, two EBML documents, metadata Tags, its own
/// END_OF_FRAGMENT tags) goes through unchanged in structure.
#[tokio::test]
async fn kvs_style_input_keeps_documents_and_tags() {
    let input = sample("kvs_style_h264.mkv");
    let (addr, server) = fake_server(vec![Behaviour::default()]).await;
    let summary = upload(addr, &settings(), input.clone()).await.unwrap();
    let logs = logs(server).await;
    assert_eq!(
        logs[0].header("x-amzn-fragment-timecode-type"),
        Some("ABSOLUTE")
    );
    assert_eq!(
        logs[0].header("x-amzn-producer-start-timestamp"),
        Some("1700000000.021")
    );
    assert_eq!(cluster_timecodes(&logs[0].body), cluster_timecodes(&input));
    let docs = mkv::parse_all(&logs[0].body, mkv::Parser::builder())
        .unwrap()
        .iter()
        .filter(|e| matches!(e, mkv::Event::EbmlHeader { .. }))
        .count();
    assert_eq!(docs, 2);
    assert!(summary.complete);
    assert_eq!(summary.stats.fragments_persisted, 5);
}

/// `--realtime` paces by timecodes: 5 clusters 100 ms apart take about 400 ms.
#[tokio::test]
async fn realtime_paces_by_timecodes() {
    use mkv::{Block, SizeMode, TrackEntry, TrackKind, Writer};
    let mut w = Writer::new();
    w.ebml_header(&mkv::EbmlHeader::default());
    w.begin_segment(SizeMode::Unknown);
    w.info(&mkv::Info::default());
    w.tracks(&[TrackEntry {
        number: 1,
        uid: 1,
        kind: TrackKind::Video,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: None,
        name: None,
        language: None,
        default_duration_ns: None,
        codec_delay_ns: None,
        video: None,
        audio: None,
    }]);
    let frame = [1u8; 200];
    for i in 0..5u64 {
        w.begin_cluster(i * 100, SizeMode::Unknown);
        for j in 0..4i16 {
            w.block(&Block::simple(1, j * 25, j == 0, &frame)).unwrap();
        }
    }
    let input = w.into_bytes();
    let (addr, server) = fake_server(vec![Behaviour::default()]).await;
    let s = Settings {
        realtime: true,
        ..settings()
    };
    let t0 = Instant::now();
    let summary = upload(addr, &s, input).await.unwrap();
    let elapsed = t0.elapsed();
    assert!(summary.complete);
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    logs(server).await;
}

#[test]
fn timecode_type_decision() {
    let now = UNIX_EPOCH + Duration::from_millis(1_795_306_204_485);
    let cases = [
        // (arg, first cluster (tc, scale), want type, want start)
        (
            TimecodeTypeArg::Auto,
            (21, 1_000_000),
            "RELATIVE",
            "1795306204.485",
        ),
        (
            TimecodeTypeArg::Auto,
            (1_700_000_000_021, 1_000_000),
            "ABSOLUTE",
            "1700000000.021",
        ),
        // 1 µs ticks (TimecodeScale 1000)
        (
            TimecodeTypeArg::Auto,
            (1_700_000_000_021_000, 1000),
            "ABSOLUTE",
            "1700000000.021",
        ),
        (
            TimecodeTypeArg::Absolute,
            (5, 1_000_000),
            "ABSOLUTE",
            "0.005",
        ),
        (
            TimecodeTypeArg::Relative,
            (1_700_000_000_021, 1_000_000),
            "RELATIVE",
            "1795306204.485",
        ),
    ];
    for (arg, first, ty, start) in cases {
        let (p, _) = decide_params(arg, first, now);
        assert_eq!(
            (p.timecode_type, p.producer_start.as_str()),
            (ty, start),
            "{arg:?} {first:?}"
        );
    }
}

#[test]
fn backoff_doubles_and_caps() {
    let got: Vec<u64> = (1..=8).map(|n| backoff(n).as_millis() as u64).collect();
    assert_eq!(got, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
}
