//! GetIceServerConfig (`kvs-api.md` §5, §13.3) and the TURN REST credentials behind it.
//!
//! Credentials follow the "REST API for access to TURN services" scheme that coturn implements
//! with `use-auth-secret`, so the embedded TURN server and an external coturn configured with
//! the same `static-auth-secret` accept them alike:
//!
//! - username = `"<expiry, unix seconds>:<base64("v1:" + ChannelARN)>"` (the shape AWS hands out);
//! - password = `base64(HMAC-SHA1(secret, username))` (coturn's choice of HMAC; AWS's passwords
//!   are SHA-256 sized, but clients treat both as opaque strings).
//!
//! The STUN server is not part of the response: the KVS SDKs hard-code
//! `stun:stun.kinesisvideo.<region>.amazonaws.com:443`, so a self-hosted deployment configures
//! STUN on the client side (every TURN URI returned here also answers STUN binding requests).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use kvs_core::{ClientId, ErrorKind, ResourceKind};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;
use store::Selector;
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, ApiResult};
use crate::validate as v;
use crate::{AppState, RequestCtx};

/// `Ttl` of the returned credentials, seconds (the value AWS returns).
pub const DEFAULT_TTL_SECS: u32 = 300;

/// How GetIceServerConfig mints TURN credentials.
#[derive(Clone)]
pub struct TurnConfig {
    /// coturn's `static-auth-secret`.
    pub secret: Vec<u8>,
    /// `turn:host:port?transport=udp`, …, as handed to clients.
    pub uris: Vec<String>,
    /// Credential lifetime, seconds (30..=86400).
    pub ttl_secs: u32,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("TurnConfig")
            .field("uris", &self.uris)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// One TURN credential pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry>:<base64("v1:" + ChannelARN)>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// Expiry, unix seconds.
    pub expires_unix: i64,
}

/// Why a TURN username/password pair was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The username is not `<expiry>:<user>`.
    #[error("TURN username {username:?} is not <expiry unix seconds>:<user>")]
    Malformed {
        /// The username as received.
        username: String,
    },
    /// The expiry has passed.
    #[error("TURN credentials expired at {expires_unix} (now {now_unix})")]
    Expired {
        /// Expiry in the username.
        expires_unix: i64,
        /// Time of the check.
        now_unix: i64,
    },
    /// The password is not the HMAC of the username under the secret.
    #[error("TURN password does not match the username")]
    BadPassword,
}

type HmacSha1 = Hmac<Sha1>;

/// `base64(HMAC-SHA1(secret, username))`: the coturn `use-auth-secret` password.
pub fn turn_password(secret: &[u8], username: &str) -> String {
    let mut m = HmacSha1::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// The default TURN secret: hex of HMAC-SHA256(server key, a fixed label), so it survives
/// restarts without being stored and changes when the server key is rotated.
pub fn derive_secret(server_key: &[u8]) -> String {
    let mut m =
        Hmac::<sha2::Sha256>::new_from_slice(server_key).expect("HMAC takes any key length");
    m.update(b"openkvs turn rest secret v1");
    hex::encode(m.finalize().into_bytes())
}

/// Mints credentials for `channel_arn` valid for `ttl_secs` from `now_unix`.
pub fn mint(secret: &[u8], channel_arn: &str, ttl_secs: u32, now_unix: i64) -> TurnCredential {
    let expires_unix = now_unix + i64::from(ttl_secs);
    let user = base64::engine::general_purpose::STANDARD.encode(format!("v1:{channel_arn}"));
    let username = format!("{expires_unix}:{user}");
    let password = turn_password(secret, &username);
    TurnCredential {
        username,
        password,
        expires_unix,
    }
}

/// Checks the shape and expiry of a REST username; returns its expiry and, for usernames
/// minted by [`mint`], the channel ARN. The password check is the TURN server's job (it only
/// sees a message integrity keyed by the password) or [`verify`]'s.
pub fn check_username(
    username: &str,
    now_unix: i64,
) -> Result<(i64, Option<String>), CredentialError> {
    let malformed = || CredentialError::Malformed {
        username: username.to_owned(),
    };
    let (exp, user) = username.split_once(':').ok_or_else(malformed)?;
    if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) || user.is_empty() {
        return Err(malformed());
    }
    let expires_unix: i64 = exp.parse().map_err(|_| malformed())?;
    if expires_unix <= now_unix {
        return Err(CredentialError::Expired {
            expires_unix,
            now_unix,
        });
    }
    let arn = base64::engine::general_purpose::STANDARD
        .decode(user)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("v1:").map(str::to_owned));
    Ok((expires_unix, arn))
}

/// Verifies a username/password pair as coturn does with `use-auth-secret`; returns the
/// channel ARN for usernames minted by [`mint`].
pub fn verify(
    secret: &[u8],
    username: &str,
    password: &str,
    now_unix: i64,
) -> Result<Option<String>, CredentialError> {
    let (_, arn) = check_username(username, now_unix)?;
    let want = turn_password(secret, username);
    if !bool::from(want.as_bytes().ct_eq(password.as_bytes())) {
        return Err(CredentialError::BadPassword);
    }
    Ok(arn)
}

/// GetIceServerConfig input (`kvs-api.md` §5).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetIceServerConfigInput {
    #[serde(rename = "ChannelARN")]
    channel_arn: Option<String>,
    client_id: Option<String>,
    service: Option<String>,
    username: Option<String>,
}

pub(crate) async fn get_ice_server_config(
    st: AppState,
    ctx: RequestCtx,
    i: GetIceServerConfigInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.channel_arn, "ChannelARN")?;
    v::arn(
        arn,
        "ChannelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    if let Some(c) = &i.client_id {
        ClientId::parse(c).map_err(|e| ApiError::invalid(format!("ClientId: {e}")))?;
    }
    match i.service.as_deref() {
        None | Some("TURN") => {}
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "Service {s:?} is not one of TURN"
            )));
        }
    }
    if let Some(u) = &i.username
        && (u.is_empty() || u.len() > 256)
    {
        return Err(ApiError::invalid("Username must be 1 to 256 characters"));
    }
    let rec = st.catalog.channel(&Selector::Arn(arn.clone())).await?;
    let Some(turn) = &st.config.turn else {
        // No TURN configured (`--no-turn` without an external server): clients fall back to
        // STUN and host candidates.
        return Ok(json!({ "IceServerList": [] }));
    };
    let cred = mint(&turn.secret, &rec.arn, turn.ttl_secs, ctx.now_ms / 1000);
    Ok(json!({ "IceServerList": [{
        "Uris": turn.uris,
        "Username": cred.username,
        "Password": cred.password,
        "Ttl": turn.ttl_secs,
    }]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:channel/demo/1692843484394";

    #[test]
    fn username_shape() {
        let c = mint(b"secret", ARN, 300, 1_694_181_204);
        assert_eq!(c.expires_unix, 1_694_181_504);
        let (exp, user) = c.username.split_once(':').unwrap();
        assert_eq!(exp, "1694181504");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(user)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), format!("v1:{ARN}"));
        // base64 of a 20-byte SHA-1 HMAC, as coturn computes it.
        assert_eq!(c.password.len(), 28);
    }

    #[test]
    fn coturn_reference_password() {
        // coturn use-auth-secret: base64(hmac_sha1(secret, username)); RFC 2202 test case 2
        // (key "Jefe", data "what do ya want for nothing?") = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            turn_password(b"Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD
                .encode(hex::decode("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79").unwrap())
        );
    }

    #[test]
    fn verify_table() {
        let now = 1_700_000_000;
        let good = mint(b"secret", ARN, 300, now);
        let other = mint(
            b"secret",
            "arn:aws:kinesisvideo:us-east-1:123456789012:channel/other/1",
            300,
            now,
        );
        let expired = mint(b"secret", ARN, 300, now - 301);
        let tampered_expiry = good.username.replacen("1700000300", "1700009999", 1);
        let mut tampered_pw = good.password.clone().into_bytes();
        tampered_pw[0] = if tampered_pw[0] == b'A' { b'B' } else { b'A' };
        let tampered_pw = String::from_utf8(tampered_pw).unwrap();
        struct Case<'a> {
            name: &'a str,
            secret: &'a [u8],
            user: &'a str,
            pass: &'a str,
            now: i64,
            want: Result<Option<&'a str>, &'a str>,
        }
        let cases = [
            Case {
                name: "valid",
                secret: b"secret",
                user: &good.username,
                pass: &good.password,
                now,
                want: Ok(Some(ARN)),
            },
            Case {
                name: "valid until the last second",
                secret: b"secret",
                user: &good.username,
                pass: &good.password,
                now: now + 299,
                want: Ok(Some(ARN)),
            },
            Case {
                name: "expired at expiry",
                secret: b"secret",
                user: &good.username,
                pass: &good.password,
                now: now + 300,
                want: Err("expired"),
            },
            Case {
                name: "minted long ago",
                secret: b"secret",
                user: &expired.username,
                pass: &expired.password,
                now,
                want: Err("expired"),
            },
            Case {
                name: "tampered password",
                secret: b"secret",
                user: &good.username,
                pass: &tampered_pw,
                now,
                want: Err("password"),
            },
            Case {
                name: "extended expiry",
                secret: b"secret",
                user: &tampered_expiry,
                pass: &good.password,
                now,
                want: Err("password"),
            },
            Case {
                name: "other channel's password",
                secret: b"secret",
                user: &good.username,
                pass: &other.password,
                now,
                want: Err("password"),
            },
            Case {
                name: "wrong secret",
                secret: b"other",
                user: &good.username,
                pass: &good.password,
                now,
                want: Err("password"),
            },
            Case {
                name: "coturn-style plain user",
                secret: b"secret",
                user: "1700000300:alice",
                pass: &turn_password(b"secret", "1700000300:alice"),
                now,
                want: Ok(None),
            },
            Case {
                name: "no expiry",
                secret: b"secret",
                user: "alice",
                pass: "x",
                now,
                want: Err("not <expiry"),
            },
            Case {
                name: "negative expiry",
                secret: b"secret",
                user: "-5:alice",
                pass: "x",
                now,
                want: Err("not <expiry"),
            },
            Case {
                name: "empty user",
                secret: b"secret",
                user: "1700000300:",
                pass: "x",
                now,
                want: Err("not <expiry"),
            },
        ];
        for c in cases {
            let got = verify(c.secret, c.user, c.pass, c.now);
            match (&got, &c.want) {
                (Ok(a), Ok(b)) => assert_eq!(a.as_deref(), *b, "{}", c.name),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{}: {e}", c.name),
                _ => panic!("{}: got {got:?}, want {:?}", c.name, c.want),
            }
        }
    }
}
