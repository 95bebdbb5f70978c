//! The canonical request, string to sign and signing key of SigV4 (`kvs-api.md` §14.1 step 3-5).
//!
//! Shared by the verifier and the signers so that both always agree.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha2::{Digest, Sha256};

use crate::ALGORITHM;

/// Everything except the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~` is encoded.
pub(crate) const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Path encoding: as [`RFC3986`] but `/` stays (botocore `quote(path, safe='/~')`).
const PATH: &AsciiSet = &RFC3986.remove(b'/');

/// Canonical URI for non-S3 services (botocore `SigV4Auth._normalize_url_path`): remove
/// dot-segments and empty segments from the path as received, then percent-encode it once more,
/// so an already-encoded `%2F` becomes `%252F`. An empty path is `/`.
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in raw_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(raw_path.len() + 1);
    if raw_path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if raw_path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    if out.is_empty() {
        // botocore: a relative path of only dot-segments normalises to "", which its `quote`
        // leaves empty; every HTTP request path starts with `/`, so this is only for safety.
        return "/".to_owned();
    }
    percent_encode(out.as_bytes(), PATH).to_string()
}

/// Splits a raw query string into percent-decoded `(name, value)` byte pairs. A parameter
/// without `=` has an empty value; empty pieces (`a=1&&b=2`) are skipped. `+` is kept as `+`:
/// SigV4 signers encode a space as `%20`, never as `+`.
pub(crate) fn decode_query(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(name).collect(),
                percent_decode_str(value).collect(),
            )
        })
        .collect()
}

/// Canonical query: each parameter percent-decoded, re-encoded with [`RFC3986`] (upper-case hex),
/// sorted by encoded name then encoded value, joined as `name=value` with `&`. Parameters named
/// `exclude` (after decoding) are left out: `X-Amz-Signature` for presigned requests.
pub(crate) fn canonical_query(pairs: &[(Vec<u8>, Vec<u8>)], exclude: Option<&str>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|(name, _)| exclude.is_none_or(|ex| name.as_slice() != ex.as_bytes()))
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The query as the client spelled it: parameters sorted by their raw (still encoded) name then
/// value, nothing re-encoded. This is botocore's `_canonical_query_string_url` for a URL that
/// already carries a query, and what the JS signaling presigner signs (`encodeURIComponent`
/// leaves `!'()*` unencoded, §14.2). The verifier tries it when it differs from
/// [`canonical_query`]: the signature still covers exactly the bytes that were received.
pub(crate) fn canonical_query_as_received(raw_query: &str, exclude: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(name, _)| exclude.is_none_or(|ex| percent_decode_str(name).ne(ex.bytes())))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw_query.len());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// RFC 3986 percent-encoding with upper-case hex, as SigV4 requires.
pub(crate) fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, RFC3986).to_string()
}

/// All values of header `name` (case-insensitive), in the order received.
pub(crate) fn header_values<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &str,
) -> impl Iterator<Item = &'a str> + 'a {
    let name = name.to_owned();
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| *v)
}

/// The canonical value of header `name`: each value trimmed with inner whitespace runs collapsed
/// to one space (botocore `' '.join(value.split())`), all values joined with `,`. `None` if the
/// header is absent.
pub(crate) fn canonical_header_value(headers: &[(&str, &str)], name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for value in header_values(headers, name) {
        match &mut out {
            None => {
                let mut s = String::with_capacity(value.len());
                push_trimmed(&mut s, value);
                out = Some(s);
            }
            Some(s) => {
                s.push(',');
                push_trimmed(s, value);
            }
        }
    }
    out
}

fn push_trimmed(out: &mut String, value: &str) {
    for (i, word) in value.split_ascii_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The canonical request, §14.1 step 3. `canonical_headers` is the `name:value\n` block.
pub(crate) fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    [
        method,
        canonical_uri,
        canonical_query,
        canonical_headers,
        signed_headers,
        payload_hash,
    ]
    .join("\n")
}

/// StringToSign, §14.1 step 4. `scope` is `<yyyymmdd>/<region>/<service>/aws4_request`.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// kSigning, §14.1 step 5.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The lower-case hex signature of `string_to_sign`.
pub(crate) fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(key, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_table() {
        // (path as received, canonical URI); right-hand sides are what botocore 1.44.5's
        // `SigV4Auth._normalize_url_path` returns for the left-hand side.
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("/listStreams", "/listStreams"),
            ("/v1/get-ice-server-config", "/v1/get-ice-server-config"),
            ("/a%20b", "/a%2520b"),
            ("/a b", "/a%20b"),
            ("/a/./b/../c", "/a/c"),
            ("//a///b//", "/a/b/"),
            ("/..", "/"),
            ("/a/..", "/"),
            ("/~user/x:y", "/~user/x%3Ay"),
            ("/\u{1234}", "/%E1%88%B4"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_uri(input), want, "{input:?}");
        }
    }

    #[test]
    fn canonical_query_table() {
        let cases = [
            ("", None, ""),
            ("b=2&a=1", None, "a=1&b=2"),
            ("a=2&a=1", None, "a=1&a=2"),
            ("A=0&a=1", None, "A=0&a=1"),
            ("flag", None, "flag="),
            ("a=1&&b=2", None, "a=1&b=2"),
            // decode then re-encode: different spellings of one value agree.
            ("x=a%2fb", None, "x=a%2Fb"),
            ("x=a/b", None, "x=a%2Fb"),
            ("x=%7e%41", None, "x=~A"),
            ("x=(!)", None, "x=%28%21%29"),
            ("x=a+b", None, "x=a%2Bb"),
            ("x=a%20b", None, "x=a%20b"),
            ("x=%zz", None, "x=%25zz"),
            (
                "X-Amz-Signature=ab&X-Amz-Date=1",
                Some("X-Amz-Signature"),
                "X-Amz-Date=1",
            ),
            // sorted by the *encoded* name: `%` (0x25) sorts before `A`.
            ("Ab=1&%41a=2&%2A=3", None, "%2A=3&Aa=2&Ab=1"),
        ];
        for (input, exclude, want) in cases {
            assert_eq!(
                canonical_query(&decode_query(input), exclude),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn canonical_query_as_received_table() {
        let cases = [
            ("", None, ""),
            ("b=2&a=1", None, "a=1&b=2"),
            ("a=x%2Fy&a=%41", None, "a=%41&a=x%2Fy"),
            ("x=(!)&flag", None, "flag=&x=(!)"),
            (
                "X-Amz-Signature=ab&X-Amz-Date=1",
                Some("X-Amz-Signature"),
                "X-Amz-Date=1",
            ),
            ("X-Amz-%53ignature=ab&b=1", Some("X-Amz-Signature"), "b=1"),
        ];
        for (input, exclude, want) in cases {
            assert_eq!(
                canonical_query_as_received(input, exclude),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn canonical_header_value_table() {
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Headers<'_>, Option<&str>)] = &[
            (&[], None),
            (&[("x", "")], Some("")),
            (&[("x", "  a  ")], Some("a")),
            (&[("x", "a   b \t c")], Some("a b c")),
            (&[("x", "a"), ("x", " b ")], Some("a,b")),
            (&[("x", "a"), ("y", "z"), ("X", "b")], Some("a,b")),
            (&[("x", ""), ("x", "b")], Some(",b")),
            (&[("y", "z")], None),
        ];
        for (headers, want) in cases {
            assert_eq!(
                canonical_header_value(headers, "x").as_deref(),
                *want,
                "{headers:?}"
            );
        }
    }

    /// AWS's published signing-key example (Signature Version 4 documentation, "Examples of how
    /// to derive a signing key"): secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, date
    /// `20120215`, region `us-east-1`, service `iam`.
    #[test]
    fn signing_key_matches_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
