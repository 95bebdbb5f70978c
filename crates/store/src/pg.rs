//! PostgreSQL connection pool and schema migrations, shared by the PostgreSQL catalog and the
//! S3 store's fragment index (one database holds both).
//!
//! `tokio-postgres` with a `deadpool-postgres` pool. Every statement is prepared through the
//! connection's statement cache, so a hot query is parsed once per connection.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::{Error, Result};

/// Schema migrations, applied in order inside one transaction each; `openkvs_schema` records
/// how many ran. Several nodes may start at once: a transaction-scoped advisory lock serialises
/// them, and the loser sees the winner's version and applies nothing.
const MIGRATIONS: &[&str] = &[
    // 1: the fragment index of the S3 media store (DESIGN.md, "Scale-out: S3 + PostgreSQL").
    r"
CREATE TABLE frag_stream (
    id         BIGSERIAL PRIMARY KEY,
    arn        TEXT NOT NULL UNIQUE,
    -- object key prefix of the stream's fragments: streams/<name>.<created_ms>
    key_prefix TEXT NOT NULL
);
CREATE TABLE track_set (
    id        BIGSERIAL PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES frag_stream (id) ON DELETE CASCADE,
    json      TEXT NOT NULL
);
-- md5: a btree entry is limited to about 2.7 kB, and codec private data can be larger.
CREATE UNIQUE INDEX track_set_unique ON track_set (stream_id, md5(json));
CREATE TABLE fragment (
    stream_id        BIGINT NOT NULL REFERENCES frag_stream (id) ON DELETE CASCADE,
    -- FragmentNumber (u128) as 16 big-endian bytes: bytea order is number order.
    number           BYTEA NOT NULL CHECK (length(number) = 16),
    producer_ms      BIGINT NOT NULL,
    server_ms        BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL CHECK (duration_ms >= 0),
    size_bytes       BIGINT NOT NULL CHECK (size_bytes >= 0),
    -- u64 stored bit-for-bit in an i64
    cluster_timecode BIGINT NOT NULL,
    frame_count      INTEGER NOT NULL,
    track_set_id     BIGINT NOT NULL REFERENCES track_set (id) ON DELETE CASCADE,
    tags_json        TEXT,
    object_key       TEXT NOT NULL,
    -- where the fragment's media starts in the object (0: one fragment per object for now)
    object_offset    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_id, number)
);
-- ListFragments by either timestamp, then by number (the ORDER BY of a range query).
CREATE INDEX fragment_server ON fragment (stream_id, server_ms, number);
CREATE INDEX fragment_producer ON fragment (stream_id, producer_ms, number);
-- The per-frame table, apart from the fragment row: range scans read only the small rows.
CREATE TABLE fragment_frames (
    stream_id BIGINT NOT NULL,
    number    BYTEA NOT NULL,
    frames    BYTEA NOT NULL,
    PRIMARY KEY (stream_id, number),
    FOREIGN KEY (stream_id, number) REFERENCES fragment (stream_id, number) ON DELETE CASCADE
);
",
    // 2: the catalog, as in the SQLite catalog (`sqlite.rs`). Names and ARNs sort bytewise
    // (COLLATE "C"), like SQLite's BINARY, whatever the database's default collation.
    r#"
CREATE TABLE stream (
    name                 TEXT COLLATE "C" PRIMARY KEY,
    arn                  TEXT COLLATE "C" NOT NULL UNIQUE,
    device_name          TEXT,
    media_type           TEXT,
    kms_key_id           TEXT,
    version              TEXT NOT NULL,
    created_ms           BIGINT NOT NULL,
    data_retention_hours BIGINT NOT NULL CHECK (data_retention_hours >= 0),
    storage_tier         TEXT NOT NULL
);
CREATE TABLE channel (
    name                     TEXT COLLATE "C" PRIMARY KEY,
    arn                      TEXT COLLATE "C" NOT NULL UNIQUE,
    channel_type             TEXT NOT NULL,
    version                  TEXT NOT NULL,
    created_ms               BIGINT NOT NULL,
    message_ttl_seconds      INTEGER NOT NULL CHECK (message_ttl_seconds BETWEEN 5 AND 120),
    media_storage_stream_arn TEXT
);
CREATE TABLE tag (
    arn   TEXT COLLATE "C" NOT NULL,
    key   TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
);
"#,
];

/// Key of the advisory lock that serialises migrations across nodes ("okvs" in ASCII).
const MIGRATION_LOCK: i64 = 0x6f6b_7673;

/// A pool of PostgreSQL connections with the openkvs schema applied. Cheap to clone.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    /// The connection settings, for connections outside the pool (the fragment listener).
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.pool.status();
        f.debug_struct("PgPool")
            .field("size", &s.size)
            .field("available", &s.available)
            .finish()
    }
}

/// Tuning of [`PgPool::connect`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool (default 16).
    pub max_connections: usize,
    /// How long a call waits for a connection, including opening one (default 5 s). A down
    /// server thus fails calls after this long instead of hanging ingest.
    pub timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

impl PgPool {
    /// Connects to `url` (`postgres://user:password@host:port/db`, libpq key=value also
    /// accepted) and applies migrations. No TLS: run PostgreSQL on a private network.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|source| Error::Postgres {
            op: "parse the PostgreSQL URL",
            source,
        })?;
        config.connect_timeout(options.timeout);
        config.application_name("openkvs");
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .expect("a runtime is set, so timeouts are allowed");
        let pg = Self { pool, config };
        pg.migrate().await?;
        Ok(pg)
    }

    /// A pooled connection.
    pub(crate) async fn get(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|source| Error::PgPool { source })
    }

    /// The connection settings (URL parsed, timeouts applied).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.get().await?;
        let err = |op| move |source| Error::Postgres { op, source };
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS openkvs_schema (version INTEGER NOT NULL); \
             INSERT INTO openkvs_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM openkvs_schema)",
        )
        .await
        .map_err(err("create the schema version table"))?;
        let tx = conn.transaction().await.map_err(err("begin a migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err("take the migration lock"))?;
        let applied: i32 = tx
            .query_one("SELECT version FROM openkvs_schema", &[])
            .await
            .map_err(err("read the schema version"))?
            .get(0);
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(Error::InvalidUpdate(format!(
                "the PostgreSQL database has openkvs schema version {applied}, newer than this openkvs understands ({}); upgrade openkvs",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(sql)
                .await
                .map_err(err("apply a schema migration"))?;
            let version = i32::try_from(i + 1).expect("few migrations");
            tx.execute("UPDATE openkvs_schema SET version = $1", &[&version])
                .await
                .map_err(err("record the schema version"))?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(err("commit migrations"))?;
        Ok(())
    }
}
