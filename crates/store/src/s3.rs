//! [`S3FragmentStore`]: the scale-out [`FragmentStore`] — fragment media as S3 objects, the
//! fragment index (rows plus per-frame tables) in PostgreSQL. Design: `crates/store/DESIGN.md`,
//! "Scale-out: S3 media + PostgreSQL index".
//!
//! One object per fragment under `streams/<name>/<YYYY>/<MM>/<DD>/<HH>/<number>`
//! (UTC hour of the fragment's server timestamp). `persist` writes the object, then the index
//! rows, and returns only when both succeeded; any failure fails the call (ingest answers ERROR
//! 5001) — nothing is spilled locally. Readers fetch byte ranges of an object, never the whole
//! object unless asked for all of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use kvs_core::FragmentNumber;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::fragment::{
    FragmentMeta, FragmentStore, FrameEntry, NewFragment, RangeQuery, TimestampKind, TrackSet,
};
use crate::local::stream_dir_name;
use crate::pg::PgPool;
use crate::{Error, Result, frame_table};

/// Where and how to reach the S3-compatible object store.
#[derive(Clone)]
pub struct S3Options {
    /// Bucket (must exist).
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` for a local S3-compatible server; `None`
    /// uses AWS's regional endpoint.
    pub endpoint_url: Option<String>,
    /// Region used for signing (S3-compatible servers mostly accept any).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need.
    pub force_path_style: bool,
    /// Timeout of one request attempt, including connecting (default 10 s). With S3
    /// unreachable, `persist` fails after this long (times the SDK's 3 attempts).
    pub attempt_timeout: Duration,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("force_path_style", &self.force_path_style)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Options with the default timeout and path-style addressing.
    pub fn new(
        bucket: impl Into<String>,
        endpoint_url: Option<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint_url,
            region: "us-east-1".into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            force_path_style: true,
            attempt_timeout: Duration::from_secs(10),
        }
    }

    /// The S3 client these options describe.
    pub fn client(&self) -> aws_sdk_s3::Client {
        // rustls with ring (the workspace's provider) rather than the SDK's default aws-lc-rs.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut config = aws_sdk_s3::Config::builder()
            .http_client(http)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                None,
                None,
                "openkvs-config",
            ))
            .force_path_style(self.force_path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.attempt_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }
}

/// Fragment media in S3, fragment index in PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3FragmentStore {
    pg: PgPool,
    s3: aws_sdk_s3::Client,
    bucket: Arc<str>,
}

/// `FragmentNumber` as stored: 16 big-endian bytes, so `bytea` order is number order.
fn number_key(n: FragmentNumber) -> Vec<u8> {
    n.0.to_be_bytes().to_vec()
}

fn number_from(bytes: &[u8]) -> Option<FragmentNumber> {
    Some(FragmentNumber(u128::from_be_bytes(bytes.try_into().ok()?)))
}

/// `streams/<name>`: the key prefix of a stream's objects (issue 7's Firehose-style layout).
/// The name is validated as for the local store's directories (`<name>.<created_ms>`). A stream
/// re-created under the same name shares the prefix but never a key: fragment numbers are unique.
fn stream_prefix(stream_arn: &str) -> Result<String> {
    let dir = stream_dir_name(stream_arn)?;
    let name = dir.rsplit_once('.').map_or(dir.as_str(), |(n, _)| n);
    Ok(format!("streams/{name}"))
}

/// `<prefix>/<YYYY>/<MM>/<DD>/<HH>/<number>`, the hour of `server_ms` in UTC (Firehose style).
fn object_key(prefix: &str, server_ms: i64, number: FragmentNumber) -> String {
    let secs = server_ms.div_euclid(1000);
    let (y, m, d) = kvs_core::civil_from_days(secs.div_euclid(86_400));
    let h = secs.rem_euclid(86_400) / 3600;
    format!("{prefix}/{y:04}/{m:02}/{d:02}/{h:02}/{number}")
}

const META_COLS: &str = "f.number, f.producer_ms, f.server_ms, f.duration_ms, f.size_bytes, \
     f.cluster_timecode, f.frame_count, f.track_set_id, f.tags_json";

fn pg_err(op: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |source| Error::Postgres { op, source }
}

fn s3_err<E>(op: &'static str, key: &str) -> impl FnOnce(E) -> Error
where
    aws_sdk_s3::Error: From<E>,
{
    let key = key.to_owned();
    move |e| Error::S3 {
        op,
        key,
        source: Box::new(aws_sdk_s3::Error::from(e)),
    }
}

fn meta_row(stream_arn: &str, r: &Row) -> Result<FragmentMeta> {
    let raw: Vec<u8> = r.get(0);
    let number = number_from(&raw).ok_or_else(|| Error::CorruptIndex {
        stream_arn: stream_arn.to_owned(),
        number: FragmentNumber(0),
        reason: "fragment number is not 16 bytes",
    })?;
    let tags_json: Option<String> = r.get(8);
    let tags = match tags_json {
        None => Vec::new(),
        Some(j) => serde_json::from_str(&j).map_err(|source| Error::CorruptJson {
            what: "fragment tags",
            source,
        })?,
    };
    let size: i64 = r.get(4);
    let frame_count: i32 = r.get(6);
    let timecode: i64 = r.get(5);
    Ok(FragmentMeta {
        stream_arn: stream_arn.to_owned(),
        number,
        producer_ms: r.get(1),
        server_ms: r.get(2),
        duration_ms: r.get(3),
        size_bytes: size as u64,
        cluster_timecode: timecode as u64,
        frame_count: frame_count as u32,
        track_set_id: r.get(7),
        tags,
    })
}

fn fragment_not_found(stream_arn: &str, number: FragmentNumber) -> Error {
    Error::NotFound {
        what: "fragment",
        key: format!("{number} of {stream_arn}"),
    }
}

impl S3FragmentStore {
    /// A store on an opened pool (migrations applied) and an S3 bucket. Checks that the
    /// bucket is reachable, so a misconfiguration fails at start-up rather than at the first
    /// fragment.
    pub async fn open(pg: PgPool, s3: &S3Options) -> Result<Self> {
        let client = s3.client();
        client
            .head_bucket()
            .bucket(&s3.bucket)
            .send()
            .await
            .map_err(s3_err("check bucket", &s3.bucket))?;
        Ok(Self {
            pg,
            s3: client,
            bucket: s3.bucket.as_str().into(),
        })
    }

    async fn query_metas(
        &self,
        stream_arn: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<FragmentMeta>> {
        let conn = self.pg.get().await?;
        let stmt = conn
            .prepare_cached(sql)
            .await
            .map_err(pg_err("prepare a fragment query"))?;
        let rows = conn
            .query(&stmt, params)
            .await
            .map_err(pg_err("query fragments"))?;
        rows.iter().map(|r| meta_row(stream_arn, r)).collect()
    }

    /// Deletes objects (at most 1000 per request, the S3 limit).
    async fn delete_objects(&self, keys: Vec<String>) -> Result<()> {
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .expect("key is set")
                })
                .collect::<Vec<_>>();
            let out = self
                .s3
                .delete_objects()
                .bucket(&*self.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .expect("objects are set"),
                )
                .send()
                .await
                .map_err(s3_err("delete objects from", &chunk[0]))?;
            if let Some(e) = out.errors().first() {
                tracing::error!(key = ?e.key(), code = ?e.code(), message = ?e.message(), "S3 refused to delete an object");
                return Err(Error::S3 {
                    op: "delete object",
                    key: e.key().unwrap_or_default().to_owned(),
                    // DeleteObjects reports per-key failures in a 200 response: no error value.
                    source: format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))
                        .into(),
                });
            }
        }
        Ok(())
    }

    async fn persist_inner(&self, f: &NewFragment, track_set_id: i64) -> Result<FragmentMeta> {
        let invalid = |reason| Error::InvalidFragment {
            stream_arn: f.stream_arn.clone(),
            number: f.number,
            reason,
        };
        let (frames, total) = frame_table::encode(&f.frames).map_err(invalid)?;
        if total != f.media.len() as u64 {
            return Err(invalid("frame sizes do not add up to the media length"));
        }
        let frame_count =
            i32::try_from(f.frames.len()).map_err(|_| invalid("more than 2^31 frames"))?;
        if f.duration_ms < 0 {
            return Err(invalid("negative duration"));
        }
        let tags_json = if f.tags.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&f.tags).expect("string pairs always serialize"))
        };
        let number = number_key(f.number);

        // Stream and track set known and belonging together; number not stored yet.
        // Prepared once per pooled connection: one round trip per call after the first.
        let conn = self.pg.get().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT s.id, s.key_prefix, t.stream_id, \
                    EXISTS (SELECT 1 FROM fragment x WHERE x.stream_id = s.id AND x.number = $3) \
                 FROM frag_stream s LEFT JOIN track_set t ON t.id = $2 \
                 WHERE s.arn = $1",
            )
            .await
            .map_err(pg_err("prepare the fragment's stream lookup"))?;
        let row = conn
            .query_opt(&stmt, &[&f.stream_arn, &track_set_id, &number])
            .await
            .map_err(pg_err("look up the fragment's stream"))?;
        let Some(row) = row else {
            return Err(Error::NotFound {
                what: "stream",
                key: f.stream_arn.clone(),
            });
        };
        let stream_id: i64 = row.get(0);
        let prefix: String = row.get(1);
        if row.get::<_, Option<i64>>(2) != Some(stream_id) {
            return Err(Error::NotFound {
                what: "track set",
                key: format!("{track_set_id} of {}", f.stream_arn),
            });
        }
        if row.get::<_, bool>(3) {
            return Err(Error::DuplicateFragment {
                stream_arn: f.stream_arn.clone(),
                number: f.number,
            });
        }
        drop(conn); // do not hold a connection during the upload

        // 1. The object. `If-None-Match: *` refuses to overwrite another writer's fragment of
        //    the same number (two nodes racing past the check above).
        let key = object_key(&prefix, f.server_ms, f.number);
        self.s3
            .put_object()
            .bucket(&*self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/octet-stream")
            .body(ByteStream::from(f.media.clone()))
            .send()
            .await
            .map_err(s3_err("put object", &key))?;

        // 2. The index rows and the announcement to other nodes, in one statement (so one
        //    implicit transaction and one round trip): PostgreSQL delivers the NOTIFY at commit,
        //    only if the rows were stored.
        let insert = async {
            let conn = self.pg.get().await?;
            let stmt = conn
                .prepare_cached(
                    "WITH f AS (INSERT INTO fragment (stream_id, number, producer_ms, server_ms, \
                        duration_ms, size_bytes, cluster_timecode, frame_count, track_set_id, \
                        tags_json, object_key) \
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING stream_id), \
                     fr AS (INSERT INTO fragment_frames (stream_id, number, frames) \
                        VALUES ($1, $2, $12)) \
                     SELECT pg_notify($13, $14) FROM f",
                )
                .await
                .map_err(pg_err("prepare a fragment insert"))?;
            conn.execute(
                &stmt,
                &[
                    &stream_id,
                    &number,
                    &f.producer_ms,
                    &f.server_ms,
                    &f.duration_ms,
                    &(total as i64),
                    &(f.cluster_timecode as i64),
                    &frame_count,
                    &track_set_id,
                    &tags_json,
                    &key,
                    &frames,
                    &crate::pg_listen::FRAGMENT_CHANNEL,
                    &crate::pg_listen::payload(&f.stream_arn, f.number),
                ],
            )
            .await
            .map_err(pg_err("insert a fragment"))
        };
        if let Err(e) = insert.await {
            let code = match &e {
                Error::Postgres { source, .. } => source.code().cloned(),
                _ => None,
            };
            if code == Some(SqlState::UNIQUE_VIOLATION) {
                // Another writer stored this number between our check and our insert; its
                // object is the one under `key` only if its PUT won, so leave the key alone.
                return Err(Error::DuplicateFragment {
                    stream_arn: f.stream_arn.clone(),
                    number: f.number,
                });
            }
            // Not indexed: the object is garbage. Best effort; a leftover object is only
            // space (readers go through the index).
            if let Err(del) = self.delete_objects(vec![key.clone()]).await {
                tracing::warn!(%key, error = %del, "could not delete the object of a fragment whose index insert failed");
            }
            if code == Some(SqlState::FOREIGN_KEY_VIOLATION) {
                // DeleteStream ran meanwhile.
                return Err(Error::NotFound {
                    what: "stream",
                    key: f.stream_arn.clone(),
                });
            }
            return Err(e);
        }
        Ok(FragmentMeta {
            stream_arn: f.stream_arn.clone(),
            number: f.number,
            producer_ms: f.producer_ms,
            server_ms: f.server_ms,
            duration_ms: f.duration_ms,
            size_bytes: total,
            cluster_timecode: f.cluster_timecode,
            frame_count: frame_count as u32,
            track_set_id,
            tags: f.tags.clone(),
        })
    }
}

#[async_trait]
impl FragmentStore for S3FragmentStore {
    async fn track_set(&self, stream_arn: &str, set: &TrackSet) -> Result<i64> {
        let prefix = stream_prefix(stream_arn)?;
        let json = serde_json::to_string(set).expect("track sets always serialize");
        let conn = self.pg.get().await?;
        // Two statements, each atomic: concurrent callers converge on one row per key.
        conn.execute(
            "INSERT INTO frag_stream (arn, key_prefix) VALUES ($1, $2) ON CONFLICT (arn) DO NOTHING",
            &[&stream_arn, &prefix],
        )
        .await
        .map_err(pg_err("insert a stream"))?;
        let row = conn
            .query_one(
                "WITH s AS (SELECT id FROM frag_stream WHERE arn = $1), \
                 ins AS (INSERT INTO track_set (stream_id, json) SELECT id, $2 FROM s \
                         ON CONFLICT (stream_id, md5(json)) DO NOTHING RETURNING id) \
                 SELECT id FROM ins UNION ALL \
                 SELECT t.id FROM track_set t, s WHERE t.stream_id = s.id AND md5(t.json) = md5($2) \
                 LIMIT 1",
                &[&stream_arn, &json],
            )
            .await
            .map_err(pg_err("insert a track set"))?;
        Ok(row.get(0))
    }

    async fn load_track_set(&self, id: i64) -> Result<Arc<TrackSet>> {
        let conn = self.pg.get().await?;
        let row = conn
            .query_opt("SELECT json FROM track_set WHERE id = $1", &[&id])
            .await
            .map_err(pg_err("load a track set"))?
            .ok_or_else(|| Error::NotFound {
                what: "track set",
                key: id.to_string(),
            })?;
        let json: String = row.get(0);
        Ok(Arc::new(serde_json::from_str(&json).map_err(|source| {
            Error::CorruptJson {
                what: "track set",
                source,
            }
        })?))
    }

    async fn persist(&self, fragment: NewFragment, track_set_id: i64) -> Result<FragmentMeta> {
        self.persist_inner(&fragment, track_set_id)
            .await
            .map_err(|e| match e {
                // The caller's mistakes keep their own variant, like the local store's.
                Error::NotFound { .. }
                | Error::InvalidFragment { .. }
                | Error::DuplicateFragment { .. } => e,
                other => Error::Persist {
                    stream_arn: fragment.stream_arn.clone(),
                    number: fragment.number,
                    source: Arc::new(other),
                },
            })
    }

    async fn get(&self, stream_arn: &str, number: FragmentNumber) -> Result<Option<FragmentMeta>> {
        let sql = format!(
            "SELECT {META_COLS} FROM fragment f JOIN frag_stream s ON s.id = f.stream_id \
             WHERE s.arn = $1 AND f.number = $2"
        );
        Ok(self
            .query_metas(stream_arn, &sql, &[&stream_arn, &number_key(number)])
            .await?
            .pop())
    }

    async fn range(&self, stream_arn: &str, q: &RangeQuery) -> Result<Vec<FragmentMeta>> {
        let col = match q.kind {
            TimestampKind::Server => "server_ms",
            TimestampKind::Producer => "producer_ms",
        };
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let after = q.after.map(number_key);
        let sql = format!(
            "SELECT {META_COLS} FROM fragment f JOIN frag_stream s ON s.id = f.stream_id \
             WHERE s.arn = $1 AND f.{col} BETWEEN $2 AND $3 {} ORDER BY f.number LIMIT $4",
            if after.is_some() {
                "AND f.number > $5"
            } else {
                ""
            }
        );
        match &after {
            Some(a) => {
                self.query_metas(
                    stream_arn,
                    &sql,
                    &[&stream_arn, &q.start_ms, &q.end_ms, &limit, a],
                )
                .await
            }
            None => {
                self.query_metas(
                    stream_arn,
                    &sql,
                    &[&stream_arn, &q.start_ms, &q.end_ms, &limit],
                )
                .await
            }
        }
    }

    async fn after(
        &self,
        stream_arn: &str,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map(number_key);
        let sql = format!(
            "SELECT {META_COLS} FROM fragment f JOIN frag_stream s ON s.id = f.stream_id \
             WHERE s.arn = $1 {} ORDER BY f.number LIMIT $2",
            if after.is_some() {
                "AND f.number > $3"
            } else {
                ""
            }
        );
        match &after {
            Some(a) => {
                self.query_metas(stream_arn, &sql, &[&stream_arn, &limit, a])
                    .await
            }
            None => {
                self.query_metas(stream_arn, &sql, &[&stream_arn, &limit])
                    .await
            }
        }
    }

    async fn latest(&self, stream_arn: &str) -> Result<Option<FragmentMeta>> {
        let sql = format!(
            "SELECT {META_COLS} FROM fragment f JOIN frag_stream s ON s.id = f.stream_id \
             WHERE s.arn = $1 ORDER BY f.number DESC LIMIT 1"
        );
        Ok(self
            .query_metas(stream_arn, &sql, &[&stream_arn])
            .await?
            .pop())
    }

    async fn by_producer_ms(
        &self,
        stream_arn: &str,
        producer_ms: i64,
    ) -> Result<Option<FragmentMeta>> {
        let sql = format!(
            "SELECT {META_COLS} FROM fragment f JOIN frag_stream s ON s.id = f.stream_id \
             WHERE s.arn = $1 AND f.producer_ms = $2 ORDER BY f.number LIMIT 1"
        );
        Ok(self
            .query_metas(stream_arn, &sql, &[&stream_arn, &producer_ms])
            .await?
            .pop())
    }

    async fn frames(&self, meta: &FragmentMeta) -> Result<Vec<FrameEntry>> {
        let conn = self.pg.get().await?;
        let row = conn
            .query_opt(
                "SELECT ff.frames FROM fragment_frames ff JOIN frag_stream s ON s.id = ff.stream_id \
                 WHERE s.arn = $1 AND ff.number = $2",
                &[&meta.stream_arn, &number_key(meta.number)],
            )
            .await
            .map_err(pg_err("load a frame table"))?
            .ok_or_else(|| fragment_not_found(&meta.stream_arn, meta.number))?;
        let blob: Vec<u8> = row.get(0);
        frame_table::decode(&blob).map_err(|reason| Error::CorruptIndex {
            stream_arn: meta.stream_arn.clone(),
            number: meta.number,
            reason,
        })
    }

    async fn read(&self, meta: &FragmentMeta, offset: u64, len: u64) -> Result<Bytes> {
        // The index's size and key are authoritative (a stale meta cannot read past them).
        let row = {
            let conn = self.pg.get().await?;
            conn.query_opt(
                "SELECT f.size_bytes, f.object_key, f.object_offset FROM fragment f \
                 JOIN frag_stream s ON s.id = f.stream_id WHERE s.arn = $1 AND f.number = $2",
                &[&meta.stream_arn, &number_key(meta.number)],
            )
            .await
            .map_err(pg_err("look up a fragment's object"))?
            .ok_or_else(|| fragment_not_found(&meta.stream_arn, meta.number))?
        };
        let size = row.get::<_, i64>(0) as u64;
        let key: String = row.get(1);
        let base = row.get::<_, i64>(2) as u64;
        if offset > size {
            return Err(Error::ReadOutOfRange {
                stream_arn: meta.stream_arn.clone(),
                number: meta.number,
                offset,
                size_bytes: size,
            });
        }
        let end = offset.saturating_add(len).min(size);
        if end == offset {
            return Ok(Bytes::new());
        }
        let out = self
            .s3
            .get_object()
            .bucket(&*self.bucket)
            .key(&key)
            .range(format!("bytes={}-{}", base + offset, base + end - 1))
            .send()
            .await
            .map_err(s3_err("get object", &key))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::S3 {
                op: "read object body",
                key: key.clone(),
                source: Box::new(e),
            })?
            .into_bytes();
        if body.len() as u64 != end - offset {
            return Err(Error::CorruptIndex {
                stream_arn: meta.stream_arn.clone(),
                number: meta.number,
                reason: "the object is shorter than the index says",
            });
        }
        Ok(body)
    }

    async fn expire(&self, stream_arn: &str, before_ms: i64) -> Result<u64> {
        // In pages: delete the objects first, then their rows. A failure leaves rows whose
        // objects may be gone (reads of them fail; they were expiring anyway) and the next
        // expire retries; never an object that no row will ever delete.
        let mut total = 0u64;
        loop {
            let conn = self.pg.get().await?;
            let rows = conn
                .query(
                    "SELECT f.stream_id, f.number, f.object_key FROM fragment f \
                     JOIN frag_stream s ON s.id = f.stream_id \
                     WHERE s.arn = $1 AND f.server_ms < $2 ORDER BY f.number LIMIT 1000",
                    &[&stream_arn, &before_ms],
                )
                .await
                .map_err(pg_err("list expired fragments"))?;
            drop(conn);
            if rows.is_empty() {
                return Ok(total);
            }
            let stream_id: i64 = rows[0].get(0);
            let numbers: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
            self.delete_objects(rows.iter().map(|r| r.get(2)).collect())
                .await?;
            let conn = self.pg.get().await?;
            let n = conn
                .execute(
                    "DELETE FROM fragment WHERE stream_id = $1 AND number = ANY($2)",
                    &[&stream_id, &numbers],
                )
                .await
                .map_err(pg_err("delete expired fragments"))?;
            total += n;
        }
    }

    async fn delete_stream(&self, stream_arn: &str) -> Result<()> {
        // The objects are found through the index, not by listing the prefix: a stream
        // re-created under the same name shares `streams/<name>/`. Page by page, objects then
        // their rows (as `expire`), so a retry after a failure finds what is left. Then the
        // stream's row, cascading to its track sets: later persists of this ARN fail with
        // NotFound and delete the object they wrote.
        self.expire(stream_arn, i64::MAX).await?;
        let conn = self.pg.get().await?;
        conn.execute("DELETE FROM frag_stream WHERE arn = $1", &[&stream_arn])
            .await
            .map_err(pg_err("delete a stream's index"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys() {
        let n = FragmentNumber(42);
        let cases = [
            (0, "streams/s/1970/01/01/00/"),
            // 2024-02-29T23:59:59.999Z (leap day)
            (1_709_251_199_999, "streams/s/2024/02/29/23/"),
            // 2026-11-22T04:00:00Z
            (1_795_320_000_000, "streams/s/2026/11/22/04/"),
        ];
        for (ms, want) in cases {
            assert_eq!(object_key("streams/s", ms, n), format!("{want}{n}"), "{ms}");
        }
    }

    #[test]
    fn stream_prefix_is_the_name() {
        let arn = |res: &str| format!("arn:aws:kinesisvideo:us-east-1:123456789012:{res}");
        assert_eq!(
            stream_prefix(&arn("stream/cam.stand-1/1624750290639")).unwrap(),
            "streams/cam.stand-1"
        );
        assert!(stream_prefix(&arn("channel/c/1")).is_err());
    }

    #[test]
    fn number_keys_sort_like_numbers() {
        let ns = [0u128, 1, 255, 256, 1 << 64, u128::MAX];
        for w in ns.windows(2) {
            assert!(number_key(FragmentNumber(w[0])) < number_key(FragmentNumber(w[1])));
        }
        for n in ns {
            assert_eq!(
                number_from(&number_key(FragmentNumber(n))),
                Some(FragmentNumber(n))
            );
        }
    }
}
