//! The [`Catalog`] trait and its records.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::Result;

/// At most this many tags per stream or channel (`kvs-api.md` §15.1).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// Tag key → value, sorted.
pub type Tags = BTreeMap<String, String>;

/// How a stream or channel is addressed: KVS accepts a name or an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// By name.
    Name(String),
    /// By full ARN (must match exactly, including the creation time).
    Arn(String),
}

impl Selector {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::Arn(a) => a.clone(),
        }
    }
}

/// `Status` of a stream or channel. openkvs creates resources synchronously, so they are
/// `ACTIVE` at once (the C producer loops on DescribeStream until it sees `ACTIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceStatus {
    /// Ready for use.
    Active,
}

impl ResourceStatus {
    /// The KVS wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
        }
    }
}

/// A stream as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Stream name.
    pub name: String,
    /// Stream ARN.
    pub arn: String,
    /// `DeviceName`, informational.
    pub device_name: Option<String>,
    /// `MediaType`, e.g. `video/h264`.
    pub media_type: Option<String>,
    /// `KmsKeyId`, stored and echoed; openkvs does not encrypt with it.
    pub kms_key_id: Option<String>,
    /// Changes on every mutation.
    pub version: String,
    /// Always active.
    pub status: ResourceStatus,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// Retention; 0 means no persistence.
    pub data_retention_hours: u32,
    /// `HOT` or `WARM`.
    pub storage_tier: String,
}

/// What CreateStream stores.
#[derive(Debug, Clone, Default)]
pub struct NewStream {
    /// Stream name (validated by the caller).
    pub name: String,
    /// Stream ARN (built by the caller from region, account, name and `created_ms`).
    pub arn: String,
    /// `DeviceName`.
    pub device_name: Option<String>,
    /// `MediaType`.
    pub media_type: Option<String>,
    /// `KmsKeyId`.
    pub kms_key_id: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// `DataRetentionInHours`.
    pub data_retention_hours: u32,
    /// `HOT` or `WARM`.
    pub storage_tier: String,
    /// Initial tags.
    pub tags: Tags,
}

/// A change to a stream. `None` leaves a member unchanged.
#[derive(Debug, Clone, Default)]
pub struct StreamUpdate {
    /// New `DeviceName`.
    pub device_name: Option<String>,
    /// New `MediaType`.
    pub media_type: Option<String>,
    /// New retention in hours.
    pub data_retention_hours: Option<u32>,
    /// New storage tier.
    pub storage_tier: Option<String>,
}

/// A signaling channel as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Channel name.
    pub name: String,
    /// Channel ARN.
    pub arn: String,
    /// `SINGLE_MASTER` (the only type KVS supports) or `FULL_MESH`.
    pub channel_type: String,
    /// Always active.
    pub status: ResourceStatus,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// Changes on every mutation.
    pub version: String,
    /// TTL of undelivered signaling messages, 5..=120.
    pub message_ttl_seconds: u32,
    /// Media storage (WebRTC ingestion) mapping: the stream ARN when enabled.
    pub media_storage_stream_arn: Option<String>,
}

/// What CreateSignalingChannel stores.
#[derive(Debug, Clone, Default)]
pub struct NewChannel {
    /// Channel name.
    pub name: String,
    /// Channel ARN.
    pub arn: String,
    /// `SINGLE_MASTER` or `FULL_MESH`.
    pub channel_type: String,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// TTL of undelivered messages.
    pub message_ttl_seconds: u32,
    /// Initial tags.
    pub tags: Tags,
}

/// A change to a channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelUpdate {
    /// New message TTL.
    pub message_ttl_seconds: Option<u32>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, sorted by name.
    pub items: Vec<T>,
    /// Name of the last item when more follow: pass it back as `after`.
    pub next_after: Option<String>,
}

/// Streams, channels and tags. All names and ARNs are validated by the caller.
///
/// Implementations must make `create_*` atomic: of several concurrent creates of one name,
/// exactly one succeeds and the others get [`crate::Error::AlreadyExists`].
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// CreateStream.
    async fn create_stream(&self, new: NewStream) -> Result<StreamRecord>;
    /// DescribeStream.
    async fn stream(&self, sel: &Selector) -> Result<StreamRecord>;
    /// ListStreams: names starting with `prefix`, strictly after `after`, at most `limit`.
    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamRecord>>;
    /// UpdateStream / UpdateDataRetention: applies `update` if `current_version` matches.
    async fn update_stream(
        &self,
        sel: &Selector,
        current_version: &str,
        update: StreamUpdate,
    ) -> Result<StreamRecord>;
    /// DeleteStream (and its tags). `current_version`, when given, must match.
    async fn delete_stream(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<StreamRecord>;

    /// CreateSignalingChannel.
    async fn create_channel(&self, new: NewChannel) -> Result<ChannelRecord>;
    /// DescribeSignalingChannel.
    async fn channel(&self, sel: &Selector) -> Result<ChannelRecord>;
    /// ListSignalingChannels.
    async fn list_channels(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ChannelRecord>>;
    /// UpdateSignalingChannel.
    async fn update_channel(
        &self,
        sel: &Selector,
        current_version: &str,
        update: ChannelUpdate,
    ) -> Result<ChannelRecord>;
    /// DeleteSignalingChannel (and its tags).
    async fn delete_channel(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<ChannelRecord>;

    /// Adds or overwrites tags on a stream or channel, by ARN.
    async fn tag(&self, arn: &str, tags: Tags) -> Result<()>;
    /// Removes tags (missing keys are ignored).
    async fn untag(&self, arn: &str, keys: Vec<String>) -> Result<()>;
    /// All tags of a stream or channel.
    async fn tags(&self, arn: &str) -> Result<Tags>;
}
