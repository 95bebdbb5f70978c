//! Crash recovery at open, and `fsck` (`DESIGN.md`, "Crash recovery").
//!
//! Invariant kept by the writer: media bytes are fsynced before the index rows that point at them
//! commit, and a stream's fragments are appended in commit order. So after a crash every byte
//! after the last indexed fragment (in `(file id, offset)` order) belongs to a batch that never
//! committed: an orphan. Recovery cuts exactly those bytes; nothing an index row points at.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use kvs_core::FragmentNumber;
use rusqlite::Connection;

use super::index;
use super::layout::{self, TRASH_DIR};
use super::writer::{StreamFiles, Writer};
use crate::frame_table;
use crate::{Error, Result};

/// What [`super::LocalFragmentStore::open`] did to make the media files match the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Streams in the index.
    pub streams: usize,
    /// Current segment files cut back to the end of their last indexed fragment.
    pub truncated_files: usize,
    /// Segment files after the last indexed one, removed (they held only unindexed bytes).
    pub removed_files: usize,
    /// Orphan bytes cut or removed, in total.
    pub orphan_bytes: u64,
    /// Current segment files missing or shorter than the index says (run fsck).
    pub damaged_files: usize,
}

/// Makes every stream's media files end where its index ends. Returns the writer's per-stream
/// state.
pub(crate) fn recover(
    conn: &Connection,
    media_dir: &Path,
) -> Result<(HashMap<i64, StreamFiles>, RecoveryReport)> {
    let mut report = RecoveryReport::default();
    let mut streams = HashMap::new();
    for (id, arn, dir) in index::all_streams(conn)? {
        report.streams += 1;
        let dir = media_dir.join(dir);
        let (segments, _) = layout::list_segments(&dir)?;
        let last = index::last_indexed_end(conn, id)?;
        let mut dir_changed = false;
        let mut current = None;
        let keep_up_to = last.map(|(file_id, _)| file_id);
        // Whole files after the last indexed one: batches that rolled to a new file and never
        // committed. With no rows at all (never written, or everything expired) that is every file.
        for (&file_id, &len) in &segments {
            if keep_up_to.is_some_and(|k| file_id <= k) {
                continue;
            }
            let path = dir.join(layout::segment_file_name(file_id));
            std::fs::remove_file(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            tracing::warn!(stream = %arn, path = %path.display(), cut_bytes = len, "removed segment file holding only unindexed bytes");
            report.removed_files += 1;
            report.orphan_bytes += len;
            dir_changed = true;
        }
        if let Some((file_id, end)) = last {
            let path = dir.join(layout::segment_file_name(file_id));
            match segments.get(&file_id) {
                Some(&len) if len >= end => {
                    if len > end {
                        let f = OpenOptions::new().write(true).open(&path);
                        f.and_then(|f| {
                            f.set_len(end)?;
                            f.sync_all()
                        })
                        .map_err(|source| Error::Io {
                            path: path.clone(),
                            source,
                        })?;
                        tracing::warn!(stream = %arn, path = %path.display(), cut_bytes = len - end, "cut orphan bytes after the last indexed fragment");
                        report.truncated_files += 1;
                        report.orphan_bytes += len - end;
                    }
                    current = Some((file_id, end));
                }
                found => {
                    // Not a crash leftover: something removed or cut the file. Start a new file
                    // and leave the damage to fsck.
                    tracing::error!(stream = %arn, path = %path.display(), len = ?found, indexed_end = end, "current segment file is missing or shorter than the index; run fsck");
                    report.damaged_files += 1;
                }
            }
        }
        if dir_changed {
            layout::sync_dir(&dir)?;
        }
        let next_file_id = segments
            .keys()
            .next_back()
            .copied()
            .max(keep_up_to)
            .map_or(1, |id| id + 1);
        streams.insert(
            id,
            StreamFiles {
                arn,
                dir,
                current,
                next_file_id,
                order: index::order_state(conn, id)?,
            },
        );
    }
    if report.orphan_bytes > 0 || report.damaged_files > 0 {
        tracing::warn!(?report, "fragment store recovered from an unclean shutdown");
    } else {
        tracing::info!(streams = report.streams, "fragment store opened cleanly");
    }
    Ok((streams, report))
}

/// The result of [`super::LocalFragmentStore::fsck`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Whether problems were repaired (`repair = true`); otherwise only reported.
    pub repaired: bool,
    /// Streams checked.
    pub streams: usize,
    /// Index rows checked.
    pub fragments: u64,
    /// Segment files found.
    pub segment_files: usize,
    /// Segment files no index row references (repair: removed). A stream's current file is
    /// exempt: the next fragment is appended to it.
    pub orphan_files: Vec<PathBuf>,
    /// Directories under `media/` of no stream in the index, e.g. left by a crash during
    /// stream deletion (repair: removed).
    pub orphan_dirs: Vec<PathBuf>,
    /// Bytes after the last indexed fragment of a file (repair: cut).
    pub orphan_tails: Vec<OrphanTail>,
    /// Segment files index rows reference but that do not exist.
    pub missing_files: Vec<PathBuf>,
    /// Index rows whose media or frame table is damaged (repair: rows deleted; the bytes are
    /// gone, and readers would fail on them).
    pub bad_fragments: Vec<BadFragment>,
    /// Entries in store directories that openkvs did not create. Reported, never touched, and
    /// not counted by [`FsckReport::is_clean`].
    pub unknown_entries: Vec<PathBuf>,
}

impl FsckReport {
    /// No problems found.
    pub fn is_clean(&self) -> bool {
        self.orphan_files.is_empty()
            && self.orphan_dirs.is_empty()
            && self.orphan_tails.is_empty()
            && self.missing_files.is_empty()
            && self.bad_fragments.is_empty()
    }
}

/// Unindexed bytes at the end of a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanTail {
    /// The segment file.
    pub path: PathBuf,
    /// Its length.
    pub file_len: u64,
    /// End of the last indexed fragment in it.
    pub indexed_end: u64,
}

/// A damaged index row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFragment {
    /// The stream.
    pub stream_arn: String,
    /// The fragment.
    pub number: FragmentNumber,
    /// What is wrong.
    pub problem: FragmentProblem,
}

/// What is wrong with a [`BadFragment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentProblem {
    /// The segment file does not exist.
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// The segment file ends before the fragment does.
    PastEnd {
        /// The file.
        path: PathBuf,
        /// Its length.
        file_len: u64,
        /// Where the fragment ends.
        end: u64,
    },
    /// The frame table does not decode or does not match `size_bytes`/`frame_count`.
    CorruptFrames {
        /// Why.
        reason: &'static str,
    },
}

/// Checks (and with `repair`, fixes) media files against the index. Runs on the writer thread,
/// between batches, so no append is in flight.
pub(crate) fn fsck(w: &mut Writer, repair: bool) -> Result<FsckReport> {
    let mut report = FsckReport {
        repaired: repair,
        ..FsckReport::default()
    };
    let mut known_dirs = HashSet::new();
    for (stream_id, arn, dir_name) in index::all_streams(&w.conn)? {
        report.streams += 1;
        let dir = w.media_dir.join(&dir_name);
        known_dirs.insert(dir_name);
        let (segments, other) = layout::list_segments(&dir)?;
        report.segment_files += segments.len();
        report.unknown_entries.extend(other);

        // End of the last referenced byte per file: over all rows (what the report calls
        // referenced) and over undamaged rows (what is left after repair deletes damaged rows).
        let mut ends_all: BTreeMap<u64, u64> = BTreeMap::new();
        let mut ends_good: BTreeMap<u64, u64> = BTreeMap::new();
        let mut bad = Vec::new();
        let mut missing = BTreeMap::new();
        index::for_each_row(&w.conn, stream_id, |row| {
            report.fragments += 1;
            let path = dir.join(layout::segment_file_name(row.file_id));
            let end = row.file_offset + row.size_bytes;
            let problem = match segments.get(&row.file_id) {
                None => {
                    missing.insert(row.file_id, path.clone());
                    Some(FragmentProblem::MissingFile { path })
                }
                Some(&file_len) if end > file_len => Some(FragmentProblem::PastEnd {
                    path,
                    file_len,
                    end,
                }),
                Some(_) => check_frames(&row)
                    .err()
                    .map(|reason| FragmentProblem::CorruptFrames { reason }),
            };
            let max_end = |ends: &mut BTreeMap<u64, u64>| {
                let e = ends.entry(row.file_id).or_insert(0);
                *e = (*e).max(end);
            };
            max_end(&mut ends_all);
            match problem {
                Some(problem) => bad.push(BadFragment {
                    stream_arn: arn.clone(),
                    number: row.number,
                    problem,
                }),
                None => max_end(&mut ends_good),
            }
            Ok(())
        })?;
        report.missing_files.extend(missing.into_values());

        let current = w
            .streams
            .get(&stream_id)
            .and_then(|s| s.current)
            .map(|(file_id, _)| file_id);
        let mut orphan_files = Vec::new();
        let mut tails = Vec::new();
        for (&file_id, &file_len) in &segments {
            let path = dir.join(layout::segment_file_name(file_id));
            match ends_all.get(&file_id) {
                // The current file may have no rows (all expired); the next append goes there.
                None if Some(file_id) != current => orphan_files.push(path),
                Some(&indexed_end) if file_len > indexed_end => {
                    tails.push(OrphanTail {
                        path,
                        file_len,
                        indexed_end,
                    });
                }
                _ => {}
            }
        }

        if repair && !(bad.is_empty() && orphan_files.is_empty() && tails.is_empty()) {
            let tx = w.conn.transaction().map_err(|source| Error::Index {
                op: "begin fsck repair",
                source,
            })?;
            for b in &bad {
                index::delete_fragment(&tx, stream_id, b.number)?;
            }
            tx.commit().map_err(|source| Error::Index {
                op: "commit fsck repair",
                source,
            })?;
            // With damaged rows gone, make every file end at its last good fragment. Files without
            // one go, except a current file that had no rows to begin with (all expired).
            let mut removed_any = false;
            let mut new_current = w.streams.get(&stream_id).and_then(|s| s.current);
            for (&file_id, &file_len) in &segments {
                let path = dir.join(layout::segment_file_name(file_id));
                let is_current = Some(file_id) == current;
                match ends_good.get(&file_id) {
                    None if !is_current || ends_all.contains_key(&file_id) => {
                        std::fs::remove_file(&path).map_err(|source| Error::Io {
                            path: path.clone(),
                            source,
                        })?;
                        removed_any = true;
                        if is_current {
                            new_current = None;
                        }
                    }
                    Some(&good_end) if file_len > good_end => {
                        OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| {
                                f.set_len(good_end)?;
                                f.sync_all()
                            })
                            .map_err(|source| Error::Io {
                                path: path.clone(),
                                source,
                            })?;
                        if is_current {
                            new_current = Some((file_id, good_end));
                        }
                    }
                    _ => {}
                }
            }
            if removed_any {
                layout::sync_dir(&dir)?;
            }
            if let Some(st) = w.streams.get_mut(&stream_id) {
                st.current = new_current;
            }
        }
        report.orphan_files.extend(orphan_files);
        report.orphan_tails.extend(tails);
        report.bad_fragments.extend(bad);
    }

    let entries = std::fs::read_dir(&w.media_dir).map_err(|source| Error::Io {
        path: w.media_dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: w.media_dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            report.unknown_entries.push(entry.path());
            continue;
        };
        if name == TRASH_DIR || known_dirs.contains(name) {
            continue;
        }
        let is_dir = entry
            .file_type()
            .map_err(|source| Error::Io {
                path: entry.path(),
                source,
            })?
            .is_dir();
        if is_dir
            && name
                .rsplit_once('.')
                .is_some_and(|(_, ms)| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
        {
            if repair {
                std::fs::remove_dir_all(entry.path()).map_err(|source| Error::Io {
                    path: entry.path(),
                    source,
                })?;
            }
            report.orphan_dirs.push(entry.path());
        } else {
            report.unknown_entries.push(entry.path());
        }
    }
    if repair && !report.orphan_dirs.is_empty() {
        layout::sync_dir(&w.media_dir)?;
    }
    if report.is_clean() {
        tracing::info!(
            streams = report.streams,
            fragments = report.fragments,
            "fsck: clean"
        );
    } else {
        tracing::warn!(?report, "fsck found problems");
    }
    Ok(report)
}

fn check_frames(row: &index::CheckRow) -> std::result::Result<(), &'static str> {
    let frames = frame_table::decode(row.frames.as_deref().ok_or("frame table row missing")?)?;
    if i64::try_from(frames.len()).ok() != Some(row.frame_count) {
        return Err("frame_count does not match the frame table");
    }
    if frames.iter().map(|f| u64::from(f.size)).sum::<u64>() != row.size_bytes {
        return Err("frame sizes do not add up to size_bytes");
    }
    Ok(())
}
