// Signaling across two openkvs nodes that share PostgreSQL and Redis (issue 7): the master
// connects to node A, viewers to node B, all with the unmodified KVS WebRTC JS SDK and the AWS
// SDK for JS v3. Run by tests/e2e/test_scaleout_signaling.py:
//   OPENKVS_ENDPOINT_A=http://127.0.0.1:PA OPENKVS_ENDPOINT_B=http://127.0.0.1:PB \
//   AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 node --test signaling_nodes.test.mjs
//
// Node workarounds as in signaling.test.mjs: globalThis.WebSocket = ws, and wss:// is signed
// then connected as ws://.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';

import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  DeleteSignalingChannelCommand,
  GetSignalingChannelEndpointCommand,
} from '@aws-sdk/client-kinesis-video';

import { SignalingClient, Role, sleep, open, plainSigner } from './kvs_sdk.mjs';

const endpointA = process.env.OPENKVS_ENDPOINT_A;
const endpointB = process.env.OPENKVS_ENDPOINT_B;
const region = process.env.AWS_REGION || 'us-east-1';
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID,
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
};
assert.ok(endpointA && endpointB, 'OPENKVS_ENDPOINT_A and OPENKVS_ENDPOINT_B must be set');

const kvsA = new KinesisVideoClient({ region, endpoint: endpointA, credentials, maxAttempts: 1 });
const kvsB = new KinesisVideoClient({ region, endpoint: endpointB, credentials, maxAttempts: 1 });
const clients = [];
let channelARN;

/** The WSS endpoint a node hands out for `role` (each node answers with its own URL). */
async function wssEndpoint(kvs, role) {
  const ep = await kvs.send(
    new GetSignalingChannelEndpointCommand({
      ChannelARN: channelARN,
      SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS'], Role: role },
    }),
  );
  return ep.ResourceEndpointList[0].ResourceEndpoint;
}

function client(endpoint, role, clientId) {
  const c = new SignalingClient({
    channelARN,
    channelEndpoint: endpoint,
    role,
    clientId: role === Role.VIEWER ? clientId : undefined,
    region,
    credentials,
    requestSigner: plainSigner(region, credentials),
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

async function until(pred, what, ms = 5000) {
  for (let t = 0; t < ms; t += 50) {
    if (pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  const r = await kvsA.send(new CreateSignalingChannelCommand({ ChannelName: `nodes-${process.pid}-${Date.now()}` }));
  channelARN = r.ChannelARN;
});

after(() => {
  for (const c of clients) {
    try {
      c.close();
    } catch {
      // already closed
    }
  }
  kvsA.destroy();
  kvsB.destroy();
});

test('each node hands out its own signaling endpoint', async () => {
  const a = await wssEndpoint(kvsA, 'MASTER');
  const b = await wssEndpoint(kvsB, 'VIEWER');
  assert.equal(new URL(a).port, new URL(endpointA).port);
  assert.equal(new URL(b).port, new URL(endpointB).port);
});

test('a master on node A and viewers on node B exchange SDP and ICE, in order', async () => {
  const master = client(await wssEndpoint(kvsA, 'MASTER'), Role.MASTER);
  const offers = [];
  const candidates = [];
  master.on('sdpOffer', (offer, from) => offers.push({ offer, from }));
  master.on('iceCandidate', (c, from) => candidates.push({ c, from }));
  await open(master);

  const viewerEndpoint = await wssEndpoint(kvsB, 'VIEWER');
  const viewers = [];
  for (const id of ['cross-1', 'cross-2']) {
    const v = client(viewerEndpoint, Role.VIEWER, id);
    const got = { answers: [], candidates: [] };
    v.on('sdpAnswer', (a, from) => got.answers.push({ a, from }));
    v.on('iceCandidate', (c, from) => got.candidates.push({ c, from }));
    await sleep(400); // 3 connects per second per role
    await open(v);
    viewers.push({ id, v, got });
  }

  const N = 20;
  for (const { id, v } of viewers) {
    v.sendSdpOffer({ type: 'offer', sdp: `v=0\r\no=${id} 1 1 IN IP4 127.0.0.1\r\n` });
    for (let i = 0; i < N; i++) {
      v.sendIceCandidate({ candidate: `candidate:${i} 1 udp 1 127.0.0.1 9 typ host ${id}`, sdpMid: '0', sdpMLineIndex: 0 });
    }
  }
  await until(() => offers.length === 2 && candidates.length === 2 * N, 'offers and candidates at the master');
  assert.deepEqual(offers.map((o) => o.from).sort(), ['cross-1', 'cross-2']);
  for (const { offer, from } of offers) assert.ok(offer.sdp.includes(`o=${from} `));
  for (const id of ['cross-1', 'cross-2']) {
    const seq = candidates.filter((c) => c.from === id).map((c) => Number(c.c.candidate.split(/[: ]/)[1]));
    assert.deepEqual(seq, [...Array(N).keys()], `candidates from ${id} arrive in order`);
  }

  for (const { id } of viewers) {
    master.sendSdpAnswer({ type: 'answer', sdp: `v=0\r\no=master-for-${id} 1 1 IN IP4 127.0.0.1\r\n` }, id);
    master.sendIceCandidate({ candidate: `candidate:9 1 udp 1 127.0.0.1 9 typ host to-${id}`, sdpMid: '0', sdpMLineIndex: 0 }, id);
  }
  await until(() => viewers.every(({ got }) => got.answers.length === 1 && got.candidates.length === 1), 'answers at the viewers');
  for (const { id, got } of viewers) {
    assert.ok(got.answers[0].a.sdp.includes(`o=master-for-${id} `), 'each viewer gets its own answer');
    assert.ok(got.candidates[0].c.candidate.endsWith(`to-${id}`));
  }
});

test('a viewer on node A reaches a master on node B too', async () => {
  const arn = channelARN;
  const r = await kvsB.send(new CreateSignalingChannelCommand({ ChannelName: `nodes-rev-${process.pid}-${Date.now()}` }));
  channelARN = r.ChannelARN;
  try {
    const master = client(await wssEndpoint(kvsB, 'MASTER'), Role.MASTER);
    const offers = [];
    master.on('sdpOffer', (offer, from) => offers.push(from));
    await open(master);
    const v = client(await wssEndpoint(kvsA, 'VIEWER'), Role.VIEWER, 'rev-1');
    const answers = [];
    v.on('sdpAnswer', (a) => answers.push(a));
    await open(v);
    v.sendSdpOffer({ type: 'offer', sdp: 'v=0\r\no=rev 1 1 IN IP4 127.0.0.1\r\n' });
    await until(() => offers.length === 1, 'the offer at the master on B');
    master.sendSdpAnswer({ type: 'answer', sdp: 'v=0\r\no=ans 1 1 IN IP4 127.0.0.1\r\n' }, 'rev-1');
    await until(() => answers.length === 1, 'the answer at the viewer on A');
  } finally {
    channelARN = arn;
  }
});

test('DeleteSignalingChannel on node B closes the master connected to node A', async () => {
  const r = await kvsA.send(new CreateSignalingChannelCommand({ ChannelName: `nodes-del-${process.pid}-${Date.now()}` }));
  const arn = channelARN;
  channelARN = r.ChannelARN;
  try {
    const master = client(await wssEndpoint(kvsA, 'MASTER'), Role.MASTER);
    await open(master);
    const closed = once(master, 'close');
    await kvsB.send(new DeleteSignalingChannelCommand({ ChannelARN: channelARN }));
    await Promise.race([
      closed,
      sleep(5000).then(() => {
        throw new Error('the master on A was not closed within 5 s of the delete on B');
      }),
    ]);
  } finally {
    channelARN = arn;
  }
});
