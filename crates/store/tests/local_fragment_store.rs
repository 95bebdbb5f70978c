//! `LocalFragmentStore` specifics: file layout, segment rolling, whole-file retention, crash
//! recovery at open, fsck, the data directory lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kvs_core::FragmentNumber;
use openkvs_store::{
    Error, FragmentProblem, FragmentStore, FrameEntry, LocalFragmentOptions, LocalFragmentStore,
    NewFragment, TrackSet,
};

const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam-1/1700000000000";
const DIR: &str = "cam-1.1700000000000";

fn options() -> LocalFragmentOptions {
    LocalFragmentOptions {
        segment_bytes: 10_000,
        ..Default::default()
    }
}

fn tracks() -> TrackSet {
    TrackSet {
        timecode_scale_ns: 1_000_000,
        tracks: vec![],
    }
}

/// Fragment `n`: two frames, `size` bytes of `n as u8`, server time `n * 1000`.
fn fragment(n: u128, size: u32) -> NewFragment {
    let half = size / 2;
    NewFragment {
        stream_arn: ARN.into(),
        number: FragmentNumber(n),
        producer_ms: n as i64 * 1000,
        server_ms: n as i64 * 1000,
        duration_ms: 1000,
        cluster_timecode: n as u64,
        tracks: Arc::new(tracks()),
        frames: vec![
            FrameEntry {
                track: 1,
                keyframe: true,
                pts: 0,
                duration: 0,
                offset: 0,
                size: half,
            },
            FrameEntry {
                track: 1,
                keyframe: false,
                pts: 33,
                duration: 0,
                offset: half,
                size: size - half,
            },
        ],
        tags: vec![],
        media: Bytes::from(vec![n as u8; size as usize]),
    }
}

/// Segment files of the test stream: name -> length.
fn segments(data: &Path) -> BTreeMap<String, u64> {
    let dir = data.join("media").join(DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

fn seg_path(data: &Path, file_id: u64) -> PathBuf {
    data.join("media")
        .join(DIR)
        .join(format!("{file_id:016x}.seg"))
}

async fn assert_fragment(store: &LocalFragmentStore, n: u128, size: u32) {
    let meta = store
        .get(ARN, FragmentNumber(n))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{n} missing"));
    assert_eq!(
        store.read(&meta, 0, u64::MAX).await.unwrap(),
        fragment(n, size).media,
        "{n}"
    );
}

/// 4 KB fragments in 10 KB segments: two per file.
async fn fill(store: &LocalFragmentStore, numbers: std::ops::RangeInclusive<u128>) -> i64 {
    let ts = store.track_set(ARN, &tracks()).await.unwrap();
    for n in numbers {
        store.persist(fragment(n, 4000), ts).await.unwrap();
    }
    ts
}

#[tokio::test]
async fn layout_rolling_and_whole_file_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = LocalFragmentStore::open_with(data, options()).unwrap();
    assert!(data.join("fragments.db").is_file());
    fill(&store, 1..=7).await;
    let want: BTreeMap<String, u64> = [
        ("0000000000000001.seg".to_owned(), 8000),
        ("0000000000000002.seg".to_owned(), 8000),
        ("0000000000000003.seg".to_owned(), 8000),
        ("0000000000000004.seg".to_owned(), 4000),
    ]
    .into();
    assert_eq!(segments(data), want);
    // Fragments 1..=3 expire; file 1 (fragments 1, 2) goes, file 2 (3 expired, 4 not) stays.
    assert_eq!(store.expire(ARN, 4000).await.unwrap(), 3);
    assert_eq!(
        segments(data).keys().cloned().collect::<Vec<_>>(),
        [
            "0000000000000002.seg",
            "0000000000000003.seg",
            "0000000000000004.seg"
        ]
    );
    assert_fragment(&store, 4, 4000).await;
    // Everything expires: the current file stays (the next append goes there), the rest go.
    assert_eq!(store.expire(ARN, i64::MAX).await.unwrap(), 4);
    assert_eq!(
        segments(data).keys().cloned().collect::<Vec<_>>(),
        ["0000000000000004.seg"]
    );
    let ts = store.track_set(ARN, &tracks()).await.unwrap();
    store.persist(fragment(8, 4000), ts).await.unwrap();
    assert_eq!(segments(data)["0000000000000004.seg"], 8000);
    assert!(store.fsck(false).await.unwrap().is_clean());
    // A fragment larger than a segment gets a file of its own.
    store.persist(fragment(9, 25_000), ts).await.unwrap();
    store.persist(fragment(10, 100), ts).await.unwrap();
    assert_eq!(segments(data)["0000000000000005.seg"], 25_000);
    assert_eq!(segments(data)["0000000000000006.seg"], 100);
    assert_fragment(&store, 9, 25_000).await;

    store.delete_stream(ARN).await.unwrap();
    assert!(!data.join("media").join(DIR).exists());
    assert_eq!(
        std::fs::read_dir(data.join("media/.trash"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.fsck(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn recovery_cuts_unindexed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = LocalFragmentStore::open_with(data, options()).unwrap();
    fill(&store, 1..=5).await; // files 1, 2: 8000 bytes; file 3: 4000
    drop(store);
    // What a crash between "media written" and "index committed" leaves: a tail on the current
    // file, and a whole file after it (the batch rolled).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(seg_path(data, 3))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xee; 1234]).unwrap();
    std::fs::write(seg_path(data, 4), [0xee; 999]).unwrap();

    let store = LocalFragmentStore::open_with(data, options()).unwrap();
    let r = store.recovery();
    assert_eq!(
        (
            r.streams,
            r.truncated_files,
            r.removed_files,
            r.orphan_bytes,
            r.damaged_files
        ),
        (1, 1, 1, 2233, 0)
    );
    assert_eq!(segments(data).get("0000000000000003.seg"), Some(&4000));
    assert!(!seg_path(data, 4).exists());
    assert!(store.fsck(false).await.unwrap().is_clean());
    for n in 1..=5 {
        assert_fragment(&store, n, 4000).await;
    }
    // Appending continues right after the last indexed byte; file ids are not reused.
    let ts = store.track_set(ARN, &tracks()).await.unwrap();
    store.persist(fragment(6, 4000), ts).await.unwrap();
    store.persist(fragment(7, 4000), ts).await.unwrap();
    assert_eq!(segments(data).get("0000000000000003.seg"), Some(&8000));
    assert_eq!(segments(data).get("0000000000000005.seg"), Some(&4000));
    assert_fragment(&store, 7, 4000).await;
    drop(store);
    let store = LocalFragmentStore::open_with(data, options()).unwrap();
    assert_eq!(store.recovery().orphan_bytes, 0);
}

#[tokio::test]
async fn fsck_reports_and_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = LocalFragmentStore::open_with(data, options()).unwrap();
    fill(&store, 1..=8).await; // files 1..=4, two fragments each
    let clean = store.fsck(false).await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(
        (clean.streams, clean.fragments, clean.segment_files),
        (1, 8, 4)
    );

    std::fs::remove_file(seg_path(data, 1)).unwrap(); // fragments 1, 2: missing file
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(seg_path(data, 2))
        .unwrap();
    f.set_len(5000).unwrap(); // fragment 4 ends past the end
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(seg_path(data, 3))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0; 77]).unwrap(); // orphan tail
    std::fs::write(seg_path(data, 0x99), b"x").unwrap(); // orphan file
    std::fs::write(data.join("media").join(DIR).join("notes.txt"), b"x").unwrap(); // not ours
    std::fs::create_dir(data.join("media/gone.123")).unwrap(); // orphan stream dir

    let report = store.fsck(false).await.unwrap();
    assert!(!report.is_clean());
    assert!(!report.repaired);
    assert_eq!(report.missing_files, [seg_path(data, 1)]);
    let bad: Vec<_> = report
        .bad_fragments
        .iter()
        .map(|b| (b.number.0, b.problem.clone()))
        .collect();
    assert_eq!(
        bad,
        [
            (
                1,
                FragmentProblem::MissingFile {
                    path: seg_path(data, 1)
                }
            ),
            (
                2,
                FragmentProblem::MissingFile {
                    path: seg_path(data, 1)
                }
            ),
            (
                4,
                FragmentProblem::PastEnd {
                    path: seg_path(data, 2),
                    file_len: 5000,
                    end: 8000
                }
            ),
        ]
    );
    assert_eq!(report.orphan_tails.len(), 1);
    assert_eq!(
        (
            report.orphan_tails[0].file_len,
            report.orphan_tails[0].indexed_end
        ),
        (8077, 8000)
    );
    assert_eq!(report.orphan_files, [seg_path(data, 0x99)]);
    assert_eq!(report.orphan_dirs, [data.join("media/gone.123")]);
    assert_eq!(
        report.unknown_entries,
        [data.join("media").join(DIR).join("notes.txt")]
    );
    // Reading a damaged fragment is a typed error, not a panic.
    let meta4 = store.get(ARN, FragmentNumber(4)).await.unwrap().unwrap();
    assert!(matches!(
        store.read(&meta4, 0, u64::MAX).await.unwrap_err(),
        Error::MediaMissing {
            file_len: 5000,
            needed_end: 8000,
            ..
        }
    ));

    let repaired = store.fsck(true).await.unwrap();
    assert!(repaired.repaired);
    assert_eq!(repaired.bad_fragments, report.bad_fragments);
    // One pass repairs everything: file 2 is cut after fragment 3 (fragment 4's partial bytes).
    let after = store.fsck(false).await.unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.fragments, 5);
    assert_eq!(segments(data).get("0000000000000002.seg"), Some(&4000));
    assert_eq!(after.unknown_entries.len(), 1);
    for n in [3, 5, 6, 7, 8] {
        assert_fragment(&store, n, 4000).await;
    }
    // The store still appends.
    let ts = store.track_set(ARN, &tracks()).await.unwrap();
    store.persist(fragment(9, 4000), ts).await.unwrap();
    assert_fragment(&store, 9, 4000).await;
    assert!(store.fsck(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn data_dir_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFragmentStore::open(dir.path()).unwrap();
    let err = LocalFragmentStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::DataDirInUse { .. }), "{err:?}");
    drop(store);
    LocalFragmentStore::open(dir.path()).unwrap();
}
