//! Resolves `openkvs serve` settings from flags, environment and the TOML file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::cli::{CatalogKind, HubKind, LogFormat, ServeArgs, StoreKind};

/// The TOML config file. Unknown keys are an error, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    tls_self_signed: Option<bool>,
    turn_listen: Option<SocketAddr>,
    public_ip: Option<IpAddr>,
    turn_secret: Option<String>,
    token_key_file: Option<PathBuf>,
    turn_uris: Option<Vec<String>>,
    no_turn: Option<bool>,
    max_clip_fragments: Option<usize>,
    max_clip_bytes: Option<u64>,
    web_dir: Option<PathBuf>,
    demo: Option<bool>,
    header_read_timeout: Option<u64>,
    store: Option<StoreKind>,
    catalog: Option<CatalogKind>,
    hub: Option<HubKind>,
    #[serde(default)]
    node: NodeFile,
    #[serde(default)]
    postgres: PostgresFile,
    #[serde(default)]
    s3: S3File,
    #[serde(default)]
    redis: RedisFile,
}

/// `[node]`: what differs between the nodes of one deployment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    /// This node's URL, or the load balancer's, handed out by GetDataEndpoint; overrides the
    /// top-level `public_url`.
    public_url: Option<String>,
}

/// `[postgres]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresFile {
    url: Option<String>,
}

/// `[s3]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3File {
    bucket: Option<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

/// `[redis]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisFile {
    url: Option<String>,
}

/// Where the S3 store's objects go.
#[derive(Clone)]
#[cfg_attr(not(feature = "s3"), allow(dead_code))] // read only by the `s3` wiring
pub(crate) struct S3Settings {
    pub bucket: String,
    pub endpoint_url: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The selected backends, validated: every URL a backend needs is present, and a backend this
/// binary was built without is an error here, before anything starts.
#[derive(Debug)]
#[cfg_attr(not(feature = "s3"), allow(dead_code))] // URLs read only by the scale-out wiring
pub(crate) struct Backends {
    pub store: StoreKind,
    pub catalog: CatalogKind,
    /// For `catalog = "postgres"` or `store = "s3"`.
    pub postgres_url: Option<String>,
    /// For `store = "s3"`.
    pub s3: Option<S3Settings>,
    /// How signaling reaches other nodes.
    pub hub: HubKind,
    /// For `hub = "redis"`.
    pub redis_url: Option<String>,
}

/// Resolved settings.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub region: String,
    pub account_id: String,
    pub root_key: Option<(String, String)>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub log_format: LogFormat,
    /// How long a connection may take to send a request head, and stay idle between
    /// requests (hyper's header read timer runs in both cases).
    pub header_read_timeout: std::time::Duration,
    /// `--tls-self-signed`.
    pub tls_self_signed: bool,
    /// Embedded TURN listener; `None` with `--no-turn`.
    pub turn_listen: Option<SocketAddr>,
    /// Whether `turn_listen` was chosen by the user (a bind failure is then fatal).
    pub turn_listen_explicit: bool,
    /// Address in TURN URIs, relay candidates and the self-signed certificate.
    pub public_ip: IpAddr,
    /// TURN REST secret; `None`: derived from the server key.
    pub turn_secret: Option<String>,
    /// Shared token key file; `None`: the data dir's `server-key.hex`.
    pub token_key_file: Option<PathBuf>,
    /// TURN URIs handed out instead of the embedded server's.
    pub turn_uris: Vec<String>,
    /// GetClip truncation (KVS: 200 fragments / 100 MB); default none.
    pub clip_cap: api::ClipCap,
    /// The viewer page's directory.
    pub web_dir: PathBuf,
    /// `--demo`: run the simulated bike-stand camera.
    pub demo: bool,
    /// Media store, catalog and their connections.
    pub backends: Backends,
}

impl ServeConfig {
    pub(crate) fn resolve(a: ServeArgs) -> anyhow::Result<Self> {
        let file = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let region = a
            .region
            .or(file.region)
            .unwrap_or_else(|| "us-east-1".into());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("--region {region:?} is not a region name like us-east-1");
        }
        let account_id = a
            .account_id
            .or(file.account_id)
            .unwrap_or_else(|| "123456789012".into());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--account-id {account_id:?} must be 12 digits");
        }
        let public_url = a.public_url.or(file.node.public_url).or(file.public_url);
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("--public-url {u:?} must start with http:// or https://");
        }
        if public_url.as_deref().is_some_and(|u| u.contains('?')) {
            bail!("--public-url must not contain a query");
        }
        let root_key = match (
            a.access_key_id.or(file.access_key_id),
            a.secret_access_key.or(file.secret_access_key),
        ) {
            (Some(id), Some(secret)) => {
                if id.is_empty() || secret.is_empty() {
                    bail!("the access key id and secret must not be empty");
                }
                Some((id, secret))
            }
            (None, None) => None,
            _ => bail!(
                "set both OPENKVS_ACCESS_KEY_ID and OPENKVS_SECRET_ACCESS_KEY (or both config keys), or neither to use the generated pair"
            ),
        };
        let tls = match (a.tls_cert.or(file.tls_cert), a.tls_key.or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let tls_self_signed = a.tls_self_signed || file.tls_self_signed.unwrap_or(false);
        if tls_self_signed && tls.is_some() {
            bail!("--tls-self-signed and --tls-cert/--tls-key exclude each other");
        }
        let no_turn = a.no_turn || file.no_turn.unwrap_or(false);
        let public_ip = a.public_ip.or(file.public_ip);
        let turn_listen_arg = a.turn_listen.or(file.turn_listen);
        let turn_listen = turn_listen_arg.unwrap_or_else(|| match public_ip {
            Some(_) => ([0, 0, 0, 0], 3478).into(),
            None => ([127, 0, 0, 1], 3478).into(),
        });
        let public_ip = public_ip.unwrap_or_else(|| {
            if turn_listen.ip().is_unspecified() {
                [127, 0, 0, 1].into()
            } else {
                turn_listen.ip()
            }
        });
        let turn_uris = if a.turn_uris.is_empty() {
            file.turn_uris.unwrap_or_default()
        } else {
            a.turn_uris
        };
        for u in &turn_uris {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                bail!("--turn-uri {u:?} must start with turn: or turns:");
            }
        }
        let turn_secret = a.turn_secret.or(file.turn_secret);
        if turn_secret.as_deref() == Some("") {
            bail!("--turn-secret must not be empty");
        }
        let clip_cap = api::ClipCap {
            max_fragments: a.max_clip_fragments.or(file.max_clip_fragments),
            max_bytes: a.max_clip_bytes.or(file.max_clip_bytes),
        };
        if clip_cap.max_fragments == Some(0) || clip_cap.max_bytes == Some(0) {
            bail!(
                "--max-clip-fragments and --max-clip-bytes must be at least 1 (leave them unset for no cap)"
            );
        }
        let backends = resolve_backends(
            a.store.or(file.store).unwrap_or(StoreKind::Local),
            a.catalog.or(file.catalog).unwrap_or(CatalogKind::Sqlite),
            a.hub.or(file.hub).unwrap_or(HubKind::Local),
            a.postgres_url.or(file.postgres.url),
            S3File {
                bucket: a.s3_bucket.or(file.s3.bucket),
                endpoint_url: a.s3_endpoint_url.or(file.s3.endpoint_url),
                region: a.s3_region.or(file.s3.region),
                access_key_id: a.s3_access_key_id.or(file.s3.access_key_id),
                secret_access_key: a.s3_secret_access_key.or(file.s3.secret_access_key),
            },
            a.redis_url.or(file.redis.url).as_deref(),
        )?;
        Ok(Self {
            backends,
            clip_cap,
            web_dir: a.web_dir.or(file.web_dir).unwrap_or_else(|| "web".into()),
            demo: a.demo || file.demo.unwrap_or(false),
            tls_self_signed,
            turn_listen: (!no_turn).then_some(turn_listen),
            turn_listen_explicit: turn_listen_arg.is_some(),
            public_ip,
            turn_secret,
            token_key_file: a.token_key_file.or(file.token_key_file),
            turn_uris,
            listen: a
                .listen
                .or(file.listen)
                .unwrap_or_else(|| ([127, 0, 0, 1], 8080).into()),
            data_dir: a
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| "./openkvs-data".into()),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            region,
            account_id,
            root_key,
            tls,
            log_format: a.log_format.or(file.log_format).unwrap_or(LogFormat::Human),
            header_read_timeout: std::time::Duration::from_secs(
                a.header_read_timeout_secs
                    .or(file.header_read_timeout)
                    .unwrap_or(30),
            ),
        })
    }
}

fn resolve_backends(
    store: StoreKind,
    catalog: CatalogKind,
    hub: HubKind,
    postgres_url: Option<String>,
    s3: S3File,
    redis_url: Option<&str>,
) -> anyhow::Result<Backends> {
    let redis_url = match hub {
        HubKind::Local => None,
        HubKind::Redis if !cfg!(feature = "redis") => bail!(
            "hub = \"redis\" needs an openkvs built with the `redis` cargo feature (cargo build -p openkvs-server --features redis)"
        ),
        HubKind::Redis => match redis_url.filter(|u| !u.is_empty()) {
            None => bail!(
                "hub = \"redis\" needs a Redis URL: [redis] url, --redis-url or OPENKVS_REDIS_URL (e.g. redis://127.0.0.1:6379)"
            ),
            Some(u) if !(u.starts_with("redis://") || u.starts_with("unix://")) => bail!(
                "the Redis URL {u:?} must start with redis:// or unix:// (TLS to Redis, rediss://, is not built in)"
            ),
            Some(u) => Some(u.to_owned()),
        },
    };
    if store == StoreKind::S3 && !cfg!(feature = "s3") {
        bail!(
            "store = \"s3\" needs an openkvs built with the `s3` cargo feature (cargo build -p openkvs-server --features s3)"
        );
    }
    if catalog == CatalogKind::Postgres && !cfg!(feature = "postgres") {
        bail!(
            "catalog = \"postgres\" needs an openkvs built with the `postgres` cargo feature (cargo build -p openkvs-server --features postgres)"
        );
    }
    let needs_pg = catalog == CatalogKind::Postgres || store == StoreKind::S3;
    let postgres_url = match (needs_pg, postgres_url) {
        (true, None) => bail!(
            "catalog = \"postgres\" and store = \"s3\" need a PostgreSQL URL: [postgres] url, --postgres-url or OPENKVS_POSTGRES_URL"
        ),
        (true, Some(u)) if u.is_empty() => bail!("the PostgreSQL URL must not be empty"),
        (true, url) => url,
        (false, _) => None,
    };
    let s3 = if store == StoreKind::S3 {
        let need = |v: Option<String>, key: &str, flag: &str| {
            v.filter(|s| !s.is_empty())
                .with_context(|| format!("store = \"s3\" needs [s3] {key} (or {flag})"))
        };
        let endpoint_url = s3.endpoint_url.filter(|u| !u.is_empty());
        if let Some(u) = &endpoint_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("the S3 endpoint URL {u:?} must start with http:// or https://");
        }
        Some(S3Settings {
            bucket: need(s3.bucket, "bucket", "--s3-bucket")?,
            endpoint_url,
            region: s3.region.unwrap_or_else(|| "us-east-1".into()),
            access_key_id: need(s3.access_key_id, "access_key_id", "--s3-access-key-id")?,
            secret_access_key: need(
                s3.secret_access_key,
                "secret_access_key",
                "--s3-secret-access-key",
            )?,
        })
    } else {
        None
    };
    if store == StoreKind::Local && catalog == CatalogKind::Postgres {
        tracing::warn!(
            "catalog = \"postgres\" with store = \"local\": fragments stay on this node; use store = \"s3\" to run several nodes"
        );
    }
    Ok(Backends {
        store,
        catalog,
        postgres_url,
        s3,
        hub,
        redis_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> anyhow::Result<ServeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openkvs.toml");
        std::fs::write(&path, toml_text).unwrap();
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "openkvs".as_ref(),
            "serve".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ])
        .unwrap();
        let crate::cli::Command::Serve(args) = cli.command else {
            unreachable!("parsed a serve command line")
        };
        ServeConfig::resolve(*args)
    }

    #[test]
    fn default_is_embedded() {
        let c = parse("").unwrap();
        assert_eq!(c.backends.store, StoreKind::Local);
        assert_eq!(c.backends.catalog, CatalogKind::Sqlite);
        assert!(c.backends.postgres_url.is_none() && c.backends.s3.is_none());
    }

    #[test]
    fn backend_errors() {
        let cases: &[(&str, &str)] = &[
            #[cfg(feature = "redis")]
            ("hub = \"redis\"\n", "needs a Redis URL"),
            #[cfg(feature = "redis")]
            (
                "hub = \"redis\"\n[redis]\nurl = \"http://r:6379\"\n",
                "must start with redis://",
            ),
            #[cfg(not(feature = "redis"))]
            (
                "hub = \"redis\"\n[redis]\nurl = \"redis://r:6379\"\n",
                "`redis` cargo feature",
            ),
            ("hub = \"zookeeper\"\n", "parsing config file"),
            ("[s3]\nbuckit = \"x\"\n", "parsing config file"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_hub_from_the_config_file() {
        let c = parse("hub = \"redis\"\n[redis]\nurl = \"redis://:pw@redis:6379/0\"\n").unwrap();
        assert_eq!(c.backends.hub, HubKind::Redis);
        assert_eq!(
            c.backends.redis_url.as_deref(),
            Some("redis://:pw@redis:6379/0")
        );
        // The URL alone selects nothing: the hub stays local.
        let c = parse("[redis]\nurl = \"redis://redis:6379\"\n").unwrap();
        assert_eq!(c.backends.hub, HubKind::Local);
        assert!(c.backends.redis_url.is_none());
    }

    #[cfg(all(feature = "s3", feature = "postgres"))]
    #[test]
    fn scaleout_settings() {
        let c = parse(
            "store = \"s3\"\ncatalog = \"postgres\"\npublic_url = \"http://lb:8080\"\n\
             [node]\npublic_url = \"http://node-a:8080\"\n\
             [postgres]\nurl = \"postgres://u@db/openkvs\"\n\
             [s3]\nbucket = \"media\"\nendpoint_url = \"http://s3:9000\"\naccess_key_id = \"AK\"\nsecret_access_key = \"SK\"\n",
        )
        .unwrap();
        assert_eq!(c.public_url.as_deref(), Some("http://node-a:8080"));
        assert_eq!(c.backends.store, StoreKind::S3);
        assert_eq!(c.backends.catalog, CatalogKind::Postgres);
        assert_eq!(
            c.backends.postgres_url.as_deref(),
            Some("postgres://u@db/openkvs")
        );
        let s3 = c.backends.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str()),
            ("media", "us-east-1")
        );
        assert_eq!(s3.endpoint_url.as_deref(), Some("http://s3:9000"));
        for (text, want) in [
            (
                "store = \"s3\"\n[postgres]\nurl = \"postgres://db\"\n",
                "[s3] bucket",
            ),
            ("catalog = \"postgres\"\n", "PostgreSQL URL"),
            (
                "store = \"s3\"\n[postgres]\nurl = \"postgres://db\"\n[s3]\nbucket = \"b\"\naccess_key_id = \"a\"\n",
                "secret_access_key",
            ),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn token_key_file_from_config() {
        assert!(parse("").unwrap().token_key_file.is_none());
        let c = parse("token_key_file = \"/etc/openkvs/token-key.hex\"\n").unwrap();
        assert_eq!(
            c.token_key_file.as_deref(),
            Some(std::path::Path::new("/etc/openkvs/token-key.hex"))
        );
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn s3_needs_the_feature() {
        let err = format!("{:#}", parse("store = \"s3\"\n").unwrap_err());
        assert!(err.contains("`s3` cargo feature"), "{err}");
    }
}
