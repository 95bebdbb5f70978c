//! The cross-node fragment listener (`spawn_fragment_listener`) against real PostgreSQL and
//! S3-compatible (moto) servers: a fragment persisted through one node's store is announced to
//! another node's listener at commit, a failed persist announces nothing, and after a
//! PostgreSQL restart the listener reconnects by itself, says so (`Resync`) and announces again.
#![cfg(feature = "s3")]

#[path = "common/scaleout.rs"]
mod scaleout;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvs_core::FragmentNumber;
use openkvs_store::{
    FragmentEvent, FragmentStore, FrameEntry, ListenOptions, NewFragment, PgOptions, PgPool,
    S3FragmentStore, TrackInfo, TrackSet, spawn_fragment_listener,
};
use tokio::sync::mpsc;

fn arn(name: &str) -> String {
    format!("arn:aws:kinesisvideo:us-east-1:123456789012:stream/{name}/1700000000000")
}

fn tracks() -> TrackSet {
    TrackSet {
        timecode_scale_ns: 1_000_000,
        tracks: vec![TrackInfo {
            number: 1,
            uid: 1,
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Some(b"avcC".to_vec()),
            name: None,
            language: None,
            default_duration_ns: None,
            width: Some(640),
            height: Some(480),
            sampling_frequency: None,
            channels: None,
            bit_depth: None,
        }],
    }
}

fn fragment(stream_arn: &str, number: u128) -> NewFragment {
    let media = vec![number as u8; 300];
    NewFragment {
        stream_arn: stream_arn.to_owned(),
        number: FragmentNumber(number),
        producer_ms: 1000 * number as i64,
        server_ms: 1000 * number as i64,
        duration_ms: 1000,
        cluster_timecode: 0,
        tracks: Arc::new(tracks()),
        frames: vec![FrameEntry {
            track: 1,
            keyframe: true,
            pts: 0,
            duration: 33,
            offset: 0,
            size: 300,
        }],
        tags: vec![],
        media: Bytes::from(media),
    }
}

/// The next event other than `Resync`, or `None` after `within`.
async fn next_stored(
    rx: &mut mpsc::UnboundedReceiver<FragmentEvent>,
    within: Duration,
) -> Option<(String, FragmentNumber)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(FragmentEvent::Stored { stream_arn, number })) => {
                return Some((stream_arn, number));
            }
            Ok(Some(FragmentEvent::Resync)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

async fn next_resync(rx: &mut mpsc::UnboundedReceiver<FragmentEvent>, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(FragmentEvent::Resync)) => return true,
            Ok(Some(FragmentEvent::Stored { .. })) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_are_announced_across_nodes_and_after_a_postgres_restart() {
    let Some(servers) = scaleout::Servers::start() else {
        return;
    };
    let s3 = servers.s3_options(None).await;
    let options = PgOptions {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    // Node A writes; node B (its own pool) listens.
    let pg_a = PgPool::connect(&servers.pg.url(), &options).await.unwrap();
    let pg_b = PgPool::connect(&servers.pg.url(), &options).await.unwrap();
    let store_a = S3FragmentStore::open(pg_a, &s3).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listen = ListenOptions {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        keepalive: Duration::from_secs(2),
    };
    let task = spawn_fragment_listener(&pg_b, listen, move |e| {
        let _ = tx.send(e);
    });
    assert!(
        next_resync(&mut rx, Duration::from_secs(10)).await,
        "the listener did not start listening"
    );

    let a = arn("listen-a");
    let ts = store_a.track_set(&a, &tracks()).await.unwrap();
    let t0 = Instant::now();
    store_a.persist(fragment(&a, 1), ts).await.unwrap();
    let got = next_stored(&mut rx, Duration::from_secs(5)).await;
    let latency = t0.elapsed();
    assert_eq!(got, Some((a.clone(), FragmentNumber(1))));
    #[allow(clippy::print_stderr)] // the measured latency, for `--no-capture` runs
    {
        eprintln!("persist + announcement: {latency:?}");
    }

    // A failed persist (the number is stored already) announces nothing.
    store_a.persist(fragment(&a, 1), ts).await.unwrap_err();
    store_a.persist(fragment(&a, 2), ts).await.unwrap();
    assert_eq!(
        next_stored(&mut rx, Duration::from_secs(5)).await,
        Some((a.clone(), FragmentNumber(2))),
        "the duplicate must not be announced, the next fragment must"
    );

    // PostgreSQL restart: the listener loses its connection, reconnects by itself and says so.
    servers.pg.stop();
    assert!(store_a.persist(fragment(&a, 3), ts).await.is_err());
    servers.pg.start();
    assert!(
        next_resync(&mut rx, Duration::from_secs(20)).await,
        "no Resync after the PostgreSQL restart"
    );
    let mut stored = None;
    for _ in 0..20 {
        match store_a.persist(fragment(&a, 4), ts).await {
            Ok(m) => {
                stored = Some(m);
                break;
            }
            // A pooled connection from before the restart may fail once more.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(stored.is_some(), "no persist after the restart");
    assert_eq!(
        next_stored(&mut rx, Duration::from_secs(5)).await,
        Some((a.clone(), FragmentNumber(4))),
        "announcements after the restart"
    );
    // Nothing was stored for the fragment that failed during the outage.
    assert_eq!(store_a.get(&a, FragmentNumber(3)).await.unwrap(), None);
    task.abort();
}
