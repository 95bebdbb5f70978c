//! [`PostgresCatalog`]: the scale-out [`Catalog`] — the same tables and semantics as the SQLite
//! catalog (`sqlite.rs`), in the PostgreSQL database that also holds the S3 store's fragment
//! index, so every node sees one catalog.
//!
//! Concurrency: creates rely on the primary key (exactly one concurrent create of a name wins);
//! read-modify-write calls (update, delete, tag) lock the resource's row with `FOR UPDATE`, so a
//! version check and the tag-count limit hold across nodes.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::catalog::{
    Catalog, ChannelRecord, ChannelUpdate, MAX_TAGS_PER_RESOURCE, NewChannel, NewStream, Page,
    ResourceStatus, Selector, StreamRecord, StreamUpdate, Tags,
};
use crate::pg::PgPool;
use crate::sqlite::new_version;
use crate::{Error, Result};

/// The PostgreSQL catalog. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresCatalog {
    pg: PgPool,
}

impl PostgresCatalog {
    /// A catalog on an opened pool (migrations applied by [`PgPool::connect`]).
    pub fn new(pg: PgPool) -> Self {
        Self { pg }
    }
}

fn pg_err(op: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |source| Error::Postgres { op, source }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

const STREAM_COLS: &str = "name, arn, device_name, media_type, kms_key_id, version, created_ms, data_retention_hours, storage_tier";

fn stream_row(r: &Row) -> StreamRecord {
    StreamRecord {
        name: r.get(0),
        arn: r.get(1),
        device_name: r.get(2),
        media_type: r.get(3),
        kms_key_id: r.get(4),
        version: r.get(5),
        status: ResourceStatus::Active,
        created_ms: r.get(6),
        data_retention_hours: r.get::<_, i64>(7) as u32,
        storage_tier: r.get(8),
    }
}

const CHANNEL_COLS: &str =
    "name, arn, channel_type, version, created_ms, message_ttl_seconds, media_storage_stream_arn";

fn channel_row(r: &Row) -> ChannelRecord {
    ChannelRecord {
        name: r.get(0),
        arn: r.get(1),
        channel_type: r.get(2),
        status: ResourceStatus::Active,
        version: r.get(3),
        created_ms: r.get(4),
        message_ttl_seconds: r.get::<_, i32>(5) as u32,
        media_storage_stream_arn: r.get(6),
    }
}

/// `table` is one of our two constant table names, never user input.
async fn find<T>(
    tx: &impl deadpool_postgres::GenericClient,
    table: &'static str,
    cols: &str,
    what: &'static str,
    sel: &Selector,
    lock: bool,
    map: fn(&Row) -> T,
) -> Result<T> {
    let (col, key) = match sel {
        Selector::Name(n) => ("name", n),
        Selector::Arn(a) => ("arn", a),
    };
    let sql = format!(
        "SELECT {cols} FROM {table} WHERE {col} = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = tx
        .query_opt(sql.as_str(), &[key])
        .await
        .map_err(pg_err("look up a catalog row"))?
        .ok_or_else(|| Error::NotFound {
            what,
            key: sel.describe(),
        })?;
    Ok(map(&row))
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

async fn insert_tags(tx: &Transaction<'_>, arn: &str, tags: &Tags) -> Result<()> {
    for (k, v) in tags {
        tx.execute(
            "INSERT INTO tag (arn, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (arn, key) DO UPDATE SET value = EXCLUDED.value",
            &[&arn, k, v],
        )
        .await
        .map_err(pg_err("insert a tag"))?;
    }
    let count: i64 = tx
        .query_one("SELECT count(*) FROM tag WHERE arn = $1", &[&arn])
        .await
        .map_err(pg_err("count tags"))?
        .get(0);
    let count = count as usize;
    if count > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TooManyTags {
            key: arn.to_owned(),
            count,
            max: MAX_TAGS_PER_RESOURCE,
        });
    }
    Ok(())
}

/// The stream or channel with this ARN exists; its row is locked for the transaction.
async fn lock_resource(tx: &Transaction<'_>, arn: &str) -> Result<()> {
    let found = tx
        .query_opt("SELECT 1 FROM stream WHERE arn = $1 FOR UPDATE", &[&arn])
        .await
        .map_err(pg_err("look up a tagged resource"))?
        .is_some()
        || tx
            .query_opt("SELECT 1 FROM channel WHERE arn = $1 FOR UPDATE", &[&arn])
            .await
            .map_err(pg_err("look up a tagged resource"))?
            .is_some();
    if found {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "resource",
            key: arn.to_owned(),
        })
    }
}

impl PostgresCatalog {
    async fn list<T>(
        &self,
        table: &'static str,
        cols: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
        map: fn(&Row) -> T,
        name_of: fn(&T) -> &str,
    ) -> Result<Page<T>> {
        // Prefix match with left(), not LIKE: names may contain '_', a LIKE wildcard.
        let sql = format!(
            "SELECT {cols} FROM {table} \
             WHERE ($1::text IS NULL OR left(name, length($1::text)) = $1::text) \
             AND ($2::text IS NULL OR name > $2::text) ORDER BY name LIMIT $3"
        );
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let conn = self.pg.get().await?;
        let stmt = conn
            .prepare_cached(&sql)
            .await
            .map_err(pg_err("prepare a listing"))?;
        let rows = conn
            .query(&stmt, &[&prefix, &after, &fetch])
            .await
            .map_err(pg_err("list catalog rows"))?;
        let mut items: Vec<T> = rows.iter().map(map).collect();
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| name_of(i).to_owned())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn create_stream(&self, new: NewStream) -> Result<StreamRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let r = tx
            .execute(
                &format!(
                    "INSERT INTO stream ({STREAM_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &new.name,
                    &new.arn,
                    &new.device_name,
                    &new.media_type,
                    &new.kms_key_id,
                    &new_version(),
                    &new.created_ms,
                    &i64::from(new.data_retention_hours),
                    &new.storage_tier,
                ],
            )
            .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists {
                    what: "stream",
                    name: new.name,
                });
            }
            r => r.map_err(pg_err("insert a stream"))?,
        };
        insert_tags(&tx, &new.arn, &new.tags).await?;
        let sel = Selector::Name(new.name);
        let rec = find(
            &tx,
            "stream",
            STREAM_COLS,
            "stream",
            &sel,
            false,
            stream_row,
        )
        .await?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(rec)
    }

    async fn stream(&self, sel: &Selector) -> Result<StreamRecord> {
        let conn = self.pg.get().await?;
        find(
            &conn,
            "stream",
            STREAM_COLS,
            "stream",
            sel,
            false,
            stream_row,
        )
        .await
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamRecord>> {
        self.list(
            "stream",
            STREAM_COLS,
            prefix,
            after,
            limit,
            stream_row,
            |s| &s.name,
        )
        .await
    }

    async fn update_stream(
        &self,
        sel: &Selector,
        current_version: &str,
        update: StreamUpdate,
    ) -> Result<StreamRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let cur = find(&tx, "stream", STREAM_COLS, "stream", sel, true, stream_row).await?;
        check_version(sel, current_version, &cur.version)?;
        tx.execute(
            "UPDATE stream SET device_name = coalesce($2, device_name), media_type = coalesce($3, media_type), \
             data_retention_hours = coalesce($4, data_retention_hours), storage_tier = coalesce($5, storage_tier), \
             version = $6 WHERE name = $1",
            &[
                &cur.name,
                &update.device_name,
                &update.media_type,
                &update.data_retention_hours.map(i64::from),
                &update.storage_tier,
                &new_version(),
            ],
        )
        .await
        .map_err(pg_err("update a stream"))?;
        let sel = Selector::Name(cur.name);
        let rec = find(
            &tx,
            "stream",
            STREAM_COLS,
            "stream",
            &sel,
            false,
            stream_row,
        )
        .await?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(rec)
    }

    async fn delete_stream(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<StreamRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let cur = find(&tx, "stream", STREAM_COLS, "stream", sel, true, stream_row).await?;
        if let Some(v) = current_version {
            check_version(sel, v, &cur.version)?;
        }
        tx.execute("DELETE FROM stream WHERE name = $1", &[&cur.name])
            .await
            .map_err(pg_err("delete a stream"))?;
        tx.execute("DELETE FROM tag WHERE arn = $1", &[&cur.arn])
            .await
            .map_err(pg_err("delete tags"))?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(cur)
    }

    async fn create_channel(&self, new: NewChannel) -> Result<ChannelRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let ttl = i32::try_from(new.message_ttl_seconds).unwrap_or(i32::MAX);
        let r = tx
            .execute(
                &format!(
                    "INSERT INTO channel ({CHANNEL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
                ),
                &[
                    &new.name,
                    &new.arn,
                    &new.channel_type,
                    &new_version(),
                    &new.created_ms,
                    &ttl,
                ],
            )
            .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists {
                    what: "channel",
                    name: new.name,
                });
            }
            r => r.map_err(pg_err("insert a channel"))?,
        };
        insert_tags(&tx, &new.arn, &new.tags).await?;
        let sel = Selector::Name(new.name);
        let rec = find(
            &tx,
            "channel",
            CHANNEL_COLS,
            "channel",
            &sel,
            false,
            channel_row,
        )
        .await?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(rec)
    }

    async fn channel(&self, sel: &Selector) -> Result<ChannelRecord> {
        let conn = self.pg.get().await?;
        find(
            &conn,
            "channel",
            CHANNEL_COLS,
            "channel",
            sel,
            false,
            channel_row,
        )
        .await
    }

    async fn list_channels(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ChannelRecord>> {
        self.list(
            "channel",
            CHANNEL_COLS,
            prefix,
            after,
            limit,
            channel_row,
            |c| &c.name,
        )
        .await
    }

    async fn update_channel(
        &self,
        sel: &Selector,
        current_version: &str,
        update: ChannelUpdate,
    ) -> Result<ChannelRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let cur = find(
            &tx,
            "channel",
            CHANNEL_COLS,
            "channel",
            sel,
            true,
            channel_row,
        )
        .await?;
        check_version(sel, current_version, &cur.version)?;
        let ttl = update
            .message_ttl_seconds
            .map(|t| i32::try_from(t).unwrap_or(i32::MAX));
        tx.execute(
            "UPDATE channel SET message_ttl_seconds = coalesce($2, message_ttl_seconds), version = $3 WHERE name = $1",
            &[&cur.name, &ttl, &new_version()],
        )
        .await
        .map_err(pg_err("update a channel"))?;
        let sel = Selector::Name(cur.name);
        let rec = find(
            &tx,
            "channel",
            CHANNEL_COLS,
            "channel",
            &sel,
            false,
            channel_row,
        )
        .await?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(rec)
    }

    async fn delete_channel(
        &self,
        sel: &Selector,
        current_version: Option<&str>,
    ) -> Result<ChannelRecord> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        let cur = find(
            &tx,
            "channel",
            CHANNEL_COLS,
            "channel",
            sel,
            true,
            channel_row,
        )
        .await?;
        if let Some(v) = current_version {
            check_version(sel, v, &cur.version)?;
        }
        tx.execute("DELETE FROM channel WHERE name = $1", &[&cur.name])
            .await
            .map_err(pg_err("delete a channel"))?;
        tx.execute("DELETE FROM tag WHERE arn = $1", &[&cur.arn])
            .await
            .map_err(pg_err("delete tags"))?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(cur)
    }

    async fn tag(&self, arn: &str, tags: Tags) -> Result<()> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        lock_resource(&tx, arn).await?;
        insert_tags(&tx, arn, &tags).await?;
        tx.commit().await.map_err(pg_err("commit"))
    }

    async fn untag(&self, arn: &str, keys: Vec<String>) -> Result<()> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        lock_resource(&tx, arn).await?;
        tx.execute(
            "DELETE FROM tag WHERE arn = $1 AND key = ANY($2)",
            &[&arn, &keys],
        )
        .await
        .map_err(pg_err("delete tags"))?;
        tx.commit().await.map_err(pg_err("commit"))
    }

    async fn tags(&self, arn: &str) -> Result<Tags> {
        let mut conn = self.pg.get().await?;
        let tx = conn.transaction().await.map_err(pg_err("begin"))?;
        lock_resource(&tx, arn).await?;
        let rows = tx
            .query(
                "SELECT key, value FROM tag WHERE arn = $1 ORDER BY key",
                &[&arn],
            )
            .await
            .map_err(pg_err("list tags"))?;
        tx.commit().await.map_err(pg_err("commit"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
