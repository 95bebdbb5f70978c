//! Errors of the store crate.

use std::sync::Arc;

use kvs_core::{ErrorKind, FragmentNumber};

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
    /// The fragment index database (`fragments.db`) failed.
    #[error("fragment index error while trying to {op}")]
    Index {
        /// What the store was doing, e.g. `insert fragment rows`.
        op: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A stream ARN that cannot name a media directory (`kvs-api.md` §15.1).
    #[error("{arn:?} is not a stream ARN")]
    InvalidStreamArn {
        /// The ARN as given.
        arn: String,
        /// The parse error, if it did not parse at all (`None`: it names a channel).
        #[source]
        source: Option<kvs_core::ArnError>,
    },
    /// Two stream ARNs map to one media directory (same name and creation time, different
    /// account or region: one server never creates both).
    #[error("media directory {dir} of {stream_arn} belongs to another stream ARN")]
    StreamDirTaken {
        /// The ARN that was refused.
        stream_arn: String,
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Ingest handed over a fragment that breaks the [`crate::NewFragment`] contract.
    #[error("fragment {number} of {stream_arn} is invalid: {reason}")]
    InvalidFragment {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
        /// What is wrong.
        reason: &'static str,
    },
    /// A fragment with this number is stored already.
    #[error("fragment {number} of {stream_arn} is stored already")]
    DuplicateFragment {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
    },
    /// An index row that cannot be decoded (`fsck` reports these too).
    #[error("index row of fragment {number} of {stream_arn} is corrupt: {reason}")]
    CorruptIndex {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
        /// What is wrong.
        reason: &'static str,
    },
    /// A JSON column (track set, tags) that does not parse.
    #[error("stored {what} JSON is corrupt")]
    CorruptJson {
        /// `track set` or `fragment tags`.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The index points at media bytes that are not in the segment file.
    #[error(
        "media of fragment {number} of {stream_arn} is missing: {path} has {file_len} bytes, the index needs {needed_end}"
    )]
    MediaMissing {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
        /// The segment file.
        path: std::path::PathBuf,
        /// Its length.
        file_len: u64,
        /// The end offset the read needed.
        needed_end: u64,
    },
    /// A read that starts beyond the fragment's end.
    #[error(
        "read at offset {offset} of fragment {number} of {stream_arn}, which has {size_bytes} bytes"
    )]
    ReadOutOfRange {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
        /// Requested start.
        offset: u64,
        /// The fragment's size.
        size_bytes: u64,
    },
    /// The group commit that carried this fragment failed; every fragment of that batch gets
    /// this error (ingest answers ERROR 5001) and nothing of the batch is stored.
    #[error("failed to persist fragment {number} of {stream_arn}")]
    Persist {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
        /// The batch's error, shared by all fragments of the batch.
        #[source]
        source: Arc<Error>,
    },
    /// Another process (or another open store in this one) uses the data directory.
    #[error("{path} is locked by another openkvs store")]
    DataDirInUse {
        /// The lock file.
        path: std::path::PathBuf,
    },
    /// The fragment writer thread is gone (it panicked, or the store is shutting down).
    #[error("the fragment writer thread is not running")]
    WriterGone,
    /// A PostgreSQL statement failed (catalog or fragment index).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error while trying to {op}")]
    Postgres {
        /// What the store was doing.
        op: &'static str,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No PostgreSQL connection could be had in time (server down or pool exhausted).
    #[cfg(feature = "postgres")]
    #[error("no PostgreSQL connection available")]
    PgPool {
        /// The cause.
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// An S3 request failed (unreachable, refused, or an error status).
    #[cfg(feature = "s3")]
    #[error("S3 request failed while trying to {op} {key}")]
    S3 {
        /// What the store was doing, e.g. `put object`.
        op: &'static str,
        /// The object key or prefix.
        key: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
            Self::Sqlite(e) | Self::Index { source: e, .. } if is_busy_or_full(e) => {
                ErrorKind::Unavailable
            }
            Self::Sqlite(_) | Self::Index { .. } | Self::Join(_) => ErrorKind::Internal,
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                ErrorKind::Unavailable
            }
            Self::Io { .. } => ErrorKind::Internal,
            Self::InvalidStreamArn { .. } => ErrorKind::InvalidArgument,
            // Ingest's bugs, or damage on disk: nothing the client can fix.
            Self::InvalidFragment { .. }
            | Self::DuplicateFragment { .. }
            | Self::CorruptIndex { .. }
            | Self::CorruptJson { .. }
            | Self::MediaMissing { .. }
            | Self::ReadOutOfRange { .. }
            | Self::DataDirInUse { .. }
            | Self::StreamDirTaken { .. }
            | Self::WriterGone => ErrorKind::Internal,
            Self::Persist { source, .. } => source.kind(),
            // No SQLSTATE, or a connection/shutdown one: the connection failed or closed, which
            // a retry (or a restarted server) gets past. Any other SQLSTATE is a statement the
            // server refused: a bug here.
            #[cfg(feature = "postgres")]
            Self::Postgres { source, .. } if source.code().is_none_or(is_transient_sqlstate) => {
                ErrorKind::Unavailable
            }
            #[cfg(feature = "postgres")]
            Self::Postgres { .. } => ErrorKind::Internal,
            #[cfg(feature = "postgres")]
            Self::PgPool { .. } => ErrorKind::Unavailable,
            #[cfg(feature = "s3")]
            Self::S3 { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Class 08 (connection exception) and 57 (operator intervention: the server is shutting
/// down or starting, e.g. `pg_ctl restart`): the server is unavailable, not refusing the
/// statement.
#[cfg(feature = "postgres")]
fn is_transient_sqlstate(code: &tokio_postgres::error::SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") || c.starts_with("57")
}

/// Busy/locked (another writer) and full disk (`SQLITE_FULL`, i.e. ENOSPC while writing the
/// database or its WAL) are conditions a retry may get past.
fn is_busy_or_full(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::DiskFull
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let io = |kind| Error::Io {
            path: "/x".into(),
            source: std::io::Error::from(kind),
        };
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let cases: Vec<(Error, ErrorKind)> = vec![
            (io(std::io::ErrorKind::StorageFull), ErrorKind::Unavailable),
            (
                io(std::io::ErrorKind::PermissionDenied),
                ErrorKind::Internal,
            ),
            (
                Error::Index {
                    op: "insert",
                    source: full,
                },
                ErrorKind::Unavailable,
            ),
            (
                Error::Index {
                    op: "insert",
                    source: rusqlite::Error::InvalidQuery,
                },
                ErrorKind::Internal,
            ),
            (
                Error::Persist {
                    stream_arn: "a".into(),
                    number: FragmentNumber(1),
                    source: Arc::new(io(std::io::ErrorKind::StorageFull)),
                },
                ErrorKind::Unavailable,
            ),
            (
                Error::InvalidStreamArn {
                    arn: "x".into(),
                    source: None,
                },
                ErrorKind::InvalidArgument,
            ),
            (Error::WriterGone, ErrorKind::Internal),
        ];
        for (e, want) in cases {
            assert_eq!(e.kind(), want, "{e:?}");
        }
    }
}
