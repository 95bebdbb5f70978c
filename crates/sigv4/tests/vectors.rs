//! Requests signed by real signers (botocore, the KVS WebRTC JS SDK), recorded by the scripts
//! in `tests/vectors/` (each documents how to regenerate its JSON). For every vector:
//!
//! - `verify` accepts it at the recorded time;
//! - it rejects it once one byte of the signature, of any signed header, of the body or of the
//!   path changes, and once the time window has passed;
//! - our signers, given the same inputs, produce the same `Authorization` header / signature
//!   (byte-identical URL for the JS SDK), which proves the signers too.

use openkvs_sigv4::{
    AuthError, Credentials, PayloadHash, PresignRequest, Request, SecretKey, SigningParams,
    Verified, VerifyConfig, presign_url, sha256_hex, sign_headers, verify,
};
use percent_encoding::percent_decode_str;
use serde_json::Value;

const MISMATCH: &str =
    "The request signature we calculated does not match the signature you provided.";

#[derive(Debug, Clone)]
struct Vector {
    file: &'static str,
    name: String,
    presigned: bool,
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
    region: String,
    service: String,
    now_unix: i64,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    authorization: Option<String>,
    url: String,
    /// JS only: the endpoint and caller parameters handed to `getSignedURL`.
    endpoint: Option<String>,
    params: Vec<(String, String)>,
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

fn opt(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn load(file: &'static str, json: &str) -> Vec<Vector> {
    let root: Value = serde_json::from_str(json).expect("vector file is JSON");
    let vectors: Vec<Vector> = root["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            file,
            name: s(v, "name"),
            presigned: s(v, "form") == "presigned",
            access_key_id: s(v, "access_key_id"),
            secret: s(v, "secret_access_key"),
            session_token: opt(v, "session_token"),
            region: s(v, "region"),
            service: s(v, "service"),
            now_unix: v["now_unix"].as_i64().expect("now_unix"),
            method: s(v, "method"),
            path: s(v, "path"),
            query: s(v, "query"),
            headers: pairs(&v["headers"]),
            body: s(v, "body").into_bytes(),
            authorization: opt(v, "authorization"),
            url: s(v, "url"),
            endpoint: opt(v, "endpoint"),
            params: pairs(&v["params"]),
        })
        .collect();
    assert!(!vectors.is_empty(), "{file} has no vectors");
    vectors
}

fn all_vectors() -> Vec<Vector> {
    let mut v = load("botocore.json", include_str!("vectors/botocore.json"));
    v.extend(load("kvs_js.json", include_str!("vectors/kvs_js.json")));
    v
}

impl Vector {
    fn cfg(&self) -> VerifyConfig {
        VerifyConfig {
            service: self.service.clone(),
            ..VerifyConfig::default()
        }
    }

    fn verify_at(&self, now: i64) -> Result<Verified, AuthError> {
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
        let payload = if self.presigned {
            PayloadHash::EmptyStreaming
        } else {
            PayloadHash::Body(&self.body)
        };
        let lookup = |akid: &str, token: Option<&str>| {
            if akid != self.access_key_id {
                return Err(AuthError::UnknownAccessKey {
                    access_key_id: akid.to_owned(),
                });
            }
            if token != self.session_token.as_deref() {
                return Err(AuthError::InvalidSessionToken {
                    access_key_id: akid.to_owned(),
                });
            }
            Ok(SecretKey::new(self.secret.clone()))
        };
        verify(&req, payload, now, &self.cfg(), &lookup)
    }

    fn verify(&self) -> Result<Verified, AuthError> {
        self.verify_at(self.now_unix)
    }

    fn id(&self) -> String {
        format!("{} / {}", self.file, self.name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn signed_headers(&self) -> Vec<String> {
        let list = if self.presigned {
            query_param(&self.query, "X-Amz-SignedHeaders").unwrap()
        } else {
            let auth = self.authorization.as_deref().unwrap();
            auth.split("SignedHeaders=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_owned()
        };
        list.split(';').map(str::to_owned).collect()
    }

    fn signature(&self) -> String {
        if self.presigned {
            query_param(&self.query, "X-Amz-Signature").unwrap()
        } else {
            let auth = self.authorization.as_deref().unwrap();
            auth.rsplit_once("Signature=").unwrap().1.to_owned()
        }
    }

    fn credentials(&self) -> Credentials {
        let c = Credentials::new(&self.access_key_id, &self.secret);
        match &self.session_token {
            Some(t) => c.with_session_token(t),
            None => c,
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        (n == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

/// Replaces the last alphanumeric character of `s` with one that differs even ignoring case.
fn change_one_byte(s: &str) -> Option<String> {
    let (i, c) = s
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_alphanumeric())?;
    let replacement = if c.eq_ignore_ascii_case(&'z') {
        'y'
    } else {
        'z'
    };
    Some(format!("{}{replacement}{}", &s[..i], &s[i + 1..]))
}

#[test]
fn vectors_verify_at_the_recorded_time() {
    let mut failures = Vec::new();
    for v in all_vectors() {
        match v.verify() {
            Ok(verified) => {
                assert_eq!(verified.access_key_id, v.access_key_id, "{}", v.id());
                assert_eq!(verified.region, v.region, "{}", v.id());
                assert_eq!(verified.presigned, v.presigned, "{}", v.id());
                assert_eq!(verified.session_token, v.session_token, "{}", v.id());
                assert_eq!(verified.signed_headers, v.signed_headers(), "{}", v.id());
            }
            Err(e) => failures.push(format!("{}: {} {e}", v.id(), e.code())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vectors_cover_what_the_task_needs() {
    let v = all_vectors();
    let has = |pred: &dyn Fn(&Vector) -> bool| v.iter().any(pred);
    assert!(has(
        &|v| v.file == "botocore.json" && v.path == "/listStreams"
    ));
    assert!(has(&|v| v.path == "/createStream" && !v.body.is_empty()));
    assert!(has(&|v| !v.presigned
        && v.session_token.as_deref().is_some_and(|t| t.contains('+')
            && t.contains('/')
            && t.contains('='))));
    assert!(has(&|v| v.header("host").is_some_and(|h| h.contains(':'))));
    assert!(has(&|v| v.header("host").is_some_and(|h| !h.contains(':'))));
    assert!(has(&|v| v.file == "botocore.json" && v.presigned));
    for js_case in ["viewer", "master"] {
        for token in [false, true] {
            assert!(
                has(&|v| v.file == "kvs_js.json"
                    && v.name.starts_with(js_case)
                    && v.session_token.is_some() == token),
                "{js_case} token={token}"
            );
        }
    }
}

#[test]
fn changed_signature_byte_is_rejected() {
    for v in all_vectors() {
        let sig = v.signature();
        let last = sig.as_bytes()[63];
        let flipped = format!("{}{}", &sig[..63], if last == b'0' { '1' } else { '0' });
        let mut t = v.clone();
        if v.presigned {
            t.query = v.query.replace(&sig, &flipped);
        } else {
            let auth = v.authorization.clone().unwrap().replace(&sig, &flipped);
            for (n, val) in &mut t.headers {
                if n == "authorization" {
                    *val = auth.clone();
                }
            }
        }
        let err = t.verify().expect_err(&v.id());
        assert_eq!(err.code(), "InvalidSignatureException", "{}: {err}", v.id());
        assert!(err.to_string().starts_with(MISMATCH), "{}: {err}", v.id());
    }
}

#[test]
fn changed_signed_header_byte_is_rejected() {
    let mut checked = 0;
    for v in all_vectors() {
        for name in v.signed_headers() {
            let Some(value) = v.header(&name) else {
                continue;
            };
            let Some(changed) = change_one_byte(value) else {
                continue;
            };
            let mut t = v.clone();
            for (n, val) in &mut t.headers {
                if *n == name {
                    *val = changed.clone();
                }
            }
            assert!(t.verify().is_err(), "{}: {name}: {changed}", v.id());
            checked += 1;
        }
        // Unsigned headers do not matter.
        if let Some((i, _)) = v
            .headers
            .iter()
            .enumerate()
            .find(|(_, (n, _))| n == "user-agent" || n == "sec-websocket-key")
        {
            let mut t = v.clone();
            t.headers[i].1.push_str(" changed");
            assert!(t.verify().is_ok(), "{}: unsigned header", v.id());
        }
    }
    assert!(checked > 30, "only {checked} header changes checked");
}

#[test]
fn changed_body_path_or_query_is_rejected() {
    for v in all_vectors() {
        if !v.body.is_empty() {
            let mut t = v.clone();
            *t.body.last_mut().unwrap() ^= 1;
            let unsigned = v.header("x-amz-content-sha256") == Some("UNSIGNED-PAYLOAD");
            // UNSIGNED-PAYLOAD: the body is deliberately not covered by the signature.
            assert_eq!(t.verify().is_ok(), unsigned, "{}: body", v.id());
        }
        let mut t = v.clone();
        t.path = format!("{}x", v.path);
        assert!(t.verify().is_err(), "{}: path", v.id());

        let mut t = v.clone();
        t.query = if v.query.is_empty() {
            "a=1".to_owned()
        } else {
            format!("{}&a=1", v.query)
        };
        assert!(t.verify().is_err(), "{}: query", v.id());
    }
}

#[test]
fn vectors_expire() {
    for v in all_vectors() {
        let end = if v.presigned {
            let expires: i64 = query_param(&v.query, "X-Amz-Expires")
                .unwrap()
                .parse()
                .unwrap();
            v.now_unix + expires
        } else {
            v.now_unix + 900
        };
        assert!(v.verify_at(end).is_ok(), "{}", v.id());
        let err = v.verify_at(end + 1).expect_err(&v.id());
        if v.presigned {
            assert!(
                matches!(err, AuthError::PresignedUrlExpired { .. }),
                "{}: {err}",
                v.id()
            );
        } else {
            assert!(
                err.to_string().starts_with("Signature expired: "),
                "{}: {err}",
                v.id()
            );
        }
        let err = v.verify_at(v.now_unix - 901).expect_err(&v.id());
        assert!(
            err.to_string().starts_with("Signature not yet current: "),
            "{}: {err}",
            v.id()
        );
    }
}

/// Our `sign_headers`, given botocore's inputs, writes botocore's `Authorization` byte for byte.
#[test]
fn sign_headers_matches_botocore() {
    let mut compared = 0;
    for v in all_vectors().into_iter().filter(|v| !v.presigned) {
        let Some(amz_date) = v.header("x-amz-date") else {
            // Signed with the Date header: our signer always writes X-Amz-Date.
            continue;
        };
        assert_eq!(amz_date, openkvs_sigv4_format(v.now_unix), "{}", v.id());
        let creds = v.credentials();
        let params = SigningParams {
            credentials: &creds,
            region: &v.region,
            service: &v.service,
            now_unix: v.now_unix,
        };
        let headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Request {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            headers: &headers,
        };
        let payload_hash = v
            .header("x-amz-content-sha256")
            .map_or_else(|| sha256_hex(&v.body), str::to_owned);
        let names = v.signed_headers();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = sign_headers(&params, &req, &names, &payload_hash);
        let mut want = vec![
            ("authorization".to_owned(), v.authorization.clone().unwrap()),
            ("x-amz-date".to_owned(), amz_date.to_owned()),
        ];
        if let Some(token) = &v.session_token {
            want.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        if is_rfc3986_spelled(&v.query) {
            assert_eq!(out, want, "{}", v.id());
            compared += 1;
        } else {
            // botocore signs an over-encoded query (`%41` for `A`) as spelled; our signer always
            // writes the RFC 3986 canonical form. Both are accepted by the verifier.
            assert_ne!(out, want, "{}", v.id());
            let mut t = v.clone();
            t.headers.retain(|(n, _)| n != "authorization");
            t.headers.push(out[0].clone());
            assert!(t.verify().is_ok(), "{}", v.id());
        }
    }
    assert!(compared >= 8, "only {compared} compared");
}

/// Our `presign_url`, given the same inputs, produces the JS SDK's URL byte for byte and
/// botocore's `SigV4QueryAuth` signature.
#[test]
fn presign_url_matches_real_presigners() {
    let mut compared = 0;
    for v in all_vectors().into_iter().filter(|v| v.presigned) {
        let creds = v.credentials();
        let params = SigningParams {
            credentials: &creds,
            region: &v.region,
            service: &v.service,
            now_unix: v.now_unix,
        };
        let expires: i64 = query_param(&v.query, "X-Amz-Expires")
            .unwrap()
            .parse()
            .unwrap();
        let (endpoint, extra) = match &v.endpoint {
            // JS: exactly what was handed to getSignedURL.
            Some(endpoint) => (endpoint.clone(), v.params.clone()),
            // botocore: the URL's operation parameters, decoded.
            None => {
                let (base, _) = v.url.split_once('?').unwrap();
                let extra = v
                    .query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .filter(|(n, _)| {
                        !n.starts_with("X-Amz-")
                            || *n == "X-Amz-ChannelARN"
                            || *n == "X-Amz-ClientId"
                    })
                    .map(|(n, val)| {
                        (
                            n.to_owned(),
                            percent_decode_str(val).decode_utf8_lossy().into_owned(),
                        )
                    })
                    .collect();
                (base.trim_end_matches('/').to_owned(), extra)
            }
        };
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let url = presign_url(
            &params,
            &PresignRequest {
                method: &v.method,
                endpoint: &endpoint,
                params: &extra,
                expires_secs: expires,
            },
        );
        let (_, query) = url.split_once('?').unwrap();
        assert_eq!(
            query_param(query, "X-Amz-Signature"),
            Some(v.signature()),
            "{}: {url}",
            v.id()
        );
        if v.endpoint.is_some() {
            assert_eq!(url, v.url, "{}", v.id());
        }
        compared += 1;
    }
    assert!(compared >= 7, "only {compared} compared");
}

/// True if every query name and value is already spelled as SigV4's canonical encoding.
fn is_rfc3986_spelled(query: &str) -> bool {
    const RFC3986: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    query.split('&').filter(|p| !p.is_empty()).all(|pair| {
        pair.split('=').all(|part| {
            let decoded: Vec<u8> = percent_decode_str(part).collect();
            percent_encoding::percent_encode(&decoded, RFC3986).to_string() == part
        })
    })
}

/// `yyyyMMdd'T'HHmmss'Z'` for the vector times, via the signer (no clock read).
fn openkvs_sigv4_format(now_unix: i64) -> String {
    let creds = Credentials::new("A", "B");
    let params = SigningParams {
        credentials: &creds,
        region: "r",
        service: "s",
        now_unix,
    };
    let headers = [("host", "h")];
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
    };
    sign_headers(&params, &req, &[], "")
        .into_iter()
        .find(|(n, _)| n == "x-amz-date")
        .unwrap()
        .1
}
