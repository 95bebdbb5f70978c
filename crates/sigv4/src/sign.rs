//! Signers: the `Authorization` header form and the presigned-URL form.

use std::fmt;

use crate::canonical::{
    canonical_header_value, canonical_query, canonical_request, canonical_uri, decode_query,
    signature, signing_key, string_to_sign,
};
use crate::date::format_amz;
use crate::verify::Request;
use crate::{ALGORITHM, EMPTY_SHA256};

/// A secret access key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret access key.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for key derivation or storage.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// What a client signs with. `Debug` prints neither the secret nor the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id (`AKIA…`, `ASIA…` or anything the server knows).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_key: SecretKey,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_key: SecretKey::new(secret_key),
            session_token: None,
        }
    }

    /// Adds a session token (temporary credentials).
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &self.secret_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Who signs, for which scope, and when.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The credentials to sign with.
    pub credentials: &'a Credentials,
    /// Region of the credential scope, e.g. `us-west-2`.
    pub region: &'a str,
    /// Service of the credential scope: `kinesisvideo` for every KVS API.
    pub service: &'a str,
    /// Signing time, seconds since the Unix epoch (becomes `X-Amz-Date`). Instants outside years
    /// 0000..=9999 are clamped.
    pub now_unix: i64,
}

/// Headers that [`sign_headers`] owns: any copy in the caller's headers is ignored.
const OWNED_HEADERS: [&str; 3] = ["authorization", "x-amz-date", "x-amz-security-token"];

/// Signs a request in the `Authorization` header form (`kvs-api.md` §14.1) and returns the
/// headers to add to it: `authorization`, `x-amz-date` and, with temporary credentials,
/// `x-amz-security-token` (names lower-case).
///
/// - `req.headers` are the headers that will be sent, including `host` exactly as it will go on
///   the wire (with `:port` when not the scheme's default). Any `authorization`, `x-amz-date` or
///   `x-amz-security-token` in them is ignored and replaced by the returned ones.
/// - `signed_headers` names the headers to sign (any case). `host` and `x-amz-date` are always
///   signed. `x-amz-security-token` is signed only when listed: botocore and the JS SDKs list it,
///   the C SDKs do not (§14.1 step 6). A listed header that is not in `req.headers` is signed
///   with an empty value.
/// - `payload_hash` is the hex SHA-256 of the body ([`crate::sha256_hex`]),
///   [`EMPTY_SHA256`] for PutMedia, or [`crate::UNSIGNED_PAYLOAD`]; if the request carries
///   `x-amz-content-sha256`, pass its exact value.
pub fn sign_headers(
    params: &SigningParams<'_>,
    req: &Request<'_>,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Vec<(String, String)> {
    let amz_date = format_amz(params.now_unix);
    let token = params.credentials.session_token.as_deref();

    let mut sent: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| !OWNED_HEADERS.iter().any(|o| name.eq_ignore_ascii_case(o)))
        .copied()
        .collect();
    sent.push(("x-amz-date", &amz_date));
    if let Some(token) = token {
        sent.push(("x-amz-security-token", token));
    }

    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n != "authorization")
        .filter(|n| token.is_some() || n != "x-amz-security-token")
        .chain(["host".to_owned(), "x-amz-date".to_owned()])
        .collect();
    names.sort();
    names.dedup();

    let authorization = authorization_header(
        params,
        &amz_date,
        &Canonical {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: &sent,
            signed_headers: &names,
            payload_hash,
        },
    );
    let mut out = vec![
        ("authorization".to_owned(), authorization),
        ("x-amz-date".to_owned(), amz_date),
    ];
    if let Some(token) = token {
        out.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    out
}

/// The inputs of a canonical request, for the signers.
pub(crate) struct Canonical<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// All headers as sent.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// The names to sign, in the order to sign them (normally sorted, lower-case).
    pub(crate) signed_headers: &'a [String],
    pub(crate) payload_hash: &'a str,
}

/// The signature over `c` at `amz_date`.
pub(crate) fn sign_canonical(
    params: &SigningParams<'_>,
    amz_date: &str,
    c: &Canonical<'_>,
) -> String {
    let mut canonical_headers = String::new();
    for name in c.signed_headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&canonical_header_value(c.headers, name).unwrap_or_default());
        canonical_headers.push('\n');
    }
    let cr = canonical_request(
        c.method,
        &canonical_uri(c.path),
        &canonical_query(&decode_query(c.query), None),
        &canonical_headers,
        &c.signed_headers.join(";"),
        c.payload_hash,
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let sts = string_to_sign(amz_date, &scope, &cr);
    let key = signing_key(
        params.credentials.secret_key.expose_secret(),
        date,
        params.region,
        params.service,
    );
    signature(&key, &sts)
}

/// The `Authorization` header value for `c` signed at `amz_date`, formatted as botocore does.
pub(crate) fn authorization_header(
    params: &SigningParams<'_>,
    amz_date: &str,
    c: &Canonical<'_>,
) -> String {
    let signature = sign_canonical(params, amz_date, c);
    format!(
        "{ALGORITHM} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={signature}",
        params.credentials.access_key_id,
        &amz_date[..8],
        params.region,
        params.service,
        c.signed_headers.join(";"),
    )
}

/// What to presign.
#[derive(Debug, Clone, Copy)]
pub struct PresignRequest<'a> {
    /// HTTP method, `GET` for a WebSocket upgrade.
    pub method: &'a str,
    /// `scheme://host[:port][/path]`, e.g. `wss://localhost:8443`. The host is signed exactly as
    /// written, so write it as the client's `Host` header will carry it (no `:443` for `wss`,
    /// `kvs-api.md` §1.1). An empty path means `/`. A query in it is kept and signed.
    pub endpoint: &'a str,
    /// Extra query parameters, unencoded, e.g. `X-Amz-ChannelARN` and `X-Amz-ClientId`.
    /// Parameters named like the ones the signer adds (`X-Amz-Algorithm`, …) are dropped.
    pub params: &'a [(&'a str, &'a str)],
    /// `X-Amz-Expires`, seconds (the JS SDK uses 299; at most 604800).
    pub expires_secs: i64,
}

/// The query parameters the presigner writes itself.
const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
];

/// Presigns a URL in the query-string form (`kvs-api.md` §13.4, §14.2), as the KVS signaling
/// clients do: `X-Amz-SignedHeaders=host`, the session token (if any) inside the signed query,
/// and the SHA-256 of the empty string as payload hash. All parameters, `X-Amz-Signature`
/// included, are written sorted and RFC 3986-encoded, so for plain ARNs and client ids the URL is
/// byte-identical to the one the KVS WebRTC JS SDK builds.
pub fn presign_url(params: &SigningParams<'_>, req: &PresignRequest<'_>) -> String {
    let (scheme, rest) = match req.endpoint.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, req.endpoint),
    };
    let (rest, endpoint_query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };

    let amz_date = format_amz(params.now_unix);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        &amz_date[..8],
        params.region,
        params.service
    );
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = decode_query(endpoint_query);
    pairs.extend(
        req.params
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    pairs.retain(|(name, _)| {
        !PRESIGN_PARAMS
            .iter()
            .any(|p| p.as_bytes() == name.as_slice())
    });
    let mut add = |name: &str, value: &str| {
        pairs.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    };
    add("X-Amz-Algorithm", ALGORITHM);
    add(
        "X-Amz-Credential",
        &format!("{}/{scope}", params.credentials.access_key_id),
    );
    add("X-Amz-Date", &amz_date);
    add("X-Amz-Expires", &req.expires_secs.to_string());
    add("X-Amz-SignedHeaders", "host");
    if let Some(token) = &params.credentials.session_token {
        add("X-Amz-Security-Token", token);
    }

    let query = canonical_query(&pairs, None);
    let host_header = [("host", host)];
    let signature = sign_canonical(
        params,
        &amz_date,
        &Canonical {
            method: req.method,
            path,
            query: &query,
            headers: &host_header,
            signed_headers: &["host".to_owned()],
            payload_hash: EMPTY_SHA256,
        },
    );
    pairs.push((b"X-Amz-Signature".to_vec(), signature.into_bytes()));
    let query = canonical_query(&pairs, None);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}?{query}"),
        None => format!("{host}{path}?{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new("AKID", "very-secret").with_session_token("tok-secret");
        let s = format!("{c:?}");
        assert!(s.contains("AKID"));
        assert!(!s.contains("very-secret"), "{s}");
        assert!(!s.contains("tok-secret"), "{s}");
    }

    /// AWS SigV4 test suite `get-vanilla` (also recorded from botocore in
    /// `tests/vectors/botocore.json`).
    #[test]
    fn get_vanilla() {
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "service",
            now_unix: 1_440_938_160, // 20150830T123600Z
        };
        let headers = [("host", "example.amazonaws.com")];
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
        };
        let out = sign_headers(&params, &req, &[], EMPTY_SHA256);
        assert_eq!(
            out,
            vec![
                (
                    "authorization".to_owned(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=host;x-amz-date, \
                     Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                        .to_owned()
                ),
                ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
            ]
        );
    }

    #[test]
    fn presign_splits_endpoint_table() {
        let creds = Credentials::new("AKID", "secret");
        let params = SigningParams {
            credentials: &creds,
            region: "us-west-2",
            service: "kinesisvideo",
            now_unix: 1_704_110_400,
        };
        // (endpoint, expected prefix up to the query)
        let cases = [
            ("wss://h:8443", "wss://h:8443/?"),
            ("wss://h", "wss://h/?"),
            ("wss://h/x/y", "wss://h/x/y?"),
            ("h:1", "h:1/?"),
        ];
        for (endpoint, want) in cases {
            let url = presign_url(
                &params,
                &PresignRequest {
                    method: "GET",
                    endpoint,
                    params: &[],
                    expires_secs: 299,
                },
            );
            assert!(url.starts_with(want), "{endpoint}: {url}");
        }
        // Caller parameters cannot override the signer's.
        let url = presign_url(
            &params,
            &PresignRequest {
                method: "GET",
                endpoint: "wss://h?a=1",
                params: &[("X-Amz-Expires", "5"), ("b", "2 3")],
                expires_secs: 299,
            },
        );
        assert!(
            url.ends_with("X-Amz-SignedHeaders=host&a=1&b=2%203"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=299"), "{url}");
        assert!(!url.contains("X-Amz-Expires=5"), "{url}");
    }
}
