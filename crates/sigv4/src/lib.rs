//! AWS Signature Version 4 (SigV4): a pure verifier and signer, as used by every Kinesis Video
//! Streams API (service name `kinesisvideo`, `kvs-api.md` §1.1 and §14).
//!
//! # What it does
//!
//! - [`verify`] checks a request signed either with an `Authorization` header (all JSON
//!   operations and PutMedia, §14.1) or with query-string parameters (the signaling WebSocket
//!   URL, §13.4 and §14.2). It parses and validates the credential scope, enforces the clock-skew
//!   window and presigned-URL lifetime, looks up the secret through a [`CredentialLookup`],
//!   rebuilds the canonical request and compares signatures in constant time.
//! - [`sign_headers`] and [`presign_url`] produce the same two forms. Our own clients use them
//!   (the PutMedia uploader, `openkvs presign`), and the tests prove them against botocore and
//!   the KVS WebRTC JS SDK (`tests/vectors/`).
//!
//! Canonicalisation follows botocore for non-S3 services, which is also what the KVS JS and C
//! SDKs produce for the paths KVS uses:
//!
//! - canonical URI: the path *as received* has dot-segments and repeated slashes removed and is
//!   then percent-encoded once more (so `%` becomes `%25`); `/` when empty;
//! - canonical query: every parameter percent-decoded and re-encoded with the RFC 3986
//!   unreserved set, sorted by name then value; `X-Amz-Signature` excluded when presigned. If
//!   the query as spelled differs from that (JS `encodeURIComponent` leaves `!'()*` alone,
//!   botocore signs a URL's own query without re-encoding it), the as-spelled form, sorted, is
//!   tried too: either way the signature covers the bytes received;
//! - canonical headers: for each signed name, all values of that header trimmed, inner runs of
//!   whitespace collapsed to one space, joined with `,`;
//! - payload hash: `x-amz-content-sha256` literally when present (including
//!   `UNSIGNED-PAYLOAD`), otherwise the SHA-256 of the body ([`PayloadHash`]); presigned requests
//!   also accept `UNSIGNED-PAYLOAD`.
//!
//! # What it deliberately does not do
//!
//! - **No aws-chunked streaming signatures** (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, per-chunk
//!   `chunk-signature=`, trailers). No KVS client uses them (§14.3): PutMedia is signed with the
//!   hash of the empty string and streamed as plain chunked HTTP. A request announcing a
//!   `STREAMING-*` payload is rejected with [`AuthError::StreamingPayloadUnsupported`].
//! - No SigV4a (`AWS4-ECDSA-P256-SHA256`), no SigV2, no S3 special cases (S3 signs the path
//!   without the second encoding).
//! - No I/O and no clock: the current time is always an argument (`now_unix`, seconds since the
//!   Unix epoch), so tests run at any instant. No HTTP types either: the caller hands in
//!   borrowed strings.
//! - It does not read or buffer the body; the caller decides what [`PayloadHash`] to pass.
//! - It does not issue or store credentials; that is the [`CredentialLookup`] implementation's
//!   job (§14.4).
//!
//! # How the HTTP layer uses it
//!
//! ```
//! use openkvs_sigv4::{verify, AuthError, PayloadHash, Request, SecretKey, VerifyConfig};
//!
//! # let now_unix = 1_704_110_400; // 2024-01-01T12:00:00Z, from the server's clock
//! // 1. Collect the request as received: lower-case header names, raw values, raw path and
//! //    query (for HTTP/2, pass `:authority` as `host`).
//! let headers = [
//!     ("host", "localhost:8080"),
//!     ("x-amz-date", "20240101T120000Z"),
//!     ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000"),
//! ];
//! let req = Request { method: "POST", path: "/listStreams", query: "", headers: &headers };
//! // 2. Buffer small JSON bodies and pass `PayloadHash::Body`; for `/putMedia` pass
//! //    `PayloadHash::EmptyStreaming` and stream the body afterwards.
//! let body = b"{}";
//! // 3. Look up secrets by access key id (and session token, if any).
//! let creds = |akid: &str, _token: Option<&str>| {
//!     if akid == "AKID" {
//!         Ok(SecretKey::new("secret"))
//!     } else {
//!         Err(AuthError::UnknownAccessKey { access_key_id: akid.to_owned() })
//!     }
//! };
//! match verify(&req, PayloadHash::Body(body), now_unix, &VerifyConfig::default(), &creds) {
//!     Ok(verified) => { /* verified.access_key_id, verified.region, ... */ }
//!     // 4. On error answer `err.status()` with `x-amzn-ErrorType: err.code()` and
//!     //    `{"__type": err.code(), "message": err.to_string()}`.
//!     Err(err) => assert_eq!(err.code(), "InvalidSignatureException"),
//! }
//! ```
//!
//! Verification order: syntax (400 `IncompleteSignatureException`), credential scope (service,
//! region, date), time window, `host` signed, credential lookup (403
//! `UnrecognizedClientException`), then the signature itself (403
//! `InvalidSignatureException`). Errors never contain the secret or the expected signature.
#![deny(missing_docs)]

mod canonical;
mod date;
mod error;
mod sign;
mod verify;

pub use error::AuthError;
pub use sign::{Credentials, PresignRequest, SecretKey, SigningParams, presign_url, sign_headers};
pub use verify::{
    CredentialLookup, PayloadHash, Request, Verified, VerifyConfig, sha256_hex, verify,
};

/// Hex SHA-256 of the empty string: the payload hash of bodiless requests, of PutMedia
/// (`kvs-api.md` §14.3) and of the JS/C signaling presigners (§13.4).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Payload-hash literal for requests whose body is not signed (`x-amz-content-sha256` value, or
/// the S3-style presigner's payload hash).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The only algorithm accepted: `AWS4-HMAC-SHA256`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
