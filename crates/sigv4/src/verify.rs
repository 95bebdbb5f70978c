//! The verifier (`kvs-api.md` §14.1 header form, §14.2 presigned form).

use std::fmt;

use subtle::ConstantTimeEq;

use crate::canonical::{
    self, canonical_header_value, canonical_query, canonical_query_as_received, canonical_request,
    canonical_uri, decode_query, header_values, signing_key, string_to_sign,
};
use crate::date::{format_amz, parse_amz, parse_http_date, window_text};
use crate::error::{AuthError, clip};
use crate::sign::SecretKey;
use crate::{ALGORITHM, EMPTY_SHA256, UNSIGNED_PAYLOAD};

/// A request as the HTTP layer received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method as received (`POST`, `GET`).
    pub method: &'a str,
    /// Raw path as received, still percent-encoded, e.g. `/listStreams`.
    pub path: &'a str,
    /// Raw query string without `?`, `""` if none.
    pub query: &'a str,
    /// Headers as received: names lower-case, values exactly as sent. May contain duplicates;
    /// all values of one name are joined with `,` in order. For HTTP/2 pass `:authority` as
    /// `host`.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Which payload hash the request was signed with, when it carries no `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy)]
pub enum PayloadHash<'a> {
    /// The complete body (small JSON requests): its SHA-256 is computed here.
    Body(&'a [u8]),
    /// A streamed body that is not hashed: PutMedia, WebSocket upgrades. Uses [`EMPTY_SHA256`]
    /// unless `x-amz-content-sha256` is present (`kvs-api.md` §14.3).
    EmptyStreaming,
    /// The body's hex SHA-256, computed by the caller (e.g. while buffering).
    Sha256Hex(&'a str),
}

/// Verification policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Service the credential scope must name: `kinesisvideo` (`kvs-api.md` §1.1).
    pub service: String,
    /// Allowed difference between the request time and `now`, seconds: 900 (AWS's 15 minutes).
    pub max_skew_secs: i64,
    /// Largest accepted `X-Amz-Expires`, seconds: 604800 (7 days).
    pub max_presign_expires_secs: i64,
    /// Regions accepted in the credential scope; `None` accepts any (clients sign with whatever
    /// region they are configured with).
    pub allowed_regions: Option<Vec<String>>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            service: "kinesisvideo".to_owned(),
            max_skew_secs: 900,
            max_presign_expires_secs: 604_800,
            allowed_regions: None,
        }
    }
}

/// Finds the secret for an access key id.
pub trait CredentialLookup {
    /// The secret for `access_key_id`. `session_token` is the `x-amz-security-token` header or
    /// `X-Amz-Security-Token` parameter, if the request carried one; it is passed whether or not
    /// it was signed. Return [`AuthError::UnknownAccessKey`] for an unknown key and
    /// [`AuthError::InvalidSessionToken`] for a missing, unknown or expired token.
    fn secret_for(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<SecretKey, AuthError>;
}

impl<F> CredentialLookup for F
where
    F: Fn(&str, Option<&str>) -> Result<SecretKey, AuthError>,
{
    fn secret_for(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<SecretKey, AuthError> {
        self(access_key_id, session_token)
    }
}

/// A request whose signature checked out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Access key id from the credential scope.
    pub access_key_id: String,
    /// Region from the credential scope.
    pub region: String,
    /// Session token the request carried (signed or not), as passed to the lookup.
    pub session_token: Option<String>,
    /// `yyyymmdd` from the credential scope.
    pub date: String,
    /// True for the query-string (presigned URL) form.
    pub presigned: bool,
    /// Signed header names, as listed by the request.
    pub signed_headers: Vec<String>,
    /// The request time, Unix seconds (`X-Amz-Date`, or the `Date` header).
    pub request_time_unix: i64,
    /// Presigned only: `X-Amz-Date + X-Amz-Expires`, Unix seconds. A WebSocket shell may use it
    /// for nothing more than logging: AWS lets a connection outlive its URL.
    pub expires_at_unix: Option<i64>,
    /// The payload hash the signature covers: a hex SHA-256 or `UNSIGNED-PAYLOAD`.
    pub payload_hash: String,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("date", &self.date)
            .field("presigned", &self.presigned)
            .field("signed_headers", &self.signed_headers)
            .field("request_time_unix", &self.request_time_unix)
            .field("expires_at_unix", &self.expires_at_unix)
            .field("payload_hash", &self.payload_hash)
            .finish()
    }
}

/// Hex SHA-256 of `bytes`, e.g. a body's payload hash for [`crate::sign_headers`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    canonical::sha256_hex(bytes)
}

/// The signature material of either form, before any check that needs the scope or a secret.
struct Parsed {
    presigned: bool,
    credential: String,
    signed_headers: String,
    signature: String,
    request_time_unix: i64,
    /// `yyyyMMdd'T'HHmmss'Z'` of the request time, as used in the StringToSign.
    amz_date: String,
    /// Header form: the header that carries the time, which must be signed.
    date_header: Option<&'static str>,
    expires_secs: Option<i64>,
    session_token: Option<String>,
}

/// The credential scope, `<akid>/<yyyymmdd>/<region>/<service>/aws4_request`.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// Query parameters whose presence makes a request a presigned one.
const PRESIGN_MARKERS: [&str; 3] = ["X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm"];

const AMZ_DATE_FORMAT: &str = "yyyyMMdd'T'HHmmss'Z' (e.g. 20240101T120000Z)";

/// Verifies the SigV4 signature of `req` at time `now_unix` (seconds since the Unix epoch).
///
/// Handles both the `Authorization` header form and the presigned query form (whichever the
/// request carries; both at once is an error). See the crate docs for the canonicalisation
/// rules and the order of checks.
pub fn verify(
    req: &Request<'_>,
    payload: PayloadHash<'_>,
    now_unix: i64,
    cfg: &VerifyConfig,
    creds: &dyn CredentialLookup,
) -> Result<Verified, AuthError> {
    let query = decode_query(req.query);
    let auth_headers = header_values(req.headers, "authorization").count();
    let presigned = query.iter().any(|(name, _)| {
        PRESIGN_MARKERS
            .iter()
            .any(|m| m.as_bytes() == name.as_slice())
    });
    let parsed = match (auth_headers, presigned) {
        (0, false) => return Err(AuthError::MissingAuthentication),
        (0, true) => parse_presigned(&query, req.headers, cfg)?,
        (1, false) => parse_header_form(req.headers)?,
        (_, true) => {
            return Err(AuthError::MalformedAuthorization {
                reason: "the request carries both an Authorization header and presigning \
                         X-Amz-* query parameters; use one",
            });
        }
        (_, false) => {
            return Err(AuthError::MalformedAuthorization {
                reason: "the request carries more than one Authorization header",
            });
        }
    };

    let scope = parse_credential(&parsed.credential)?;
    if scope.service != cfg.service {
        return Err(AuthError::WrongService {
            service: clip(scope.service, 64),
            expected: cfg.service.clone(),
        });
    }
    if let Some(allowed) = &cfg.allowed_regions
        && !allowed.iter().any(|r| r == scope.region)
    {
        return Err(AuthError::RegionNotAllowed {
            region: clip(scope.region, 64),
            allowed: allowed.clone(),
        });
    }
    if scope.date != &parsed.amz_date[..8] {
        return Err(AuthError::ScopeDateMismatch {
            scope_date: scope.date.to_owned(),
            request_date: parsed.amz_date[..8].to_owned(),
            request_time: parsed.amz_date.clone(),
        });
    }
    check_time(&parsed, now_unix, cfg)?;

    let signed_names: Vec<&str> = parsed.signed_headers.split(';').collect();
    if signed_names.iter().any(|n| n.is_empty()) {
        return Err(malformed(
            parsed.presigned,
            "SignedHeaders contains an empty header name",
        ));
    }
    if !signed_names.iter().any(|n| n.eq_ignore_ascii_case("host")) {
        return Err(AuthError::HostNotSigned {
            signed_headers: clip(&parsed.signed_headers, 256),
        });
    }
    if let Some(header) = parsed.date_header
        && !signed_names.iter().any(|n| n.eq_ignore_ascii_case(header))
    {
        return Err(AuthError::DateNotSigned { header });
    }

    // §14.3: aws-chunked bodies carry per-chunk signatures this crate does not check.
    let content_sha256 = canonical_header_value(req.headers, "x-amz-content-sha256");
    if let Some(value) = &content_sha256
        && value.starts_with("STREAMING-")
    {
        return Err(AuthError::StreamingPayloadUnsupported {
            value: clip(value, 64),
        });
    }

    let secret = creds.secret_for(scope.access_key_id, parsed.session_token.as_deref())?;

    // The signature is tried over up to 2 query spellings x 2 payload hashes; the rest of the
    // canonical request is the same for all of them.
    let mut canonical_headers = String::new();
    let mut missing_headers = Vec::new();
    for name in &signed_names {
        let value = canonical_header_value(req.headers, name).unwrap_or_else(|| {
            missing_headers.push(clip(name, 64));
            String::new()
        });
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&value);
        canonical_headers.push('\n');
    }
    let uri = canonical_uri(req.path);
    let exclude = parsed.presigned.then_some("X-Amz-Signature");
    let normalized_query = canonical_query(&query, exclude);
    let received_query = canonical_query_as_received(req.query, exclude);
    let mut queries = vec![normalized_query.as_str()];
    if received_query != normalized_query {
        queries.push(&received_query);
    }

    let mut candidates: Vec<String> = Vec::with_capacity(2);
    match &content_sha256 {
        Some(value) => candidates.push(value.clone()),
        None => {
            candidates.push(match payload {
                PayloadHash::Body(body) => sha256_hex(body),
                PayloadHash::EmptyStreaming => EMPTY_SHA256.to_owned(),
                PayloadHash::Sha256Hex(hash) => hash.to_ascii_lowercase(),
            });
            // Presigned URLs: the KVS JS/C clients and botocore hash the (empty) body; S3-style
            // presigners write UNSIGNED-PAYLOAD (§14.2). Accept either.
            if parsed.presigned && candidates[0] != UNSIGNED_PAYLOAD {
                candidates.push(UNSIGNED_PAYLOAD.to_owned());
            }
        }
    }

    let key = signing_key(
        secret.expose_secret(),
        scope.date,
        scope.region,
        scope.service,
    );
    let credential_scope = format!(
        "{}/{}/{}/aws4_request",
        scope.date, scope.region, scope.service
    );
    let mut first_string_to_sign = None;
    let mut matched = None;
    'search: for query in &queries {
        for candidate in &candidates {
            let cr = canonical_request(
                req.method,
                &uri,
                query,
                &canonical_headers,
                &parsed.signed_headers,
                candidate,
            );
            let sts = string_to_sign(&parsed.amz_date, &credential_scope, &cr);
            let expected = canonical::signature(&key, &sts);
            // Both are 64 lower-case hex digits (checked while parsing): equal lengths, so the
            // comparison time does not depend on the secret.
            if bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
                matched = Some(candidate.clone());
                break 'search;
            }
            first_string_to_sign.get_or_insert(sts);
        }
    }
    let Some(payload_hash) = matched else {
        return Err(AuthError::SignatureMismatch {
            host: clip(
                &canonical_header_value(req.headers, "host").unwrap_or_default(),
                256,
            ),
            signed_headers: clip(&parsed.signed_headers, 256),
            missing_headers,
            string_to_sign: first_string_to_sign.unwrap_or_default(),
        });
    };

    // The signature covers the claimed hash; now the body must match the claim.
    if content_sha256.is_some() && is_hex64(&payload_hash) {
        let actual = match payload {
            PayloadHash::Body(body) => Some(sha256_hex(body)),
            PayloadHash::Sha256Hex(hash) => Some(hash.to_ascii_lowercase()),
            // Streamed: the caller has not seen the body yet and cannot have it checked here.
            PayloadHash::EmptyStreaming => None,
        };
        if actual.is_some_and(|a| a != payload_hash.to_ascii_lowercase()) {
            return Err(AuthError::ContentSha256Mismatch);
        }
    }

    Ok(Verified {
        access_key_id: scope.access_key_id.to_owned(),
        region: scope.region.to_owned(),
        session_token: parsed.session_token.clone(),
        date: scope.date.to_owned(),
        presigned: parsed.presigned,
        signed_headers: signed_names.iter().map(|n| (*n).to_owned()).collect(),
        request_time_unix: parsed.request_time_unix,
        expires_at_unix: parsed
            .expires_secs
            .map(|e| parsed.request_time_unix.saturating_add(e)),
        payload_hash,
    })
}

fn malformed(presigned: bool, reason: &'static str) -> AuthError {
    if presigned {
        AuthError::MalformedPresignedUrl { reason }
    } else {
        AuthError::MalformedAuthorization { reason }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_signature(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// §14.1: `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`, components separated
/// by `,` with optional whitespace, in any order. Unknown components are ignored.
fn parse_header_form(headers: &[(&str, &str)]) -> Result<Parsed, AuthError> {
    let value = header_values(headers, "authorization")
        .next()
        .expect("caller counted exactly one Authorization header")
        .trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm {
            algorithm: clip(algorithm, 64),
        });
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((name, value)) = component.split_once('=') else {
            return Err(AuthError::MalformedAuthorization {
                reason: "a component is not of the form Name=value",
            });
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::MalformedAuthorization {
                reason: "a component is given more than once",
            });
        }
    }
    let credential = credential.ok_or(AuthError::MissingAuthorizationComponent {
        component: "Credential",
    })?;
    let signed_headers = signed_headers.ok_or(AuthError::MissingAuthorizationComponent {
        component: "SignedHeaders",
    })?;
    let signature = signature.ok_or(AuthError::MissingAuthorizationComponent {
        component: "Signature",
    })?;
    if !is_signature(signature) {
        return Err(AuthError::MalformedAuthorization {
            reason: "Signature must be 64 lower-case hex digits",
        });
    }

    // §14.1 step 2: X-Amz-Date, else Date.
    let (request_time_unix, date_header) =
        if let Some(v) = canonical_header_value(headers, "x-amz-date") {
            let t = parse_amz(&v).ok_or_else(|| AuthError::MalformedDate {
                name: "X-Amz-Date",
                value: clip(&v, 64),
                expected: AMZ_DATE_FORMAT,
            })?;
            (t, "x-amz-date")
        } else if let Some(v) = canonical_header_value(headers, "date") {
            let t = parse_http_date(&v).ok_or_else(|| AuthError::MalformedDate {
                name: "Date",
                value: clip(&v, 64),
                expected: "an RFC 7231 date (e.g. Mon, 01 Jan 2024 12:00:00 GMT)",
            })?;
            (t, "date")
        } else {
            return Err(AuthError::MissingDate);
        };

    Ok(Parsed {
        presigned: false,
        credential: credential.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
        request_time_unix,
        amz_date: format_amz(request_time_unix),
        date_header: Some(date_header),
        expires_secs: None,
        session_token: canonical_header_value(headers, "x-amz-security-token"),
    })
}

/// §14.2: the `X-Amz-*` query parameters, each at most once.
fn parse_presigned(
    query: &[(Vec<u8>, Vec<u8>)],
    headers: &[(&str, &str)],
    cfg: &VerifyConfig,
) -> Result<Parsed, AuthError> {
    let param = |name: &'static str| -> Result<Option<String>, AuthError> {
        let mut values = query
            .iter()
            .filter(|(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let first = values.next();
        if values.next().is_some() {
            return Err(AuthError::MalformedPresignedUrl {
                reason: "an X-Amz-* query parameter is given more than once",
            });
        }
        Ok(first)
    };
    let required = |name: &'static str| -> Result<String, AuthError> {
        param(name)?.ok_or(AuthError::MissingQueryParameter { parameter: name })
    };

    let algorithm = required("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm {
            algorithm: clip(&algorithm, 64),
        });
    }
    let credential = required("X-Amz-Credential")?;
    let date = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    let signature = required("X-Amz-Signature")?;
    let token = param("X-Amz-Security-Token")?;

    let request_time_unix = parse_amz(&date).ok_or_else(|| AuthError::MalformedDate {
        name: "X-Amz-Date",
        value: clip(&date, 64),
        expected: AMZ_DATE_FORMAT,
    })?;
    let expires_secs = Some(&expires)
        .filter(|e| !e.is_empty() && e.len() <= 18 && e.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|e| (1..=cfg.max_presign_expires_secs).contains(e))
        .ok_or_else(|| AuthError::ExpiresOutOfRange {
            value: clip(&expires, 64),
            max_secs: cfg.max_presign_expires_secs,
        })?;
    if !is_signature(&signature) {
        return Err(AuthError::MalformedPresignedUrl {
            reason: "X-Amz-Signature must be 64 lower-case hex digits",
        });
    }

    Ok(Parsed {
        presigned: true,
        credential,
        signed_headers,
        signature,
        request_time_unix,
        amz_date: date,
        date_header: None,
        expires_secs: Some(expires_secs),
        // Signaling clients put the token in the (signed) query; fall back to the header.
        session_token: token.or_else(|| canonical_header_value(headers, "x-amz-security-token")),
    })
}

fn parse_credential(credential: &str) -> Result<Scope<'_>, AuthError> {
    let bad = |reason| AuthError::MalformedCredential {
        credential: clip(credential, 256),
        reason,
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let &[access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(bad("it must have 5 '/'-separated parts"));
    };
    if access_key_id.is_empty() {
        return Err(bad("the access key id is empty"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the date must be 8 digits (yyyymmdd)"));
    }
    if region.is_empty() {
        return Err(bad("the region is empty"));
    }
    if service.is_empty() {
        return Err(bad("the service is empty"));
    }
    if terminator != "aws4_request" {
        return Err(bad("the terminator must be 'aws4_request'"));
    }
    Ok(Scope {
        access_key_id,
        date,
        region,
        service,
    })
}

/// §14.1 step 2 (±skew around the request time) and §14.2 (`date - skew <= now <= date +
/// expires`).
fn check_time(parsed: &Parsed, now_unix: i64, cfg: &VerifyConfig) -> Result<(), AuthError> {
    let t = parsed.request_time_unix;
    let skew = cfg.max_skew_secs.max(0);
    if t.saturating_sub(now_unix) > skew {
        return Err(AuthError::SignatureNotYetCurrent {
            request_time: parsed.amz_date.clone(),
            latest: format_amz(now_unix.saturating_add(skew)),
            now: format_amz(now_unix),
            window: window_text(skew),
        });
    }
    match parsed.expires_secs {
        None if now_unix.saturating_sub(t) > skew => Err(AuthError::SignatureExpired {
            request_time: parsed.amz_date.clone(),
            earliest: format_amz(now_unix.saturating_sub(skew)),
            now: format_amz(now_unix),
            window: window_text(skew),
        }),
        Some(expires) if now_unix > t.saturating_add(expires) => {
            Err(AuthError::PresignedUrlExpired {
                request_time: parsed.amz_date.clone(),
                expires_secs: expires,
                expired_at: format_amz(t.saturating_add(expires)),
                now: format_amz(now_unix),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
