//! Behaviour every `FragmentStore` implementation must show. Generic over
//! `Arc<dyn FragmentStore>` so the PostgreSQL + S3 backend can run the same suite.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kvs_core::{ErrorKind, FragmentNumber};
use openkvs_store::{
    Error, FragmentMeta, FragmentStore, FrameEntry, LocalFragmentOptions, LocalFragmentStore,
    NewFragment, RangeQuery, TimestampKind, TrackInfo, TrackSet,
};

fn arn(name: &str) -> String {
    format!("arn:aws:kinesisvideo:us-east-1:123456789012:stream/{name}/1700000000000")
}

fn tracks(codec_private: &[u8]) -> TrackSet {
    TrackSet {
        timecode_scale_ns: 1_000_000,
        tracks: vec![
            TrackInfo {
                number: 1,
                uid: 0xdead_beef,
                track_type: 1,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                codec_private: Some(codec_private.to_vec()),
                name: Some("video".into()),
                language: None,
                default_duration_ns: None,
                width: Some(1280),
                height: Some(720),
                sampling_frequency: None,
                channels: None,
                bit_depth: None,
            },
            TrackInfo {
                number: 2,
                uid: 7,
                track_type: 2,
                codec_id: "A_AAC".into(),
                codec_private: Some(vec![0x12, 0x10]),
                name: None,
                language: Some("eng".into()),
                default_duration_ns: Some(21_333_333),
                width: None,
                height: None,
                sampling_frequency: Some(44_100.000_000_1),
                channels: Some(2),
                bit_depth: Some(16),
            },
        ],
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so any reader can recompute a fragment.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A fragment whose frames and bytes derive from `number`; `server_ms` and `producer_ms` given.
fn fragment(stream_arn: &str, number: u128, server_ms: i64, producer_ms: i64) -> NewFragment {
    let seed = number as u64;
    let sizes = pseudo_random(seed ^ 0x5555, 6);
    let mut frames = Vec::new();
    let mut offset = 0u32;
    for (i, s) in sizes.iter().enumerate() {
        let size = u32::from(*s) * 37 + 1;
        let i = i as i64;
        frames.push(FrameEntry {
            track: if i % 3 == 2 { 2 } else { 1 },
            keyframe: i == 0,
            pts: i * 33 - (i % 2) * 40,
            duration: 33,
            offset,
            size,
        });
        offset += size;
    }
    NewFragment {
        stream_arn: stream_arn.to_owned(),
        number: FragmentNumber(number),
        producer_ms,
        server_ms,
        duration_ms: 2000,
        cluster_timecode: u64::MAX - seed, // above i64::MAX on purpose
        tracks: Arc::new(tracks(b"avcC")),
        frames,
        tags: if number.is_multiple_of(2) {
            vec![("K".into(), format!("v{number}"))]
        } else {
            vec![]
        },
        media: Bytes::from(pseudo_random(seed, offset as usize)),
    }
}

fn expected_meta(f: &NewFragment, track_set_id: i64) -> FragmentMeta {
    FragmentMeta {
        stream_arn: f.stream_arn.clone(),
        number: f.number,
        producer_ms: f.producer_ms,
        server_ms: f.server_ms,
        duration_ms: f.duration_ms,
        size_bytes: f.media.len() as u64,
        cluster_timecode: f.cluster_timecode,
        frame_count: f.frames.len() as u32,
        track_set_id,
        tags: f.tags.clone(),
    }
}

fn numbers(metas: &[FragmentMeta]) -> Vec<u128> {
    metas.iter().map(|m| m.number.0).collect()
}

fn q(
    kind: TimestampKind,
    start_ms: i64,
    end_ms: i64,
    after: Option<u128>,
    limit: usize,
) -> RangeQuery {
    RangeQuery {
        kind,
        start_ms,
        end_ms,
        after: after.map(FragmentNumber),
        limit,
    }
}

/// Asserts a stored fragment reads back exactly as generated.
async fn assert_intact(store: &dyn FragmentStore, stream_arn: &str, number: u128) {
    let meta = store
        .get(stream_arn, FragmentNumber(number))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{number} missing"));
    let want = fragment(stream_arn, number, meta.server_ms, meta.producer_ms);
    assert_eq!(store.frames(&meta).await.unwrap(), want.frames, "{number}");
    assert_eq!(
        store.read(&meta, 0, u64::MAX).await.unwrap(),
        want.media,
        "{number}"
    );
}

/// The suite. Leaves the store holding streams `conf-a` (fragments 11..=19 after expiry of 10)
/// and `conf-c` (120 fragments), for [`reopen_check`].
pub async fn conformance(store: Arc<dyn FragmentStore>) {
    let a = arn("conf-a");
    let b = arn("conf-b");

    // ---- track sets: de-duplicated per stream, loadable ----
    let ts = store.track_set(&a, &tracks(b"avcC")).await.unwrap();
    assert_eq!(store.track_set(&a, &tracks(b"avcC")).await.unwrap(), ts);
    let ts2 = store.track_set(&a, &tracks(b"other")).await.unwrap();
    assert_ne!(ts2, ts);
    let ts_b = store.track_set(&b, &tracks(b"avcC")).await.unwrap();
    assert_ne!(ts_b, ts, "track sets are per stream");
    assert_eq!(*store.load_track_set(ts).await.unwrap(), tracks(b"avcC"));
    assert_eq!(*store.load_track_set(ts2).await.unwrap(), tracks(b"other"));
    assert_eq!(
        store.load_track_set(i64::MAX).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let err = store
        .track_set("arn:aws:kinesisvideo:us-east-1:1:channel/x/1", &tracks(b""))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidStreamArn { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    // ---- persist / get: fragments at server 1000, 3000, ..., 19000; producer = server - 500 ----
    let mut metas = Vec::new();
    for i in 0..10u128 {
        let server_ms = 1000 + 2000 * i as i64;
        let f = fragment(&a, 10 + i, server_ms, server_ms - 500);
        let want = expected_meta(&f, ts);
        let got = store.persist(f, ts).await.unwrap();
        assert_eq!(got, want);
        assert_eq!(
            store.get(&a, got.number).await.unwrap().as_ref(),
            Some(&got)
        );
        metas.push(got);
    }
    assert_eq!(store.get(&a, FragmentNumber(9)).await.unwrap(), None);
    assert_eq!(
        store.get(&b, FragmentNumber(10)).await.unwrap(),
        None,
        "numbers are per stream"
    );

    // ---- range: inclusive bounds on the start timestamp, both kinds ----
    use TimestampKind::{Producer, Server};
    let cases: &[(RangeQuery, &[u128])] = &[
        (q(Server, 3000, 7000, None, 100), &[11, 12, 13]),
        (q(Server, 2999, 7001, None, 100), &[11, 12, 13]),
        (q(Server, 3001, 6999, None, 100), &[12]),
        (q(Server, 3000, 3000, None, 100), &[11]),
        (q(Server, 0, 999, None, 100), &[]),
        (q(Server, 7000, 3000, None, 100), &[]),
        (
            q(Server, i64::MIN, i64::MAX, None, 100),
            &[10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
        ),
        (q(Producer, 2500, 6500, None, 100), &[11, 12, 13]),
        (q(Producer, 3000, 7000, None, 100), &[12, 13]),
        // model doc example: fragments starting at 0,2,4,6 s, range 1..4 s -> 2 and 4
        (
            q(Producer, 1000 - 500 + 1000, 1000 - 500 + 4000, None, 100),
            &[11, 12],
        ),
        // pagination
        (q(Server, 0, 100_000, None, 3), &[10, 11, 12]),
        (q(Server, 0, 100_000, Some(12), 3), &[13, 14, 15]),
        (q(Server, 0, 100_000, Some(18), 3), &[19]),
        (q(Server, 0, 100_000, Some(19), 3), &[]),
        (q(Server, 3000, 9000, Some(11), 2), &[12, 13]),
        (q(Server, 0, 100_000, None, 0), &[]),
    ];
    for (query, want) in cases {
        let got = store.range(&a, query).await.unwrap();
        assert_eq!(numbers(&got), *want, "{query:?}");
    }
    assert_eq!(
        store
            .range(&a, &q(Server, 3000, 3000, None, 10))
            .await
            .unwrap(),
        vec![metas[1].clone()]
    );
    assert!(
        store
            .range(&arn("nope"), &q(Server, 0, i64::MAX, None, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // ---- after / latest / by_producer_ms ----
    assert_eq!(
        numbers(&store.after(&a, None, 3).await.unwrap()),
        [10, 11, 12]
    );
    assert_eq!(
        numbers(&store.after(&a, Some(FragmentNumber(17)), 10).await.unwrap()),
        [18, 19]
    );
    assert_eq!(
        numbers(&store.after(&a, Some(FragmentNumber(5)), 1).await.unwrap()),
        [10]
    );
    assert!(
        store
            .after(&a, Some(FragmentNumber(19)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.after(&a, None, 0).await.unwrap().is_empty());
    assert_eq!(store.latest(&a).await.unwrap().as_ref(), metas.last());
    assert_eq!(store.latest(&b).await.unwrap(), None);
    assert_eq!(store.latest(&arn("nope")).await.unwrap(), None);
    assert_eq!(
        store.by_producer_ms(&a, 4500).await.unwrap().as_ref(),
        Some(&metas[2])
    );
    assert_eq!(store.by_producer_ms(&a, 4501).await.unwrap(), None);

    // ---- frames and media ----
    for m in &metas {
        assert_intact(store.as_ref(), &a, m.number.0).await;
    }
    let m = &metas[3];
    let whole = store.read(m, 0, m.size_bytes).await.unwrap();
    let cases: &[(u64, u64, std::ops::Range<u64>)] = &[
        (0, 10, 0..10),
        (5, 7, 5..12),
        (m.size_bytes - 3, 100, m.size_bytes - 3..m.size_bytes),
        (0, u64::MAX, 0..m.size_bytes),
        (m.size_bytes, 10, m.size_bytes..m.size_bytes),
        (3, 0, 3..3),
    ];
    for (offset, len, want) in cases {
        let got = store.read(m, *offset, *len).await.unwrap();
        assert_eq!(
            got,
            whole.slice(want.start as usize..want.end as usize),
            "read({offset}, {len})"
        );
    }
    let err = store.read(m, m.size_bytes + 1, 1).await.unwrap_err();
    assert!(matches!(err, Error::ReadOutOfRange { .. }), "{err:?}");
    let frames = store.frames(m).await.unwrap();
    let f = frames[2];
    assert_eq!(
        store
            .read(m, u64::from(f.offset), u64::from(f.size))
            .await
            .unwrap()
            .len(),
        f.size as usize
    );
    let ghost = FragmentMeta {
        number: FragmentNumber(999),
        ..m.clone()
    };
    assert_eq!(
        store.read(&ghost, 0, 1).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.frames(&ghost).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // ---- persist refusals fail only that fragment ----
    let err = store.persist(fragment(&a, 12, 1, 1), ts).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateFragment { .. }), "{err:?}");
    let err = store
        .persist(fragment(&a, 100, 1, 1), ts_b)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "track set of another stream: {err:?}"
    );
    let err = store
        .persist(fragment(&arn("never-seen"), 100, 1, 1), ts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    let mut bad = fragment(&a, 100, 1, 1);
    bad.frames[1].offset += 1;
    assert!(matches!(
        store.persist(bad, ts).await.unwrap_err(),
        Error::InvalidFragment { .. }
    ));
    let mut bad = fragment(&a, 100, 1, 1);
    bad.media = bad.media.slice(1..);
    assert!(matches!(
        store.persist(bad, ts).await.unwrap_err(),
        Error::InvalidFragment { .. }
    ));
    assert_eq!(store.get(&a, FragmentNumber(100)).await.unwrap(), None);
    // An empty fragment is storable (size 0, no frames).
    let mut empty = fragment(&b, 1, 5, 5);
    empty.frames.clear();
    empty.media = Bytes::new();
    let em = store.persist(empty, ts_b).await.unwrap();
    assert_eq!(em.size_bytes, 0);
    assert!(store.frames(&em).await.unwrap().is_empty());
    assert!(store.read(&em, 0, 10).await.unwrap().is_empty());

    // ---- concurrent persists: many tasks, numbers strictly increasing per stream as given ----
    let c = arn("conf-c");
    let ts_c = store.track_set(&c, &tracks(b"c")).await.unwrap();
    let next = Arc::new(AtomicU64::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (store, c, next) = (store.clone(), c.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..5 {
                let n = u128::from(next.fetch_add(1, Ordering::SeqCst));
                let m = store
                    .persist(fragment(&c, n, n as i64, n as i64), ts_c)
                    .await
                    .unwrap();
                assert_eq!(m.number.0, n);
                mine.push(n);
            }
            mine
        }));
    }
    let mut given = BTreeSet::new();
    for t in tasks {
        given.extend(t.await.unwrap());
    }
    let stored = numbers(&store.after(&c, None, 1000).await.unwrap());
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {stored:?}"
    );
    assert_eq!(stored, given.iter().copied().collect::<Vec<_>>());
    for &n in stored.iter().step_by(7) {
        assert_intact(store.as_ref(), &c, n).await;
    }

    // Stored out of number order: ranges over c are still by number.
    let got = store
        .range(&c, &q(TimestampKind::Server, 1010, 1020, None, 5))
        .await
        .unwrap();
    assert_eq!(numbers(&got), [1010, 1011, 1012, 1013, 1014]);

    // ---- range order never depends on timestamps following numbers ----
    // d: server time runs backwards, producer time is shuffled.
    let d = arn("conf-d");
    let ts_d = store.track_set(&d, &tracks(b"d")).await.unwrap();
    let producer_s = [5, 3, 8, 1, 7, 2, 6, 4];
    for n in 1..=8u128 {
        let server_ms = 9000 - 1000 * n as i64;
        store
            .persist(
                fragment(&d, n, server_ms, producer_s[n as usize - 1] * 1000),
                ts_d,
            )
            .await
            .unwrap();
    }
    let cases: &[(RangeQuery, &[u128])] = &[
        (q(Server, 0, i64::MAX, None, 3), &[1, 2, 3]),
        (q(Server, 0, i64::MAX, Some(3), 3), &[4, 5, 6]),
        (q(Server, 2000, 5000, None, 10), &[4, 5, 6, 7]),
        (q(Server, 2000, 5000, None, 2), &[4, 5]),
        (q(Server, 2000, 5000, Some(5), 2), &[6, 7]),
        (q(Producer, 2000, 6000, None, 10), &[1, 2, 6, 7, 8]),
        (q(Producer, 2000, 6000, None, 3), &[1, 2, 6]),
        (q(Producer, 2000, 6000, Some(6), 3), &[7, 8]),
    ];
    for (query, want) in cases {
        assert_eq!(
            numbers(&store.range(&d, query).await.unwrap()),
            *want,
            "{query:?}"
        );
    }
    // e: in order at first, then one fragment arrives with an earlier server time.
    let e = arn("conf-e");
    let ts_e = store.track_set(&e, &tracks(b"e")).await.unwrap();
    for n in 1..=5u128 {
        store
            .persist(fragment(&e, n, 1000 * n as i64, 1000 * n as i64), ts_e)
            .await
            .unwrap();
    }
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Server, 0, i64::MAX, Some(2), 2))
                .await
                .unwrap()
        ),
        [3, 4]
    );
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Server, 2000, 3000, None, 10))
                .await
                .unwrap()
        ),
        [2, 3]
    );
    store
        .persist(fragment(&e, 6, 2500, 6000), ts_e)
        .await
        .unwrap();
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Server, 2000, 3000, None, 10))
                .await
                .unwrap()
        ),
        [2, 3, 6]
    );
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Server, 2000, 3000, None, 2))
                .await
                .unwrap()
        ),
        [2, 3]
    );
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Server, 2000, 3000, Some(3), 2))
                .await
                .unwrap()
        ),
        [6]
    );
    assert_eq!(
        numbers(
            &store
                .range(&e, &q(Producer, 2000, 6000, Some(3), 10))
                .await
                .unwrap()
        ),
        [4, 5, 6]
    );
    store.delete_stream(&d).await.unwrap();
    store.delete_stream(&e).await.unwrap();

    // ---- expire: by server timestamp, strictly older ----
    assert_eq!(store.expire(&a, 1000).await.unwrap(), 0);
    assert_eq!(store.expire(&a, 1001).await.unwrap(), 1);
    assert_eq!(
        numbers(&store.after(&a, None, 100).await.unwrap()),
        (11..=19).collect::<Vec<_>>()
    );
    assert_eq!(
        store.read(&metas[0], 0, 1).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.expire(&arn("nope"), i64::MAX).await.unwrap(), 0);
    assert_intact(store.as_ref(), &a, 11).await;

    // ---- delete_stream: everything of b goes, a and c stay ----
    store.delete_stream(&b).await.unwrap();
    assert_eq!(store.latest(&b).await.unwrap(), None);
    assert_eq!(store.get(&b, FragmentNumber(1)).await.unwrap(), None);
    assert_eq!(
        store.load_track_set(ts_b).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store.delete_stream(&b).await.unwrap(); // idempotent
    store.delete_stream(&arn("nope")).await.unwrap();
    assert_eq!(store.latest(&a).await.unwrap().unwrap().number.0, 19);
    // The ARN can store again, from scratch.
    let ts_b2 = store.track_set(&b, &tracks(b"avcC")).await.unwrap();
    store.persist(fragment(&b, 1, 5, 5), ts_b2).await.unwrap();
    assert_intact(store.as_ref(), &b, 1).await;
    store.delete_stream(&b).await.unwrap();
}

/// After [`conformance`] and a reopen: everything is still there, and storing continues.
pub async fn reopen_check(store: Arc<dyn FragmentStore>) {
    let a = arn("conf-a");
    let c = arn("conf-c");
    assert_eq!(
        numbers(&store.after(&a, None, 100).await.unwrap()),
        (11..=19).collect::<Vec<_>>()
    );
    for n in 11..=19 {
        assert_intact(store.as_ref(), &a, n).await;
    }
    assert_eq!(store.after(&c, None, 1000).await.unwrap().len(), 120);
    assert_intact(store.as_ref(), &c, 1119).await;
    let ts = store.track_set(&a, &tracks(b"avcC")).await.unwrap();
    assert_eq!(*store.load_track_set(ts).await.unwrap(), tracks(b"avcC"));
    store
        .persist(fragment(&a, 20, 21_000, 20_500), ts)
        .await
        .unwrap();
    assert_intact(store.as_ref(), &a, 20).await;
    assert_eq!(
        numbers(
            &store
                .range(&a, &q(TimestampKind::Server, 19_000, 21_000, None, 10))
                .await
                .unwrap()
        ),
        [19, 20]
    );
}

fn small_segments() -> LocalFragmentOptions {
    // A few fragments per file, so rolling and whole-file retention are exercised.
    LocalFragmentOptions {
        segment_bytes: 20_000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_conformance_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFragmentStore::open_with(dir.path(), small_segments()).unwrap();
    conformance(Arc::new(store.clone())).await;
    assert!(store.fsck(false).await.unwrap().is_clean());
    drop(store);
    let store = LocalFragmentStore::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(
        store.recovery().orphan_bytes,
        0,
        "clean shutdown: {:?}",
        store.recovery()
    );
    reopen_check(Arc::new(store.clone())).await;
    let report = store.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn local_default_options() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(LocalFragmentStore::open(dir.path()).unwrap())).await;
}

#[cfg(feature = "s3")]
#[path = "common/scaleout.rs"]
mod scaleout;

/// The same suite on the scale-out backend: S3 (moto) media + PostgreSQL index, both real
/// servers started by the test; "reopen" is a fresh pool and client on the same servers.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_postgres_conformance_and_reopen() {
    use openkvs_store::{PgOptions, PgPool, S3FragmentStore};
    let Some(servers) = scaleout::Servers::start() else {
        return;
    };
    let s3 = servers.s3_options(None).await;
    let pg = PgPool::connect(&servers.pg.url(), &PgOptions::default())
        .await
        .unwrap();
    let store = S3FragmentStore::open(pg, &s3).await.unwrap();
    conformance(Arc::new(store.clone())).await;
    drop(store);
    // A second node (or a restarted one): new pool, migrations already applied.
    let pg = PgPool::connect(&servers.pg.url(), &PgOptions::default())
        .await
        .unwrap();
    let store = S3FragmentStore::open(pg, &s3).await.unwrap();
    reopen_check(Arc::new(store.clone())).await;

    // Objects live under the documented key layout, one per fragment; expire and delete
    // remove them.
    let keys = |prefix: &'static str| {
        let client = s3.client();
        let bucket = servers.s3.bucket.clone();
        async move {
            let out = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            out.contents()
                .iter()
                .map(|o| o.key().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let a_keys = keys("streams/conf-a/").await;
    // conf-a holds 11..=20 after reopen_check: server times 3 s .. 21 s after the epoch.
    assert_eq!(a_keys.len(), 10, "{a_keys:?}");
    assert!(
        a_keys.contains(&format!(
            "streams/conf-a/1970/01/01/00/{}",
            FragmentNumber(11)
        )),
        "{a_keys:?}"
    );
    let a = arn("conf-a");
    assert_eq!(store.expire(&a, 6_000).await.unwrap(), 2);
    assert_eq!(keys("streams/conf-a/").await.len(), 8);
    store.delete_stream(&a).await.unwrap();
    assert!(keys("streams/conf-a/").await.is_empty());
    assert_eq!(keys("streams/conf-c/").await.len(), 120);
}

/// Faults: a PostgreSQL restart fails persists cleanly (Unavailable, i.e. ERROR 5001 acks) and
/// the store recovers by itself; with S3 down a persist fails and nothing is indexed.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_postgres_faults() {
    use openkvs_store::{PgOptions, PgPool, S3FragmentStore};
    let Some(servers) = scaleout::Servers::start() else {
        return;
    };
    let s3 = servers
        .s3_options(Some(std::time::Duration::from_secs(2)))
        .await;
    let options = PgOptions {
        timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let pg = PgPool::connect(&servers.pg.url(), &options).await.unwrap();
    let store = S3FragmentStore::open(pg, &s3).await.unwrap();
    let a = arn("fault-a");
    let ts = store.track_set(&a, &tracks(b"avcC")).await.unwrap();
    store
        .persist(fragment(&a, 1, 1000, 1000), ts)
        .await
        .unwrap();

    // PostgreSQL down: a clear, retryable error; nothing half-stored.
    servers.pg.stop();
    let err = store
        .persist(fragment(&a, 2, 3000, 3000), ts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Persist { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert_eq!(
        store.get(&a, FragmentNumber(1)).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    // Back up: the same pool recovers without a restart of openkvs.
    servers.pg.start();
    let mut recovered = None;
    for _ in 0..20 {
        match store.persist(fragment(&a, 2, 3000, 3000), ts).await {
            Ok(m) => {
                recovered = Some(m);
                break;
            }
            // A pooled connection from before the restart may fail once more.
            Err(e) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}"),
        }
    }
    assert!(recovered.is_some(), "no recovery after PostgreSQL restart");
    assert_intact(&store, &a, 1).await;
    assert_intact(&store, &a, 2).await;

    // S3 down: persist fails (never a silent loss), the index stays without the fragment.
    let scaleout::Servers {
        pg: _pg,
        s3: s3_server,
    } = servers;
    drop(s3_server);
    let err = store
        .persist(fragment(&a, 3, 5000, 5000), ts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Persist { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert_eq!(store.get(&a, FragmentNumber(3)).await.unwrap(), None);
    assert_eq!(store.latest(&a).await.unwrap().unwrap().number.0, 2);
}
