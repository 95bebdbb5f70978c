//! Errors of the store crate.

use kvs_core::ErrorKind;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A catalog or media-store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such stream or channel.
    #[error("the requested {what} {key} is not found or not active")]
    NotFound {
        /// `stream`, `channel` or `resource`.
        what: &'static str,
        /// The name or ARN that was looked up.
        key: String,
    },
    /// A stream or channel with this name exists already.
    #[error("{what} {name} already exists")]
    AlreadyExists {
        /// `stream` or `channel`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// `CurrentVersion` does not match.
    #[error("the version {given} of {key} is not current; the current version is {current}")]
    VersionMismatch {
        /// The name or ARN.
        key: String,
        /// Version the caller gave.
        given: String,
        /// The resource's version.
        current: String,
    },
    /// Tagging would exceed [`crate::MAX_TAGS_PER_RESOURCE`].
    #[error("{key} would have {count} tags; at most {max} are allowed")]
    TooManyTags {
        /// The ARN.
        key: String,
        /// The count after the change.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An update that is not allowed, e.g. decreasing retention below zero.
    #[error("{0}")]
    InvalidUpdate(String),
    /// The embedded database failed.
    #[error("catalog database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A filesystem error.
    #[error("store I/O error at {path}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("catalog worker task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// How this error should be reported to a client.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } => ErrorKind::InUse,
            Self::VersionMismatch { .. } => ErrorKind::VersionMismatch,
            Self::TooManyTags { .. } => ErrorKind::TagsLimitExceeded,
            Self::InvalidUpdate(_) => ErrorKind::InvalidArgument,
            Self::Sqlite(e) if is_busy(e) => ErrorKind::Unavailable,
            Self::Sqlite(_) | Self::Join(_) => ErrorKind::Internal,
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => ErrorKind::Unavailable,
            Self::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
