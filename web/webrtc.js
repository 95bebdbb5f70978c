// A small KVS WebRTC viewer over openkvs signaling (kvs-api.md §13): GetSignalingChannelEndpoint
// (WSS, VIEWER), GetIceServerConfig (the server's TURN), then the signaling WebSocket, which the
// server authenticates with the session cookie because the page is same-origin. Messages are the
// KVS ones: {action, messagePayload: base64(JSON)} out, {messageType, messagePayload} in.

import * as api from './api.js';

const b64 = (obj) => btoa(JSON.stringify(obj));
const unb64 = (s) => JSON.parse(atob(s));

/**
 * Connects as a viewer and plays into `video`. Resolves when the first frame is shown; rejects
 * on failure or after `timeoutMs`. `onState(text)` gets human-readable progress.
 * Returns {close()}.
 */
export async function watch({ channelArn, video, onState, timeoutMs = 6000 }) {
  if (typeof RTCPeerConnection !== 'function') {
    throw new Error('this browser has no WebRTC (RTCPeerConnection)');
  }
  const clientId = `web-${Math.random().toString(36).slice(2, 12)}`;
  onState('asking for the signaling endpoint');
  const ep = await api.call('GetSignalingChannelEndpoint', {
    ChannelARN: channelArn,
    SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: 'VIEWER' },
  });
  const wss = (ep.ResourceEndpointList || []).find((e) => e.Protocol === 'WSS');
  if (!wss) throw new Error('no WSS signaling endpoint');
  const ice = await api.call('GetIceServerConfig', { ChannelARN: channelArn, ClientId: clientId });
  const iceServers = (ice.IceServerList || []).map((s) => ({
    urls: s.Uris, username: s.Username, credential: s.Password,
  }));
  onState(`ICE servers: ${iceServers.length ? iceServers.map((s) => s.urls.join(' ')).join(', ') : 'none (host candidates only)'}`);

  const pc = new RTCPeerConnection({ iceServers });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const url = `${wss.ResourceEndpoint.replace(/\/$/, '')}/?X-Amz-ChannelARN=${encodeURIComponent(channelArn)}&X-Amz-ClientId=${encodeURIComponent(clientId)}`;
  const ws = new WebSocket(url);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try { pc.close(); } catch { /* already closed */ }
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
    else if (ws.readyState === WebSocket.OPEN) ws.close();
    if (video.srcObject) video.srcObject = null;
  };
  const send = (action, payload) => {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ action, messagePayload: b64(payload), correlationId: `${clientId}.${Date.now()}` }));
    }
  };

  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no WebRTC video within ${timeoutMs / 1000} s (is a camera connected as master?)`)), timeoutMs);
    const fail = (msg) => { clearTimeout(timer); reject(new Error(msg)); };
    pc.onicecandidate = (e) => {
      if (e.candidate) send('ICE_CANDIDATE', e.candidate.toJSON());
    };
    pc.onconnectionstatechange = () => {
      onState(`peer connection: ${pc.connectionState}`);
      if (pc.connectionState === 'failed') fail('the peer connection failed (UDP/TURN blocked?)');
    };
    pc.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      video.srcObject = e.streams[0] || new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    video.addEventListener('loadeddata', () => {
      if (video.srcObject && video.videoWidth > 0) { clearTimeout(timer); resolve(); }
    }, { once: true });
    ws.onopen = async () => {
      onState('signaling connected; sending the offer');
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        send('SDP_OFFER', { type: 'offer', sdp: offer.sdp });
      } catch (e) {
        fail(`could not create an offer: ${e.message}`);
      }
    };
    ws.onerror = () => fail('the signaling WebSocket failed');
    ws.onclose = (e) => { if (!closed) onState(`signaling closed (${e.code})`); };
    ws.onmessage = async (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      try {
        if (msg.messageType === 'SDP_ANSWER') {
          onState('answer received; connecting');
          await pc.setRemoteDescription(unb64(msg.messagePayload));
        } else if (msg.messageType === 'ICE_CANDIDATE') {
          await pc.addIceCandidate(unb64(msg.messagePayload));
        } else if (msg.messageType === 'STATUS_RESPONSE') {
          const s = msg.statusResponse || {};
          onState(`signaling: ${s.errorType || 'status'} ${s.description || ''}`);
        } else if (msg.messageType === 'GO_AWAY') {
          fail('the server is going away');
        }
      } catch (e) {
        onState(`signaling message ignored: ${e.message}`);
      }
    };
  });
  try {
    await done;
  } catch (e) {
    close();
    throw e;
  }
  return { close, pc, route: () => route(pc) };
}

/** How the media flows: 'relay' (through TURN), 'direct' (host/srflx) or 'unknown'. */
async function route(pc) {
  try {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    const local = pair && stats.get(pair.localCandidateId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    if (!local || !remote) return 'unknown';
    return local.candidateType === 'relay' || remote.candidateType === 'relay' ? 'relay' : 'direct';
  } catch {
    return 'unknown';
  }
}
