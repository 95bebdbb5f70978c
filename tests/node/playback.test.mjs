// Browser playback of openkvs HLS/DASH sessions: hls.js and dash.js in headless Debian Chromium
// (playwright-core, no browser download), kvs-api.md §11. Run by tests/e2e/test_playback_browser.py,
// which pushes media and passes the session URLs in the environment:
//   HLS_ON_DEMAND_URL, HLS_LIVE_URL, DASH_ON_DEMAND_URL, DASH_LIVE_URL (a case is skipped when
//   its URL is missing), CHROMIUM (default /usr/bin/chromium), OUT_DIR (screenshots).
// Every case: a muted <video> must reach currentTime > 2 within PLAY_TIMEOUT_MS (20 s) without a
// player error. hls.js ERROR events and dash.js `error` / `playbackError` events are printed
// with their details and fail the case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT_DIR = process.env.OUT_DIR || path.join(HERE, '..', 'out');
const PLAY_TIMEOUT_MS = Number(process.env.PLAY_TIMEOUT_MS || 20000);
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

const SCRIPTS = {
  '/hls.min.js': path.join(HERE, 'node_modules/hls.js/dist/hls.min.js'),
  '/dash.all.min.js': path.join(HERE, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'),
};
const PAGE = '<!doctype html><html><body style="margin:0;background:#000">' +
  '<video id="v" muted playsinline autoplay width="640" height="480"></video></body></html>';

let server, origin, browser;

before(async () => {
  for (const f of Object.values(SCRIPTS)) assert.ok(fs.existsSync(f), `${f} missing: npm ci`);
  server = http.createServer((req, res) => {
    const file = SCRIPTS[req.url];
    if (file) {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(fs.readFileSync(file));
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: FLAGS,
  });
  fs.mkdirSync(OUT_DIR, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.close();
});

// Starts the player in the page; errors land in window.__errors, played time in the <video>.
async function startPlayer(page, kind, url) {
  await page.addScriptTag({ url: kind === 'hls' ? '/hls.min.js' : '/dash.all.min.js' });
  await page.evaluate(({ kind, url }) => {
    window.__errors = [];
    window.__log = [];
    const v = document.getElementById('v');
    v.addEventListener('error', () => window.__errors.push({ source: 'video', code: v.error && v.error.code, message: v.error && v.error.message }));
    if (kind === 'hls') {
      // eslint-disable-next-line no-undef
      if (!Hls.isSupported()) { window.__errors.push({ source: 'hls.js', details: 'Hls.isSupported() is false' }); return; }
      // eslint-disable-next-line no-undef
      const hls = new Hls({ liveSyncDurationCount: 2 });
      window.__player = hls;
      // eslint-disable-next-line no-undef
      hls.on(Hls.Events.ERROR, (_e, d) => window.__errors.push({
        source: 'hls.js', type: d.type, details: d.details, fatal: d.fatal,
        url: d.url || (d.frag && d.frag.url) || (d.context && d.context.url),
        response: d.response && { code: d.response.code, text: String(d.response.text || '').slice(0, 300) },
        reason: d.reason, error: d.error && String(d.error),
      }));
      // eslint-disable-next-line no-undef
      hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => window.__log.push(`manifest parsed: ${d.levels.length} level(s)`));
      hls.loadSource(url);
      hls.attachMedia(v);
    } else {
      // eslint-disable-next-line no-undef
      const p = dashjs.MediaPlayer().create();
      window.__player = p;
      const push = (name) => (e) => window.__errors.push({
        source: 'dash.js', event: name,
        error: e && e.error ? { code: e.error.code, message: e.error.message, data: e.error.data && JSON.stringify(e.error.data).slice(0, 300) } : String(e && e.event ? JSON.stringify(e.event).slice(0, 300) : e),
      });
      p.on('error', push('error'));
      p.on('playbackError', push('playbackError'));
      p.initialize(v, url, true);
    }
    v.play().catch((e) => window.__log.push(`play(): ${e}`));
  }, { kind, url });
}

async function playCase(t, kind, mode, url) {
  if (!url) { t.skip(`no ${kind} ${mode} URL given`); return; }
  const page = await browser.newPage({ viewport: { width: 640, height: 480 } });
  const consoleLines = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e}`));
  try {
    await page.goto(origin + '/');
    await startPlayer(page, kind, url);
    const start = Date.now();
    let state;
    let first = null; // LIVE starts near the live edge: require 2 s of actual progress too
    for (;;) {
      state = await page.evaluate(() => {
        const v = document.getElementById('v');
        return { currentTime: v.currentTime, readyState: v.readyState, paused: v.paused,
          buffered: Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]),
          errors: window.__errors, log: window.__log, width: v.videoWidth, height: v.videoHeight };
      });
      if (first === null && state.currentTime > 0) first = state.currentTime;
      state.progress = first === null ? 0 : state.currentTime - first;
      const played = state.currentTime > 2 && (mode !== 'LIVE' || state.progress > 2);
      if (state.errors.length || played || Date.now() - start > PLAY_TIMEOUT_MS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const shot = path.join(OUT_DIR, `playback-${process.env.LABEL || 'live-push'}-${kind}-${mode.toLowerCase()}.png`);
    await page.screenshot({ path: shot });
    const report = JSON.stringify({ kind, mode, elapsedMs: Date.now() - start, ...state, console: consoleLines.slice(0, 10) }, null, 1);
    console.log(`${kind} ${mode}: ${report}`);
    assert.deepEqual(state.errors, [], `${kind} ${mode}: player error(s): ${report}`);
    assert.ok(state.currentTime > 2, `${kind} ${mode}: currentTime ${state.currentTime} after ${PLAY_TIMEOUT_MS} ms: ${report}`);
    if (mode === 'LIVE') assert.ok(state.progress > 2, `${kind} LIVE: played only ${state.progress} s: ${report}`);
    assert.equal(state.width, 320, `${kind} ${mode}: video width ${state.width}`);
  } finally {
    await page.close();
  }
}

test('hls.js plays HLS ON_DEMAND', (t) => playCase(t, 'hls', 'ON_DEMAND', process.env.HLS_ON_DEMAND_URL));
test('hls.js plays HLS LIVE', (t) => playCase(t, 'hls', 'LIVE', process.env.HLS_LIVE_URL));
test('dash.js plays DASH ON_DEMAND', (t) => playCase(t, 'dash', 'ON_DEMAND', process.env.DASH_ON_DEMAND_URL));
test('dash.js plays DASH LIVE', (t) => playCase(t, 'dash', 'LIVE', process.env.DASH_LIVE_URL));
