//! [`LocalFragmentStore`]: the embedded [`FragmentStore`] — media bytes in append-only segment
//! files per stream, the index in `fragments.db` (SQLite). Design: `crates/store/DESIGN.md`.
//!
//! Threads: one dedicated writer thread (`writer.rs`) does every mutation; reads run on tokio's
//! blocking pool with a small pool of read-only SQLite connections (WAL lets them run while the
//! writer commits).

mod index;
mod layout;
mod recovery;
mod writer;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use kvs_core::FragmentNumber;
use rusqlite::Connection;
use tokio::sync::oneshot;

#[cfg(feature = "s3")]
pub(crate) use layout::stream_dir_name;
pub use recovery::{BadFragment, FragmentProblem, FsckReport, OrphanTail, RecoveryReport};

use crate::fragment::{FragmentMeta, FragmentStore, FrameEntry, NewFragment, RangeQuery, TrackSet};
use crate::frame_table;
use crate::{Error, Result};
use writer::{Command, Counters, PersistRequest, Writer};

/// Tuning of [`LocalFragmentStore`]. The defaults suit a server; tests use small segments.
#[derive(Debug, Clone)]
pub struct LocalFragmentOptions {
    /// A stream starts a new segment file when the next fragment would grow the current one past
    /// this size. Retention deletes whole files, so this is also the granularity of reclaiming
    /// space (default 256 MiB; a fragment never spans files).
    pub segment_bytes: u64,
    /// A group commit stops taking queued fragments once it holds this many media bytes
    /// (default 64 MiB), so that the first fragment of a long queue is not held back by
    /// writing all the others first.
    pub max_batch_bytes: usize,
    /// Threads that `fdatasync` a batch's files concurrently when it touched several streams
    /// (default 8).
    pub sync_threads: usize,
    /// Segment files one batch keeps open before syncing and closing them early (default 256;
    /// the default soft `RLIMIT_NOFILE` is 1024).
    pub max_open_files: usize,
}

impl Default for LocalFragmentOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 256 << 20,
            max_batch_bytes: 64 << 20,
            sync_threads: 8,
            max_open_files: 256,
        }
    }
}

/// Counters of the writer thread since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Group commits that succeeded.
    pub batches: u64,
    /// Fragments they stored.
    pub fragments: u64,
    /// Media bytes they stored.
    pub bytes: u64,
    /// Group commits that failed (every fragment in them failed).
    pub failed_batches: u64,
    /// `fdatasync` calls on segment files.
    pub files_synced: u64,
}

/// The embedded fragment store. Cheap to clone; the writer thread stops (and is joined) when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct LocalFragmentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    media_dir: PathBuf,
    readers: ReaderPool,
    /// [`MAX_READERS`] permits; an index read holds one.
    read_permits: tokio::sync::Semaphore,
    /// Loaded track sets by id, with their stream ARN (to drop them on `delete_stream`).
    track_sets: Mutex<HashMap<i64, (String, Arc<TrackSet>)>>,
    recovery: RecoveryReport,
    counters: Arc<Counters>,
    // Dropped in this order: stop the writer, then release the lock.
    writer: WriterHandle,
    _lock: File,
}

#[derive(Debug)]
struct WriterHandle {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.tx.take()); // the writer finishes what is queued, then its recv() fails
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("fragment writer thread panicked");
        }
    }
}

/// Idle read connections. A reader takes one (or opens one) and puts it back.
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Index reads running at once, and idle connections kept. Bounds connections (each holds three
/// descriptors: database, WAL, shared memory) and blocking threads when a burst of reads arrives.
const MAX_READERS: usize = 16;

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.idle.lock().expect("reader pool mutex poisoned").pop();
        let conn = match conn {
            Some(c) => c,
            None => index::open_reader(&self.path)?,
        };
        let r = f(&conn);
        let mut idle = self.idle.lock().expect("reader pool mutex poisoned");
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
        r
    }
}

impl LocalFragmentStore {
    /// Opens (creating if needed) the store in `data_dir` with default options.
    /// See [`Self::open_with`].
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, LocalFragmentOptions::default())
    }

    /// Opens (creating if needed) the store in `data_dir`: locks the directory, applies index
    /// migrations, cuts orphan bytes left by a crash (see [`Self::recovery`]) and starts the
    /// writer thread. Blocking; call it at startup or from `spawn_blocking`.
    pub fn open_with(data_dir: &Path, opts: LocalFragmentOptions) -> Result<Self> {
        Self::open_inner(data_dir, opts, Arc::default())
    }

    fn open_inner(
        data_dir: &Path,
        opts: LocalFragmentOptions,
        faults: Arc<writer::Faults>,
    ) -> Result<Self> {
        let media_dir = data_dir.join(layout::MEDIA_DIR);
        std::fs::create_dir_all(&media_dir).map_err(|source| Error::Io {
            path: media_dir.clone(),
            source,
        })?;
        let lock_path = data_dir.join(layout::LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::DataDirInUse { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        // Leftovers of delete_stream calls that did not finish removing.
        let trash = media_dir.join(layout::TRASH_DIR);
        match std::fs::remove_dir_all(&trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: trash,
                    source,
                });
            }
        }
        std::fs::create_dir(&trash).map_err(|source| Error::Io {
            path: trash.clone(),
            source,
        })?;

        let db_path = data_dir.join(layout::INDEX_DB);
        let conn = index::open_writer(&db_path)?;
        let (streams, recovery) = recovery::recover(&conn, &media_dir)?;
        let stream_ids = streams.iter().map(|(&id, s)| (s.arn.clone(), id)).collect();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn,
            db_path: db_path.clone(),
            media_dir: media_dir.clone(),
            opts,
            streams,
            stream_ids,
            track_set_owner: HashMap::new(),
            counters: counters.clone(),
            faults,
        };
        let (tx, rx) = mpsc::channel();
        // A std thread, not a tokio worker: it blocks in write/fdatasync/COMMIT for milliseconds.
        let thread = std::thread::Builder::new()
            .name("fragment-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|source| Error::Io {
                path: db_path.clone(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                media_dir,
                read_permits: tokio::sync::Semaphore::new(MAX_READERS),
                readers: ReaderPool {
                    path: db_path,
                    idle: Mutex::new(Vec::new()),
                },
                track_sets: Mutex::new(HashMap::new()),
                recovery,
                counters,
                writer: WriterHandle {
                    tx: Some(tx),
                    thread: Some(thread),
                },
                _lock: lock,
            }),
        })
    }

    /// What opening did to repair an unclean shutdown.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Writer counters since open.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            fragments: c.fragments.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            files_synced: c.files_synced.load(Ordering::Relaxed),
        }
    }

    /// Checks segment files against the index: orphan files and directories, unindexed tails,
    /// missing files, rows pointing past a file's end, undecodable frame tables. With `repair`,
    /// removes orphans, cuts tails and deletes rows whose media is gone.
    ///
    /// Runs on the writer thread between group commits (so in-flight appends never look like
    /// orphans); persists wait meanwhile, about 1 s per million fragments. Meant for
    /// `openkvs fsck` and rare maintenance.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport> {
        self.call(|reply| Command::Fsck { repair, reply }).await
    }

    async fn call<T>(&self, cmd: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .tx
            .as_ref()
            .expect("set until drop")
            .send(cmd(reply))
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    async fn read_index<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with(f)).await?
    }

    #[cfg(test)]
    fn open_with_faults(
        data_dir: &Path,
        opts: LocalFragmentOptions,
        faults: Arc<writer::Faults>,
    ) -> Result<Self> {
        Self::open_inner(data_dir, opts, faults)
    }
}

/// Checks and decodes one fragment's stored frame table (`None`: no such fragment).
fn decode_frames(meta: &FragmentMeta, row: Option<(Vec<u8>, i64, i64)>) -> Result<Vec<FrameEntry>> {
    let Some((blob, size_bytes, frame_count)) = row else {
        return Err(not_found_fragment(meta));
    };
    let corrupt = |reason| Error::CorruptIndex {
        stream_arn: meta.stream_arn.clone(),
        number: meta.number,
        reason,
    };
    let frames = frame_table::decode(&blob).map_err(corrupt)?;
    if i64::try_from(frames.len()).ok() != Some(frame_count) {
        return Err(corrupt("frame_count does not match the frame table"));
    }
    if frames
        .last()
        .map_or(0, |f| i64::from(f.offset) + i64::from(f.size))
        != size_bytes
    {
        return Err(corrupt("frame sizes do not add up to size_bytes"));
    }
    Ok(frames)
}

fn not_found_fragment(meta: &FragmentMeta) -> Error {
    Error::NotFound {
        what: "fragment",
        key: format!("{} of {}", meta.number, meta.stream_arn),
    }
}

#[async_trait]
impl FragmentStore for LocalFragmentStore {
    async fn track_set(&self, stream_arn: &str, set: &TrackSet) -> Result<i64> {
        let dir = layout::stream_dir_name(stream_arn)?;
        let json = serde_json::to_string(set).expect("TrackSet always serializes");
        // Fast path without the writer: producers resend the same tracks on every connection.
        let (arn, j) = (stream_arn.to_owned(), json.clone());
        if let Some(id) = self
            .read_index(move |c| index::find_track_set(c, &arn, &j))
            .await?
        {
            return Ok(id);
        }
        self.call(|reply| Command::TrackSet {
            stream_arn: stream_arn.to_owned(),
            dir,
            json,
            reply,
        })
        .await
    }

    async fn load_track_set(&self, id: i64) -> Result<Arc<TrackSet>> {
        if let Some((_, set)) = self
            .inner
            .track_sets
            .lock()
            .expect("track set cache poisoned")
            .get(&id)
        {
            return Ok(set.clone());
        }
        let Some((arn, json)) = self
            .read_index(move |c| index::load_track_set(c, id))
            .await?
        else {
            return Err(Error::NotFound {
                what: "track set",
                key: id.to_string(),
            });
        };
        let set: Arc<TrackSet> =
            Arc::new(
                serde_json::from_str(&json).map_err(|source| Error::CorruptJson {
                    what: "track set",
                    source,
                })?,
            );
        self.inner
            .track_sets
            .lock()
            .expect("track set cache poisoned")
            .insert(id, (arn, set.clone()));
        Ok(set)
    }

    async fn persist(&self, fragment: NewFragment, track_set_id: i64) -> Result<FragmentMeta> {
        // If this future is dropped after sending, the fragment is still stored; only the
        // answer is lost (ingest then never sends PERSISTED for it, which KVS producers tolerate).
        self.call(|reply| {
            Command::Persist(PersistRequest {
                fragment,
                track_set_id,
                reply,
            })
        })
        .await
    }

    async fn get(&self, stream_arn: &str, number: FragmentNumber) -> Result<Option<FragmentMeta>> {
        let arn = stream_arn.to_owned();
        self.read_index(move |c| index::get(c, &arn, number)).await
    }

    async fn range(&self, stream_arn: &str, q: &RangeQuery) -> Result<Vec<FragmentMeta>> {
        let (arn, q) = (stream_arn.to_owned(), q.clone());
        self.read_index(move |c| index::range(c, &arn, &q)).await
    }

    async fn after(
        &self,
        stream_arn: &str,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let arn = stream_arn.to_owned();
        self.read_index(move |c| index::after(c, &arn, after, limit))
            .await
    }

    async fn latest(&self, stream_arn: &str) -> Result<Option<FragmentMeta>> {
        let arn = stream_arn.to_owned();
        self.read_index(move |c| index::latest(c, &arn)).await
    }

    async fn by_producer_ms(
        &self,
        stream_arn: &str,
        producer_ms: i64,
    ) -> Result<Option<FragmentMeta>> {
        let arn = stream_arn.to_owned();
        self.read_index(move |c| index::by_producer_ms(c, &arn, producer_ms))
            .await
    }

    async fn frames(&self, meta: &FragmentMeta) -> Result<Vec<FrameEntry>> {
        let mut all = self.frames_many(std::slice::from_ref(meta)).await?;
        Ok(all.pop().expect("one table per fragment"))
    }

    async fn frames_many(&self, metas: &[FragmentMeta]) -> Result<Vec<Vec<FrameEntry>>> {
        let keys: Vec<(String, FragmentNumber)> = metas
            .iter()
            .map(|m| (m.stream_arn.clone(), m.number))
            .collect();
        // One blocking task and one connection for the whole batch.
        let blobs = self
            .read_index(move |c| {
                keys.iter()
                    .map(|(arn, number)| index::frames_blob(c, arn, *number))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        metas
            .iter()
            .zip(blobs)
            .map(|(meta, blob)| decode_frames(meta, blob))
            .collect()
    }

    async fn read(&self, meta: &FragmentMeta, offset: u64, len: u64) -> Result<Bytes> {
        let inner = self.inner.clone();
        let (arn, number) = (meta.stream_arn.clone(), meta.number);
        let loc = self
            .read_index(move |c| index::location(c, &arn, number))
            .await?;
        let Some(loc) = loc else {
            return Err(not_found_fragment(meta));
        };
        if offset > loc.size_bytes {
            return Err(Error::ReadOutOfRange {
                stream_arn: meta.stream_arn.clone(),
                number,
                offset,
                size_bytes: loc.size_bytes,
            });
        }
        let len = len.min(loc.size_bytes - offset);
        if len == 0 {
            return Ok(Bytes::new());
        }
        let stream_arn = meta.stream_arn.clone();
        tokio::task::spawn_blocking(move || {
            let path = inner
                .media_dir
                .join(&loc.dir)
                .join(layout::segment_file_name(loc.file_id));
            let io = |source| Error::Io {
                path: path.clone(),
                source,
            };
            let file = File::open(&path).map_err(io)?;
            let mut buf = vec![
                0;
                usize::try_from(len)
                    .expect("fragments are far smaller than the address space")
            ];
            let start = loc.file_offset + offset;
            match file.read_exact_at(&mut buf, start) {
                Ok(()) => Ok(Bytes::from(buf)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Err(Error::MediaMissing {
                        stream_arn,
                        number,
                        file_len: file.metadata().map_err(io)?.len(),
                        path: path.clone(),
                        needed_end: start + len,
                    })
                }
                Err(e) => Err(io(e)),
            }
        })
        .await?
    }

    async fn expire(&self, stream_arn: &str, before_ms: i64) -> Result<u64> {
        let expired = self
            .call(|reply| Command::Expire {
                stream_arn: stream_arn.to_owned(),
                before_ms,
                reply,
            })
            .await?;
        if !expired.unreferenced_files.is_empty() {
            // Unlinking a 256 MiB file takes milliseconds; keep it off the writer thread. The
            // writer never writes to these again (file ids only grow).
            let files = expired.unreferenced_files;
            tokio::task::spawn_blocking(move || -> Result<()> {
                for path in files {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::debug!(path = %path.display(), "removed expired segment file")
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(Error::Io { path, source }),
                    }
                }
                Ok(())
            })
            .await??;
        }
        Ok(expired.deleted)
    }

    async fn delete_stream(&self, stream_arn: &str) -> Result<()> {
        let trash = self
            .call(|reply| Command::DeleteStream {
                stream_arn: stream_arn.to_owned(),
                reply,
            })
            .await?;
        self.inner
            .track_sets
            .lock()
            .expect("track set cache poisoned")
            .retain(|_, (arn, _)| arn != stream_arn);
        if let Some(trash) = trash {
            tokio::task::spawn_blocking(move || {
                std::fs::remove_dir_all(&trash).map_err(|source| Error::Io {
                    path: trash,
                    source,
                })
            })
            .await??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use kvs_core::ErrorKind;

    use crate::TrackSet;

    const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1";

    fn fragment(n: u128, size: u32) -> NewFragment {
        NewFragment {
            stream_arn: ARN.into(),
            number: FragmentNumber(n),
            producer_ms: n as i64,
            server_ms: n as i64,
            duration_ms: 1000,
            cluster_timecode: 0,
            tracks: Arc::new(TrackSet {
                timecode_scale_ns: 1_000_000,
                tracks: vec![],
            }),
            frames: vec![FrameEntry {
                track: 1,
                keyframe: true,
                pts: 0,
                duration: 0,
                offset: 0,
                size,
            }],
            tags: vec![],
            media: Bytes::from(vec![n as u8; size as usize]),
        }
    }

    fn opts() -> LocalFragmentOptions {
        LocalFragmentOptions {
            segment_bytes: 10_000,
            ..Default::default()
        }
    }

    async fn setup(dir: &Path, faults: &Arc<writer::Faults>) -> (LocalFragmentStore, i64) {
        let store = LocalFragmentStore::open_with_faults(dir, opts(), faults.clone()).unwrap();
        let ts = store
            .track_set(
                ARN,
                &TrackSet {
                    timecode_scale_ns: 1_000_000,
                    tracks: vec![],
                },
            )
            .await
            .unwrap();
        (store, ts)
    }

    async fn assert_intact(store: &LocalFragmentStore, n: u128, size: u32) {
        let meta = store
            .get(ARN, FragmentNumber(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(
            store.read(&meta, 0, u64::MAX).await.unwrap(),
            fragment(n, size).media
        );
    }

    /// A write, fdatasync or COMMIT failure fails every fragment of its batch with the I/O error
    /// (kind Unavailable for ENOSPC), leaves no byte of the batch in any file, and the writer
    /// goes on with the next batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failed_batch_fails_all_and_leaves_nothing() {
        type Pick = fn(&writer::Faults) -> &AtomicU32;
        let points: [(&str, Pick); 3] = [
            ("write", |f| &f.writes),
            ("sync", |f| &f.syncs),
            ("commit", |f| &f.commits),
        ];
        for (name, counter) in points {
            let dir = tempfile::tempdir().unwrap();
            let faults = Arc::new(writer::Faults::default());
            let (store, ts) = setup(dir.path(), &faults).await;
            for n in 1..=3 {
                store.persist(fragment(n, 3000), ts).await.unwrap();
            }
            counter(&faults).store(1, Ordering::SeqCst);
            let tasks: Vec<_> = (10..26u128)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move { (n, store.persist(fragment(n, 3000), ts).await) })
                })
                .collect();
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            for t in tasks {
                match t.await.unwrap() {
                    (n, Ok(_)) => ok.push(n),
                    (n, Err(e)) => {
                        assert_eq!(e.kind(), ErrorKind::Unavailable, "{name}: {e:?}");
                        let Error::Persist { source, number, .. } = &e else {
                            panic!("{name}: {e:?}")
                        };
                        assert_eq!(number.0, n);
                        assert!(
                            matches!(&**source, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
                            "{name}: {source:?}"
                        );
                        failed.push(n);
                    }
                }
            }
            assert!(!failed.is_empty(), "{name}");
            assert_eq!(store.writer_stats().failed_batches, 1, "{name}");
            for &n in &failed {
                assert_eq!(
                    store.get(ARN, FragmentNumber(n)).await.unwrap(),
                    None,
                    "{name}: {n}"
                );
            }
            for &n in ok.iter().chain(&[1, 2, 3]) {
                assert_intact(&store, n, 3000).await;
            }
            // No tail and no file of the failed batch is left behind.
            let report = store.fsck(false).await.unwrap();
            assert!(report.is_clean(), "{name}: {report:?}");
            store.persist(fragment(100, 3000), ts).await.unwrap();
            assert_intact(&store, 100, 3000).await;
            drop(store);
            let (store, _) = setup(dir.path(), &faults).await;
            assert_eq!(store.recovery().orphan_bytes, 0, "{name}");
            for &n in ok.iter().chain(&[1, 2, 3, 100]) {
                assert_intact(&store, n, 3000).await;
            }
        }
    }

    /// If the failed bytes cannot even be truncated away, the stream abandons that file: later
    /// fragments go to a new one and never follow the failed bytes.
    #[tokio::test]
    async fn untruncatable_file_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(writer::Faults::default());
        let (store, ts) = setup(dir.path(), &faults).await;
        store.persist(fragment(1, 4000), ts).await.unwrap();
        faults.syncs.store(1, Ordering::SeqCst);
        faults.truncates.store(1, Ordering::SeqCst);
        assert!(matches!(
            store.persist(fragment(2, 4000), ts).await,
            Err(Error::Persist { .. })
        ));
        store.persist(fragment(3, 4000), ts).await.unwrap();
        let seg = |id: u64| {
            dir.path()
                .join("media/cam.1")
                .join(layout::segment_file_name(id))
        };
        assert_eq!(
            std::fs::metadata(seg(1)).unwrap().len(),
            8000,
            "failed bytes still there"
        );
        assert_eq!(
            std::fs::metadata(seg(2)).unwrap().len(),
            4000,
            "fragment 3 went to a new file"
        );
        let report = store.fsck(false).await.unwrap();
        assert_eq!(
            report.orphan_tails,
            [OrphanTail {
                path: seg(1),
                file_len: 8000,
                indexed_end: 4000
            }]
        );
        store.fsck(true).await.unwrap();
        assert!(store.fsck(false).await.unwrap().is_clean());
        assert_intact(&store, 1, 4000).await;
        assert_intact(&store, 3, 4000).await;
        assert_eq!(store.get(ARN, FragmentNumber(2)).await.unwrap(), None);
    }

    /// The per-stream order flags that let ListFragments skip sorting: set while fragments come
    /// in number and time order, cleared for good by a committed out-of-order fragment (and only
    /// by a committed one), stored with the rows.
    #[tokio::test]
    async fn order_flags_follow_committed_data() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(writer::Faults::default());
        let (store, ts) = setup(dir.path(), &faults).await;
        let flags = || {
            let conn = index::open_reader(&dir.path().join(layout::INDEX_DB)).unwrap();
            let (id, _) = index::stream_by_arn(&conn, ARN).unwrap().unwrap();
            let o = index::order_state(&conn, id).unwrap();
            (o.server_ordered, o.producer_ordered)
        };
        let at = |n: u128, server_ms: i64, producer_ms: i64| NewFragment {
            server_ms,
            producer_ms,
            ..fragment(n, 10)
        };
        assert_eq!(flags(), (true, true));
        for n in 1..=3 {
            store
                .persist(at(n, 1000 * n as i64, 1000 * n as i64), ts)
                .await
                .unwrap();
        }
        store.persist(at(4, 3000, 4000), ts).await.unwrap(); // equal server time: still ordered
        assert_eq!(flags(), (true, true));
        // An out-of-order fragment whose batch fails changes nothing.
        faults.commits.store(1, Ordering::SeqCst);
        store.persist(at(5, 100, 5000), ts).await.unwrap_err();
        assert_eq!(flags(), (true, true));
        store.persist(at(5, 5000, 5000), ts).await.unwrap();
        assert_eq!(flags(), (true, true));
        store.persist(at(6, 4999, 6000), ts).await.unwrap();
        assert_eq!(flags(), (false, true));
        // A lower number, later in time: neither order holds.
        store.persist(at(0, 9000, 9000), ts).await.unwrap();
        assert_eq!(flags(), (false, false));
        drop(store);
        let (store, ts) = setup(dir.path(), &faults).await;
        store.persist(at(7, 10_000, 10_000), ts).await.unwrap();
        assert_eq!(flags(), (false, false), "cleared for good");
    }

    /// Persists queued together commit together: one batch, one sync per file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_persists_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(writer::Faults::default());
        let (store, ts) = setup(dir.path(), &faults).await;
        let tasks: Vec<_> = (1..=200u128)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.persist(fragment(n, 100), ts).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stats = store.writer_stats();
        assert_eq!(
            (stats.fragments, stats.bytes, stats.failed_batches),
            (200, 20_000, 0)
        );
        assert!(stats.batches < 200, "no batching happened: {stats:?}");
    }

    /// ListFragments on a 30-day index: 1 fragment / 2 s for one stream = 1,296,000 rows with
    /// realistic frame tables (60 video + 94 AAC frames per fragment). Loads the rows with the
    /// writer's own insert code (persisting 1.3 TB of media is not the point), then times
    /// `range()` through the public async API for random 1-hour windows.
    ///
    /// `cargo test --release -p openkvs-store --lib bench_list_fragments -- --ignored --nocapture`
    /// (`OPENKVS_BENCH_DIR` picks the disk; default: the temp dir). Also times
    /// `LocalFragmentStore::open` (restart) on that index after a simulated crash and clean;
    /// `OPENKVS_BENCH_KEEP=1` stops there and keeps the directory (e.g. to time `openkvs serve`
    /// starting on it).
    #[test]
    #[ignore = "benchmark: builds a 1.3 M-row index (~1 min in release); run explicitly"]
    #[allow(clippy::print_stdout)]
    fn bench_list_fragments_30_days() {
        use rand::{Rng as _, SeedableRng as _};

        use crate::{RangeQuery, TimestampKind};

        const ROWS: u64 = 30 * 24 * 1800;
        const T0: i64 = 1_700_000_000_000;
        let base =
            std::env::var_os("OPENKVS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = tempfile::tempdir_in(base).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let ts = rt.block_on(async {
            let store = LocalFragmentStore::open(dir.path()).unwrap();
            store
                .track_set(
                    ARN,
                    &TrackSet {
                        timecode_scale_ns: 1_000_000,
                        tracks: vec![],
                    },
                )
                .await
                .unwrap()
        });

        let load = std::time::Instant::now();
        let mut conn = index::open_writer(&dir.path().join(layout::INDEX_DB)).unwrap();
        let (stream_id, stream_dir) = index::stream_by_arn(&conn, ARN).unwrap().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut file_id, mut file_len) = (1u64, 0u64);
        let mut file_lens = vec![];
        let mut blob_bytes = 0usize;
        for chunk in 0..ROWS / 10_000 + 1 {
            let mut rows = Vec::new();
            for i in chunk * 10_000..((chunk + 1) * 10_000).min(ROWS) {
                let mut frames = Vec::new();
                let mut offset = 0u32;
                for k in 0..154u32 {
                    // Interleaved 2 video : 3 audio until 60 video frames, then audio.
                    let (track, pts, size) = if k % 5 < 2 && k / 5 * 2 + k % 5 < 60 {
                        let v = k / 5 * 2 + k % 5;
                        (
                            1,
                            i64::from(v) * 33,
                            if v == 0 {
                                rng.random_range(60_000..120_000)
                            } else {
                                rng.random_range(5_000..25_000)
                            },
                        )
                    } else {
                        (2, i64::from(k) * 21, rng.random_range(300..400))
                    };
                    frames.push(FrameEntry {
                        track,
                        keyframe: k == 0,
                        pts,
                        duration: 0,
                        offset,
                        size,
                    });
                    offset += size;
                }
                let (blob, size) = frame_table::encode(&frames).unwrap();
                blob_bytes += blob.len();
                if file_len > 0 && file_len + size > LocalFragmentOptions::default().segment_bytes {
                    file_lens.push(file_len);
                    (file_id, file_len) = (file_id + 1, 0);
                }
                let server_ms = T0 + i as i64 * 2000 + rng.random_range(0..50);
                rows.push((
                    i,
                    server_ms,
                    size,
                    file_id,
                    file_len,
                    frames.len() as u32,
                    blob,
                ));
                file_len += size;
            }
            index::insert_fragments(
                &mut conn,
                rows.iter().map(
                    |(i, server_ms, size, file_id, file_offset, frame_count, blob)| index::NewRow {
                        stream_id,
                        number: FragmentNumber(u128::from(*i) + 1),
                        producer_ms: server_ms - 300,
                        server_ms: *server_ms,
                        duration_ms: 2000,
                        size_bytes: *size,
                        cluster_timecode: *i * 2000,
                        frame_count: *frame_count,
                        track_set_id: ts,
                        file_id: *file_id,
                        file_offset: *file_offset,
                        tags_json: None,
                        frames: blob,
                    },
                ),
                &[],
            )
            .unwrap();
        }
        file_lens.push(file_len);
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
        drop(conn);
        // Sparse segment files of the right lengths, so the store opens cleanly.
        let media = dir.path().join(layout::MEDIA_DIR).join(stream_dir);
        std::fs::create_dir_all(&media).unwrap();
        for (i, len) in file_lens.iter().enumerate() {
            File::create(media.join(layout::segment_file_name(i as u64 + 1)))
                .unwrap()
                .set_len(*len)
                .unwrap();
        }
        let db_mb = std::fs::metadata(dir.path().join(layout::INDEX_DB))
            .unwrap()
            .len() as f64
            / 1e6;
        println!(
            "loaded {ROWS} rows in {:.1?}: fragments.db {db_mb:.0} MB, frame tables avg {} bytes",
            load.elapsed(),
            blob_bytes / ROWS as usize
        );

        // Restart time (issue 8: < 1 s for a 30-day index). First as after a SIGKILL in the
        // middle of a batch: 4 MiB of unindexed media at the end of the current file and a
        // rolled-to file that never got a row; then a clean reopen.
        let last_file = media.join(layout::segment_file_name(file_lens.len() as u64));
        let crashed_len = file_lens.last().unwrap() + (4 << 20);
        File::options()
            .write(true)
            .open(&last_file)
            .unwrap()
            .set_len(crashed_len)
            .unwrap();
        File::create(media.join(layout::segment_file_name(file_lens.len() as u64 + 1)))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let t = std::time::Instant::now();
        let store = LocalFragmentStore::open(dir.path()).unwrap();
        let crashed_open = t.elapsed();
        let recovery = store.recovery().clone();
        assert_eq!(recovery.orphan_bytes, (4 << 20) + (1 << 20), "{recovery:?}");
        assert_eq!((recovery.truncated_files, recovery.removed_files), (1, 1));
        drop(store);
        let t = std::time::Instant::now();
        let store = LocalFragmentStore::open(dir.path()).unwrap();
        let clean_open = t.elapsed();
        assert_eq!(store.recovery().orphan_bytes, 0);
        println!(
            "open of the {ROWS}-row index: after a crash (5 MiB orphans cut) {crashed_open:.1?}, clean {clean_open:.1?}"
        );
        if std::env::var_os("OPENKVS_BENCH_KEEP").is_some() {
            drop(store);
            println!("keeping {}", dir.keep().display());
            return;
        }
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average before queries: {}", loadavg.trim());
        println!(
            "| query (1 h window = 1800 fragments) | rows | API wall p50 / p99 / max µs | on-CPU mean µs |"
        );
        println!("|---|---:|---:|---:|");
        let conn = index::open_reader(&dir.path().join(layout::INDEX_DB)).unwrap();
        for (label, kind, limit, second_page) in [
            (
                "SERVER_TIMESTAMP, MaxResults 1000, page 1",
                TimestampKind::Server,
                1000,
                false,
            ),
            (
                "SERVER_TIMESTAMP, MaxResults 1000, page 2",
                TimestampKind::Server,
                1000,
                true,
            ),
            (
                "PRODUCER_TIMESTAMP, MaxResults 1000, page 1",
                TimestampKind::Producer,
                1000,
                false,
            ),
            (
                "SERVER_TIMESTAMP, MaxResults 100, page 1",
                TimestampKind::Server,
                100,
                false,
            ),
            (
                "unordered stream (sorts), SERVER_TIMESTAMP, MaxResults 1000, page 1",
                TimestampKind::Server,
                1000,
                false,
            ),
        ] {
            if label.starts_with("unordered") {
                // As if numbers had not followed server time: range() must sort the window.
                let w = index::open_writer(&dir.path().join(layout::INDEX_DB)).unwrap();
                w.execute("UPDATE stream SET server_ordered = 0", [])
                    .unwrap();
            }
            let queries: Vec<RangeQuery> = (0..2000)
                .map(|_| {
                    let start_ms = T0 + rng.random_range(0..(ROWS as i64 * 2000 - 3_600_000));
                    let mut q = RangeQuery {
                        kind,
                        start_ms,
                        end_ms: start_ms + 3_600_000,
                        after: None,
                        limit,
                    };
                    if second_page {
                        q.after = index::range(&conn, ARN, &q)
                            .unwrap()
                            .last()
                            .map(|m| m.number);
                    }
                    q
                })
                .collect();
            // Wall time through the public async API (spawn_blocking, pooled connection). A
            // first pass over the same windows maps their pages (SQLite mmap), as a long-running
            // server's connections have; the second pass is measured.
            let mut wall = Vec::new();
            let mut rows = 0;
            rt.block_on(async {
                for pass in 0..2 {
                    for q in &queries {
                        let t = std::time::Instant::now();
                        let got = store.range(ARN, q).await.unwrap();
                        if pass == 1 {
                            wall.push(t.elapsed());
                            rows += got.len();
                        }
                    }
                }
            });
            // On-CPU time of the query itself on this thread: what it costs, without the time
            // other processes on a shared machine keep it waiting. schedstat is tick-granular on
            // some kernels, so only the mean over all queries is meaningful.
            let before = thread_cpu_ns();
            for q in &queries {
                index::range(&conn, ARN, q).unwrap();
            }
            let cpu_mean_us = (thread_cpu_ns() - before) / queries.len() as u64 / 1000;
            wall.sort();
            let p = |q: f64| ((wall.len() as f64 * q) as usize).min(wall.len() - 1);
            println!(
                "| {label} | {} | {} / {} / {} | {cpu_mean_us} |",
                rows / wall.len(),
                wall[p(0.5)].as_micros(),
                wall[p(0.99)].as_micros(),
                wall[p(1.0)].as_micros(),
            );
        }
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average after queries: {}", loadavg.trim());
        let t = std::time::Instant::now();
        let report = rt.block_on(store.fsck(false)).unwrap();
        assert!(report.is_clean(), "{report:?}");
        println!(
            "fsck of {} fragments: {:.1?}",
            report.fragments,
            t.elapsed()
        );
    }

    /// Nanoseconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`).
    fn thread_cpu_ns() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
        stat.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("schedstat starts with on-CPU ns")
    }
}
