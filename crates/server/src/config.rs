//! Resolves `openkvs serve` settings from flags, environment and the TOML file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::cli::{LogFormat, ServeArgs};

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
    turn_uris: Option<Vec<String>>,
    no_turn: Option<bool>,
    max_clip_fragments: Option<usize>,
    max_clip_bytes: Option<u64>,
    web_dir: Option<PathBuf>,
    demo: Option<bool>,
    header_read_timeout: Option<u64>,
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
    /// TURN URIs handed out instead of the embedded server's.
    pub turn_uris: Vec<String>,
    /// GetClip truncation (KVS: 200 fragments / 100 MB); default none.
    pub clip_cap: api::ClipCap,
    /// The viewer page's directory.
    pub web_dir: PathBuf,
    /// `--demo`: run the simulated bike-stand camera.
    pub demo: bool,
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
        let public_url = a.public_url.or(file.public_url);
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
        Ok(Self {
            clip_cap,
            web_dir: a.web_dir.or(file.web_dir).unwrap_or_else(|| "web".into()),
            demo: a.demo || file.demo.unwrap_or(false),
            tls_self_signed,
            turn_listen: (!no_turn).then_some(turn_listen),
            turn_listen_explicit: turn_listen_arg.is_some(),
            public_ip,
            turn_secret,
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
