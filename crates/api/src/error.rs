//! `ApiError`: every failure a client sees, as the AWS rest-json error it expects
//! (`kvs-api.md` §1.4): status from the service model, `x-amzn-ErrorType`, JSON body with
//! `__type` and both `message` and `Message` (models disagree on casing; clients read either).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::ErrorKind;

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The full internal error of a 5xx response, carried in response extensions so that one
/// middleware logs it; the client sees only a generic message.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub Arc<String>);

impl ApiError {
    /// An error with a message the client will read.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// `InvalidArgumentException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Attaches the internal cause (logged, never sent).
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-visible message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// AWS error code and HTTP status for a kind. Exhaustive on purpose: a new kind must be
    /// given its code here (STYLE.md §3).
    pub fn code_and_status(kind: ErrorKind) -> (&'static str, StatusCode) {
        use ErrorKind as K;
        match kind {
            K::InvalidArgument => ("InvalidArgumentException", StatusCode::BAD_REQUEST),
            K::InvalidResourceFormat => ("InvalidResourceFormatException", StatusCode::BAD_REQUEST),
            K::NotFound => ("ResourceNotFoundException", StatusCode::NOT_FOUND),
            K::InUse => ("ResourceInUseException", StatusCode::BAD_REQUEST),
            K::VersionMismatch => ("VersionMismatchException", StatusCode::BAD_REQUEST),
            K::LimitExceeded => ("ClientLimitExceededException", StatusCode::BAD_REQUEST),
            K::TagsLimitExceeded => (
                "TagsPerResourceExceededLimitException",
                StatusCode::BAD_REQUEST,
            ),
            K::NotAuthorized => ("NotAuthorizedException", StatusCode::UNAUTHORIZED),
            K::NoDataRetention => ("NoDataRetentionException", StatusCode::BAD_REQUEST),
            K::UnsupportedStreamMediaType => (
                "UnsupportedStreamMediaTypeException",
                StatusCode::BAD_REQUEST,
            ),
            K::MissingCodecPrivateData => {
                ("MissingCodecPrivateDataException", StatusCode::BAD_REQUEST)
            }
            K::InvalidCodecPrivateData => {
                ("InvalidCodecPrivateDataException", StatusCode::BAD_REQUEST)
            }
            K::InvalidMediaFrame => ("InvalidMediaFrameException", StatusCode::BAD_REQUEST),
            K::Unsupported => ("UnsupportedOperationException", StatusCode::BAD_REQUEST),
            K::UnknownOperation => ("UnknownOperationException", StatusCode::NOT_FOUND),
            K::PayloadTooLarge => (
                "RequestEntityTooLargeException",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            K::MissingAuthentication => {
                ("MissingAuthenticationTokenException", StatusCode::FORBIDDEN)
            }
            K::IncompleteSignature => ("IncompleteSignatureException", StatusCode::BAD_REQUEST),
            K::UnrecognizedClient => ("UnrecognizedClientException", StatusCode::FORBIDDEN),
            K::InvalidSignature => ("InvalidSignatureException", StatusCode::FORBIDDEN),
            K::ExpiredToken => ("ExpiredTokenException", StatusCode::FORBIDDEN),
            K::Internal => ("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR),
            K::Unavailable => ("ServiceUnavailable", StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

impl From<export::ExportError> for ApiError {
    fn from(e: export::ExportError) -> Self {
        use export::MediaErrorCode as C;
        let kind = match e.code() {
            C::UnsupportedStreamMediaType => ErrorKind::UnsupportedStreamMediaType,
            C::MissingCodecPrivateData => ErrorKind::MissingCodecPrivateData,
            C::InvalidCodecPrivateData => ErrorKind::InvalidCodecPrivateData,
            C::InvalidMediaFrame => ErrorKind::InvalidMediaFrame,
            C::Internal => ErrorKind::Internal,
        };
        let message = e.to_string();
        Self {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        let kind = e.kind();
        let message = match kind {
            ErrorKind::Internal | ErrorKind::Unavailable => String::new(),
            _ => e.to_string(),
        };
        Self {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = Self::code_and_status(self.kind);
        let message = if status.is_server_error() {
            // 5xx bodies say nothing internal; the detail is logged by the middleware.
            match self.kind {
                ErrorKind::Unavailable => {
                    "The service is temporarily unavailable; retry with backoff.".to_owned()
                }
                _ => "An internal error occurred; the server log has the details.".to_owned(),
            }
        } else {
            self.message.clone()
        };
        let body = serde_json::json!({ "__type": code, "message": message, "Message": message });
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(code));
        h.insert("x-amz-ErrorType", HeaderValue::from_static(code));
        let mut detail = format!("{code}: {}", self.message);
        let mut src: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = src {
            detail.push_str(": ");
            detail.push_str(&e.to_string());
            src = e.source();
        }
        resp.extensions_mut().insert(ErrorDetail(Arc::new(detail)));
        resp
    }
}
