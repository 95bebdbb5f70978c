//! Table tests for [`verify`]: each case starts from a correctly signed request, changes one
//! thing, and states the outcome.

use super::*;
use crate::sign::{
    Canonical, Credentials, PresignRequest, SigningParams, authorization_header, presign_url,
    sign_headers,
};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TEMP_AKID: &str = "ASIATEMPEXAMPLE";
const TEMP_SECRET: &str = "tempSecret/+=";
const TOKEN: &str = "FwoGZXIvYXdzEJr//////////wEaDH+token/with+plus/and=equals==";
/// 2024-01-01T12:00:00Z.
const NOW: i64 = 1_704_110_400;
const HOST: &str = "kinesisvideo.us-west-2.amazonaws.com";

fn lookup(akid: &str, token: Option<&str>) -> Result<SecretKey, AuthError> {
    match (akid, token) {
        (AKID, _) => Ok(SecretKey::new(SECRET)),
        (TEMP_AKID, Some(TOKEN)) => Ok(SecretKey::new(TEMP_SECRET)),
        (TEMP_AKID, _) => Err(AuthError::InvalidSessionToken {
            access_key_id: akid.to_owned(),
        }),
        _ => Err(AuthError::UnknownAccessKey {
            access_key_id: akid.to_owned(),
        }),
    }
}

/// An owned request that cases can mutate.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Verify with [`PayloadHash::EmptyStreaming`] instead of [`PayloadHash::Body`].
    streaming: bool,
    now: i64,
    cfg: VerifyConfig,
}

impl Req {
    fn verify(&self) -> Result<Verified, AuthError> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
        };
        let payload = if self.streaming {
            PayloadHash::EmptyStreaming
        } else {
            PayloadHash::Body(&self.body)
        };
        verify(&req, payload, self.now, &self.cfg, &lookup)
    }

    fn header(&self, name: &str) -> &str {
        &self
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no header {name}"))
            .1
    }

    fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.remove(name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn remove(&mut self, name: &str) -> &mut Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// Replaces `from` by `to` in the value of header `name`.
    fn edit(&mut self, name: &str, from: &str, to: &str) -> &mut Self {
        let value = self.header(name).to_owned();
        assert!(value.contains(from), "{name}: {value:?} lacks {from:?}");
        self.set(name, &value.replacen(from, to, 1))
    }

    /// Replaces `from` by `to` in the raw query.
    fn edit_query(&mut self, from: &str, to: &str) -> &mut Self {
        assert!(self.query.contains(from), "{:?} lacks {from:?}", self.query);
        self.query = self.query.replacen(from, to, 1);
        self
    }

    fn signature(&self) -> String {
        if self.query.contains("X-Amz-Signature=") {
            let (_, rest) = self.query.split_once("X-Amz-Signature=").unwrap();
            rest.split('&').next().unwrap().to_owned()
        } else {
            let auth = self.header("authorization");
            auth.rsplit_once("Signature=").unwrap().1.to_owned()
        }
    }

    /// Flips the last hex digit of the signature, wherever it is.
    fn flip_signature(&mut self) -> &mut Self {
        let sig = self.signature();
        let last = sig.as_bytes()[63];
        let flipped = format!("{}{}", &sig[..63], if last == b'0' { '1' } else { '0' });
        if self.query.contains("X-Amz-Signature=") {
            self.edit_query(&sig, &flipped)
        } else {
            self.edit("authorization", &sig, &flipped)
        }
    }
}

struct Signing<'a> {
    /// `None`: [`long_term`].
    creds: Option<&'a Credentials>,
    region: &'a str,
    service: &'a str,
    signed: &'a [&'a str],
    payload_hash: Option<&'a str>,
}

const DEFAULT_SIGNING: Signing<'static> = Signing {
    creds: None,
    region: "us-west-2",
    service: "kinesisvideo",
    signed: &["content-type", "host"],
    payload_hash: None,
};

fn long_term() -> Credentials {
    Credentials::new(AKID, SECRET)
}

fn temporary() -> Credentials {
    Credentials::new(TEMP_AKID, TEMP_SECRET).with_session_token(TOKEN)
}

/// `POST /listStreams` with a JSON body, unsigned.
fn unsigned_post() -> Req {
    Req {
        method: "POST".into(),
        path: "/listStreams".into(),
        query: String::new(),
        headers: vec![
            ("host".into(), HOST.into()),
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "test/1.0".into()),
            ("content-length".into(), "2".into()),
        ],
        body: b"{}".to_vec(),
        streaming: false,
        now: NOW,
        cfg: VerifyConfig::default(),
    }
}

/// Signs `r` in place with our header signer.
fn sign(mut r: Req, s: &Signing<'_>) -> Req {
    let owned = long_term();
    let creds = s.creds.unwrap_or(&owned);
    let params = SigningParams {
        credentials: creds,
        region: s.region,
        service: s.service,
        now_unix: NOW,
    };
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &headers,
    };
    let payload_hash = s
        .payload_hash
        .map_or_else(|| sha256_hex(&r.body), str::to_owned);
    let added = sign_headers(&params, &req, s.signed, &payload_hash);
    for (name, value) in added {
        r.set(&name, &value);
    }
    r
}

fn signed_post() -> Req {
    sign(unsigned_post(), &DEFAULT_SIGNING)
}

/// Signs arbitrary headers (e.g. `date` instead of `x-amz-date`) with the low-level signer.
fn sign_raw(mut r: Req, signed: &[&str], amz_date: &str, payload_hash: &str) -> Req {
    let creds = long_term();
    let params = SigningParams {
        credentials: &creds,
        region: "us-west-2",
        service: "kinesisvideo",
        now_unix: NOW,
    };
    let names: Vec<String> = signed.iter().map(|s| (*s).to_owned()).collect();
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let auth = authorization_header(
        &params,
        amz_date,
        &Canonical {
            method: &r.method,
            path: &r.path,
            query: &r.query,
            headers: &headers,
            signed_headers: &names,
            payload_hash,
        },
    );
    r.set("authorization", &auth);
    r
}

/// A viewer WebSocket URL presigned by our signer, as the server receives it.
fn presigned(creds: &Credentials, host: &str) -> Req {
    let params = SigningParams {
        credentials: creds,
        region: "us-west-2",
        service: "kinesisvideo",
        now_unix: NOW,
    };
    let url = presign_url(
        &params,
        &PresignRequest {
            method: "GET",
            endpoint: &format!("wss://{host}"),
            params: &[
                (
                    "X-Amz-ChannelARN",
                    "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1578944519357",
                ),
                ("X-Amz-ClientId", "viewer1"),
            ],
            expires_secs: 299,
        },
    );
    let rest = url.strip_prefix("wss://").unwrap();
    let (authority_path, query) = rest.split_once('?').unwrap();
    let path = &authority_path[authority_path.find('/').unwrap()..];
    Req {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![
            ("host".into(), host.into()),
            ("upgrade".into(), "websocket".into()),
            ("connection".into(), "Upgrade".into()),
            ("sec-websocket-version".into(), "13".into()),
        ],
        body: Vec::new(),
        streaming: true,
        now: NOW,
        cfg: VerifyConfig::default(),
    }
}

fn presigned_viewer() -> Req {
    presigned(&long_term(), "localhost:8443")
}

/// What a case expects.
enum Want {
    Ok,
    /// Error code and the start of the message.
    Err(&'static str, &'static str),
    /// Error code and the whole message.
    Exact(&'static str, &'static str),
}

const MISMATCH: &str =
    "The request signature we calculated does not match the signature you provided.";

fn run(cases: Vec<(&str, Req, Want)>) {
    let mut failures = Vec::new();
    for (name, req, want) in cases {
        let got = req.verify();
        let ok = match (&got, &want) {
            (Ok(_), Want::Ok) => true,
            (Err(e), Want::Err(code, prefix)) => {
                e.code() == *code && e.to_string().starts_with(prefix)
            }
            (Err(e), Want::Exact(code, msg)) => e.code() == *code && e.to_string() == *msg,
            _ => false,
        };
        if let Err(e) = &got {
            // Whatever the case, no message may reveal the secret.
            for secret in [SECRET, TEMP_SECRET] {
                assert!(!e.to_string().contains(secret), "{name}: {e}");
            }
        }
        if !ok {
            failures.push(format!(
                "{name}: got {:?}",
                got.map(|_| "Ok").map_err(|e| format!("{} {e}", e.code()))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn header_signed_table() {
    let temp = temporary();
    let cases: Vec<(&str, Req, Want)> = vec![
        ("good", signed_post(), Want::Ok),
        (
            "unsigned header changed",
            signed_post().set("user-agent", "other").clone(),
            Want::Ok,
        ),
        (
            "header names are matched case-insensitively",
            {
                let mut r = signed_post();
                for (n, _) in &mut r.headers {
                    *n = n.to_ascii_uppercase();
                }
                r
            },
            Want::Ok,
        ),
        (
            "tampered body",
            {
                let mut r = signed_post();
                r.body = b"{ }".to_vec();
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "tampered path",
            {
                let mut r = signed_post();
                r.path = "/listStreamz".into();
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "tampered query",
            {
                let mut r = signed_post();
                r.query = "a=1".into();
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "tampered method",
            {
                let mut r = signed_post();
                r.method = "PUT".into();
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "tampered signed header",
            signed_post()
                .set("content-type", "application/x-amz-json-1.1")
                .clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "signed header removed",
            signed_post().remove("content-type").clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "host port differs",
            signed_post().set("host", &format!("{HOST}:443")).clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "signature byte flipped",
            signed_post().flip_signature().clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "wrong secret",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&Credentials::new(AKID, "not-the-secret")),
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "unknown access key",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&Credentials::new("AKIDUNKNOWN", SECRET)),
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Exact(
                "UnrecognizedClientException",
                "The security token included in the request is invalid: access key id \
                 'AKIDUNKNOWN' is not known to this server. Check the credentials the client uses",
            ),
        ),
        (
            "expired (one second past the window)",
            Req {
                now: NOW + 901,
                ..signed_post()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Signature expired: 20240101T120000Z is now earlier than 20240101T120001Z \
                 (20240101T121501Z - 15 min.)",
            ),
        ),
        (
            "at the end of the window",
            Req {
                now: NOW + 900,
                ..signed_post()
            },
            Want::Ok,
        ),
        (
            "not yet current (one second before the window)",
            Req {
                now: NOW - 901,
                ..signed_post()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Signature not yet current: 20240101T120000Z is still later than \
                 20240101T115959Z (20240101T114459Z + 15 min.)",
            ),
        ),
        (
            "at the start of the window",
            Req {
                now: NOW - 900,
                ..signed_post()
            },
            Want::Ok,
        ),
        (
            "custom skew window",
            Req {
                now: NOW + 301,
                cfg: VerifyConfig {
                    max_skew_secs: 300,
                    ..VerifyConfig::default()
                },
                ..signed_post()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Signature expired: 20240101T120000Z is now earlier than 20240101T120001Z \
                 (20240101T120501Z - 5 min.)",
            ),
        ),
        (
            "wrong service",
            sign(
                unsigned_post(),
                &Signing {
                    service: "s3",
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Exact(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'kinesisvideo'. The request was \
                 signed for 's3'",
            ),
        ),
        (
            "any region by default",
            sign(
                unsigned_post(),
                &Signing {
                    region: "eu-central-1",
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Ok,
        ),
        (
            "region not allowed",
            Req {
                cfg: VerifyConfig {
                    allowed_regions: Some(vec!["us-east-1".into(), "eu-west-1".into()]),
                    ..VerifyConfig::default()
                },
                ..signed_post()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Credential should be scoped to a valid region. 'us-west-2' is not accepted by \
                 this server; configure the client with one of: us-east-1, eu-west-1",
            ),
        ),
        (
            "region allowed",
            Req {
                cfg: VerifyConfig {
                    allowed_regions: Some(vec!["us-west-2".into()]),
                    ..VerifyConfig::default()
                },
                ..signed_post()
            },
            Want::Ok,
        ),
        (
            "scope date differs from x-amz-date",
            signed_post()
                .edit("authorization", "/20240101/", "/20231231/")
                .clone(),
            Want::Exact(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20231231' != '20240101', from '20240101T120000Z'",
            ),
        ),
        (
            "host not signed",
            sign_raw(
                unsigned_post()
                    .set("x-amz-date", "20240101T120000Z")
                    .clone(),
                &["content-type", "x-amz-date"],
                "20240101T120000Z",
                &sha256_hex(b"{}"),
            ),
            Want::Err(
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader'",
            ),
        ),
        (
            "x-amz-date not signed",
            sign_raw(
                unsigned_post()
                    .set("x-amz-date", "20240101T120000Z")
                    .clone(),
                &["content-type", "host"],
                "20240101T120000Z",
                &sha256_hex(b"{}"),
            ),
            Want::Err("IncompleteSignatureException", "'x-amz-date' carries"),
        ),
        (
            "Date header instead of X-Amz-Date (botocore's formatdate zone)",
            sign_raw(
                unsigned_post()
                    .set("date", "Mon, 01 Jan 2024 12:00:00 -0000")
                    .clone(),
                &["content-type", "date", "host"],
                "20240101T120000Z",
                &sha256_hex(b"{}"),
            ),
            Want::Ok,
        ),
        (
            "Date header expired",
            Req {
                now: NOW + 3600,
                ..sign_raw(
                    unsigned_post()
                        .set("date", "Mon, 01 Jan 2024 12:00:00 GMT")
                        .clone(),
                    &["content-type", "date", "host"],
                    "20240101T120000Z",
                    &sha256_hex(b"{}"),
                )
            },
            Want::Exact(
                "InvalidSignatureException",
                "Signature expired: 20240101T120000Z is now earlier than 20240101T124500Z \
                 (20240101T130000Z - 15 min.)",
            ),
        ),
        (
            "no date at all",
            signed_post().remove("x-amz-date").clone(),
            Want::Exact(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
                 header",
            ),
        ),
        (
            "bad x-amz-date format",
            signed_post()
                .set("x-amz-date", "2024-01-01T12:00:00Z")
                .clone(),
            Want::Err("IncompleteSignatureException", "Invalid X-Amz-Date"),
        ),
        (
            "duplicate x-amz-date headers",
            {
                let mut r = signed_post();
                r.headers
                    .push(("x-amz-date".into(), "20240101T120000Z".into()));
                r
            },
            Want::Err("IncompleteSignatureException", "Invalid X-Amz-Date"),
        ),
        (
            "no authentication at all",
            unsigned_post(),
            Want::Err(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
        ),
        (
            "session token signed (botocore, JS)",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&temp),
                    signed: &["content-type", "host", "x-amz-security-token"],
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Ok,
        ),
        (
            "session token unsigned (C SDKs)",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&temp),
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Ok,
        ),
        (
            "session token missing",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&temp),
                    ..DEFAULT_SIGNING
                },
            )
            .remove("x-amz-security-token")
            .clone(),
            Want::Err(
                "UnrecognizedClientException",
                "The security token included in the request is invalid",
            ),
        ),
        (
            "unsigned session token replaced",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&temp),
                    ..DEFAULT_SIGNING
                },
            )
            .set("x-amz-security-token", "forged")
            .clone(),
            Want::Err(
                "UnrecognizedClientException",
                "The security token included in the request is invalid",
            ),
        ),
        (
            "unsigned session token with different whitespace",
            sign(
                unsigned_post(),
                &Signing {
                    creds: Some(&temp),
                    ..DEFAULT_SIGNING
                },
            )
            .set("x-amz-security-token", &format!(" {TOKEN} "))
            .clone(),
            Want::Ok,
        ),
        (
            "duplicate headers joined with a comma",
            sign(
                {
                    let mut r = unsigned_post();
                    r.headers.push(("x-amzn-custom".into(), " a  b ".into()));
                    r.headers.push(("x-amzn-custom".into(), "c".into()));
                    r
                },
                &Signing {
                    signed: &["content-type", "host", "x-amzn-custom"],
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Ok,
        ),
        (
            "duplicate headers arriving as one joined value",
            {
                let mut r = sign(
                    {
                        let mut r = unsigned_post();
                        r.headers.push(("x-amzn-custom".into(), "a".into()));
                        r.headers.push(("x-amzn-custom".into(), "c".into()));
                        r
                    },
                    &Signing {
                        signed: &["content-type", "host", "x-amzn-custom"],
                        ..DEFAULT_SIGNING
                    },
                );
                r.remove("x-amzn-custom");
                r.headers.push(("x-amzn-custom".into(), "a,c".into()));
                r
            },
            Want::Ok,
        ),
        (
            "duplicate headers reordered",
            {
                let mut r = sign(
                    {
                        let mut r = unsigned_post();
                        r.headers.push(("x-amzn-custom".into(), "a".into()));
                        r.headers.push(("x-amzn-custom".into(), "c".into()));
                        r
                    },
                    &Signing {
                        signed: &["content-type", "host", "x-amzn-custom"],
                        ..DEFAULT_SIGNING
                    },
                );
                r.remove("x-amzn-custom");
                r.headers.push(("x-amzn-custom".into(), "c".into()));
                r.headers.push(("x-amzn-custom".into(), "a".into()));
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "signed header values trimmed and collapsed",
            signed_post()
                .set("content-type", "  application/json ")
                .clone(),
            Want::Ok,
        ),
        (
            "x-amz-content-sha256 UNSIGNED-PAYLOAD accepts any body",
            {
                let mut r = sign(
                    unsigned_post()
                        .set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                        .clone(),
                    &Signing {
                        signed: &["content-type", "host", "x-amz-content-sha256"],
                        payload_hash: Some(UNSIGNED_PAYLOAD),
                        ..DEFAULT_SIGNING
                    },
                );
                r.body = b"anything".to_vec();
                r
            },
            Want::Ok,
        ),
        (
            "x-amz-content-sha256 with the body's hash",
            sign(
                unsigned_post()
                    .set("x-amz-content-sha256", &sha256_hex(b"{}"))
                    .clone(),
                &Signing {
                    signed: &["content-type", "host", "x-amz-content-sha256"],
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Ok,
        ),
        (
            "x-amz-content-sha256 does not match the body",
            {
                let mut r = sign(
                    unsigned_post()
                        .set("x-amz-content-sha256", &sha256_hex(b"{}"))
                        .clone(),
                    &Signing {
                        signed: &["content-type", "host", "x-amz-content-sha256"],
                        ..DEFAULT_SIGNING
                    },
                );
                r.body = b"{\"a\":1}".to_vec();
                r
            },
            Want::Err(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match",
            ),
        ),
        (
            "aws-chunked streaming payload",
            sign(
                unsigned_post()
                    .set("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
                    .clone(),
                &Signing {
                    signed: &["content-type", "host", "x-amz-content-sha256"],
                    payload_hash: Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                    ..DEFAULT_SIGNING
                },
            ),
            Want::Err(
                "IncompleteSignatureException",
                "x-amz-content-sha256 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' announces",
            ),
        ),
        (
            "PutMedia: empty-string hash, streamed body",
            {
                let mut r = sign(
                    Req {
                        path: "/putMedia".into(),
                        body: Vec::new(),
                        ..unsigned_post()
                    }
                    .set("transfer-encoding", "chunked")
                    .set("connection", "keep-alive")
                    .set("x-amzn-stream-name", "cam1")
                    .clone(),
                    &Signing {
                        signed: &[
                            "connection",
                            "host",
                            "transfer-encoding",
                            "user-agent",
                            "x-amzn-stream-name",
                        ],
                        payload_hash: Some(EMPTY_SHA256),
                        ..DEFAULT_SIGNING
                    },
                );
                r.streaming = true;
                r.body = b"\x1a\x45\xdf\xa3 mkv bytes not hashed".to_vec();
                r
            },
            Want::Ok,
        ),
        (
            "PutMedia: a proxy rewrote the signed Connection header",
            {
                let mut r = sign(
                    Req {
                        path: "/putMedia".into(),
                        ..unsigned_post()
                    }
                    .set("connection", "keep-alive")
                    .clone(),
                    &Signing {
                        signed: &["connection", "host"],
                        payload_hash: Some(EMPTY_SHA256),
                        ..DEFAULT_SIGNING
                    },
                );
                r.streaming = true;
                r.set("connection", "close");
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "encoded path is encoded once more",
            sign(
                Req {
                    path: "/a%2Fb/c%20d".into(),
                    ..unsigned_post()
                },
                &DEFAULT_SIGNING,
            ),
            Want::Ok,
        ),
        (
            "decoded path is a different path",
            {
                let mut r = sign(
                    Req {
                        path: "/a%20b".into(),
                        ..unsigned_post()
                    },
                    &DEFAULT_SIGNING,
                );
                r.path = "/a b".into();
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "query spelled differently but equivalent",
            {
                let mut r = sign(
                    Req {
                        query: "b=x%2Fy&a=1%3A2".into(),
                        ..unsigned_post()
                    },
                    &DEFAULT_SIGNING,
                );
                r.query = "a=1:2&b=x%2fy".into();
                r
            },
            Want::Ok,
        ),
        (
            "separators without spaces",
            comma_variant(",", false),
            Want::Ok,
        ),
        (
            "extra whitespace and components reordered",
            comma_variant(" ,  ", true),
            Want::Ok,
        ),
    ];
    run(cases);
}

/// The good request with its `Authorization` components re-joined by `sep`, optionally in
/// reverse order.
fn comma_variant(sep: &str, reverse: bool) -> Req {
    let mut r = signed_post();
    let auth = r.header("authorization").to_owned();
    let (alg, rest) = auth.split_once(' ').unwrap();
    let mut parts: Vec<&str> = rest.split(", ").collect();
    if reverse {
        parts.reverse();
    }
    r.set("authorization", &format!("{alg}   {}", parts.join(sep)));
    r
}

#[test]
fn malformed_authorization_table() {
    let good = signed_post();
    let auth = good.header("authorization").to_owned();
    let sig = good.signature();
    let cred = format!("Credential={AKID}/20240101/us-west-2/kinesisvideo/aws4_request");
    let sh = "SignedHeaders=content-type;host;x-amz-date";
    let s = format!("Signature={sig}");
    let incomplete = "IncompleteSignatureException";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "algorithm only",
            "AWS4-HMAC-SHA256".into(),
            "Authorization header requires 'Credential' parameter",
        ),
        ("empty", String::new(), "Unsupported signature algorithm ''"),
        (
            "other scheme",
            "Bearer abc".into(),
            "Unsupported signature algorithm 'Bearer'",
        ),
        (
            "SigV4a",
            auth.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            "Unsupported signature algorithm",
        ),
        (
            "lower-case algorithm",
            auth.replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256"),
            "Unsupported signature algorithm",
        ),
        (
            "no Credential",
            format!("AWS4-HMAC-SHA256 {sh}, {s}"),
            "Authorization header requires 'Credential' parameter",
        ),
        (
            "no SignedHeaders",
            format!("AWS4-HMAC-SHA256 {cred}, {s}"),
            "Authorization header requires 'SignedHeaders' parameter",
        ),
        (
            "no Signature",
            format!("AWS4-HMAC-SHA256 {cred}, {sh}"),
            "Authorization header requires 'Signature' parameter",
        ),
        (
            "component without =",
            format!("AWS4-HMAC-SHA256 {cred}, {sh}, {s}, junk"),
            "Malformed Authorization header: a component is not of the form",
        ),
        (
            "component twice",
            format!("AWS4-HMAC-SHA256 {cred}, {cred}, {sh}, {s}"),
            "Malformed Authorization header: a component is given more than once",
        ),
        (
            "short signature",
            format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature=abc"),
            "Malformed Authorization header: Signature must be 64",
        ),
        (
            "upper-case signature",
            format!(
                "AWS4-HMAC-SHA256 {cred}, {sh}, Signature={}",
                sig.to_ascii_uppercase()
            ),
            "Malformed Authorization header: Signature must be 64",
        ),
        (
            "empty signed header name",
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {s}"),
            "Malformed Authorization header: SignedHeaders contains an empty",
        ),
        (
            "scope with 4 parts",
            auth.replace("/aws4_request", ""),
            "Malformed credential 'AKIDEXAMPLE/20240101/us-west-2/kinesisvideo': it must have 5",
        ),
        (
            "scope with bad terminator",
            auth.replace("aws4_request", "aws5_request"),
            "Malformed credential",
        ),
        (
            "scope with bad date",
            auth.replace("/20240101/", "/2024-01-01/"),
            "Malformed credential 'AKIDEXAMPLE/2024-01-01/us-west-2/kinesisvideo/aws4_request': the date must be 8 digits",
        ),
        (
            "scope with empty key",
            auth.replace(AKID, ""),
            "Malformed credential '/20240101",
        ),
        (
            "scope with empty region",
            auth.replace("us-west-2", ""),
            "Malformed credential",
        ),
    ];
    let mut failures = Vec::new();
    for (name, value, prefix) in cases {
        let mut r = good.clone();
        r.set("authorization", &value);
        match r.verify() {
            Err(e)
                if e.code() == incomplete
                    && e.status() == 400
                    && e.to_string().starts_with(prefix) => {}
            other => failures.push(format!("{name}: {:?}", other.map_err(|e| e.to_string()))),
        }
    }
    // Two Authorization headers.
    let mut r = good.clone();
    r.headers.push(("authorization".into(), auth.clone()));
    match r.verify() {
        Err(AuthError::MalformedAuthorization { .. }) => {}
        other => failures.push(format!("two headers: {other:?}")),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn presigned_table() {
    let temp = temporary();
    let cases: Vec<(&str, Req, Want)> = vec![
        ("good", presigned_viewer(), Want::Ok),
        (
            "good without port",
            presigned(&long_term(), "example.com"),
            Want::Ok,
        ),
        (
            "good with session token",
            presigned(&temp, "localhost:8443"),
            Want::Ok,
        ),
        (
            "session token tampered",
            presigned(&temp, "localhost:8443")
                .edit_query("%2Bplus", "%2Bplux")
                .clone(),
            Want::Err(
                "UnrecognizedClientException",
                "The security token included in the request is invalid",
            ),
        ),
        (
            "signature at the end instead of sorted (botocore order)",
            {
                let mut r = presigned_viewer();
                let sig = r.signature();
                r.edit_query(&format!("X-Amz-Signature={sig}&"), "");
                r.query.push_str(&format!("&X-Amz-Signature={sig}"));
                r
            },
            Want::Ok,
        ),
        (
            "encodeURIComponent spelling (JS) of the same values",
            presigned_viewer()
                .edit_query("%3A", "%3a")
                .edit_query("%2F", "%2f")
                .clone(),
            Want::Ok,
        ),
        (
            "signature byte flipped",
            presigned_viewer().flip_signature().clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "client id changed",
            presigned_viewer()
                .edit_query("ClientId=viewer1", "ClientId=viewer2")
                .clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "channel ARN changed",
            presigned_viewer().edit_query("demo", "dem0").clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "host changed",
            presigned_viewer().set("host", "localhost:8444").clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "path changed",
            Req {
                path: "/x".into(),
                ..presigned_viewer()
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "parameter added",
            {
                let mut r = presigned_viewer();
                r.query.push_str("&extra=1");
                r
            },
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
        (
            "at expiry",
            Req {
                now: NOW + 299,
                ..presigned_viewer()
            },
            Want::Ok,
        ),
        (
            "expired",
            Req {
                now: NOW + 300,
                ..presigned_viewer()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Request has expired: the URL was signed at 20240101T120000Z with \
                 X-Amz-Expires=299, so it was valid until 20240101T120459Z; it is now \
                 20240101T120500Z. Presign a new URL",
            ),
        ),
        (
            "not yet current",
            Req {
                now: NOW - 901,
                ..presigned_viewer()
            },
            Want::Exact(
                "InvalidSignatureException",
                "Signature not yet current: 20240101T120000Z is still later than \
                 20240101T115959Z (20240101T114459Z + 15 min.)",
            ),
        ),
        (
            "within skew before signing time",
            Req {
                now: NOW - 900,
                ..presigned_viewer()
            },
            Want::Ok,
        ),
        (
            "X-Amz-Expires missing",
            presigned_viewer()
                .edit_query("&X-Amz-Expires=299", "")
                .clone(),
            Want::Exact(
                "IncompleteSignatureException",
                "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the \
                 query-string parameters",
            ),
        ),
        (
            "X-Amz-Expires zero",
            presigned_viewer()
                .edit_query("X-Amz-Expires=299", "X-Amz-Expires=0")
                .clone(),
            Want::Err("IncompleteSignatureException", "X-Amz-Expires must be"),
        ),
        (
            "X-Amz-Expires over a week",
            presigned_viewer()
                .edit_query("X-Amz-Expires=299", "X-Amz-Expires=604801")
                .clone(),
            Want::Exact(
                "IncompleteSignatureException",
                "X-Amz-Expires must be an integer number of seconds from 1 to 604800, got \
                 '604801'",
            ),
        ),
        (
            "X-Amz-Expires not a number",
            presigned_viewer()
                .edit_query("X-Amz-Expires=299", "X-Amz-Expires=-5")
                .clone(),
            Want::Err("IncompleteSignatureException", "X-Amz-Expires must be"),
        ),
        (
            "X-Amz-Algorithm missing",
            presigned_viewer()
                .edit_query("X-Amz-Algorithm=AWS4-HMAC-SHA256&", "")
                .clone(),
            Want::Err(
                "IncompleteSignatureException",
                "AWS query-string parameters must include 'X-Amz-Algorithm'",
            ),
        ),
        (
            "X-Amz-Signature missing",
            {
                let mut r = presigned_viewer();
                let sig = r.signature();
                r.edit_query(&format!("X-Amz-Signature={sig}&"), "");
                r
            },
            Want::Err(
                "IncompleteSignatureException",
                "AWS query-string parameters must include 'X-Amz-Signature'",
            ),
        ),
        (
            "X-Amz-Signature twice",
            {
                let mut r = presigned_viewer();
                let sig = r.signature();
                r.query.push_str(&format!("&X-Amz-Signature={sig}"));
                r
            },
            Want::Err(
                "IncompleteSignatureException",
                "Malformed presigned URL: an X-Amz-* query parameter is given more than once",
            ),
        ),
        (
            "bad X-Amz-Date",
            presigned_viewer()
                .edit_query("X-Amz-Date=20240101T120000Z", "X-Amz-Date=20240101")
                .clone(),
            Want::Err(
                "IncompleteSignatureException",
                "Invalid X-Amz-Date '20240101'",
            ),
        ),
        (
            "host not signed",
            presigned_viewer()
                .edit_query("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=upgrade")
                .clone(),
            Want::Err(
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader'",
            ),
        ),
        (
            "wrong service in credential",
            presigned_viewer()
                .edit_query("%2Fkinesisvideo%2F", "%2Fs3%2F")
                .clone(),
            Want::Err(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'kinesisvideo'",
            ),
        ),
        (
            "scope date differs from X-Amz-Date",
            presigned_viewer()
                .edit_query("%2F20240101%2F", "%2F20240102%2F")
                .clone(),
            Want::Err(
                "InvalidSignatureException",
                "Date in Credential scope does not match",
            ),
        ),
        (
            "both Authorization header and presigned query",
            presigned_viewer()
                .set("authorization", signed_post().header("authorization"))
                .clone(),
            Want::Err(
                "IncompleteSignatureException",
                "Malformed Authorization header: the request carries both",
            ),
        ),
        (
            "UNSIGNED-PAYLOAD presigner (S3 style)",
            presigned_unsigned_payload(),
            Want::Ok,
        ),
        (
            "signed as spelled: encodeURIComponent leaves ( ) ! unencoded (JS)",
            presigned_as_spelled("X-Amz-ClientId=v(1)!"),
            Want::Ok,
        ),
        (
            "signed as spelled, then re-spelled in transit",
            presigned_as_spelled("X-Amz-ClientId=v(1)!")
                .edit_query("v(1)!", "v%281%29%21")
                .clone(),
            Want::Err("InvalidSignatureException", MISMATCH),
        ),
    ];
    run(cases);
}

/// A presigned URL whose canonical request used `UNSIGNED-PAYLOAD`, built by hand.
fn presigned_unsigned_payload() -> Req {
    let mut r = presigned_viewer();
    let sig = r.signature();
    r.edit_query(&format!("X-Amz-Signature={sig}&"), "");
    let creds = long_term();
    let params = SigningParams {
        credentials: &creds,
        region: "us-west-2",
        service: "kinesisvideo",
        now_unix: NOW,
    };
    let headers = [("host", "localhost:8443")];
    let sig = crate::sign::sign_canonical(
        &params,
        "20240101T120000Z",
        &Canonical {
            method: "GET",
            path: "/",
            query: &r.query,
            headers: &headers,
            signed_headers: &["host".to_owned()],
            payload_hash: UNSIGNED_PAYLOAD,
        },
    );
    r.query.push_str(&format!("&X-Amz-Signature={sig}"));
    r
}

/// A presigned viewer URL whose client id is `client_id_param` spelled as given, signed over the
/// query exactly as spelled (as the JS SDK does), built with the canonical functions by hand.
fn presigned_as_spelled(client_id_param: &str) -> Req {
    let mut r = presigned_viewer();
    let sig = r.signature();
    r.edit_query(&format!("X-Amz-Signature={sig}&"), "");
    r.edit_query("X-Amz-ClientId=viewer1", client_id_param);
    let cr = canonical_request(
        "GET",
        "/",
        &canonical_query_as_received(&r.query, None),
        "host:localhost:8443\n",
        "host",
        EMPTY_SHA256,
    );
    let sts = string_to_sign(
        "20240101T120000Z",
        "20240101/us-west-2/kinesisvideo/aws4_request",
        &cr,
    );
    let key = signing_key(SECRET, "20240101", "us-west-2", "kinesisvideo");
    let sig = canonical::signature(&key, &sts);
    r.query.push_str(&format!("&X-Amz-Signature={sig}"));
    r
}

#[test]
fn verified_reports_what_was_checked() {
    let v = sign(
        unsigned_post(),
        &Signing {
            creds: Some(&temporary()),
            signed: &["content-type", "host", "x-amz-security-token"],
            ..DEFAULT_SIGNING
        },
    )
    .verify()
    .unwrap();
    assert_eq!(v.access_key_id, TEMP_AKID);
    assert_eq!(v.region, "us-west-2");
    assert_eq!(v.session_token.as_deref(), Some(TOKEN));
    assert_eq!(v.date, "20240101");
    assert!(!v.presigned);
    assert_eq!(
        v.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    );
    assert_eq!(v.request_time_unix, NOW);
    assert_eq!(v.expires_at_unix, None);
    assert_eq!(v.payload_hash, sha256_hex(b"{}"));
    assert!(!format!("{v:?}").contains(TOKEN));

    let v = presigned(&temporary(), "localhost:8443").verify().unwrap();
    assert!(v.presigned);
    assert_eq!(v.session_token.as_deref(), Some(TOKEN));
    assert_eq!(v.signed_headers, ["host"]);
    assert_eq!(v.expires_at_unix, Some(NOW + 299));
    assert_eq!(v.payload_hash, EMPTY_SHA256);

    let v = presigned_unsigned_payload().verify().unwrap();
    assert_eq!(v.payload_hash, UNSIGNED_PAYLOAD);
}

#[test]
fn mismatch_message_helps_without_leaking() {
    let mut r = signed_post();
    r.set("host", "localhost:8080");
    r.remove("content-type");
    let err = r.verify().unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(MISMATCH), "{msg}");
    assert!(msg.contains("('localhost:8080')"), "{msg}");
    assert!(
        msg.contains("does not carry the signed header(s) content-type"),
        "{msg}"
    );
    assert!(
        msg.contains("The String-to-Sign should have been 'AWS4-HMAC-SHA256\n20240101T120000Z\n20240101/us-west-2/kinesisvideo/aws4_request\n"),
        "{msg}"
    );
    // Neither the secret nor the signature the server expected.
    let AuthError::SignatureMismatch { string_to_sign, .. } = &err else {
        panic!("{err:?}")
    };
    let key = signing_key(SECRET, "20240101", "us-west-2", "kinesisvideo");
    let expected = canonical::signature(&key, string_to_sign);
    assert!(!msg.contains(&expected), "{msg}");
    assert!(!format!("{err:?}").contains(&expected));
    assert!(!msg.contains(SECRET));
}

#[test]
fn payload_hash_variants_agree() {
    let r = signed_post();
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &headers,
    };
    let cfg = VerifyConfig::default();
    let hash = sha256_hex(b"{}");
    assert!(verify(&req, PayloadHash::Body(b"{}"), NOW, &cfg, &lookup).is_ok());
    assert!(verify(&req, PayloadHash::Sha256Hex(&hash), NOW, &cfg, &lookup).is_ok());
    assert!(
        verify(
            &req,
            PayloadHash::Sha256Hex(&hash.to_ascii_uppercase()),
            NOW,
            &cfg,
            &lookup
        )
        .is_ok()
    );
    assert!(verify(&req, PayloadHash::EmptyStreaming, NOW, &cfg, &lookup).is_err());
}

#[test]
fn extreme_clocks_do_not_panic() {
    for now in [i64::MIN, -1, 0, i64::MAX] {
        let err = Req {
            now,
            ..signed_post()
        }
        .verify()
        .unwrap_err();
        assert!(err.is_clock_skew(), "{now}: {err}");
        let err = Req {
            now,
            ..presigned_viewer()
        }
        .verify()
        .unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException", "{now}: {err}");
    }
    let cfg = VerifyConfig {
        max_skew_secs: i64::MAX,
        max_presign_expires_secs: i64::MAX,
        ..VerifyConfig::default()
    };
    assert!(
        Req {
            now: i64::MAX,
            cfg,
            ..signed_post()
        }
        .verify()
        .is_ok()
    );
}
