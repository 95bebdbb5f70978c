//! The MASTER: one signaling WebSocket, one PeerConnection per viewer ClientId.
//!
//! One task owns the socket and the map of peers; PeerConnection callbacks only forward
//! [`PeerEvent`]s to it over a channel (no shared state). A viewer's new SDP_OFFER replaces its
//! old PeerConnection. A dropped socket or GO_AWAY reconnects with back-off; the existing
//! PeerConnections keep streaming meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::CameraConfig;
use crate::client::{self, ChannelEndpoints, Signer, Ws};
use crate::media::{ClipFrame, Kind};
use crate::peer::{self, Incoming};

/// WebSocket ping interval; the server's idle timeout is longer (`kvs-api.md` §13.5).
const PING_EVERY: Duration = Duration::from_secs(20);
/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// What a PeerConnection callback tells the master task.
#[derive(Debug)]
enum PeerEvent {
    Candidate {
        client_id: String,
        generation: u64,
        candidate: RTCIceCandidateInit,
    },
    State {
        client_id: String,
        generation: u64,
        state: RTCPeerConnectionState,
    },
}

struct Handler {
    client_id: String,
    generation: u64,
    tx: mpsc::UnboundedSender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(candidate) = event.candidate.to_json() {
            let _ = self.tx.send(PeerEvent::Candidate {
                client_id: self.client_id.clone(),
                generation: self.generation,
                candidate,
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PeerEvent::State {
            client_id: self.client_id.clone(),
            generation: self.generation,
            state,
        });
    }
}

/// A local track and what writing to it needs.
#[derive(Clone)]
struct Out {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

struct Peer {
    generation: u64,
    pc: Arc<dyn PeerConnection>,
    video: Out,
    audio: Option<Out>,
    feeder: Option<tokio::task::JoinHandle<()>>,
}

impl Peer {
    async fn close(self) {
        if let Some(f) = self.feeder {
            f.abort();
        }
        let _ = self.pc.close().await;
    }
}

pub(crate) struct Master<'a> {
    cfg: &'a CameraConfig,
    signer: Signer,
    audio: bool,
    frames: broadcast::Sender<ClipFrame>,
    peers: HashMap<String, Peer>,
    /// Candidates that arrived before their viewer's offer.
    early: HashMap<String, Vec<RTCIceCandidateInit>>,
    generation: u64,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    events_rx: mpsc::UnboundedReceiver<PeerEvent>,
}

/// Why one WebSocket session ended.
enum SessionEnd {
    Shutdown,
    Reconnect(String),
}

impl<'a> Master<'a> {
    pub(crate) fn new(
        cfg: &'a CameraConfig,
        audio: bool,
        frames: broadcast::Sender<ClipFrame>,
    ) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Master {
            cfg,
            signer: cfg.signer(),
            audio,
            frames,
            peers: HashMap::new(),
            early: HashMap::new(),
            generation: 0,
            events_tx,
            events_rx,
        }
    }

    /// Connects (failing fast the first time), then serves viewers until `shutdown`.
    pub(crate) async fn run(&mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut first = true;
        let mut backoff = BACKOFF_MIN;
        loop {
            let connected = tokio::select! {
                r = self.connect() => r,
                () = &mut shutdown => break,
            };
            let (eps, ws) = match connected {
                Ok(c) => c,
                Err(e) if first => return Err(e),
                Err(e) => {
                    // A deleted channel will not come back: stop instead of retrying forever.
                    if format!("{e:#}").contains("ResourceNotFoundException") {
                        return Err(e.context("the signaling channel is gone"));
                    }
                    tracing::warn!("signaling: {e:#}; retrying in {backoff:?}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if first {
                tracing::info!(channel = %eps.arn, endpoint = %eps.wss, "camera connected as MASTER");
            } else {
                tracing::info!("signaling reconnected");
            }
            first = false;
            backoff = BACKOFF_MIN;
            match self.session(&eps, ws, &mut shutdown).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Reconnect(why) => {
                    tracing::info!("signaling: {why}; reconnecting");
                }
            }
        }
        for (_, p) in self.peers.drain() {
            p.close().await;
        }
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<(ChannelEndpoints, Ws)> {
        let eps = client::channel_endpoints(
            &self.signer,
            &self.cfg.endpoint,
            &self.cfg.channel,
            "MASTER",
        )
        .await?;
        let ws = client::connect_signaling(&self.signer, &eps, None).await?;
        Ok((eps, ws))
    }

    async fn session<S: Future<Output = ()> + Unpin>(
        &mut self,
        eps: &ChannelEndpoints,
        mut ws: Ws,
        shutdown: &mut S,
    ) -> SessionEnd {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            tokio::select! {
                () = &mut *shutdown => {
                    let _ = ws.close(None).await;
                    return SessionEnd::Shutdown;
                }
                _ = ping.tick() => {
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        return SessionEnd::Reconnect(format!("ping failed: {e}"));
                    }
                }
                ev = self.events_rx.recv() => {
                    let ev = ev.expect("the master holds a sender");
                    if let Err(e) = self.on_peer_event(&mut ws, ev).await {
                        return SessionEnd::Reconnect(format!("{e:#}"));
                    }
                }
                msg = ws.next() => match msg {
                    None => return SessionEnd::Reconnect("WebSocket closed".into()),
                    Some(Err(e)) => return SessionEnd::Reconnect(format!("WebSocket error: {e}")),
                    Some(Ok(Message::Text(text))) => {
                        let Some(inc) = peer::parse_incoming(&text) else {
                            tracing::debug!(%text, "signaling: ignoring a message");
                            continue;
                        };
                        if inc.message_type == "GO_AWAY" {
                            let _ = ws.close(None).await;
                            return SessionEnd::Reconnect("GO_AWAY".into());
                        }
                        if let Err(e) = self.on_message(eps, &mut ws, inc).await {
                            tracing::warn!("signaling: {e:#}");
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return SessionEnd::Reconnect(format!("server closed the WebSocket: {frame:?}"));
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    async fn on_message(
        &mut self,
        eps: &ChannelEndpoints,
        ws: &mut Ws,
        inc: Incoming,
    ) -> anyhow::Result<()> {
        match inc.message_type.as_str() {
            "SDP_OFFER" => {
                let viewer = inc
                    .sender_client_id
                    .context("SDP_OFFER without senderClientId")?;
                let sdp = inc
                    .payload
                    .get("sdp")
                    .and_then(|s| s.as_str())
                    .with_context(|| format!("SDP_OFFER from {viewer} has no sdp"))?
                    .to_owned();
                let answer = self
                    .answer(eps, &viewer, sdp)
                    .await
                    .with_context(|| format!("answering viewer {viewer}"))?;
                ws.send(Message::Text(
                    peer::outgoing("SDP_ANSWER", Some(&viewer), &peer::sdp_payload(&answer)).into(),
                ))
                .await
                .context("sending SDP_ANSWER")?;
                tracing::info!(%viewer, "answered a viewer's offer");
                // Candidates that came before the offer.
                if let (Some(cands), Some(p)) =
                    (self.early.remove(&viewer), self.peers.get(&viewer))
                {
                    for c in cands {
                        let _ = p.pc.add_ice_candidate(c).await;
                    }
                }
            }
            "ICE_CANDIDATE" => {
                let viewer = inc
                    .sender_client_id
                    .context("ICE_CANDIDATE without senderClientId")?;
                let Some(c) = peer::parse_candidate(&inc.payload) else {
                    return Ok(());
                };
                match self.peers.get(&viewer) {
                    Some(p) => {
                        p.pc.add_ice_candidate(c)
                            .await
                            .with_context(|| format!("adding a candidate of viewer {viewer}"))?
                    }
                    None => {
                        let list = self.early.entry(viewer).or_default();
                        if list.len() < 64 {
                            list.push(c);
                        }
                    }
                }
            }
            "STATUS_RESPONSE" => {
                tracing::warn!(payload = %inc.payload, "signaling status response")
            }
            // TURN credentials are fetched for every offer, so rotation needs nothing else.
            "RECONNECT_ICE_SERVER" => {}
            other => tracing::debug!(message_type = other, "signaling: ignoring"),
        }
        Ok(())
    }

    async fn answer(
        &mut self,
        eps: &ChannelEndpoints,
        viewer: &str,
        sdp: String,
    ) -> anyhow::Result<RTCSessionDescription> {
        if let Some(old) = self.peers.remove(viewer) {
            old.close().await;
        }
        let ice = client::ice_servers(&self.signer, eps, None).await?;
        self.generation += 1;
        let generation = self.generation;
        let handler = Arc::new(Handler {
            client_id: viewer.to_owned(),
            generation,
            tx: self.events_tx.clone(),
        });
        let pc = peer::build(
            &ice,
            self.cfg.ice_policy,
            &self.cfg.udp_addrs,
            self.audio,
            handler,
        )
        .await?;
        let video = add_track(&pc, RtpCodecKind::Video, peer::h264_codec()).await?;
        let audio = if self.audio {
            Some(add_track(&pc, RtpCodecKind::Audio, peer::opus_codec()).await?)
        } else {
            None
        };
        let offer = RTCSessionDescription::offer(sdp).context("parsing the offer SDP")?;
        pc.set_remote_description(offer)
            .await
            .context("setting the offer")?;
        let answer = pc
            .create_answer(None)
            .await
            .context("creating the answer")?;
        pc.set_local_description(answer.clone())
            .await
            .context("setting the answer")?;
        let answer = pc.local_description().await.unwrap_or(answer);
        self.peers.insert(
            viewer.to_owned(),
            Peer {
                generation,
                pc,
                video,
                audio,
                feeder: None,
            },
        );
        Ok(answer)
    }

    async fn on_peer_event(&mut self, ws: &mut Ws, ev: PeerEvent) -> anyhow::Result<()> {
        match ev {
            PeerEvent::Candidate {
                client_id,
                generation,
                candidate,
            } => {
                if self.peers.get(&client_id).map(|p| p.generation) != Some(generation) {
                    return Ok(());
                }
                ws.send(Message::Text(
                    peer::outgoing(
                        "ICE_CANDIDATE",
                        Some(&client_id),
                        &peer::candidate_payload(&candidate),
                    )
                    .into(),
                ))
                .await
                .context("sending ICE_CANDIDATE")?;
            }
            PeerEvent::State {
                client_id,
                generation,
                state,
            } => {
                let Some(p) = self.peers.get_mut(&client_id) else {
                    return Ok(());
                };
                if p.generation != generation {
                    return Ok(());
                }
                tracing::info!(viewer = %client_id, %state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Connected if p.feeder.is_none() => {
                        p.feeder = Some(tokio::spawn(feed(
                            client_id.clone(),
                            p.video.clone(),
                            p.audio.clone(),
                            self.frames.subscribe(),
                        )));
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        if let Some(p) = self.peers.remove(&client_id) {
                            p.close().await;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

async fn add_track(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> anyhow::Result<Out> {
    let ssrc: u32 = rand::random();
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "openkvs-camera".to_owned(),
                format!("openkvs-camera-{kind}"),
                format!("openkvs-camera-{kind}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            ),
        )
        .with_context(|| format!("creating the {kind} track"))?,
    );
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .with_context(|| format!("adding the {kind} track"))?;
    Ok(Out {
        track,
        sender,
        ssrc,
    })
}

async fn payload_type(out: &Out) -> anyhow::Result<u8> {
    out.sender
        .get_parameters()
        .await
        .context("sender parameters")?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .context("the sender has no negotiated codec")
}

/// Writes the paced frames to one viewer's tracks, starting at the next key frame (and again
/// after falling behind).
async fn feed(
    viewer: String,
    video: Out,
    audio: Option<Out>,
    mut frames: broadcast::Receiver<ClipFrame>,
) {
    let run = async {
        let vpt = payload_type(&video).await?;
        let apt = match &audio {
            Some(a) => Some(payload_type(a).await?),
            None => None,
        };
        let mut need_key = true;
        let mut sent = 0u64;
        loop {
            let f = match frames.recv().await {
                Ok(f) => f,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(%viewer, skipped = n, "viewer fell behind; waiting for a key frame");
                    need_key = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            let (out, pt) = match (f.kind, &audio, apt) {
                (Kind::Video, _, _) => {
                    if need_key && !f.keyframe {
                        continue;
                    }
                    need_key = false;
                    (&video, vpt)
                }
                (Kind::Audio, Some(a), Some(pt)) => {
                    if need_key {
                        continue;
                    }
                    (a, pt)
                }
                (Kind::Audio, _, _) => continue,
            };
            let sample = Sample {
                data: f.data.clone(),
                duration: f.duration,
                ..Sample::new(Instant::now())
            };
            if let Err(e) = out
                .track
                .sample_writer(out.ssrc, pt)
                .write_sample(&sample)
                .await
            {
                tracing::debug!(%viewer, "write_sample: {e}");
            }
            sent += 1;
            if sent == 1 {
                tracing::info!(%viewer, "sending media");
            }
        }
    };
    let r: anyhow::Result<()> = run.await;
    if let Err(e) = r {
        tracing::warn!(%viewer, "media feed stopped: {e:#}");
    }
}

/// Fails unless `frames` can be sent on at least one track.
pub(crate) fn check_clip(clip: &crate::media::Clip) -> anyhow::Result<()> {
    if clip.frames.is_empty() {
        bail!("the file has no frames to send");
    }
    Ok(())
}
