//! Session tokens for HLS/DASH playback URLs and presigned clip URLs: the claims (stream, mode,
//! selector, range, options, expiry) in base64url JSON, and an HMAC-SHA256 under the server's
//! token key. Stateless: any node with the key can serve a session; tampering breaks the MAC;
//! expiry is in the claims.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use kvs_core::ErrorKind;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, ApiResult};

/// What a playback session may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// `hls`, `dash` or `clip`.
    pub kind: String,
    /// Stream ARN (binds the token to one incarnation of the stream).
    pub arn: String,
    /// `LIVE`, `LIVE_REPLAY`, `ON_DEMAND` (clip: `ON_DEMAND`).
    pub mode: String,
    /// `SERVER_TIMESTAMP` or `PRODUCER_TIMESTAMP`.
    pub selector: String,
    /// Range start, epoch ms.
    pub start_ms: Option<i64>,
    /// Range end, epoch ms.
    pub end_ms: Option<i64>,
    /// `FRAGMENTED_MP4` or `MPEG_TS`.
    pub container: String,
    /// `ALWAYS`, `NEVER`, `ON_DISCONTINUITY`.
    pub discontinuity: String,
    /// `#EXT-X-PROGRAM-DATE-TIME` / `kvs:ts`.
    pub display_timestamp: bool,
    /// `kvs:fn` (DASH).
    pub display_number: bool,
    /// Fragments per playlist/manifest.
    pub max_results: u32,
    /// When the session was created, epoch ms (LIVE_REPLAY paces from here).
    pub created_ms: i64,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

const PREFIX: &str = "okvs1~";

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"playback\0");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Signs claims into a URL-safe token.
pub(crate) fn seal(key: &[u8], c: &Claims) -> String {
    let json = serde_json::to_vec(c).expect("claims serialize");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{PREFIX}{}.{}",
        b64.encode(&json),
        b64.encode(mac(key, &json))
    )
}

/// Checks a token: 403 when tampered or foreign, 403 `ExpiredTokenException` when expired.
pub(crate) fn open(key: &[u8], token: &str, now_secs: i64) -> ApiResult<Claims> {
    let bad = || {
        ApiError::new(
            ErrorKind::InvalidSignature,
            "The SessionToken is not valid for this server; request a new streaming session URL",
        )
    };
    let rest = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (c, s) = rest.split_once('.').ok_or_else(bad)?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = b64.decode(c).map_err(|_| bad())?;
    let sig = b64.decode(s).map_err(|_| bad())?;
    if !bool::from(mac(key, &json).ct_eq(&sig)) {
        return Err(bad());
    }
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| bad())?;
    if claims.exp <= now_secs {
        return Err(ApiError::new(
            ErrorKind::ExpiredToken,
            "The streaming session has expired; request a new streaming session URL",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            kind: "hls".into(),
            arn: "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1".into(),
            mode: "LIVE".into(),
            selector: "SERVER_TIMESTAMP".into(),
            start_ms: None,
            end_ms: None,
            container: "FRAGMENTED_MP4".into(),
            discontinuity: "ALWAYS".into(),
            display_timestamp: false,
            display_number: false,
            max_results: 5,
            created_ms: 0,
            exp: 1000,
        }
    }

    #[test]
    fn round_trip_tamper_expiry() {
        let key = b"k".repeat(32);
        let t = seal(&key, &claims());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_~.".contains(&b)),
            "URL-safe: {t}"
        );
        assert_eq!(open(&key, &t, 999).unwrap(), claims());
        assert_eq!(
            open(&key, &t, 1000).unwrap_err().kind(),
            ErrorKind::ExpiredToken
        );
        assert_eq!(
            open(b"other", &t, 0).unwrap_err().kind(),
            ErrorKind::InvalidSignature
        );
        // Flip one character of the claims.
        let mut bytes = t.clone().into_bytes();
        bytes[PREFIX.len() + 3] ^= 1;
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            open(&key, &tampered, 0).unwrap_err().kind(),
            ErrorKind::InvalidSignature
        );
        assert!(open(&key, "garbage", 0).is_err());
    }
}
