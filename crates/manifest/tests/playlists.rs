//! Golden playlists for each mode/container, property tests of the HLS invariants, an XML
//! well-formedness and SegmentTimeline check of the MPDs, and ffmpeg playing a generated
//! ON_DEMAND TS playlist.

use std::path::{Path, PathBuf};
use std::process::Command;

use openkvs_manifest::*;
use proptest::prelude::*;

const T0: i64 = 1_684_331_315_994; // 2023-05-17T13:48:35.994Z, the start in kvs-api.md §11.2

fn frag(i: usize, start_ms: i64, duration_ms: i64) -> Fragment {
    Fragment {
        // 47-digit KVS-style numbers.
        number: format!("9134385233318143239268206258130647462422708234{i}"),
        start_ms,
        display_ms: start_ms,
        duration_ms,
        discontinuity: false,
    }
}

/// Four fragments: contiguous, contiguous, then a 1.5 s gap, then a 40 ms overlap.
fn fragments() -> Vec<Fragment> {
    let mut f = vec![
        frag(0, T0, 2663),
        frag(1, T0 + 2663, 2000),
        frag(2, T0 + 4663 + 1500, 2001),
        frag(3, T0 + 8164 - 40, 1999),
    ];
    mark_discontinuities(&mut f);
    f
}

fn video() -> VideoTrack {
    VideoTrack {
        track: 1,
        codec: "avc1.4d4032".into(),
        width: 2592,
        height: 1944,
        frame_rate: Some(15.02),
        bandwidth_bps: 329_640,
    }
}

fn audio() -> AudioTrack {
    AudioTrack {
        track: 2,
        codec: "mp4a.40.2".into(),
        sample_rate_hz: 48_000,
        channels: 2,
        bandwidth_bps: 64_000,
    }
}

fn session(mode: PlaybackMode, container: ContainerFormat) -> Session {
    Session {
        mode,
        container,
        discontinuity_mode: DiscontinuityMode::Always,
        display_fragment_timestamp: false,
        display_fragment_number: false,
        video: Some(video()),
        audio: Some(audio()),
        hls_audio: HlsAudio::Muxed,
        ended: false,
    }
}

/// A token with characters that need escaping in XML and percent-encoding in URLs.
const TOKEN: &str = "CiC7&x+y~";

/// (golden file name, output)
fn cases() -> Vec<(&'static str, String)> {
    use ContainerFormat::*;
    use PlaybackMode::*;
    let urls = KvsUrls::new(TOKEN);
    let f = fragments();
    let mut out = Vec::new();

    out.push((
        "hls_master_fmp4_muxed.m3u8",
        hls_master_playlist(&session(Live, FragmentedMp4), &urls).unwrap(),
    ));
    let mut s = session(Live, FragmentedMp4);
    s.hls_audio = HlsAudio::Rendition;
    out.push((
        "hls_master_fmp4_rendition.m3u8",
        hls_master_playlist(&s, &urls).unwrap(),
    ));
    let mut s = session(OnDemand, MpegTs);
    s.audio = None;
    out.push((
        "hls_master_ts_video_only.m3u8",
        hls_master_playlist(&s, &urls).unwrap(),
    ));

    // ON_DEMAND fMP4, DiscontinuityMode ALWAYS, DisplayFragmentTimestamp ALWAYS.
    let mut s = session(OnDemand, FragmentedMp4);
    s.display_fragment_timestamp = true;
    out.push((
        "hls_media_fmp4_on_demand.m3u8",
        hls_media_playlist(&s, &urls, None, &Window::first(&f)).unwrap(),
    ));
    // LIVE fMP4 audio rendition playlist, NEVER, a window deep into the session.
    let mut s = session(Live, FragmentedMp4);
    s.hls_audio = HlsAudio::Rendition;
    s.discontinuity_mode = DiscontinuityMode::Never;
    let w = Window {
        fragments: &f[1..],
        media_sequence: 41,
        discontinuity_sequence: 0,
    };
    out.push((
        "hls_media_fmp4_live_audio.m3u8",
        hls_media_playlist(&s, &urls, Some(2), &w).unwrap(),
    ));
    // LIVE TS, ALWAYS: DISCONTINUITY-SEQUENCE follows MEDIA-SEQUENCE.
    let s = session(Live, MpegTs);
    let w = Window {
        fragments: &f[2..],
        media_sequence: 7,
        discontinuity_sequence: 0,
    };
    out.push((
        "hls_media_ts_live.m3u8",
        hls_media_playlist(&s, &urls, None, &w).unwrap(),
    ));
    // LIVE_REPLAY TS, ON_DISCONTINUITY, ended, 3 earlier discontinuities.
    let mut s = session(LiveReplay, MpegTs);
    s.discontinuity_mode = DiscontinuityMode::OnDiscontinuity;
    s.ended = true;
    let w = Window {
        fragments: &f,
        media_sequence: 12,
        discontinuity_sequence: 3,
    };
    out.push((
        "hls_media_ts_live_replay_ended.m3u8",
        hls_media_playlist(&s, &urls, None, &w).unwrap(),
    ));

    // DASH ON_DEMAND with kvs:ts and kvs:fn.
    let mut s = session(OnDemand, FragmentedMp4);
    s.display_fragment_timestamp = true;
    s.display_fragment_number = true;
    out.push((
        "dash_on_demand.mpd",
        dash_manifest(&s, &urls, &Window::first(&f), T0, None).unwrap(),
    ));
    // DASH LIVE, video only, no kvs attributes.
    let mut s = session(Live, FragmentedMp4);
    s.audio = None;
    let w = Window {
        fragments: &f[1..],
        media_sequence: 1,
        discontinuity_sequence: 0,
    };
    let live = DashLive::new(T0 + 11_000, T0, &f[1..]);
    out.push((
        "dash_live.mpd",
        dash_manifest(&s, &urls, &w, T0, Some(&live)).unwrap(),
    ));
    // DASH LIVE_REPLAY not yet ended: dynamic, availabilityStartTime = session creation.
    let mut s = session(LiveReplay, FragmentedMp4);
    s.display_fragment_number = true;
    let live = DashLive::new(T0 + 86_400_000, T0 + 86_400_000 - 5_000, &f[..2]);
    out.push((
        "dash_live_replay.mpd",
        dash_manifest(&s, &urls, &Window::first(&f[..2]), T0, Some(&live)).unwrap(),
    ));
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Regenerate with `UPDATE_GOLDEN=1 cargo test -p openkvs-manifest`; review the diff.
#[test]
fn golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failed = Vec::new();
    for (name, got) in cases() {
        let path = golden_dir().join(name);
        if update {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failed.push(format!("{name}:\n{got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "differs from golden (UPDATE_GOLDEN=1 to accept):\n{}",
        failed.join("\n")
    );
}

#[test]
fn errors() {
    let urls = KvsUrls::new("t");
    let mut s = session(PlaybackMode::Live, ContainerFormat::FragmentedMp4);
    let f = fragments();
    assert_eq!(
        dash_manifest(&s, &urls, &Window::first(&f), T0, None),
        Err(Error::MissingLiveTiming)
    );
    let bad = [frag(0, T0, -1)];
    assert!(matches!(
        hls_media_playlist(&s, &urls, None, &Window::first(&bad)),
        Err(Error::NegativeDuration {
            duration_ms: -1,
            ..
        })
    ));
    s.video = None;
    s.audio = None;
    assert_eq!(hls_master_playlist(&s, &urls), Err(Error::NoTracks));
}

/// Minimal XML well-formedness check (elements nest, attributes are quoted and unique,
/// entities are the predefined five, one root) returning (name, attributes) of every start
/// tag, attribute values unescaped.
fn parse_xml(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        assert!(
            rest[..lt].trim().is_empty(),
            "text content: {:?}",
            &rest[..lt]
        );
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched end tag");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs_text) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':'));
        let mut attrs: Vec<(String, String)> = Vec::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let (k, v) = attrs_text
                .split_once("=\"")
                .expect("attribute without quoted value");
            let end = v.find('"').expect("unterminated attribute");
            let raw = &v[..end];
            assert!(!raw.contains('<'), "< in attribute");
            let mut val = String::new();
            let mut r = raw;
            while let Some(amp) = r.find('&') {
                val.push_str(&r[..amp]);
                let semi = r[amp..].find(';').expect("unterminated entity") + amp;
                val.push_str(match &r[amp..=semi] {
                    "&amp;" => "&",
                    "&lt;" => "<",
                    "&gt;" => ">",
                    "&quot;" => "\"",
                    "&apos;" => "'",
                    other => panic!("unknown entity {other}"),
                });
                r = &r[semi + 1..];
            }
            val.push_str(r);
            assert!(attrs.iter().all(|(a, _)| a != k), "duplicate attribute {k}");
            attrs.push((k.to_owned(), val));
            attrs_text = &v[end + 1..];
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_owned());
        }
        elements.push((name.to_owned(), attrs));
    }
    assert!(
        rest.trim().is_empty() && stack.is_empty(),
        "unclosed elements {stack:?}"
    );
    assert_eq!(roots, 1, "one root element");
    elements
}

fn attr<'a>(e: &'a (String, Vec<(String, String)>), k: &str) -> Option<&'a str> {
    e.1.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

#[test]
fn mpd_is_well_formed_and_timeline_sums() {
    for (name, mpd) in cases().into_iter().filter(|(n, _)| n.ends_with(".mpd")) {
        let els = parse_xml(&mpd);
        let root = &els[0];
        assert_eq!(root.0, "MPD", "{name}");
        let uses_kvs = els
            .iter()
            .any(|e| e.1.iter().any(|(k, _)| k.starts_with("kvs:")));
        assert_eq!(
            attr(root, "xmlns:kvs").is_some(),
            uses_kvs,
            "{name}: kvs namespace"
        );
        // Per Representation: S count = SegmentURL count; t + sum(d) reaches the last end.
        let mut i = 0;
        while let Some(off) = els[i..].iter().position(|e| e.0 == "SegmentList") {
            let start = i + off;
            let end = els[start + 1..]
                .iter()
                .position(|e| e.0 == "SegmentList" || e.0 == "AdaptationSet")
                .map_or(els.len(), |p| start + 1 + p);
            let ss: Vec<_> = els[start..end].iter().filter(|e| e.0 == "S").collect();
            let urls: Vec<_> = els[start..end]
                .iter()
                .filter(|e| e.0 == "SegmentURL")
                .collect();
            assert_eq!(ss.len(), urls.len(), "{name}");
            assert!(urls.iter().all(|u| {
                attr(u, "media")
                    .unwrap()
                    .contains(&format!("SessionToken={}", "CiC7%26x%2By~"))
            }));
            let mut cursor = 0i64;
            let mut sum = 0i64;
            for s in &ss {
                let d: i64 = attr(s, "d").unwrap().parse().unwrap();
                if let Some(t) = attr(s, "t") {
                    cursor = t.parse().unwrap();
                }
                cursor += d;
                sum += d;
            }
            let first_t: i64 = attr(ss[0], "t").unwrap().parse().unwrap();
            if name == "dash_on_demand.mpd" {
                // Timeline end = end of the last fragment; durations sum to the span minus
                // the 1.5 s gap (the 40 ms overlap is trimmed from its predecessor).
                let f = fragments();
                let last = f.last().unwrap();
                assert_eq!(cursor, last.start_ms + last.duration_ms);
                assert_eq!(sum, cursor - first_t - 1500);
                assert_eq!(attr(root, "mediaPresentationDuration"), Some("PT10.123S"));
            }
            i = end;
        }
    }
}

/// Contiguous fragments with arbitrary durations.
fn arb_fragments() -> impl Strategy<Value = (Vec<Fragment>, u64)> {
    // Durations from 1 ms: the server never lists a 0 ms fragment (it clamps to 1).
    (prop::collection::vec(1i64..20_000, 0..60), 0u64..1_000_000).prop_map(|(ds, seq)| {
        let mut t = T0;
        let f = ds
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let f = frag(i, t, d);
                t += d;
                f
            })
            .collect();
        (f, seq)
    })
}

proptest! {
    /// EXTINF durations sum to the fragment durations (exactly: both are whole ms),
    /// MEDIA-SEQUENCE is the window's, URIs follow the input order, and TARGETDURATION bounds
    /// every EXTINF.
    #[test]
    fn hls_durations_and_order((f, seq) in arb_fragments(), ts in any::<bool>()) {
        let container = if ts { ContainerFormat::MpegTs } else { ContainerFormat::FragmentedMp4 };
        let s = session(PlaybackMode::Live, container);
        let w = Window { fragments: &f, media_sequence: seq, discontinuity_sequence: 0 };
        let text = hls_media_playlist(&s, &KvsUrls::new("t"), None, &w).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut sum_ms = 0i64;
        let mut target = 0i64;
        let mut uris = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some(v) = l.strip_prefix("#EXTINF:") {
                let v = v.trim_end_matches(',');
                let (s, ms) = v.split_once('.').unwrap();
                prop_assert_eq!(ms.len(), 3);
                let ms: i64 = s.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap();
                sum_ms += ms;
                prop_assert!(ms <= target * 1000, "EXTINF {} ms above TARGETDURATION {}", ms, target);
                uris.push(lines[i + 1]);
            } else if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = v.parse().unwrap();
            } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                prop_assert_eq!(v.parse::<u64>().unwrap(), seq);
            }
        }
        prop_assert_eq!(sum_ms, f.iter().map(|f| f.duration_ms).sum::<i64>());
        prop_assert_eq!(uris.len(), f.len());
        for (u, f) in uris.iter().zip(&f) {
            let want = format!("FragmentNumber={}", f.number);
            prop_assert!(u.contains(&want), "{} lacks {}", u, want);
        }
        prop_assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), f.len());
        prop_assert_eq!(text.contains("#EXT-X-MAP:"), !ts && !f.is_empty());
    }

    /// The MPD parses and its SegmentTimeline durations sum to the fragment durations.
    #[test]
    fn dash_timeline_sums((f, _) in arb_fragments().prop_filter("non-empty", |(f, _)| !f.is_empty())) {
        let s = session(PlaybackMode::OnDemand, ContainerFormat::FragmentedMp4);
        let mpd = dash_manifest(&s, &KvsUrls::new("t"), &Window::first(&f), T0, None).unwrap();
        let els = parse_xml(&mpd);
        let sum: i64 = els.iter().filter(|e| e.0 == "S").map(|e| attr(e, "d").unwrap().parse::<i64>().unwrap()).sum();
        // Two AdaptationSets (video, audio) share the timeline.
        prop_assert_eq!(sum, 2 * f.iter().map(|f| f.duration_ms).sum::<i64>());
    }
}

struct FileUrls;

impl Urls for FileUrls {
    fn hls_media_playlist(&self, _: Option<u64>) -> String {
        "media.m3u8".into()
    }
    fn mp4_init_fragment(&self, _: Option<u64>) -> String {
        unreachable!("TS test")
    }
    fn mp4_media_fragment(&self, _: &str, _: Option<u64>) -> String {
        unreachable!("TS test")
    }
    fn ts_fragment(&self, fragment_number: &str) -> String {
        fragment_number.to_owned()
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIP: {tool} not found; install with apt-get install -y --no-install-recommends ffmpeg"
            );
        }
    }
    ok
}

/// ffmpeg cuts the H.264+AAC sample into TS segments; we write the ON_DEMAND playlist for them
/// (relative URIs) and ffmpeg must play it through without an error, for the whole duration.
#[test]
fn ffmpeg_plays_on_demand_ts_playlist() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/ffmpeg_h264_aac.mkv");
    let o = Command::new("ffmpeg")
        .current_dir(dir.path())
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&sample)
        .args([
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_time",
            "1",
            "-segment_format",
            "mpegts",
            "-segment_list",
            "list.csv",
            "-segment_list_type",
            "csv",
            "seg%03d.ts",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.path().join("list.csv")).unwrap();
    let f: Vec<Fragment> = csv
        .lines()
        .map(|l| {
            let mut p = l.split(',');
            let name = p.next().unwrap().to_owned();
            let start: f64 = p.next().unwrap().parse().unwrap();
            let end: f64 = p.next().unwrap().parse().unwrap();
            let start_ms = (start * 1000.0).round() as i64;
            Fragment {
                number: name,
                start_ms: T0 + start_ms,
                display_ms: T0 + start_ms,
                duration_ms: (end * 1000.0).round() as i64 - start_ms,
                discontinuity: false,
            }
        })
        .collect();
    assert!(f.len() >= 2, "{csv}");
    let mut s = session(PlaybackMode::OnDemand, ContainerFormat::MpegTs);
    s.discontinuity_mode = DiscontinuityMode::Never;
    s.display_fragment_timestamp = true;
    let playlist = hls_media_playlist(&s, &FileUrls, None, &Window::first(&f)).unwrap();
    std::fs::write(dir.path().join("media.m3u8"), &playlist).unwrap();
    std::fs::write(
        dir.path().join("master.m3u8"),
        hls_master_playlist(&s, &FileUrls).unwrap(),
    )
    .unwrap();

    let o = Command::new("ffmpeg")
        .current_dir(dir.path())
        .args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            "master.m3u8",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "",
        "ffmpeg errors on\n{playlist}"
    );

    let o = Command::new("ffprobe")
        .current_dir(dir.path())
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            "media.m3u8",
        ])
        .output()
        .unwrap();
    let probed: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let listed: i64 = f.iter().map(|f| f.duration_ms).sum();
    assert!(
        (probed * 1000.0 - listed as f64).abs() < 100.0,
        "ffprobe {probed} s vs playlist {listed} ms"
    );
}
