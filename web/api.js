// The page's client of the openkvs API: the same JSON operations the AWS SDKs call, authenticated
// by the HttpOnly session cookie (set by POST /web/v1/login) plus the CSRF token in x-okvs-csrf.
// No secret is ever stored by the page: after sign-in it only knows the CSRF token.

/** Request paths of the operations the page uses (crates/api/src/ops.rs). */
const PATHS = {
  ListStreams: '/listStreams',
  DescribeStream: '/describeStream',
  ListSignalingChannels: '/listSignalingChannels',
  ListFragments: '/listFragments',
  GetHLSStreamingSessionURL: '/getHLSStreamingSessionURL',
  GetClip: '/getClip',
  GetSignalingChannelEndpoint: '/getSignalingChannelEndpoint',
  GetIceServerConfig: '/v1/get-ice-server-config',
};

/** An AWS-style error: `code` is the `__type` (e.g. NotAuthorizedException). */
export class ApiError extends Error {
  constructor(code, message, status) {
    super(`${code}: ${message}`);
    this.code = code;
    this.status = status;
  }
}

let session = null;
let serverInfo = { hlsJs: true };

/** What the server said about itself ({hlsJs, region}) on the last restore(). */
export function server() {
  return serverInfo;
}

/** The current session ({AccessKeyId, Role, CsrfToken, ...}) or null. */
export function current() {
  return session;
}

/** Asks the server whether the cookie is a valid session. */
export async function restore() {
  const r = await fetch('/web/v1/session', { credentials: 'same-origin', cache: 'no-store' });
  const v = await r.json();
  session = v.SignedIn ? v : null;
  serverInfo = { hlsJs: v.HlsJs !== false, region: v.Region, signedOutReason: v.Reason || null };
  return session;
}

/** Exchanges a key pair for the session cookie. */
export async function login(accessKeyId, secretAccessKey, sessionToken) {
  const body = { AccessKeyId: accessKeyId, SecretAccessKey: secretAccessKey };
  if (sessionToken) body.SessionToken = sessionToken;
  const r = await fetch('/web/v1/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const v = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(v.__type || `HTTP ${r.status}`, v.message || r.statusText, r.status);
  session = v;
  return v;
}

export async function logout() {
  session = null;
  await fetch('/web/v1/logout', { method: 'POST', credentials: 'same-origin' });
}

async function raw(op, input, signal) {
  const path = PATHS[op];
  if (!path) throw new Error(`unknown operation ${op}`);
  if (!session) throw new ApiError('NotSignedIn', 'sign in first', 0);
  return fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-okvs-csrf': session.CsrfToken },
    body: JSON.stringify(input || {}),
    signal,
  });
}

async function errorOf(r) {
  const v = await r.json().catch(() => ({}));
  return new ApiError(v.__type || `HTTP ${r.status}`, v.message || v.Message || r.statusText, r.status);
}

/** Calls a JSON operation and returns its JSON output. */
export async function call(op, input, signal) {
  const r = await raw(op, input, signal);
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

/** Calls a streaming operation (GetClip) and returns the Response (body not read). */
export async function stream(op, input, signal) {
  const r = await raw(op, input, signal);
  if (!r.ok) throw await errorOf(r);
  return r;
}

/** All pages of a List* operation. */
export async function listAll(op, input, key, maxPages = 50) {
  const out = [];
  let token;
  for (let i = 0; i < maxPages; i++) {
    const v = await call(op, token ? { ...input, NextToken: token } : input);
    out.push(...(v[key] || []));
    token = v.NextToken;
    if (!token) break;
  }
  return out;
}

/** Fragments of `stream` whose server timestamps fall in [startMs, endMs], sorted by time. */
export async function fragments(streamName, startMs, endMs) {
  const list = await listAll('ListFragments', {
    StreamName: streamName,
    MaxResults: 1000,
    FragmentSelector: {
      FragmentSelectorType: 'SERVER_TIMESTAMP',
      TimestampRange: { StartTimestamp: startMs / 1000, EndTimestamp: endMs / 1000 },
    },
  }, 'Fragments');
  return list
    .map((f) => ({
      number: f.FragmentNumber,
      startMs: Math.round(f.ServerTimestamp * 1000),
      lengthMs: f.FragmentLengthInMilliseconds,
      bytes: f.FragmentSizeInBytes,
    }))
    .sort((a, b) => a.startMs - b.startMs);
}
