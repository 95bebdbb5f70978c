//! Command-line interface. Every option says what it does and where else it can be set.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// openkvs: a self-hosted video platform that speaks the Amazon Kinesis Video Streams API.
///
/// Point the AWS CLI, boto3, the KVS producer SDKs or the KVS WebRTC SDK at it by changing only
/// the endpoint URL.
#[derive(Debug, Parser)]
#[command(name = "openkvs", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: control plane, ingest, playback and signaling on one port.
    Serve(Box<ServeArgs>),
    /// Manage credentials offline (needs the server's data directory).
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Options of `openkvs serve`. Precedence: command line, then `OPENKVS_*` environment
/// variables, then the `--config` file, then defaults.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file. Keys are the long option names with '_' for '-', e.g.
    /// `listen = "0.0.0.0:8080"`, `data_dir = "/var/lib/openkvs"`, `access_key_id = "…"`.
    #[arg(long, env = "OPENKVS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on (HTTP API, WebSocket signaling, playback). Port 0 picks a
    /// free port; the chosen URL is printed. [default: 127.0.0.1:8080]
    #[arg(long, env = "OPENKVS_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Directory for the catalog, media and keys; created if missing. [default: ./openkvs-data]
    #[arg(long, env = "OPENKVS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Base URL that GetDataEndpoint and GetSignalingChannelEndpoint hand out, e.g.
    /// `https://video.example.org`. Default: the scheme and Host of each request, so clients get
    /// back the address they used. Set it behind a reverse proxy or NAT.
    #[arg(long, env = "OPENKVS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// AWS region this server pretends to be; it appears in ARNs. Clients may sign for any
    /// region. [default: us-east-1]
    #[arg(long, env = "OPENKVS_REGION")]
    pub region: Option<String>,

    /// 12-digit account id used in ARNs. [default: 123456789012]
    #[arg(long, env = "OPENKVS_ACCOUNT_ID", value_name = "DIGITS")]
    pub account_id: Option<String>,

    /// Root access key id. With --secret-access-key (or both env vars) it replaces the key pair
    /// generated on first start.
    #[arg(long, env = "OPENKVS_ACCESS_KEY_ID", value_name = "AKID", hide_env_values = true)]
    pub access_key_id: Option<String>,

    /// Root secret access key. Prefer the environment variable or the config file over the
    /// command line, where other users can see it.
    #[arg(long, env = "OPENKVS_SECRET_ACCESS_KEY", value_name = "SECRET", hide_env_values = true)]
    pub secret_access_key: Option<String>,

    /// PEM certificate chain: serve HTTPS/WSS instead of plain HTTP. The KVS C SDKs speak only
    /// TLS on port 443; the KVS JS SDK only accepts wss:// endpoints.
    #[arg(long, env = "OPENKVS_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "OPENKVS_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Log format. Verbosity comes from RUST_LOG (default `info`). [default: human]
    #[arg(long, env = "OPENKVS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialsCommand {
    /// Print temporary credentials (JSON: AccessKeyId, SecretAccessKey, SessionToken,
    /// Expiration) signed with the server's key; use them with aws_session_token / AWS_SESSION_TOKEN.
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MintArgs {
    /// The server's data directory (holds the signing key).
    #[arg(long, env = "OPENKVS_DATA_DIR", default_value = "./openkvs-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=7*24*3600))]
    pub ttl: i64,

    /// `admin` may do everything; `viewer` may only read and watch.
    #[arg(long, value_enum, default_value = "admin")]
    pub role: MintRole,
}

/// Role of minted credentials.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MintRole {
    /// Everything.
    Admin,
    /// Read-only.
    Viewer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
