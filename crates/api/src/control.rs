//! The `kinesisvideo` control plane (`kvs-api.md` §2): streams, signaling channels, tags and
//! endpoints. Handlers validate with [`crate::validate`], call the [`store::Catalog`], and
//! answer the model's output shape.

use std::collections::BTreeMap;

use kvs_core::{Arn, ErrorKind, ResourceKind};
use serde_json::{Value, json};
use store::{
    ChannelRecord, ChannelUpdate, NewChannel, NewStream, Selector, StreamRecord, StreamUpdate,
};

use crate::error::{ApiError, ApiResult};
use crate::validate as v;
use crate::wire::*;
use crate::{AppState, RequestCtx};

/// Longest retention KVS allows: 10 years.
const MAX_RETENTION_HOURS: i64 = 87_600;

fn epoch_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn stream_info(s: StreamRecord) -> StreamInfo {
    StreamInfo {
        device_name: s.device_name,
        stream_name: s.name,
        stream_arn: s.arn,
        media_type: s.media_type,
        kms_key_id: s.kms_key_id,
        version: s.version,
        status: s.status.as_str(),
        creation_time: epoch_secs(s.created_ms),
        data_retention_in_hours: s.data_retention_hours,
    }
}

fn channel_info(c: ChannelRecord) -> ChannelInfo {
    ChannelInfo {
        channel_name: c.name,
        channel_arn: c.arn,
        channel_type: c.channel_type,
        channel_status: c.status.as_str(),
        creation_time: epoch_secs(c.created_ms),
        single_master_configuration: SingleMasterConfiguration {
            message_ttl_seconds: Some(c.message_ttl_seconds.into()),
        },
        version: c.version,
    }
}

fn storage_tier(c: Option<&StreamStorageConfiguration>) -> ApiResult<Option<String>> {
    let Some(c) = c else { return Ok(None) };
    let tier = v::required(
        &c.default_storage_tier,
        "streamStorageConfiguration.defaultStorageTier",
    )?;
    match tier.as_str() {
        "HOT" | "WARM" => Ok(Some(tier.clone())),
        other => Err(ApiError::invalid(format!(
            "DefaultStorageTier {other:?} is not one of HOT, WARM"
        ))),
    }
}

pub(crate) async fn create_stream(
    st: AppState,
    ctx: RequestCtx,
    i: CreateStreamInput,
) -> ApiResult<Value> {
    let name = v::required(&i.stream_name, "streamName")?;
    v::resource_name(name, "streamName")?;
    if let Some(d) = &i.device_name {
        v::device_name(d)?;
    }
    if let Some(m) = &i.media_type {
        v::media_type(m)?;
    }
    if let Some(k) = &i.kms_key_id {
        v::length(k, "kmsKeyId", 1, 2048)?;
    }
    let retention = i.data_retention_in_hours.unwrap_or(0);
    if !(0..=MAX_RETENTION_HOURS).contains(&retention) {
        return Err(ApiError::invalid(format!(
            "DataRetentionInHours must be between 0 and {MAX_RETENTION_HOURS}, got {retention}"
        )));
    }
    if let Some(t) = &i.tags {
        v::tag_map(t)?;
    }
    let created_ms = ctx.now_ms;
    let arn = Arn::new(
        &st.config.region,
        &st.config.account_id,
        ResourceKind::Stream,
        name,
        created_ms as u64,
    );
    let rec = st
        .catalog
        .create_stream(NewStream {
            name: name.clone(),
            arn: arn.to_string(),
            device_name: i.device_name,
            media_type: i.media_type,
            kms_key_id: i.kms_key_id,
            created_ms,
            data_retention_hours: u32::try_from(retention).expect("range checked"),
            storage_tier: storage_tier(i.stream_storage_configuration.as_ref())?
                .unwrap_or_else(|| "HOT".into()),
            tags: i.tags.unwrap_or_default(),
        })
        .await?;
    tracing::info!(stream = %rec.name, arn = %rec.arn, retention_hours = rec.data_retention_hours, "stream created");
    Ok(json!({ "StreamARN": rec.arn }))
}

pub(crate) async fn describe_stream(st: AppState, _: RequestCtx, i: StreamRef) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream_name.as_ref(),
        i.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let rec = st.catalog.stream(&sel).await?;
    Ok(json!({ "StreamInfo": stream_info(rec) }))
}

pub(crate) async fn list_streams(st: AppState, _: RequestCtx, i: ListInput) -> ApiResult<Value> {
    let limit = v::max_results(i.max_results, 10_000, 10_000)?;
    let prefix = v::name_condition(i.stream_name_condition.as_ref(), "streamNameCondition")?;
    let after = v::decode_token("stream", i.next_token.as_ref())?;
    let page = st
        .catalog
        .list_streams(prefix.as_deref(), after.as_deref(), limit)
        .await?;
    Ok(page_json(page, "StreamInfoList", "stream", stream_info))
}

/// A listing page as `{"<key>": [...], "NextToken": "..."}` (token only when more follow).
fn page_json<T, W: serde::Serialize>(
    page: store::Page<T>,
    key: &str,
    kind: &str,
    f: fn(T) -> W,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        key.to_owned(),
        json!(page.items.into_iter().map(f).collect::<Vec<_>>()),
    );
    if let Some(a) = page.next_after {
        out.insert("NextToken".to_owned(), v::encode_token(kind, &a).into());
    }
    Value::Object(out)
}

pub(crate) async fn update_stream(
    st: AppState,
    _: RequestCtx,
    i: UpdateStreamInput,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream.stream_name.as_ref(),
        i.stream.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let ver = v::required(&i.current_version, "currentVersion")?;
    v::version(ver)?;
    if let Some(d) = &i.device_name {
        v::device_name(d)?;
    }
    if let Some(m) = &i.media_type {
        v::media_type(m)?;
    }
    let upd = StreamUpdate {
        device_name: i.device_name,
        media_type: i.media_type,
        ..Default::default()
    };
    st.catalog.update_stream(&sel, ver, upd).await?;
    Ok(json!({}))
}

pub(crate) async fn update_data_retention(
    st: AppState,
    _: RequestCtx,
    i: UpdateDataRetentionInput,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream.stream_name.as_ref(),
        i.stream.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let ver = v::required(&i.current_version, "currentVersion")?;
    v::version(ver)?;
    let op = v::required(&i.operation, "operation")?;
    let change = *v::required(
        &i.data_retention_change_in_hours,
        "dataRetentionChangeInHours",
    )?;
    if change < 1 {
        return Err(ApiError::invalid(format!(
            "DataRetentionChangeInHours must be at least 1, got {change}"
        )));
    }
    let cur = st.catalog.stream(&sel).await?;
    let now = i64::from(cur.data_retention_hours);
    let new = match op.as_str() {
        "INCREASE_DATA_RETENTION" => now + change,
        "DECREASE_DATA_RETENTION" => now - change,
        other => {
            return Err(ApiError::invalid(format!(
                "Operation {other:?} is not one of INCREASE_DATA_RETENTION, DECREASE_DATA_RETENTION"
            )));
        }
    };
    if !(0..=MAX_RETENTION_HOURS).contains(&new) {
        return Err(ApiError::invalid(format!(
            "the stream's retention is {now} h; changing it by {change} h gives {new} h, outside 0..={MAX_RETENTION_HOURS}"
        )));
    }
    let upd = StreamUpdate {
        data_retention_hours: Some(u32::try_from(new).expect("range checked")),
        ..Default::default()
    };
    // The version check is the catalog's, so a concurrent update between the read above and
    // this write fails with VersionMismatchException rather than being lost.
    let rec = st.catalog.update_stream(&sel, ver, upd).await?;
    tracing::info!(stream = %rec.name, from = now, to = new, "data retention changed");
    if new < now {
        // "Decreasing retention deletes older data immediately" (model doc).
        let cutoff = crate::now_ms() - new * 3_600_000;
        let n = st.fragments.expire(&rec.arn, cutoff).await?;
        tracing::info!(stream = %rec.name, fragments = n, "expired fragments after a retention decrease");
    }
    Ok(json!({}))
}

pub(crate) async fn describe_stream_storage(
    st: AppState,
    _: RequestCtx,
    i: StreamRef,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream_name.as_ref(),
        i.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let rec = st.catalog.stream(&sel).await?;
    Ok(json!({
        "StreamName": rec.name, "StreamARN": rec.arn,
        "StreamStorageConfiguration": { "DefaultStorageTier": rec.storage_tier },
    }))
}

pub(crate) async fn update_stream_storage(
    st: AppState,
    _: RequestCtx,
    i: UpdateStreamStorageConfigurationInput,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream.stream_name.as_ref(),
        i.stream.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let ver = v::required(&i.current_version, "currentVersion")?;
    v::version(ver)?;
    let cfg = v::required(
        &i.stream_storage_configuration,
        "streamStorageConfiguration",
    )?;
    let tier = storage_tier(Some(cfg))?;
    st.catalog
        .update_stream(
            &sel,
            ver,
            StreamUpdate {
                storage_tier: tier,
                ..Default::default()
            },
        )
        .await?;
    Ok(json!({}))
}

/// Stream-scoped configurations openkvs does not keep (image generation, notifications): the
/// stream must exist; the answer is "none configured", which is the truth.
pub(crate) async fn describe_unconfigured(
    st: AppState,
    _: RequestCtx,
    i: StreamRef,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream_name.as_ref(),
        i.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    st.catalog.stream(&sel).await?;
    Ok(json!({}))
}

pub(crate) async fn describe_mapped_resource(
    st: AppState,
    _: RequestCtx,
    i: StreamRef,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream_name.as_ref(),
        i.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    st.catalog.stream(&sel).await?;
    Ok(json!({ "MappedResourceConfigurationList": [] }))
}

pub(crate) async fn delete_stream(
    st: AppState,
    _: RequestCtx,
    i: DeleteStreamInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.stream_arn, "streamARN")?;
    v::arn(
        arn,
        "streamARN",
        Some(ResourceKind::Stream),
        ErrorKind::InvalidArgument,
    )?;
    if let Some(ver) = &i.current_version {
        v::version(ver)?;
    }
    let rec = st
        .catalog
        .delete_stream(&Selector::Arn(arn.clone()), i.current_version.as_deref())
        .await?;
    st.live.remove(&rec.arn);
    // The catalog row is gone, so the stream is invisible; its media goes now. A failure here
    // leaves orphans for fsck, never a visible half-deleted stream.
    if let Err(e) = st.fragments.delete_stream(&rec.arn).await {
        tracing::error!(stream = %rec.name, error = %e, "deleting the stream's media failed; fsck will remove it");
    }
    tracing::info!(stream = %rec.name, "stream deleted");
    Ok(json!({}))
}

const API_NAMES: &[&str] = &[
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

pub(crate) async fn get_data_endpoint(
    st: AppState,
    ctx: RequestCtx,
    i: GetDataEndpointInput,
) -> ApiResult<Value> {
    let sel = v::stream_selector(
        i.stream.stream_name.as_ref(),
        i.stream.stream_arn.as_ref(),
        ErrorKind::InvalidArgument,
    )?;
    let api = v::required(&i.api_name, "APIName")?;
    if !API_NAMES.contains(&api.as_str()) {
        return Err(ApiError::invalid(format!(
            "APIName {api:?} is not one of {}",
            API_NAMES.join(", ")
        )));
    }
    st.catalog.stream(&sel).await?;
    // One server serves every data-plane API; all request paths are distinct (kvs-api.md §1.1).
    Ok(json!({ "DataEndpoint": st.base_url(&ctx, "http") }))
}

fn stream_tag_selector(s: &StreamRef) -> ApiResult<Selector> {
    v::stream_selector(
        s.stream_name.as_ref(),
        s.stream_arn.as_ref(),
        ErrorKind::InvalidResourceFormat,
    )
}

pub(crate) async fn tag_stream(st: AppState, _: RequestCtx, i: TagStreamInput) -> ApiResult<Value> {
    let sel = stream_tag_selector(&i.stream)?;
    let tags = v::required(&i.tags, "tags")?;
    v::tag_map(tags)?;
    let rec = st.catalog.stream(&sel).await?;
    st.catalog.tag(&rec.arn, tags.clone()).await?;
    Ok(json!({}))
}

pub(crate) async fn untag_stream(
    st: AppState,
    _: RequestCtx,
    i: UntagStreamInput,
) -> ApiResult<Value> {
    let sel = stream_tag_selector(&i.stream)?;
    let keys = v::required(&i.tag_key_list, "tagKeyList")?;
    v::tag_keys(keys)?;
    let rec = st.catalog.stream(&sel).await?;
    st.catalog.untag(&rec.arn, keys.clone()).await?;
    Ok(json!({}))
}

pub(crate) async fn list_tags_for_stream(
    st: AppState,
    _: RequestCtx,
    i: ListTagsForStreamInput,
) -> ApiResult<Value> {
    let sel = stream_tag_selector(&i.stream)?;
    let rec = st.catalog.stream(&sel).await?;
    // At most 50 tags exist, so one page holds them all and NextToken is never needed.
    Ok(json!({ "Tags": st.catalog.tags(&rec.arn).await? }))
}

fn tag_list(tags: &[Tag]) -> ApiResult<BTreeMap<String, String>> {
    if tags.is_empty() || tags.len() > store::MAX_TAGS_PER_RESOURCE {
        return Err(ApiError::new(
            if tags.is_empty() {
                ErrorKind::InvalidArgument
            } else {
                ErrorKind::TagsLimitExceeded
            },
            format!(
                "Tags must have 1 to {} entries, got {}",
                store::MAX_TAGS_PER_RESOURCE,
                tags.len()
            ),
        ));
    }
    let mut map = BTreeMap::new();
    for t in tags {
        let k = v::required(&t.key, "tags.member.key")?;
        let val = v::required(&t.value, "tags.member.value")?;
        v::tag(k, val)?;
        map.insert(k.clone(), val.clone());
    }
    Ok(map)
}

fn resource_arn(i: &ResourceTagsInput) -> ApiResult<String> {
    let arn = v::required(&i.resource_arn, "resourceARN")?;
    v::length(arn, "resourceARN", 1, 1024)?;
    v::arn(arn, "resourceARN", None, ErrorKind::InvalidArgument)?;
    Ok(arn.clone())
}

pub(crate) async fn tag_resource(
    st: AppState,
    _: RequestCtx,
    i: ResourceTagsInput,
) -> ApiResult<Value> {
    let arn = resource_arn(&i)?;
    let tags = tag_list(v::required(&i.tags, "tags")?)?;
    st.catalog.tag(&arn, tags).await?;
    Ok(json!({}))
}

pub(crate) async fn untag_resource(
    st: AppState,
    _: RequestCtx,
    i: ResourceTagsInput,
) -> ApiResult<Value> {
    let arn = resource_arn(&i)?;
    let keys = v::required(&i.tag_key_list, "tagKeyList")?;
    v::tag_keys(keys)?;
    st.catalog.untag(&arn, keys.clone()).await?;
    Ok(json!({}))
}

pub(crate) async fn list_tags_for_resource(
    st: AppState,
    _: RequestCtx,
    i: ResourceTagsInput,
) -> ApiResult<Value> {
    let arn = resource_arn(&i)?;
    Ok(json!({ "Tags": st.catalog.tags(&arn).await? }))
}

fn message_ttl(c: Option<&SingleMasterConfiguration>) -> ApiResult<Option<u32>> {
    match c.and_then(|c| c.message_ttl_seconds) {
        None => Ok(None),
        Some(t) if (5..=120).contains(&t) => Ok(Some(u32::try_from(t).expect("range checked"))),
        Some(t) => Err(ApiError::invalid(format!(
            "MessageTtlSeconds must be between 5 and 120, got {t}"
        ))),
    }
}

pub(crate) async fn create_channel(
    st: AppState,
    ctx: RequestCtx,
    i: CreateSignalingChannelInput,
) -> ApiResult<Value> {
    let name = v::required(&i.channel_name, "channelName")?;
    v::resource_name(name, "channelName")?;
    let channel_type = match i.channel_type.as_deref() {
        None | Some("SINGLE_MASTER") => "SINGLE_MASTER",
        Some("FULL_MESH") => {
            return Err(ApiError::invalid(
                "ChannelType FULL_MESH is not supported (KVS supports only SINGLE_MASTER)",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "ChannelType {other:?} is not one of SINGLE_MASTER"
            )));
        }
    };
    let ttl = message_ttl(i.single_master_configuration.as_ref())?.unwrap_or(60);
    let tags = match &i.tags {
        None => BTreeMap::new(),
        Some(t) if t.is_empty() => BTreeMap::new(),
        Some(t) => tag_list(t)?,
    };
    let arn = Arn::new(
        &st.config.region,
        &st.config.account_id,
        ResourceKind::Channel,
        name,
        ctx.now_ms as u64,
    );
    let rec = st
        .catalog
        .create_channel(NewChannel {
            name: name.clone(),
            arn: arn.to_string(),
            channel_type: channel_type.into(),
            created_ms: ctx.now_ms,
            message_ttl_seconds: ttl,
            tags,
        })
        .await?;
    tracing::info!(channel = %rec.name, arn = %rec.arn, "signaling channel created");
    Ok(json!({ "ChannelARN": rec.arn }))
}

pub(crate) async fn describe_channel(
    st: AppState,
    _: RequestCtx,
    i: ChannelRef,
) -> ApiResult<Value> {
    let sel = v::channel_selector(i.channel_name.as_ref(), i.channel_arn.as_ref())?;
    Ok(json!({ "ChannelInfo": channel_info(st.catalog.channel(&sel).await?) }))
}

pub(crate) async fn list_channels(st: AppState, _: RequestCtx, i: ListInput) -> ApiResult<Value> {
    let limit = v::max_results(i.max_results, 10_000, 500)?;
    let prefix = v::name_condition(i.channel_name_condition.as_ref(), "channelNameCondition")?;
    let after = v::decode_token("channel", i.next_token.as_ref())?;
    let page = st
        .catalog
        .list_channels(prefix.as_deref(), after.as_deref(), limit)
        .await?;
    Ok(page_json(page, "ChannelInfoList", "channel", channel_info))
}

pub(crate) async fn update_channel(
    st: AppState,
    _: RequestCtx,
    i: UpdateSignalingChannelInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.channel_arn, "channelARN")?;
    v::arn(
        arn,
        "channelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    let ver = v::required(&i.current_version, "currentVersion")?;
    v::version(ver)?;
    let ttl = message_ttl(i.single_master_configuration.as_ref())?;
    st.catalog
        .update_channel(
            &Selector::Arn(arn.clone()),
            ver,
            ChannelUpdate {
                message_ttl_seconds: ttl,
            },
        )
        .await?;
    Ok(json!({}))
}

pub(crate) async fn delete_channel(
    st: AppState,
    _: RequestCtx,
    i: DeleteSignalingChannelInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.channel_arn, "channelARN")?;
    v::arn(
        arn,
        "channelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    if let Some(ver) = &i.current_version {
        v::version(ver)?;
    }
    let rec = st
        .catalog
        .delete_channel(&Selector::Arn(arn.clone()), i.current_version.as_deref())
        .await?;
    tracing::info!(channel = %rec.name, "signaling channel deleted");
    st.signaling.channel_deleted(&rec.arn);
    Ok(json!({}))
}

pub(crate) async fn get_channel_endpoint(
    st: AppState,
    ctx: RequestCtx,
    i: GetSignalingChannelEndpointInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.channel_arn, "channelARN")?;
    v::arn(
        arn,
        "channelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    let cfg = i
        .single_master_channel_endpoint_configuration
        .unwrap_or_default();
    // Undocumented defaults (kvs-api.md §13.2): WSS + HTTPS, role MASTER.
    let protocols = cfg
        .protocols
        .unwrap_or_else(|| vec!["WSS".into(), "HTTPS".into()]);
    if protocols.is_empty() || protocols.len() > 5 {
        return Err(ApiError::invalid(
            "Protocols must list 1 to 5 of WSS, HTTPS, WEBRTC",
        ));
    }
    match cfg.role.as_deref() {
        None | Some("MASTER" | "VIEWER") => {}
        Some(r) => {
            return Err(ApiError::invalid(format!(
                "Role {r:?} is not one of MASTER, VIEWER"
            )));
        }
    }
    let rec = st.catalog.channel(&Selector::Arn(arn.clone())).await?;
    let mut list = Vec::with_capacity(protocols.len());
    for p in &protocols {
        let endpoint = match p.as_str() {
            "WSS" => st.base_url(&ctx, "ws"),
            "HTTPS" => st.base_url(&ctx, "http"),
            "WEBRTC" if rec.media_storage_stream_arn.is_some() => st.base_url(&ctx, "http"),
            "WEBRTC" => {
                return Err(ApiError::invalid(format!(
                    "Protocol WEBRTC needs media storage enabled on channel {}; call UpdateMediaStorageConfiguration first",
                    rec.name
                )));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Protocol {other:?} is not one of WSS, HTTPS, WEBRTC"
                )));
            }
        };
        list.push(ResourceEndpointListItem {
            protocol: p.clone(),
            resource_endpoint: endpoint,
        });
    }
    Ok(json!({ "ResourceEndpointList": list }))
}

pub(crate) async fn describe_media_storage(
    st: AppState,
    _: RequestCtx,
    i: ChannelRef,
) -> ApiResult<Value> {
    let sel = v::channel_selector(i.channel_name.as_ref(), i.channel_arn.as_ref())?;
    let rec = st.catalog.channel(&sel).await?;
    let cfg = match rec.media_storage_stream_arn {
        Some(arn) => json!({ "Status": "ENABLED", "StreamARN": arn }),
        None => json!({ "Status": "DISABLED" }),
    };
    Ok(json!({ "MediaStorageConfiguration": cfg }))
}
