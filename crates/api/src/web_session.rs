//! Browser sessions for the viewer page (`web/`): sign in once with an access key and secret
//! (root or minted temporary credentials), then call the same JSON operations with an
//! `HttpOnly; SameSite=Strict` session cookie instead of SigV4, so the page never keeps a secret.
//!
//! Scheme (README "Viewer page: sign-in"):
//! - `POST /web/v1/login` with `{"AccessKeyId", "SecretAccessKey", "SessionToken"?}` checks the
//!   pair like SigV4 would (same keys, same temporary-credential rules) and sets the cookie
//!   `okvs_session=v1.<claims>.<hmac>`. The claims are role, expiry, the access key id and a
//!   nonce, signed with the server key (like temporary credentials: stateless; a session ends at
//!   `min(12 h, credential expiry)`, and rotating `server-key.hex` ends all of them).
//! - The answer (and `GET /web/v1/session`) carries a CSRF token, an HMAC of the cookie value.
//!   Cookie-authenticated requests other than GET/HEAD must send it in `x-okvs-csrf`
//!   (a signed double-submit token: another site can neither read it nor derive it), and a
//!   present `Origin` must be this server's.
//! - SigV4 wins: a request with an `Authorization` header or presigned `X-Amz-Signature` is
//!   verified by SigV4 alone and its cookie is ignored, so SigV4 clients are unaffected.
//! - The signaling WebSocket accepts the cookie for viewers (with `X-Amz-ClientId`) when the
//!   upgrade's `Origin` is this server (browsers always send it on WebSocket upgrades).
//! - PutMedia never accepts the cookie.

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kvs_core::ErrorKind;
use rand::Rng as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::auth::{Authenticator, Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_ms};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "okvs_session";
/// Header that carries the CSRF token on cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-okvs-csrf";
/// Longest session, whatever the credentials: a browser left open overnight signs in again.
pub const SESSION_MAX_SECS: i64 = 12 * 3600;

const COOKIE_PREFIX: &str = "v1.";

/// An open browser session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in.
    pub principal: Principal,
    /// End of the session, epoch seconds.
    pub expires_unix: i64,
    /// The token cookie-authenticated writes must echo in [`CSRF_HEADER`].
    pub csrf_token: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Authenticator {
    /// Checks a key pair typed into the sign-in form, by the rules SigV4 applies to the same
    /// pair: a long-lived key, or temporary credentials with their session token (not expired).
    /// Returns the principal and, for temporary credentials, their expiry.
    pub fn check_login(
        &self,
        access_key_id: &str,
        secret: &str,
        session_token: Option<&str>,
        now_unix: i64,
    ) -> ApiResult<(Principal, Option<i64>)> {
        let bad = || {
            ApiError::new(
                ErrorKind::UnrecognizedClient,
                "The access key id, secret or session token is not valid.",
            )
        };
        let (want_secret, role, expires) = match session_token.filter(|t| !t.is_empty()) {
            None => {
                let (s, role) = self.root_secret(access_key_id).ok_or_else(bad)?;
                (s.to_owned(), role, None)
            }
            Some(token) => {
                let (claims, role, expires) = self.open_token(token).ok_or_else(bad)?;
                let (akid, secret) = self.derive(&claims);
                if akid != access_key_id {
                    return Err(bad());
                }
                if expires <= now_unix {
                    return Err(ApiError::new(
                        ErrorKind::ExpiredToken,
                        "These temporary credentials have expired; mint new ones.",
                    ));
                }
                (secret, role, Some(expires))
            }
        };
        if !bool::from(want_secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(bad());
        }
        Ok((
            Principal {
                access_key_id: access_key_id.to_owned(),
                role,
            },
            expires,
        ))
    }

    /// A session cookie value for `p`, valid until `expires_unix`.
    pub fn issue_session(&self, p: &Principal, expires_unix: i64) -> String {
        let nonce: [u8; 12] = rand::rng().random();
        let claims = format!(
            "{}\n{expires_unix}\n{}\n{}",
            p.role.as_str(),
            hex::encode(nonce),
            p.access_key_id
        );
        let sig = crate::auth::mac(self.token_key(), &[b"web-session", claims.as_bytes()]);
        format!(
            "{COOKIE_PREFIX}{}.{}",
            b64().encode(claims.as_bytes()),
            b64().encode(sig)
        )
    }

    /// The CSRF token bound to a cookie value.
    fn csrf_for(&self, cookie: &str) -> String {
        b64().encode(crate::auth::mac(
            self.token_key(),
            &[b"web-csrf", cookie.as_bytes()],
        ))
    }

    /// Opens a session cookie: checks its signature and expiry, and that a long-lived key it
    /// names still exists.
    pub fn open_session(&self, cookie: &str, now_unix: i64) -> ApiResult<Session> {
        let bad = || {
            ApiError::new(
                ErrorKind::UnrecognizedClient,
                "The session cookie is not valid; sign in again.",
            )
        };
        let rest = cookie.strip_prefix(COOKIE_PREFIX).ok_or_else(bad)?;
        let (c, s) = rest.split_once('.').ok_or_else(bad)?;
        let claims = b64()
            .decode(c)
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(bad)?;
        let sig = b64().decode(s).map_err(|_| bad())?;
        let want = crate::auth::mac(self.token_key(), &[b"web-session", claims.as_bytes()]);
        if !bool::from(want.ct_eq(&sig)) {
            return Err(bad());
        }
        let mut it = claims.splitn(4, '\n');
        let role = it.next().and_then(Role::parse).ok_or_else(bad)?;
        let expires: i64 = it.next().and_then(|e| e.parse().ok()).ok_or_else(bad)?;
        let _nonce = it.next().ok_or_else(bad)?;
        let akid = it.next().ok_or_else(bad)?.to_owned();
        if expires <= now_unix {
            return Err(ApiError::new(
                ErrorKind::ExpiredToken,
                "The browser session has expired; sign in again.",
            ));
        }
        // A session of a long-lived key ends when that key is removed from the configuration.
        if !akid.starts_with("ASIA") && self.root_secret(&akid).is_none() {
            return Err(bad());
        }
        Ok(Session {
            principal: Principal {
                access_key_id: akid,
                role,
            },
            expires_unix: expires,
            csrf_token: self.csrf_for(cookie),
        })
    }
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries SigV4 authentication (header or presigned query).
fn has_sigv4(parts: &Parts) -> bool {
    parts.headers.contains_key(header::AUTHORIZATION)
        || parts
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature=") || q.contains("X-Amz-Credential="))
}

/// Whether `Origin` names the host the request was sent to (scheme ignored: the listener has
/// one scheme). Absent `Origin` is `None`.
fn origin_matches(parts: &Parts) -> Option<bool> {
    let origin = parts.headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = crate::host_of(parts);
    let o = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    Some(!o.is_empty() && o.eq_ignore_ascii_case(&host))
}

/// How [`authenticate`] treats a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookiePolicy {
    /// JSON operations and clip resources: CSRF token on anything but GET/HEAD.
    Api,
    /// The signaling WebSocket upgrade: `Origin` must be present and match.
    WebSocket,
}

/// SigV4 if the request is signed; else the session cookie, if any; else SigV4's refusal.
pub(crate) fn authenticate(
    st: &AppState,
    parts: &Parts,
    payload: sigv4::PayloadHash<'_>,
    policy: CookiePolicy,
) -> ApiResult<Principal> {
    let now = now_ms() / 1000;
    if has_sigv4(parts) {
        return st.auth.authenticate(parts, payload, now);
    }
    let Some(value) = cookie(&parts.headers, SESSION_COOKIE) else {
        return st.auth.authenticate(parts, payload, now);
    };
    let session = st.auth.open_session(value, now)?;
    let refuse = |msg: &str| Err(ApiError::new(ErrorKind::MissingAuthentication, msg));
    match policy {
        CookiePolicy::Api => {
            if origin_matches(parts) == Some(false) {
                return refuse("cookie-authenticated requests must come from this server's page");
            }
            if parts.method != Method::GET && parts.method != Method::HEAD {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .map(HeaderValue::as_bytes)
                    .unwrap_or_default();
                if sent.is_empty() {
                    return refuse("cookie-authenticated requests need the x-okvs-csrf header");
                }
                if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
                    return refuse("the x-okvs-csrf header does not match the session");
                }
            }
        }
        CookiePolicy::WebSocket => {
            if origin_matches(parts) != Some(true) {
                return refuse(
                    "a cookie-authenticated WebSocket must come from this server's page (Origin)",
                );
            }
        }
    }
    Ok(session.principal)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LoginInput {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

fn set_cookie(st: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.config.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64url and ascii")
}

fn session_json(s: &Session) -> serde_json::Value {
    let expiration = time::OffsetDateTime::from_unix_timestamp(s.expires_unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({
        "AccessKeyId": s.principal.access_key_id,
        "Role": s.principal.role.as_str(),
        "Expiration": expiration,
        "CsrfToken": s.csrf_token,
    })
}

/// `POST /web/v1/login`, `GET /web/v1/session`, `POST /web/v1/logout`.
pub(crate) async fn handle(State(st): State<AppState>, req: Request) -> Response {
    handle_inner(&st, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle_inner(st: &AppState, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let now = now_ms() / 1000;
    match (parts.method.clone(), parts.uri.path()) {
        (Method::POST, "/web/v1/login") => {
            // A JSON content type makes a cross-site form post impossible without a CORS
            // preflight, which this server never grants (login CSRF).
            let json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if !json || origin_matches(&parts) == Some(false) {
                return Err(ApiError::new(
                    ErrorKind::MissingAuthentication,
                    "sign in from this server's page (JSON body, same origin)",
                ));
            }
            let bytes = axum::body::to_bytes(body, 16 << 10)
                .await
                .map_err(|_| ApiError::new(ErrorKind::PayloadTooLarge, "login body too large"))?;
            let i: LoginInput = crate::parse_input(&bytes)?;
            let akid = crate::validate::required(&i.access_key_id, "AccessKeyId")?;
            let secret = crate::validate::required(&i.secret_access_key, "SecretAccessKey")?;
            let (principal, cred_expiry) =
                st.auth
                    .check_login(akid, secret, i.session_token.as_deref(), now)?;
            let expires =
                cred_expiry.map_or(now + SESSION_MAX_SECS, |e| e.min(now + SESSION_MAX_SECS));
            let value = st.auth.issue_session(&principal, expires);
            let session = st.auth.open_session(&value, now)?;
            tracing::info!(access_key_id = %principal.access_key_id, role = principal.role.as_str(), "web sign-in");
            let mut r = axum::Json(session_json(&session)).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(st, &value, expires - now));
            no_store(r.headers_mut());
            Ok(r)
        }
        (Method::GET, "/web/v1/session") => {
            // Always 200: the page asks on every load, and a 4xx would be a console error.
            let opened = cookie(&parts.headers, SESSION_COOKIE)
                .map(|value| st.auth.open_session(value, now));
            let mut v = match opened {
                Some(Ok(session)) => {
                    let mut v = session_json(&session);
                    v["SignedIn"] = true.into();
                    v
                }
                Some(Err(e)) => {
                    serde_json::json!({ "SignedIn": false, "Reason": e.message() })
                }
                None => serde_json::json!({ "SignedIn": false }),
            };
            v["Region"] = st.config.region.clone().into();
            // Whether `npm ci --prefix web` has run, so the page can say why HLS cannot play.
            v["HlsJs"] = st
                .config
                .web_dir
                .as_ref()
                .is_some_and(|d| d.join("node_modules/hls.js/dist/hls.mjs").is_file())
                .into();
            let mut r = axum::Json(v).into_response();
            no_store(r.headers_mut());
            Ok(r)
        }
        (Method::POST, "/web/v1/logout") => {
            let mut r = axum::Json(serde_json::json!({})).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(st, "", 0));
            Ok(r)
        }
        (m, p) => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("{m} {p} is not a web session resource"),
        )),
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use tower::ServiceExt as _;

    use super::*;

    const AKID: &str = "AKIDWEBTEST";
    const SECRET: &str = "web-test-secret";

    fn auth() -> Authenticator {
        let mut a = Authenticator::new(vec![7; 32]);
        a.add_key(AKID, SECRET, Role::Admin);
        a
    }

    fn state(dir: &std::path::Path) -> AppState {
        let catalog = store::SqliteCatalog::open(dir).unwrap();
        let fragments = store::LocalFragmentStore::open(dir).unwrap();
        let cfg = crate::ApiConfig {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            public_url: None,
            tls: false,
            max_json_body_bytes: 1 << 20,
            turn: None,
            web_dir: None,
            clip_cap: crate::ClipCap::default(),
        };
        AppState::new(Arc::new(catalog), Arc::new(fragments), cfg, auth())
    }

    async fn send(app: &axum::Router, req: HttpRequest<Body>) -> (StatusCode, HeaderMap, String) {
        let r = app.clone().oneshot(req).await.unwrap();
        let (p, b) = r.into_parts();
        let b = axum::body::to_bytes(b, 1 << 20).await.unwrap();
        (
            p.status,
            p.headers,
            String::from_utf8_lossy(&b).into_owned(),
        )
    }

    fn login_req(body: &serde_json::Value) -> HttpRequest<Body> {
        HttpRequest::post("/web/v1/login")
            .header("host", "kvs.test")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    /// Signs in and returns (cookie value, csrf token).
    async fn login(
        app: &axum::Router,
        akid: &str,
        secret: &str,
        token: Option<&str>,
    ) -> (String, String) {
        let (status, headers, body) = send(
            app,
            login_req(&serde_json::json!({
                "AccessKeyId": akid, "SecretAccessKey": secret, "SessionToken": token,
            })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            !set.contains(secret) && !body.contains(secret),
            "secret leaked"
        );
        let value = set
            .strip_prefix("okvs_session=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (value, v["CsrfToken"].as_str().unwrap().to_owned())
    }

    fn op(path: &str, cookie: Option<&str>, csrf: Option<&str>, body: &str) -> HttpRequest<Body> {
        let mut b = HttpRequest::post(path)
            .header("host", "kvs.test")
            .header("content-type", "application/json");
        if let Some(c) = cookie {
            b = b.header("cookie", format!("theme=dark; {SESSION_COOKIE}={c}"));
        }
        if let Some(t) = csrf {
            b = b.header(CSRF_HEADER, t);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    }

    fn error_type(headers: &HeaderMap) -> &str {
        headers
            .get("x-amzn-ErrorType")
            .map_or("", |v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn cookie_and_csrf_table() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let app = crate::app(st.clone());
        let (cookie, csrf) = login(&app, AKID, SECRET, None).await;
        let now = now_ms() / 1000;
        let admin = Principal {
            access_key_id: AKID.into(),
            role: Role::Admin,
        };
        let expired = st.auth.issue_session(&admin, now - 1);
        let expired_csrf = st.auth.csrf_for(&expired);
        // Flip one character of the claims: the signature no longer matches.
        let mut tampered = cookie.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        // Same claims re-signed with another key (another server).
        let foreign = {
            let mut other = Authenticator::new(vec![9; 32]);
            other.add_key(AKID, SECRET, Role::Admin);
            other.issue_session(&admin, now + 60)
        };
        struct Case<'a> {
            what: &'a str,
            cookie: Option<&'a str>,
            csrf: Option<&'a str>,
            want: StatusCode,
            want_type: &'a str,
        }
        let cases = [
            Case {
                what: "cookie + csrf",
                cookie: Some(&cookie),
                csrf: Some(&csrf),
                want: StatusCode::OK,
                want_type: "",
            },
            Case {
                what: "no csrf",
                cookie: Some(&cookie),
                csrf: None,
                want: StatusCode::FORBIDDEN,
                want_type: "MissingAuthenticationTokenException",
            },
            Case {
                what: "wrong csrf",
                cookie: Some(&cookie),
                csrf: Some(&expired_csrf),
                want: StatusCode::FORBIDDEN,
                want_type: "MissingAuthenticationTokenException",
            },
            Case {
                what: "tampered cookie",
                cookie: Some(&tampered),
                csrf: Some(&csrf),
                want: StatusCode::FORBIDDEN,
                want_type: "UnrecognizedClientException",
            },
            Case {
                what: "foreign cookie",
                cookie: Some(&foreign),
                csrf: Some(&csrf),
                want: StatusCode::FORBIDDEN,
                want_type: "UnrecognizedClientException",
            },
            Case {
                what: "expired session",
                cookie: Some(&expired),
                csrf: Some(&expired_csrf),
                want: StatusCode::FORBIDDEN,
                want_type: "ExpiredTokenException",
            },
            Case {
                what: "nothing",
                cookie: None,
                csrf: None,
                want: StatusCode::FORBIDDEN,
                want_type: "MissingAuthenticationTokenException",
            },
        ];
        for c in &cases {
            let (status, headers, body) =
                send(&app, op("/listStreams", c.cookie, c.csrf, "{}")).await;
            assert_eq!(status, c.want, "{}: {body}", c.what);
            assert_eq!(error_type(&headers), c.want_type, "{}: {body}", c.what);
        }
        // A foreign Origin is refused even with the right token.
        let mut r = op("/listStreams", Some(&cookie), Some(&csrf), "{}");
        r.headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        let (status, _, _) = send(&app, r).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // The same origin passes.
        let mut r = op("/listStreams", Some(&cookie), Some(&csrf), "{}");
        r.headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_static("http://kvs.test"));
        let (status, _, body) = send(&app, r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // A SigV4 Authorization header wins over the cookie: a garbage signature fails even
        // with a valid cookie + CSRF token.
        let mut r = op("/listStreams", Some(&cookie), Some(&csrf), "{}");
        r.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDWEBTEST/20260101/us-east-1/kinesisvideo/aws4_request, SignedHeaders=host, Signature=00"),
        );
        let (status, _, _) = send(&app, r).await;
        assert_ne!(
            status,
            StatusCode::OK,
            "a bad SigV4 signature must not fall back to the cookie"
        );
    }

    #[tokio::test]
    async fn login_refusals_and_session_resource() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let app = crate::app(st.clone());
        let now = now_ms() / 1000;
        // Wrong secret, unknown key, form-encoded body.
        for body in [
            serde_json::json!({"AccessKeyId": AKID, "SecretAccessKey": "nope"}),
            serde_json::json!({"AccessKeyId": "AKIDNOPE", "SecretAccessKey": SECRET}),
        ] {
            let (status, headers, _) = send(&app, login_req(&body)).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(error_type(&headers), "UnrecognizedClientException");
            assert!(headers.get(header::SET_COOKIE).is_none());
        }
        let form = HttpRequest::post("/web/v1/login")
            .header("host", "kvs.test")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "AccessKeyId={AKID}&SecretAccessKey={SECRET}"
            )))
            .unwrap();
        assert_eq!(send(&app, form).await.0, StatusCode::FORBIDDEN);
        // Expired temporary credentials cannot sign in.
        let old = st.auth.mint(Role::Viewer, 60, now - 120);
        let (status, headers, _) = send(
            &app,
            login_req(&serde_json::json!({
                "AccessKeyId": old.access_key_id, "SecretAccessKey": old.secret_access_key,
                "SessionToken": old.session_token,
            })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_type(&headers), "ExpiredTokenException");
        // GET /web/v1/session gives the CSRF token back to the page after a reload.
        let (cookie, csrf) = login(&app, AKID, SECRET, None).await;
        let r = HttpRequest::get("/web/v1/session")
            .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&app, r).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["CsrfToken"], csrf.as_str());
        assert_eq!(v["Role"], "admin");
        assert_eq!(v["SignedIn"], true);
        // Without a cookie, or with an expired one: signed out (200, so no console error).
        let admin = Principal {
            access_key_id: AKID.into(),
            role: Role::Admin,
        };
        let expired = st.auth.issue_session(&admin, now - 5);
        for c in [None, Some(expired.as_str()), Some("v1.garbage.x")] {
            let mut b = HttpRequest::get("/web/v1/session");
            if let Some(c) = c {
                b = b.header("cookie", format!("{SESSION_COOKIE}={c}"));
            }
            let (status, _, body) = send(&app, b.body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["SignedIn"], false, "{c:?}");
            assert!(v.get("CsrfToken").is_none());
        }
    }

    #[tokio::test]
    async fn viewer_session_is_read_only_and_cannot_export() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let app = crate::app(st.clone());
        let now = now_ms() / 1000;
        let creds = st.auth.mint(Role::Viewer, 600, now);
        let (cookie, csrf) = login(
            &app,
            &creds.access_key_id,
            &creds.secret_access_key,
            Some(&creds.session_token),
        )
        .await;
        // The session ends with the credentials, not 12 h later.
        let s = st.auth.open_session(&cookie, now).unwrap();
        assert!(s.expires_unix <= creds.expires_unix);
        assert_eq!(s.principal.role, Role::Viewer);
        let (status, _, body) =
            send(&app, op("/listStreams", Some(&cookie), Some(&csrf), "{}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, headers, _) = send(
            &app,
            op(
                "/createStream",
                Some(&cookie),
                Some(&csrf),
                r#"{"StreamName":"x"}"#,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_type(&headers), "NotAuthorizedException");
        let clip = r#"{"StreamName":"x","ClipFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":2}}}"#;
        let (status, headers, _) =
            send(&app, op("/getClip", Some(&cookie), Some(&csrf), clip)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_type(&headers), "NotAuthorizedException");
        let r =
            HttpRequest::get("/clip/v1/getClip.mp4?StreamName=x&StartTimestamp=1&EndTimestamp=2")
                .header("host", "kvs.test")
                .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
                .body(Body::empty())
                .unwrap();
        let (status, headers, _) = send(&app, r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_type(&headers), "NotAuthorizedException");
    }

    #[test]
    fn removed_root_key_ends_its_sessions() {
        let a = auth();
        let p = Principal {
            access_key_id: AKID.into(),
            role: Role::Admin,
        };
        let v = a.issue_session(&p, 2_000_000_000);
        assert!(a.open_session(&v, 1_000).is_ok());
        let mut other = Authenticator::new(vec![7; 32]);
        other.add_key("AKIDOTHER", "s", Role::Admin);
        assert_eq!(
            other.open_session(&v, 1_000).unwrap_err().kind(),
            ErrorKind::UnrecognizedClient
        );
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; okvs_session=v1.x.y"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("v1.x.y"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "okvs"), None);
    }
}
