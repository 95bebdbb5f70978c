//! `Tags`, `Tag`, `Targets`, `SimpleTag` (Matroska §5.1.8). KVS carries fragment metadata and
//! its `AWS_KINESISVIDEO_*` markers in SimpleTags (kvs-api.md §7.3, §8.1).

use crate::ebml;
use crate::error::{Error, Result};
use crate::ids::{self, ElementId};
use crate::master::{MAX_DEPTH, Master, write_master};

/// Tag name with which a KVS producer closes the current fragment early (empty value).
pub const AWS_KINESISVIDEO_END_OF_FRAGMENT: &str = "AWS_KINESISVIDEO_END_OF_FRAGMENT";
/// Prefix of the tag names reserved by KVS.
pub const AWS_KINESISVIDEO_PREFIX: &str = "AWS_KINESISVIDEO";

/// One `Tag`: what it applies to and its SimpleTags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tag {
    /// `Targets` (all-empty when absent; the writer then omits the element).
    pub targets: Targets,
    /// `SimpleTag` children in file order.
    pub simple_tags: Vec<SimpleTag>,
}

impl Tag {
    /// A Tag without Targets holding string SimpleTags, as KVS writes them.
    pub fn strings<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Tag {
            targets: Targets::default(),
            simple_tags: pairs
                .into_iter()
                .map(|(n, v)| SimpleTag::string(n, v))
                .collect(),
        }
    }
}

/// `Targets`: what a Tag applies to. Empty means the whole segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    /// `TargetTypeValue` (50 = album/movie/episode when absent).
    pub type_value: Option<u64>,
    /// `TargetType` (informational text).
    pub target_type: Option<String>,
    /// `TagTrackUID`s.
    pub track_uids: Vec<u64>,
    /// `TagEditionUID`s.
    pub edition_uids: Vec<u64>,
    /// `TagChapterUID`s.
    pub chapter_uids: Vec<u64>,
    /// `TagAttachmentUID`s.
    pub attachment_uids: Vec<u64>,
}

impl Targets {
    fn is_empty(&self) -> bool {
        *self == Targets::default()
    }
}

/// A `SimpleTag`: name, optional value, nested SimpleTags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleTag {
    /// `TagName` (empty when absent).
    pub name: String,
    /// `TagLanguage`.
    pub language: Option<String>,
    /// `TagDefault`.
    pub default: Option<bool>,
    /// `TagString` or `TagBinary`; `Some(String(""))` for KVS's empty END_OF_FRAGMENT value.
    pub value: Option<TagValue>,
    /// Nested `SimpleTag`s.
    pub children: Vec<SimpleTag>,
}

impl SimpleTag {
    /// A SimpleTag with a `TagString`.
    pub fn string(name: &str, value: &str) -> Self {
        SimpleTag {
            name: name.to_owned(),
            value: Some(TagValue::String(value.to_owned())),
            ..Default::default()
        }
    }

    /// The `TagString`, if that is the value.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Some(TagValue::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// The value of a SimpleTag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// `TagString` (UTF-8; NUL padding trimmed).
    String(String),
    /// `TagBinary`.
    Binary(Vec<u8>),
}

fn parse_targets(m: Master<'_>) -> Result<Targets> {
    let mut t = Targets::default();
    for c in m.children() {
        let c = c?;
        match c.id {
            ids::TARGET_TYPE_VALUE => t.type_value = Some(c.uint()?),
            ids::TARGET_TYPE => t.target_type = Some(c.string()),
            ids::TAG_TRACK_UID => t.track_uids.push(c.uint()?),
            ids::TAG_EDITION_UID => t.edition_uids.push(c.uint()?),
            ids::TAG_CHAPTER_UID => t.chapter_uids.push(c.uint()?),
            ids::TAG_ATTACHMENT_UID => t.attachment_uids.push(c.uint()?),
            _ => {}
        }
    }
    Ok(t)
}

fn parse_simple_tag(m: Master<'_>, depth: usize) -> Result<SimpleTag> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            offset: m.offset,
            id: ElementId(m.id),
            max: MAX_DEPTH,
        });
    }
    let mut s = SimpleTag::default();
    for c in m.children() {
        let c = c?;
        match c.id {
            ids::TAG_NAME => s.name = c.string(),
            ids::TAG_LANGUAGE => s.language = Some(c.string()),
            ids::TAG_DEFAULT => s.default = Some(c.uint()? != 0),
            ids::TAG_STRING => s.value = Some(TagValue::String(c.string())),
            ids::TAG_BINARY => s.value = Some(TagValue::Binary(c.data.to_vec())),
            ids::SIMPLE_TAG => s.children.push(parse_simple_tag(c.as_master(), depth + 1)?),
            _ => {}
        }
    }
    Ok(s)
}

/// Parses the data of a `Tags` element.
pub(crate) fn parse_tags(m: Master<'_>, verify_crc: bool) -> Result<Vec<Tag>> {
    if verify_crc {
        m.check_crc()?;
    }
    let mut tags = Vec::new();
    for c in m.children() {
        let c = c?;
        if c.id != ids::TAG {
            continue;
        }
        let mut tag = Tag::default();
        for c in c.as_master().children() {
            let c = c?;
            match c.id {
                ids::TARGETS => tag.targets = parse_targets(c.as_master())?,
                ids::SIMPLE_TAG => tag.simple_tags.push(parse_simple_tag(c.as_master(), 1)?),
                _ => {}
            }
        }
        tags.push(tag);
    }
    Ok(tags)
}

fn encode_simple_tag(out: &mut Vec<u8>, s: &SimpleTag) {
    let mut c = Vec::new();
    ebml::write_string(&mut c, ids::TAG_NAME, &s.name);
    if let Some(l) = &s.language {
        ebml::write_string(&mut c, ids::TAG_LANGUAGE, l);
    }
    if let Some(d) = s.default {
        ebml::write_uint(&mut c, ids::TAG_DEFAULT, u64::from(d));
    }
    match &s.value {
        Some(TagValue::String(v)) => ebml::write_string(&mut c, ids::TAG_STRING, v),
        Some(TagValue::Binary(v)) => ebml::write_element(&mut c, ids::TAG_BINARY, v),
        None => {}
    }
    for child in &s.children {
        encode_simple_tag(&mut c, child);
    }
    write_master(out, ids::SIMPLE_TAG, &c, false);
}

/// Encodes the children of a `Tags` element.
pub(crate) fn encode_tags(tags: &[Tag]) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        let mut c = Vec::new();
        if !tag.targets.is_empty() {
            let t = &tag.targets;
            let mut tc = Vec::new();
            if let Some(v) = t.type_value {
                ebml::write_uint(&mut tc, ids::TARGET_TYPE_VALUE, v);
            }
            if let Some(v) = &t.target_type {
                ebml::write_string(&mut tc, ids::TARGET_TYPE, v);
            }
            for &u in &t.track_uids {
                ebml::write_uint(&mut tc, ids::TAG_TRACK_UID, u);
            }
            for &u in &t.edition_uids {
                ebml::write_uint(&mut tc, ids::TAG_EDITION_UID, u);
            }
            for &u in &t.chapter_uids {
                ebml::write_uint(&mut tc, ids::TAG_CHAPTER_UID, u);
            }
            for &u in &t.attachment_uids {
                ebml::write_uint(&mut tc, ids::TAG_ATTACHMENT_UID, u);
            }
            write_master(&mut c, ids::TARGETS, &tc, false);
        }
        for s in &tag.simple_tags {
            encode_simple_tag(&mut c, s);
        }
        write_master(&mut out, ids::TAG, &c, false);
    }
    out
}
