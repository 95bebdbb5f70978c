//! The closed set of error kinds. Each crate's error decides its kind where it is created.

/// Whose fault an error is and how a client should see it.
///
/// `openkvs-api` matches on this exhaustively (no `_` arm), so a new kind forces a decision
/// about its AWS error code and HTTP status. Deliberately not `#[non_exhaustive]` for that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A request member is missing, malformed or out of range (`InvalidArgumentException`, 400).
    InvalidArgument,
    /// An ARN does not have the shape of a KVS ARN (`InvalidResourceFormatException`, 400).
    InvalidResourceFormat,
    /// The stream or channel does not exist (`ResourceNotFoundException`, 404).
    NotFound,
    /// The resource exists already or is in a state that forbids the call (`ResourceInUseException`, 400).
    InUse,
    /// `CurrentVersion` does not match the resource's version (`VersionMismatchException`, 400).
    VersionMismatch,
    /// A rate or count limit was hit (`ClientLimitExceededException`, 400).
    LimitExceeded,
    /// More than 50 tags on one resource (`TagsPerResourceExceededLimitException`, 400).
    TagsLimitExceeded,
    /// The caller is authenticated but not allowed to do this (`NotAuthorizedException`, 401).
    NotAuthorized,
    /// The stream keeps no data (`NoDataRetentionException`, 400).
    NoDataRetention,
    /// The operation exists in KVS but openkvs does not implement it (400).
    Unsupported,
    /// No `Authorization` header or presigned query (`MissingAuthenticationTokenException`, 403).
    MissingAuthentication,
    /// The `Authorization` header or presigned query is malformed (`IncompleteSignatureException`, 400).
    IncompleteSignature,
    /// Unknown access key id or invalid session token (`UnrecognizedClientException`, 403).
    UnrecognizedClient,
    /// Signature mismatch or a request outside its time window (`InvalidSignatureException`, 403).
    InvalidSignature,
    /// A track's codec cannot be packaged (`UnsupportedStreamMediaTypeException`, 400).
    UnsupportedStreamMediaType,
    /// A track lacks codec private data (`MissingCodecPrivateDataException`, 400).
    MissingCodecPrivateData,
    /// Codec private data cannot be parsed (`InvalidCodecPrivateDataException`, 400).
    InvalidCodecPrivateData,
    /// Frames cannot be packaged (`InvalidMediaFrameException`, 400).
    InvalidMediaFrame,
    /// The request path names no KVS operation (`UnknownOperationException`, 404).
    UnknownOperation,
    /// The request body is larger than the operation allows (`RequestEntityTooLargeException`, 413).
    PayloadTooLarge,
    /// A session token that has expired (`ExpiredTokenException`, 403).
    ExpiredToken,
    /// The server failed; the message shown to clients says nothing internal (500).
    Internal,
    /// A dependency (disk, database) is unavailable; retrying may help (503).
    Unavailable,
}

impl ErrorKind {
    /// Every kind, e.g. to carry one by name between nodes.
    pub const ALL: &'static [ErrorKind] = &[
        Self::InvalidArgument,
        Self::InvalidResourceFormat,
        Self::NotFound,
        Self::InUse,
        Self::VersionMismatch,
        Self::LimitExceeded,
        Self::TagsLimitExceeded,
        Self::NotAuthorized,
        Self::NoDataRetention,
        Self::Unsupported,
        Self::MissingAuthentication,
        Self::IncompleteSignature,
        Self::UnrecognizedClient,
        Self::InvalidSignature,
        Self::UnsupportedStreamMediaType,
        Self::MissingCodecPrivateData,
        Self::InvalidCodecPrivateData,
        Self::InvalidMediaFrame,
        Self::UnknownOperation,
        Self::PayloadTooLarge,
        Self::ExpiredToken,
        Self::Internal,
        Self::Unavailable,
    ];
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// A new kind fails to compile here until it is added to [`ErrorKind::ALL`].
    #[test]
    fn all_lists_every_kind() {
        for k in ErrorKind::ALL {
            let position = match k {
                ErrorKind::InvalidArgument => 0,
                ErrorKind::InvalidResourceFormat => 1,
                ErrorKind::NotFound => 2,
                ErrorKind::InUse => 3,
                ErrorKind::VersionMismatch => 4,
                ErrorKind::LimitExceeded => 5,
                ErrorKind::TagsLimitExceeded => 6,
                ErrorKind::NotAuthorized => 7,
                ErrorKind::NoDataRetention => 8,
                ErrorKind::Unsupported => 9,
                ErrorKind::MissingAuthentication => 10,
                ErrorKind::IncompleteSignature => 11,
                ErrorKind::UnrecognizedClient => 12,
                ErrorKind::InvalidSignature => 13,
                ErrorKind::UnsupportedStreamMediaType => 14,
                ErrorKind::MissingCodecPrivateData => 15,
                ErrorKind::InvalidCodecPrivateData => 16,
                ErrorKind::InvalidMediaFrame => 17,
                ErrorKind::UnknownOperation => 18,
                ErrorKind::PayloadTooLarge => 19,
                ErrorKind::ExpiredToken => 20,
                ErrorKind::Internal => 21,
                ErrorKind::Unavailable => 22,
            };
            assert_eq!(ErrorKind::ALL[position], *k);
        }
        assert_eq!(ErrorKind::ALL.len(), 23);
    }
}
