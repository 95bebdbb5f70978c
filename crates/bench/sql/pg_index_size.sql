-- Size of the S3 store's PostgreSQL fragment index at 1,000,000 fragments (BENCHMARKS.md,
-- "Scale-out ingest"): 1,000 streams x 1,000 fragments of 2 s, inserted interleaved across
-- streams as concurrent cameras do, with key and frame-table widths like the real rows
-- (object_key of a 47-digit fragment number; a 50-frame table of about 340 bytes).
--
-- Run against an EMPTY database on which openkvs has applied its migrations (start
-- `openkvs serve --store s3 --catalog postgres ...` on it once), e.g.
--   psql -X -h 127.0.0.1 -U postgres -d scratch -f crates/bench/sql/pg_index_size.sql
-- It takes about a minute; drop the database afterwards.

INSERT INTO frag_stream (arn, key_prefix)
SELECT 'arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam-' || i || '/1795320000000',
       'streams/cam-' || i || '.1795320000000'
FROM generate_series(0, 999) i;

INSERT INTO track_set (stream_id, json)
SELECT id, '{"tracks":[{"number":1,"codec_id":"V_MPEG4/ISO/AVC","codec_private":"' || repeat('ab', 20) || '"}]}'
FROM frag_stream;

-- j outer, stream inner: each 2 s step appends one fragment to every stream.
INSERT INTO fragment (stream_id, number, producer_ms, server_ms, duration_ms, size_bytes,
                      cluster_timecode, frame_count, track_set_id, tags_json, object_key)
SELECT s.id,
       decode(lpad(to_hex(1795320000000000 + j * 2000000 + s.id), 32, '0'), 'hex'),
       1795320000000 + j * 2000, 1795320000000 + j * 2000 + 5, 2000, 1000000,
       1795320000000 + j * 2000, 50, s.id, NULL,
       s.key_prefix || '/2026/11/22/06/9' || lpad((1795320000000000 + j * 2000000 + s.id)::text, 46, '0')
FROM generate_series(0, 999) j, frag_stream s;

INSERT INTO fragment_frames (stream_id, number, frames)
SELECT stream_id, number,
       decode(repeat(md5(number::text), 20), 'hex') || '\x0102030405060708090a0b0c0d0e0f10111213'::bytea
FROM fragment;

VACUUM ANALYZE;

SELECT count(*) AS fragments,
       pg_total_relation_size('fragment') / count(*) AS fragment_bytes_per_row,
       pg_relation_size('fragment') / count(*) AS fragment_heap_bytes_per_row,
       pg_indexes_size('fragment') / count(*) AS fragment_index_bytes_per_row,
       pg_total_relation_size('fragment_frames') / count(*) AS frames_bytes_per_row,
       (SELECT avg(pg_column_size(f.*))::int FROM fragment f) AS fragment_tuple_bytes,
       (SELECT avg(pg_column_size(g.*))::int FROM fragment_frames g) AS frames_tuple_bytes
FROM fragment;
