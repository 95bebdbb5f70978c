//! The KVS calls a WebRTC peer makes before it has media: DescribeSignalingChannel,
//! GetSignalingChannelEndpoint, GetIceServerConfig (SigV4-signed JSON POSTs, `kvs-api.md` §5,
//! §13.3) and the presigned signaling WebSocket (§13.4), over plain TCP or rustls.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// How long to wait for a TCP connect, TLS handshake or HTTP response.
const TIMEOUT: Duration = Duration::from_secs(10);
/// `X-Amz-Expires` of the presigned WebSocket URL, as the KVS JS SDK signs it.
const PRESIGN_EXPIRES_SECS: i64 = 299;

/// A byte stream: TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Signing identity and transport settings shared by every call.
#[derive(Clone)]
pub(crate) struct Signer {
    pub(crate) credentials: sigv4::Credentials,
    pub(crate) region: String,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("credentials", &self.credentials)
            .field("region", &self.region)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// `scheme://host[:port]` split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) tls: bool,
    /// Host as written (brackets kept for IPv6).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as the Host header carries it (no default port).
    pub(crate) authority: String,
    /// Path without a trailing `/` (often empty).
    pub(crate) path: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Url> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("`{url}` has no scheme (http://, https://, ws://, wss://)"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            other => bail!("`{url}`: unsupported scheme `{other}`"),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("`{url}`: bad port `{p}`"))?,
            ),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            bail!("`{url}` has no host");
        }
        Ok(Url {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Opens TCP, then TLS for https/wss.
async fn connect(signer: &Signer, url: &Url) -> anyhow::Result<Box<dyn Io>> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((url.bare_host(), url.port)))
        .await
        .with_context(|| format!("connecting to {} timed out", url.authority))?
        .with_context(|| format!("connecting to {}", url.authority))?;
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return Ok(Box::new(tcp));
    }
    let config = signer.tls.clone().with_context(|| {
        format!(
            "{} needs TLS but no TLS client configuration was given",
            url.authority
        )
    })?;
    let name = rustls::pki_types::ServerName::try_from(url.bare_host().to_owned())
        .with_context(|| format!("`{}` is not a valid TLS server name", url.host))?;
    let stream = tokio::time::timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .with_context(|| format!("TLS handshake with {} timed out", url.authority))?
    .with_context(|| format!("TLS handshake with {}", url.authority))?;
    Ok(Box::new(stream))
}

/// POSTs a SigV4-signed JSON request (service `kinesisvideo`) and returns the JSON answer; an
/// error status becomes an error carrying the AWS error code and message.
pub(crate) async fn post_json(
    signer: &Signer,
    base: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let url = Url::parse(base)?;
    let path = format!("{}{path}", url.path);
    let body = body.to_string();
    let user_agent = concat!("openkvs-camera/", env!("CARGO_PKG_VERSION"));
    let headers: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("host", &url.authority),
        ("user-agent", user_agent),
    ];
    let auth = sigv4::sign_headers(
        &sigv4::SigningParams {
            credentials: &signer.credentials,
            region: &signer.region,
            service: "kinesisvideo",
            now_unix: now_unix(),
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
    let mut req = hyper::Request::builder().method("POST").uri(&path);
    for (n, v) in headers
        .iter()
        .copied()
        .chain(auth.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        req = req.header(n, v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;

    let io = connect(signer, &url).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP/1.1 handshake")?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = tokio::time::timeout(TIMEOUT, sender.send_request(req))
            .await
            .with_context(|| format!("POST {path}: no answer within {TIMEOUT:?}"))?
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
            .await
            .with_context(|| format!("POST {path}: body timed out"))?
            .with_context(|| format!("POST {path}: reading the body"))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = v.get("__type").and_then(Value::as_str).unwrap_or("");
            let message = v
                .get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            bail!("POST {path}: HTTP {status} {code}: {message}");
        }
        Ok(v)
    }
    .await;
    conn.abort();
    result
}

/// What a peer needs to reach signaling: the channel ARN and its endpoints.
#[derive(Debug, Clone)]
pub(crate) struct ChannelEndpoints {
    pub(crate) arn: String,
    pub(crate) wss: String,
    pub(crate) https: String,
}

/// DescribeSignalingChannel + GetSignalingChannelEndpoint for `role` (`MASTER`/`VIEWER`).
pub(crate) async fn channel_endpoints(
    signer: &Signer,
    endpoint: &str,
    channel: &str,
    role: &str,
) -> anyhow::Result<ChannelEndpoints> {
    let described = post_json(
        signer,
        endpoint,
        "/describeSignalingChannel",
        &json!({ "ChannelName": channel }),
    )
    .await
    .with_context(|| format!("DescribeSignalingChannel `{channel}`"))?;
    let arn = described
        .pointer("/ChannelInfo/ChannelARN")
        .and_then(Value::as_str)
        .context("DescribeSignalingChannel answer has no ChannelInfo.ChannelARN")?
        .to_owned();
    let eps = post_json(
        signer,
        endpoint,
        "/getSignalingChannelEndpoint",
        &json!({
            "ChannelARN": arn,
            "SingleMasterChannelEndpointConfiguration": {
                "Protocols": ["WSS", "HTTPS"],
                "Role": role,
            },
        }),
    )
    .await
    .context("GetSignalingChannelEndpoint")?;
    let list = eps
        .get("ResourceEndpointList")
        .and_then(Value::as_array)
        .context("GetSignalingChannelEndpoint answer has no ResourceEndpointList")?;
    let find = |proto: &str| -> anyhow::Result<String> {
        list.iter()
            .find(|e| e.get("Protocol").and_then(Value::as_str) == Some(proto))
            .and_then(|e| e.get("ResourceEndpoint").and_then(Value::as_str))
            .map(str::to_owned)
            .with_context(|| format!("GetSignalingChannelEndpoint returned no {proto} endpoint"))
    };
    Ok(ChannelEndpoints {
        arn,
        wss: find("WSS")?,
        https: find("HTTPS")?,
    })
}

/// One entry of GetIceServerConfig's `IceServerList`, plus the STUN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IceServer {
    pub(crate) urls: Vec<String>,
    pub(crate) username: String,
    pub(crate) credential: String,
}

/// GetIceServerConfig (`POST {https}/v1/get-ice-server-config`). The `stun:` URI is derived from
/// the TURN host, as the KVS SDKs do (`stun:stun.kinesisvideo.{region}.amazonaws.com:443` on
/// AWS; here the first TURN URI's host and port).
pub(crate) async fn ice_servers(
    signer: &Signer,
    eps: &ChannelEndpoints,
    client_id: Option<&str>,
) -> anyhow::Result<Vec<IceServer>> {
    let mut body = json!({ "ChannelARN": eps.arn, "Service": "TURN" });
    if let Some(id) = client_id {
        body["ClientId"] = json!(id);
    }
    let v = post_json(signer, &eps.https, "/v1/get-ice-server-config", &body)
        .await
        .context("GetIceServerConfig")?;
    let list = v
        .get("IceServerList")
        .and_then(Value::as_array)
        .context("GetIceServerConfig answer has no IceServerList")?;
    let mut out = Vec::new();
    for s in list {
        let urls: Vec<String> = s
            .get("Uris")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if urls.is_empty() {
            continue;
        }
        out.push(IceServer {
            urls,
            username: s
                .get("Username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            credential: s
                .get("Password")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    }
    if let Some(stun) = out.first().and_then(|s| stun_from_turn(&s.urls[0])) {
        out.insert(
            0,
            IceServer {
                urls: vec![stun],
                username: String::new(),
                credential: String::new(),
            },
        );
    }
    Ok(out)
}

/// `turn:host:port?transport=udp` -> `stun:host:port`; `turns:` URIs have no STUN twin.
fn stun_from_turn(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("turn:")?;
    let hostport = rest.split('?').next()?;
    Some(format!("stun:{hostport}"))
}

/// The signaling WebSocket type.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// Opens the signaling WebSocket with a presigned URL (`X-Amz-ChannelARN`, plus
/// `X-Amz-ClientId` for a viewer).
pub(crate) async fn connect_signaling(
    signer: &Signer,
    eps: &ChannelEndpoints,
    client_id: Option<&str>,
) -> anyhow::Result<Ws> {
    let mut params: Vec<(&str, &str)> = vec![("X-Amz-ChannelARN", &eps.arn)];
    if let Some(id) = client_id {
        params.push(("X-Amz-ClientId", id));
    }
    let url = sigv4::presign_url(
        &sigv4::SigningParams {
            credentials: &signer.credentials,
            region: &signer.region,
            service: "kinesisvideo",
            now_unix: now_unix(),
        },
        &sigv4::PresignRequest {
            method: "GET",
            endpoint: &eps.wss,
            params: &params,
            expires_secs: PRESIGN_EXPIRES_SECS,
        },
    );
    let parsed = Url::parse(&eps.wss)?;
    let io = connect(signer, &parsed).await?;
    let (ws, _resp) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(url, io))
        .await
        .context("signaling WebSocket handshake timed out")?
        .context("signaling WebSocket handshake")?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_table() {
        struct Case {
            url: &'static str,
            want: Option<(bool, &'static str, u16, &'static str, &'static str)>,
        }
        let cases = [
            Case {
                url: "http://127.0.0.1:8080",
                want: Some((false, "127.0.0.1", 8080, "127.0.0.1:8080", "")),
            },
            Case {
                url: "wss://example.org/",
                want: Some((true, "example.org", 443, "example.org", "")),
            },
            Case {
                url: "https://[::1]:9/base/",
                want: Some((true, "[::1]", 9, "[::1]:9", "/base")),
            },
            Case {
                url: "ws://[::1]",
                want: Some((false, "[::1]", 80, "[::1]", "")),
            },
            Case {
                url: "ftp://x",
                want: None,
            },
            Case {
                url: "127.0.0.1:80",
                want: None,
            },
        ];
        for c in cases {
            let got = Url::parse(c.url).ok().map(|u| {
                (
                    u.tls,
                    u.host.clone(),
                    u.port,
                    u.authority.clone(),
                    u.path.clone(),
                )
            });
            let want = c
                .want
                .map(|(t, h, p, a, path)| (t, h.to_owned(), p, a.to_owned(), path.to_owned()));
            assert_eq!(got, want, "{}", c.url);
        }
    }

    #[test]
    fn stun_uri_from_turn_uri() {
        assert_eq!(
            stun_from_turn("turn:127.0.0.1:3478?transport=udp").as_deref(),
            Some("stun:127.0.0.1:3478")
        );
        assert_eq!(stun_from_turn("turns:h:443?transport=tcp"), None);
    }
}
