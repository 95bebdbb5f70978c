//! Every operation of the five KVS services, by request path (`shared/aws-models/*.service-2.json`).
//!
//! Paths are case-sensitive and inconsistent (`/TagResource` vs `/tagStream`): match them exactly.

/// What openkvs does with an operation today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Served by the JSON dispatcher with a JSON answer.
    Json,
    /// JSON request, streamed binary answer (GetMedia, GetMediaForFragmentList).
    Stream,
    /// Has its own route (PutMedia: streamed request and answer).
    Route,
    /// Exists in KVS, not in openkvs yet: answered with a 400 naming the operation.
    NotYet,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Model name, e.g. `CreateStream`.
    pub name: &'static str,
    /// Request path, e.g. `/createStream`.
    pub path: &'static str,
    /// Whether it changes state (a read-only principal may not call it).
    pub mutates: bool,
    /// Implementation status.
    pub support: Support,
}

const fn op(name: &'static str, path: &'static str, mutates: bool, support: Support) -> Operation {
    Operation {
        name,
        path,
        mutates,
        support,
    }
}

use Support::{Json, NotYet, Route, Stream};

/// All operations.
pub const OPERATIONS: &[Operation] = &[
    // kinesisvideo (control plane)
    op(
        "CreateSignalingChannel",
        "/createSignalingChannel",
        true,
        Json,
    ),
    op("CreateStream", "/createStream", true, Json),
    op(
        "DeleteEdgeConfiguration",
        "/deleteEdgeConfiguration",
        true,
        NotYet,
    ),
    op(
        "DeleteSignalingChannel",
        "/deleteSignalingChannel",
        true,
        Json,
    ),
    op("DeleteStream", "/deleteStream", true, Json),
    op(
        "DescribeEdgeConfiguration",
        "/describeEdgeConfiguration",
        false,
        NotYet,
    ),
    op(
        "DescribeImageGenerationConfiguration",
        "/describeImageGenerationConfiguration",
        false,
        Json,
    ),
    op(
        "DescribeMappedResourceConfiguration",
        "/describeMappedResourceConfiguration",
        false,
        Json,
    ),
    op(
        "DescribeMediaStorageConfiguration",
        "/describeMediaStorageConfiguration",
        false,
        Json,
    ),
    op(
        "DescribeNotificationConfiguration",
        "/describeNotificationConfiguration",
        false,
        Json,
    ),
    op(
        "DescribeSignalingChannel",
        "/describeSignalingChannel",
        false,
        Json,
    ),
    op("DescribeStream", "/describeStream", false, Json),
    op(
        "DescribeStreamStorageConfiguration",
        "/describeStreamStorageConfiguration",
        false,
        Json,
    ),
    op("GetDataEndpoint", "/getDataEndpoint", false, Json),
    op(
        "GetSignalingChannelEndpoint",
        "/getSignalingChannelEndpoint",
        false,
        Json,
    ),
    op(
        "ListEdgeAgentConfigurations",
        "/listEdgeAgentConfigurations",
        false,
        NotYet,
    ),
    op(
        "ListSignalingChannels",
        "/listSignalingChannels",
        false,
        Json,
    ),
    op("ListStreams", "/listStreams", false, Json),
    op("ListTagsForResource", "/ListTagsForResource", false, Json),
    op("ListTagsForStream", "/listTagsForStream", false, Json),
    op(
        "StartEdgeConfigurationUpdate",
        "/startEdgeConfigurationUpdate",
        true,
        NotYet,
    ),
    op("TagResource", "/TagResource", true, Json),
    op("TagStream", "/tagStream", true, Json),
    op("UntagResource", "/UntagResource", true, Json),
    op("UntagStream", "/untagStream", true, Json),
    op("UpdateDataRetention", "/updateDataRetention", true, Json),
    op(
        "UpdateImageGenerationConfiguration",
        "/updateImageGenerationConfiguration",
        true,
        NotYet,
    ),
    op(
        "UpdateMediaStorageConfiguration",
        "/updateMediaStorageConfiguration",
        true,
        NotYet,
    ),
    op(
        "UpdateNotificationConfiguration",
        "/updateNotificationConfiguration",
        true,
        NotYet,
    ),
    op(
        "UpdateSignalingChannel",
        "/updateSignalingChannel",
        true,
        Json,
    ),
    op("UpdateStream", "/updateStream", true, Json),
    op(
        "UpdateStreamStorageConfiguration",
        "/updateStreamStorageConfiguration",
        true,
        Json,
    ),
    // kinesis-video-media; PutMedia is not modeled but exists on the wire.
    op("PutMedia", "/putMedia", true, Route),
    op("GetMedia", "/getMedia", false, Stream),
    // kinesis-video-archived-media
    op("GetClip", "/getClip", false, Stream),
    op(
        "GetDASHStreamingSessionURL",
        "/getDASHStreamingSessionURL",
        false,
        Json,
    ),
    op(
        "GetHLSStreamingSessionURL",
        "/getHLSStreamingSessionURL",
        false,
        Json,
    ),
    op("GetImages", "/getImages", false, NotYet),
    op(
        "GetMediaForFragmentList",
        "/getMediaForFragmentList",
        false,
        Stream,
    ),
    op("ListFragments", "/listFragments", false, Json),
    // kinesis-video-signaling
    op(
        "GetIceServerConfig",
        "/v1/get-ice-server-config",
        false,
        Json,
    ),
    op(
        "SendAlexaOfferToMaster",
        "/v1/send-alexa-offer-to-master",
        true,
        Json,
    ),
    // kinesis-video-webrtc-storage
    op("JoinStorageSession", "/joinStorageSession", true, NotYet),
    op(
        "JoinStorageSessionAsViewer",
        "/joinStorageSessionAsViewer",
        true,
        NotYet,
    ),
];

/// The operation served at `path`, if any.
pub fn by_path(path: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the AWS models is in the table with the model's path.
    #[test]
    #[allow(clippy::print_stderr)] // a skipped test says why
    fn table_matches_the_models() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/aws-models");
        let Ok(entries) = std::fs::read_dir(dir) else {
            eprintln!(
                "skipping: {dir} not found (shared/ is beside the checkout in CI and development)"
            );
            return;
        };
        let mut checked = 0;
        for e in entries {
            let path = e.unwrap().path();
            if !path.to_string_lossy().ends_with(".service-2.json") {
                continue;
            }
            let model: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for (name, o) in model["operations"].as_object().unwrap() {
                let uri = o["http"]["requestUri"].as_str().unwrap();
                let ours = by_path(uri)
                    .unwrap_or_else(|| panic!("{name} ({uri}) missing from OPERATIONS"));
                assert_eq!(ours.name, name);
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            OPERATIONS.len() - 1,
            "all but the unmodeled PutMedia come from the models"
        );
    }
}
