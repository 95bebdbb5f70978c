//! Who may call: SigV4 verification of every request (`kvs-api.md` §14) against root keys and
//! temporary credentials minted by this server.
//!
//! Temporary credentials are stateless: the session token carries its claims (role, expiry,
//! nonce) and an HMAC under the server's token key; the access key id and secret are derived from
//! the claims with the same key. Any node holding the key can verify them, nothing is stored,
//! and rotating the key revokes them all.

use std::cell::RefCell;
use std::collections::HashMap;

use axum::http::request::Parts;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use kvs_core::ErrorKind;
use rand::Rng as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, ApiResult};

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Read-only: Describe*, List*, Get* and playback; no create, update, delete, ingest or export.
    Viewer,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// Its role.
    pub role: Role,
}

/// Temporary credentials, in the JSON shape of the AWS credential process / STS.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TempCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The derived secret.
    pub secret_access_key: String,
    /// Carries the claims; must be sent as `x-amz-security-token` / `X-Amz-Security-Token`.
    pub session_token: String,
    /// Expiry, RFC 3339.
    pub expiration: String,
    /// Expiry, epoch seconds.
    #[serde(skip)]
    pub expires_unix: i64,
}

#[derive(Debug, Clone)]
struct RootKey {
    secret: String,
    role: Role,
}

/// Verifies requests. Build once at start-up.
pub struct Authenticator {
    keys: HashMap<String, RootKey>,
    token_key: Vec<u8>,
    cfg: sigv4::VerifyConfig,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Authenticator")
            .field("access_key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
        m.update(b"\0");
    }
    m.finalize().into_bytes().to_vec()
}

const TOKEN_PREFIX: &str = "okvs1.";

impl Authenticator {
    /// `token_key` signs temporary credentials (32 random bytes from the data dir).
    pub fn new(token_key: Vec<u8>) -> Self {
        Self {
            keys: HashMap::new(),
            token_key,
            cfg: sigv4::VerifyConfig {
                service: "kinesisvideo".into(),
                max_skew_secs: 15 * 60,
                max_presign_expires_secs: 7 * 24 * 3600,
                allowed_regions: None,
            },
        }
    }

    /// The server's HMAC key (also signs playback session tokens).
    pub(crate) fn token_key(&self) -> &[u8] {
        &self.token_key
    }

    /// Adds a long-lived key pair.
    pub fn add_key(
        &mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<String>,
        role: Role,
    ) {
        self.keys.insert(
            access_key_id.into(),
            RootKey {
                secret: secret.into(),
                role,
            },
        );
    }

    /// The secret and role of a long-lived key.
    pub(crate) fn root_secret(&self, access_key_id: &str) -> Option<(&str, Role)> {
        self.keys
            .get(access_key_id)
            .map(|k| (k.secret.as_str(), k.role))
    }

    /// Mints temporary credentials valid for `ttl_secs` from `now_unix`.
    pub fn mint(&self, role: Role, ttl_secs: i64, now_unix: i64) -> TempCredentials {
        let expires = now_unix + ttl_secs;
        let nonce: [u8; 12] = rand::rng().random();
        let claims = format!("{}.{expires}.{}", role.as_str(), hex::encode(nonce));
        let sig = mac(&self.token_key, &[b"token", claims.as_bytes()]);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!("{TOKEN_PREFIX}{}.{}", b64.encode(&claims), b64.encode(&sig));
        let (akid, secret) = self.derive(&claims);
        let expiration = time::OffsetDateTime::from_unix_timestamp(expires)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        TempCredentials {
            access_key_id: akid,
            secret_access_key: secret,
            session_token: token,
            expiration,
            expires_unix: expires,
        }
    }

    pub(crate) fn derive(&self, claims: &str) -> (String, String) {
        const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let a = mac(&self.token_key, &[b"akid", claims.as_bytes()]);
        let akid = format!(
            "ASIA{}",
            a.iter()
                .take(16)
                .map(|b| B32[usize::from(b % 32)] as char)
                .collect::<String>()
        );
        let s = mac(&self.token_key, &[b"secret", claims.as_bytes()]);
        let secret = base64::engine::general_purpose::STANDARD.encode(&s)[..40].to_owned();
        (akid, secret)
    }

    /// Checks a session token: `Ok((role, expiry))` if this server minted it.
    pub(crate) fn open_token(&self, token: &str) -> Option<(String, Role, i64)> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let (c, s) = rest.split_once('.')?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(b64.decode(c).ok()?).ok()?;
        let sig = b64.decode(s).ok()?;
        let want = mac(&self.token_key, &[b"token", claims.as_bytes()]);
        if !bool::from(want.ct_eq(&sig)) {
            return None;
        }
        let mut it = claims.split('.');
        let role = Role::parse(it.next()?)?;
        let expires: i64 = it.next()?.parse().ok()?;
        Some((claims, role, expires))
    }

    /// Verifies a request (header-signed or presigned) and returns its principal.
    pub fn authenticate(
        &self,
        parts: &Parts,
        payload: sigv4::PayloadHash<'_>,
        now_unix: i64,
    ) -> ApiResult<Principal> {
        let headers: Vec<(String, &str)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_ascii_lowercase(), v))
            })
            .collect();
        let header_refs: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let req = sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &header_refs,
        };
        let lookup = Lookup {
            auth: self,
            now_unix,
            failure: RefCell::new(None),
            role: RefCell::new(None),
        };
        match sigv4::verify(&req, payload, now_unix, &self.cfg, &lookup) {
            Ok(v) => {
                let role = lookup
                    .role
                    .borrow()
                    .expect("lookup succeeded, so it set the role");
                Ok(Principal {
                    access_key_id: v.access_key_id,
                    role,
                })
            }
            Err(e) => Err(lookup.failure.take().unwrap_or_else(|| auth_error(&e))),
        }
    }
}

/// Maps a SigV4 failure to the AWS error clients expect.
pub fn auth_error(e: &sigv4::AuthError) -> ApiError {
    let kind = match e.code() {
        "MissingAuthenticationTokenException" => ErrorKind::MissingAuthentication,
        "IncompleteSignatureException" => ErrorKind::IncompleteSignature,
        "UnrecognizedClientException" => ErrorKind::UnrecognizedClient,
        "ExpiredTokenException" => ErrorKind::ExpiredToken,
        _ => ErrorKind::InvalidSignature,
    };
    ApiError::new(kind, e.to_string())
}

struct Lookup<'a> {
    auth: &'a Authenticator,
    now_unix: i64,
    /// A more precise error than the lookup's return type can say (an expired token).
    failure: RefCell<Option<ApiError>>,
    role: RefCell<Option<Role>>,
}

impl sigv4::CredentialLookup for Lookup<'_> {
    fn secret_for(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<sigv4::SecretKey, sigv4::AuthError> {
        let unrecognized = |msg: &str| {
            *self.failure.borrow_mut() = Some(ApiError::new(ErrorKind::UnrecognizedClient, msg));
            Err(sigv4::AuthError::UnknownAccessKey {
                access_key_id: access_key_id.to_owned(),
            })
        };
        match session_token {
            None => match self.auth.keys.get(access_key_id) {
                Some(k) => {
                    *self.role.borrow_mut() = Some(k.role);
                    Ok(sigv4::SecretKey::new(k.secret.clone()))
                }
                None if access_key_id.starts_with("ASIA") => unrecognized(
                    "Temporary credentials need their session token (X-Amz-Security-Token).",
                ),
                None => Err(sigv4::AuthError::UnknownAccessKey {
                    access_key_id: access_key_id.to_owned(),
                }),
            },
            Some(token) => {
                let Some((claims, role, expires)) = self.auth.open_token(token) else {
                    return unrecognized("The security token included in the request is invalid.");
                };
                let (akid, secret) = self.auth.derive(&claims);
                if akid != access_key_id {
                    return unrecognized(
                        "The security token included in the request does not belong to this access key id.",
                    );
                }
                if expires <= self.now_unix {
                    *self.failure.borrow_mut() = Some(ApiError::new(
                        ErrorKind::ExpiredToken,
                        "The security token included in the request is expired; mint new credentials.",
                    ));
                    return Err(sigv4::AuthError::InvalidSessionToken {
                        access_key_id: access_key_id.to_owned(),
                    });
                }
                *self.role.borrow_mut() = Some(role);
                Ok(sigv4::SecretKey::new(secret))
            }
        }
    }
}
