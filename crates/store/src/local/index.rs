//! The fragment index: `<data_dir>/fragments.db`, separate from `catalog.db` so that the
//! high-rate fragment writes (one group-commit transaction per batch) never contend with
//! control-plane calls for SQLite's single write lock.
//!
//! SQL lives here; the writer thread and the reader pool call these functions.

use std::path::Path;
use std::time::Duration;

use kvs_core::FragmentNumber;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::fragment::{FragmentMeta, RangeQuery, TimestampKind};
use crate::{Error, Result};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
///
/// Explained in `crates/store/DESIGN.md` ("Schema"). No `FOREIGN KEY` clauses: SQLite would check
/// `fragment` for every deleted `track_set` row, and without an index on
/// `fragment.track_set_id` (1.3 M rows per stream-month) that is a full scan. The writer thread,
/// the only writer, checks references instead.
const MIGRATIONS: &[&str] = &[r"
-- One row per stream incarnation (ARN) that stored anything. Other tables use the integer id:
-- an ARN is ~70 bytes and would be repeated in the table and in each of the four indexes.
CREATE TABLE stream (
    id  INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids of deleted streams are never reused
    arn TEXT NOT NULL UNIQUE,               -- arn:aws:kinesisvideo:...:stream/<name>/<created ms>
    dir TEXT NOT NULL UNIQUE,               -- directory under media/: <name>.<created ms>
    -- 1 while sorting this stream's fragments by (server_ms, number) gives number order; then
    -- ListFragments reads its index in order and stops at the limit instead of sorting the whole
    -- window (2.4x cheaper). Ingest derives numbers from server time, so this normally stays 1.
    -- The writer clears it, for good, when a fragment is not both the highest-numbered and the
    -- latest (DESIGN.md 'Reads').
    server_ordered   INTEGER NOT NULL DEFAULT 1 CHECK (server_ordered IN (0, 1)),
    producer_ordered INTEGER NOT NULL DEFAULT 1 CHECK (producer_ordered IN (0, 1))  -- same, producer_ms
);

-- Tracks + timescale shared by a run of fragments, stored once per distinct value.
CREATE TABLE track_set (
    id        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so cached ids stay valid
    stream_id INTEGER NOT NULL,                  -- stream.id
    json      TEXT NOT NULL,                     -- serde_json of TrackSet; equal text = same set
    UNIQUE (stream_id, json)
);

-- One row per persisted fragment. Rows are inserted only after the fragment's media bytes are
-- fsynced, so a row never points at bytes that may be missing after a crash.
CREATE TABLE fragment (
    id               INTEGER PRIMARY KEY,  -- rowid: insertion order, so time ranges are near-contiguous
    stream_id        INTEGER NOT NULL,     -- stream.id
    number           BLOB NOT NULL         -- FragmentNumber as 16-byte big-endian u128:
                     CHECK (length(number) = 16), -- memcmp order = numeric order, 16 bytes vs 47 as text
    producer_ms      INTEGER NOT NULL,     -- producer timestamp of the first frame, epoch ms
    server_ms        INTEGER NOT NULL,     -- server receive time of the first byte, epoch ms
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    size_bytes       INTEGER NOT NULL CHECK (size_bytes >= 0),  -- media bytes (frame payloads only)
    cluster_timecode INTEGER NOT NULL,     -- producer cluster Timecode as sent; u64 bits stored as i64
    frame_count      INTEGER NOT NULL CHECK (frame_count >= 0),
    track_set_id     INTEGER NOT NULL,     -- track_set.id of the same stream
    file_id          INTEGER NOT NULL CHECK (file_id > 0),      -- media/<dir>/<file_id:016x>.seg
    file_offset      INTEGER NOT NULL CHECK (file_offset >= 0), -- where the media bytes start
    tags_json        TEXT                  -- producer tags as [[name, value], ...]; NULL if none
);
-- Frame tables, apart from `fragment` (moonfire-nvr's recording / recording_playback split):
-- ListFragments, playlists and GetMedia walks read only metadata, and with a ~850-byte frame
-- table inline a 1-hour window spans ~450 pages instead of ~50 (p99 1.46 ms vs 0.94 ms raw
-- SQLite on a 30-day index; DESIGN.md 'Schema').
CREATE TABLE fragment_frames (
    fragment_id INTEGER PRIMARY KEY,  -- fragment.id; inserted and deleted with it
    frames      BLOB NOT NULL         -- DESIGN.md 'Frame-table encoding'
);
-- get / after / latest; also enforces one row per (stream, number).
CREATE UNIQUE INDEX fragment_number ON fragment (stream_id, number);
-- range(SERVER_TIMESTAMP): number included so `number > after` is decided in the index.
CREATE INDEX fragment_server ON fragment (stream_id, server_ms, number);
-- range(PRODUCER_TIMESTAMP), by_producer_ms.
CREATE INDEX fragment_producer ON fragment (stream_id, producer_ms, number);
-- Recovery (last indexed byte of a stream), retention (is a file still referenced?), fsck.
CREATE INDEX fragment_file ON fragment (stream_id, file_id, file_offset);
"];

fn ctx(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Index { op, source }
}

/// Opens the writer connection and applies migrations.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(ctx("open fragments.db"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(ctx("set busy timeout"))?;
    // WAL: readers never block the writer. synchronous=FULL: COMMIT fsyncs the WAL, so a
    // committed batch survives power loss (NORMAL would only survive process crashes).
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(ctx("enable WAL"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(ctx("set synchronous=FULL"))?;
    let applied: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(ctx("read user_version"))?;
    if applied > MIGRATIONS.len() {
        return Err(Error::InvalidUpdate(format!(
            "{} has schema version {applied}, newer than this openkvs understands ({}); upgrade openkvs",
            path.display(),
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(ctx("begin migration"))?;
        tx.execute_batch(sql).map_err(ctx("apply migration"))?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(ctx("set user_version"))?;
        tx.commit().map_err(ctx("commit migration"))?;
        tracing::info!(version = i + 1, "applied fragment index migration");
    }
    Ok(conn)
}

/// Address space a reader may map (SQLite caps it at its compile-time maximum, 2 GiB by default;
/// parts beyond it are read with pread).
const READER_MMAP_BYTES: i64 = 1 << 40;

/// Opens a reader connection (the pool in `local.rs` keeps a few).
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(ctx("open fragments.db for reading"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(ctx("set busy timeout"))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(ctx("set query_only"))?;
    // Read through the OS page cache (shared by all connections) instead of pread into each
    // connection's 2 MB cache: ListFragments over a 1-hour window of a 30-day index went from
    // p50 1.37 ms to 0.62 ms. Readers only; the writer keeps write()/fsync. The price: an I/O
    // error while reading the mapped file is SIGBUS instead of an error return.
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
        .map_err(ctx("set mmap_size"))?;
    Ok(conn)
}

/// The number column's encoding.
pub(crate) fn number_key(n: FragmentNumber) -> [u8; 16] {
    n.0.to_be_bytes()
}

/// The columns [`raw_meta`] reads, in order (a macro so that `concat!` can build constant SQL).
macro_rules! meta_cols {
    () => {
        "number, producer_ms, server_ms, duration_ms, size_bytes, cluster_timecode, frame_count, track_set_id, tags_json"
    };
}

/// A row of [`META_COLS`] before the JSON is parsed (row closures can only return rusqlite errors).
struct RawMeta {
    number: [u8; 16],
    producer_ms: i64,
    server_ms: i64,
    duration_ms: i64,
    size_bytes: i64,
    cluster_timecode: i64,
    frame_count: i64,
    track_set_id: i64,
    tags_json: Option<String>,
}

fn raw_meta(r: &Row<'_>) -> rusqlite::Result<RawMeta> {
    Ok(RawMeta {
        number: r.get(0)?,
        producer_ms: r.get(1)?,
        server_ms: r.get(2)?,
        duration_ms: r.get(3)?,
        size_bytes: r.get(4)?,
        cluster_timecode: r.get(5)?,
        frame_count: r.get(6)?,
        track_set_id: r.get(7)?,
        tags_json: r.get(8)?,
    })
}

impl RawMeta {
    fn into_meta(self, stream_arn: &str) -> Result<FragmentMeta> {
        let number = FragmentNumber(u128::from_be_bytes(self.number));
        let corrupt = |reason| Error::CorruptIndex {
            stream_arn: stream_arn.to_owned(),
            number,
            reason,
        };
        let tags = match self.tags_json {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json).map_err(|source| Error::CorruptJson {
                what: "fragment tags",
                source,
            })?,
        };
        Ok(FragmentMeta {
            stream_arn: stream_arn.to_owned(),
            number,
            producer_ms: self.producer_ms,
            server_ms: self.server_ms,
            duration_ms: self.duration_ms,
            size_bytes: u64::try_from(self.size_bytes)
                .map_err(|_| corrupt("negative size_bytes"))?,
            cluster_timecode: self.cluster_timecode.cast_unsigned(),
            frame_count: u32::try_from(self.frame_count)
                .map_err(|_| corrupt("frame_count out of range"))?,
            track_set_id: self.track_set_id,
            tags,
        })
    }
}

fn query_metas(
    conn: &Connection,
    sql: &str,
    stream_arn: &str,
    params: impl rusqlite::Params,
    op: &'static str,
) -> Result<Vec<FragmentMeta>> {
    let mut stmt = conn.prepare_cached(sql).map_err(ctx(op))?;
    let raws = stmt
        .query_map(params, raw_meta)
        .map_err(ctx(op))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(ctx(op))?;
    raws.into_iter().map(|r| r.into_meta(stream_arn)).collect()
}

/// `stream_id` of `?1` = the ARN, as a scalar subquery (evaluated once per statement).
macro_rules! stream_id_of_arn {
    () => {
        "(SELECT id FROM stream WHERE arn = ?1)"
    };
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// One fragment.
pub(crate) fn get(
    conn: &Connection,
    stream_arn: &str,
    number: FragmentNumber,
) -> Result<Option<FragmentMeta>> {
    const SQL: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND number = ?2"
    );
    Ok(query_metas(
        conn,
        SQL,
        stream_arn,
        params![stream_arn, number_key(number)],
        "get fragment",
    )?
    .pop())
}

/// KVS time-range semantics (`kvs-api.md` §9): start timestamp in `start_ms..=end_ms`, by number.
///
/// If the stream's fragments are *ordered* for this timestamp kind ([`OrderState`]), the index
/// `(stream_id, <kind>_ms, number)` already yields number order: read it in order and stop at the
/// limit. Otherwise sort the window by number. The flag and the rows are read in one transaction,
/// so they come from the same snapshot.
///
/// `INDEXED BY` pins the plan: with `ORDER BY number LIMIT n` SQLite may otherwise walk
/// `fragment_number` from `after` and filter by time, reading the whole stream when the window is
/// far from `after`.
pub(crate) fn range(
    conn: &Connection,
    stream_arn: &str,
    q: &RangeQuery,
) -> Result<Vec<FragmentMeta>> {
    const BY_SERVER: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment INDEXED BY fragment_server WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND server_ms BETWEEN ?2 AND ?3 AND number > ?4 ORDER BY number LIMIT ?5"
    );
    const BY_PRODUCER: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment INDEXED BY fragment_producer WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND producer_ms BETWEEN ?2 AND ?3 AND number > ?4 ORDER BY number LIMIT ?5"
    );
    const ORDERED_BY_SERVER: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment INDEXED BY fragment_server WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND server_ms BETWEEN ?2 AND ?3 AND number > ?4 ORDER BY server_ms, number LIMIT ?5"
    );
    const ORDERED_BY_PRODUCER: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment INDEXED BY fragment_producer WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND producer_ms BETWEEN ?2 AND ?3 AND number > ?4 ORDER BY producer_ms, number LIMIT ?5"
    );
    if q.limit == 0 || q.start_ms > q.end_ms {
        return Ok(Vec::new());
    }
    let op = "list fragments";
    let tx = conn.unchecked_transaction().map_err(ctx(op))?;
    let flag_sql = match q.kind {
        TimestampKind::Server => "SELECT server_ordered FROM stream WHERE arn = ?1",
        TimestampKind::Producer => "SELECT producer_ordered FROM stream WHERE arn = ?1",
    };
    let ordered: Option<bool> = tx
        .prepare_cached(flag_sql)
        .map_err(ctx(op))?
        .query_row(params![stream_arn], |r| r.get(0))
        .optional()
        .map_err(ctx(op))?;
    let sql = match (q.kind, ordered) {
        (_, None) => return Ok(Vec::new()), // unknown stream
        (TimestampKind::Server, Some(true)) => ORDERED_BY_SERVER,
        (TimestampKind::Server, Some(false)) => BY_SERVER,
        (TimestampKind::Producer, Some(true)) => ORDERED_BY_PRODUCER,
        (TimestampKind::Producer, Some(false)) => BY_PRODUCER,
    };
    // An empty blob sorts before every 16-byte number.
    let after = q.after.map(number_key);
    let after: &[u8] = after.as_ref().map_or(&[], |a| a.as_slice());
    let params = params![
        stream_arn,
        q.start_ms,
        q.end_ms,
        after,
        limit_param(q.limit)
    ];
    // `tx` rolls back when dropped: it only read.
    query_metas(&tx, sql, stream_arn, params, op)
}

/// Fragments numbered above `after`, oldest first.
pub(crate) fn after(
    conn: &Connection,
    stream_arn: &str,
    after: Option<FragmentNumber>,
    limit: usize,
) -> Result<Vec<FragmentMeta>> {
    const SQL: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND number > ?2 ORDER BY number LIMIT ?3"
    );
    if limit == 0 {
        return Ok(Vec::new());
    }
    let after = after.map(number_key);
    let after: &[u8] = after.as_ref().map_or(&[], |a| a.as_slice());
    query_metas(
        conn,
        SQL,
        stream_arn,
        params![stream_arn, after, limit_param(limit)],
        "list fragments after",
    )
}

/// The highest-numbered fragment.
pub(crate) fn latest(conn: &Connection, stream_arn: &str) -> Result<Option<FragmentMeta>> {
    const SQL: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment WHERE stream_id = ",
        stream_id_of_arn!(),
        " ORDER BY number DESC LIMIT 1"
    );
    Ok(query_metas(
        conn,
        SQL,
        stream_arn,
        params![stream_arn],
        "find latest fragment",
    )?
    .pop())
}

/// The lowest-numbered fragment with exactly this producer timestamp.
pub(crate) fn by_producer_ms(
    conn: &Connection,
    stream_arn: &str,
    producer_ms: i64,
) -> Result<Option<FragmentMeta>> {
    const SQL: &str = concat!(
        "SELECT ",
        meta_cols!(),
        " FROM fragment INDEXED BY fragment_producer WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND producer_ms = ?2 ORDER BY number LIMIT 1"
    );
    Ok(query_metas(
        conn,
        SQL,
        stream_arn,
        params![stream_arn, producer_ms],
        "find fragment by producer timestamp",
    )?
    .pop())
}

/// Where a fragment's media bytes are.
#[derive(Debug)]
pub(crate) struct Location {
    /// The stream directory under `media/`.
    pub(crate) dir: String,
    pub(crate) file_id: u64,
    pub(crate) file_offset: u64,
    pub(crate) size_bytes: u64,
}

/// A fragment's location.
pub(crate) fn location(
    conn: &Connection,
    stream_arn: &str,
    number: FragmentNumber,
) -> Result<Option<Location>> {
    const SQL: &str = "SELECT s.dir, f.file_id, f.file_offset, f.size_bytes FROM stream s JOIN fragment f \
                       ON f.stream_id = s.id WHERE s.arn = ?1 AND f.number = ?2";
    let op = "find fragment media";
    let row = conn
        .prepare_cached(SQL)
        .map_err(ctx(op))?
        .query_row(params![stream_arn, number_key(number)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()
        .map_err(ctx(op))?;
    let Some((dir, file_id, file_offset, size_bytes)) = row else {
        return Ok(None);
    };
    let corrupt = |reason| Error::CorruptIndex {
        stream_arn: stream_arn.to_owned(),
        number,
        reason,
    };
    Ok(Some(Location {
        dir,
        file_id: u64::try_from(file_id).map_err(|_| corrupt("negative file_id"))?,
        file_offset: u64::try_from(file_offset).map_err(|_| corrupt("negative file_offset"))?,
        size_bytes: u64::try_from(size_bytes).map_err(|_| corrupt("negative size_bytes"))?,
    }))
}

/// A fragment's frame table blob, size and frame count.
pub(crate) fn frames_blob(
    conn: &Connection,
    stream_arn: &str,
    number: FragmentNumber,
) -> Result<Option<(Vec<u8>, i64, i64)>> {
    const SQL: &str = concat!(
        "SELECT x.frames, f.size_bytes, f.frame_count FROM fragment f JOIN fragment_frames x ON x.fragment_id = f.id ",
        "WHERE f.stream_id = ",
        stream_id_of_arn!(),
        " AND f.number = ?2"
    );
    let op = "load frame table";
    conn.prepare_cached(SQL)
        .map_err(ctx(op))?
        .query_row(params![stream_arn, number_key(number)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(ctx(op))
}

/// The id of an identical stored track set of this stream.
pub(crate) fn find_track_set(
    conn: &Connection,
    stream_arn: &str,
    json: &str,
) -> Result<Option<i64>> {
    const SQL: &str = concat!(
        "SELECT id FROM track_set WHERE stream_id = ",
        stream_id_of_arn!(),
        " AND json = ?2"
    );
    let op = "find track set";
    conn.prepare_cached(SQL)
        .map_err(ctx(op))?
        .query_row(params![stream_arn, json], |r| r.get(0))
        .optional()
        .map_err(ctx(op))
}

/// A track set's stream ARN and JSON.
pub(crate) fn load_track_set(conn: &Connection, id: i64) -> Result<Option<(String, String)>> {
    const SQL: &str =
        "SELECT s.arn, t.json FROM track_set t JOIN stream s ON s.id = t.stream_id WHERE t.id = ?1";
    let op = "load track set";
    conn.prepare_cached(SQL)
        .map_err(ctx(op))?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(ctx(op))
}

// ---- used by the writer thread only ----

/// `(id, dir)` of a stream.
pub(crate) fn stream_by_arn(conn: &Connection, stream_arn: &str) -> Result<Option<(i64, String)>> {
    let op = "find stream";
    conn.prepare_cached("SELECT id, dir FROM stream WHERE arn = ?1")
        .map_err(ctx(op))?
        .query_row(params![stream_arn], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(ctx(op))
}

/// All streams: `(id, arn, dir)`.
pub(crate) fn all_streams(conn: &Connection) -> Result<Vec<(i64, String, String)>> {
    let op = "list streams";
    let mut stmt = conn
        .prepare_cached("SELECT id, arn, dir FROM stream ORDER BY id")
        .map_err(ctx(op))?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(ctx(op))?
        .collect::<rusqlite::Result<_>>()
        .map_err(ctx(op))
}

/// Inserts the stream (if new) and the track set (if new) in one transaction; returns
/// `(stream id, track set id)`, or `None` if the directory name belongs to another ARN.
pub(crate) fn insert_track_set(
    conn: &mut Connection,
    stream_arn: &str,
    dir: &str,
    json: &str,
) -> Result<Option<(i64, i64)>> {
    let op = "store track set";
    let tx = conn.transaction().map_err(ctx(op))?;
    tx.prepare_cached("INSERT OR IGNORE INTO stream (arn, dir) VALUES (?1, ?2)")
        .map_err(ctx(op))?
        .execute(params![stream_arn, dir])
        .map_err(ctx(op))?;
    let Some((stream_id, stored_dir)) = stream_by_arn(&tx, stream_arn)? else {
        return Ok(None); // the UNIQUE(dir) constraint ignored our insert
    };
    debug_assert_eq!(stored_dir, dir);
    tx.prepare_cached("INSERT OR IGNORE INTO track_set (stream_id, json) VALUES (?1, ?2)")
        .map_err(ctx(op))?
        .execute(params![stream_id, json])
        .map_err(ctx(op))?;
    let id = tx
        .prepare_cached("SELECT id FROM track_set WHERE stream_id = ?1 AND json = ?2")
        .map_err(ctx(op))?
        .query_row(params![stream_id, json], |r| r.get(0))
        .map_err(ctx(op))?;
    tx.commit().map_err(ctx(op))?;
    Ok(Some((stream_id, id)))
}

/// The stream a track set belongs to.
pub(crate) fn track_set_stream(conn: &Connection, id: i64) -> Result<Option<i64>> {
    let op = "check track set";
    conn.prepare_cached("SELECT stream_id FROM track_set WHERE id = ?1")
        .map_err(ctx(op))?
        .query_row(params![id], |r| r.get(0))
        .optional()
        .map_err(ctx(op))
}

/// Whether a fragment number is taken.
pub(crate) fn fragment_exists(
    conn: &Connection,
    stream_id: i64,
    number: FragmentNumber,
) -> Result<bool> {
    let op = "check fragment number";
    conn.prepare_cached("SELECT 1 FROM fragment WHERE stream_id = ?1 AND number = ?2")
        .map_err(ctx(op))?
        .query_row(params![stream_id, number_key(number)], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(ctx(op))
}

/// A row for [`insert_fragments`].
#[derive(Debug)]
pub(crate) struct NewRow<'a> {
    pub(crate) stream_id: i64,
    pub(crate) number: FragmentNumber,
    pub(crate) producer_ms: i64,
    pub(crate) server_ms: i64,
    pub(crate) duration_ms: i64,
    pub(crate) size_bytes: u64,
    pub(crate) cluster_timecode: u64,
    pub(crate) frame_count: u32,
    pub(crate) track_set_id: i64,
    pub(crate) file_id: u64,
    pub(crate) file_offset: u64,
    pub(crate) tags_json: Option<&'a str>,
    pub(crate) frames: &'a [u8],
}

/// Whether a stream's fragments sorted by `(server_ms, number)` (and by `(producer_ms, number)`)
/// are in number order — `stream.server_ordered` / `producer_ordered` — plus the maxima the writer
/// needs to keep the flags true.
///
/// Invariant while a flag is set: for any two rows, number order equals (timestamp, number)
/// order. A new row keeps it if it has the highest number and a timestamp no lower than any row's
/// (then it sorts last both ways); deleting rows keeps it. Anything else clears the flag for good.
/// Maxima of deleted rows may linger: that can only clear a flag early, never keep a wrong one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderState {
    pub(crate) server_ordered: bool,
    pub(crate) producer_ordered: bool,
    max_number: Option<FragmentNumber>,
    max_server_ms: i64,
    max_producer_ms: i64,
}

impl OrderState {
    /// Accounts for a new row.
    pub(crate) fn admit(&mut self, number: FragmentNumber, server_ms: i64, producer_ms: i64) {
        let highest = self.max_number.is_none_or(|m| number > m);
        self.server_ordered &= highest && server_ms >= self.max_server_ms;
        self.producer_ordered &= highest && producer_ms >= self.max_producer_ms;
        self.max_number = self.max_number.max(Some(number));
        self.max_server_ms = self.max_server_ms.max(server_ms);
        self.max_producer_ms = self.max_producer_ms.max(producer_ms);
    }
}

/// A stream's [`OrderState`] as stored.
pub(crate) fn order_state(conn: &Connection, stream_id: i64) -> Result<OrderState> {
    let op = "load stream order state";
    /// Flags, then the maxima of number, server_ms and producer_ms (NULL without rows).
    type OrderRow = (bool, bool, Option<[u8; 16]>, Option<i64>, Option<i64>);
    let row: Option<OrderRow> = conn
        .prepare_cached(
            "SELECT s.server_ordered, s.producer_ordered, \
                    (SELECT MAX(number) FROM fragment WHERE stream_id = s.id), \
                    (SELECT MAX(server_ms) FROM fragment WHERE stream_id = s.id), \
                    (SELECT MAX(producer_ms) FROM fragment WHERE stream_id = s.id) \
             FROM stream s WHERE s.id = ?1",
        )
        .map_err(ctx(op))?
        .query_row(params![stream_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()
        .map_err(ctx(op))?;
    let (server_ordered, producer_ordered, max_number, max_server_ms, max_producer_ms) =
        row.unwrap_or((true, true, None, None, None));
    Ok(OrderState {
        server_ordered,
        producer_ordered,
        max_number: max_number.map(|n| FragmentNumber(u128::from_be_bytes(n))),
        max_server_ms: max_server_ms.unwrap_or(i64::MIN),
        max_producer_ms: max_producer_ms.unwrap_or(i64::MIN),
    })
}

/// Inserts rows, and stores changed [`OrderState`] flags (`(stream id, state)`), in one
/// transaction: one WAL fsync for the whole batch.
pub(crate) fn insert_fragments<'a>(
    conn: &mut Connection,
    rows: impl IntoIterator<Item = NewRow<'a>>,
    order_changes: &[(i64, OrderState)],
) -> Result<()> {
    const SQL: &str = "INSERT INTO fragment (stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, \
                       cluster_timecode, frame_count, track_set_id, file_id, file_offset, tags_json) \
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    const FRAMES_SQL: &str = "INSERT INTO fragment_frames (fragment_id, frames) VALUES (?1, ?2)";
    let op = "insert fragment rows";
    let tx = conn.transaction().map_err(ctx(op))?;
    {
        let mut stmt = tx.prepare_cached(SQL).map_err(ctx(op))?;
        let mut frames_stmt = tx.prepare_cached(FRAMES_SQL).map_err(ctx(op))?;
        for r in rows {
            stmt.execute(params![
                r.stream_id,
                number_key(r.number),
                r.producer_ms,
                r.server_ms,
                r.duration_ms,
                i64::try_from(r.size_bytes).expect("fragment size fits i64"),
                r.cluster_timecode.cast_signed(),
                r.frame_count,
                r.track_set_id,
                i64::try_from(r.file_id).expect("file ids are small counters"),
                i64::try_from(r.file_offset).expect("file offsets fit i64"),
                r.tags_json,
            ])
            .map_err(ctx(op))?;
            frames_stmt
                .execute(params![tx.last_insert_rowid(), r.frames])
                .map_err(ctx(op))?;
        }
        let mut flags = tx
            .prepare_cached(
                "UPDATE stream SET server_ordered = ?2, producer_ordered = ?3 WHERE id = ?1",
            )
            .map_err(ctx(op))?;
        for (stream_id, o) in order_changes {
            flags
                .execute(params![stream_id, o.server_ordered, o.producer_ordered])
                .map_err(ctx(op))?;
        }
    }
    tx.commit().map_err(ctx("commit fragment rows"))
}

/// The end of the last indexed fragment in file order: `(file_id, end offset)`.
pub(crate) fn last_indexed_end(conn: &Connection, stream_id: i64) -> Result<Option<(u64, u64)>> {
    let op = "find last indexed byte";
    let row: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT file_id, file_offset + size_bytes FROM fragment INDEXED BY fragment_file \
             WHERE stream_id = ?1 ORDER BY file_id DESC, file_offset DESC LIMIT 1",
        )
        .map_err(ctx(op))?
        .query_row(params![stream_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(ctx(op))?;
    Ok(row.map(|(f, e)| (f.cast_unsigned(), e.cast_unsigned())))
}

/// Whether any row references a segment file.
pub(crate) fn file_referenced(conn: &Connection, stream_id: i64, file_id: u64) -> Result<bool> {
    let op = "check segment file references";
    conn.prepare_cached("SELECT 1 FROM fragment INDEXED BY fragment_file WHERE stream_id = ?1 AND file_id = ?2 LIMIT 1")
        .map_err(ctx(op))?
        .query_row(params![stream_id, file_id.cast_signed()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(ctx(op))
}

/// Deletes a stream's fragments with `server_ms < before_ms`; returns how many.
pub(crate) fn expire(conn: &mut Connection, stream_id: i64, before_ms: i64) -> Result<u64> {
    let op = "delete expired fragments";
    let tx = conn.transaction().map_err(ctx(op))?;
    tx.prepare_cached(
        "DELETE FROM fragment_frames WHERE fragment_id IN \
         (SELECT id FROM fragment INDEXED BY fragment_server WHERE stream_id = ?1 AND server_ms < ?2)",
    )
    .map_err(ctx(op))?
    .execute(params![stream_id, before_ms])
    .map_err(ctx(op))?;
    let n = tx
        .prepare_cached("DELETE FROM fragment WHERE stream_id = ?1 AND server_ms < ?2")
        .map_err(ctx(op))?
        .execute(params![stream_id, before_ms])
        .map_err(ctx(op))?;
    tx.commit().map_err(ctx(op))?;
    Ok(n as u64)
}

/// Deletes a stream's rows in all tables, in one transaction.
pub(crate) fn delete_stream(conn: &mut Connection, stream_id: i64) -> Result<()> {
    let op = "delete stream";
    let tx = conn.transaction().map_err(ctx(op))?;
    for sql in [
        "DELETE FROM fragment_frames WHERE fragment_id IN (SELECT id FROM fragment WHERE stream_id = ?1)",
        "DELETE FROM fragment WHERE stream_id = ?1",
        "DELETE FROM track_set WHERE stream_id = ?1",
        "DELETE FROM stream WHERE id = ?1",
    ] {
        tx.execute(sql, params![stream_id]).map_err(ctx(op))?;
    }
    tx.commit().map_err(ctx(op))
}

/// One row as fsck sees it.
#[derive(Debug)]
pub(crate) struct CheckRow {
    pub(crate) number: FragmentNumber,
    pub(crate) file_id: u64,
    pub(crate) file_offset: u64,
    pub(crate) size_bytes: u64,
    pub(crate) frame_count: i64,
    /// `None` if the `fragment_frames` row is missing.
    pub(crate) frames: Option<Vec<u8>>,
}

/// Calls `f` for every row of a stream in file order.
pub(crate) fn for_each_row(
    conn: &Connection,
    stream_id: i64,
    mut f: impl FnMut(CheckRow) -> Result<()>,
) -> Result<()> {
    let op = "scan fragment rows";
    let mut stmt = conn
        .prepare_cached(
            "SELECT f.number, f.file_id, f.file_offset, f.size_bytes, f.frame_count, x.frames \
             FROM fragment f INDEXED BY fragment_file LEFT JOIN fragment_frames x ON x.fragment_id = f.id \
             WHERE f.stream_id = ?1 ORDER BY f.file_id, f.file_offset",
        )
        .map_err(ctx(op))?;
    let mut rows = stmt.query(params![stream_id]).map_err(ctx(op))?;
    while let Some(r) = rows.next().map_err(ctx(op))? {
        let row = (|| -> rusqlite::Result<CheckRow> {
            Ok(CheckRow {
                number: FragmentNumber(u128::from_be_bytes(r.get(0)?)),
                file_id: r.get::<_, i64>(1)?.cast_unsigned(),
                file_offset: r.get::<_, i64>(2)?.cast_unsigned(),
                size_bytes: r.get::<_, i64>(3)?.cast_unsigned(),
                frame_count: r.get(4)?,
                frames: r.get(5)?,
            })
        })()
        .map_err(ctx(op))?;
        f(row)?;
    }
    Ok(())
}

/// Deletes one row (fsck repair).
pub(crate) fn delete_fragment(
    conn: &Connection,
    stream_id: i64,
    number: FragmentNumber,
) -> Result<()> {
    let op = "delete damaged fragment row";
    for sql in [
        "DELETE FROM fragment_frames WHERE fragment_id = (SELECT id FROM fragment WHERE stream_id = ?1 AND number = ?2)",
        "DELETE FROM fragment WHERE stream_id = ?1 AND number = ?2",
    ] {
        conn.prepare_cached(sql)
            .map_err(ctx(op))?
            .execute(params![stream_id, number_key(number)])
            .map_err(ctx(op))?;
    }
    Ok(())
}
