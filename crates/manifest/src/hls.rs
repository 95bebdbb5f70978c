//! HLS playlists (RFC 8216) in the shape KVS serves (kvs-api.md §11.2).

use std::fmt::Write as _;

use crate::time::{iso8601_ms, seconds_3};
use crate::{
    ContainerFormat, DiscontinuityMode, Error, HlsAudio, PlaybackMode, Result, Session, Urls,
    Window,
};

/// `GROUP-ID` of the audio rendition.
const AUDIO_GROUP: &str = "audio";

/// The master playlist (`getHLSMasterPlaylist.m3u8`): one `#EXT-X-STREAM-INF` with CODECS
/// (every codec of the session), RESOLUTION and FRAME-RATE (video only) and BANDWIDTH (sum of
/// the tracks), pointing at the main media playlist; for fMP4 with [`HlsAudio::Rendition`] an
/// `#EXT-X-MEDIA` audio rendition too.
pub fn hls_master_playlist(session: &Session, urls: &dyn Urls) -> Result<String> {
    if session.video.is_none() && session.audio.is_none() {
        return Err(Error::NoTracks);
    }
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let rendition = match (&session.video, &session.audio) {
        (Some(_), Some(a))
            if session.container == ContainerFormat::FragmentedMp4
                && session.hls_audio == HlsAudio::Rendition =>
        {
            Some(a)
        }
        _ => None,
    };
    if let Some(a) = rendition {
        let _ = writeln!(
            s,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"audio\",DEFAULT=YES,\
             AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}\"",
            a.channels,
            urls.hls_media_playlist(Some(a.track))
        );
    }
    let codecs: Vec<&str> = session
        .video
        .iter()
        .map(|v| v.codec.as_str())
        .chain(session.audio.iter().map(|a| a.codec.as_str()))
        .collect();
    let _ = write!(s, "#EXT-X-STREAM-INF:CODECS=\"{}\"", codecs.join(","));
    if let Some(v) = &session.video {
        let _ = write!(s, ",RESOLUTION={}x{}", v.width, v.height);
        if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(s, ",FRAME-RATE={}", trim_decimal(&format!("{fps:.3}")));
        }
    }
    let bandwidth = session.video.as_ref().map_or(0, |v| v.bandwidth_bps)
        + session.audio.as_ref().map_or(0, |a| a.bandwidth_bps);
    let _ = write!(s, ",BANDWIDTH={bandwidth}");
    if rendition.is_some() {
        let _ = write!(s, ",AUDIO=\"{AUDIO_GROUP}\"");
    }
    s.push('\n');
    let main_track = match session.container {
        ContainerFormat::MpegTs => None,
        ContainerFormat::FragmentedMp4 => fmp4_track(session, None),
    };
    s.push_str(&urls.hls_media_playlist(main_track));
    s.push('\n');
    Ok(s)
}

/// Track an fMP4 playlist's resources name: the requested one, else all (`None`) when both
/// tracks are muxed, else the only or the video track.
fn fmp4_track(session: &Session, requested: Option<u64>) -> Option<u64> {
    if requested.is_some() {
        return requested;
    }
    match (&session.video, &session.audio) {
        (Some(_), Some(_)) if session.hls_audio == HlsAudio::Muxed => None,
        (Some(v), _) => Some(v.track),
        (None, Some(a)) => Some(a.track),
        (None, None) => None,
    }
}

/// `25.000` -> `25`, `15.020` -> `15.02` (KVS prints `FRAME-RATE=15.02`).
fn trim_decimal(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A media playlist (`getHLSMediaPlaylist.m3u8`) listing `window`.
///
/// `track` is the request's `TrackNumber`: the playlist of that track (fMP4 audio rendition,
/// or per-track playlists); `None` for the main playlist. TS playlists ignore it.
///
/// Layout (kvs-api.md §11.2): VERSION 7 (fMP4) or 3 (TS), PLAYLIST-TYPE:VOD for ON_DEMAND,
/// TARGETDURATION = ceil(longest fragment) and at least 1, MEDIA-SEQUENCE,
/// DISCONTINUITY-SEQUENCE when not 0, INDEPENDENT-SEGMENTS (every fragment starts with a key
/// frame); per fragment: DISCONTINUITY per [`DiscontinuityMode`], EXT-X-MAP before the first
/// (fMP4), PROGRAM-DATE-TIME when displayed, EXTINF with 3 decimals, URI; ENDLIST when
/// ON_DEMAND or an ended LIVE_REPLAY.
pub fn hls_media_playlist(
    session: &Session,
    urls: &dyn Urls,
    track: Option<u64>,
    window: &Window<'_>,
) -> Result<String> {
    window.check()?;
    if session.video.is_none() && session.audio.is_none() {
        return Err(Error::NoTracks);
    }
    let fmp4 = session.container == ContainerFormat::FragmentedMp4;
    let track = if fmp4 {
        fmp4_track(session, track)
    } else {
        None
    };
    let max_ms = window
        .fragments
        .iter()
        .map(|f| f.duration_ms)
        .max()
        .unwrap_or(0);
    let target_s = ((max_ms + 999) / 1000).max(1);
    let discontinuity_sequence = match session.discontinuity_mode {
        DiscontinuityMode::Always => window.media_sequence,
        DiscontinuityMode::Never => 0,
        DiscontinuityMode::OnDiscontinuity => window.discontinuity_sequence,
    };

    let mut s = String::with_capacity(200 + window.fragments.len() * 200);
    let _ = writeln!(s, "#EXTM3U\n#EXT-X-VERSION:{}", if fmp4 { 7 } else { 3 });
    if session.mode == PlaybackMode::OnDemand {
        s.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let _ = writeln!(s, "#EXT-X-TARGETDURATION:{target_s}");
    let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", window.media_sequence);
    if discontinuity_sequence > 0 {
        let _ = writeln!(s, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
    }
    s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, f) in window.fragments.iter().enumerate() {
        let discontinuity = match session.discontinuity_mode {
            DiscontinuityMode::Always => true,
            DiscontinuityMode::Never => false,
            DiscontinuityMode::OnDiscontinuity => f.discontinuity,
        };
        if discontinuity {
            s.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if fmp4 && i == 0 {
            let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", urls.mp4_init_fragment(track));
        }
        if session.display_fragment_timestamp {
            let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(f.display_ms));
        }
        let _ = writeln!(s, "#EXTINF:{},", seconds_3(f.duration_ms));
        let uri = if fmp4 {
            urls.mp4_media_fragment(&f.number, track)
        } else {
            urls.ts_fragment(&f.number)
        };
        s.push_str(&uri);
        s.push('\n');
    }
    if session.is_final() {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_table() {
        for (i, o) in [
            ("25.000", "25"),
            ("15.020", "15.02"),
            ("29.970", "29.97"),
            ("0.500", "0.5"),
            ("10", "10"),
        ] {
            assert_eq!(trim_decimal(i), o);
        }
    }
}
