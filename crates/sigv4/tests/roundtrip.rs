//! Signer/verifier round trips over random requests: whatever our signers sign, `verify`
//! accepts (within the time window, whichever valid spelling the query arrives in), and changing
//! any byte of the signed material makes it fail.

use openkvs_sigv4::{
    AuthError, Credentials, PayloadHash, PresignRequest, Request, SecretKey, SigningParams,
    VerifyConfig, presign_url, sha256_hex, sign_headers, verify,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;

const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// What a client typically leaves unencoded in a path segment.
const PATH_SEGMENT: &AsciiSet = &RFC3986.remove(b':').remove(b'@').remove(b'!');

const AKID: &str = "AKIDPROPTEST";
const SECRET: &str = "proptest/secret+key=";

/// An owned request, as the server would receive it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    presigned: bool,
    token: Option<String>,
}

impl Received {
    fn verify(&self, now: i64) -> Result<openkvs_sigv4::Verified, AuthError> {
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
        let token = self.token.clone();
        let lookup = move |akid: &str, t: Option<&str>| {
            if akid == AKID && t == token.as_deref() {
                Ok(SecretKey::new(SECRET))
            } else {
                Err(AuthError::UnknownAccessKey {
                    access_key_id: akid.to_owned(),
                })
            }
        };
        verify(&req, payload, now, &VerifyConfig::default(), &lookup)
    }

    /// Every place where one changed character must break verification, as (field, index)
    /// pairs; `field` indexes `method`, `path`, `query`, header values and the body.
    fn sites(&self) -> Vec<Site> {
        let alnum = |s: &str| -> Vec<usize> {
            s.char_indices()
                .filter(|(_, c)| c.is_ascii_alphanumeric())
                .map(|(i, _)| i)
                .collect()
        };
        let mut out = Vec::new();
        out.extend(alnum(&self.method).into_iter().map(Site::Method));
        out.extend(alnum(&self.path).into_iter().map(Site::Path));
        out.extend(alnum(&self.query).into_iter().map(Site::Query));
        for (h, (name, value)) in self.headers.iter().enumerate() {
            if self.signed(name) {
                out.extend(alnum(value).into_iter().map(|i| Site::Header(h, i)));
            }
        }
        if !self.presigned {
            out.extend((0..self.body.len()).map(Site::Body));
        }
        out
    }

    fn signed(&self, name: &str) -> bool {
        if self.presigned {
            return name == "host";
        }
        let auth = &self
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        let list = auth.split("SignedHeaders=").nth(1).unwrap();
        let list = list.split(',').next().unwrap();
        // The Authorization header itself carries the signature and the scope.
        name == "authorization"
            || list.split(';').any(|n| n == name)
            || name == "x-amz-security-token"
    }

    fn mutate(&self, site: Site) -> Received {
        fn change(s: &str, i: usize) -> String {
            let c = s[i..].chars().next().unwrap();
            // Differs from `c` even ignoring case, so `%2f` -> `%2F` style no-ops are excluded.
            let replacement = if c.eq_ignore_ascii_case(&'z') {
                'y'
            } else {
                'z'
            };
            format!("{}{replacement}{}", &s[..i], &s[i + c.len_utf8()..])
        }
        let mut r = self.clone();
        match site {
            Site::Method(i) => r.method = change(&r.method, i),
            Site::Path(i) => r.path = change(&r.path, i),
            Site::Query(i) => r.query = change(&r.query, i),
            Site::Header(h, i) => r.headers[h].1 = change(&r.headers[h].1, i),
            Site::Body(i) => r.body[i] ^= 0x01,
        }
        r
    }
}

#[derive(Debug, Clone, Copy)]
enum Site {
    Method(usize),
    Path(usize),
    Query(usize),
    Header(usize, usize),
    Body(usize),
}

fn credentials(token: Option<&String>) -> Credentials {
    let c = Credentials::new(AKID, SECRET);
    match token {
        Some(t) => c.with_session_token(t),
        None => c,
    }
}

/// Path segments: no `.`, so no dot-segment can make two different paths equivalent.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_~:@! %é-]{0,8}", 0..4).prop_map(|segments| {
        segments
            .iter()
            .map(|s| format!("/{}", utf8_percent_encode(s, PATH_SEGMENT)))
            .collect()
    })
}

/// Decoded query parameters (any Unicode value), names free of `X-Amz-`.
fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("p[A-Za-z0-9_.~-]{0,6}", "\\PC{0,10}"), 0..4)
}

fn encode_query(params: &[(String, String)], lower_hex: bool) -> String {
    params
        .iter()
        .map(|(n, v)| {
            let v = utf8_percent_encode(v, RFC3986).to_string();
            let v = if lower_hex { lower_escapes(&v) } else { v };
            format!("{}={v}", utf8_percent_encode(n, RFC3986))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `%2F` -> `%2f`: the same bytes spelled differently.
fn lower_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push_str(&rest[i..i + 3].to_ascii_lowercase());
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

fn host() -> impl Strategy<Value = String> {
    ("[a-z0-9][a-z0-9.-]{0,15}", prop::option::of(1u16..)).prop_map(|(h, port)| match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    })
}

prop_compose! {
    fn header_signed()(
        method in prop::sample::select(vec!["GET", "POST", "PUT"]),
        path in path(),
        params in params(),
        lower_hex in any::<bool>(),
        host in host(),
        // Custom headers; the same name may repeat (values are then joined with ',').
        custom in prop::collection::vec(("x-test-[a-c]", "[ -~\t]{0,16}"), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        token in prop::option::of("[A-Za-z0-9+/=]{1,40}"),
        sign_token in any::<bool>(),
        now in 0i64..4_102_444_800,
        skew in -900i64..=900,
    ) -> (Received, i64, i64) {
        let creds = credentials(token.as_ref());
        let params_signing = SigningParams {
            credentials: &creds,
            region: "us-west-2",
            service: "kinesisvideo",
            now_unix: now,
        };
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "proptest".into()),
        ];
        headers.extend(custom.iter().cloned());
        let mut signed: Vec<&str> = vec!["content-type"];
        signed.extend(custom.iter().map(|(n, _)| n.as_str()));
        if sign_token {
            signed.push("x-amz-security-token");
        }
        let query = encode_query(&params, false);
        let borrowed: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let added = sign_headers(
            &params_signing,
            &Request { method, path: &path, query: &query, headers: &borrowed },
            &signed,
            &sha256_hex(&body),
        );
        headers.extend(added);
        (
            Received {
                method: method.to_owned(),
                path,
                // The same parameters, possibly spelled with lower-case escapes in transit.
                query: encode_query(&params, lower_hex),
                headers,
                body,
                presigned: false,
                token,
            },
            now,
            skew,
        )
    }
}

prop_compose! {
    fn presigned()(
        host in host(),
        path in path(),
        params in params(),
        lower_hex in any::<bool>(),
        token in prop::option::of("[A-Za-z0-9+/=]{1,40}"),
        expires in 1i64..=604_800,
        now in 0i64..4_102_444_800,
        offset in 0f64..=1.0,
    ) -> (Received, i64, i64) {
        let creds = credentials(token.as_ref());
        let signing = SigningParams {
            credentials: &creds,
            region: "eu-west-1",
            service: "kinesisvideo",
            now_unix: now,
        };
        let borrowed: Vec<(&str, &str)> =
            params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let url = presign_url(
            &signing,
            &PresignRequest {
                method: "GET",
                endpoint: &format!("wss://{host}{path}"),
                params: &borrowed,
                expires_secs: expires,
            },
        );
        let rest = url.strip_prefix("wss://").unwrap();
        let (_, query) = rest.split_once('?').unwrap();
        let query = if lower_hex { lower_escapes(query) } else { query.to_owned() };
        // Somewhere in [now - 900, now + expires].
        let delay = -900 + ((expires + 900) as f64 * offset) as i64;
        (
            Received {
                method: "GET".into(),
                path: if path.is_empty() { "/".into() } else { path },
                query,
                headers: vec![("host".into(), host), ("upgrade".into(), "websocket".into())],
                body: Vec::new(),
                presigned: true,
                token,
            },
            now,
            delay,
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn header_signed_round_trip((r, now, skew) in header_signed()) {
        let verified = r.verify(now + skew);
        prop_assert!(verified.is_ok(), "{:?}: {:?}", r, verified.map_err(|e| e.to_string()));
    }

    #[test]
    fn header_signed_any_changed_byte_fails(
        (r, now, _) in header_signed(),
        pick in any::<prop::sample::Index>(),
    ) {
        let sites = r.sites();
        let site = sites[pick.index(sites.len())];
        let changed = r.mutate(site);
        prop_assert!(changed.verify(now).is_err(), "{:?} changed at {:?}: {:?}", r, site, changed);
    }

    #[test]
    fn presigned_round_trip((r, now, delay) in presigned()) {
        let verified = r.verify(now + delay);
        prop_assert!(verified.is_ok(), "{:?}: {:?}", r, verified.map_err(|e| e.to_string()));
    }

    #[test]
    fn presigned_any_changed_byte_fails(
        (r, now, _) in presigned(),
        pick in any::<prop::sample::Index>(),
    ) {
        let sites = r.sites();
        let site = sites[pick.index(sites.len())];
        let changed = r.mutate(site);
        prop_assert!(changed.verify(now).is_err(), "{:?} changed at {:?}: {:?}", r, site, changed);
    }

    /// Arbitrary input never panics the verifier.
    #[test]
    fn verify_never_panics(
        method in "\\PC{0,8}",
        path in "\\PC{0,24}",
        query in "\\PC{0,64}",
        headers in prop::collection::vec(
            (prop::sample::select(vec!["authorization", "x-amz-date", "date", "host",
                "x-amz-security-token", "x-amz-content-sha256"]), "\\PC{0,80}"),
            0..6),
        now in any::<i64>(),
    ) {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let req = Request { method: &method, path: &path, query: &query, headers: &h };
        let lookup = |_: &str, _: Option<&str>| Ok(SecretKey::new("s"));
        let _ = verify(&req, PayloadHash::Body(b""), now, &VerifyConfig::default(), &lookup);
    }
}
