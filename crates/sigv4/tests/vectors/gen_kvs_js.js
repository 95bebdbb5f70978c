#!/usr/bin/env node
// Records presigned signaling WebSocket URLs made by the KVS WebRTC JS SDK's
// SigV4RequestSigner, for crates/sigv4/tests/vectors.rs.
//
// Regenerate (the committed kvs_js.json was made with amazon-kinesis-video-streams-webrtc 2.9.0
// on Node 20):
//
//   mkdir -p /tmp/kvsjs && cd /tmp/kvsjs && npm init -y
//   npm install --legacy-peer-deps amazon-kinesis-video-streams-webrtc@2.9.0
//   NODE_PATH=/tmp/kvsjs/node_modules node <repo>/crates/sigv4/tests/vectors/gen_kvs_js.js
//
// The package's main module (lib/index.js) exports SigV4RequestSigner; SignalingClient calls
// `new SigV4RequestSigner(region, credentials).getSignedURL(endpoint, queryParams, date)` with
// X-Amz-ChannelARN (+ X-Amz-ClientId for viewers) exactly like below (lib/SignalingClient.js).
// The date argument fixes the signing time, so the output is deterministic. Nothing is sent over
// the network.
'use strict';

const fs = require('fs');
const path = require('path');
const { SigV4RequestSigner } = require('amazon-kinesis-video-streams-webrtc');
const sdkVersion = require('amazon-kinesis-video-streams-webrtc/package.json').version;

const NOW = new Date(Date.UTC(2024, 0, 1, 12, 0, 0));
const NOW_UNIX = NOW.getTime() / 1000;
const REGION = 'us-west-2';
const ARN = 'arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1578944519357';
const LONG_TERM = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const TEMPORARY = {
  accessKeyId: 'ASIAEXAMPLETEMPORARY',
  secretAccessKey: 'tEmPoRaRy/SeCrEt+KeY==',
  // Session tokens are base64: make sure '+', '/' and '=' all appear.
  sessionToken: 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQD+token/with+plus/slash==',
};

const cases = [
  ['viewer, endpoint with port', 'wss://localhost:8443', LONG_TERM, 'viewer1'],
  ['master, endpoint with port', 'wss://localhost:8443', LONG_TERM, null],
  ['viewer with session token, endpoint with port', 'wss://127.0.0.1:8443', TEMPORARY, 'viewer-2.x_y'],
  ['master with session token, endpoint without port', 'wss://m-1234abcd.kinesisvideo.us-west-2.amazonaws.com', TEMPORARY, null],
  ['viewer, endpoint with a path', 'wss://localhost:8443/signaling', LONG_TERM, 'viewer1'],
];

async function main() {
  const vectors = [];
  for (const [name, endpoint, credentials, clientId] of cases) {
    const queryParams = { 'X-Amz-ChannelARN': ARN };
    if (clientId) {
      queryParams['X-Amz-ClientId'] = clientId;
    }
    const signer = new SigV4RequestSigner(REGION, credentials);
    const url = await signer.getSignedURL(endpoint, queryParams, NOW);
    // What the server receives: GET <path>?<query> with Host = the URL's authority.
    const rest = url.slice('wss://'.length);
    const [authorityAndPath, query] = rest.split('?');
    const slash = authorityAndPath.indexOf('/');
    vectors.push({
      name,
      source: `amazon-kinesis-video-streams-webrtc ${sdkVersion} SigV4RequestSigner.getSignedURL`,
      form: 'presigned',
      access_key_id: credentials.accessKeyId,
      secret_access_key: credentials.secretAccessKey,
      session_token: credentials.sessionToken || null,
      region: REGION,
      service: SigV4RequestSigner.DEFAULT_SERVICE,
      now_unix: NOW_UNIX,
      method: 'GET',
      url,
      endpoint,
      params: Object.entries(queryParams),
      path: authorityAndPath.slice(slash),
      query,
      headers: [
        ['host', authorityAndPath.slice(0, slash)],
        ['connection', 'Upgrade'],
        ['upgrade', 'websocket'],
        ['sec-websocket-version', '13'],
        ['sec-websocket-key', 'dGhlIHNhbXBsZSBub25jZQ=='],
      ],
      body: '',
      authorization: null,
    });
  }
  const out = path.join(__dirname, 'kvs_js.json');
  fs.writeFileSync(
    out,
    JSON.stringify({ generator: 'gen_kvs_js.js', sdk_version: sdkVersion, vectors }, null, 2) + '\n',
  );
  console.log(`wrote ${vectors.length} vectors to ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
