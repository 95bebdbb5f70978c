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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
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

type Backends = (Arc<dyn store::Catalog>, Arc<dyn store::FragmentStore>);

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
    Ok((catalog, fragments))
}

pub(crate) async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    create_private_dir(&cfg.data_dir)?;
    let (catalog, fragments) = open_backends(&cfg).await?;
    let token_key = credentials::load_or_generate_token_key(&cfg.data_dir)?;
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
    } else if let Some((_, addr)) = &turn_server {
        let host = match cfg.public_ip {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip @ std::net::IpAddr::V4(_) => ip.to_string(),
        };
        vec![format!("turn:{host}:{}?transport=udp", addr.port())]
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
    };
    let state = api::AppState::new(catalog, fragments, api_cfg, auth);
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
        "  store: {:?}   catalog: {:?}   signaling hub: local",
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
        (Some((_, addr)), _) => writeln!(
            stdout,
            "  TURN: embedded server on {addr}/udp, handed out as {}",
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
    drop(stdout);
    tracing::info!(%url, listen = %local, "openkvs ready");

    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight (10 s at most)");
        state.signaling.shutdown();
        state.live.shutdown();
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let svc = app.into_make_service();
    match &tls {
        None => {
            let mut server = axum_server::from_tcp(listener);
            // Producers such as ffmpeg send the last chunk of a PutMedia body and close their
            // side at once; without half-close hyper drops what it had not yet handed to the
            // handler when it reads that EOF.
            server.http_builder().http1().half_close(true);
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
            server.http_builder().http1().half_close(true);
            server.handle(handle).serve(svc).await?;
        }
    }
    if let Some((server, _)) = turn_server {
        let _ = server.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}
