//! A VIEWER that proves media flows: it joins a channel with a ClientId, sends an SDP offer
//! (receive-only H.264 + Opus), trickles ICE both ways, and counts the RTP packets that arrive
//! on each track for a while. `openkvs viewer` and the end-to-end tests use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use rtc::rtp_transceiver::RTCRtpTransceiverInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use crate::client::{self, Signer};
use crate::peer::{self, IcePolicy};

/// What [`watch`] needs.
#[derive(Clone)]
pub struct ViewerConfig {
    /// Control-plane base URL.
    pub endpoint: String,
    /// Credentials to sign with.
    pub credentials: sigv4::Credentials,
    /// Region of the signature scope.
    pub region: String,
    /// Signaling channel name.
    pub channel: String,
    /// This viewer's ClientId.
    pub client_id: String,
    /// TLS client settings for https/wss endpoints.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local UDP addresses (see [`crate::CameraConfig::udp_addrs`]).
    pub udp_addrs: Vec<SocketAddr>,
    /// Candidate policy.
    pub ice_policy: IcePolicy,
    /// How long to receive after the connection is up.
    pub receive_for: Duration,
    /// Give up if not connected within this time.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ViewerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerConfig")
            .field("endpoint", &self.endpoint)
            .field("channel", &self.channel)
            .field("client_id", &self.client_id)
            .field("udp_addrs", &self.udp_addrs)
            .field("ice_policy", &self.ice_policy)
            .field("receive_for", &self.receive_for)
            .finish_non_exhaustive()
    }
}

/// What arrived.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ViewerReport {
    /// The PeerConnection reached `connected`.
    pub connected: bool,
    /// Milliseconds from sending the offer to `connected`.
    pub connect_ms: Option<u64>,
    /// Milliseconds from sending the offer to the first video RTP packet.
    pub first_video_ms: Option<u64>,
    /// H.264 RTP packets received.
    pub video_packets: u64,
    /// H.264 access units completed (RTP marker bit set).
    pub video_frames: u64,
    /// H.264 RTP payload bytes.
    pub video_bytes: u64,
    /// Opus RTP packets received.
    pub audio_packets: u64,
    /// Types of the local candidates gathered (`host`, `srflx`, `relay`), deduplicated.
    pub local_candidate_types: Vec<String>,
    /// Types of the candidates the master sent, deduplicated.
    pub remote_candidate_types: Vec<String>,
}

enum Ev {
    Candidate(RTCIceCandidateInit, String),
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::UnboundedSender<Ev>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(c) = event.candidate.to_json() {
            let _ = self
                .tx
                .send(Ev::Candidate(c, event.candidate.typ.to_string()));
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(Ev::State(state));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.send(Ev::Track(track));
    }
}

#[derive(Debug, Default)]
struct Counters {
    video_packets: AtomicU64,
    video_frames: AtomicU64,
    video_bytes: AtomicU64,
    audio_packets: AtomicU64,
    first_video_ms: AtomicU64,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

/// Connects as a VIEWER, receives for `receive_for` after the connection is up, and reports.
/// Fails if signaling fails or the connection is not up within `connect_timeout`.
pub async fn watch(cfg: ViewerConfig) -> anyhow::Result<ViewerReport> {
    let signer = Signer {
        credentials: cfg.credentials.clone(),
        region: cfg.region.clone(),
        tls: cfg.tls.clone(),
    };
    let eps = client::channel_endpoints(&signer, &cfg.endpoint, &cfg.channel, "VIEWER").await?;
    let ice = client::ice_servers(&signer, &eps, Some(&cfg.client_id)).await?;
    let mut ws = client::connect_signaling(&signer, &eps, Some(&cfg.client_id)).await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let pc = peer::build(
        &ice,
        cfg.ice_policy,
        &cfg.udp_addrs,
        true,
        Arc::new(Handler { tx }),
    )
    .await?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .with_context(|| format!("adding a receive-only {kind} transceiver"))?;
    }
    let offer = pc.create_offer(None).await.context("creating the offer")?;
    pc.set_local_description(offer.clone())
        .await
        .context("setting the offer")?;
    let offer = pc.local_description().await.unwrap_or(offer);
    let started = Instant::now();
    ws.send(Message::Text(
        peer::outgoing("SDP_OFFER", None, &peer::sdp_payload(&offer)).into(),
    ))
    .await
    .context("sending SDP_OFFER")?;

    let counters = Arc::new(Counters::default());
    let mut report = ViewerReport::default();
    let mut have_answer = false;
    let mut early: Vec<RTCIceCandidateInit> = Vec::new();
    let mut deadline = started + cfg.connect_timeout;
    let mut tasks = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if report.connected {
                        return Ok(());
                    }
                    bail!("not connected within {:?}", cfg.connect_timeout);
                }
                ev = rx.recv() => match ev.expect("the handler holds a sender") {
                    Ev::Candidate(c, typ) => {
                        push_unique(&mut report.local_candidate_types, &typ);
                        ws.send(Message::Text(
                            peer::outgoing("ICE_CANDIDATE", None, &peer::candidate_payload(&c)).into(),
                        ))
                        .await
                        .context("sending ICE_CANDIDATE")?;
                    }
                    Ev::State(state) => {
                        tracing::debug!(%state, "viewer connection state");
                        match state {
                            RTCPeerConnectionState::Connected if !report.connected => {
                                report.connected = true;
                                report.connect_ms = Some(ms(started.elapsed()));
                                deadline = Instant::now() + cfg.receive_for;
                            }
                            RTCPeerConnectionState::Failed => bail!("the connection failed"),
                            _ => {}
                        }
                    }
                    Ev::Track(track) => {
                        let counters = Arc::clone(&counters);
                        tasks.push(tokio::spawn(count(track, counters, started)));
                    }
                },
                msg = ws.next() => match msg {
                    None => bail!("signaling WebSocket closed"),
                    Some(Err(e)) => bail!("signaling WebSocket: {e}"),
                    Some(Ok(Message::Text(text))) => {
                        let Some(inc) = peer::parse_incoming(&text) else { continue };
                        match inc.message_type.as_str() {
                            "SDP_ANSWER" => {
                                let sdp = inc.payload.get("sdp").and_then(|s| s.as_str())
                                    .context("SDP_ANSWER without sdp")?;
                                let answer = RTCSessionDescription::answer(sdp.to_owned())
                                    .context("parsing the answer")?;
                                pc.set_remote_description(answer).await.context("setting the answer")?;
                                have_answer = true;
                                for c in early.drain(..) {
                                    let _ = pc.add_ice_candidate(c).await;
                                }
                            }
                            "ICE_CANDIDATE" => {
                                if let Some(c) = peer::parse_candidate(&inc.payload) {
                                    if let Some(t) = peer::candidate_type(&c.candidate) {
                                        push_unique(&mut report.remote_candidate_types, t);
                                    }
                                    if have_answer {
                                        pc.add_ice_candidate(c).await.context("adding a candidate")?;
                                    } else {
                                        early.push(c);
                                    }
                                }
                            }
                            "STATUS_RESPONSE" => tracing::warn!(payload = %inc.payload, "status response"),
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(f))) => bail!("server closed the WebSocket: {f:?}"),
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    .await;
    let _ = ws.close(None).await;
    let _ = pc.close().await;
    for t in tasks {
        t.abort();
    }
    result?;
    report.video_packets = counters.video_packets.load(Ordering::Relaxed);
    report.video_frames = counters.video_frames.load(Ordering::Relaxed);
    report.video_bytes = counters.video_bytes.load(Ordering::Relaxed);
    report.audio_packets = counters.audio_packets.load(Ordering::Relaxed);
    let first = counters.first_video_ms.load(Ordering::Relaxed);
    report.first_video_ms = (first > 0).then_some(first);
    Ok(report)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn count(track: Arc<dyn TrackRemote>, c: Arc<Counters>, started: Instant) {
    let kind = track.kind().await;
    while let Some(ev) = track.poll().await {
        if let TrackRemoteEvent::OnRtpPacket(pkt) = ev {
            match kind {
                RtpCodecKind::Video => {
                    if c.video_packets.fetch_add(1, Ordering::Relaxed) == 0 {
                        c.first_video_ms
                            .store(ms(started.elapsed()).max(1), Ordering::Relaxed);
                    }
                    c.video_bytes
                        .fetch_add(pkt.payload.len() as u64, Ordering::Relaxed);
                    if pkt.header.marker {
                        c.video_frames.fetch_add(1, Ordering::Relaxed);
                    }
                }
                RtpCodecKind::Audio => {
                    c.audio_packets.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}
