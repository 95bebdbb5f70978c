// Helpers shared by the signaling tests that drive the unmodified KVS WebRTC JS SDK in Node.
import { once } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// The SDK evaluates `new (WebSocket || require('ws'))(url)`: give Node a global WebSocket.
globalThis.WebSocket = require('ws');
export const { SignalingClient, SigV4RequestSigner, Role } = require('amazon-kinesis-video-streams-webrtc');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A request signer that signs the wss:// form of the URL with the SDK's own signer and connects
 * over ws:// (the SDK's signer accepts only wss://; the signature covers host, path and query,
 * not the scheme). `clockOffsetMs` shifts the signing time (clock-skew tests).
 */
export function plainSigner(region, credentials, clockOffsetMs = 0) {
  const signer = new SigV4RequestSigner(region, credentials, 'kinesisvideo');
  return {
    async getSignedURL(signingEndpoint, queryParams, date) {
      const wss = signingEndpoint.replace(/^ws:\/\//, 'wss://');
      const d = new Date((date ?? new Date()).getTime() + clockOffsetMs);
      const url = await signer.getSignedURL(wss, queryParams, d);
      return signingEndpoint.startsWith('ws://') ? url.replace(/^wss:\/\//, 'ws://') : url;
    },
  };
}

/** Opens a SignalingClient; rejects if it is not open within 5 s. */
export async function open(c) {
  const opened = once(c, 'open');
  c.open();
  await Promise.race([
    opened,
    sleep(5000).then(() => {
      throw new Error('signaling client did not open within 5 s');
    }),
  ]);
}
