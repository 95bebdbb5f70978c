//! Every ErrorId the session produces (kvs-api.md §7.4), as exact output sequences:
//! fragment-level errors drop one fragment and the session goes on; stream-level errors end
//! it.

use mkv::{Block, SizeMode, Tag};
use openkvs_ingest::{Error, Output, Session, SessionConfig};

use super::*;

struct Case {
    name: &'static str,
    cfg: SessionConfig,
    body: Vec<u8>,
    want: Vec<&'static str>,
}

fn v_doc() -> Body {
    let mut b = Body::new();
    b.doc(&[video(1)]);
    b
}

fn av_doc() -> Body {
    let mut b = Body::new();
    b.doc(&[video(1), audio(2)]);
    b
}

fn av(key_rel: i16) -> Vec<F> {
    vec![f(1, key_rel, true, 300), f(2, 20, false, 20)]
}

fn with(f: impl FnOnce(&mut SessionConfig)) -> SessionConfig {
    let mut c = cfg();
    f(&mut c);
    c
}

/// A known-size cluster with `frames`, then Tags inside it.
fn cluster_with_tags(b: &mut Body, tc: u64, frames: &[F], tags: &[(&str, &str)]) {
    b.w.begin_cluster(tc, SizeMode::Known);
    for fr in frames {
        b.w.block(&Block::simple(fr.track, fr.rel, fr.key, &payload(tc, fr)))
            .unwrap();
    }
    b.w.tags(&[Tag::strings(tags.iter().copied())]);
    b.w.end_cluster().unwrap();
}

const F0: [&str; 3] = [
    "BUFFERING tc=10000 N5000.0",
    "RECEIVED tc=10000 N5000.0",
    "FRAGMENT N5000.0 tc=10000 producer=10000 server=5000 dur=400 frames=10 bytes=570",
];

fn cases() -> Vec<Case> {
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("K{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let long_name = "N".repeat(129);
    let long_value = "V".repeat(257);
    let six: Vec<(String, String)> = (0..6).map(|i| (format!("S{i}"), "v".into())).collect();
    let six: Vec<(&str, &str)> = six.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let five: Vec<(String, String)> = (0..5).map(|i| (format!("C{i}"), "v".into())).collect();
    let five: Vec<(&str, &str)> = five.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let g = gop_v(10);

    let tail = |tc: &'static str, n: &'static str| -> Vec<&'static str> {
        // The fragment after the failed one: numbers go on, the session survives.
        match (tc, n) {
            ("12000", "1") => vec![
                "BUFFERING tc=12000 N5000.1",
                "RECEIVED tc=12000 N5000.1",
                "FRAGMENT N5000.1 tc=12000 producer=12000 server=5000 dur=400 frames=10 bytes=570",
                "END None",
            ],
            ("12000", "2") => vec![
                "BUFFERING tc=12000 N5000.2",
                "RECEIVED tc=12000 N5000.2",
                "FRAGMENT N5000.2 tc=12000 producer=12000 server=5000 dur=400 frames=10 bytes=570",
                "END None",
            ],
            ("22000", "2") => vec![
                "BUFFERING tc=22000 N5000.2",
                "RECEIVED tc=22000 N5000.2",
                "FRAGMENT N5000.2 tc=22000 producer=22000 server=5000 dur=400 frames=10 bytes=570",
                "END None",
            ],
            _ => unreachable!(),
        }
    };
    let cat = |parts: &[&[&'static str]]| -> Vec<&'static str> { parts.concat() };

    let mut cases = Vec::new();

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(11_000, &[f(1, 0, true, 600), f(1, 40, false, 600)])
        .cluster(12_000, &g)
        .eof();
    cases.push(Case {
        name: "4001 fragment over max_fragment_bytes, detected while receiving",
        cfg: with(|c| c.max_fragment_bytes = 1000),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "why 4001",
                "ERROR tc=11000 id=4001",
            ],
            &tail("12000", "2"),
        ]),
    });

    let mut b = av_doc();
    b.cluster(10_000, &av(0))
        .cluster(
            11_000,
            &[
                f(2, 0, false, 1200),
                f(1, 10, true, 300),
                f(2, 20, false, 20),
            ],
        )
        .cluster(12_000, &av(0))
        .eof();
    cases.push(Case {
        name: "4001 frames held before the key frame exceed max_fragment_bytes",
        cfg: with(|c| c.max_fragment_bytes = 1000),
        body: b.take(),
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "RECEIVED tc=10000 N5000.0",
            "FRAGMENT N5000.0 tc=10000 producer=10000 server=5000 dur=20 frames=2 bytes=320",
            "why 4001",
            "ERROR tc=11000 id=4001",
            "BUFFERING tc=12000 N5000.1",
            "RECEIVED tc=12000 N5000.1",
            "FRAGMENT N5000.1 tc=12000 producer=12000 server=5000 dur=20 frames=2 bytes=320",
            "END None",
        ],
    });

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(
            11_000,
            &[
                f(1, 0, true, 300),
                f(1, 5000, false, 30),
                f(1, 10_001, false, 30),
            ],
        )
        .cluster(22_000, &g)
        .eof();
    cases.push(Case {
        name: "4002 frame timestamps span more than 10 s, detected while receiving",
        cfg: cfg(),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "why 4002",
                "ERROR tc=11000 id=4002",
            ],
            &tail("22000", "2"),
        ]),
    });

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(
            11_000,
            &[
                f(1, 0, true, 300),
                f(1, 5000, false, 30),
                f(1, 9990, false, 30),
            ],
        )
        .cluster(22_000, &g)
        .eof();
    cases.push(Case {
        name: "4002 duration over 10 s once the last frame's duration is estimated",
        cfg: cfg(),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "why 4002",
                "ERROR tc=11000 id=4002",
            ],
            &tail("22000", "2"),
        ]),
    });

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(11_000, &g)
        .cluster(10_500, &g)
        .cluster(12_000, &g)
        .eof();
    cases.push(Case {
        name: "4004 cluster timecode goes back",
        cfg: cfg(),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "RECEIVED tc=11000 N5000.1",
                "FRAGMENT N5000.1 tc=11000 producer=11000 server=5000 dur=400 frames=10 bytes=570",
                "why 4004",
                "ERROR tc=10500 id=4004",
            ],
            &tail("12000", "2"),
        ]),
    });

    for (name, tags) in [
        ("4009 eleven producer tags", eleven.clone()),
        (
            "4009 tag name over 128 bytes",
            vec![(long_name.as_str(), "v")],
        ),
        (
            "4009 tag value over 256 bytes",
            vec![("NAME", long_value.as_str())],
        ),
    ] {
        let mut b = v_doc();
        b.cluster(10_000, &g)
            .tags(&tags)
            .cluster(11_000, &g)
            .cluster(12_000, &g)
            .eof();
        cases.push(Case {
            name,
            cfg: cfg(),
            body: b.take(),
            want: cat(&[
                &F0,
                &["why 4009", "ERROR tc=11000 id=4009"],
                &tail("12000", "1"),
            ]),
        });
    }

    let mut b = v_doc();
    b.cluster(10_000, &g).tags(&six);
    cluster_with_tags(&mut b, 11_000, &g, &five);
    b.cluster(12_000, &g).eof();
    cases.push(Case {
        name: "4009 tags inside the cluster push the count over 10",
        cfg: cfg(),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "why 4009",
                "ERROR tc=11000 id=4009",
            ],
            &tail("12000", "2"),
        ]),
    });

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(11_000, &[f(1, 0, true, 300), f(3, 40, false, 10)])
        .cluster(12_000, &g)
        .eof();
    cases.push(Case {
        name: "4010 frame on a track that Tracks does not list",
        cfg: cfg(),
        body: b.take(),
        want: cat(&[
            &F0,
            &[
                "BUFFERING tc=11000 N5000.1",
                "why 4010",
                "ERROR tc=11000 id=4010",
            ],
            &tail("12000", "2"),
        ]),
    });

    let mut b = av_doc();
    b.cluster(10_000, &av(0))
        .cluster(
            11_000,
            &[f(3, 0, false, 10), f(1, 10, true, 300), f(2, 20, false, 20)],
        )
        .cluster(12_000, &av(0))
        .eof();
    cases.push(Case {
        name: "4010 unknown track before the cluster's key frame: rejected as it opens",
        cfg: cfg(),
        body: b.take(),
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "RECEIVED tc=10000 N5000.0",
            "FRAGMENT N5000.0 tc=10000 producer=10000 server=5000 dur=20 frames=2 bytes=320",
            "why 4010",
            "ERROR tc=11000 id=4010",
            "BUFFERING tc=12000 N5000.1",
            "RECEIVED tc=12000 N5000.1",
            "FRAGMENT N5000.1 tc=12000 producer=12000 server=5000 dur=20 frames=2 bytes=320",
            "END None",
        ],
    });

    let mut b = Body::new();
    b.doc(&[]).cluster(10_000, &[f(1, 0, true, 10)]);
    cases.push(Case {
        name: "4010 cluster before any Tracks",
        cfg: cfg(),
        body: b.take(),
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "why 4010",
            "ERROR tc=10000 id=4010",
            "END None",
        ],
    });

    let mut b = av_doc();
    b.cluster(10_000, &av(0))
        .cluster(11_000, &[f(1, 0, true, 300)])
        .cluster(12_000, &av(0))
        .eof();
    cases.push(Case {
        name: "4011 a track from Tracks has no frame in the fragment",
        cfg: cfg(),
        body: b.take(),
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "RECEIVED tc=10000 N5000.0",
            "FRAGMENT N5000.0 tc=10000 producer=10000 server=5000 dur=20 frames=2 bytes=320",
            "BUFFERING tc=11000 N5000.1",
            "why 4011",
            "ERROR tc=11000 id=4011",
            "BUFFERING tc=12000 N5000.2",
            "RECEIVED tc=12000 N5000.2",
            "FRAGMENT N5000.2 tc=12000 producer=12000 server=5000 dur=20 frames=2 bytes=320",
            "END None",
        ],
    });

    let mut b = v_doc();
    b.cluster(10_000, &g);
    let mut body = b.take();
    body.extend_from_slice(&[0, 0, 0, 0]);
    cases.push(Case {
        name: "4006 invalid element after a cluster ends the session",
        cfg: cfg(),
        body,
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "why 4006",
            "ERROR tc=10000 id=4006",
            "END Some(4006)",
        ],
    });

    let mut b = v_doc();
    b.cluster_sized(10_000, &g, SizeMode::Known);
    let mut body = b.take();
    body.truncate(body.len() - 5);
    cases.push(Case {
        name: "4006 body ends inside a known-size cluster",
        cfg: cfg(),
        body,
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "why 4006",
            "ERROR tc=10000 id=4006",
            "END Some(4006)",
        ],
    });

    cases.push(Case {
        name: "4006 not MKV at all",
        cfg: cfg(),
        body: b"POST /putMedia HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        want: vec!["why 4006", "ERROR id=4006", "END Some(4006)"],
    });

    let mut b = Body::new();
    b.doc(&[video(1), audio(1)]);
    cases.push(Case {
        name: "4006 a track number listed twice",
        cfg: cfg(),
        body: b.take(),
        want: vec!["why 4006", "ERROR id=4006", "END Some(4006)"],
    });

    let mut b = Body::new();
    b.doc(&[video(1), audio(2), audio(3), audio(4)]);
    cases.push(Case {
        name: "4012 four tracks",
        cfg: cfg(),
        body: b.take(),
        want: vec!["why 4012", "ERROR id=4012", "END Some(4012)"],
    });

    let mut b = v_doc();
    b.cluster(10_000, &g)
        .cluster(11_000, &[f(1, 0, true, 2000)]);
    cases.push(Case {
        name: "4001 element over max_element_size ends the session",
        cfg: with(|c| c.max_element_size = 1000),
        body: b.take(),
        want: vec![
            "BUFFERING tc=10000 N5000.0",
            "why 4001",
            "ERROR tc=10000 id=4001",
            "END Some(4001)",
        ],
    });

    cases
}

#[test]
fn error_table() {
    let mut failed = Vec::new();
    for c in cases() {
        let (out, st) = run_once(c.cfg, &c.body, 5000);
        let got = lines(&out);
        if got != c.want {
            failed.push(format!(
                "{}:\n   got: {:#?}\n  want: {:#?}",
                c.name, got, c.want
            ));
        }
        let acks = out
            .iter()
            .filter(|o| matches!(o, Output::Ack(a) if a.error_id.is_some()))
            .count() as u64;
        assert_eq!(st.errors, acks, "{}", c.name);
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The `Error` outputs say what a human needs to find the problem.
#[test]
fn error_messages() {
    let msgs: Vec<(String, Option<String>)> = cases()
        .into_iter()
        .flat_map(|c| run_once(c.cfg, &c.body, 5000).0)
        .filter_map(|o| match o {
            Output::Error(e) => Some((
                e.to_string(),
                std::error::Error::source(&e).map(|s| s.to_string()),
            )),
            _ => None,
        })
        .collect();
    let has = |s: &str| msgs.iter().any(|(m, _)| m == s);
    for want in [
        "fragment at timecode 11000 exceeds 1000 bytes",
        "fragment at timecode 11000 lasts 10001 ms; the limit is 10000 ms",
        "fragment at timecode 11000 lasts 14980 ms; the limit is 10000 ms",
        "fragment timecode 10500 is not after the previous fragment's 11000",
        "fragment at timecode 11000 has 11 producer tags; the limit is 10",
        "fragment at timecode 11000 has no frame on track 2",
    ] {
        assert!(has(want), "missing {want:?} in {msgs:#?}");
    }
    assert!(msgs.iter().any(|(m, _)| m.starts_with("block at byte ")
        && m.ends_with("is on track 3, which Tracks does not list (fragment at timecode 11000)")));
    assert!(
        msgs.iter()
            .any(|(m, _)| m.ends_with("lists 4 tracks; the limit is 3"))
    );
    // Parser errors keep their source, with the byte offset.
    let sources: Vec<&String> = msgs.iter().filter_map(|(_, s)| s.as_ref()).collect();
    assert_eq!(sources.len(), 4, "{sources:#?}");
    assert!(sources.iter().all(|s| s.contains("byte")), "{sources:#?}");
}

/// After a stream-level error the session reads nothing more and emits nothing more.
#[test]
fn input_after_end_is_ignored() {
    let mut s = Session::new(cfg());
    s.push(b"\x00\x00\x00\x00", 5000);
    let out = drain(&mut s);
    assert_lines(&out, &["why 4006", "ERROR id=4006", "END Some(4006)"]);
    assert!(s.is_ended());
    let mut b = v_doc();
    b.cluster(10_000, &gop_v(3));
    s.push(&b.take(), 5001);
    s.finish(5002);
    s.check_invariants();
    assert!(s.poll().is_none());
    assert!(Error::InvalidMkv(mkv::Error::InputAfterFinish { offset: 0 }).ends_session());
}
