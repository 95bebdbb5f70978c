//! `openkvs presign put-media`: a presigned PutMedia URL for producers that cannot sign
//! requests or set headers (ffmpeg's `-method POST -chunked_post 1`, GStreamer's
//! `curlhttpsink`).
//!
//! The PutMedia parameters travel as query parameters named like the headers
//! (`x-amzn-stream-name`, `x-amzn-fragment-timecode-type`), signed into the URL with
//! `X-Amz-SignedHeaders=host` and the empty-string payload hash — what the server checks with
//! `PayloadHash::EmptyStreaming` for `/putMedia` (kvs-api.md §14.2, §14.3).

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::cli::{PresignPutMediaArgs, PresignTimecodeType};
use crate::client::aws_config::{self, ClientConfig};

/// `openkvs presign put-media`: prints the URL alone on stdout.
pub(crate) fn command(args: &PresignPutMediaArgs) -> anyhow::Result<()> {
    let cfg = aws_config::resolve(&args.client)?;
    kvs_core::StreamName::parse(&args.stream)
        .with_context(|| format!("--stream `{}`", args.stream))?;
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let url = presign_put_media(
        &cfg,
        &args.stream,
        args.timecode_type,
        args.expires,
        now_unix,
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{url}")?;
    out.flush()?;
    Ok(())
}

/// The presigned URL: `<endpoint>/putMedia?x-amzn-…&X-Amz-…&X-Amz-Signature=…`.
pub(crate) fn presign_put_media(
    cfg: &ClientConfig,
    stream: &str,
    timecode_type: PresignTimecodeType,
    expires: Duration,
    now_unix: i64,
) -> String {
    let endpoint = format!("{}/putMedia", cfg.endpoint.base_url());
    let timecode_type = match timecode_type {
        PresignTimecodeType::Absolute => "ABSOLUTE",
        PresignTimecodeType::Relative => "RELATIVE",
    };
    sigv4::presign_url(
        &sigv4::SigningParams {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "kinesisvideo",
            now_unix,
        },
        &sigv4::PresignRequest {
            method: "POST",
            endpoint: &endpoint,
            params: &[
                ("x-amzn-stream-name", stream),
                ("x-amzn-fragment-timecode-type", timecode_type),
                // The tools that use presigned URLs (ffmpeg, GStreamer's curlhttpsink) never read
                // the reply while they send; with acks off the server answers after the body,
                // so no unread reply can turn their close into a connection reset that loses
                // the end of the upload.
                ("x-amzn-fragment-acknowledgment-required", "0"),
            ],
            expires_secs: i64::try_from(expires.as_secs()).unwrap_or(i64::MAX),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::http::Endpoint;

    const NOW: i64 = 1_795_306_204; // 2026-11-22

    fn cfg(endpoint: &str, token: Option<&str>) -> ClientConfig {
        let mut credentials = sigv4::Credentials::new("AKIDTEST", "secret/key+1");
        if let Some(t) = token {
            credentials = credentials.with_session_token(t);
        }
        ClientConfig {
            endpoint: Endpoint::parse(endpoint).unwrap(),
            credentials,
            region: "eu-west-1".into(),
            ca_bundle: None,
            credentials_source: "test".into(),
        }
    }

    /// Splits a URL into (Host header a client sends, path, query).
    fn split(url: &str) -> (String, String, String) {
        let rest = url.split_once("://").unwrap().1;
        let (authority, path_query) = rest.split_at(rest.find('/').unwrap());
        let (path, query) = path_query.split_once('?').unwrap();
        (authority.to_owned(), path.to_owned(), query.to_owned())
    }

    fn verify(url: &str, host: &str, now: i64) -> Result<sigv4::Verified, sigv4::AuthError> {
        let (_, path, query) = split(url);
        let headers = [
            ("host", host),
            ("transfer-encoding", "chunked"),
            ("user-agent", "Lavf/59"),
        ];
        let req = sigv4::Request {
            method: "POST",
            path: &path,
            query: &query,
            headers: &headers,
        };
        let lookup = |akid: &str, _token: Option<&str>| {
            if akid == "AKIDTEST" {
                Ok(sigv4::SecretKey::new("secret/key+1"))
            } else {
                Err(sigv4::AuthError::UnknownAccessKey {
                    access_key_id: akid.to_owned(),
                })
            }
        };
        sigv4::verify(
            &req,
            sigv4::PayloadHash::EmptyStreaming,
            now,
            &sigv4::VerifyConfig::default(),
            &lookup,
        )
    }

    /// The URL verifies exactly as the server verifies a streaming PutMedia
    /// (`PayloadHash::EmptyStreaming`), for the Host header ffmpeg and curl send.
    #[test]
    fn presigned_url_verifies_as_put_media() {
        let cases = [
            ("http://127.0.0.1:8080", "127.0.0.1:8080", None),
            (
                "https://video.example.org",
                "video.example.org",
                Some("tok/+="),
            ),
            (
                "https://video.example.org:443/kvs",
                "video.example.org",
                None,
            ),
        ];
        for (endpoint, host, token) in cases {
            let url = presign_put_media(
                &cfg(endpoint, token),
                "cam-1.front_door",
                PresignTimecodeType::Relative,
                Duration::from_secs(3600),
                NOW,
            );
            let (authority, path, query) = split(&url);
            assert_eq!(authority, host, "{url}");
            assert!(path.ends_with("/putMedia"), "{url}");
            for p in [
                "x-amzn-stream-name=cam-1.front_door",
                "x-amzn-fragment-timecode-type=RELATIVE",
                "X-Amz-SignedHeaders=host",
                "X-Amz-Expires=3600",
                "X-Amz-Credential=AKIDTEST%2F20261122%2Feu-west-1%2Fkinesisvideo%2Faws4_request",
            ] {
                assert!(query.split('&').any(|q| q == p), "{p} missing in {url}");
            }
            assert_eq!(query.contains("X-Amz-Security-Token"), token.is_some());
            let v = verify(&url, host, NOW + 60).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(v.presigned);
            assert_eq!(v.payload_hash, sigv4::EMPTY_SHA256);
            assert_eq!(v.region, "eu-west-1");
        }
    }

    #[test]
    fn parameters_are_signed_and_the_url_expires() {
        let url = presign_put_media(
            &cfg("http://127.0.0.1:8080", None),
            "s1",
            PresignTimecodeType::Absolute,
            Duration::from_secs(900),
            NOW,
        );
        assert!(url.contains("x-amzn-fragment-timecode-type=ABSOLUTE"));
        assert!(verify(&url, "127.0.0.1:8080", NOW).is_ok());
        // Another stream name, another host, or after expiry: rejected.
        let other = url.replace("x-amzn-stream-name=s1", "x-amzn-stream-name=s2");
        assert!(verify(&other, "127.0.0.1:8080", NOW).is_err());
        assert!(verify(&url, "127.0.0.1:9090", NOW).is_err());
        assert!(verify(&url, "127.0.0.1:8080", NOW + 901 + 300).is_err());
    }
}
