//! KVS ARNs (`kvs-api.md` §15.1):
//! `arn:aws:kinesisvideo:<region>:<account>:<stream|channel>/<name>/<creation epoch ms>`.

use std::fmt;
use std::str::FromStr;

use crate::name::NameError;

/// What an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A video stream.
    Stream,
    /// A signaling channel.
    Channel,
}

impl ResourceKind {
    /// The resource-type word in the ARN.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Channel => "channel",
        }
    }
}

/// A parsed KVS ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    /// Partition, normally `aws`.
    pub partition: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Account id (digits).
    pub account: String,
    /// Stream or channel.
    pub kind: ResourceKind,
    /// The resource name (`[a-zA-Z0-9_.-]+`).
    pub name: String,
    /// Creation time in epoch milliseconds, which makes ARNs of re-created resources differ.
    pub created_ms: u64,
}

/// Why an ARN was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid ARN {arn:?}: {reason}; expected arn:aws:kinesisvideo:<region>:<account>:<stream|channel>/<name>/<epoch-ms>"
)]
pub struct ArnError {
    arn: String,
    reason: &'static str,
}

impl Arn {
    /// Builds an ARN for a new resource.
    pub fn new(
        region: &str,
        account: &str,
        kind: ResourceKind,
        name: &str,
        created_ms: u64,
    ) -> Self {
        Self {
            partition: "aws".to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            kind,
            name: name.to_owned(),
            created_ms,
        }
    }
}

impl FromStr for Arn {
    type Err = ArnError;

    /// Parses with the model's pattern
    /// `arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+`, length 1..1024.
    fn from_str(s: &str) -> Result<Self, ArnError> {
        let err = |reason| ArnError {
            arn: s.chars().take(1100).collect(),
            reason,
        };
        if s.is_empty() || s.len() > 1024 {
            return Err(err("length must be 1 to 1024"));
        }
        let mut parts = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(err("not six ':'-separated parts starting with \"arn\""));
        };
        if partition.is_empty()
            || !partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("bad partition"));
        }
        if service != "kinesisvideo" {
            return Err(err("service must be kinesisvideo"));
        }
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("bad region"));
        }
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("account must be digits"));
        }
        let mut rparts = resource.splitn(3, '/');
        let (Some(kind), Some(name), Some(created)) = (rparts.next(), rparts.next(), rparts.next())
        else {
            return Err(err("resource must be <type>/<name>/<epoch-ms>"));
        };
        let kind = match kind {
            "stream" => ResourceKind::Stream,
            "channel" => ResourceKind::Channel,
            _ => return Err(err("resource type must be stream or channel")),
        };
        crate::name::StreamName::parse(name).map_err(|_: NameError| err("bad resource name"))?;
        if created.is_empty() || !created.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("creation time must be digits"));
        }
        let created_ms = created
            .parse()
            .map_err(|_| err("creation time out of range"))?;
        Ok(Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            kind,
            name: name.to_owned(),
            created_ms,
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kinesisvideo:{}:{}:{}/{}/{}",
            self.partition,
            self.region,
            self.account,
            self.kind.as_str(),
            self.name,
            self.created_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = Arn::new(
            "us-east-1",
            "123456789012",
            ResourceKind::Stream,
            "bike-1",
            1_624_750_290_639,
        );
        let s = a.to_string();
        assert_eq!(
            s,
            "arn:aws:kinesisvideo:us-east-1:123456789012:stream/bike-1/1624750290639"
        );
        assert_eq!(s.parse::<Arn>().unwrap(), a);
    }

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            (
                "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1578944519357",
                true,
            ),
            (
                "arn:aws-cn:kinesisvideo:cn-north-1:1:stream/a.b_c-d/0",
                true,
            ),
            ("arn:aws:kinesis:us-west-2:1:stream/a/1", false),
            ("arn:aws:kinesisvideo:us-west-2:abc:stream/a/1", false),
            ("arn:aws:kinesisvideo:us-west-2:1:bucket/a/1", false),
            ("arn:aws:kinesisvideo:us-west-2:1:stream/a", false),
            ("arn:aws:kinesisvideo:us-west-2:1:stream/../1", true), // ".." matches the model's charset; never used as a path
            ("arn:aws:kinesisvideo:us-west-2:1:stream/a b/1", false),
            ("arn:aws:kinesisvideo:us-west-2:1:stream/a/1x", false),
            ("", false),
            ("not-an-arn", false),
        ];
        for (s, ok) in cases {
            assert_eq!(s.parse::<Arn>().is_ok(), *ok, "{s}");
        }
    }
}
