//! SigV4 verification on arbitrary requests: the `Authorization` header form and the presigned
//! query form, parsed from fuzzer-chosen method, path, query and header values. It must never
//! panic, and it must never accept a request: the secret is unknown to the fuzzer, so an `Ok`
//! would mean a signature was not actually checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openkvs_sigv4::{AuthError, PayloadHash, Request, SecretKey, VerifyConfig, verify};

fuzz_target!(|data: &[u8]| {
    // Fields separated by '\n': method, path, query, authorization, host, x-amz-date,
    // x-amz-security-token, x-amz-content-sha256, body.
    let text = String::from_utf8_lossy(data);
    let mut f = text.split('\n');
    let mut next = || f.next().unwrap_or("");
    let (method, path, query) = (next(), next(), next());
    let (authorization, host, date, token, sha) = (next(), next(), next(), next(), next());
    let body = next();
    let mut headers = vec![("host", host), ("x-amz-date", date)];
    if !authorization.is_empty() {
        headers.push(("authorization", authorization));
    }
    if !token.is_empty() {
        headers.push(("x-amz-security-token", token));
    }
    if !sha.is_empty() {
        headers.push(("x-amz-content-sha256", sha));
    }
    let req = Request {
        method,
        path,
        query,
        headers: &headers,
    };
    let lookup = |akid: &str, _token: Option<&str>| -> Result<SecretKey, AuthError> {
        if akid.starts_with("AKIA") {
            Ok(SecretKey::new(
                "fuzz-secret-the-fuzzer-cannot-know-0123456789",
            ))
        } else {
            Err(AuthError::UnknownAccessKey {
                access_key_id: akid.to_owned(),
            })
        }
    };
    let payload = if body.is_empty() {
        PayloadHash::EmptyStreaming
    } else {
        PayloadHash::Body(body.as_bytes())
    };
    // 2024-01-01T12:00:00Z, the date the seeds are signed for.
    let r = verify(
        &req,
        payload,
        1_704_110_400,
        &VerifyConfig::default(),
        &lookup,
    );
    if let Err(e) = &r {
        let _ = (e.code(), e.status(), e.is_clock_skew(), e.to_string());
    }
    assert!(
        r.is_err(),
        "accepted a request signed without the secret: {r:?}"
    );
});
