// The openkvs viewer page: sign-in, bike stands (channel + stream of the same name), live view
// (WebRTC, falling back to LIVE HLS), 24 h archive timeline (ON_DEMAND HLS) and MP4 export.

import * as api from './api.js';
import * as webrtc from './webrtc.js';

const $ = (id) => document.getElementById(id);
/** How long WebRTC may take to show video before the page falls back to HLS: 6 s, or
 * `?webrtc-timeout=<seconds>` in the page URL for slow links. */
const WEBRTC_TIMEOUT_MS = (() => {
  const s = Number(new URLSearchParams(window.location.search).get('webrtc-timeout'));
  return s > 0 && s <= 120 ? s * 1000 : 6000;
})();
/** A producer counts as connected if its newest fragment started this recently. */
const LIVE_WITHIN_MS = 10000;
/** Fragments closer than this are drawn as one recorded span. */
const GAP_MS = 1500;

const state = {
  stand: null, // {name, stream, channel}
  player: null, // {kind: 'webrtc'|'hls-live'|'hls-archive', close()}
  fragments: [],
  cursorMs: null,
  refreshTimer: null,
  archiveTimer: null,
};

function show(el, on) { el.hidden = !on; }

function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  show(n, !!text);
}

const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const fmtDateTime = (ms) => new Date(ms).toLocaleString();
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
function fromLocalInput(s) {
  const t = new Date(s).getTime();
  return Number.isFinite(t) ? t : null;
}
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// ---------------------------------------------------------------- sign-in

async function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', onLogout);
  $('refresh').addEventListener('click', () => refreshCameras());
  $('close-stand').addEventListener('click', closeStand);
  $('go-live').addEventListener('click', () => state.stand && startLive());
  $('zoom').addEventListener('change', () => { state.zoomChosen = true; drawTimeline(); });
  $('play-from-go').addEventListener('click', () => {
    const t = fromLocalInput($('play-from').value);
    if (t) playArchive(t);
  });
  $('set-start').addEventListener('click', () => setClipEdge('clip-start'));
  $('set-end').addEventListener('click', () => setClipEdge('clip-end'));
  $('clip-start').addEventListener('change', drawTimeline);
  $('clip-end').addEventListener('change', drawTimeline);
  $('export-go').addEventListener('click', onExport);
  setupTimeline();
  let s = null;
  try {
    s = await api.restore();
  } catch (e) {
    notice(`The server did not answer: ${e.message}`);
  }
  if (!api.server().hlsJs) {
    notice('This server has no hls.js: run `npm ci --prefix web` where openkvs runs and reload. Live HLS, the archive and the WebRTC fallback cannot play until then.');
  }
  if (s) {
    signedIn(s);
  } else {
    if (api.server().signedOutReason) $('login-error').textContent = api.server().signedOutReason;
    signedOut();
  }
}

function signedOut() {
  closeStand();
  show($('who'), false);
  show($('cameras'), false);
  show($('login'), true);
  $('akid').focus();
}

function signedIn(s) {
  $('who-name').textContent = s.AccessKeyId;
  $('who-role').textContent = s.Role;
  show($('who'), true);
  show($('login'), false);
  show($('cameras'), true);
  document.body.dataset.role = s.Role;
  refreshCameras();
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => refreshCameras(true), 5000);
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = $('login-error');
  err.textContent = '';
  const akid = $('akid').value.trim();
  const secret = $('secret').value;
  if (!akid || !secret) {
    err.textContent = 'Enter the access key ID and the secret access key.';
    return;
  }
  $('login-submit').disabled = true;
  try {
    const s = await api.login(akid, secret, $('token').value.trim());
    $('secret').value = '';
    $('token').value = '';
    signedIn(s);
  } catch (e) {
    err.textContent = e.code === 'ExpiredTokenException'
      ? 'These temporary credentials have expired; mint new ones.'
      : 'Sign-in failed: the access key, secret or session token is not valid.';
  } finally {
    $('login-submit').disabled = false;
  }
}

async function onLogout() {
  clearInterval(state.refreshTimer);
  await api.logout();
  signedOut();
}

/** Runs an API call; a lost session sends the user back to the sign-in form. */
async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (['ExpiredTokenException', 'UnrecognizedClientException', 'MissingAuthenticationTokenException'].includes(e.code)) {
      notice('Your session has ended; sign in again.');
      clearInterval(state.refreshTimer);
      signedOut();
    }
    throw e;
  }
}

// ---------------------------------------------------------------- cameras

async function standStatus(name) {
  const now = Date.now();
  let frags = await api.fragments(name, now - 60000, now);
  let last = frags[frags.length - 1];
  if (!last) {
    frags = await api.fragments(name, now - 24 * 3600000, now);
    last = frags[frags.length - 1];
  }
  const recent = frags.slice(-10);
  const bytes = recent.reduce((a, f) => a + f.bytes, 0);
  const ms = recent.reduce((a, f) => a + f.lengthMs, 0);
  return {
    live: !!last && now - last.startMs < LIVE_WITHIN_MS,
    lastMs: last ? last.startMs + last.lengthMs : null,
    kbps: ms > 0 ? Math.round((bytes * 8) / ms) : null,
  };
}

async function refreshCameras(quiet) {
  let streams;
  let channels;
  try {
    [streams, channels] = await guarded(() => Promise.all([
      api.listAll('ListStreams', { MaxResults: 100 }, 'StreamInfoList'),
      api.listAll('ListSignalingChannels', { MaxResults: 100 }, 'ChannelInfoList'),
    ]));
  } catch (e) {
    if (!quiet) notice(`Could not list the bike stands: ${e.message}`);
    return;
  }
  const stands = new Map();
  for (const s of streams) stands.set(s.StreamName, { name: s.StreamName, stream: s, channel: null });
  for (const c of channels) {
    const e = stands.get(c.ChannelName) || { name: c.ChannelName, stream: null, channel: null };
    e.channel = c;
    stands.set(c.ChannelName, e);
  }
  const list = [...stands.values()].sort((a, b) => a.name.localeCompare(b.name));
  const ul = $('camera-list');
  if (!list.length) {
    ul.innerHTML = '<li class="hint">No streams or signaling channels yet. Start the server with <code>--demo</code>, or create a stream and a channel with the same name (README: Push live video).</li>';
    return;
  }
  const statuses = await Promise.all(list.map((s) => (s.stream ? standStatus(s.name).catch(() => null) : null)));
  ul.replaceChildren(...list.map((s, i) => cameraCard(s, statuses[i])));
  if (state.stand) {
    const fresh = stands.get(state.stand.name);
    if (fresh) { state.stand.stream = fresh.stream; state.stand.channel = fresh.channel; }
  }
}

function cameraCard(s, st) {
  const li = document.createElement('li');
  li.className = 'cam';
  li.dataset.stand = s.name;
  const h = document.createElement('h3');
  h.textContent = s.name;
  const dl = document.createElement('dl');
  const row = (k, v, cls) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd');
    if (v instanceof Node) dd.append(v); else dd.textContent = v;
    if (cls) dd.className = cls;
    dl.append(dt, dd);
  };
  const status = document.createElement('span');
  const dot = document.createElement('span');
  dot.className = `dot ${st && st.live ? 'live' : 'idle'}`;
  dot.setAttribute('aria-hidden', 'true');
  status.append(dot, st && st.live ? 'Producer connected' : 'No producer');
  row('Status', status, st && st.live ? 'st-live' : 'st-idle');
  row('Stream', s.stream ? `yes (${s.stream.DataRetentionInHours} h retention)` : 'no (no recording)');
  row('Channel', s.channel ? 'yes (WebRTC live)' : 'no (HLS live only)');
  if (s.stream) {
    row('Last video', st && st.lastMs ? `${fmtTime(st.lastMs)} (${ago(st.lastMs)})` : 'none in 24 h');
    row('Bitrate', st && st.kbps != null ? `${st.kbps} kbit/s` : '–');
  }
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = `Watch ${s.name}`;
  b.addEventListener('click', () => openStand(s));
  li.append(h, dl, b);
  return li;
}

// ---------------------------------------------------------------- player

function stopPlayer() {
  if (state.player) {
    try { state.player.close(); } catch { /* ignore */ }
    state.player = null;
  }
  const v = $('video');
  v.removeAttribute('src');
  v.srcObject = null;
  v.controls = false;
  show($('tl-playhead'), false);
}

function setMode(text, conn) {
  $('mode').textContent = text;
  if (conn !== undefined) $('conn').textContent = conn;
  document.body.dataset.playing = state.player ? state.player.kind : '';
}

let HlsClass = null;
async function loadHls() {
  if (HlsClass) return HlsClass;
  try {
    HlsClass = (await import('/ui/node_modules/hls.js/dist/hls.mjs')).default;
  } catch {
    throw new Error('hls.js is missing on the server: run `npm ci --prefix web` and reload');
  }
  if (!HlsClass.isSupported()) throw new Error('this browser cannot play HLS with Media Source Extensions');
  return HlsClass;
}

async function playHls(url, kind, onDate) {
  const Hls = await loadHls();
  const video = $('video');
  const hls = new Hls({ enableWorker: false, liveSyncDurationCount: 2, lowLatencyMode: false });
  const player = { kind, close: () => hls.destroy(), hls };
  state.player = player;
  hls.on(Hls.Events.ERROR, (_e, d) => {
    if (d.fatal) {
      $('conn').textContent = `HLS error: ${d.details}`;
      if (d.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => state.player === player && hls.startLoad(), 2000);
      else if (d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    }
  });
  if (onDate) {
    video.ontimeupdate = () => { if (state.player === player && hls.playingDate) onDate(hls.playingDate.getTime()); };
  } else {
    video.ontimeupdate = null;
  }
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  return player;
}

async function hlsUrl(mode, startMs, endMs) {
  const input = {
    StreamName: state.stand.name,
    PlaybackMode: mode,
    ContainerFormat: 'FRAGMENTED_MP4',
    Expires: 3600,
  };
  if (mode === 'ON_DEMAND') {
    input.HLSFragmentSelector = {
      FragmentSelectorType: 'SERVER_TIMESTAMP',
      TimestampRange: { StartTimestamp: startMs / 1000, EndTimestamp: endMs / 1000 },
    };
    input.MaxMediaPlaylistFragmentResults = 1000;
  }
  const v = await guarded(() => api.call('GetHLSStreamingSessionURL', input));
  return v.HLSStreamingSessionURL;
}

let liveAttempt = 0;
async function startLive() {
  const attempt = ++liveAttempt;
  stopPlayer();
  const stand = state.stand;
  let why = '';
  if (stand.channel) {
    setMode('Connecting over WebRTC…', '');
    try {
      const conn = await webrtc.watch({
        channelArn: stand.channel.ChannelARN,
        video: $('video'),
        timeoutMs: WEBRTC_TIMEOUT_MS,
        onState: (t) => { if (attempt === liveAttempt) $('conn').textContent = t; },
      });
      if (attempt !== liveAttempt) { conn.close(); return; }
      state.player = { kind: 'webrtc', close: conn.close };
      setMode('Live · WebRTC', 'connected; lowest latency');
      const how = await conn.route();
      if (attempt === liveAttempt) {
        $('conn').textContent = how === 'relay' ? 'connected through the TURN relay; lowest latency'
          : how === 'direct' ? 'connected directly to the camera; lowest latency' : 'connected; lowest latency';
      }
      return;
    } catch (e) {
      if (attempt !== liveAttempt) return;
      why = e.message;
    }
  } else {
    why = 'no signaling channel with this name';
  }
  if (!stand.stream) {
    setMode('Not playing', `WebRTC did not connect (${why}) and there is no stream to fall back to.`);
    return;
  }
  setMode('Live · HLS (fallback)', `WebRTC unavailable: ${why}. Playing LIVE HLS (a few seconds behind).`);
  try {
    const url = await hlsUrl('LIVE');
    if (attempt !== liveAttempt) return;
    await playHls(url, 'hls-live');
    setMode('Live · HLS (fallback)');
  } catch (e) {
    setMode('Not playing', `Live HLS failed: ${e.message}`);
  }
}

async function playArchive(fromMs) {
  liveAttempt++;
  stopPlayer();
  const frags = state.fragments;
  // Start at the fragment containing fromMs, or the next one after it.
  const f = frags.find((x) => x.startMs + x.lengthMs > fromMs);
  if (!f) {
    setMode('Not playing', `Nothing recorded after ${fmtDateTime(fromMs)}.`);
    return;
  }
  const startMs = Math.max(fromMs, f.startMs);
  setCursor(startMs);
  const endMs = Math.min(Date.now(), startMs + 3 * 3600000);
  setMode(`Archive · HLS from ${fmtTime(startMs)}`, 'on-demand recording; use the player controls to scrub');
  try {
    const url = await hlsUrl('ON_DEMAND', f.startMs, endMs);
    const p = await playHls(url, 'hls-archive', (t) => {
      const ph = $('tl-playhead');
      ph.style.left = `${pct(t)}%`;
      show(ph, pct(t) >= 0 && pct(t) <= 100);
      $('conn').textContent = `recorded at ${fmtDateTime(t)}`;
    });
    $('video').controls = true;
    setMode(`Archive · HLS from ${fmtTime(startMs)}`);
    return p;
  } catch (e) {
    setMode('Not playing', `Archive playback failed: ${e.message}`);
    return null;
  }
}

// ---------------------------------------------------------------- stand view

function openStand(s) {
  state.stand = { ...s };
  $('stand-title').textContent = s.name;
  show($('stand'), true);
  const admin = api.current() && api.current().Role === 'admin';
  show($('export'), admin && !!s.stream);
  show($('export-denied'), !admin && !!s.stream);
  const now = Date.now();
  $('clip-start').value = toLocalInput(now - 20000);
  $('clip-end').value = toLocalInput(now);
  $('play-from').value = toLocalInput(now - 60000);
  $('export-status').textContent = '';
  $('export-hash').textContent = '–';
  show($('export-progress'), false);
  show($('export-link'), false);
  state.cursorMs = null;
  state.zoomChosen = false;
  state.fragments = [];
  $('stand').scrollIntoView({ block: 'start' });
  $('stand-title').focus?.();
  startLive();
  loadArchive();
  clearInterval(state.archiveTimer);
  state.archiveTimer = setInterval(loadArchive, 5000);
}

function closeStand() {
  liveAttempt++;
  stopPlayer();
  clearInterval(state.archiveTimer);
  state.stand = null;
  show($('stand'), false);
  setMode('Not playing', '');
}

async function loadArchive() {
  const stand = state.stand;
  if (!stand || !stand.stream) {
    state.fragments = [];
    $('archive-summary').textContent = stand ? 'No stream with this name: nothing is recorded.' : '';
    drawTimeline();
    return;
  }
  const now = Date.now();
  try {
    // The first load reads 24 h; later ones only what arrived since the newest fragment known.
    const known = state.fragments;
    const since = known.length ? known[known.length - 1].startMs + 1 : now - 24 * 3600000;
    const fresh = await guarded(() => api.fragments(stand.name, since, now));
    if (state.stand !== stand) return;
    const seen = new Set(known.map((f) => f.number));
    const frags = known.concat(fresh.filter((f) => !seen.has(f.number)))
      .filter((f) => f.startMs >= now - 24 * 3600000);
    state.fragments = frags;
    if (!state.zoomChosen && frags.length) {
      // The smallest window that shows the oldest recording of the last 24 h.
      const age = now - frags[0].startMs;
      $('zoom').value = age <= 540000 ? '600' : age <= 3300000 ? '3600' : '86400';
      state.zoomChosen = true;
    }
  } catch (e) {
    $('archive-summary').textContent = `Could not load the archive: ${e.message}`;
    return;
  }
  drawTimeline();
}

// ---------------------------------------------------------------- timeline

function windowMs() {
  const span = Number($('zoom').value) * 1000;
  const end = Date.now();
  return { start: end - span, end, span };
}
function pct(t) {
  const w = windowMs();
  return ((t - w.start) / w.span) * 100;
}

/** Merges fragments into recorded spans; gaps longer than GAP_MS stay visible. */
function spans(frags) {
  const out = [];
  for (const f of frags) {
    const end = f.startMs + f.lengthMs;
    const last = out[out.length - 1];
    if (last && f.startMs - last.end <= GAP_MS) last.end = Math.max(last.end, end);
    else out.push({ start: f.startMs, end, count: 0 });
    out[out.length - 1].count++;
  }
  return out;
}

function drawTimeline() {
  const w = windowMs();
  const segs = $('tl-segments');
  const visible = state.fragments.filter((f) => f.startMs + f.lengthMs >= w.start);
  const sp = spans(visible);
  segs.replaceChildren(...sp.map((s) => {
    const d = document.createElement('div');
    d.className = 'tl-seg';
    const l = Math.max(0, pct(s.start));
    d.style.left = `${l}%`;
    d.style.width = `${Math.max(0.15, Math.min(100, pct(s.end)) - l)}%`;
    d.title = `${fmtTime(s.start)} – ${fmtTime(s.end)} (${s.count} fragments)`;
    d.dataset.fragments = s.count;
    return d;
  }));
  const total = state.fragments.length;
  const gaps = Math.max(0, spans(state.fragments).length - 1);
  const first = state.fragments[0];
  $('archive-summary').textContent = total
    ? `${total} fragments in the last 24 h since ${fmtTime(first.startMs)}, ${gaps} gap${gaps === 1 ? '' : 's'}`
    : (state.stand && state.stand.stream ? 'Nothing recorded in the last 24 h.' : '');
  $('timeline').dataset.fragments = String(total);
  const axis = $('tl-axis');
  axis.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((k) => {
    const s = document.createElement('span');
    s.style.left = `${k * 100}%`;
    const t = w.start + k * w.span;
    s.textContent = k === 1 ? 'now' : fmtTime(t);
    return s;
  }));
  // Export range.
  const a = fromLocalInput($('clip-start').value);
  const b = fromLocalInput($('clip-end').value);
  const ex = $('tl-export');
  if (a && b && b > a && !$('export').hidden) {
    const l = Math.max(0, pct(a));
    ex.style.left = `${l}%`;
    ex.style.width = `${Math.max(0.3, Math.min(100, pct(b)) - l)}%`;
    show(ex, pct(b) >= 0 && pct(a) <= 100);
  } else {
    show(ex, false);
  }
  if (state.cursorMs == null) setCursor(w.end - w.span * 0.1, true);
  else setCursor(state.cursorMs, true);
}

function setCursor(t, silent) {
  const w = windowMs();
  state.cursorMs = Math.min(w.end, Math.max(w.start, t));
  const p = pct(state.cursorMs);
  $('tl-cursor').style.left = `${p}%`;
  const tl = $('timeline');
  tl.setAttribute('aria-valuenow', String(Math.round(p)));
  tl.setAttribute('aria-valuetext', fmtDateTime(state.cursorMs));
  if (!silent) $('play-from').value = toLocalInput(state.cursorMs);
}

function setupTimeline() {
  const tl = $('timeline');
  tl.addEventListener('click', (e) => {
    const r = tl.getBoundingClientRect();
    const w = windowMs();
    const t = w.start + ((e.clientX - r.left) / r.width) * w.span;
    setCursor(t);
    playArchive(t);
  });
  tl.addEventListener('keydown', (e) => {
    const w = windowMs();
    const step = e.shiftKey ? w.span / 10 : w.span / 100;
    let t = state.cursorMs ?? w.end;
    if (e.key === 'ArrowLeft') t -= step;
    else if (e.key === 'ArrowRight') t += step;
    else if (e.key === 'Home') t = w.start;
    else if (e.key === 'End') t = w.end;
    else if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); playArchive(t); return; } else return;
    e.preventDefault();
    setCursor(t);
  });
}

function setClipEdge(id) {
  if (state.cursorMs == null) return;
  $(id).value = toLocalInput(state.cursorMs);
  drawTimeline();
}

// ---------------------------------------------------------------- export

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');

async function onExport() {
  const status = $('export-status');
  const prog = $('export-progress');
  const stand = state.stand;
  const start = fromLocalInput($('clip-start').value);
  const end = fromLocalInput($('clip-end').value);
  $('export-hash').textContent = '–';
  show($('export-link'), false);
  if (!start || !end || end <= start) {
    status.textContent = 'Choose a start before the end.';
    return;
  }
  $('export-go').disabled = true;
  try {
    // Clip up to the newest complete fragment in range, so that the download and the
    // integrity sidecar describe the same fragments even at the live edge.
    const frags = await guarded(() => api.fragments(stand.name, start, end));
    if (!frags.length) {
      status.textContent = 'Nothing is recorded between these times.';
      return;
    }
    const effEnd = Math.min(end, frags[frags.length - 1].startMs + 1);
    status.textContent = `Preparing ${frags.length} fragments…`;
    const r = await guarded(() => api.stream('GetClip', {
      StreamName: stand.name,
      ClipFragmentSelector: {
        FragmentSelectorType: 'SERVER_TIMESTAMP',
        TimestampRange: { StartTimestamp: start / 1000, EndTimestamp: effEnd / 1000 },
      },
    }));
    const total = Number(r.headers.get('content-length')) || 0;
    show(prog, true);
    prog.value = 0;
    const reader = r.body.getReader();
    const chunks = [];
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
      if (total) prog.value = Math.round((got / total) * 100);
      status.textContent = `Downloading: ${(got / 1024).toFixed(0)} KiB${total ? ` of ${(total / 1024).toFixed(0)} KiB` : ''}`;
    }
    prog.value = 100;
    const blob = new Blob(chunks, { type: 'video/mp4' });
    const q = new URLSearchParams({
      StreamName: stand.name,
      FragmentSelectorType: 'SERVER_TIMESTAMP',
      StartTimestamp: (start / 1000).toFixed(3),
      EndTimestamp: (effEnd / 1000).toFixed(3),
    });
    const side = await fetch(`/clip/v1/getClip.sha256?${q}`, { credentials: 'same-origin' });
    const serverHash = side.ok ? (await side.text()).trim() : null;
    let localHash = null;
    if (crypto.subtle) localHash = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
    const hashEl = $('export-hash');
    hashEl.textContent = serverHash || localHash || 'unavailable';
    let verdict;
    if (serverHash && localHash) verdict = serverHash === localHash ? 'verified: matches the server’s sha256' : 'MISMATCH with the server’s sha256';
    else if (serverHash) verdict = 'server sha256 (this browser cannot hash over plain HTTP)';
    else verdict = 'computed in the browser';
    hashEl.dataset.verified = String(!!serverHash && serverHash === localHash);
    const name = `${stand.name}_${new Date(start).toISOString().replace(/[:.]/g, '-')}.mp4`;
    const link = $('export-link');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = name;
    link.textContent = `Save ${name} again`;
    show(link, true);
    link.click();
    status.textContent = `Downloaded ${name} (${(blob.size / 1024).toFixed(0)} KiB, ${verdict}).`;
  } catch (e) {
    status.textContent = e.code === 'NotAuthorizedException'
      ? 'Your role may not export clips.'
      : `Export failed: ${e.message}`;
  } finally {
    $('export-go').disabled = false;
  }
}

start();
