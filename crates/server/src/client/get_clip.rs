//! `openkvs get-clip` (GetClip, `kvs-api.md` §10, to a file) and `openkvs presign get-clip` (a
//! presigned URL of the same clip on openkvs' ranged clip resource `/clip/v1/getClip.mp4`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::cli::{ClipRangeArgs, GetClipArgs, PresignGetClipArgs, TimestampTypeArg};
use crate::client::aws_config::{self, ClientConfig};
use crate::client::http::{ConnectError, Connector};
use crate::client::timearg::epoch_secs;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The clip range with relative times resolved: (stream, selector type, start ms, end ms).
struct Resolved<'a> {
    stream: &'a str,
    selector: &'static str,
    start_ms: i64,
    end_ms: i64,
}

fn resolve(r: &ClipRangeArgs, now_ms: i64) -> anyhow::Result<Resolved<'_>> {
    kvs_core::StreamName::parse(&r.stream).with_context(|| format!("--stream `{}`", r.stream))?;
    let (start_ms, end_ms) = (r.start.resolve(now_ms), r.end.resolve(now_ms));
    if end_ms <= start_ms {
        bail!(
            "--end ({}) must be later than --start ({})",
            epoch_secs(end_ms),
            epoch_secs(start_ms)
        );
    }
    Ok(Resolved {
        stream: &r.stream,
        selector: match r.timestamp_type {
            TimestampTypeArg::Server => "SERVER_TIMESTAMP",
            TimestampTypeArg::Producer => "PRODUCER_TIMESTAMP",
        },
        start_ms,
        end_ms,
    })
}

/// `openkvs presign get-clip`: prints the URL alone on stdout.
pub(crate) fn presign_command(args: &PresignGetClipArgs) -> anyhow::Result<()> {
    let cfg = aws_config::resolve(&args.client)?;
    let now = now_ms();
    let r = resolve(&args.range, now)?;
    let expires = i64::try_from(args.expires.as_secs()).unwrap_or(i64::MAX);
    let url = presign_clip_url(&cfg, &r, expires, now / 1000);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{url}")?;
    out.flush()?;
    Ok(())
}

/// `<endpoint>/clip/v1/getClip.mp4?StreamName=…&FragmentSelectorType=…&StartTimestamp=…&
/// EndTimestamp=…&X-Amz-…`, presigned for GET (`X-Amz-SignedHeaders=host`).
fn presign_clip_url(
    cfg: &ClientConfig,
    r: &Resolved<'_>,
    expires_secs: i64,
    now_unix: i64,
) -> String {
    let endpoint = format!("{}/clip/v1/getClip.mp4", cfg.endpoint.base_url());
    let (start, end) = (epoch_secs(r.start_ms), epoch_secs(r.end_ms));
    sigv4::presign_url(
        &sigv4::SigningParams {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "kinesisvideo",
            now_unix,
        },
        &sigv4::PresignRequest {
            method: "GET",
            endpoint: &endpoint,
            params: &[
                ("StreamName", r.stream),
                ("FragmentSelectorType", r.selector),
                ("StartTimestamp", &start),
                ("EndTimestamp", &end),
            ],
            expires_secs,
        },
    )
}

/// `openkvs get-clip`: GetClip into a file, then prints `<sha256>  <file>` on stdout.
pub(crate) fn command(args: &GetClipArgs) -> anyhow::Result<()> {
    let cfg = aws_config::resolve(&args.client)?;
    let r = resolve(&args.range, now_ms())?;
    let out = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}_{}_{}.mp4",
            r.stream,
            epoch_secs(r.start_ms),
            epoch_secs(r.end_ms)
        ))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let digest = rt.block_on(download(&cfg, &r, &out, args.quiet))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{digest}  {}", out.display())?;
    stdout.flush()?;
    Ok(())
}

fn request(cfg: &ClientConfig, r: &Resolved<'_>) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let body = serde_json::json!({
        "StreamName": r.stream,
        "ClipFragmentSelector": {
            "FragmentSelectorType": r.selector,
            "TimestampRange": {
                "StartTimestamp": r.start_ms as f64 / 1000.0,
                "EndTimestamp": r.end_ms as f64 / 1000.0,
            },
        },
    })
    .to_string();
    let path = cfg.endpoint.path("/getClip");
    let host = cfg.endpoint.authority();
    let user_agent = format!("openkvs/{}", env!("CARGO_PKG_VERSION"));
    let headers: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("host", &host),
        ("user-agent", &user_agent),
    ];
    let auth = sigv4::sign_headers(
        &sigv4::SigningParams {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "kinesisvideo",
            now_unix: now_ms() / 1000,
        },
        &sigv4::Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
        },
        &["content-type", "host"],
        &sigv4::sha256_hex(body.as_bytes()),
    );
    let mut b = hyper::Request::builder().method("POST").uri(&path);
    for (n, v) in headers
        .iter()
        .copied()
        .chain(auth.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        b = b.header(n, v);
    }
    b.body(Full::new(Bytes::from(body)))
        .context("building the GetClip request")
}

/// Sends GetClip and streams the body into `<out>.part`, renamed to `out` once complete.
async fn download(
    cfg: &ClientConfig,
    r: &Resolved<'_>,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<String> {
    let connector = Connector::new(cfg.endpoint.clone(), cfg.ca_bundle.as_deref())?;
    let (mut sender, _task) = connector
        .connect::<Full<Bytes>>()
        .await
        .map_err(|e| match e {
            ConnectError::Transient(e) | ConnectError::Fatal(e) => e,
        })?;
    let resp = sender
        .send_request(request(cfg, r)?)
        .await
        .context("sending GetClip")?;
    let status = resp.status();
    if !status.is_success() {
        let ty = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_owned());
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let body = body.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(|m| m.as_str())
            .map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            );
        let code = ty
            .or_else(|| v.get("__type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        bail!("GetClip failed: HTTP {status} {code}: {message}");
    }
    let total = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        // Hidden by indicatif when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(total, target).with_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .expect("valid template"),
    );
    let mut part = out.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut file = tokio::fs::File::create(&part)
        .await
        .with_context(|| format!("creating {}", part.display()))?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut body = resp.into_body();
    let result: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the clip")?;
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                file.write_all(&data)
                    .await
                    .with_context(|| format!("writing {}", part.display()))?;
                written += data.len() as u64;
                bar.set_position(written);
            }
        }
        file.flush().await?;
        file.sync_all().await?;
        if let Some(t) = total
            && t != written
        {
            bail!("the server sent {written} of {t} bytes");
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    tokio::fs::rename(&part, out)
        .await
        .with_context(|| format!("renaming {} to {}", part.display(), out.display()))?;
    if !quiet {
        let _ = writeln!(
            std::io::stderr(),
            "wrote {} ({})",
            out.display(),
            indicatif::HumanBytes(written)
        );
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::http::Endpoint;
    use crate::client::timearg::TimeArg;

    const NOW: i64 = 1_795_341_600; // 2026-11-22T10:00:00Z

    #[test]
    fn presigned_clip_url_verifies_as_a_get() {
        let cfg = ClientConfig {
            endpoint: Endpoint::parse("http://127.0.0.1:8080").unwrap(),
            credentials: sigv4::Credentials::new("AKIDTEST", "secret"),
            region: "us-east-1".into(),
            ca_bundle: None,
            credentials_source: "test".into(),
        };
        let range = ClipRangeArgs {
            stream: "cam1".into(),
            start: TimeArg::Ago(900_000),
            end: TimeArg::Ago(0),
            timestamp_type: TimestampTypeArg::Producer,
        };
        let r = resolve(&range, NOW * 1000).unwrap();
        let url = presign_clip_url(&cfg, &r, 3600, NOW);
        let (path, query) = url
            .strip_prefix("http://127.0.0.1:8080")
            .unwrap()
            .split_once('?')
            .unwrap();
        assert_eq!(path, "/clip/v1/getClip.mp4");
        for p in [
            "StreamName=cam1",
            "FragmentSelectorType=PRODUCER_TIMESTAMP",
            "StartTimestamp=1795340700",
            "EndTimestamp=1795341600",
        ] {
            assert!(query.split('&').any(|q| q == p), "{p} missing in {url}");
        }
        let headers = [("host", "127.0.0.1:8080")];
        let lookup = |_: &str, _: Option<&str>| Ok(sigv4::SecretKey::new("secret"));
        let verify = |method, query: &str| {
            sigv4::verify(
                &sigv4::Request {
                    method,
                    path,
                    query,
                    headers: &headers,
                },
                sigv4::PayloadHash::EmptyStreaming,
                NOW + 10,
                &sigv4::VerifyConfig::default(),
                &lookup,
            )
        };
        assert!(verify("GET", query).is_ok());
        let tampered = query.replace("StartTimestamp=1795340700", "StartTimestamp=1795340000");
        assert!(verify("GET", &tampered).is_err());
    }

    #[test]
    fn end_must_follow_start() {
        let range = ClipRangeArgs {
            stream: "cam1".into(),
            start: TimeArg::Ago(0),
            end: TimeArg::Ago(60_000),
            timestamp_type: TimestampTypeArg::Server,
        };
        assert!(resolve(&range, NOW * 1000).is_err());
    }
}
