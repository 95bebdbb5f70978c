//! Replays: after an ERROR (or a dropped connection) kvssink opens a new PutMedia and re-sends
//! every fragment it has no PERSISTED for (kvssink-behaviour.md §6). Stored fragments must
//! not be stored twice; the replay is acknowledged with the stored number.

use kvs_core::FragmentNumber;
use openkvs_ingest::Session;

use super::*;

fn kvssink_body(gops: std::ops::Range<u64>) -> Vec<u8> {
    let mut b = Body::new();
    b.doc(&[video(1), audio(2)]);
    for i in gops {
        b.cluster(T0 + 1000 * i, &gop_av());
    }
    b.eof();
    b.take()
}

#[test]
fn replay_across_sessions() {
    let now1 = T0 as i64 + 5000;
    let (out1, _) = run_once(cfg(), &kvssink_body(0..4), now1);
    let stored: Vec<(i64, FragmentNumber)> = fragments(&out1)
        .iter()
        .map(|f| (f.producer_ms, f.number))
        .collect();
    assert_eq!(stored.len(), 4);
    let last = stored[3].1;

    // The producer re-sends GOPs 2 and 3 (say their PERSISTED never arrived), then goes on.
    // This server's clock is a second behind the first one's.
    let mut c = cfg();
    c.last_number = Some(last);
    c.recent = stored.clone();
    let now2 = T0 as i64 + 4000;
    let (out2, st) = run_once(c, &kvssink_body(2..6), now2);
    let n = |i: usize| num(stored[i].1);
    let (t2, t3, t4, t5) = (T0 + 2000, T0 + 3000, T0 + 4000, T0 + 5000);
    let (n4, n5) = (num(last.next()), num(last.next().next()));
    assert_lines(
        &out2,
        &[
            &format!("BUFFERING tc={t2} {}", n(2)),
            &format!("RECEIVED tc={t2} {}", n(2)),
            &format!("DUPLICATE tc={t2} {}", n(2)),
            &format!("BUFFERING tc={t3} {}", n(3)),
            &format!("RECEIVED tc={t3} {}", n(3)),
            &format!("DUPLICATE tc={t3} {}", n(3)),
            &format!("BUFFERING tc={t4} {n4}"),
            &format!("RECEIVED tc={t4} {n4}"),
            &format!(
                "FRAGMENT {n4} tc={t4} producer={t4} server={now2} dur=1000 frames=80 bytes=1960"
            ),
            &format!("BUFFERING tc={t5} {n5}"),
            &format!("RECEIVED tc={t5} {n5}"),
            &format!(
                "FRAGMENT {n5} tc={t5} producer={t5} server={now2} dur=1000 frames=80 bytes=1960"
            ),
            "END None",
        ],
    );
    assert_eq!(
        (st.duplicates, st.duplicate_frames, st.fragments, st.errors),
        (2, 160, 2, 0)
    );
}

/// A producer restarting inside one body (a new EBML document) re-sends its last fragment:
/// recognised from this session's own fragments (samples/kvs_style_h264.mkv does the same).
#[test]
fn replay_within_a_session() {
    let mut body = kvssink_body(0..2);
    body.extend(kvssink_body(1..3));
    let (out, st) = run_once(cfg(), &body, 5000);
    let t = |i: u64| T0 + 1000 * i;
    assert_lines(
        &out,
        &[
            &format!("BUFFERING tc={} N5000.0", t(0)),
            &format!("RECEIVED tc={} N5000.0", t(0)),
            &format!(
                "FRAGMENT N5000.0 tc={} producer={} server=5000 dur=1000 frames=80 bytes=1960",
                t(0),
                t(0)
            ),
            &format!("BUFFERING tc={} N5000.1", t(1)),
            &format!("RECEIVED tc={} N5000.1", t(1)),
            &format!(
                "FRAGMENT N5000.1 tc={} producer={} server=5000 dur=1000 frames=80 bytes=1960",
                t(1),
                t(1)
            ),
            &format!("BUFFERING tc={} N5000.1", t(1)),
            &format!("RECEIVED tc={} N5000.1", t(1)),
            &format!("DUPLICATE tc={} N5000.1", t(1)),
            &format!("BUFFERING tc={} N5000.2", t(2)),
            &format!("RECEIVED tc={} N5000.2", t(2)),
            &format!(
                "FRAGMENT N5000.2 tc={} producer={} server=5000 dur=1000 frames=80 bytes=1960",
                t(2),
                t(2)
            ),
            "END None",
        ],
    );
    assert_eq!((st.fragments, st.duplicates), (3, 1));
}

/// When the store fails (ERROR 5001), the replay of that fragment is stored again.
#[test]
fn replay_after_persist_failure_is_stored() {
    let mut s = Session::new(cfg());
    s.push(&kvssink_body(0..2), 5000);
    let out = drain(&mut s);
    let failed = fragments(&out)[1].number;
    s.persist_failed(failed);
    s.check_invariants();
    s.push(&kvssink_body(1..2), 5001);
    s.finish(5002);
    let out = drain(&mut s);
    let t1 = T0 + 1000;
    assert_lines(
        &out,
        &[
            &format!("BUFFERING tc={t1} N5001.0"),
            &format!("RECEIVED tc={t1} N5001.0"),
            &format!(
                "FRAGMENT N5001.0 tc={t1} producer={t1} server=5001 dur=1000 frames=80 bytes=1960"
            ),
            "END None",
        ],
    );
}
