//! Errors of the signaling crate.
//!
//! Two families: connect refusals, returned by [`crate::Channel::handle_input`] before the
//! WebSocket upgrade (the shell answers with the HTTP error of [`Error::kind`]), and message
//! refusals, which never leave the channel as `Err` but become a `STATUS_RESPONSE` (when the
//! message carried a `correlationId`) and an [`crate::Event::MessageRefused`] log output.

use kvs_core::{ErrorKind, NameError};

use crate::channel::{Action, ConnId};
use crate::config::Rate;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest excerpt of client text kept in an error (e.g. an unknown `action`), in characters.
const MAX_ECHO_CHARS: usize = 64;

/// A refused connect, message or configuration.
///
/// `Display` texts are sent to clients as the `description` of a `STATUS_RESPONSE`, so they say
/// nothing about server internals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::Config`] value is out of range.
    #[error("invalid signaling channel configuration: {field} {reason}")]
    InvalidConfig {
        /// The `Config` field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    // Connect refusals (§13.4): answered before the upgrade.
    /// The channel received [`crate::Input::Shutdown`] and accepts no more connections.
    #[error("the signaling channel is shutting down")]
    ShuttingDown,
    /// The shell reused a [`ConnId`] that is still connected: a bug in the shell.
    #[error("connection id {conn} is already in use on this channel")]
    ConnIdInUse {
        /// The reused id.
        conn: ConnId,
    },
    /// Too many ConnectAsMaster or ConnectAsViewer attempts on this channel (§15.3).
    #[error("too many {role} connection attempts on this channel; the limit is {} per second", rate.per_second)]
    ConnectRate {
        /// `master` or `viewer`.
        role: &'static str,
        /// The configured rate.
        rate: Rate,
    },
    /// The channel has its maximum number of viewers (§15.3); a viewer replacing its own
    /// connection (same client id) is never refused for this.
    #[error("the channel already has the maximum of {max} connected viewers")]
    ViewerLimit {
        /// The configured limit.
        max: usize,
    },

    // Message refusals (§13.5).
    /// The text frame is longer than [`crate::Config::max_frame_len`]; it was not parsed.
    #[error("message of {len} bytes is longer than the maximum of {max} bytes")]
    FrameTooLarge {
        /// Length of the frame in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not JSON.
    #[error("message is not valid JSON")]
    MalformedJson(#[source] serde_json::Error),
    /// The frame is JSON but not an object.
    #[error("message must be a JSON object")]
    NotAnObject,
    /// A member appears twice with different letter case, e.g. `correlationId` and
    /// `CorrelationId`; names are matched case-insensitively, so this is ambiguous.
    #[error("member {member} appears more than once (names are case-insensitive)")]
    DuplicateMember {
        /// The member, in camelCase.
        member: &'static str,
    },
    /// A member has a JSON type other than string.
    #[error("member {member} must be a string")]
    MemberNotString {
        /// The member, in camelCase.
        member: &'static str,
    },
    /// A required member is absent, `null` or empty.
    #[error("member {member} is required")]
    MissingMember {
        /// The member, in camelCase.
        member: &'static str,
    },
    /// `correlationId` is not `[a-zA-Z0-9_.-]{1,256}`.
    #[error("correlationId must match [a-zA-Z0-9_.-]{{1,256}}")]
    InvalidCorrelationId,
    /// `action` is not one of the three client actions.
    #[error("unknown action {action:?}; expected SDP_OFFER, SDP_ANSWER or ICE_CANDIDATE")]
    UnknownAction {
        /// The action as sent, cut to 64 characters.
        action: String,
    },
    /// `messagePayload` is longer than [`crate::Config::max_payload_len`].
    #[error("messagePayload of {len} bytes is longer than the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Length of the payload in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `messagePayload` is not base64 (standard alphabet).
    #[error("messagePayload is not valid base64")]
    PayloadNotBase64(#[source] base64::DecodeError),
    /// A message from the master without `recipientClientId`: the master must name its viewer.
    #[error("recipientClientId is required on messages from the master")]
    MissingRecipient,
    /// The master's `recipientClientId` is not a valid client id.
    #[error("recipientClientId is invalid")]
    InvalidRecipient(#[source] NameError),
    /// The connection exceeded the per-connection rate for this action (§15.3).
    #[error("too many {action} messages on this connection; the limit is {} per second", rate.per_second)]
    MessageRate {
        /// The action.
        action: Action,
        /// The configured rate.
        rate: Rate,
    },
    /// The recipient is offline and the channel already retains [`crate::Config::max_pending`]
    /// messages.
    #[error(
        "the recipient is not connected and the channel cannot hold more than {max} undelivered messages"
    )]
    PendingLimit {
        /// The configured limit.
        max: usize,
    },
    /// The recipient is offline and this sender already has
    /// [`crate::Config::max_pending_per_sender`] undelivered messages.
    #[error(
        "the recipient is not connected and this client already has {max} undelivered messages"
    )]
    PendingPerSenderLimit {
        /// The configured limit.
        max: usize,
    },
}

impl Error {
    /// How this error is reported: the HTTP error before the upgrade, or the `errorType` and
    /// `statusCode` of a `STATUS_RESPONSE` after it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidConfig { .. }
            | Self::FrameTooLarge { .. }
            | Self::MalformedJson(_)
            | Self::NotAnObject
            | Self::DuplicateMember { .. }
            | Self::MemberNotString { .. }
            | Self::MissingMember { .. }
            | Self::InvalidCorrelationId
            | Self::UnknownAction { .. }
            | Self::PayloadTooLarge { .. }
            | Self::PayloadNotBase64(_)
            | Self::MissingRecipient
            | Self::InvalidRecipient(_) => ErrorKind::InvalidArgument,
            Self::ConnectRate { .. }
            | Self::ViewerLimit { .. }
            | Self::MessageRate { .. }
            | Self::PendingLimit { .. }
            | Self::PendingPerSenderLimit { .. } => ErrorKind::LimitExceeded,
            Self::ShuttingDown => ErrorKind::Unavailable,
            Self::ConnIdInUse { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn unknown_action(action: &str) -> Self {
        Self::UnknownAction {
            action: action.chars().take(MAX_ECHO_CHARS).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_action_is_cut() {
        let e = Error::unknown_action(&"é".repeat(1000));
        let Error::UnknownAction { action } = &e else {
            unreachable!()
        };
        assert_eq!(action.chars().count(), MAX_ECHO_CHARS);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
