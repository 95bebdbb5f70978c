//! The crate error.

use kvs_core::ErrorKind;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Inputs no playlist can be written from. Inputs come from the server's own catalog and
/// session state, never straight from a client, so every variant is a server-side bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fragment with a negative duration.
    #[error("fragment {number} has negative duration {duration_ms} ms")]
    NegativeDuration {
        /// The fragment number.
        number: String,
        /// Its duration.
        duration_ms: i64,
    },
    /// A session with neither a video nor an audio track.
    #[error("session has no tracks")]
    NoTracks,
    /// A dynamic MPD (LIVE, or LIVE_REPLAY not yet ended) was asked for without
    /// [`crate::DashLive`] timing.
    #[error("a dynamic MPD needs live timing")]
    MissingLiveTiming,
}

impl Error {
    /// Whose fault it is: always the server's ([`ErrorKind::Internal`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NegativeDuration { .. } | Error::NoTracks | Error::MissingLiveTiming => {
                ErrorKind::Internal
            }
        }
    }
}
