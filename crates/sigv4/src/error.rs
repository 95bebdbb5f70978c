//! Why a request failed authentication.
//!
//! Unlike the other crates' errors, these messages are written for the *client's* user: the HTTP
//! layer sends `to_string()` as the AWS error `message`, next to [`AuthError::code`] and
//! [`AuthError::status`]. So they follow AWS's wording and capitalisation (several are matched by
//! clients: the C WebRTC SDK greps 403 bodies for `Signature expired` and `Signature not yet
//! current`, `kvs-api.md` §1.4) rather than the lower-case style of internal errors, and they end
//! with what to check. They never contain the secret key or the expected signature.

/// A SigV4 authentication failure, with the AWS error code and HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Neither an `Authorization` header nor presigned query parameters.
    #[error(
        "Missing Authentication Token: the request has neither an Authorization header nor an \
         X-Amz-Signature query parameter. Sign it with AWS Signature Version 4"
    )]
    MissingAuthentication,

    /// The `Authorization` header or `X-Amz-Algorithm` names an algorithm other than
    /// `AWS4-HMAC-SHA256`.
    #[error(
        "Unsupported signature algorithm '{algorithm}': only AWS4-HMAC-SHA256 (Signature \
         Version 4) is accepted"
    )]
    UnsupportedAlgorithm {
        /// The algorithm the request named (clipped to 64 bytes).
        algorithm: String,
    },

    /// The `Authorization` header cannot be parsed.
    #[error(
        "Malformed Authorization header: {reason}. Expected 'AWS4-HMAC-SHA256 \
         Credential=<access key id>/<yyyymmdd>/<region>/<service>/aws4_request, \
         SignedHeaders=<name;name;...>, Signature=<64 hex digits>'"
    )]
    MalformedAuthorization {
        /// What is wrong.
        reason: &'static str,
    },

    /// The `Authorization` header lacks `Credential=`, `SignedHeaders=` or `Signature=`.
    #[error("Authorization header requires '{component}' parameter")]
    MissingAuthorizationComponent {
        /// `Credential`, `SignedHeaders` or `Signature`.
        component: &'static str,
    },

    /// The presigned query parameters cannot be parsed (e.g. a parameter given twice).
    #[error("Malformed presigned URL: {reason}")]
    MalformedPresignedUrl {
        /// What is wrong.
        reason: &'static str,
    },

    /// A presigned URL lacks one of the `X-Amz-*` parameters.
    #[error(
        "AWS query-string parameters must include '{parameter}'. Re-examine the query-string parameters"
    )]
    MissingQueryParameter {
        /// `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
        /// `X-Amz-SignedHeaders` or `X-Amz-Signature`.
        parameter: &'static str,
    },

    /// The credential is not `<access key id>/<yyyymmdd>/<region>/<service>/aws4_request`.
    #[error(
        "Malformed credential '{credential}': {reason}. Expected '<access key \
         id>/<yyyymmdd>/<region>/<service>/aws4_request'"
    )]
    MalformedCredential {
        /// The credential as received (clipped to 256 bytes).
        credential: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// `host` is not among the signed headers.
    #[error(
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization. Signed \
         headers were '{signed_headers}'"
    )]
    HostNotSigned {
        /// The `SignedHeaders` list as received (clipped to 256 bytes).
        signed_headers: String,
    },

    /// The header that carries the request time (`x-amz-date` or `date`) is not signed.
    #[error(
        "'{header}' carries the request time and must be a 'SignedHeader' in the AWS Authorization"
    )]
    DateNotSigned {
        /// `x-amz-date` or `date`.
        header: &'static str,
    },

    /// Header-signed request without `X-Amz-Date` and without `Date`.
    #[error("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header")]
    MissingDate,

    /// `X-Amz-Date` (header or query) or `Date` does not parse.
    #[error("Invalid {name} '{value}': expected {expected}")]
    MalformedDate {
        /// `X-Amz-Date` or `Date`.
        name: &'static str,
        /// The value as received (clipped to 64 bytes).
        value: String,
        /// The accepted format, with an example.
        expected: &'static str,
    },

    /// `X-Amz-Expires` is not an integer in `1..=max_presign_expires_secs`.
    #[error(
        "X-Amz-Expires must be an integer number of seconds from 1 to {max_secs}, got '{value}'"
    )]
    ExpiresOutOfRange {
        /// The value as received (clipped to 64 bytes).
        value: String,
        /// The configured maximum ([`crate::VerifyConfig::max_presign_expires_secs`]).
        max_secs: i64,
    },

    /// `x-amz-content-sha256` announces an aws-chunked body (`STREAMING-…`).
    #[error(
        "x-amz-content-sha256 '{value}' announces an aws-chunked streaming payload, which this \
         server does not support. Sign the request with the SHA-256 of the body, or of the empty \
         string for PutMedia"
    )]
    StreamingPayloadUnsupported {
        /// The header value (clipped to 64 bytes).
        value: String,
    },

    /// The credential scope names another service than the configured one.
    #[error(
        "Credential should be scoped to correct service: '{expected}'. The request was signed \
         for '{service}'"
    )]
    WrongService {
        /// The service in the credential scope (clipped to 64 bytes).
        service: String,
        /// The service this server verifies ([`crate::VerifyConfig::service`]).
        expected: String,
    },

    /// The credential scope names a region outside [`crate::VerifyConfig::allowed_regions`].
    #[error(
        "Credential should be scoped to a valid region. '{region}' is not accepted by this \
         server; configure the client with one of: {}",
        allowed.join(", ")
    )]
    RegionNotAllowed {
        /// The region in the credential scope (clipped to 64 bytes).
        region: String,
        /// The regions this server accepts.
        allowed: Vec<String>,
    },

    /// The date in the credential scope is not the date of the request time.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '{scope_date}' != '{request_date}', from '{request_time}'"
    )]
    ScopeDateMismatch {
        /// `yyyymmdd` from the credential scope.
        scope_date: String,
        /// `yyyymmdd` of the request time.
        request_date: String,
        /// The request time, `yyyyMMdd'T'HHmmss'Z'`.
        request_time: String,
    },

    /// [`crate::CredentialLookup`] does not know the access key id.
    #[error(
        "The security token included in the request is invalid: access key id \
         '{access_key_id}' is not known to this server. Check the credentials the client uses"
    )]
    UnknownAccessKey {
        /// The access key id from the credential scope.
        access_key_id: String,
    },

    /// [`crate::CredentialLookup`] rejected the session token (missing, unknown or expired).
    #[error(
        "The security token included in the request is invalid: the session token sent with \
         access key id '{access_key_id}' is missing, unknown or expired. Refresh the temporary \
         credentials"
    )]
    InvalidSessionToken {
        /// The access key id from the credential scope.
        access_key_id: String,
    },

    /// The signature does not match. `string_to_sign` is what the server computed (it contains a
    /// hash of the canonical request, never key material), for comparison with the client's
    /// debug log (botocore logs `StringToSign` at DEBUG).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method, that the endpoint the client signed for \
         matches the Host header this server received ('{host}'), and that no proxy changed a \
         signed header ({signed_headers}){}. The String-to-Sign should have been '{string_to_sign}'",
        missing_hint(missing_headers)
    )]
    SignatureMismatch {
        /// The `host` header as received (clipped to 256 bytes).
        host: String,
        /// The signed header names, `;`-separated (clipped to 256 bytes).
        signed_headers: String,
        /// Signed header names that the request does not carry at all.
        missing_headers: Vec<String>,
        /// The server's StringToSign for the first payload-hash candidate.
        string_to_sign: String,
    },

    /// `x-amz-content-sha256` carries a hash that is not the SHA-256 of the body.
    #[error(
        "The provided 'x-amz-content-sha256' header does not match what was computed: it is not \
         the SHA-256 of the request body"
    )]
    ContentSha256Mismatch,

    /// The request time is more than the allowed skew in the past (AWS's exact wording).
    #[error("Signature expired: {request_time} is now earlier than {earliest} ({now} - {window})")]
    SignatureExpired {
        /// The request time, `yyyyMMdd'T'HHmmss'Z'`.
        request_time: String,
        /// `now - skew`.
        earliest: String,
        /// The server's time.
        now: String,
        /// The skew window, `15 min.`.
        window: String,
    },

    /// The request time is more than the allowed skew in the future (AWS's exact wording).
    #[error(
        "Signature not yet current: {request_time} is still later than {latest} ({now} + {window})"
    )]
    SignatureNotYetCurrent {
        /// The request time, `yyyyMMdd'T'HHmmss'Z'`.
        request_time: String,
        /// `now + skew`.
        latest: String,
        /// The server's time.
        now: String,
        /// The skew window, `15 min.`.
        window: String,
    },

    /// A presigned URL used after `X-Amz-Date + X-Amz-Expires`.
    #[error(
        "Request has expired: the URL was signed at {request_time} with X-Amz-Expires={expires_secs}, \
         so it was valid until {expired_at}; it is now {now}. Presign a new URL"
    )]
    PresignedUrlExpired {
        /// `X-Amz-Date`.
        request_time: String,
        /// `X-Amz-Expires`.
        expires_secs: i64,
        /// `X-Amz-Date + X-Amz-Expires`.
        expired_at: String,
        /// The server's time.
        now: String,
    },
}

fn missing_hint(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(
            "; the request does not carry the signed header(s) {}",
            missing.join(", ")
        )
    }
}

impl AuthError {
    /// The AWS error code for `x-amzn-ErrorType` and the JSON `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthentication => "MissingAuthenticationTokenException",
            Self::UnsupportedAlgorithm { .. }
            | Self::MalformedAuthorization { .. }
            | Self::MissingAuthorizationComponent { .. }
            | Self::MalformedPresignedUrl { .. }
            | Self::MissingQueryParameter { .. }
            | Self::MalformedCredential { .. }
            | Self::HostNotSigned { .. }
            | Self::DateNotSigned { .. }
            | Self::MissingDate
            | Self::MalformedDate { .. }
            | Self::ExpiresOutOfRange { .. }
            | Self::StreamingPayloadUnsupported { .. } => "IncompleteSignatureException",
            Self::UnknownAccessKey { .. } | Self::InvalidSessionToken { .. } => {
                "UnrecognizedClientException"
            }
            Self::WrongService { .. }
            | Self::RegionNotAllowed { .. }
            | Self::ScopeDateMismatch { .. }
            | Self::SignatureMismatch { .. }
            | Self::ContentSha256Mismatch
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::PresignedUrlExpired { .. } => "InvalidSignatureException",
        }
    }

    /// The HTTP status: 400 for `IncompleteSignatureException`, otherwise 403.
    pub fn status(&self) -> u16 {
        match self.code() {
            "IncompleteSignatureException" => 400,
            _ => 403,
        }
    }

    /// True for the time-window failures a client can fix by correcting its clock
    /// ([`Self::SignatureExpired`], [`Self::SignatureNotYetCurrent`]).
    pub fn is_clock_skew(&self) -> bool {
        matches!(
            self,
            Self::SignatureExpired { .. } | Self::SignatureNotYetCurrent { .. }
        )
    }
}

/// Clips a client-supplied string echoed in an error, so a hostile header cannot make the
/// response (or the log line) arbitrarily large.
pub(crate) fn clip(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_status_table() {
        let cases = [
            (
                AuthError::MissingAuthentication,
                "MissingAuthenticationTokenException",
                403,
            ),
            (AuthError::MissingDate, "IncompleteSignatureException", 400),
            (
                AuthError::UnknownAccessKey {
                    access_key_id: "AKID".into(),
                },
                "UnrecognizedClientException",
                403,
            ),
            (
                AuthError::ContentSha256Mismatch,
                "InvalidSignatureException",
                403,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.status(), status, "{err:?}");
        }
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("aé", 2), "a…");
    }
}
