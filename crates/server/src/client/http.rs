//! HTTP plumbing of the client subcommands: the endpoint URL, one HTTP/1.1 connection over TCP
//! or TLS (hyper's low-level `client::conn::http1`, no pool), and a request body fed from a
//! channel so the caller decides when each chunk goes out.
//!
//! hyper's HTTP/1.1 client reads the response head as soon as the request head is written
//! (`Conn::can_read_head`), so the response and its body arrive while the request body is still
//! being sent: PutMedia's full duplex (kvs-api.md §7.1). `put_media`'s fake-server tests prove it.

use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A server base URL: `http[s]://host[:port][/base/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https`.
    pub(crate) tls: bool,
    /// Host as written in the URL; an IPv6 literal keeps its brackets.
    pub(crate) host: String,
    /// Port to connect to (80/443 when the URL has none).
    pub(crate) port: u16,
    /// Path prefix without a trailing slash, `""` normally. Request paths are appended to it, as
    /// the KVS producer does with its endpoint (`<endpoint> + "/putMedia"`).
    pub(crate) base_path: String,
}

impl Endpoint {
    /// Parses and checks an endpoint URL.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let uri: http::Uri = url
            .trim()
            .parse()
            .with_context(|| format!("`{url}` is not a URL like http://127.0.0.1:8080"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => bail!("unsupported scheme `{other}`: use http:// or https://"),
            None => bail!("`{url}` has no scheme: write http://{url} or https://{url}"),
        };
        let Some(authority) = uri.authority() else {
            bail!("`{url}` has no host");
        };
        if authority.as_str().contains('@') {
            bail!(
                "`{url}`: user names and passwords in the URL are not supported; use AWS credentials"
            );
        }
        if uri.query().is_some() {
            bail!("`{url}`: an endpoint URL has no query string");
        }
        let host = authority.host();
        if host.is_empty() {
            bail!("`{url}` has no host");
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint {
            tls,
            host: host.to_owned(),
            port,
            base_path,
        })
    }

    fn default_port(&self) -> u16 {
        if self.tls { 443 } else { 80 }
    }

    /// `host[:port]` as clients send it in `Host` and sign it: without the scheme's default
    /// port (browsers, curl and ffmpeg all leave `:80`/`:443` out, kvs-api.md §1.1).
    pub(crate) fn authority(&self) -> String {
        if self.port == self.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `scheme://authority/base/path`, no trailing slash.
    pub(crate) fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.base_path)
    }

    /// The request path for `path` (which starts with `/`).
    pub(crate) fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }

    /// Host for DNS / TLS server name: an IPv6 literal without brackets.
    fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// The request body: each `Bytes` sent on the channel becomes one HTTP chunk; dropping the
/// sender ends the body (hyper then writes the terminating `0\r\n\r\n`).
#[derive(Debug)]
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it. `capacity` chunks may wait between the caller and
    /// hyper; keep it small so the caller knows roughly what is on the wire.
    pub(crate) fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Worth retrying: refused, reset, unreachable, timed out, DNS.
    Transient(anyhow::Error),
    /// Retrying will not help: TLS certificate or protocol problems.
    Fatal(anyhow::Error),
}

/// Aborts the connection task when dropped, so a dropped upload closes its socket at once.
#[derive(Debug)]
pub(crate) struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens connections to one endpoint.
#[derive(Clone)]
pub(crate) struct Connector {
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connector {
    /// For https endpoints, loads the system's CA certificates (the KVS producer SDK uses the
    /// system store too) plus those in `ca_bundle`.
    pub(crate) fn new(endpoint: Endpoint, ca_bundle: Option<&Path>) -> anyhow::Result<Self> {
        let tls = if endpoint.tls {
            Some(tls_connector(ca_bundle)?)
        } else {
            None
        };
        Ok(Connector {
            endpoint,
            tls,
            timeout: Duration::from_secs(10),
        })
    }

    /// Opens one HTTP/1.1 connection and spawns its driver task.
    pub(crate) async fn connect<B>(&self) -> Result<(http1::SendRequest<B>, ConnTask), ConnectError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = (self.endpoint.bare_host(), self.endpoint.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                ConnectError::Transient(anyhow::anyhow!(
                    "connecting to {} timed out after {:?}",
                    self.endpoint.authority(),
                    self.timeout
                ))
            })?
            .map_err(|e| {
                ConnectError::Transient(
                    anyhow::Error::new(e)
                        .context(format!("connecting to {}", self.endpoint.authority())),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await,
            Some(connector) => {
                let name =
                    ServerName::try_from(self.endpoint.bare_host().to_owned()).map_err(|e| {
                        ConnectError::Fatal(anyhow::anyhow!(
                            "`{}` is not a valid TLS server name: {e}",
                            self.endpoint.host
                        ))
                    })?;
                let stream = tokio::time::timeout(self.timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| ConnectError::Transient(anyhow::anyhow!("TLS handshake with {} timed out", self.endpoint.authority())))?
                    .map_err(|e| {
                        // rustls reports certificate and protocol errors as InvalidData.
                        let transient = e.kind() != std::io::ErrorKind::InvalidData;
                        let err = anyhow::Error::new(e).context(format!(
                            "TLS handshake with {} (add a CA with --ca-bundle or AWS_CA_BUNDLE if the server uses a private CA)",
                            self.endpoint.authority()
                        ));
                        if transient { ConnectError::Transient(err) } else { ConnectError::Fatal(err) }
                    })?;
                handshake(TokioIo::new(stream)).await
            }
        }
    }
}

async fn handshake<T, B>(io: T) -> Result<(http1::SendRequest<B>, ConnTask), ConnectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| {
        ConnectError::Transient(anyhow::Error::new(e).context("HTTP/1.1 handshake"))
    })?;
    // Errors of the connection surface through the response and body futures.
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, ConnTask(task)))
}

fn tls_connector(ca_bundle: Option<&Path>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    Ok(tokio_rustls::TlsConnector::from(tls_client_config(
        ca_bundle,
    )?))
}

/// The rustls client settings of every https client here: the system CA store plus
/// `ca_bundle`, HTTP/1.1 ALPN.
pub(crate) fn tls_client_config(
    ca_bundle: Option<&Path>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // Skip what webpki cannot parse, as browsers skip odd system certificates.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_bundle {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading CA bundle {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("parsing CA bundle {}", path.display()))?;
            roots.add(cert).with_context(|| {
                format!(
                    "CA bundle {} holds a certificate rustls rejects",
                    path.display()
                )
            })?;
            added += 1;
        }
        if added == 0 {
            bail!("CA bundle {} holds no PEM certificate", path.display());
        }
    }
    if roots.is_empty() {
        bail!(
            "no trusted CA certificates: install the system CA store (ca-certificates) or pass --ca-bundle PEM"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        // (url, authority, base_url, connect host, port, tls)
        let ok = [
            (
                "http://127.0.0.1:8080",
                "127.0.0.1:8080",
                "http://127.0.0.1:8080",
                "127.0.0.1",
                8080,
                false,
            ),
            (
                "http://127.0.0.1:8080/",
                "127.0.0.1:8080",
                "http://127.0.0.1:8080",
                "127.0.0.1",
                8080,
                false,
            ),
            ("http://h:80", "h", "http://h", "h", 80, false),
            (
                "https://video.example.org",
                "video.example.org",
                "https://video.example.org",
                "video.example.org",
                443,
                true,
            ),
            (
                "https://v.example.org:443/kvs/",
                "v.example.org",
                "https://v.example.org/kvs",
                "v.example.org",
                443,
                true,
            ),
            (
                "https://h:8443",
                "h:8443",
                "https://h:8443",
                "h",
                8443,
                true,
            ),
            (
                "http://[::1]:9000",
                "[::1]:9000",
                "http://[::1]:9000",
                "::1",
                9000,
                false,
            ),
        ];
        for (url, authority, base, host, port, tls) in ok {
            let e = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e:#}"));
            assert_eq!(e.authority(), authority, "{url}");
            assert_eq!(e.base_url(), base, "{url}");
            assert_eq!(e.bare_host(), host, "{url}");
            assert_eq!(e.port, port, "{url}");
            assert_eq!(e.tls, tls, "{url}");
        }
        assert_eq!(
            Endpoint::parse("https://h/kvs").unwrap().path("/putMedia"),
            "/kvs/putMedia"
        );
        assert_eq!(
            Endpoint::parse("http://h:1").unwrap().path("/putMedia"),
            "/putMedia"
        );

        let bad = [
            ("127.0.0.1:8080", "scheme"),
            ("ftp://h", "unsupported scheme"),
            ("http://u:p@h", "passwords"),
            ("http://h/?a=1", "query"),
            ("not a url", "not a URL"),
        ];
        for (url, needle) in bad {
            let e = format!("{:#}", Endpoint::parse(url).unwrap_err());
            assert!(e.contains(needle), "{url}: {e}");
        }
    }
}
