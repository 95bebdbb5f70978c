//! Producer fragment metadata and the end-of-fragment marker, from MKV `Tags` (kvs-api.md
//! §7.3: `Tags` → `Tag` → `SimpleTag{TagName, TagString}`, ≤ 10 per fragment, name ≤ 128 B,
//! value ≤ 256 B, else ErrorId 4009).

use crate::config::{MAX_TAG_NAME_BYTES, MAX_TAG_VALUE_BYTES};
use crate::error::Error;

/// What one `Tags` element means for ingest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Extracted {
    /// Producer metadata `(name, value)`, in file order.
    pub(crate) pairs: Vec<(String, String)>,
    /// An `AWS_KINESISVIDEO_END_OF_FRAGMENT` SimpleTag was present.
    pub(crate) end_of_fragment: bool,
}

/// Reads a `Tags` element.
///
/// - `AWS_KINESISVIDEO_END_OF_FRAGMENT` anywhere sets `end_of_fragment`.
/// - Other names starting with `AWS_KINESISVIDEO` are KVS's own markers (image generation,
///   notifications) and are not stored.
/// - Tags whose `Targets` name tracks, editions, chapters or attachments describe those, not
///   the fragment (ffmpeg and GStreamer write `ENCODER`/`DURATION` per track): skipped.
/// - A SimpleTag without a value is stored with an empty one; a `TagBinary` is skipped (KVS
///   metadata is text); nested SimpleTags are ignored (the producer SDK writes none).
pub(crate) fn extract(tags: &[mkv::Tag]) -> Extracted {
    let mut out = Extracted::default();
    for tag in tags {
        let t = &tag.targets;
        let targeted = !(t.track_uids.is_empty()
            && t.edition_uids.is_empty()
            && t.chapter_uids.is_empty()
            && t.attachment_uids.is_empty());
        for s in &tag.simple_tags {
            if s.name == mkv::AWS_KINESISVIDEO_END_OF_FRAGMENT {
                out.end_of_fragment = true;
                continue;
            }
            if targeted || s.name.starts_with(mkv::AWS_KINESISVIDEO_PREFIX) {
                continue;
            }
            let value = match &s.value {
                Some(mkv::TagValue::String(v)) => v.clone(),
                None => String::new(),
                Some(mkv::TagValue::Binary(_)) => continue,
            };
            out.pairs.push((s.name.clone(), value));
        }
    }
    out
}

/// A limit broken by a fragment's tags, before the fragment (and so its timecode) is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    TooMany {
        count: usize,
    },
    TooLong {
        name: String,
        name_bytes: usize,
        value_bytes: usize,
    },
}

impl Violation {
    pub(crate) fn into_error(self, fragment_timecode: u64, max: usize) -> Error {
        match self {
            Violation::TooMany { count } => Error::TooManyTags {
                fragment_timecode,
                count,
                max,
            },
            Violation::TooLong {
                name,
                name_bytes,
                value_bytes,
            } => Error::TagTooLong {
                fragment_timecode,
                name,
                name_bytes,
                value_bytes,
            },
        }
    }
}

/// Tags collected for one fragment. Holds at most `max` pairs; past that only counts, so a
/// producer cannot grow it without bound.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TagAcc {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) count: usize,
    pub(crate) violation: Option<Violation>,
}

impl TagAcc {
    pub(crate) fn add(&mut self, name: String, value: String, max: usize) {
        self.count += 1;
        if self.violation.is_some() {
            return;
        }
        if name.len() > MAX_TAG_NAME_BYTES || value.len() > MAX_TAG_VALUE_BYTES {
            self.violation = Some(Violation::TooLong {
                name: name.chars().take(64).collect(),
                name_bytes: name.len(),
                value_bytes: value.len(),
            });
            self.pairs.clear();
        } else if self.count > max {
            self.violation = Some(Violation::TooMany { count: self.count });
            self.pairs.clear();
        } else {
            self.pairs.push((name, value));
        }
    }

    pub(crate) fn extend(&mut self, pairs: Vec<(String, String)>, max: usize) {
        for (n, v) in pairs {
            self.add(n, v, max);
        }
    }

    /// Adds everything `other` collected (its violation, if any, wins over a later one).
    pub(crate) fn merge(&mut self, other: TagAcc, max: usize) {
        if self.violation.is_none()
            && let Some(v) = other.violation
        {
            self.violation = Some(v);
            self.pairs.clear();
            self.count += other.count;
            return;
        }
        let extra = other.count - other.pairs.len();
        self.extend(other.pairs, max);
        self.count += extra;
    }

    /// The 4009 error for the current state, if any. A `TooMany` violation reports the final
    /// count.
    pub(crate) fn error(&self, fragment_timecode: u64, max: usize) -> Option<Error> {
        self.violation.clone().map(|v| {
            match v {
                Violation::TooMany { .. } => Violation::TooMany { count: self.count },
                v => v,
            }
            .into_error(fragment_timecode, max)
        })
    }

    pub(crate) fn check_invariants(&self, max: usize) {
        assert!(
            self.pairs.len() <= max,
            "{} tags held, max {max}",
            self.pairs.len()
        );
        assert!(self.pairs.len() <= self.count);
        if self.violation.is_some() {
            assert!(self.pairs.is_empty(), "tags kept after a violation");
        }
    }
}

#[cfg(test)]
mod tests {
    use mkv::{SimpleTag, Tag, TagValue, Targets};

    use super::*;

    #[test]
    fn extract_table() {
        let targeted = Tag {
            targets: Targets {
                track_uids: vec![1],
                ..Default::default()
            },
            simple_tags: vec![SimpleTag::string("ENCODER", "Lavc libx264")],
        };
        let binary = Tag {
            targets: Targets::default(),
            simple_tags: vec![SimpleTag {
                name: "BIN".into(),
                value: Some(TagValue::Binary(vec![1, 2])),
                ..Default::default()
            }],
        };
        let no_value = Tag {
            targets: Targets::default(),
            simple_tags: vec![SimpleTag {
                name: "FLAG".into(),
                ..Default::default()
            }],
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        type Pairs = Vec<(String, String)>;
        let cases: Vec<(Vec<Tag>, Pairs, bool)> = vec![
            (
                vec![Tag::strings([("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")])],
                vec![],
                true,
            ),
            (
                vec![Tag::strings([("CAMERA_EVENT", "motion"), ("ZONE", "door")])],
                pairs(&[("CAMERA_EVENT", "motion"), ("ZONE", "door")]),
                false,
            ),
            (
                vec![Tag::strings([
                    ("AWS_KINESISVIDEO_NOTIFICATION", "x"),
                    ("A", "1"),
                    ("AWS_KINESISVIDEO_END_OF_FRAGMENT", ""),
                ])],
                pairs(&[("A", "1")]),
                true,
            ),
            (vec![targeted], vec![], false),
            (vec![binary], vec![], false),
            (vec![no_value], pairs(&[("FLAG", "")]), false),
        ];
        for (tags, want_pairs, want_eof) in cases {
            let got = extract(&tags);
            assert_eq!(
                got,
                Extracted {
                    pairs: want_pairs,
                    end_of_fragment: want_eof
                },
                "{tags:?}"
            );
        }
    }

    #[test]
    fn limits() {
        let mut acc = TagAcc::default();
        for i in 0..10 {
            acc.add(format!("K{i}"), "v".into(), 10);
        }
        assert!(acc.error(5, 10).is_none());
        acc.add("K10".into(), "v".into(), 10);
        acc.add("K11".into(), "v".into(), 10);
        assert_eq!(
            acc.error(5, 10),
            Some(Error::TooManyTags {
                fragment_timecode: 5,
                count: 12,
                max: 10
            })
        );
        acc.check_invariants(10);

        let mut acc = TagAcc::default();
        acc.add("N".repeat(128), "V".repeat(256), 10);
        assert!(acc.error(0, 10).is_none());
        acc.add("N".repeat(129), String::new(), 10);
        assert!(matches!(
            acc.error(0, 10),
            Some(Error::TagTooLong {
                name_bytes: 129,
                value_bytes: 0,
                ..
            })
        ));
        let mut acc = TagAcc::default();
        acc.add("N".into(), "V".repeat(257), 10);
        assert!(matches!(
            acc.error(0, 10),
            Some(Error::TagTooLong {
                value_bytes: 257,
                ..
            })
        ));

        // Merging counts both sides.
        let mut a = TagAcc::default();
        a.extend(vec![("A".into(), "1".into()); 6], 10);
        let mut b = TagAcc::default();
        b.extend(vec![("B".into(), "1".into()); 6], 10);
        a.merge(b, 10);
        assert!(matches!(
            a.error(0, 10),
            Some(Error::TooManyTags { count: 12, .. })
        ));
        a.check_invariants(10);
    }
}
