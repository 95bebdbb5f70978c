//! `openkvs serve`: wiring and the server's life cycle.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::config::ServeConfig;
use crate::credentials;

pub(crate) fn init_logging(format: LogFormat) {
    init_logging_with(format, "info");
}

/// [`init_logging`] with another default filter when RUST_LOG is unset.
pub(crate) fn init_logging_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only on a terminal: log files and test captures stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Creates the data dir readable by its owner only: it holds video evidence and keys.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating data dir {}", dir.display()))
}

/// HTTP/1 settings of the listener (plain and TLS alike).
fn http1_options(
    h1: &mut hyper_util::server::conn::auto::Http1Builder<'_, hyper_util::rt::TokioExecutor>,
    header_read_timeout: Duration,
) {
    h1
        // Producers such as ffmpeg send the last chunk of a PutMedia body and close their
        // side at once; without half-close hyper drops what it had not yet handed to the
        // handler when it reads that EOF.
        .half_close(true)
        // Without a timer hyper's header read timeout does nothing, and a client trickling a
        // request head one byte at a time holds its connection (and a descriptor) forever.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout);
}

/// The opened catalog and media store, and the PostgreSQL pool when the fragment index is in
/// PostgreSQL (`store = "s3"`): its nodes announce fragments to each other over it.
struct Backends {
    catalog: Arc<dyn store::Catalog>,
    fragments: Arc<dyn store::FragmentStore>,
    #[cfg(feature = "postgres")]
    shared_index: Option<store::PgPool>,
}

/// Opens the configured catalog and media store. `config.rs` has already refused a backend this
/// binary was built without, so the `cfg` branches below are unreachable in practice.
async fn open_backends(cfg: &ServeConfig) -> anyhow::Result<Backends> {
    use crate::cli::{CatalogKind, StoreKind};
    let b = &cfg.backends;
    #[cfg(feature = "postgres")]
    let pg = match &b.postgres_url {
        Some(url) => Some(
            store::PgPool::connect(url, &store::PgOptions::default())
                .await
                .context("connecting to PostgreSQL and applying migrations")?,
        ),
        None => None,
    };
    let catalog: Arc<dyn store::Catalog> = match b.catalog {
        CatalogKind::Sqlite => Arc::new(
            store::SqliteCatalog::open(&cfg.data_dir)
                .with_context(|| format!("opening the catalog in {}", cfg.data_dir.display()))?,
        ),
        #[cfg(feature = "postgres")]
        CatalogKind::Postgres => Arc::new(store::PostgresCatalog::new(
            pg.clone()
                .context("catalog = postgres without a PostgreSQL URL")?,
        )),
        #[cfg(not(feature = "postgres"))]
        CatalogKind::Postgres => anyhow::bail!("built without the `postgres` feature"),
    };
    let fragments: Arc<dyn store::FragmentStore> = match b.store {
        StoreKind::Local => Arc::new(store::LocalFragmentStore::open(&cfg.data_dir).with_context(
            || format!("opening the fragment store in {}", cfg.data_dir.display()),
        )?),
        #[cfg(feature = "s3")]
        StoreKind::S3 => {
            let s = b.s3.as_ref().context("store = s3 without [s3] settings")?;
            let mut options = store::S3Options::new(
                s.bucket.clone(),
                s.endpoint_url.clone(),
                s.access_key_id.clone(),
                s.secret_access_key.clone(),
            );
            options.region = s.region.clone();
            Arc::new(
                store::S3FragmentStore::open(
                    pg.clone().context("store = s3 without a PostgreSQL URL")?,
                    &options,
                )
                .await
                .with_context(|| format!("opening S3 bucket {}", s.bucket))?,
            )
        }
        #[cfg(not(feature = "s3"))]
        StoreKind::S3 => anyhow::bail!("built without the `s3` feature"),
    };
    Ok(Backends {
        catalog,
        fragments,
        #[cfg(feature = "postgres")]
        shared_index: pg.filter(|_| matches!(b.store, StoreKind::S3)),
    })
}

/// Wakes this node's live readers (GetMedia tails) when any node stores a fragment in the shared
/// PostgreSQL index, and all of them after the listener reconnected (announcements of the gap
/// are lost; the readers re-read the index).
#[cfg(feature = "postgres")]
fn spawn_cross_node_live(pg: &store::PgPool, live: Arc<api::live::Hub>) {
    store::spawn_fragment_listener(pg, store::ListenOptions::default(), move |e| match e {
        store::FragmentEvent::Stored { stream_arn, number } => {
            live.published_elsewhere(&stream_arn, number);
        }
        store::FragmentEvent::Resync => live.wake_all(),
    });
}

/// Most open files the server asks for (every WebSocket, PutMedia connection and open segment
/// file is a descriptor; 20,000 signaling sockets need more than the usual soft limit of 1,024).
const FD_LIMIT_WANTED: u64 = 1 << 20;

/// Raises the soft open-file limit toward the hard one; returns (before, after) if it changed.
fn raise_fd_limit() -> Option<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current?; // None: unlimited already
    let target = limit
        .maximum
        .map_or(FD_LIMIT_WANTED, |m| m.min(FD_LIMIT_WANTED));
    if before >= target {
        return None;
    }
    limit.current = Some(target);
    match setrlimit(Resource::Nofile, limit) {
        Ok(()) => Some((before, target)),
        Err(e) => {
            tracing::warn!(error = %e, before, "could not raise the open-file limit (ulimit -n)");
            None
        }
    }
}

pub(crate) async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    if let Some((before, after)) = raise_fd_limit() {
        tracing::info!(before, after, "raised the open-file limit (ulimit -n)");
    }
    create_private_dir(&cfg.data_dir)?;
    let backends = open_backends(&cfg).await?;
    let token_key = match &cfg.token_key_file {
        Some(path) => credentials::load_shared_token_key(path)?,
        None => credentials::load_or_generate_token_key(&cfg.data_dir)?,
    };
    let turn_secret = cfg
        .turn_secret
        .clone()
        .unwrap_or_else(|| api::ice::derive_secret(&token_key));
    let mut auth = api::Authenticator::new(token_key);
    let dev_tls = if cfg.tls_self_signed {
        Some(crate::selfsigned::load_or_create(
            &cfg.data_dir,
            &[cfg.public_ip.to_string()],
        )?)
    } else {
        None
    };
    let tls = match &dev_tls {
        Some(t) => Some((t.cert.clone(), t.key.clone())),
        None => cfg.tls.clone(),
    };
    let turn_server = match cfg.turn_listen {
        None => None,
        Some(listen) => {
            match crate::turn::start(listen, cfg.public_ip, turn_secret.clone().into_bytes()).await
            {
                Ok(s) => Some(s),
                Err(e) if !cfg.turn_listen_explicit => {
                    tracing::warn!(error = %format!("{e:#}"), "embedded TURN server not started (set --turn-listen to make this fatal, or --no-turn)");
                    None
                }
                Err(e) => return Err(e),
            }
        }
    };
    let turn_uris = if !cfg.turn_uris.is_empty() {
        cfg.turn_uris.clone()
    } else if let Some(t) = &turn_server {
        let host = match cfg.public_ip {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip @ std::net::IpAddr::V4(_) => ip.to_string(),
        };
        let mut uris = vec![format!("turn:{host}:{}?transport=udp", t.addr.port())];
        if t.tcp {
            uris.push(format!("turn:{host}:{}?transport=tcp", t.addr.port()));
        }
        uris
    } else {
        Vec::new()
    };
    let mut stdout = std::io::stdout().lock();
    let (akid, secret, generated) = match &cfg.root_key {
        Some((id, secret)) => (id.clone(), secret.clone(), false),
        None => {
            let (c, new) = credentials::load_or_generate_root(&cfg.data_dir)?;
            (c.access_key_id, c.secret_access_key, new)
        }
    };
    auth.add_key(akid.clone(), secret.clone(), api::Role::Admin);

    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{host}"));

    let api_cfg = api::ApiConfig {
        region: cfg.region.clone(),
        account_id: cfg.account_id.clone(),
        public_url: cfg.public_url.clone(),
        tls: tls.is_some(),
        max_json_body_bytes: 1 << 20,
        clip_cap: cfg.clip_cap,
        turn: (!turn_uris.is_empty()).then(|| api::ice::TurnConfig {
            secret: turn_secret.clone().into_bytes(),
            uris: turn_uris.clone(),
            ttl_secs: api::ice::DEFAULT_TTL_SECS,
        }),
        web_dir: Some(cfg.web_dir.clone()),
    };
    let state = api::AppState::new(backends.catalog, backends.fragments, api_cfg, auth);
    #[cfg(feature = "postgres")]
    if let Some(pg) = &backends.shared_index {
        spawn_cross_node_live(pg, state.live.clone());
    }
    let hub_desc = attach_hub(&state, &cfg.backends).await?;
    tokio::spawn(api::retention::run(state.clone()));
    let app = api::app(state.clone());

    writeln!(
        stdout,
        "openkvs {} listening on {url}",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        stdout,
        "  data dir: {}   region: {}   account: {}",
        cfg.data_dir.display(),
        cfg.region,
        cfg.account_id
    )?;
    writeln!(
        stdout,
        "  store: {:?}   catalog: {:?}   signaling hub: {hub_desc}",
        cfg.backends.store, cfg.backends.catalog
    )?;
    if generated {
        let path = cfg.data_dir.join(credentials::ROOT_CREDENTIALS_FILE);
        writeln!(
            stdout,
            "\nGenerated root credentials, saved to {} (mode 0600). Shown once; use them like AWS keys:\n\n  \
             export AWS_ACCESS_KEY_ID={akid}\n  export AWS_SECRET_ACCESS_KEY={secret}\n  export AWS_DEFAULT_REGION={region}\n  \
             aws kinesisvideo list-streams --endpoint-url {url}\n\n  \
             # or keep them as an AWS CLI profile (then add --profile openkvs):\n  \
             aws configure set aws_access_key_id {akid} --profile openkvs\n  \
             aws configure set aws_secret_access_key {secret} --profile openkvs\n  \
             aws configure set region {region} --profile openkvs\n\n  \
             # boto3:\n  boto3.client(\"kinesisvideo\", endpoint_url=\"{url}\", region_name=\"{region}\",\n      \
             aws_access_key_id=\"{akid}\", aws_secret_access_key=\"{secret}\")\n",
            path.display(),
            region = cfg.region,
        )?;
    } else if cfg.root_key.is_none() {
        writeln!(
            stdout,
            "  credentials: access key {akid} (secret in {})",
            cfg.data_dir
                .join(credentials::ROOT_CREDENTIALS_FILE)
                .display()
        )?;
    } else {
        writeln!(
            stdout,
            "  credentials: access key {akid} (from the environment or config file)"
        )?;
    }
    match (&turn_server, turn_uris.is_empty()) {
        (Some(t), _) => writeln!(
            stdout,
            "  TURN: embedded server on {}/udp{}, handed out as {}",
            t.addr,
            if t.tcp { "+tcp" } else { "" },
            turn_uris.join(" ")
        )?,
        (None, false) => writeln!(stdout, "  TURN: handing out {}", turn_uris.join(" "))?,
        (None, true) => writeln!(
            stdout,
            "  TURN: none (GetIceServerConfig returns an empty IceServerList)"
        )?,
    }
    if let Some(t) = &dev_tls {
        writeln!(
            stdout,
            "  TLS: self-signed development certificate{}; trust its CA {}:\n    \
             aws ... --ca-bundle {ca}   (or export AWS_CA_BUNDLE={ca})\n    \
             export NODE_EXTRA_CA_CERTS={ca}   (Node.js, KVS JS SDK)\n    \
             browsers: import {ca} as a trusted authority (e.g. chrome://certificate-manager)",
            if t.created { " (created now)" } else { "" },
            t.ca.display(),
            ca = t.ca.display(),
        )?;
    }
    let web_ok = cfg.web_dir.join("index.html").is_file();
    let hls_ok = cfg
        .web_dir
        .join("node_modules/hls.js/dist/hls.mjs")
        .is_file();
    if web_ok {
        writeln!(
            stdout,
            "  viewer page: {url}/  (sign in with the access key and secret above, or minted credentials)"
        )?;
    }
    if cfg.demo {
        writeln!(
            stdout,
            "  demo: simulated bike-stand camera on stream + channel {} (live video in a few seconds; {})",
            crate::demo::DEMO_NAME,
            if cfg!(feature = "webrtc") {
                "WebRTC master on the channel, PutMedia to the stream"
            } else {
                "PutMedia to the stream only: built without the webrtc feature"
            }
        )?;
    }
    drop(stdout);
    if !web_ok {
        tracing::warn!(web_dir = %cfg.web_dir.display(), "viewer page not found (no index.html): start openkvs from the repository root or pass --web-dir; the API works regardless");
    } else if !hls_ok {
        tracing::warn!(web_dir = %cfg.web_dir.display(), "web/node_modules/hls.js is missing: run `npm ci --prefix web`; the page cannot play HLS without it");
    }
    tracing::info!(%url, listen = %local, "openkvs ready");
    // Tells the demo's WebRTC master to close its peer connections on shutdown.
    let (demo_stop, _) = tokio::sync::watch::channel(false);
    if cfg.demo {
        crate::demo::ensure_resources(&state).await?;
        let endpoint = format!("{scheme}://{host}");
        let creds = sigv4::Credentials {
            access_key_id: akid.clone(),
            secret_key: sigv4::SecretKey::new(secret.clone()),
            session_token: None,
        };
        let region = cfg.region.clone();
        let ca = dev_tls.as_ref().map(|t| t.ca.clone());
        #[cfg(feature = "webrtc")]
        {
            let (endpoint, creds, region, ca) =
                (endpoint.clone(), creds.clone(), region.clone(), ca.clone());
            let mut stop = demo_stop.subscribe();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                match crate::demo::run_webrtc_master(endpoint, creds, region, ca, shutdown).await {
                    Ok(()) => tracing::debug!("demo WebRTC master stopped"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "demo WebRTC master stopped");
                    }
                }
            });
        }
        tokio::spawn(async move {
            if let Err(e) = crate::demo::run_camera(endpoint, creds, region, ca).await {
                tracing::error!(error = %format!("{e:#}"), "demo camera stopped");
            }
        });
    }

    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight (10 s at most)");
        let _ = demo_stop.send(true);
        state.signaling.shutdown();
        state.live.shutdown();
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let svc = app.into_make_service();
    match &tls {
        None => {
            let mut server = axum_server::from_tcp(listener);
            http1_options(&mut server.http_builder().http1(), cfg.header_read_timeout);
            server.handle(handle).serve(svc).await?
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let mut server = axum_server::from_tcp_rustls(listener, tls);
            http1_options(&mut server.http_builder().http1(), cfg.header_read_timeout);
            server.handle(handle).serve(svc).await?;
        }
    }
    if let Some(t) = turn_server {
        let _ = t.server.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Joins the other nodes' signaling through Redis when `hub = "redis"`; returns how the
/// startup banner describes the hub.
async fn attach_hub(
    state: &api::AppState,
    backends: &crate::config::Backends,
) -> anyhow::Result<String> {
    match (backends.hub, &backends.redis_url) {
        #[cfg(feature = "redis")]
        (crate::cli::HubKind::Redis, Some(url)) => {
            let cl = state.signaling.attach_redis(url).await.map_err(|e| {
                anyhow::anyhow!("hub = \"redis\": {e} (is Redis running at the configured URL?)")
            })?;
            Ok(format!("redis (node {})", cl.node_id()))
        }
        _ => {
            let _ = state;
            Ok("local".to_owned())
        }
    }
}

#[cfg(test)]
mod fd_limit_tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        use rustix::process::{Resource, getrlimit};
        let _ = super::raise_fd_limit();
        let l = getrlimit(Resource::Nofile);
        if let (Some(cur), Some(max)) = (l.current, l.maximum) {
            assert_eq!(cur, max.min(super::FD_LIMIT_WANTED));
        }
        assert!(
            super::raise_fd_limit().is_none(),
            "a second call changes nothing"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Slowloris: a request head trickled one byte at a time is cut off after the header read
    /// timeout, while a normal request on another connection is served.
    #[tokio::test]
    async fn trickled_request_head_is_cut_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let mut server = axum_server::from_tcp(listener);
        super::http1_options(&mut server.http_builder().http1(), Duration::from_secs(1));
        tokio::spawn(server.serve(app.into_make_service()));

        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 1024];
        let cut = loop {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "still reading after 10 s"
            );
            if slow.write_all(b"a").await.is_err() {
                break true;
            }
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => {} // a 408 or similar before the close
                Err(_) => {}
            }
        };
        assert!(
            cut && t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );

        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        ok.read_to_end(&mut resp).await.unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200"), "{resp:?}");
    }
}
