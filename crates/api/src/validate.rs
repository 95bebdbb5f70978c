//! Member validation with AWS-style messages ("1 validation error detected: Value … at …
//! failed to satisfy constraint: …"), so SDK users see the same text they would from KVS.

use std::collections::BTreeMap;

use base64::Engine as _;
use kvs_core::{Arn, ErrorKind, ResourceKind};
use store::Selector;

use crate::error::{ApiError, ApiResult};

fn constraint(member: &str, value: &str, rule: &str) -> ApiError {
    let shown: String = value.chars().take(300).collect();
    ApiError::invalid(format!(
        "1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// A required member.
pub(crate) fn required<'a, T>(v: &'a Option<T>, member: &str) -> ApiResult<&'a T> {
    v.as_ref()
        .ok_or_else(|| ApiError::invalid(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null")))
}

/// Length in characters within `min..=max`.
pub(crate) fn length(v: &str, member: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(constraint(
            member,
            v,
            &format!("Member must have length between {min} and {max}"),
        ));
    }
    Ok(())
}

fn name_like(v: &str, member: &str, max: usize) -> ApiResult<()> {
    length(v, member, 1, max)?;
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(constraint(
            member,
            v,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// `StreamName` / `ChannelName`.
pub(crate) fn resource_name(v: &str, member: &str) -> ApiResult<()> {
    name_like(v, member, 256)
}

/// `DeviceName`.
pub(crate) fn device_name(v: &str) -> ApiResult<()> {
    name_like(v, "deviceName", 128)
}

/// `MediaType`: `[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*`, 1..128.
pub(crate) fn media_type(v: &str) -> ApiResult<()> {
    length(v, "mediaType", 1, 128)?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    };
    let ok = v
        .split(',')
        .all(|t| matches!(t.split_once('/'), Some((a, b)) if word(a) && word(b)));
    if !ok {
        return Err(constraint(
            "mediaType",
            v,
            "Member must satisfy regular expression pattern: [\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+(,[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+)*",
        ));
    }
    Ok(())
}

/// `CurrentVersion`: `[a-zA-Z0-9]+`, 1..64.
pub(crate) fn version(v: &str) -> ApiResult<()> {
    if !kvs_core::is_valid_version(v) {
        return Err(constraint(
            "currentVersion",
            v,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9]+ with length between 1 and 64",
        ));
    }
    Ok(())
}

fn tag_chars_ok(s: &str) -> bool {
    // ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$
    s.chars().all(|c| {
        c.is_alphabetic()
            || c.is_numeric()
            || c == ' '
            || c.is_whitespace() && !c.is_control()
            || "_.:/=+-@".contains(c)
    })
}

/// One tag key and value.
pub(crate) fn tag(key: &str, value: &str) -> ApiResult<()> {
    length(key, "tagKey", 1, 128)?;
    if !tag_chars_ok(key) {
        return Err(constraint(
            "tagKey",
            key,
            "Member must satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$",
        ));
    }
    length(value, "tagValue", 0, 256)?;
    if !tag_chars_ok(value) {
        return Err(constraint(
            "tagValue",
            value,
            "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
        ));
    }
    Ok(())
}

/// A tag map of 1..=50 entries.
pub(crate) fn tag_map(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    if tags.is_empty() {
        return Err(constraint(
            "tags",
            "{}",
            "Member must have length greater than or equal to 1",
        ));
    }
    if tags.len() > store::MAX_TAGS_PER_RESOURCE {
        return Err(ApiError::new(
            ErrorKind::TagsLimitExceeded,
            format!(
                "{} tags given; a resource can have at most {}",
                tags.len(),
                store::MAX_TAGS_PER_RESOURCE
            ),
        ));
    }
    tags.iter().try_for_each(|(k, v)| tag(k, v))
}

/// A tag-key list of 1..=50 entries.
pub(crate) fn tag_keys(keys: &[String]) -> ApiResult<()> {
    if keys.is_empty() || keys.len() > 50 {
        return Err(constraint(
            "tagKeyList",
            &keys.len().to_string(),
            "Member must have length between 1 and 50",
        ));
    }
    keys.iter()
        .try_for_each(|k| length(k, "tagKeyList.member", 1, 128))
}

/// Parses an ARN of the expected kind. `bad_format` is the kind the operation's model lists
/// for malformed ARNs (`InvalidResourceFormat` for the tag operations, else `InvalidArgument`).
pub(crate) fn arn(
    v: &str,
    member: &str,
    kind: Option<ResourceKind>,
    bad_format: ErrorKind,
) -> ApiResult<Arn> {
    let parsed: Arn = v
        .parse()
        .map_err(|e: kvs_core::ArnError| ApiError::new(bad_format, format!("{member}: {e}")))?;
    if let Some(k) = kind
        && parsed.kind != k
    {
        return Err(ApiError::new(
            bad_format,
            format!("{member} {v:?} is not a {} ARN", k.as_str()),
        ));
    }
    Ok(parsed)
}

/// KVS's "StreamName or StreamARN" rule: exactly one, or both naming the same stream.
pub(crate) fn stream_selector(
    name: Option<&String>,
    arn_s: Option<&String>,
    bad_format: ErrorKind,
) -> ApiResult<Selector> {
    selector(
        name,
        arn_s,
        ResourceKind::Stream,
        "streamName",
        "streamARN",
        bad_format,
    )
}

/// The same rule for `ChannelName` / `ChannelARN`.
pub(crate) fn channel_selector(
    name: Option<&String>,
    arn_s: Option<&String>,
) -> ApiResult<Selector> {
    selector(
        name,
        arn_s,
        ResourceKind::Channel,
        "channelName",
        "channelARN",
        ErrorKind::InvalidArgument,
    )
}

fn selector(
    name: Option<&String>,
    arn_s: Option<&String>,
    kind: ResourceKind,
    name_member: &str,
    arn_member: &str,
    bad_format: ErrorKind,
) -> ApiResult<Selector> {
    let what = kind.as_str();
    match (name, arn_s) {
        (None, None) => Err(ApiError::invalid(format!(
            "You must specify either the {what} name or the {what} ARN ({name_member} or {arn_member})"
        ))),
        (Some(n), None) => {
            resource_name(n, name_member)?;
            Ok(Selector::Name(n.clone()))
        }
        (None, Some(a)) => {
            arn(a, arn_member, Some(kind), bad_format)?;
            Ok(Selector::Arn(a.clone()))
        }
        (Some(n), Some(a)) => {
            resource_name(n, name_member)?;
            let parsed = arn(a, arn_member, Some(kind), bad_format)?;
            if &parsed.name != n {
                return Err(ApiError::invalid(format!(
                    "{name_member} {n:?} and {arn_member} {a:?} name different {what}s; give one of them"
                )));
            }
            Ok(Selector::Arn(a.clone()))
        }
    }
}

/// `MaxResults` within `1..=max`, default `default`.
pub(crate) fn max_results(v: Option<i64>, max: i64, default: usize) -> ApiResult<usize> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(usize::try_from(n).expect("positive")),
        Some(n) => Err(constraint(
            "maxResults",
            &n.to_string(),
            &format!("Member must have value between 1 and {max}"),
        )),
    }
}

/// Encodes a listing position as an opaque `NextToken` (`[a-zA-Z0-9+/=]*`).
pub(crate) fn encode_token(kind: &str, after: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{kind}:{after}"))
}

/// Decodes a `NextToken` made by [`encode_token`] for the same listing kind.
pub(crate) fn decode_token(kind: &str, token: Option<&String>) -> ApiResult<Option<String>> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(format!(
            "NextToken {t:?} is not a token this listing returned; start without a NextToken"
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let after = s
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(bad)?;
    Ok(Some(after.to_owned()))
}

/// A `*NameCondition`: only `BEGINS_WITH` exists.
pub(crate) fn name_condition(
    c: Option<&crate::wire::NameCondition>,
    member: &str,
) -> ApiResult<Option<String>> {
    let Some(c) = c else { return Ok(None) };
    if let Some(op) = &c.comparison_operator
        && op != "BEGINS_WITH"
    {
        return Err(constraint(
            &format!("{member}.comparisonOperator"),
            op,
            "Member must satisfy enum value set: [BEGINS_WITH]",
        ));
    }
    match &c.comparison_value {
        Some(v) => {
            length(v, &format!("{member}.comparisonValue"), 1, 256)?;
            Ok(Some(v.clone()))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        for (v, ok) in [
            ("video/h264", true),
            ("video/h264,audio/aac", true),
            ("video/h264,", false),
            ("video", false),
            ("video/h 264", false),
            ("application/x-matroska+v1", true),
        ] {
            assert_eq!(media_type(v).is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn tags() {
        assert!(tag("owner", "bike-share ops").is_ok());
        assert!(tag("ünï", "ç").is_ok());
        assert!(tag("", "v").is_err());
        assert!(tag("a*b", "v").is_err());
        assert!(tag("k", &"v".repeat(257)).is_err());
    }

    #[test]
    fn tokens_round_trip_and_reject_foreign() {
        let t = encode_token("stream", "cam_1");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
        assert_eq!(
            decode_token("stream", Some(&t)).unwrap().as_deref(),
            Some("cam_1")
        );
        assert!(decode_token("channel", Some(&t)).is_err());
        assert!(decode_token("stream", Some(&"!!".to_owned())).is_err());
        assert_eq!(decode_token("stream", Some(&String::new())).unwrap(), None);
    }

    #[test]
    fn selectors() {
        let arn = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1".to_owned();
        let name = "cam".to_owned();
        let other = "other".to_owned();
        let k = ErrorKind::InvalidArgument;
        assert!(stream_selector(None, None, k).is_err());
        assert_eq!(
            stream_selector(Some(&name), None, k).unwrap(),
            Selector::Name(name.clone())
        );
        assert_eq!(
            stream_selector(None, Some(&arn), k).unwrap(),
            Selector::Arn(arn.clone())
        );
        assert!(stream_selector(Some(&name), Some(&arn), k).is_ok());
        assert!(stream_selector(Some(&other), Some(&arn), k).is_err());
        let chan = "arn:aws:kinesisvideo:us-east-1:123456789012:channel/cam/1".to_owned();
        assert!(stream_selector(None, Some(&chan), k).is_err());
        let e = stream_selector(
            None,
            Some(&"junk".to_owned()),
            ErrorKind::InvalidResourceFormat,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResourceFormat);
    }
}
