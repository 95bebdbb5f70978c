//! The embedded catalog: one SQLite database file, `catalog.db`, in the data directory.
//!
//! One connection behind a mutex, used from `spawn_blocking`: control-plane calls are rare and
//! tiny, and a single writer makes "exactly one concurrent create wins" trivially true (the
//! `UNIQUE` constraint would enforce it anyway). WAL mode with `synchronous=FULL`: a call that
//! returned success survives power loss.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::Rng as _;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::catalog::{
    Catalog, ChannelRecord, ChannelUpdate, MAX_TAGS_PER_RESOURCE, NewChannel, NewStream, Page,
    ResourceStatus, Selector, StreamRecord, StreamUpdate, Tags,
};
use crate::{Error, Result};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE stream (
    name                 TEXT PRIMARY KEY,   -- [a-zA-Z0-9_.-]{1,256}, unique per server
    arn                  TEXT NOT NULL UNIQUE,
    device_name          TEXT,
    media_type           TEXT,
    kms_key_id           TEXT,
    version              TEXT NOT NULL,      -- random, replaced on every mutation
    created_ms           INTEGER NOT NULL,   -- epoch ms, also the last ARN component
    data_retention_hours INTEGER NOT NULL CHECK (data_retention_hours >= 0),
    storage_tier         TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE channel (
    name                     TEXT PRIMARY KEY,
    arn                      TEXT NOT NULL UNIQUE,
    channel_type             TEXT NOT NULL,
    version                  TEXT NOT NULL,
    created_ms               INTEGER NOT NULL,
    message_ttl_seconds      INTEGER NOT NULL CHECK (message_ttl_seconds BETWEEN 5 AND 120),
    media_storage_stream_arn TEXT
) WITHOUT ROWID;
-- Tags of streams and channels alike, keyed by ARN (TagResource works on either).
CREATE TABLE tag (
    arn   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
) WITHOUT ROWID;
"];

/// The embedded SQLite catalog.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    conn: Arc<Mutex<Connection>>,
}

pub(crate) fn new_version() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl SqliteCatalog {
    /// Opens (creating if needed) `dir/catalog.db` and applies migrations.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(dir.join("catalog.db"))?;
        Self::init(conn)
    }

    /// An in-memory catalog, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if applied > MIGRATIONS.len() {
            return Err(Error::InvalidUpdate(format!(
                "catalog.db has schema version {applied}, newer than this openkvs understands ({}); upgrade openkvs",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
            tracing::info!(version = i + 1, "applied catalog migration");
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .expect("catalog mutex poisoned: a previous call panicked");
            f(&mut guard)
        })
        .await?
    }
}

const STREAM_COLS: &str = "name, arn, device_name, media_type, kms_key_id, version, created_ms, data_retention_hours, storage_tier";

fn stream_row(r: &Row<'_>) -> rusqlite::Result<StreamRecord> {
    Ok(StreamRecord {
        name: r.get(0)?,
        arn: r.get(1)?,
        device_name: r.get(2)?,
        media_type: r.get(3)?,
        kms_key_id: r.get(4)?,
        version: r.get(5)?,
        status: ResourceStatus::Active,
        created_ms: r.get(6)?,
        data_retention_hours: r.get(7)?,
        storage_tier: r.get(8)?,
    })
}

const CHANNEL_COLS: &str =
    "name, arn, channel_type, version, created_ms, message_ttl_seconds, media_storage_stream_arn";

fn channel_row(r: &Row<'_>) -> rusqlite::Result<ChannelRecord> {
    Ok(ChannelRecord {
        name: r.get(0)?,
        arn: r.get(1)?,
        channel_type: r.get(2)?,
        status: ResourceStatus::Active,
        version: r.get(3)?,
        created_ms: r.get(4)?,
        message_ttl_seconds: r.get(5)?,
        media_storage_stream_arn: r.get(6)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// `table` is one of our two constant table names, never user input.
fn find<T>(
    conn: &Connection,
    table: &'static str,
    cols: &str,
    what: &'static str,
    sel: &Selector,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<T> {
    let (col, key) = match sel {
        Selector::Name(n) => ("name", n),
        Selector::Arn(a) => ("arn", a),
    };
    conn.query_row(
        &format!("SELECT {cols} FROM {table} WHERE {col} = ?1"),
        [key],
        map,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound {
        what,
        key: sel.describe(),
    })
}

fn check_version(key: &Selector, given: &str, current: &str) -> Result<()> {
    if given == current {
        Ok(())
    } else {
        Err(Error::VersionMismatch {
            key: key.describe(),
            given: given.to_owned(),
            current: current.to_owned(),
        })
    }
}

fn list<T>(
    conn: &Connection,
    table: &'static str,
    cols: &str,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: usize,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
    name_of: fn(&T) -> &str,
) -> Result<Page<T>> {
    // Prefix match with substr, not LIKE: names may contain '_', a LIKE wildcard.
    let sql = format!(
        "SELECT {cols} FROM {table} WHERE (?1 IS NULL OR substr(name, 1, length(?1)) = ?1) \
         AND (?2 IS NULL OR name > ?2) ORDER BY name LIMIT ?3"
    );
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(params![prefix, after, fetch], map)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| name_of(i).to_owned())
    } else {
        None
    };
    Ok(Page { items, next_after })
}

fn insert_tags(tx: &rusqlite::Transaction<'_>, arn: &str, tags: &Tags) -> Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO tag (arn, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in tags {
        stmt.execute(params![arn, k, v])?;
    }
    let count: usize = tx.query_row("SELECT count(*) FROM tag WHERE arn = ?1", [arn], |r| {
        r.get(0)
    })?;
    if count > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TooManyTags {
            key: arn.to_owned(),
            count,
            max: MAX_TAGS_PER_RESOURCE,
        });
    }
    Ok(())
}

fn resource_exists(conn: &Connection, arn: &str) -> Result<()> {
    let n: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM stream WHERE arn = ?1) + (SELECT count(*) FROM channel WHERE arn = ?1)",
        [arn],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Err(Error::NotFound {
            what: "resource",
            key: arn.to_owned(),
        });
    }
    Ok(())
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn create_stream(&self, new: NewStream) -> Result<StreamRecord> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let version = new_version();
            let r = tx.execute(
                &format!(
                    "INSERT INTO stream ({STREAM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    new.name,
                    new.arn,
                    new.device_name,
                    new.media_type,
                    new.kms_key_id,
                    version,
                    new.created_ms,
                    new.data_retention_hours,
                    new.storage_tier
                ],
            );
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::AlreadyExists {
                        what: "stream",
                        name: new.name,
                    });
                }
                r => r?,
            };
            insert_tags(&tx, &new.arn, &new.tags)?;
            let rec = find(
                &tx,
                "stream",
                STREAM_COLS,
                "stream",
                &Selector::Name(new.name),
                stream_row,
            )?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    async fn stream(&self, sel: &Selector) -> Result<StreamRecord> {
        let sel = sel.clone();
        self.run(move |conn| find(conn, "stream", STREAM_COLS, "stream", &sel, stream_row))
            .await
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamRecord>> {
        let (prefix, after) = (prefix.map(str::to_owned), after.map(str::to_owned));
        self.run(move |conn| {
            list(
                conn,
                "stream",
                STREAM_COLS,
                prefix.as_deref(),
                after.as_deref(),
                limit,
                stream_row,
                |s| &s.name,
            )
        })
        .await
    }

    async fn update_stream(
        &self,
        sel: &Selector,
        current_version: &str,
        update: StreamUpdate,
    ) -> Result<StreamRecord> {
        let (sel, current_version) = (sel.clone(), current_version.to_owned());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let cur = find(&tx, "stream", STREAM_COLS, "stream", &sel, stream_row)?;
            check_version(&sel, &current_version, &cur.version)?;
            tx.execute(
                "UPDATE stream SET device_name = coalesce(?2, device_name), media_type = coalesce(?3, media_type), \
                 data_retention_hours = coalesce(?4, data_retention_hours), storage_tier = coalesce(?5, storage_tier), \
                 version = ?6 WHERE name = ?1",
                params![
                    cur.name,
                    update.device_name,
                    update.media_type,
                    update.data_retention_hours,
                    update.storage_tier,
                    new_version()
                ],
            )?;
            let rec = find(&tx, "stream", STREAM_COLS, "stream", &Selector::Name(cur.name), stream_row)?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    async fn delete_stream(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<StreamRecord> {
        let (sel, current_version) = (sel.clone(), current_version.map(str::to_owned));
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let cur = find(&tx, "stream", STREAM_COLS, "stream", &sel, stream_row)?;
            if let Some(v) = &current_version {
                check_version(&sel, v, &cur.version)?;
            }
            tx.execute("DELETE FROM stream WHERE name = ?1", [&cur.name])?;
            tx.execute("DELETE FROM tag WHERE arn = ?1", [&cur.arn])?;
            tx.commit()?;
            Ok(cur)
        })
        .await
    }

    async fn create_channel(&self, new: NewChannel) -> Result<ChannelRecord> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let r = tx.execute(
                &format!(
                    "INSERT INTO channel ({CHANNEL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)"
                ),
                params![
                    new.name,
                    new.arn,
                    new.channel_type,
                    new_version(),
                    new.created_ms,
                    new.message_ttl_seconds
                ],
            );
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::AlreadyExists {
                        what: "channel",
                        name: new.name,
                    });
                }
                r => r?,
            };
            insert_tags(&tx, &new.arn, &new.tags)?;
            let rec = find(
                &tx,
                "channel",
                CHANNEL_COLS,
                "channel",
                &Selector::Name(new.name),
                channel_row,
            )?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    async fn channel(&self, sel: &Selector) -> Result<ChannelRecord> {
        let sel = sel.clone();
        self.run(move |conn| find(conn, "channel", CHANNEL_COLS, "channel", &sel, channel_row))
            .await
    }

    async fn list_channels(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ChannelRecord>> {
        let (prefix, after) = (prefix.map(str::to_owned), after.map(str::to_owned));
        self.run(move |conn| {
            list(
                conn,
                "channel",
                CHANNEL_COLS,
                prefix.as_deref(),
                after.as_deref(),
                limit,
                channel_row,
                |c| &c.name,
            )
        })
        .await
    }

    async fn update_channel(
        &self,
        sel: &Selector,
        current_version: &str,
        update: ChannelUpdate,
    ) -> Result<ChannelRecord> {
        let (sel, current_version) = (sel.clone(), current_version.to_owned());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let cur = find(&tx, "channel", CHANNEL_COLS, "channel", &sel, channel_row)?;
            check_version(&sel, &current_version, &cur.version)?;
            tx.execute(
                "UPDATE channel SET message_ttl_seconds = coalesce(?2, message_ttl_seconds), version = ?3 WHERE name = ?1",
                params![cur.name, update.message_ttl_seconds, new_version()],
            )?;
            let rec = find(&tx, "channel", CHANNEL_COLS, "channel", &Selector::Name(cur.name), channel_row)?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    async fn delete_channel(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<ChannelRecord> {
        let (sel, current_version) = (sel.clone(), current_version.map(str::to_owned));
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let cur = find(&tx, "channel", CHANNEL_COLS, "channel", &sel, channel_row)?;
            if let Some(v) = &current_version {
                check_version(&sel, v, &cur.version)?;
            }
            tx.execute("DELETE FROM channel WHERE name = ?1", [&cur.name])?;
            tx.execute("DELETE FROM tag WHERE arn = ?1", [&cur.arn])?;
            tx.commit()?;
            Ok(cur)
        })
        .await
    }

    async fn tag(&self, arn: &str, tags: Tags) -> Result<()> {
        let arn = arn.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            resource_exists(&tx, &arn)?;
            insert_tags(&tx, &arn, &tags)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn untag(&self, arn: &str, keys: Vec<String>) -> Result<()> {
        let arn = arn.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            resource_exists(&tx, &arn)?;
            for k in &keys {
                tx.execute(
                    "DELETE FROM tag WHERE arn = ?1 AND key = ?2",
                    params![arn, k],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn tags(&self, arn: &str) -> Result<Tags> {
        let arn = arn.to_owned();
        self.run(move |conn| {
            resource_exists(conn, &arn)?;
            let mut stmt =
                conn.prepare_cached("SELECT key, value FROM tag WHERE arn = ?1 ORDER BY key")?;
            let tags = stmt
                .query_map([&arn], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Tags>>()?;
            Ok(tags)
        })
        .await
    }
}
