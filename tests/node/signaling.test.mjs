// Signaling end to end with the unmodified KVS WebRTC JS SDK 2.9.0 and the AWS SDK for JS v3
// against a running openkvs (`kvs-api.md` §13). Run by tests/e2e/test_signaling_node.py:
//   OPENKVS_ENDPOINT=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//   AWS_REGION=us-east-1 node --test signaling.test.mjs
//
// Workarounds for Node (notes/dependencies-and-tools.md §4), none of them patching the SDK:
// - the SDK evaluates `new (WebSocket || require('ws'))(url)`: set globalThis.WebSocket = ws;
// - its SigV4RequestSigner accepts only wss:// endpoints: sign the wss:// form of the URL and
//   connect with ws:// (the signature covers host, path and query, not the scheme).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { once } from 'node:events';

import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  DescribeSignalingChannelCommand,
  GetSignalingChannelEndpointCommand,
  DeleteSignalingChannelCommand,
} from '@aws-sdk/client-kinesis-video';
import {
  KinesisVideoSignalingClient,
  GetIceServerConfigCommand,
} from '@aws-sdk/client-kinesis-video-signaling';

import { SignalingClient, Role, sleep, open, plainSigner as signerFor } from './kvs_sdk.mjs';

const require = createRequire(import.meta.url);
const WS = require('ws');

const endpoint = process.env.OPENKVS_ENDPOINT;
const region = process.env.AWS_REGION || 'us-east-1';
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID,
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
};
assert.ok(endpoint, 'OPENKVS_ENDPOINT must be set');

const kvs = new KinesisVideoClient({ region, endpoint, credentials, maxAttempts: 1 });
const channelName = `node-sig-${process.pid}-${Date.now()}`;
let channelARN;
let wssEndpoint;
let httpsEndpoint;
const clients = [];

/** The SDK's signer for this test's region and keys, over ws:// (see kvs_sdk.mjs). */
const plainSigner = (clockOffsetMs = 0) => signerFor(region, credentials, clockOffsetMs);

function client(role, clientId) {
  const c = new SignalingClient({
    channelARN,
    channelEndpoint: wssEndpoint,
    role,
    clientId: role === Role.VIEWER ? clientId : undefined,
    region,
    credentials,
    requestSigner: plainSigner(),
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** Opens a raw WebSocket; resolves to {status, body} or {status: 101, ws}. */
async function rawConnect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WS(url, 'wss');
    ws.on('open', () => resolve({ status: 101, ws, protocol: ws.protocol }));
    ws.on('unexpected-response', (req, res) => {
      const sock = req.socket;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        // With this listener, ws leaves aborting the request to us.
        sock.destroy();
        resolve({ status: res.statusCode, body, headers: res.headers });
      });
    });
    ws.on('error', (e) => {
      if (!String(e.message).includes('Unexpected server response')) reject(e);
    });
  });
}

async function signedViewerURL(clientId, { clockOffsetMs = 0 } = {}) {
  const q = { 'X-Amz-ChannelARN': channelARN };
  if (clientId) q['X-Amz-ClientId'] = clientId;
  return plainSigner(clockOffsetMs).getSignedURL(wssEndpoint, q, new Date());
}

before(async () => {
  await kvs.send(new CreateSignalingChannelCommand({ ChannelName: channelName }));
  const d = await kvs.send(new DescribeSignalingChannelCommand({ ChannelName: channelName }));
  channelARN = d.ChannelInfo.ChannelARN;
  assert.match(channelARN, /^arn:aws:kinesisvideo:[a-z0-9-]+:\d{12}:channel\/node-sig-/);
  const ep = await kvs.send(
    new GetSignalingChannelEndpointCommand({
      ChannelARN: channelARN,
      SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: 'MASTER' },
    }),
  );
  const byProto = Object.fromEntries(ep.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
  wssEndpoint = byProto.WSS;
  httpsEndpoint = byProto.HTTPS;
  assert.match(wssEndpoint, /^wss?:\/\//);
  assert.match(httpsEndpoint, /^https?:\/\//);
});

after(() => {
  kvs.destroy();
  for (const c of clients) {
    try {
      c.close();
    } catch {
      // already closed
    }
  }
});

test('GetIceServerConfig hands out TURN REST credentials for the channel', async () => {
  const sig = new KinesisVideoSignalingClient({ region, endpoint: httpsEndpoint, credentials, maxAttempts: 1 });
  after(() => sig.destroy());
  const r = await sig.send(new GetIceServerConfigCommand({ ChannelARN: channelARN, ClientId: 'viewer-1' }));
  assert.ok(Array.isArray(r.IceServerList));
  if (process.env.EXPECT_TURN === '1') {
    assert.equal(r.IceServerList.length, 1);
    const s = r.IceServerList[0];
    assert.equal(s.Ttl, 300);
    assert.ok(s.Uris.some((u) => /^turn:[^?]+\?transport=udp$/.test(u)), s.Uris.join(' '));
    const [expiry, user] = s.Username.split(':');
    assert.ok(Number(expiry) > Date.now() / 1000 + 200);
    assert.equal(Buffer.from(user, 'base64').toString(), `v1:${channelARN}`);
    assert.equal(Buffer.from(s.Password, 'base64').length, 20);
  }
  await assert.rejects(
    sig.send(new GetIceServerConfigCommand({ ChannelARN: channelARN.replace(/\/\d+$/, '/1') })),
    (e) => e.name === 'ResourceNotFoundException',
  );
});

test('master and two viewers exchange SDP and ICE through the unmodified SDK', async () => {
  const master = client(Role.MASTER);
  const offers = [];
  const masterCandidates = [];
  master.on('sdpOffer', (offer, from) => offers.push({ offer, from }));
  master.on('iceCandidate', (cand, from) => masterCandidates.push({ cand, from }));
  await open(master);

  const viewers = [];
  for (const id of ['viewer-1', 'viewer-2']) {
    const v = client(Role.VIEWER, id);
    const got = { answers: [], candidates: [] };
    v.on('sdpAnswer', (a, from) => got.answers.push({ a, from }));
    v.on('iceCandidate', (c, from) => got.candidates.push({ c, from }));
    await sleep(400); // 3 connects per second per role
    await open(v);
    viewers.push({ id, v, got });
  }

  for (const { id, v } of viewers) {
    v.sendSdpOffer({ type: 'offer', sdp: `v=0\r\no=${id} 1 1 IN IP4 127.0.0.1\r\n` });
    v.sendIceCandidate({ candidate: `candidate:1 1 udp 1 127.0.0.1 9 typ host ${id}`, sdpMid: '0', sdpMLineIndex: 0 });
  }
  for (let i = 0; i < 50 && (offers.length < 2 || masterCandidates.length < 2); i++) await sleep(100);
  assert.deepEqual(offers.map((o) => o.from).sort(), ['viewer-1', 'viewer-2']);
  for (const { offer, from } of offers) {
    assert.equal(offer.type, 'offer');
    assert.ok(offer.sdp.includes(`o=${from} `));
  }
  assert.deepEqual(masterCandidates.map((c) => c.from).sort(), ['viewer-1', 'viewer-2']);
  for (const { cand, from } of masterCandidates) assert.ok(cand.candidate.endsWith(from));

  for (const { id } of viewers) {
    master.sendSdpAnswer({ type: 'answer', sdp: `v=0\r\no=master-for-${id} 1 1 IN IP4 127.0.0.1\r\n` }, id);
    master.sendIceCandidate({ candidate: `candidate:2 1 udp 1 127.0.0.1 9 typ host to-${id}`, sdpMid: '0', sdpMLineIndex: 0 }, id);
  }
  for (let i = 0; i < 50 && viewers.some((x) => x.got.answers.length < 1 || x.got.candidates.length < 1); i++) {
    await sleep(100);
  }
  for (const { id, got } of viewers) {
    assert.equal(got.answers.length, 1, `${id} answers`);
    assert.equal(got.answers[0].a.type, 'answer');
    assert.ok(got.answers[0].a.sdp.includes(`master-for-${id}`), 'answer routed to the right viewer');
    // From the master: no senderClientId (the SDK maps it to undefined / "MASTER").
    assert.ok(!got.answers[0].from || got.answers[0].from === 'MASTER');
    assert.equal(got.candidates.length, 1);
    assert.ok(got.candidates[0].c.candidate.endsWith(`to-${id}`));
  }
});

test('an 11th viewer is refused with HTTP 400 before the upgrade', async () => {
  // Ten viewers at most: two may still be connected from the previous test, fill up to ten.
  const open_ = [];
  for (let i = 0; i < 10; i++) {
    await sleep(400);
    const r = await rawConnect(await signedViewerURL(`fill-${i}`));
    if (r.status !== 101) {
      assert.equal(r.status, 400, r.body);
      assert.equal(JSON.parse(r.body).__type, 'ClientLimitExceededException');
      break;
    }
    assert.equal(r.protocol, 'wss', 'the wss subprotocol is answered when offered');
    open_.push(r.ws);
  }
  await sleep(400);
  const r = await rawConnect(await signedViewerURL('one-too-many'));
  for (const ws of open_) ws.close();
  assert.equal(r.status, 400);
  assert.equal(r.headers['x-amzn-errortype'], 'ClientLimitExceededException');
  assert.equal(JSON.parse(r.body).__type, 'ClientLimitExceededException');
});

test('bad signatures, expired URLs, bad client ids and unknown channels are refused before the upgrade', async () => {
  const good = await signedViewerURL('sig-check');
  const tampered = good.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
  let r = await rawConnect(tampered);
  assert.equal(r.status, 403, r.body);

  // Signed 10 minutes ago with X-Amz-Expires=299.
  r = await rawConnect(await signedViewerURL('sig-check', { clockOffsetMs: -10 * 60 * 1000 }));
  assert.equal(r.status, 403, r.body);

  r = await rawConnect(await signedViewerURL('AWS_reserved'));
  assert.equal(r.status, 400, r.body);
  assert.equal(JSON.parse(r.body).__type, 'InvalidArgumentException');

  const signer = plainSigner();
  const unknown = await signer.getSignedURL(wssEndpoint, { 'X-Amz-ChannelARN': channelARN.replace(/\/\d+$/, '/1') }, new Date());
  r = await rawConnect(unknown);
  assert.equal(r.status, 404, r.body);
  assert.equal(JSON.parse(r.body).__type, 'ResourceNotFoundException');
});

test('DeleteSignalingChannel closes the live WebSocket connections of that channel', async () => {
  const name = `${channelName}-del`;
  const { ChannelARN: arn } = await kvs.send(new CreateSignalingChannelCommand({ ChannelName: name }));
  const mk = (role, clientId) => {
    const c = new SignalingClient({
      channelARN: arn,
      channelEndpoint: wssEndpoint,
      role,
      clientId,
      region,
      credentials,
      requestSigner: plainSigner(),
    });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  const master = mk(Role.MASTER);
  const viewer = mk(Role.VIEWER, 'doomed-viewer');
  await open(master);
  await open(viewer);
  // A channel that is not deleted keeps its connections.
  const bystander = client(Role.VIEWER, 'bystander');
  await open(bystander);
  let bystanderClosed = false;
  bystander.on('close', () => (bystanderClosed = true));

  const closed = Promise.all([once(master, 'close'), once(viewer, 'close')]);
  await kvs.send(new DeleteSignalingChannelCommand({ ChannelARN: arn }));
  await Promise.race([
    closed,
    sleep(5000).then(() => {
      throw new Error('the SDK sockets were not closed within 5 s of DeleteSignalingChannel');
    }),
  ]);
  assert.equal(bystanderClosed, false);

  // Reconnecting to the deleted channel is refused before the upgrade.
  const url = await plainSigner().getSignedURL(wssEndpoint, { 'X-Amz-ChannelARN': arn, 'X-Amz-ClientId': 'doomed-viewer' }, new Date());
  const r = await rawConnect(url);
  assert.equal(r.status, 404, r.body);
});
