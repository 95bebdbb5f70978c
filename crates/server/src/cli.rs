//! Command-line interface. Every option says what it does and where else it can be set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Upload an MKV file or stdin to a stream (PutMedia), resuming after errors.
    #[command(long_about = PUT_MEDIA_ABOUT, after_long_help = PUT_MEDIA_EXAMPLES)]
    PutMedia(Box<PutMediaArgs>),
    /// Download a time range of a stream as an MP4 file (GetClip) and print its SHA-256.
    #[command(long_about = GET_CLIP_ABOUT, after_long_help = GET_CLIP_EXAMPLES)]
    GetClip(Box<GetClipArgs>),
    /// Print presigned URLs for tools that cannot sign requests (ffmpeg, GStreamer, browsers).
    #[command(subcommand)]
    Presign(PresignCommand),
    /// Simulate a camera: a WebRTC master on a signaling channel that loops an MKV file.
    #[cfg(feature = "webrtc")]
    #[command(long_about = CAMERA_ABOUT, after_long_help = CAMERA_EXAMPLES)]
    Camera(Box<CameraArgs>),
    /// Join a signaling channel as a WebRTC viewer and report the media received (JSON).
    #[cfg(feature = "webrtc")]
    #[command(long_about = VIEWER_ABOUT, after_long_help = VIEWER_EXAMPLES)]
    Viewer(Box<ViewerArgs>),
    /// Check a stopped server's data directory: fragment index against segment files.
    #[command(long_about = FSCK_ABOUT)]
    Fsck(FsckArgs),
}

const FSCK_ABOUT: &str = "\
Check a data directory offline: every fragment in the index (fragments.db) against the segment \
files under media/.

Reports segment files and stream directories nothing references (orphans), bytes after a \
file's last indexed fragment, missing files, index rows pointing past a file's end and frame \
tables that do not decode. Entries openkvs did not create are listed but never touched. With \
--repair it deletes damaged index rows (their media is gone), cuts unindexed tails, removes \
orphans and checks again.

Opening the store does what `openkvs serve` does at start: it cuts bytes a crashed server wrote \
after its last committed fragment (reported as crash recovery). The directory is locked: stop \
the server first (fsck fails while it runs).

Exit status: 0 when the store is clean (after --repair: clean after the repair), 1 when \
problems remain, 2 on errors (cannot open the directory).";

/// Options of `openkvs fsck`.
#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    /// The server's data directory.
    #[arg(
        long,
        env = "OPENKVS_DATA_DIR",
        default_value = "./openkvs-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Fix what is found: delete damaged index rows, cut unindexed tails, remove orphans.
    #[arg(long)]
    pub repair: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// No progress spinner on stderr.
    #[arg(long, short)]
    pub quiet: bool,
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

/// Where fragment media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// Segment files in the data directory (embedded default).
    Local,
    /// An S3 bucket; the fragment index in PostgreSQL (needs the `s3` build feature).
    S3,
}

/// Where streams, channels and tags are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CatalogKind {
    /// `catalog.db` in the data directory (embedded default).
    Sqlite,
    /// A PostgreSQL database shared by all nodes (needs the `postgres` build feature).
    Postgres,
}

/// How signaling reaches clients connected to other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HubKind {
    /// In-process only: a master and its viewers must use the same node (embedded default).
    Local,
    /// Redis pub/sub between nodes: a master and its viewers may use different nodes (needs
    /// the `redis` cargo feature and `--redis-url`).
    Redis,
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
    #[arg(
        long,
        env = "OPENKVS_ACCESS_KEY_ID",
        value_name = "AKID",
        hide_env_values = true
    )]
    pub access_key_id: Option<String>,

    /// Root secret access key. Prefer the environment variable or the config file over the
    /// command line, where other users can see it.
    #[arg(
        long,
        env = "OPENKVS_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,

    /// PEM certificate chain: serve HTTPS/WSS instead of plain HTTP. The KVS C SDKs speak only
    /// TLS on port 443; the KVS JS SDK only accepts wss:// endpoints.
    #[arg(
        long,
        env = "OPENKVS_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "OPENKVS_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS/WSS with a development CA and server certificate created in
    /// `<data dir>/tls/` on first start (reused later); prints how to make clients trust the CA.
    #[arg(long, env = "OPENKVS_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// UDP address of the embedded TURN server whose credentials GetIceServerConfig hands out.
    /// [default: 0.0.0.0:3478 with --public-ip, else 127.0.0.1:3478]
    #[arg(long, env = "OPENKVS_TURN_LISTEN", value_name = "ADDR:PORT")]
    pub turn_listen: Option<SocketAddr>,

    /// The address WebRTC clients reach this machine at: used in TURN URIs, as the TURN relay
    /// address and in the --tls-self-signed certificate. [default: the --turn-listen IP if
    /// specific, else 127.0.0.1]
    #[arg(long, env = "OPENKVS_PUBLIC_IP", value_name = "IP")]
    pub public_ip: Option<std::net::IpAddr>,

    /// Shared secret of the TURN REST credentials (coturn's `static-auth-secret`). Set it to
    /// share TURN with an external coturn. [default: derived from the server key in the data dir]
    #[arg(
        long,
        env = "OPENKVS_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,

    /// File holding the key that signs HLS/DASH session URLs, temporary credentials,
    /// web-session cookies and the derived TURN secret: hex, at least 32 bytes,
    /// the format of `<data dir>/server-key.hex` (make one with `openssl rand -hex 32`, mode
    /// 0600). Give every node of a scale-out deployment the same file, so a URL minted on one
    /// node plays on all (config key `token_key_file`). [default: <data dir>/server-key.hex,
    /// created on first start]
    #[arg(long, env = "OPENKVS_TOKEN_KEY_FILE", value_name = "FILE")]
    pub token_key_file: Option<PathBuf>,

    /// TURN URI to hand out in GetIceServerConfig instead of the embedded server's, e.g.
    /// `turn:turn.example.org:3478?transport=udp` for an external coturn (repeatable).
    #[arg(
        long = "turn-uri",
        env = "OPENKVS_TURN_URIS",
        value_delimiter = ',',
        value_name = "URI"
    )]
    pub turn_uris: Vec<String>,

    /// Do not start the embedded TURN server (GetIceServerConfig then returns only --turn-uri
    /// servers, or an empty list).
    #[arg(long, env = "OPENKVS_NO_TURN")]
    pub no_turn: bool,

    /// Truncate GetClip output to this many fragments, as KVS does at 200. Default: no cap
    /// (a clip may span up to 100,000 fragments, about 55 h of 2 s GOPs).
    #[arg(long, env = "OPENKVS_MAX_CLIP_FRAGMENTS", value_name = "N")]
    pub max_clip_fragments: Option<usize>,

    /// Truncate GetClip output after the fragment that reaches this many media bytes, as KVS
    /// does at 100 MB (104857600). Default: no cap.
    #[arg(long, env = "OPENKVS_MAX_CLIP_BYTES", value_name = "BYTES")]
    pub max_clip_bytes: Option<u64>,

    /// Directory of the viewer page served at `/` (index.html, app modules and `node_modules/`
    /// after `npm ci --prefix web`). Relative paths are from the working directory.
    /// [default: web]
    #[arg(long, env = "OPENKVS_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,

    /// Start a simulated bike-stand camera: creates stream + signaling channel
    /// `demo-bike-stand` and pushes a looping H.264 sample to the stream in real time, so the
    /// viewer page shows live video and a growing archive within seconds.
    #[arg(long, env = "OPENKVS_DEMO")]
    pub demo: bool,

    /// Log format. Verbosity comes from RUST_LOG (default `info`). [default: human]
    #[arg(long, env = "OPENKVS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Seconds a client may take to send a request's head (request line and headers); the
    /// same timer closes a connection idle that long between requests. Bounds slowloris-style
    /// clients that trickle headers to hold connections open. Request bodies (PutMedia
    /// streams) are not affected. [default: 30]
    #[arg(long = "header-read-timeout", env = "OPENKVS_HEADER_READ_TIMEOUT", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: Option<u64>,

    /// Media store (config key `store`). [default: local]
    #[arg(long, env = "OPENKVS_STORE", value_enum)]
    pub store: Option<StoreKind>,

    /// Catalog (config key `catalog`). [default: sqlite]
    #[arg(long, env = "OPENKVS_CATALOG", value_enum)]
    pub catalog: Option<CatalogKind>,

    /// Signaling hub (config key `hub`). [default: local]
    #[arg(long, env = "OPENKVS_HUB", value_enum)]
    pub hub: Option<HubKind>,

    /// PostgreSQL URL for `catalog = "postgres"` and `store = "s3"`, e.g.
    /// `postgres://openkvs:PASSWORD@db:5432/openkvs` (config `[postgres] url`).
    #[arg(
        long,
        env = "OPENKVS_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub postgres_url: Option<String>,

    /// S3 bucket for `store = "s3"` (config `[s3] bucket`).
    #[arg(long, env = "OPENKVS_S3_BUCKET", value_name = "NAME")]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL, for S3-compatible servers (config `[s3] endpoint_url`). Default: AWS.
    #[arg(long, env = "OPENKVS_S3_ENDPOINT_URL", value_name = "URL")]
    pub s3_endpoint_url: Option<String>,

    /// S3 signing region (config `[s3] region`). [default: us-east-1]
    #[arg(long, env = "OPENKVS_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,

    /// S3 access key id (config `[s3] access_key_id`).
    #[arg(long, env = "OPENKVS_S3_ACCESS_KEY_ID", value_name = "ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key (config `[s3] secret_access_key`).
    #[arg(
        long,
        env = "OPENKVS_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,

    /// Redis URL for `hub = "redis"`, e.g. `redis://127.0.0.1:6379` or
    /// `redis://:PASSWORD@redis:6379/0` (config `[redis] url`). A standalone Redis shared by
    /// every node; it holds only pub/sub traffic and short-lived keys, so no persistence is
    /// needed.
    #[arg(
        long,
        env = "OPENKVS_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
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
    #[arg(
        long,
        env = "OPENKVS_DATA_DIR",
        default_value = "./openkvs-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// The shared key file the servers use (`serve --token-key-file`), instead of the data
    /// directory's key.
    #[arg(long, env = "OPENKVS_TOKEN_KEY_FILE", value_name = "FILE")]
    pub token_key_file: Option<PathBuf>,

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

/// Where client subcommands find their credentials; the end of their `--help`.
macro_rules! credentials_help {
    () => {
        "\
Credentials and region are found as the AWS CLI finds them: AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; else the profile (--profile, AWS_PROFILE, or \
`default`) in ~/.aws/credentials or ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE, \
AWS_CONFIG_FILE). With --profile the AWS_ACCESS_KEY_ID pair is ignored. The server's root key is \
the one `openkvs serve` printed on its first start (or its OPENKVS_ACCESS_KEY_ID / \
OPENKVS_SECRET_ACCESS_KEY)."
    };
}

const PUT_MEDIA_ABOUT: &str = "\
Upload an MKV file or stdin to a stream with PutMedia.

The input goes out as one chunked HTTP/1.1 request signed like the KVS producer SDK signs it \
(SigV4, payload hash of the empty string). The server's ACKs are read while the body is still \
being sent (full duplex) and printed. Fragments not yet ACKed PERSISTED stay in memory: when the \
connection drops or the server sends an ERROR ACK, a new PutMedia starts with the MKV header \
again (EBML header, Segment, Info, Tracks) and re-sends them from the oldest one, as kvssink \
does. At the end of the input an AWS_KINESISVIDEO_END_OF_FRAGMENT tag closes the last fragment; \
openkvs waits for its PERSISTED ACK, ends the request and prints a summary (fragments sent, \
persisted, errors, bytes, duration, rate). The exit status is non-zero unless every fragment \
was persisted.

The input must be Matroska (MKV or WebM). The server starts a fragment at every cluster whose \
first video frame is a key frame, so clusters should start on key frames and be at most 10 s \
long; ffmpeg and GStreamer's matroskamux write them that way. Convert other files without \
re-encoding:
  ffmpeg -i input.mp4 -c copy -f matroska output.mkv";

const PUT_MEDIA_EXAMPLES: &str = concat!(
    "\
Examples:
  openkvs put-media --stream cam1 recording.mkv
  # replay a file at its own pace, ACKs as JSON lines
  openkvs put-media --stream cam1 --realtime --output json recording.mkv > acks.jsonl
  # live: ffmpeg writes MKV to stdout, openkvs uploads it and resumes after errors
  ffmpeg -re -i input.mp4 -c copy -f matroska -live 1 - | openkvs put-media --stream cam1 -
  ffmpeg -rtsp_transport tcp -i rtsp://CAMERA/stream -c copy -f matroska -live 1 - \\
    | openkvs put-media --stream cam1 -

To send from ffmpeg or GStreamer without openkvs, see `openkvs presign put-media --help`.

",
    credentials_help!()
);

const PRESIGN_PUT_MEDIA_ABOUT: &str = "\
Print a presigned PutMedia URL, alone on stdout: URL=$(openkvs presign put-media --stream S)

ffmpeg and GStreamer's curlhttpsink can POST a live MKV stream to a URL but cannot sign the \
request (curlhttpsink cannot even set headers). In this URL the stream name and the timecode \
type are query parameters (x-amzn-stream-name, x-amzn-fragment-timecode-type) and the SigV4 \
signature covers them (X-Amz-SignedHeaders=host, payload hash of the empty string, as the server \
verifies PutMedia), so they need nothing else. Anyone who has the URL can write to the stream \
until it expires; the URL is signed for the host exactly as written in --endpoint-url, which \
must be the host name the producer connects to.

These tools neither read the ACKs nor resume after an error; `openkvs put-media` does both.";

const PRESIGN_PUT_MEDIA_EXAMPLES: &str = concat!(
    "\
Examples:
  URL=$(openkvs presign put-media --stream cam1 --expires 1h)

  # a file, at its own pace (-re)
  ffmpeg -re -i input.mp4 -c copy -f matroska -live 1 -method POST -chunked_post 1 \"$URL\"

  # an RTSP camera, relayed without re-encoding (its key frames should be at most 10 s apart)
  ffmpeg -rtsp_transport tcp -i rtsp://CAMERA/stream -c copy -f matroska -live 1 \\
    -method POST -chunked_post 1 \"$URL\"

  # GStreamer: curlhttpsink (gst-plugins-bad) cannot set headers, so the URL carries everything
  gst-launch-1.0 -e videotestsrc is-live=true ! video/x-raw,width=640,height=480,framerate=30/1 \\
    ! x264enc tune=zerolatency key-int-max=30 ! h264parse \\
    ! matroskamux streamable=true ! curlhttpsink location=\"$URL\" \\
    use-content-length=false content-type=video/x-matroska

Temporary credentials (AWS_SESSION_TOKEN) put their token in the URL, which stops working when \
they expire.

",
    credentials_help!()
);

/// Options every client subcommand takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// Base URL of the openkvs server (or of a KVS data endpoint from GetDataEndpoint); PutMedia
    /// goes to URL/putMedia.
    #[arg(
        long,
        visible_alias = "endpoint",
        env = "OPENKVS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub endpoint_url: String,

    /// AWS profile to take credentials and region from: section `[NAME]` in ~/.aws/credentials
    /// or `[profile NAME]` in ~/.aws/config. Overrides AWS_PROFILE; as in the AWS CLI, the
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables are then ignored.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Region of the signature scope. Default: AWS_REGION, AWS_DEFAULT_REGION, the profile's
    /// `region`, else us-east-1 (an openkvs server accepts any region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Extra CA certificates (PEM) to trust for https:// endpoints, besides the system store.
    /// Default: AWS_CA_BUNDLE, or the profile's `ca_bundle`.
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
}

/// `--timecode-type` of put-media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TimecodeTypeArg {
    /// ABSOLUTE when the first cluster is after the year 2000, else RELATIVE.
    Auto,
    /// Cluster timecodes are wall-clock times since 1970 (what KVS producers write).
    Absolute,
    /// Cluster timecodes count from the producer start timestamp, which openkvs sets to the
    /// time the upload starts (files from ffmpeg and GStreamer count from 0).
    Relative,
}

/// `--timecode-type` of presign put-media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PresignTimecodeType {
    /// Cluster timecodes are wall-clock times since 1970.
    Absolute,
    /// Cluster timecodes count from 0; the server dates fragments from the start of the upload.
    Relative,
}

/// How ACKs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// PERSISTED and ERROR ACKs as human lines on stderr.
    Text,
    /// Every ACK as one JSON object per line on stdout (KVS wire fields: EventType,
    /// FragmentTimecode, FragmentNumber, ErrorId).
    Json,
}

/// Options of `openkvs put-media`.
#[derive(Debug, Args)]
pub(crate) struct PutMediaArgs {
    /// MKV file to upload, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,

    /// Name of the stream to write to. It must exist (aws kinesisvideo create-stream
    /// --stream-name NAME --data-retention-in-hours 24 --endpoint-url URL).
    #[arg(long, visible_alias = "stream-name", value_name = "NAME")]
    pub stream: String,

    /// How the server dates fragments (x-amzn-fragment-timecode-type): from the cluster
    /// timecodes as wall-clock times (absolute) or from the upload's start time plus the cluster
    /// timecodes (relative).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "auto",
        value_name = "TYPE"
    )]
    pub timecode_type: TimecodeTypeArg,

    /// Send at the input's own pace, frame by frame by cluster and block timecodes (like ffmpeg
    /// -re), to replay a file as if it were live. Without it a file goes as fast as the network
    /// allows. Not for live sources on stdin: they come at their pace already.
    #[arg(long)]
    pub realtime: bool,

    /// Fail at the first dropped connection or ERROR ACK instead of reconnecting and re-sending
    /// the fragments not yet PERSISTED.
    #[arg(long)]
    pub no_resume: bool,

    /// ACK output: `text` prints PERSISTED and ERROR ACKs on stderr; `json` prints every ACK as
    /// one JSON object per line on stdout. The progress bar (only when stderr is a terminal) and
    /// the summary always go to stderr.
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub output: OutputFormat,

    /// Memory for fragments not yet PERSISTED, kept to re-send them after a reconnect (128 MiB
    /// is kvssink's storage-size). When it is full, reading pauses until ACKs free space: with
    /// stdin, the producer then blocks. A single fragment larger than this is still read whole.
    #[arg(long, default_value = "128MiB", value_parser = crate::client::duration::parse_bytes, value_name = "SIZE")]
    pub buffer_size: u64,

    /// Reconnect when fragments have waited this long without a PERSISTED ACK; also bounds the
    /// wait for the last ACK. Units s, m, h, d (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = crate::client::duration::parse_duration, value_name = "DURATION")]
    pub ack_timeout: Duration,

    /// Reconnect attempts in a row without a new PERSISTED ACK before giving up. The back-off
    /// starts at 0.25 s and doubles up to 8 s, so 10 attempts ride out about 48 s of server
    /// downtime (a restart, say).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub retries: u32,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PresignCommand {
    /// Print a presigned PutMedia URL for ffmpeg or GStreamer (alone on stdout).
    #[command(long_about = PRESIGN_PUT_MEDIA_ABOUT, after_long_help = PRESIGN_PUT_MEDIA_EXAMPLES)]
    PutMedia(PresignPutMediaArgs),
    /// Print a presigned, resumable download URL of a clip (alone on stdout).
    #[command(long_about = PRESIGN_GET_CLIP_ABOUT, after_long_help = PRESIGN_GET_CLIP_EXAMPLES)]
    GetClip(PresignGetClipArgs),
}

/// How get-clip commands read times; part of their `--help`.
macro_rules! clip_time_help {
    () => {
        "Times (--start, --end) are ISO-8601 with a zone (2026-11-22T10:00:00Z, \
2026-11-22T11:00:00+01:00), epoch seconds (1795341600), `now`, or a time before now \
(-15m, -2h, -1d, now-90s; units s, m, h, d). A clip holds the fragments that start at or after \
--start and at or before --end, at most 24 hours."
    };
}

const GET_CLIP_ABOUT: &str = "\
Download a time range of a stream as one MP4 file, with GetClip (POST /getClip, signed like the \
AWS CLI signs it), and print `<sha256>  <file>` on stdout.

The file is a progressive (non-fragmented) MP4 with the stream's H.264/H.265 video and \
AAC/G.711 audio, streamed to FILE.part with a progress bar and renamed to FILE when complete. \
The SHA-256 printed is that of the bytes written; it equals the server's \
/clip/v1/getClip.sha256 for the same range (see `openkvs presign get-clip --help`).";

const GET_CLIP_EXAMPLES: &str = concat!(
    clip_time_help!(),
    "

Examples:
  # the last 15 minutes of cam1
  openkvs get-clip --stream cam1 --start -15m --end now -o last15.mp4
  # an hour by producer timestamps, ISO-8601
  openkvs get-clip --stream cam1 --timestamp-type producer \\
    --start 2026-11-22T10:00:00Z --end 2026-11-22T11:00:00Z -o morning.mp4
  # epoch seconds
  openkvs get-clip --stream cam1 --start 1795341600 --end 1795341900 -o clip.mp4

",
    credentials_help!()
);

const PRESIGN_GET_CLIP_ABOUT: &str = "\
Print a presigned URL of a clip, alone on stdout: URL=$(openkvs presign get-clip --stream S ...)

The URL points at openkvs' ranged clip resource /clip/v1/getClip.mp4 (not part of KVS): the \
same MP4 as `openkvs get-clip` for the same range, for a plain GET that browsers, <video>, curl \
and download managers can send. It supports HEAD, Range requests (resumable downloads, seeking), \
ETag / If-None-Match and Content-Disposition, and sends CORS headers. Replace getClip.mp4 by \
getClip.sha256 in the URL (before the `?`) to get the hex SHA-256 of the whole clip; that \
sidecar is the integrity source for evidence use. \
Relative times (-15m, now) are resolved when the URL is made: the URL always means the same \
range. Exporting needs an admin key: URLs signed with viewer credentials are refused (401). \
Anyone who has the URL can download the clip until it expires.";

const PRESIGN_GET_CLIP_EXAMPLES: &str = concat!(
    clip_time_help!(),
    "

Examples:
  URL=$(openkvs presign get-clip --stream cam1 --start -15m --end now --expires 1h)
  curl -fo clip.mp4 \"$URL\"
  # resume an interrupted download
  curl -fC - -o clip.mp4 \"$URL\"
  # verify it
  curl -fs \"${URL/getClip.mp4/getClip.sha256}\"; sha256sum clip.mp4

",
    credentials_help!()
);

/// `--timestamp-type` of get-clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TimestampTypeArg {
    /// SERVER_TIMESTAMP: when the server received each fragment.
    Server,
    /// PRODUCER_TIMESTAMP: the producer's own fragment times.
    Producer,
}

/// The clip a get-clip command means.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClipRangeArgs {
    /// Name of the stream, e.g. `--stream cam1`.
    #[arg(long, visible_alias = "stream-name", value_name = "NAME")]
    pub stream: String,

    /// Start of the range: ISO-8601 (2026-11-22T10:00:00Z), epoch seconds (1795341600), `now`,
    /// or before now (-15m, -2h). Fragments starting before it are left out.
    #[arg(long, value_parser = crate::client::timearg::parse_time, allow_hyphen_values = true, value_name = "TIME")]
    pub start: crate::client::timearg::TimeArg,

    /// End of the range, in the same forms as --start, e.g. `--end now` or
    /// `--end 2026-11-22T11:00:00Z`. Fragments starting at or before it are included.
    #[arg(long, value_parser = crate::client::timearg::parse_time, allow_hyphen_values = true, value_name = "TIME")]
    pub end: crate::client::timearg::TimeArg,

    /// Which fragment times --start and --end refer to: `server` (when the server received
    /// them) or `producer` (the times the producer wrote), e.g. `--timestamp-type producer`.
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "server",
        value_name = "TYPE"
    )]
    pub timestamp_type: TimestampTypeArg,
}

/// Options of `openkvs get-clip`.
#[derive(Debug, Args)]
pub(crate) struct GetClipArgs {
    #[command(flatten)]
    pub range: ClipRangeArgs,

    /// File to write, e.g. `-o clip.mp4`; an existing file is replaced once the download is
    /// complete. [default: <stream>_<start>_<end>.mp4 in the current directory]
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// No progress bar and no summary on stderr (the SHA-256 line is still printed).
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `openkvs presign get-clip`.
#[derive(Debug, Args)]
pub(crate) struct PresignGetClipArgs {
    #[command(flatten)]
    pub range: ClipRangeArgs,

    /// How long the URL stays valid: seconds, or with a unit s, m, h, d (300, 15m, 1h, 7d);
    /// at most 7d, e.g. `--expires 1d`. A download already started finishes after it expires.
    #[arg(long, default_value = "1h", value_parser = crate::client::duration::parse_expires, value_name = "DURATION")]
    pub expires: Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `openkvs presign put-media`.
#[derive(Debug, Args)]
pub(crate) struct PresignPutMediaArgs {
    /// Name of the stream the URL writes to.
    #[arg(long, visible_alias = "stream-name", value_name = "NAME")]
    pub stream: String,

    /// How long the URL stays valid: seconds, or with a unit s, m, h, d (300, 15m, 1h, 7d);
    /// at most 7d. A producer already connected may go on after it expires.
    #[arg(long, default_value = "1h", value_parser = crate::client::duration::parse_expires, value_name = "DURATION")]
    pub expires: Duration,

    /// x-amzn-fragment-timecode-type put in the URL. ffmpeg and GStreamer write cluster
    /// timecodes that count from 0, hence the default `relative`: the server dates fragments
    /// from the start of the upload. Use `absolute` only for producers that write wall-clock
    /// timecodes.
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "relative",
        value_name = "TYPE"
    )]
    pub timecode_type: PresignTimecodeType,

    #[command(flatten)]
    pub client: ClientArgs,
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

#[cfg(feature = "webrtc")]
const CAMERA_ABOUT: &str = "\
Simulate a camera: a WebRTC MASTER on a signaling channel that sends H.264 (and Opus, if the \
file has it) from an MKV file in a loop, paced by the file's timestamps.

It looks up the channel (DescribeSignalingChannel, GetSignalingChannelEndpoint with role \
MASTER), connects to the signaling WebSocket with a presigned URL, and answers every viewer's \
SDP offer with its own PeerConnection (trickle ICE both ways; TURN credentials from \
GetIceServerConfig for each offer). A viewer starts at the next key frame. It reconnects after \
a dropped socket or GO_AWAY and runs until interrupted (Ctrl-C).

The file must hold an H.264 track (V_MPEG4/ISO/AVC); AAC and other tracks are not sent (WebRTC \
has no AAC). --test-pattern loops a 4 s H.264 + Opus clip built into the binary.

With --stream, the same frames also go to that stream with PutMedia (as `openkvs put-media` \
sends them, resuming after errors), with wall-clock (ABSOLUTE) timecodes, so HLS, DASH, GetClip \
and the archive see what the viewers see.";

#[cfg(feature = "webrtc")]
const CAMERA_EXAMPLES: &str = concat!(
    "\
Examples:
  aws kinesisvideo create-signaling-channel --channel-name bike-stand --endpoint-url URL
  openkvs camera --channel bike-stand --test-pattern --endpoint URL
  # a recording, also archived to a stream
  openkvs camera --channel bike-stand --file samples/ffmpeg_h264_opus.mkv --stream bike-stand
  # media only through the TURN relay
  openkvs camera --channel bike-stand --test-pattern --ice-transport-policy relay

",
    credentials_help!()
);

#[cfg(feature = "webrtc")]
const VIEWER_ABOUT: &str = "\
Join a signaling channel as a WebRTC VIEWER, send an SDP offer (receive-only H.264 + Opus), and \
count the RTP packets that arrive for --duration after the connection is up. Prints one JSON \
object on stdout: connected, connect_ms, first_video_ms, video_packets, video_frames, \
video_bytes, audio_packets, local_candidate_types, remote_candidate_types. The exit status is \
non-zero if the connection did not come up or no video arrived.";

#[cfg(feature = "webrtc")]
const VIEWER_EXAMPLES: &str = concat!(
    "\
Examples:
  openkvs viewer --channel bike-stand --duration 10s
  # only through the TURN relay
  openkvs viewer --channel bike-stand --ice-transport-policy relay

",
    credentials_help!()
);

/// `--ice-transport-policy` of camera and viewer.
#[cfg(feature = "webrtc")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IcePolicyArg {
    /// Host, server-reflexive and relay candidates.
    All,
    /// Only TURN relay candidates: media always goes through the TURN server.
    Relay,
}

/// ICE options shared by camera and viewer.
#[cfg(feature = "webrtc")]
#[derive(Debug, Clone, Args)]
pub(crate) struct IceArgs {
    /// Local UDP address for ICE (repeatable). Default 0.0.0.0:0: every non-loopback interface.
    /// A loopback address (127.0.0.1:0) also gathers loopback candidates, for peers on one
    /// machine without a network.
    #[arg(long = "udp-addr", value_name = "ADDR:PORT")]
    pub udp_addrs: Vec<SocketAddr>,

    /// Which ICE candidates to use.
    #[arg(long, value_enum, default_value = "all", value_name = "POLICY")]
    pub ice_transport_policy: IcePolicyArg,
}

/// Options of `openkvs camera`.
#[cfg(feature = "webrtc")]
#[derive(Debug, Args)]
pub(crate) struct CameraArgs {
    /// Signaling channel name; the camera is its MASTER.
    #[arg(long, visible_alias = "channel-name", value_name = "NAME")]
    pub channel: String,

    /// MKV/WebM file with an H.264 track to loop (read into memory, at most 256 MiB).
    #[arg(long, value_name = "FILE", required_unless_present = "test_pattern")]
    pub file: Option<PathBuf>,

    /// Loop the built-in 4 s H.264 + Opus test pattern instead of a file.
    #[arg(long, conflicts_with = "file")]
    pub test_pattern: bool,

    /// Also push the media live to this stream with PutMedia (it must exist).
    #[arg(long, visible_alias = "stream-name", value_name = "NAME")]
    pub stream: Option<String>,

    #[command(flatten)]
    pub ice: IceArgs,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `openkvs viewer`.
#[cfg(feature = "webrtc")]
#[derive(Debug, Args)]
pub(crate) struct ViewerArgs {
    /// Signaling channel name.
    #[arg(long, visible_alias = "channel-name", value_name = "NAME")]
    pub channel: String,

    /// This viewer's ClientId. [default: a random one]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// How long to receive once connected. Units s, m, h, d.
    #[arg(long, default_value = "5s", value_parser = crate::client::duration::parse_duration, value_name = "DURATION")]
    pub duration: Duration,

    /// Give up if not connected within this time.
    #[arg(long, default_value = "20s", value_parser = crate::client::duration::parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,

    #[command(flatten)]
    pub ice: IceArgs,

    #[command(flatten)]
    pub client: ClientArgs,
}
