//! MPEG-DASH manifest (ISO/IEC 23009-1) for `getDASHManifest.mpd` (kvs-api.md §11.3).
//!
//! One Period; one AdaptationSet per track; each Representation addresses its segments with a
//! `SegmentList` holding a `SegmentTimeline` (one `S` per KVS fragment, so `kvs:ts`/`kvs:fn`
//! can sit on it) and one `SegmentURL` per fragment. A `SegmentTemplate` cannot be used: KVS
//! fragment numbers are not `$Number$`-sequential. dash.js reads SegmentList+SegmentTimeline
//! through the same timeline code path as SegmentTemplate+SegmentTimeline.

use std::fmt::Write as _;

use crate::time::{iso8601_ms, xs_duration};
use crate::{Error, Fragment, Result, Session, Urls, Window};

/// Namespace URI declared for the `kvs:` attributes. KVS's real URI is unknown (kvs-api.md
/// §16 item 5); players ignore attributes in foreign namespaces, so any URI works.
pub const KVS_NAMESPACE: &str = "urn:openkvs:kvs:dash:2025";

/// Timescale of every SegmentTimeline: fragment times are in ms.
const TIMESCALE: u32 = 1000;

/// Times of a dynamic MPD (LIVE, or LIVE_REPLAY not yet ended). The clock is an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DashLive {
    /// Now, ms since the epoch: `publishTime` and the `UTCTiming` direct value (which also
    /// keeps dash.js from asking a public time server).
    pub now_ms: i64,
    /// Wall-clock time of the period start: `availabilityStartTime`. Media time `anchor_ms`
    /// of [`dash_manifest`] plays at this instant. For LIVE with server timestamps it is
    /// `anchor_ms` itself; for LIVE_REPLAY, the session's creation time.
    pub availability_start_ms: i64,
    /// `minimumUpdatePeriod`.
    pub minimum_update_period_ms: i64,
    /// `timeShiftBufferDepth`.
    pub time_shift_buffer_depth_ms: i64,
    /// `suggestedPresentationDelay`.
    pub suggested_presentation_delay_ms: i64,
}

impl DashLive {
    /// Defaults for a window: refresh every second (as KVS advises for HLS LIVE), a time-shift
    /// buffer as long as the window, and a presentation delay of three of its longest
    /// fragments capped at the window, so the live edge minus the delay stays inside it.
    pub fn new(now_ms: i64, availability_start_ms: i64, fragments: &[Fragment]) -> DashLive {
        let span = match (fragments.first(), fragments.last()) {
            (Some(a), Some(b)) => (b.start_ms + b.duration_ms - a.start_ms).max(0),
            _ => 0,
        };
        let longest = fragments.iter().map(|f| f.duration_ms).max().unwrap_or(0);
        DashLive {
            now_ms,
            availability_start_ms,
            minimum_update_period_ms: 1000,
            time_shift_buffer_depth_ms: span,
            suggested_presentation_delay_ms: (3 * longest).min(span),
        }
    }
}

/// The MPD listing `window`. `anchor_ms` is the media time of the period start
/// (`presentationTimeOffset`): the start of the session's first fragment; keep it fixed for
/// the whole session so refreshed live MPDs line up. The MPD is static for ON_DEMAND and an
/// ended LIVE_REPLAY (`live` is then ignored), dynamic otherwise (`live` required).
///
/// Segment times are the fragments' own times (`S@t` = [`Fragment::start_ms`]), so they match
/// media fragments whose `tfdt` is the fragment start: an explicit `t` marks a gap; an
/// overlapping fragment trims the previous `S@d`.
pub fn dash_manifest(
    session: &Session,
    urls: &dyn Urls,
    window: &Window<'_>,
    anchor_ms: i64,
    live: Option<&DashLive>,
) -> Result<String> {
    window.check()?;
    if session.video.is_none() && session.audio.is_none() {
        return Err(Error::NoTracks);
    }
    let timeline = timeline(window.fragments);
    let kvs_attrs = session.display_fragment_timestamp || session.display_fragment_number;

    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
    if kvs_attrs {
        let _ = write!(s, " xmlns:kvs=\"{KVS_NAMESPACE}\"");
    }
    s.push_str(" profiles=\"urn:mpeg:dash:profile:isoff-main:2011\"");
    let longest = window
        .fragments
        .iter()
        .map(|f| f.duration_ms)
        .max()
        .unwrap_or(0);
    let _ = write!(s, " minBufferTime=\"{}\"", xs_duration(longest.max(1000)));
    let live = if session.is_final() {
        let end = timeline.last().map_or(anchor_ms, |e| e.t + e.d);
        let _ = write!(
            s,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            xs_duration(end - anchor_ms)
        );
        None
    } else {
        let l = live.ok_or(Error::MissingLiveTiming)?;
        let _ = write!(
            s,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" \
             suggestedPresentationDelay=\"{}\"",
            iso8601_ms(l.availability_start_ms),
            iso8601_ms(l.now_ms),
            xs_duration(l.minimum_update_period_ms),
            xs_duration(l.time_shift_buffer_depth_ms),
            xs_duration(l.suggested_presentation_delay_ms)
        );
        Some(l)
    };
    s.push_str(">\n  <Period id=\"0\" start=\"PT0.000S\">\n");

    let mut set_id = 0;
    if let Some(v) = &session.video {
        set_id += 1;
        let _ = writeln!(
            s,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"video\" mimeType=\"video/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        let _ = write!(
            s,
            "      <Representation id=\"{}\" codecs=\"{}\" width=\"{}\" height=\"{}\"",
            v.track,
            esc(&v.codec),
            v.width,
            v.height
        );
        if let Some(fr) = v.frame_rate.and_then(frame_rate) {
            let _ = write!(s, " frameRate=\"{fr}\"");
        }
        let _ = writeln!(s, " bandwidth=\"{}\">", v.bandwidth_bps.max(1));
        segment_list(
            &mut s,
            session,
            urls,
            v.track,
            window.fragments,
            &timeline,
            anchor_ms,
        );
        s.push_str("      </Representation>\n    </AdaptationSet>\n");
    }
    if let Some(a) = &session.audio {
        set_id += 1;
        let _ = writeln!(
            s,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"audio\" mimeType=\"audio/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        let _ = writeln!(
            s,
            "      <Representation id=\"{}\" codecs=\"{}\" audioSamplingRate=\"{}\" \
             bandwidth=\"{}\">",
            a.track,
            esc(&a.codec),
            a.sample_rate_hz,
            a.bandwidth_bps.max(1)
        );
        let _ = writeln!(
            s,
            "        <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
             value=\"{}\"/>",
            a.channels
        );
        segment_list(
            &mut s,
            session,
            urls,
            a.track,
            window.fragments,
            &timeline,
            anchor_ms,
        );
        s.push_str("      </Representation>\n    </AdaptationSet>\n");
    }
    s.push_str("  </Period>\n");
    if let Some(l) = live {
        let _ = writeln!(
            s,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
            iso8601_ms(l.now_ms)
        );
    }
    s.push_str("</MPD>\n");
    Ok(s)
}

/// One `S` element: start and duration in ms, and whether `t` must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    t: i64,
    d: i64,
    explicit_t: bool,
}

/// Timeline entries: each fragment keeps its start unless it does not start after the
/// previous one (then it follows it directly); an overlap trims the previous duration.
fn timeline(fragments: &[Fragment]) -> Vec<Entry> {
    let mut ts: Vec<i64> = Vec::with_capacity(fragments.len());
    for (i, f) in fragments.iter().enumerate() {
        let t = match i {
            0 => f.start_ms,
            _ if f.start_ms > ts[i - 1] => f.start_ms,
            _ => ts[i - 1] + fragments[i - 1].duration_ms.max(1),
        };
        ts.push(t);
    }
    let mut out: Vec<Entry> = Vec::with_capacity(fragments.len());
    for (i, f) in fragments.iter().enumerate() {
        let d = match ts.get(i + 1) {
            Some(next) => f.duration_ms.min(next - ts[i]),
            None => f.duration_ms,
        };
        let explicit_t = match out.last() {
            None => true,
            Some(p) => p.t + p.d != ts[i],
        };
        out.push(Entry {
            t: ts[i],
            d,
            explicit_t,
        });
    }
    out
}

fn segment_list(
    s: &mut String,
    session: &Session,
    urls: &dyn Urls,
    track: u64,
    fragments: &[Fragment],
    timeline: &[Entry],
    anchor_ms: i64,
) {
    let _ = writeln!(
        s,
        "        <SegmentList timescale=\"{TIMESCALE}\" presentationTimeOffset=\"{anchor_ms}\">"
    );
    let _ = writeln!(
        s,
        "          <Initialization sourceURL=\"{}\"/>",
        esc(&urls.mp4_init_fragment(Some(track)))
    );
    s.push_str("          <SegmentTimeline>\n");
    for (f, e) in fragments.iter().zip(timeline) {
        s.push_str("            <S");
        if e.explicit_t {
            let _ = write!(s, " t=\"{}\"", e.t);
        }
        let _ = write!(s, " d=\"{}\"", e.d);
        if session.display_fragment_number {
            let _ = write!(s, " kvs:fn=\"{}\"", esc(&f.number));
        }
        if session.display_fragment_timestamp {
            let _ = write!(s, " kvs:ts=\"{}\"", f.display_ms);
        }
        s.push_str("/>\n");
    }
    s.push_str("          </SegmentTimeline>\n");
    for f in fragments {
        let _ = writeln!(
            s,
            "          <SegmentURL media=\"{}\"/>",
            esc(&urls.mp4_media_fragment(&f.number, Some(track)))
        );
    }
    s.push_str("        </SegmentList>\n");
}

/// `frameRate` is `[0-9]+(/[0-9]+)?` (FrameRateType), not a decimal: 29.97 -> `2997/100`.
fn frame_rate(fps: f64) -> Option<String> {
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    let milli = (fps * 1000.0).round() as u64;
    let g = gcd(milli, 1000);
    Some(match 1000 / g {
        1 => format!("{}", milli / g),
        den => format!("{}/{den}", milli / g),
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Escapes the five XML special characters for an attribute value.
fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(start_ms: i64, duration_ms: i64) -> Fragment {
        Fragment {
            number: start_ms.to_string(),
            start_ms,
            display_ms: start_ms,
            duration_ms,
            discontinuity: false,
        }
    }

    /// Fragments as (start, duration) and the wanted entries as (t, d, explicit_t).
    type TimelineCase = (&'static [(i64, i64)], &'static [(i64, i64, bool)]);

    #[test]
    fn timeline_table() {
        let cases: &[TimelineCase] = &[
            (&[], &[]),
            (
                &[(1000, 2000), (3000, 2000)],
                &[(1000, 2000, true), (3000, 2000, false)],
            ),
            // Gap: explicit t.
            (
                &[(0, 2000), (2500, 2000)],
                &[(0, 2000, true), (2500, 2000, true)],
            ),
            // Overlap: previous trimmed, start kept.
            (
                &[(0, 2000), (1900, 2000)],
                &[(0, 1900, true), (1900, 2000, false)],
            ),
            // Same start: follows the previous one.
            (
                &[(0, 2000), (0, 2000)],
                &[(0, 2000, true), (2000, 2000, false)],
            ),
        ];
        for (input, want) in cases {
            let fr: Vec<Fragment> = input.iter().map(|&(s, d)| frag(s, d)).collect();
            let got: Vec<(i64, i64, bool)> = timeline(&fr)
                .iter()
                .map(|e| (e.t, e.d, e.explicit_t))
                .collect();
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn frame_rate_table() {
        for (fps, want) in [
            (25.0, Some("25")),
            (29.97, Some("2997/100")),
            (15.02, Some("751/50")),
            (23.976, Some("2997/125")),
            (0.0, None),
            (f64::NAN, None),
        ] {
            assert_eq!(frame_rate(fps).as_deref(), want, "{fps}");
        }
    }

    #[test]
    fn escape_table() {
        assert_eq!(esc("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(esc("plain"), "plain");
    }
}
