//! Crash consistency of `LocalFragmentStore` under SIGKILL.
//!
//! The test re-runs its own binary as a child (`crash_child`, selected by name, acting only when
//! `OPENKVS_CRASH_CHILD_DIR` is set). The child persists fragments from several tasks in a loop
//! and prints each number after `persist` returned; the parent kills it with SIGKILL at a random
//! moment, reopens the store and checks:
//!
//! - every printed fragment is present and byte-identical (PERSISTED means durable);
//! - every visible fragment is intact, and at most one unprinted fragment per task is visible
//!   (the batch in flight at the kill may have committed; nothing else can be);
//! - recovery leaves the files exactly as the index describes them (fsck is clean).
//!
//! SIGKILL keeps the page cache, so this checks the ordering argument (media before index,
//! recovery cuts only unindexed bytes), not the disk's honouring of fsync.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvs_core::FragmentNumber;
use openkvs_store::{
    FragmentStore, FrameEntry, LocalFragmentOptions, LocalFragmentStore, NewFragment, TrackSet,
};
use rand::Rng as _;

const CHILD_ENV: &str = "OPENKVS_CRASH_CHILD_DIR";
const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/crash/1";
const TASKS: u64 = 8;
const ITERATIONS: usize = 6;

fn options() -> LocalFragmentOptions {
    // Small segments: kills also land in batches that roll to a new file.
    LocalFragmentOptions {
        segment_bytes: 1 << 20,
        ..Default::default()
    }
}

fn tracks() -> TrackSet {
    TrackSet {
        timecode_scale_ns: 1_000_000,
        tracks: vec![],
    }
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fragment `n`, derived from `n` alone: 1..=4 frames, 1 to 160 KB of pseudo-random bytes.
fn fragment(n: u64) -> NewFragment {
    let frame_count = 1 + mix(n) % 4;
    let mut frames = Vec::new();
    let mut offset = 0u32;
    for i in 0..frame_count {
        let size = 1 + (mix(n * 8 + i) % 40_000) as u32;
        frames.push(FrameEntry {
            track: 1,
            keyframe: i == 0,
            pts: i as i64 * 33,
            duration: 33,
            offset,
            size,
        });
        offset += size;
    }
    let media: Vec<u8> = (0..u64::from(offset))
        .map(|i| mix(n ^ (i << 20)) as u8)
        .collect();
    NewFragment {
        stream_arn: ARN.into(),
        number: FragmentNumber(u128::from(n)),
        producer_ms: n as i64,
        server_ms: n as i64,
        duration_ms: 100,
        cluster_timecode: n,
        tracks: Arc::new(tracks()),
        frames,
        tags: vec![],
        media: Bytes::from(media),
    }
}

#[test]
#[ignore = "child process of crash_consistency_under_sigkill; does nothing on its own"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = LocalFragmentStore::open_with(dir.as_ref(), options()).unwrap();
        let ts = store.track_set(ARN, &tracks()).await.unwrap();
        let first = store
            .latest(ARN)
            .await
            .unwrap()
            .map_or(1, |m| m.number.0 as u64 + 1);
        let next = Arc::new(AtomicU64::new(first));
        for _ in 0..TASKS {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    store.persist(fragment(n), ts).await.unwrap();
                    println!("persisted {n}"); // stdout is line-buffered: one write per line
                }
            });
        }
        // The parent kills us long before this.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[test]
fn crash_consistency_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut printed = BTreeSet::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(n) = line.strip_prefix("persisted ") {
                    tx.send(n.parse::<u64>().unwrap()).unwrap();
                }
            }
        });
        // Kill at a random moment once the child is storing.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child never persisted anything");
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let this_run: BTreeSet<u64> = std::iter::once(first).chain(rx.try_iter()).collect();
        printed.extend(&this_run);

        let started = Instant::now();
        rt.block_on(async {
            let store = LocalFragmentStore::open_with(dir.path(), options()).unwrap();
            let recovery = store.recovery().clone();
            let all = store.after(ARN, None, usize::MAX).await.unwrap();
            let visible: BTreeSet<u64> = all.iter().map(|m| m.number.0 as u64).collect();
            let missing: Vec<_> = printed.difference(&visible).collect();
            assert!(missing.is_empty(), "iteration {iteration}: printed but not stored: {missing:?}");
            let unprinted: Vec<_> = visible.difference(&printed).copied().collect();
            assert!(
                unprinted.len() as u64 <= TASKS,
                "iteration {iteration}: more unprinted fragments than persists in flight: {unprinted:?}"
            );
            for meta in &all {
                let want = fragment(meta.number.0 as u64);
                assert_eq!(meta.size_bytes, want.media.len() as u64);
                assert_eq!(store.frames(meta).await.unwrap(), want.frames, "iteration {iteration}: {}", meta.number);
                let got = store.read(meta, 0, u64::MAX).await.unwrap();
                assert!(got == want.media, "iteration {iteration}: fragment {} differs", meta.number);
            }
            let fsck = store.fsck(false).await.unwrap();
            assert!(fsck.is_clean(), "iteration {iteration}: {fsck:?}");
            // Later batches must not be disturbed by what recovery cut: printed fragments count.
            printed.extend(unprinted.iter().copied());
            eprintln!(
                "crash iteration {iteration}: {} printed this run, {} unprinted but committed, {} in store; \
                 recovery cut {} bytes ({} truncated, {} removed files); verified in {:?}",
                this_run.len(),
                unprinted.len(),
                visible.len(),
                recovery.orphan_bytes,
                recovery.truncated_files,
                recovery.removed_files,
                started.elapsed()
            );
        });
    }
}
