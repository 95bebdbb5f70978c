//! The bike-stand camera simulator: a WebRTC MASTER on an openkvs (or KVS) signaling channel
//! that sends H.264 (and Opus, if the file has it) from an MKV file in a loop, paced by the
//! file's timestamps. It is what `openkvs camera` runs, and what `openkvs serve --demo` embeds.
//!
//! ```text
//!  MKV bytes ──media::Clip (pure: AVCC→Annex B, durations)──► pacer task ──broadcast──┐
//!                                                                                      ▼
//!  DescribeSignalingChannel, GetSignalingChannelEndpoint(MASTER)     one PeerConnection per
//!  presigned wss:// ──► master task ◄── SDP_OFFER / ICE_CANDIDATE    viewer ClientId, fed from
//!  GetIceServerConfig (per offer)  ──► SDP_ANSWER / ICE_CANDIDATE    the next key frame on
//! ```
//!
//! # In-process API
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use openkvs_camera::{CameraConfig, MediaSource};
//! let cfg = CameraConfig::new(
//!     "http://127.0.0.1:8080",
//!     sigv4::Credentials::new("AKID", "SECRET"),
//!     "demo-channel",
//!     MediaSource::TestPattern,
//! );
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! let camera = tokio::spawn(openkvs_camera::run(cfg, async { let _ = stop_rx.await; }));
//! // ... later:
//! let _ = stop_tx.send(());
//! camera.await??;
//! # Ok(()) }
//! ```
//!
//! [`run`] returns `Err` at once if the first connection fails (unknown channel, bad
//! credentials, unreachable endpoint, unusable file), so a caller sees configuration errors.
//! After that it reconnects on its own after a dropped socket or GO_AWAY, and returns `Ok(())`
//! when `shutdown` completes (closing every PeerConnection), or `Err` if the channel is deleted.
//!
//! With [`CameraConfig::live_mkv`] it also writes the same frames as a live MKV stream
//! (ABSOLUTE cluster timecodes, one cluster per key frame) into a byte pipe, for a PutMedia
//! uploader to push to a stream (`openkvs camera --stream`).
//!
//! [`viewer::watch`] is the other end: a VIEWER that sends an offer and counts the RTP packets
//! it receives, used by `openkvs viewer` and the end-to-end tests.
//!
//! Deliberately not here: encoding (the file is sent as is), simulcast, data channels,
//! receiving media from viewers, non-H.264 video.
#![deny(missing_docs)]

mod client;
mod live_mkv;
mod master;
pub mod media;
mod peer;
pub mod viewer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::broadcast;

pub use peer::IcePolicy;

/// The H.264 + Opus test pattern compiled into the binary (`samples/ffmpeg_h264_opus.mkv`:
/// ffmpeg `testsrc` + 440 Hz sine, 4 s, 320x240, 25 fps, constrained baseline, GOP 25).
pub const TEST_PATTERN_MKV: &[u8] = include_bytes!("../../../samples/ffmpeg_h264_opus.mkv");

/// Frames buffered per viewer before it counts as fallen behind (then it skips to the next key
/// frame): about 2.5 s of 25 fps video plus 20 ms audio.
const FRAME_QUEUE: usize = 256;

/// Where the looped media comes from.
#[derive(Debug, Clone)]
pub enum MediaSource {
    /// An MKV/WebM file with an H.264 track (read whole, at most [`media::MAX_FILE_BYTES`]).
    File(PathBuf),
    /// MKV bytes already in memory.
    Bytes(Arc<[u8]>),
    /// [`TEST_PATTERN_MKV`].
    TestPattern,
}

/// Everything [`run`] needs.
pub struct CameraConfig {
    /// Control-plane base URL (`http://host:port` or `https://…`): DescribeSignalingChannel and
    /// GetSignalingChannelEndpoint go there.
    pub endpoint: String,
    /// Credentials to sign with (the SigV4 service is `kinesisvideo`).
    pub credentials: sigv4::Credentials,
    /// Region of the signature scope.
    pub region: String,
    /// Signaling channel name; the camera is its MASTER.
    pub channel: String,
    /// The media to loop.
    pub source: MediaSource,
    /// TLS client settings for `https://`/`wss://` endpoints (trusted CAs). `None` allows only
    /// plain `http://`/`ws://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local UDP addresses for ICE. Empty: `0.0.0.0:0`, one socket per non-loopback interface.
    /// A loopback address (e.g. `127.0.0.1:0`) also turns on loopback candidates.
    pub udp_addrs: Vec<SocketAddr>,
    /// [`IcePolicy::Relay`] sends media only through TURN.
    pub ice_policy: IcePolicy,
    /// If set, the paced frames are also written here as a live MKV stream (for PutMedia).
    /// The camera never waits for this pipe: when it is full, frames are dropped up to the next
    /// key frame.
    pub live_mkv: Option<tokio::io::DuplexStream>,
}

impl std::fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraConfig")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("region", &self.region)
            .field("channel", &self.channel)
            .field("source", &self.source)
            .field("tls", &self.tls.is_some())
            .field("udp_addrs", &self.udp_addrs)
            .field("ice_policy", &self.ice_policy)
            .field("live_mkv", &self.live_mkv.is_some())
            .finish()
    }
}

impl CameraConfig {
    /// A configuration with region `us-east-1`, no TLS, all interfaces, all candidate types,
    /// no live MKV output.
    pub fn new(
        endpoint: impl Into<String>,
        credentials: sigv4::Credentials,
        channel: impl Into<String>,
        source: MediaSource,
    ) -> Self {
        CameraConfig {
            endpoint: endpoint.into(),
            credentials,
            region: "us-east-1".to_owned(),
            channel: channel.into(),
            source,
            tls: None,
            udp_addrs: Vec::new(),
            ice_policy: IcePolicy::All,
            live_mkv: None,
        }
    }

    fn signer(&self) -> client::Signer {
        client::Signer {
            credentials: self.credentials.clone(),
            region: self.region.clone(),
            tls: self.tls.clone(),
        }
    }
}

/// Loads the media, then runs the camera until `shutdown` completes. See the crate docs.
pub async fn run(
    mut cfg: CameraConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let clip = Arc::new(load(&cfg.source).await?);
    master::check_clip(&clip)?;
    if !clip.skipped.is_empty() {
        tracing::info!(
            skipped = %clip.skipped.join(", "),
            "tracks not sent over WebRTC (only H.264 and Opus are)"
        );
    }
    let (tx, _) = broadcast::channel(FRAME_QUEUE);
    let pacer = tokio::spawn(pace(Arc::clone(&clip), tx.clone()));
    let live = cfg
        .live_mkv
        .take()
        .map(|pipe| tokio::spawn(live_mkv::write(Arc::clone(&clip), tx.subscribe(), pipe)));
    let mut m = master::Master::new(&cfg, clip.has_audio(), tx);
    let result = m.run(shutdown).await;
    pacer.abort();
    if let Some(l) = live {
        l.abort();
    }
    result
}

async fn load(source: &MediaSource) -> anyhow::Result<media::Clip> {
    match source {
        MediaSource::File(path) => {
            let data = tokio::fs::read(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            media::Clip::from_mkv(&data).with_context(|| path.display().to_string())
        }
        MediaSource::Bytes(b) => media::Clip::from_mkv(b),
        MediaSource::TestPattern => {
            media::Clip::from_mkv(TEST_PATTERN_MKV).context("the built-in test pattern")
        }
    }
}

/// Publishes the frames at their timestamps, looping forever. Sleeping until absolute
/// deadlines (not for durations) keeps the loop from drifting.
async fn pace(clip: Arc<media::Clip>, tx: broadcast::Sender<media::ClipFrame>) {
    let start = tokio::time::Instant::now();
    let mut base = Duration::ZERO;
    // A zero-length clip (one frame) still advances.
    let loop_len = clip.loop_duration.max(Duration::from_millis(40));
    loop {
        for f in &clip.frames {
            tokio::time::sleep_until(start + base + f.pts).await;
            // No receivers is fine: nobody is watching.
            let _ = tx.send(f.clone());
        }
        base += loop_len;
    }
}
