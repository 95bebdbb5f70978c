//! PutMedia ACK `ErrorId` values (kvs-api.md §7.4: the DG-2023 PutMedia error table, names after
//! the producer SDK's `SERVICE_CALL_RESULT_*`). The producer maps any other value to "unknown
//! ack error", so only these are ever sent.

/// Error reading the data stream.
pub const STREAM_READ: u32 = 4000;
/// Fragment larger than the maximum (50 MB).
pub const FRAGMENT_SIZE: u32 = 4001;
/// Fragment longer than the maximum (10 s).
pub const FRAGMENT_DURATION: u32 = 4002;
/// Connection open longer than allowed.
pub const CONNECTION_DURATION: u32 = 4003;
/// Fragment timecode not after the previous fragment's (out of order within a session).
pub const FRAGMENT_TIMECODE_NOT_MONOTONIC: u32 = 4004;
/// More than one track (deprecated by KVS; never sent by openkvs).
pub const MULTI_TRACK_MKV: u32 = 4005;
/// Not valid MKV, or an MKV structure KVS does not accept.
pub const INVALID_MKV_DATA: u32 = 4006;
/// Invalid producer timestamp.
pub const INVALID_PRODUCER_TIMESTAMP: u32 = 4007;
/// The stream no longer exists or is not active.
pub const STREAM_NOT_ACTIVE: u32 = 4008;
/// Fragment metadata limit reached (count, name or value length).
pub const FRAGMENT_METADATA_LIMIT: u32 = 4009;
/// A block's track number is not in `Tracks`.
pub const TRACK_NUMBER_MISMATCH: u32 = 4010;
/// A track from `Tracks` has no frame in the fragment.
pub const FRAMES_MISSING_FOR_TRACK: u32 = 4011;
/// More tracks than allowed (3).
pub const MORE_THAN_ALLOWED_TRACKS: u32 = 4012;
/// Access to the stream's KMS key denied.
pub const KMS_KEY_ACCESS_DENIED: u32 = 4500;
/// The stream's KMS key is disabled.
pub const KMS_KEY_DISABLED: u32 = 4501;
/// The stream's KMS key failed validation.
pub const KMS_KEY_VALIDATION: u32 = 4502;
/// The stream's KMS key is unavailable.
pub const KMS_KEY_UNAVAILABLE: u32 = 4503;
/// Invalid usage of the stream's KMS key.
pub const KMS_KEY_INVALID_USAGE: u32 = 4504;
/// The stream's KMS key is in an invalid state.
pub const KMS_KEY_INVALID_STATE: u32 = 4505;
/// The stream's KMS key was not found.
pub const KMS_KEY_NOT_FOUND: u32 = 4506;
/// The stream was deleted (producer SDK only; not in the doc table).
pub const STREAM_DELETED: u32 = 4507;
/// Internal service error.
pub const INTERNAL_ERROR: u32 = 5000;
/// Failed to persist the fragment to the data store.
pub const ARCHIVAL_ERROR: u32 = 5001;

/// Every ErrorId of kvs-api.md §7.4 with its name, in table order.
pub const ALL: &[(u32, &str)] = &[
    (STREAM_READ, "STREAM_READ"),
    (FRAGMENT_SIZE, "FRAGMENT_SIZE"),
    (FRAGMENT_DURATION, "FRAGMENT_DURATION"),
    (CONNECTION_DURATION, "CONNECTION_DURATION"),
    (
        FRAGMENT_TIMECODE_NOT_MONOTONIC,
        "FRAGMENT_TIMECODE_NOT_MONOTONIC",
    ),
    (MULTI_TRACK_MKV, "MULTI_TRACK_MKV"),
    (INVALID_MKV_DATA, "INVALID_MKV_DATA"),
    (INVALID_PRODUCER_TIMESTAMP, "INVALID_PRODUCER_TIMESTAMP"),
    (STREAM_NOT_ACTIVE, "STREAM_NOT_ACTIVE"),
    (FRAGMENT_METADATA_LIMIT, "FRAGMENT_METADATA_LIMIT"),
    (TRACK_NUMBER_MISMATCH, "TRACK_NUMBER_MISMATCH"),
    (FRAMES_MISSING_FOR_TRACK, "FRAMES_MISSING_FOR_TRACK"),
    (MORE_THAN_ALLOWED_TRACKS, "MORE_THAN_ALLOWED_TRACKS"),
    (KMS_KEY_ACCESS_DENIED, "KMS_KEY_ACCESS_DENIED"),
    (KMS_KEY_DISABLED, "KMS_KEY_DISABLED"),
    (KMS_KEY_VALIDATION, "KMS_KEY_VALIDATION"),
    (KMS_KEY_UNAVAILABLE, "KMS_KEY_UNAVAILABLE"),
    (KMS_KEY_INVALID_USAGE, "KMS_KEY_INVALID_USAGE"),
    (KMS_KEY_INVALID_STATE, "KMS_KEY_INVALID_STATE"),
    (KMS_KEY_NOT_FOUND, "KMS_KEY_NOT_FOUND"),
    (STREAM_DELETED, "STREAM_DELETED"),
    (INTERNAL_ERROR, "INTERNAL_ERROR"),
    (ARCHIVAL_ERROR, "ARCHIVAL_ERROR"),
];

/// The name of an ErrorId, for logs.
pub fn name(id: u32) -> Option<&'static str> {
    ALL.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers of kvs-api.md §7.4, in its order.
    #[test]
    fn matches_spec_table() {
        let spec = [
            4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4010, 4011, 4012, 4500,
            4501, 4502, 4503, 4504, 4505, 4506, 4507, 5000, 5001,
        ];
        assert_eq!(ALL.iter().map(|(i, _)| *i).collect::<Vec<_>>(), spec);
        assert_eq!(name(4006), Some("INVALID_MKV_DATA"));
        assert_eq!(name(4242), None);
    }
}
