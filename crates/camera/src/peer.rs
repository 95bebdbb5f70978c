//! PeerConnection construction shared by the camera (master) and the test viewer, and the KVS
//! signaling message shapes (`kvs-api.md` §13.6).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use serde_json::{Value, json};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy,
    RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::client::IceServer;

/// Which ICE candidates a peer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only TURN relay candidates (`iceTransportPolicy: "relay"`): media always goes through
    /// the TURN server.
    Relay,
}

/// The H.264 codec offered and answered: constrained baseline, packetization mode 1, which every
/// WebRTC browser decodes.
pub(crate) fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Opus, 48 kHz stereo as RFC 7587 §7 requires in SDP.
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Builds a PeerConnection with H.264 (and Opus when `audio`), the default interceptors, the
/// given ICE servers and policy, bound to `udp_addrs` (`0.0.0.0:0` when empty: every
/// non-loopback interface). Loopback candidates are gathered when a bind address is loopback,
/// so two peers on one machine can connect without any network interface.
pub(crate) async fn build(
    ice: &[IceServer],
    policy: IcePolicy,
    udp_addrs: &[SocketAddr],
    audio: bool,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264_codec(),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .context("registering H.264")?;
    if audio {
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus_codec(),
                    payload_type: 111,
                },
                RtpCodecKind::Audio,
            )
            .context("registering Opus")?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .context("registering interceptors")?;
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(
            ice.iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        )
        .with_ice_transport_policy(match policy {
            IcePolicy::All => RTCIceTransportPolicy::All,
            IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        })
        .build();
    let addrs: Vec<SocketAddr> = if udp_addrs.is_empty() {
        vec![SocketAddr::from(([0, 0, 0, 0], 0))]
    } else {
        udp_addrs.to_vec()
    };
    let loopback = addrs.iter().any(|a| a.ip().is_loopback());
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(loopback)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .build()
        .await
        .context("creating the PeerConnection")?;
    Ok(Arc::new(pc))
}

/// A signaling message received (`kvs-api.md` §13.6): PascalCase/camelCase keys as the server
/// writes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incoming {
    pub(crate) message_type: String,
    pub(crate) sender_client_id: Option<String>,
    /// The decoded `messagePayload` JSON (Null when absent or not base64 JSON).
    pub(crate) payload: Value,
}

pub(crate) fn parse_incoming(text: &str) -> Option<Incoming> {
    let v: Value = serde_json::from_str(text).ok()?;
    let message_type = v.get("messageType")?.as_str()?.to_owned();
    let sender_client_id = v
        .get("senderClientId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let payload = v
        .get("messagePayload")
        .and_then(Value::as_str)
        .and_then(|p| B64.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Some(Incoming {
        message_type,
        sender_client_id,
        payload,
    })
}

/// `{"action": ..., "recipientClientId": ..., "messagePayload": base64(JSON)}`.
pub(crate) fn outgoing(action: &str, recipient: Option<&str>, payload: &Value) -> String {
    let mut m = json!({
        "action": action,
        "messagePayload": B64.encode(payload.to_string()),
    });
    if let Some(r) = recipient {
        m["recipientClientId"] = json!(r);
    }
    m.to_string()
}

/// `{"type": "offer"|"answer", "sdp": ...}` as the JS SDK sends `RTCSessionDescription`s.
pub(crate) fn sdp_payload(desc: &RTCSessionDescription) -> Value {
    json!({ "type": desc.sdp_type.to_string(), "sdp": desc.sdp })
}

/// The `{candidate, sdpMid, sdpMLineIndex}` payload browsers send and accept.
pub(crate) fn candidate_payload(c: &RTCIceCandidateInit) -> Value {
    json!({
        "candidate": c.candidate,
        "sdpMid": c.sdp_mid,
        "sdpMLineIndex": c.sdp_mline_index,
    })
}

/// Reads an ICE_CANDIDATE payload; `None` for the end-of-candidates marker (empty candidate).
pub(crate) fn parse_candidate(v: &Value) -> Option<RTCIceCandidateInit> {
    let candidate = v.get("candidate")?.as_str()?;
    if candidate.is_empty() {
        return None;
    }
    Some(RTCIceCandidateInit {
        candidate: candidate.to_owned(),
        sdp_mid: v.get("sdpMid").and_then(Value::as_str).map(str::to_owned),
        sdp_mline_index: v
            .get("sdpMLineIndex")
            .and_then(Value::as_u64)
            .and_then(|i| u16::try_from(i).ok()),
        username_fragment: v
            .get("usernameFragment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        url: None,
    })
}

/// The `typ` of a candidate line (`host`, `srflx`, `prflx`, `relay`).
pub(crate) fn candidate_type(candidate: &str) -> Option<&str> {
    let mut it = candidate.split_ascii_whitespace();
    while let Some(w) = it.next() {
        if w == "typ" {
            return it.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip() {
        let out = outgoing("SDP_ANSWER", Some("viewer-1"), &json!({"type": "answer"}));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["action"], "SDP_ANSWER");
        assert_eq!(v["recipientClientId"], "viewer-1");
        let echoed = format!(
            r#"{{"messageType":"SDP_OFFER","senderClientId":"v","messagePayload":{}}}"#,
            v["messagePayload"]
        );
        let inc = parse_incoming(&echoed).unwrap();
        assert_eq!(inc.message_type, "SDP_OFFER");
        assert_eq!(inc.sender_client_id.as_deref(), Some("v"));
        assert_eq!(inc.payload, json!({"type": "answer"}));
        assert_eq!(parse_incoming(r#"{"x":1}"#), None);
    }

    #[test]
    fn candidate_table() {
        let line = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host";
        let c = parse_candidate(&json!({"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}))
            .unwrap();
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert_eq!(candidate_payload(&c)["candidate"], line);
        assert_eq!(parse_candidate(&json!({"candidate": ""})), None);
        assert_eq!(candidate_type(line), Some("host"));
        assert_eq!(
            candidate_type("candidate:2 1 udp 1 127.0.0.1 6 typ relay raddr 0.0.0.0 rport 0"),
            Some("relay")
        );
        assert_eq!(candidate_type("candidate:2 1 udp"), None);
    }
}
