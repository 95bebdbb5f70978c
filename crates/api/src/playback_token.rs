//! Session tokens for HLS/DASH playback URLs and presigned clip URLs: the claims (stream, mode,
//! selector, range, options, expiry) as a compact base64url JSON array, and an HMAC-SHA256
//! (truncated to 128 bits) under the server's token key. Stateless: any node with the key can
//! serve a session; tampering breaks the MAC; expiry is in the claims.
//!
//! Compact because the token is in every segment URL: a 5,000-fragment playlist repeats it
//! 5,000 times, and ffmpeg's DASH demuxer truncates segment URLs much longer than the
//! manifest's own.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use kvs_core::ErrorKind;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, ApiResult};

/// What a playback session may read.
#[derive(Debug, Clone, PartialEq)]
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

const PREFIX: &str = "okvs2~";
/// Bytes of the HMAC kept in the token.
const MAC_LEN: usize = 16;
const ARN_PREFIX: &str = "arn:aws:kinesisvideo:";

/// `(kind, arn without its constant prefix, mode, selector, start, end, container,
/// discontinuity, display timestamp, display number, max results, created, expiry)` with the
/// enumerations as one-letter codes.
type Wire = (
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    String,
    String,
    bool,
    bool,
    u32,
    i64,
    i64,
);

/// One-letter codes of the enumerated claims: (full value, code).
const CODES: &[(&str, &str)] = &[
    ("hls", "h"),
    ("dash", "d"),
    ("clip", "c"),
    ("LIVE", "L"),
    ("LIVE_REPLAY", "R"),
    ("ON_DEMAND", "O"),
    ("SERVER_TIMESTAMP", "S"),
    ("PRODUCER_TIMESTAMP", "P"),
    ("FRAGMENTED_MP4", "F"),
    ("MPEG_TS", "T"),
    ("ALWAYS", "A"),
    ("NEVER", "N"),
    ("ON_DISCONTINUITY", "D"),
];

fn encode_enum(v: &str) -> String {
    CODES
        .iter()
        .find(|(full, _)| *full == v)
        .map_or_else(|| format!("={v}"), |(_, code)| (*code).to_owned())
}

fn decode_enum(v: &str) -> String {
    match v.strip_prefix('=') {
        Some(raw) => raw.to_owned(),
        None => CODES
            .iter()
            .find(|(_, code)| *code == v)
            .map_or_else(String::new, |(full, _)| (*full).to_owned()),
    }
}

fn to_wire(c: &Claims) -> Wire {
    (
        encode_enum(&c.kind),
        c.arn
            .strip_prefix(ARN_PREFIX)
            .map_or_else(|| format!("={}", c.arn), str::to_owned),
        encode_enum(&c.mode),
        encode_enum(&c.selector),
        c.start_ms,
        c.end_ms,
        encode_enum(&c.container),
        encode_enum(&c.discontinuity),
        c.display_timestamp,
        c.display_number,
        c.max_results,
        c.created_ms,
        c.exp,
    )
}

fn from_wire(w: &Wire) -> Claims {
    Claims {
        kind: decode_enum(&w.0),
        arn: match w.1.strip_prefix('=') {
            Some(full) => full.to_owned(),
            None => format!("{ARN_PREFIX}{}", w.1),
        },
        mode: decode_enum(&w.2),
        selector: decode_enum(&w.3),
        start_ms: w.4,
        end_ms: w.5,
        container: decode_enum(&w.6),
        discontinuity: decode_enum(&w.7),
        display_timestamp: w.8,
        display_number: w.9,
        max_results: w.10,
        created_ms: w.11,
        exp: w.12,
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"playback\0");
    m.update(data);
    m.finalize().into_bytes()[..MAC_LEN].to_vec()
}

/// Signs claims into a URL-safe token.
pub(crate) fn seal(key: &[u8], c: &Claims) -> String {
    let json = serde_json::to_vec(&to_wire(c)).expect("claims serialize");
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
    let claims = from_wire(&serde_json::from_slice::<Wire>(&json).map_err(|_| bad())?);
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

    #[test]
    fn compact_and_lossless() {
        let key = b"k".repeat(32);
        let mut c = claims();
        c.arn = format!(
            "arn:aws:kinesisvideo:us-east-1:123456789012:stream/{}/1795317973945",
            "n".repeat(256)
        );
        c.start_ms = Some(1_795_317_974_580);
        c.end_ms = Some(1_795_317_980_080);
        let t = seal(&key, &c);
        assert!(t.len() < 560, "{} chars: {t}", t.len());
        assert_eq!(open(&key, &t, 0).unwrap(), c);
        // Values without a code and foreign ARNs still round-trip.
        c.mode = "SOMETHING_NEW".into();
        c.arn = "arn:aws-cn:kinesisvideo:cn-north-1:1:stream/x/1".into();
        assert_eq!(open(&key, &seal(&key, &c), 0).unwrap(), c);
        let short = seal(&key, &claims());
        assert!(short.len() < 160, "{} chars: {short}", short.len());
    }
}
