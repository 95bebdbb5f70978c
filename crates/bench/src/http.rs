//! A small HTTP/1.1 client for benchmarks: SigV4-signed JSON calls and full-duplex PutMedia.

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// `127.0.0.1:8080`.
    pub addr: String,
    /// Access key id.
    pub akid: String,
    /// Secret.
    pub secret: String,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn signed_headers(
    t: &Target,
    path: &str,
    extra: &[(&str, &str)],
    payload_hash: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(&str, &str)> = vec![("host", t.addr.as_str())];
    headers.extend_from_slice(extra);
    let creds = sigv4::Credentials::new(t.akid.clone(), t.secret.clone());
    let params = sigv4::SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "kinesisvideo",
        now_unix: now_unix(),
    };
    let req = sigv4::Request {
        method: "POST",
        path,
        query: "",
        headers: &headers,
    };
    let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(sigv4::sign_headers(&params, &req, &names, payload_hash));
    out
}

fn head(path: &str, headers: &[(String, String)]) -> String {
    let mut s = format!("POST {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

async fn read_head(
    r: &mut BufReader<OwnedReadHalf>,
) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// A signed JSON call; returns status and body.
pub async fn json_call(
    t: &Target,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, String)> {
    let body = serde_json::to_vec(body)?;
    let len = body.len().to_string();
    let hash = sigv4::sha256_hex(&body);
    let headers = signed_headers(
        t,
        path,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
        &hash,
    );
    let stream = TcpStream::connect(&t.addr).await?;
    let (r, mut w) = stream.into_split();
    w.write_all(head(path, &headers).as_bytes()).await?;
    w.write_all(&body).await?;
    let mut r = BufReader::new(r);
    let (status, hdrs) = read_head(&mut r).await?;
    let n: usize = hdrs
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(Ok(0), |(_, v)| v.parse())?;
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).await?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

/// A signed JSON call whose answer is streamed: returns the reader positioned at the body, the
/// status and the Content-Length (`u64::MAX` when absent).
pub async fn json_call_stream(
    t: &Target,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(BufReader<OwnedReadHalf>, u16, u64)> {
    let body = serde_json::to_vec(body)?;
    let len = body.len().to_string();
    let hash = sigv4::sha256_hex(&body);
    let headers = signed_headers(
        t,
        path,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
        &hash,
    );
    let stream = TcpStream::connect(&t.addr).await?;
    let (r, mut w) = stream.into_split();
    w.write_all(head(path, &headers).as_bytes()).await?;
    w.write_all(&body).await?;
    // Keep the write half alive until the answer is read: dropping it would half-close.
    std::mem::forget(w);
    let mut r = BufReader::new(r);
    let (status, hdrs) = read_head(&mut r).await?;
    let n = hdrs
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(Ok(u64::MAX), |(_, v)| v.parse())?;
    Ok((r, status, n))
}

/// The sending half of a PutMedia request (chunked body).
#[derive(Debug)]
pub struct BodyWriter(OwnedWriteHalf);

impl BodyWriter {
    /// Sends one chunk.
    pub async fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(b"\r\n");
        self.0.write_all(&buf).await
    }

    /// Ends the body.
    pub async fn finish(mut self) -> std::io::Result<()> {
        self.0.write_all(b"0\r\n\r\n").await
    }
}

/// The receiving half: ack JSON lines from the chunked response.
#[derive(Debug)]
pub struct AckReader {
    r: BufReader<OwnedReadHalf>,
    pending: Vec<u8>,
}

impl AckReader {
    /// The next ack line, or `None` at the end of the response.
    pub async fn next(&mut self) -> anyhow::Result<Option<serde_json::Value>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(serde_json::from_slice(&line)?));
            }
            let mut size = String::new();
            if self.r.read_line(&mut size).await? == 0 {
                return Ok(None);
            }
            let n = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
            if n == 0 {
                return Ok(None);
            }
            let mut buf = vec![0; n + 2];
            self.r.read_exact(&mut buf).await?;
            buf.truncate(n);
            self.pending.extend_from_slice(&buf);
        }
    }
}

/// Opens a PutMedia request signed like the KVS C producer (empty-payload hash).
pub async fn put_media(t: &Target, stream: &str) -> anyhow::Result<(BodyWriter, AckReader)> {
    let extra = [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("user-agent", "openkvs-bench"),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-stream-name", stream),
    ];
    let headers = signed_headers(t, "/putMedia", &extra, sigv4::EMPTY_SHA256);
    let s = TcpStream::connect(&t.addr).await?;
    s.set_nodelay(true)?;
    let (r, mut w) = s.into_split();
    w.write_all(head("/putMedia", &headers).as_bytes()).await?;
    let mut r = BufReader::new(r);
    let (status, _) = read_head(&mut r).await?;
    if status != 200 {
        bail!("PutMedia answered {status}");
    }
    Ok((
        BodyWriter(w),
        AckReader {
            r,
            pending: Vec::new(),
        },
    ))
}

/// A keep-alive connection for plain `GET`s (playlists and segments carry their own session
/// token, so nothing is signed).
#[derive(Debug)]
pub struct GetConn {
    host: String,
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl GetConn {
    /// Connects to `addr` (`127.0.0.1:8080`).
    pub async fn connect(addr: &str) -> anyhow::Result<GetConn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(GetConn {
            host: addr.to_owned(),
            r: BufReader::new(r),
            w,
        })
    }

    /// `GET path_and_query`; returns status and body (Content-Length bodies only).
    pub async fn get(&mut self, path_and_query: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nhost: {}\r\n\r\n",
            self.host
        );
        self.w.write_all(req.as_bytes()).await?;
        let (status, hdrs) = read_head(&mut self.r).await?;
        let n: usize = hdrs
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse())
            .context("GET answer without Content-Length")??;
        let mut buf = vec![0; n];
        self.r.read_exact(&mut buf).await?;
        Ok((status, buf))
    }
}

/// Creates `bucket` on an S3-compatible server at `t.addr` (path-style `PUT /bucket`, SigV4 for
/// service `s3`). A bucket that already exists is not an error.
pub async fn s3_create_bucket(t: &Target, bucket: &str) -> anyhow::Result<()> {
    let path = format!("/{bucket}");
    let headers: Vec<(&str, &str)> = vec![
        ("host", t.addr.as_str()),
        ("content-length", "0"),
        ("x-amz-content-sha256", sigv4::EMPTY_SHA256),
    ];
    let creds = sigv4::Credentials::new(t.akid.clone(), t.secret.clone());
    let params = sigv4::SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        now_unix: now_unix(),
    };
    let req = sigv4::Request {
        method: "PUT",
        path: &path,
        query: "",
        headers: &headers,
    };
    let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let mut head = format!("PUT {path} HTTP/1.1\r\nconnection: close\r\n");
    let signed = sigv4::sign_headers(&params, &req, &names, sigv4::EMPTY_SHA256);
    for (k, v) in headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(signed)
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let stream = TcpStream::connect(&t.addr).await?;
    let (r, mut w) = stream.into_split();
    w.write_all(head.as_bytes()).await?;
    let mut r = BufReader::new(r);
    let (status, _) = read_head(&mut r).await?;
    let mut body = String::new();
    let _ = r.read_to_string(&mut body).await;
    if status == 200 || body.contains("BucketAlreadyOwnedByYou") {
        return Ok(());
    }
    bail!("CreateBucket {bucket}: {status} {body}")
}
