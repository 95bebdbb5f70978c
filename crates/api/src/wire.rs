//! JSON shapes of the `kinesisvideo` control plane, member names exactly as in
//! `shared/aws-models/kinesisvideo.service-2.json`. Every input member is optional here so that
//! validation can say precisely what is missing; absent output members are omitted, not null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `{"ComparisonOperator":"BEGINS_WITH","ComparisonValue":"…"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NameCondition {
    pub(crate) comparison_operator: Option<String>,
    pub(crate) comparison_value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamStorageConfiguration {
    pub(crate) default_storage_tier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateStreamInput {
    pub(crate) device_name: Option<String>,
    pub(crate) stream_name: Option<String>,
    pub(crate) media_type: Option<String>,
    pub(crate) kms_key_id: Option<String>,
    pub(crate) data_retention_in_hours: Option<i64>,
    pub(crate) tags: Option<BTreeMap<String, String>>,
    pub(crate) stream_storage_configuration: Option<StreamStorageConfiguration>,
}

/// Inputs that address a stream by `StreamName` or `StreamARN`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamRef {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInput {
    pub(crate) max_results: Option<i64>,
    pub(crate) next_token: Option<String>,
    pub(crate) stream_name_condition: Option<NameCondition>,
    pub(crate) channel_name_condition: Option<NameCondition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateStreamInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    pub(crate) current_version: Option<String>,
    pub(crate) device_name: Option<String>,
    pub(crate) media_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateDataRetentionInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    pub(crate) current_version: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) data_retention_change_in_hours: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateStreamStorageConfigurationInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    pub(crate) current_version: Option<String>,
    pub(crate) stream_storage_configuration: Option<StreamStorageConfiguration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) current_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetDataEndpointInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    #[serde(rename = "APIName")]
    pub(crate) api_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagStreamInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    pub(crate) tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UntagStreamInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
    pub(crate) tag_key_list: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsForStreamInput {
    #[serde(flatten)]
    pub(crate) stream: StreamRef,
}

/// `{"Key":"k","Value":"v"}` as in CreateSignalingChannel and TagResource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub(crate) key: Option<String>,
    pub(crate) value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResourceTagsInput {
    #[serde(rename = "ResourceARN")]
    pub(crate) resource_arn: Option<String>,
    pub(crate) tags: Option<Vec<Tag>>,
    pub(crate) tag_key_list: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SingleMasterConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message_ttl_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateSignalingChannelInput {
    pub(crate) channel_name: Option<String>,
    pub(crate) channel_type: Option<String>,
    pub(crate) single_master_configuration: Option<SingleMasterConfiguration>,
    pub(crate) tags: Option<Vec<Tag>>,
}

/// Inputs that address a channel by `ChannelName` or `ChannelARN`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelRef {
    pub(crate) channel_name: Option<String>,
    #[serde(rename = "ChannelARN")]
    pub(crate) channel_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateSignalingChannelInput {
    #[serde(rename = "ChannelARN")]
    pub(crate) channel_arn: Option<String>,
    pub(crate) current_version: Option<String>,
    pub(crate) single_master_configuration: Option<SingleMasterConfiguration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteSignalingChannelInput {
    #[serde(rename = "ChannelARN")]
    pub(crate) channel_arn: Option<String>,
    pub(crate) current_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EndpointConfiguration {
    pub(crate) protocols: Option<Vec<String>>,
    pub(crate) role: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetSignalingChannelEndpointInput {
    #[serde(rename = "ChannelARN")]
    pub(crate) channel_arn: Option<String>,
    pub(crate) single_master_channel_endpoint_configuration: Option<EndpointConfiguration>,
}

// ---- outputs ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) device_name: Option<String>,
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kms_key_id: Option<String>,
    pub(crate) version: String,
    pub(crate) status: &'static str,
    /// Epoch seconds, fractional.
    pub(crate) creation_time: f64,
    pub(crate) data_retention_in_hours: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelInfo {
    pub(crate) channel_name: String,
    #[serde(rename = "ChannelARN")]
    pub(crate) channel_arn: String,
    pub(crate) channel_type: String,
    pub(crate) channel_status: &'static str,
    pub(crate) creation_time: f64,
    pub(crate) single_master_configuration: SingleMasterConfiguration,
    pub(crate) version: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResourceEndpointListItem {
    pub(crate) protocol: String,
    pub(crate) resource_endpoint: String,
}
