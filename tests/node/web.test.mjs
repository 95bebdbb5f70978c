// The viewer page (web/) in headless Debian Chromium (playwright-core, no browser download)
// against a real `openkvs serve --demo`. Run by tests/e2e/test_web.py, which starts the server
// and passes in the environment:
//   BASE_URL, ADMIN_AKID, ADMIN_SECRET, VIEWER_AKID, VIEWER_SECRET, VIEWER_TOKEN,
//   WEBRTC_MASTER ("1" when the demo runs a WebRTC camera as master on demo-bike-stand),
//   CHROMIUM (default /usr/bin/chromium), OUT_DIR (screenshots, the exported clip).
// Every page fails its test on a console error or an uncaught exception.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT_DIR = process.env.OUT_DIR || path.join(HERE, '..', 'out');
const BASE = process.env.BASE_URL;
const STAND = 'demo-bike-stand';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

let browser;

before(async () => {
  assert.ok(BASE, 'BASE_URL is required');
  fs.mkdirSync(OUT_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: FLAGS,
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** A fresh context + page that records console errors and page errors. */
async function newPage(opts = {}) {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 }, ...opts });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  return { ctx, page };
}

/** Signs in with the keyboard only (labels, tab order, Enter submits). */
async function signIn(page, akid, secret, token, query = '') {
  await page.goto(BASE + '/' + query);
  await page.getByLabel('Access key ID').waitFor();
  await page.getByLabel('Access key ID').focus();
  await page.keyboard.type(akid);
  await page.keyboard.press('Tab');
  await page.keyboard.type(secret);
  if (token) {
    await page.keyboard.press('Tab');
    await page.keyboard.type(token);
  }
  await page.keyboard.press('Enter');
  await page.locator(`li[data-stand="${STAND}"]`).waitFor({ timeout: 15000 });
}

async function openStand(page) {
  await page.getByRole('button', { name: `Watch ${STAND}` }).click();
  await page.locator('#stand').waitFor();
}

/** Waits until the <video> shows frames and its currentTime advances by > 1 s. */
async function assertPlaying(page, label, timeout = 25000) {
  const t0 = Date.now();
  await page.waitForFunction(() => {
    const v = document.getElementById('video');
    return v.videoWidth > 0 && v.currentTime > 0.3;
  }, null, { timeout });
  const a = await page.evaluate(() => document.getElementById('video').currentTime);
  await page.waitForFunction((a0) => document.getElementById('video').currentTime > a0 + 1, a, { timeout });
  const v = await page.evaluate(() => {
    const e = document.getElementById('video');
    return { w: e.videoWidth, h: e.videoHeight, t: e.currentTime };
  });
  assert.ok(v.w > 0 && v.h > 0, `${label}: no frame size`);
  console.log(`# ${label}: ${v.w}x${v.h}, currentTime ${v.t.toFixed(1)} s, after ${Date.now() - t0} ms`);
}

function noErrors(page, label) {
  assert.deepEqual(page.errors, [], `${label}: console errors`);
}

test('sign-in keeps no secret in the page; the cameras view shows the demo stand live', async () => {
  const { ctx, page } = await newPage();
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  const card = page.locator(`li[data-stand="${STAND}"]`);
  await card.getByText('Producer connected').waitFor({ timeout: 20000 });
  const text = await card.innerText();
  assert.match(text, /Bitrate\s+\d+ kbit\/s/);
  assert.match(text, /Channel\s+yes/);
  assert.match(text, /Last video\s+\d/);
  await page.getByText('a signaling channel').first().waitFor();
  // The session cookie is HttpOnly; no secret in storage, DOM or cookies readable by scripts.
  const leak = await page.evaluate((secret) => ({
    cookie: document.cookie,
    storage: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
    dom: document.documentElement.outerHTML.includes(secret),
    input: document.getElementById('secret').value,
  }), process.env.ADMIN_SECRET);
  assert.ok(!leak.cookie.includes('okvs_session'), 'the session cookie must be HttpOnly');
  assert.equal(leak.storage, '{}{}');
  assert.equal(leak.dom, false);
  assert.equal(leak.input, '');
  const cookies = await ctx.cookies();
  const c = cookies.find((x) => x.name === 'okvs_session');
  assert.ok(c && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(cookies));
  await page.screenshot({ path: path.join(OUT_DIR, 'web-cameras.png') });
  noErrors(page, 'cameras');
  await ctx.close();
});

test('live view over WebRTC (camera as master)', {
  skip: process.env.WEBRTC_MASTER === '1' ? false
    : 'PENDING: no WebRTC master on demo-bike-stand (openkvs camera is not merged yet); the HLS fallback test below covers live playback',
}, async () => {
  const { ctx, page } = await newPage();
  // A generous WebRTC timeout: on a loaded CI machine the first connection may take longer
  // than the page's default 6 s, and this case is about WebRTC, not the fallback.
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET, undefined, '?webrtc-timeout=20');
  await openStand(page);
  await page.waitForFunction(() => document.body.dataset.playing === 'webrtc', null, { timeout: 25000 });
  await assertPlaying(page, 'WebRTC live');
  assert.match(await page.locator('#mode').innerText(), /Live · WebRTC/);
  await page.locator('#conn').getByText(/connected (directly|through the TURN relay)/).waitFor({ timeout: 5000 });
  await page.screenshot({ path: path.join(OUT_DIR, 'web-live-webrtc.png') });
  noErrors(page, 'webrtc');
  await ctx.close();
});

test('live view over WebRTC through the TURN relay only (GetIceServerConfig\'s TURN)', {
  skip: process.env.WEBRTC_MASTER === '1' ? false : 'PENDING: no WebRTC master on demo-bike-stand',
}, async () => {
  const { ctx, page } = await newPage();
  // Relay candidates only: media must flow through the TURN server the page got from
  // GetIceServerConfig (the server's embedded TURN).
  await page.addInitScript(() => {
    const Real = window.RTCPeerConnection;
    function RelayOnly(cfg) {
      if (!cfg || !cfg.iceServers || !cfg.iceServers.length) throw new Error('no ICE servers from GetIceServerConfig');
      return new Real({ ...cfg, iceTransportPolicy: 'relay' });
    }
    RelayOnly.prototype = Real.prototype;
    window.RTCPeerConnection = RelayOnly;
  });
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET, undefined, '?webrtc-timeout=20');
  await openStand(page);
  await page.waitForFunction(() => document.body.dataset.playing === 'webrtc', null, { timeout: 25000 });
  await assertPlaying(page, 'WebRTC via TURN');
  await page.locator('#conn').getByText('connected through the TURN relay').waitFor({ timeout: 5000 });
  noErrors(page, 'webrtc relay');
  await ctx.close();
});

test('live view falls back to LIVE HLS when WebRTC is blocked, and says so', async () => {
  const { ctx, page } = await newPage();
  // Block WebRTC at page level: every RTCPeerConnection fails to construct.
  await page.addInitScript(() => {
    window.RTCPeerConnection = function blocked() { throw new Error('WebRTC blocked by the test'); };
  });
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  await openStand(page);
  await page.waitForFunction(() => document.body.dataset.playing === 'hls-live', null, { timeout: 15000 });
  await assertPlaying(page, 'HLS live fallback');
  assert.match(await page.locator('#mode').innerText(), /Live · HLS \(fallback\)/);
  assert.match(await page.locator('#conn').innerText(), /WebRTC unavailable: .*blocked by the test/);
  await page.screenshot({ path: path.join(OUT_DIR, 'web-live-hls-fallback.png') });
  noErrors(page, 'hls fallback');
  await ctx.close();
});

test('live view falls back to LIVE HLS when ICE cannot connect (no UDP, no TURN)', async () => {
  const { ctx, page } = await newPage();
  // A real RTCPeerConnection that may only use relay candidates and gets no TURN server: the
  // offer/answer exchange works, ICE never connects, the page gives up after its timeout.
  await page.addInitScript(() => {
    const Real = window.RTCPeerConnection;
    function NoUdp(cfg) { return new Real({ ...cfg, iceServers: [], iceTransportPolicy: 'relay' }); }
    NoUdp.prototype = Real.prototype;
    window.RTCPeerConnection = NoUdp;
  });
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  await openStand(page);
  await page.waitForFunction(() => document.body.dataset.playing === 'hls-live', null, { timeout: 20000 });
  await assertPlaying(page, 'HLS live after ICE timeout');
  assert.match(await page.locator('#conn').innerText(), /WebRTC unavailable: no WebRTC video within \d+ s/);
  noErrors(page, 'ice timeout fallback');
  await ctx.close();
});

test('archive timeline lists fragments; a click plays ON_DEMAND HLS from there; export downloads a verified MP4', async () => {
  const { ctx, page } = await newPage();
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  await openStand(page);
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.fragments) >= 5, null, { timeout: 20000 });
  const n = Number(await page.locator('#timeline').getAttribute('data-fragments'));
  const segs = await page.locator('.tl-seg').count();
  assert.ok(segs >= 1, 'no recorded span drawn');
  assert.match(await page.locator('#archive-summary').innerText(), new RegExp(`${n} fragments in the last 24 h`));
  // Click inside the first recorded span, a little after its start.
  const box = await page.locator('.tl-seg').first().boundingBox();
  await page.mouse.click(box.x + Math.min(box.width * 0.2, 20) + 1, box.y + box.height / 2);
  await page.waitForFunction(() => document.body.dataset.playing === 'hls-archive', null, { timeout: 10000 });
  await assertPlaying(page, 'archive ON_DEMAND');
  assert.match(await page.locator('#mode').innerText(), /Archive · HLS from/);
  // Scrub: seek back to the start with the keyboard-less API of the <video>, then it plays on.
  await page.evaluate(() => { document.getElementById('video').currentTime = 0.5; });
  await page.waitForFunction(() => document.getElementById('video').currentTime > 1.5, null, { timeout: 10000 });
  await page.screenshot({ path: path.join(OUT_DIR, 'web-archive.png') });

  // Export the last ~12 s (typed times).
  const fmt = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  const now = Date.now();
  await page.getByLabel('Start', { exact: true }).fill(fmt(now - 12000));
  await page.getByLabel('End', { exact: true }).fill(fmt(now));
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 30000 }),
    page.getByRole('button', { name: 'Download MP4' }).click(),
  ]);
  const file = path.join(OUT_DIR, 'web-export.mp4');
  await download.saveAs(file);
  await page.waitForFunction(() => /^Downloaded/.test(document.getElementById('export-status').textContent), null, { timeout: 10000 });
  const shown = (await page.locator('#export-hash').innerText()).trim();
  const actual = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  assert.equal(shown, actual, 'the hash shown is the sha256 of the downloaded file');
  assert.equal(await page.locator('#export-hash').getAttribute('data-verified'), 'true');
  assert.equal(await page.locator('#export-progress').getAttribute('value'), '100');
  assert.match(await page.locator('#export-status').innerText(), /verified: matches the server/);
  console.log(`# export: ${fs.statSync(file).size} bytes, sha256 ${actual}`);
  await page.screenshot({ path: path.join(OUT_DIR, 'web-viewer.png') });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(OUT_DIR, 'web-readme.png'), fullPage: true });
  noErrors(page, 'archive/export');
  await ctx.close();
});

test('a viewer can watch but not export: the UI hides export and the server refuses GetClip', async () => {
  const { ctx, page } = await newPage();
  await signIn(page, process.env.VIEWER_AKID, process.env.VIEWER_SECRET, process.env.VIEWER_TOKEN);
  assert.equal(await page.locator('#who-role').innerText(), 'viewer');
  await openStand(page);
  await page.locator('#export-denied').waitFor();
  assert.equal(await page.locator('#export').isHidden(), true);
  await page.waitForFunction(() => ['webrtc', 'hls-live'].includes(document.body.dataset.playing), null, { timeout: 20000 });
  await assertPlaying(page, 'viewer live');
  // A viewer may browse the archive, with the keyboard: End, 3 x ←, Enter on the timeline.
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.fragments) >= 3, null, { timeout: 20000 });
  await page.locator('#timeline').focus();
  await page.keyboard.press('End');
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowLeft');
  const valuetext = await page.locator('#timeline').getAttribute('aria-valuetext');
  assert.ok(valuetext && valuetext.length > 5, 'the timeline slider has a readable value');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.playing === 'hls-archive', null, { timeout: 10000 });
  await assertPlaying(page, 'viewer archive (keyboard)');
  noErrors(page, 'viewer');
  // Bypass the UI: the server itself refuses the export (the expected 401 is logged by Chromium).
  const r = await page.evaluate(async (stream) => {
    const s = await (await fetch('/web/v1/session')).json();
    const now = Date.now() / 1000;
    const resp = await fetch('/getClip', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-okvs-csrf': s.CsrfToken },
      body: JSON.stringify({ StreamName: stream, ClipFragmentSelector: { FragmentSelectorType: 'SERVER_TIMESTAMP', TimestampRange: { StartTimestamp: now - 20, EndTimestamp: now } } }),
    });
    return { status: resp.status, type: resp.headers.get('x-amzn-ErrorType'), body: await resp.json() };
  }, STAND);
  assert.equal(r.status, 401);
  assert.equal(r.type, 'NotAuthorizedException');
  assert.equal(r.body.__type, 'NotAuthorizedException');
  await ctx.close();
});

test('every form control has a label and every button a name', async () => {
  const { ctx, page } = await newPage();
  await page.goto(BASE + '/');
  await page.getByLabel('Access key ID').waitFor();
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    .map((e) => e.id || e.outerHTML));
  assert.deepEqual(unlabelled, []);
  const nameless = await page.evaluate(() => [...document.querySelectorAll('button')]
    .filter((b) => !b.textContent.trim() && !b.getAttribute('aria-label')).map((b) => b.outerHTML));
  assert.deepEqual(nameless, []);
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  noErrors(page, 'labels');
  await ctx.close();
});

test('phone width: no horizontal scrolling, controls reachable', async () => {
  const { ctx, page } = await newPage({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
  await page.addInitScript(() => {
    window.RTCPeerConnection = function blocked() { throw new Error('WebRTC blocked by the test'); };
  });
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  await openStand(page);
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.fragments) >= 1, null, { timeout: 20000 });
  const w = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(w.scroll <= w.inner, `page is ${w.scroll}px wide in a ${w.inner}px viewport`);
  await page.getByRole('button', { name: 'Download MP4' }).waitFor();
  await page.screenshot({ path: path.join(OUT_DIR, 'web-phone.png'), fullPage: true });
  noErrors(page, 'phone');
  await ctx.close();
});

test('sign-out ends the session; a wrong secret is refused with a message', async () => {
  const { ctx, page } = await newPage();
  await signIn(page, process.env.ADMIN_AKID, process.env.ADMIN_SECRET);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Access key ID').waitFor();
  await page.reload();
  await page.getByLabel('Access key ID').waitFor();
  assert.equal(await page.locator('#cameras').isHidden(), true);
  await page.getByLabel('Access key ID').fill(process.env.ADMIN_AKID);
  await page.getByLabel('Secret access key').fill('not-the-secret');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').getByText('Sign-in failed').waitFor();
  // The refused login is a 403 that Chromium logs; nothing else may be.
  assert.ok(page.errors.every((e) => /403/.test(e)), page.errors.join('\n'));
  await ctx.close();
});
