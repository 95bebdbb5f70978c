//! Where things live in the data directory (`DESIGN.md`, "File layout"):
//!
//! ```text
//! <data_dir>/fragments.db                       the index (SQLite, WAL)
//! <data_dir>/fragments.lock                     flock: one store per data directory
//! <data_dir>/media/<stream dir>/<file_id>.seg   append-only segment files, file_id as %016x
//! <data_dir>/media/.trash/                      deleted streams' directories, removed in the background
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use kvs_core::{Arn, ResourceKind};

use crate::{Error, Result};

/// The index database file.
pub(crate) const INDEX_DB: &str = "fragments.db";
/// The lock file.
pub(crate) const LOCK_FILE: &str = "fragments.lock";
/// The media directory.
pub(crate) const MEDIA_DIR: &str = "media";
/// Under [`MEDIA_DIR`]: directories of deleted streams awaiting removal. Never the name of a
/// stream directory, which always ends in `.<digits>` (see [`stream_dir_name`]).
pub(crate) const TRASH_DIR: &str = ".trash";

/// Longest stream directory name we build. Linux allows 255 bytes per path component; a stream
/// name alone may be 256 characters.
const MAX_DIR_NAME: usize = 200;

/// The media directory name of a stream: `<name>.<created_ms>` from its ARN.
///
/// Stream names are `[a-zA-Z0-9_.-]{1,256}` (checked again here), so the result never contains a
/// path separator and, because it ends in `.<digits>`, is never `.` or `..`. Names too long for
/// one path component keep a 160-character prefix plus `~` and a 64-bit FNV-1a hash of the whole
/// name (`~` cannot occur in a name, so these never collide with a short name's directory).
pub(crate) fn stream_dir_name(arn: &str) -> Result<String> {
    let invalid = |source| Error::InvalidStreamArn {
        arn: arn.to_owned(),
        source,
    };
    let parsed: Arn = arn.parse().map_err(|e| invalid(Some(e)))?;
    if parsed.kind != ResourceKind::Stream {
        return Err(invalid(None));
    }
    let name = parsed.name.as_str();
    // Arn::from_str validated the charset; this module's safety must not depend on that.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(invalid(None));
    }
    let short = format!("{name}.{}", parsed.created_ms);
    if short.len() <= MAX_DIR_NAME {
        return Ok(short);
    }
    Ok(format!(
        "{}~{:016x}.{}",
        &name[..160],
        fnv1a64(name.as_bytes()),
        parsed.created_ms
    ))
}

/// FNV-1a, 64 bit: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `<file_id:016x>.seg`.
pub(crate) fn segment_file_name(file_id: u64) -> String {
    format!("{file_id:016x}.seg")
}

/// Inverse of [`segment_file_name`]; `None` for anything else.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Segment files of a stream directory: file id -> length. A missing directory has none.
/// Other entries are returned separately (fsck reports them; nothing else touches them).
pub(crate) fn list_segments(dir: &Path) -> Result<(BTreeMap<u64, u64>, Vec<PathBuf>)> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut segments = BTreeMap::new();
    let mut other = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((segments, other)),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let id = entry.file_name().to_str().and_then(parse_segment_file_name);
        match id {
            Some(id) => {
                let len = entry
                    .metadata()
                    .map_err(|source| Error::Io {
                        path: entry.path(),
                        source,
                    })?
                    .len();
                segments.insert(id, len);
            }
            None => other.push(entry.path()),
        }
    }
    Ok((segments, other))
}

/// fsyncs a directory, making entries created, renamed or removed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_dir_names() {
        let arn = |res: &str| format!("arn:aws:kinesisvideo:us-east-1:123456789012:{res}");
        let long = "a".repeat(256);
        let cases: Vec<(String, Option<String>)> = vec![
            (
                arn("stream/cam-1/1624750290639"),
                Some("cam-1.1624750290639".into()),
            ),
            (arn("stream/../7"), Some("...7".into())),
            (arn("stream/./7"), Some("..7".into())),
            (arn("stream/a_b.c-d/0"), Some("a_b.c-d.0".into())),
            (arn("channel/cam-1/1624750290639"), None),
            (arn("stream/a%2Fb/1"), None),
            (arn("stream/a/b/1"), None),
            ("not an arn".into(), None),
            (
                arn(&format!("stream/{long}/1")),
                Some(format!(
                    "{}~{:016x}.1",
                    &long[..160],
                    fnv1a64(long.as_bytes())
                )),
            ),
        ];
        for (input, want) in cases {
            let got = stream_dir_name(&input).ok();
            assert_eq!(got, want, "{input}");
            if let Some(dir) = got {
                assert!(
                    !dir.contains('/')
                        && dir != "."
                        && dir != ".."
                        && dir != TRASH_DIR
                        && dir.len() <= 255
                );
            }
        }
        // Long names that share the prefix still get distinct directories.
        let other = format!("{}b", "a".repeat(255));
        assert_ne!(
            stream_dir_name(&arn(&format!("stream/{long}/1"))).unwrap(),
            stream_dir_name(&arn(&format!("stream/{other}/1"))).unwrap()
        );
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(1), "0000000000000001.seg");
        assert_eq!(segment_file_name(u64::MAX), "ffffffffffffffff.seg");
        let cases = [
            ("0000000000000001.seg", Some(1)),
            ("00000000000000ff.seg", Some(255)),
            ("00000000000000FF.seg", None),
            ("1.seg", None),
            ("0000000000000001.seg.tmp", None),
            ("0000000000000001", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_segment_file_name(name), want, "{name}");
        }
    }
}
