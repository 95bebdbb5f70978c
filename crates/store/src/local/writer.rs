//! The one writer thread: group commit of fragments, plus every other mutation (track sets,
//! retention, stream deletion, fsck) so that they are serialized with the appends.
//!
//! A batch is everything queued when the thread comes round (up to
//! [`LocalFragmentOptions::max_batch_bytes`]). For a batch it
//!
//! 1. validates each fragment (stream and track set known, frame table consistent, number new);
//!    a bad fragment fails alone;
//! 2. appends each fragment's media to its stream's current segment file (rolling to a new file
//!    at [`LocalFragmentOptions::segment_bytes`]);
//! 3. `fdatasync`s every file written (in parallel when there are several) and fsyncs directories
//!    that got new entries;
//! 4. inserts all index rows in one SQLite transaction (its COMMIT fsyncs the WAL);
//! 5. answers every caller.
//!
//! If any step of 2–4 fails, every fragment of the batch fails with that error, the files are
//! truncated back to where the batch started (files created by the batch are removed), and the
//! thread carries on with the next batch. If even the truncation fails, the stream abandons that
//! file and starts a new one, so no later index row can point at the failed bytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use kvs_core::FragmentNumber;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::layout::{self, TRASH_DIR};
use super::{FsckReport, LocalFragmentOptions, index};
use crate::fragment::{FragmentMeta, NewFragment};
use crate::frame_table;
use crate::{Error, Result};

/// A request to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Persist(PersistRequest),
    TrackSet {
        stream_arn: String,
        dir: String,
        json: String,
        reply: oneshot::Sender<Result<i64>>,
    },
    Expire {
        stream_arn: String,
        before_ms: i64,
        reply: oneshot::Sender<Result<Expired>>,
    },
    DeleteStream {
        stream_arn: String,
        reply: oneshot::Sender<Result<Option<PathBuf>>>,
    },
    Fsck {
        repair: bool,
        reply: oneshot::Sender<Result<FsckReport>>,
    },
}

/// One `persist` call.
#[derive(Debug)]
pub(crate) struct PersistRequest {
    pub(crate) fragment: NewFragment,
    pub(crate) track_set_id: i64,
    pub(crate) reply: oneshot::Sender<Result<FragmentMeta>>,
}

/// What `expire` did in the writer; the caller unlinks `unreferenced_files` off the writer thread.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) deleted: u64,
    pub(crate) unreferenced_files: Vec<PathBuf>,
}

/// Append state of one stream.
#[derive(Debug)]
pub(crate) struct StreamFiles {
    pub(crate) arn: String,
    /// `media/<stream dir>`.
    pub(crate) dir: PathBuf,
    /// `(file id, length)` of the segment the next fragment goes to. Between batches the length
    /// is the end of the last indexed fragment in it and everything up to it is fsynced.
    pub(crate) current: Option<(u64, u64)>,
    /// Id for the next new segment file; never reused within a stream directory.
    pub(crate) next_file_id: u64,
    /// As committed.
    pub(crate) order: index::OrderState,
}

impl StreamFiles {
    /// State for a stream with no known current file: continues after the highest file id on disk.
    pub(crate) fn fresh(
        conn: &Connection,
        stream_id: i64,
        arn: String,
        dir: PathBuf,
    ) -> Result<Self> {
        let (segments, _) = layout::list_segments(&dir)?;
        let next_file_id = segments.keys().next_back().map_or(1, |id| id + 1);
        let order = index::order_state(conn, stream_id)?;
        Ok(Self {
            arn,
            dir,
            current: None,
            next_file_id,
            order,
        })
    }

    pub(crate) fn path(&self, file_id: u64) -> PathBuf {
        self.dir.join(layout::segment_file_name(file_id))
    }
}

/// Counters, readable while the writer runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) fragments: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) files_synced: AtomicU64,
}

/// Fault injection for this crate's tests: each counter fails that many upcoming operations with
/// ENOSPC. Outside `cfg(test)` it has no fields and never fails.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    #[cfg(test)]
    pub(crate) writes: std::sync::atomic::AtomicU32,
    #[cfg(test)]
    pub(crate) syncs: std::sync::atomic::AtomicU32,
    #[cfg(test)]
    pub(crate) commits: std::sync::atomic::AtomicU32,
    #[cfg(test)]
    pub(crate) truncates: std::sync::atomic::AtomicU32,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Write,
    Sync,
    Commit,
    Truncate,
}

impl Faults {
    fn check(&self, fault: Fault) -> std::io::Result<()> {
        #[cfg(test)]
        {
            let counter = match fault {
                Fault::Write => &self.writes,
                Fault::Sync => &self.syncs,
                Fault::Commit => &self.commits,
                Fault::Truncate => &self.truncates,
            };
            if counter
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
        }
        #[cfg(not(test))]
        let _ = fault;
        Ok(())
    }
}

/// The writer thread's state.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) db_path: PathBuf,
    pub(crate) media_dir: PathBuf,
    pub(crate) opts: LocalFragmentOptions,
    /// By stream id; every stream in the `stream` table has an entry.
    pub(crate) streams: HashMap<i64, StreamFiles>,
    /// ARN -> stream id.
    pub(crate) stream_ids: HashMap<String, i64>,
    /// Track set id -> stream id, filled on demand.
    pub(crate) track_set_owner: HashMap<i64, i64>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) faults: Arc<Faults>,
}

/// A validated fragment of the current batch.
struct Accepted {
    req: PersistRequest,
    stream_id: i64,
    frames: Vec<u8>,
    tags_json: Option<String>,
    /// Set when its media is written: `(file id, offset)`.
    location: Option<(u64, u64)>,
}

/// Where a stream was before the batch touched it.
struct Undo {
    current: Option<(u64, u64)>,
    created_files: Vec<PathBuf>,
}

/// Files and directories a batch must sync before committing.
#[derive(Default)]
struct BatchFiles {
    /// Written and not yet synced, by `(stream id, file id)`.
    dirty: HashMap<(i64, u64), (PathBuf, File)>,
    /// Directories that got new entries.
    dirs: BTreeSet<PathBuf>,
    undo: HashMap<i64, Undo>,
}

impl Writer {
    /// Runs until every sender is dropped.
    pub(crate) fn run(mut self, rx: &Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut batch = Vec::new();
            let mut batch_bytes = 0usize;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Persist(req) => {
                        batch_bytes += req.fragment.media.len();
                        batch.push(req);
                        if batch_bytes >= self.opts.max_batch_bytes {
                            break; // the rest waits for the next batch
                        }
                    }
                    other => {
                        // Keep call order: what was queued before this command commits first.
                        self.commit_batch(std::mem::take(&mut batch));
                        batch_bytes = 0;
                        self.handle(other);
                    }
                }
                next = rx.try_recv().ok();
            }
            self.commit_batch(batch);
        }
        tracing::debug!("fragment writer thread exiting");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Persist(_) => unreachable!("persists are batched by run()"),
            Command::TrackSet {
                stream_arn,
                dir,
                json,
                reply,
            } => {
                let _ = reply.send(self.track_set(stream_arn, &dir, &json));
            }
            Command::Expire {
                stream_arn,
                before_ms,
                reply,
            } => {
                let _ = reply.send(self.expire(&stream_arn, before_ms));
            }
            Command::DeleteStream { stream_arn, reply } => {
                let _ = reply.send(self.delete_stream(&stream_arn));
            }
            Command::Fsck { repair, reply } => {
                let _ = reply.send(super::recovery::fsck(self, repair));
            }
        }
    }

    fn track_set(&mut self, stream_arn: String, dir: &str, json: &str) -> Result<i64> {
        let Some((stream_id, id)) =
            index::insert_track_set(&mut self.conn, &stream_arn, dir, json)?
        else {
            return Err(Error::StreamDirTaken {
                stream_arn,
                dir: self.media_dir.join(dir),
            });
        };
        self.track_set_owner.insert(id, stream_id);
        if !self.streams.contains_key(&stream_id) {
            let files = StreamFiles::fresh(
                &self.conn,
                stream_id,
                stream_arn.clone(),
                self.media_dir.join(dir),
            )?;
            self.streams.insert(stream_id, files);
        }
        self.stream_ids.insert(stream_arn, stream_id);
        Ok(id)
    }

    /// The stream id of an ARN that has stored a track set.
    fn stream_id(&mut self, stream_arn: &str) -> Result<Option<i64>> {
        if let Some(&id) = self.stream_ids.get(stream_arn) {
            return Ok(Some(id));
        }
        let Some((id, dir)) = index::stream_by_arn(&self.conn, stream_arn)? else {
            return Ok(None);
        };
        if !self.streams.contains_key(&id) {
            let files = StreamFiles::fresh(
                &self.conn,
                id,
                stream_arn.to_owned(),
                self.media_dir.join(dir),
            )?;
            self.streams.insert(id, files);
        }
        self.stream_ids.insert(stream_arn.to_owned(), id);
        Ok(Some(id))
    }

    fn check(
        &mut self,
        req: &PersistRequest,
        seen: &mut HashSet<(i64, FragmentNumber)>,
    ) -> Result<(i64, Vec<u8>, Option<String>)> {
        let f = &req.fragment;
        let invalid = |reason| Error::InvalidFragment {
            stream_arn: f.stream_arn.clone(),
            number: f.number,
            reason,
        };
        let Some(stream_id) = self.stream_id(&f.stream_arn)? else {
            return Err(Error::NotFound {
                what: "stream",
                key: f.stream_arn.clone(),
            });
        };
        let owner = match self.track_set_owner.get(&req.track_set_id) {
            Some(&owner) => Some(owner),
            None => index::track_set_stream(&self.conn, req.track_set_id)?,
        };
        if owner != Some(stream_id) {
            return Err(Error::NotFound {
                what: "track set",
                key: format!("{} of {}", req.track_set_id, f.stream_arn),
            });
        }
        self.track_set_owner.insert(req.track_set_id, stream_id);
        let (frames, total) = frame_table::encode(&f.frames).map_err(invalid)?;
        if total != f.media.len() as u64 {
            return Err(invalid("frame sizes do not add up to the media length"));
        }
        if u32::try_from(f.frames.len()).is_err() {
            return Err(invalid("more than 2^32 frames"));
        }
        if f.duration_ms < 0 {
            return Err(invalid("negative duration"));
        }
        let tags_json = if f.tags.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&f.tags).expect("string pairs always serialize"))
        };
        if !seen.insert((stream_id, f.number))
            || index::fragment_exists(&self.conn, stream_id, f.number)?
        {
            return Err(Error::DuplicateFragment {
                stream_arn: f.stream_arn.clone(),
                number: f.number,
            });
        }
        Ok((stream_id, frames, tags_json))
    }

    /// Steps 1–5 of the module docs.
    fn commit_batch(&mut self, batch: Vec<PersistRequest>) {
        if batch.is_empty() {
            return;
        }
        let mut seen = HashSet::new();
        let mut accepted = Vec::with_capacity(batch.len());
        for req in batch {
            match self.check(&req, &mut seen) {
                Ok((stream_id, frames, tags_json)) => {
                    accepted.push(Accepted {
                        req,
                        stream_id,
                        frames,
                        tags_json,
                        location: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(stream = %req.fragment.stream_arn, number = %req.fragment.number, error = %e, "fragment rejected");
                    let _ = req.reply.send(Err(e));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        // Order flags after this batch, applied to the writer's state only if it commits.
        let mut orders: HashMap<i64, index::OrderState> = HashMap::new();
        for a in &accepted {
            let f = &a.req.fragment;
            let start = self.streams[&a.stream_id].order;
            orders
                .entry(a.stream_id)
                .or_insert(start)
                .admit(f.number, f.server_ms, f.producer_ms);
        }
        let order_changes: Vec<_> = orders
            .iter()
            .filter(|&(id, o)| {
                let old = self.streams[id].order;
                (old.server_ordered, old.producer_ordered) != (o.server_ordered, o.producer_ordered)
            })
            .map(|(&id, &o)| (id, o))
            .collect();
        let mut files = BatchFiles::default();
        let result = self.write_and_commit(&mut accepted, &mut files, &order_changes);
        match result {
            Ok(()) => {
                for (id, o) in orders {
                    self.streams
                        .get_mut(&id)
                        .expect("accepted streams have state")
                        .order = o;
                }
                let bytes: u64 = accepted
                    .iter()
                    .map(|a| a.req.fragment.media.len() as u64)
                    .sum();
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .fragments
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                for a in accepted {
                    let f = a.req.fragment;
                    let meta = FragmentMeta {
                        size_bytes: f.media.len() as u64,
                        frame_count: f.frames.len() as u32,
                        stream_arn: f.stream_arn,
                        number: f.number,
                        producer_ms: f.producer_ms,
                        server_ms: f.server_ms,
                        duration_ms: f.duration_ms,
                        cluster_timecode: f.cluster_timecode,
                        track_set_id: a.req.track_set_id,
                        tags: f.tags,
                    };
                    let _ = a.req.reply.send(Ok(meta));
                }
            }
            Err(e) => {
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, fragments = accepted.len(), "group commit failed; rolling the batch back");
                self.roll_back(files);
                let e = Arc::new(e);
                for a in accepted {
                    let f = a.req.fragment;
                    let _ = a.req.reply.send(Err(Error::Persist {
                        stream_arn: f.stream_arn,
                        number: f.number,
                        source: e.clone(),
                    }));
                }
            }
        }
    }

    fn write_and_commit(
        &mut self,
        accepted: &mut [Accepted],
        files: &mut BatchFiles,
        order_changes: &[(i64, index::OrderState)],
    ) -> Result<()> {
        for a in accepted.iter_mut() {
            a.location = Some(self.append(a.stream_id, &a.req.fragment.media, files)?);
        }
        let dirty: Vec<_> = files.dirty.drain().map(|(_, v)| v).collect();
        self.sync_files(&dirty)?;
        for dir in &files.dirs {
            layout::sync_dir(dir)?;
        }
        self.inject(Fault::Commit).map_err(|source| Error::Io {
            path: self.db_path.clone(),
            source,
        })?;
        let rows = accepted.iter().map(|a| {
            let f = &a.req.fragment;
            let (file_id, file_offset) = a.location.expect("every accepted fragment was written");
            index::NewRow {
                stream_id: a.stream_id,
                number: f.number,
                producer_ms: f.producer_ms,
                server_ms: f.server_ms,
                duration_ms: f.duration_ms,
                size_bytes: f.media.len() as u64,
                cluster_timecode: f.cluster_timecode,
                frame_count: f.frames.len() as u32,
                track_set_id: a.req.track_set_id,
                file_id,
                file_offset,
                tags_json: a.tags_json.as_deref(),
                frames: &a.frames,
            }
        });
        index::insert_fragments(&mut self.conn, rows, order_changes)
    }

    /// Appends one fragment's media; returns `(file id, offset)`.
    fn append(
        &mut self,
        stream_id: i64,
        media: &[u8],
        files: &mut BatchFiles,
    ) -> Result<(u64, u64)> {
        let st = self
            .streams
            .get_mut(&stream_id)
            .expect("validated streams have files state");
        files.undo.entry(stream_id).or_insert_with(|| Undo {
            current: st.current,
            created_files: Vec::new(),
        });
        let size = media.len() as u64;
        let roll = match st.current {
            None => true,
            Some((_, len)) => len > 0 && len + size > self.opts.segment_bytes,
        };
        if roll {
            let file_id = st.next_file_id;
            st.next_file_id += 1;
            let path = st.path(file_id);
            let create = || {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
            };
            let file = match create() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&st.dir).map_err(|source| Error::Io {
                        path: st.dir.clone(),
                        source,
                    })?;
                    files.dirs.insert(self.media_dir.clone());
                    create()
                }
                r => r,
            }
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            files.dirs.insert(st.dir.clone());
            files
                .undo
                .get_mut(&stream_id)
                .expect("inserted above")
                .created_files
                .push(path.clone());
            st.current = Some((file_id, 0));
            files.dirty.insert((stream_id, file_id), (path, file));
        }
        let (file_id, offset) = st.current.expect("set above");
        let key = (stream_id, file_id);
        if !files.dirty.contains_key(&key) {
            if files.dirty.len() >= self.opts.max_open_files {
                // Sync early and close, rather than run out of descriptors on a batch that
                // touches thousands of streams.
                let shed: Vec<_> = files.dirty.drain().map(|(_, v)| v).collect();
                self.sync_files(&shed)?;
            }
            let st = &self.streams[&stream_id];
            let path = st.path(file_id);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            files.dirty.insert(key, (path, file));
        }
        let (path, file) = &files.dirty[&key];
        self.inject(Fault::Write)
            .and_then(|()| file.write_all_at(media, offset))
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let st = self.streams.get_mut(&stream_id).expect("present");
        st.current = Some((file_id, offset + size));
        Ok((file_id, offset))
    }

    /// `fdatasync`s files, several at once when there are many: with one file per stream, a
    /// batch from 1000 streams means 1000 syncs, and the device overlaps them.
    fn sync_files(&self, files: &[(PathBuf, File)]) -> Result<()> {
        self.counters
            .files_synced
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        let faults = &*self.faults;
        let sync_one = |(path, file): &(PathBuf, File)| {
            faults
                .check(Fault::Sync)
                .and_then(|()| file.sync_data())
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })
        };
        let threads = self.opts.sync_threads.max(1);
        if files.len() <= 1 || threads == 1 {
            return files.iter().try_for_each(sync_one);
        }
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|s| {
            let workers: Vec<_> = files
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().try_for_each(sync_one)))
                .collect();
            // Join all before returning, and report the first error.
            let mut result = Ok(());
            for w in workers {
                let r = w
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })
    }

    /// Undoes a failed batch's appends.
    fn roll_back(&mut self, files: BatchFiles) {
        drop(files.dirty);
        for (stream_id, undo) in files.undo {
            let Some(st) = self.streams.get(&stream_id) else {
                continue;
            };
            for path in &undo.created_files {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove segment file of a failed batch");
                }
            }
            let current = match undo.current {
                None => None,
                Some((file_id, len)) => {
                    let path = st.path(file_id);
                    let truncated = self
                        .inject(Fault::Truncate)
                        .and_then(|()| OpenOptions::new().write(true).open(&path))
                        .and_then(|f| f.set_len(len));
                    match truncated {
                        Ok(()) => Some((file_id, len)),
                        Err(e) => {
                            // Never append after bytes we could not remove: the next fragment
                            // starts a new file. fsck reports (and can cut) the stale tail.
                            tracing::error!(path = %path.display(), error = %e, "cannot truncate segment file after a failed batch; abandoning it");
                            None
                        }
                    }
                }
            };
            self.streams
                .get_mut(&stream_id)
                .expect("checked above")
                .current = current;
        }
    }

    fn expire(&mut self, stream_arn: &str, before_ms: i64) -> Result<Expired> {
        let Some(stream_id) = self.stream_id(stream_arn)? else {
            return Ok(Expired {
                deleted: 0,
                unreferenced_files: Vec::new(),
            });
        };
        let deleted = index::expire(&mut self.conn, stream_id, before_ms)?;
        let st = &self.streams[&stream_id];
        let current = st.current.map(|(id, _)| id);
        let (segments, _) = layout::list_segments(&st.dir)?;
        let mut unreferenced_files = Vec::new();
        for &file_id in segments.keys() {
            // The current file stays even if empty of rows: the next append goes there.
            if Some(file_id) != current && !index::file_referenced(&self.conn, stream_id, file_id)?
            {
                unreferenced_files.push(st.path(file_id));
            }
        }
        Ok(Expired {
            deleted,
            unreferenced_files,
        })
    }

    fn delete_stream(&mut self, stream_arn: &str) -> Result<Option<PathBuf>> {
        let Some(stream_id) = self.stream_id(stream_arn)? else {
            return Ok(None);
        };
        index::delete_stream(&mut self.conn, stream_id)?;
        self.stream_ids.remove(stream_arn);
        self.track_set_owner.retain(|_, s| *s != stream_id);
        let st = self
            .streams
            .remove(&stream_id)
            .expect("stream_id() fills streams");
        // Renaming is instant; removing a month of segment files is not, and must not stall
        // the group commit. The caller removes the trash directory.
        let trash = self.media_dir.join(TRASH_DIR);
        let target = trash.join(format!(
            "{}.{stream_id}",
            st.dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("stream")
        ));
        match std::fs::rename(&st.dir, &target) {
            Ok(()) => Ok(Some(target)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: st.dir,
                source,
            }),
        }
    }

    fn inject(&self, fault: Fault) -> std::io::Result<()> {
        self.faults.check(fault)
    }
}
