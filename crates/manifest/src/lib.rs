//! Pure functions from a KVS fragment list to HLS playlists and MPEG-DASH manifests
//! (kvs-api.md §11): [`hls_master_playlist`], [`hls_media_playlist`], [`dash_manifest`].
//!
//! The caller (the HLS/DASH session in `openkvs-export`/`openkvs-api`) owns the session: it
//! selects the fragments (range, playback mode, MaxMediaPlaylistFragmentResults), picks the
//! timestamp (producer or server) for [`Fragment::start_ms`], knows the position of the first
//! listed fragment in the session's list, and reads the clock. This crate only turns that into
//! text, with URLs from a [`Urls`] implementation ([`KvsUrls`] builds the relative KVS resource
//! names with the session token).
//!
//! It deliberately does not: do I/O, read a clock (live MPD times are arguments), parse
//! playlists, pick fragments, or know codecs beyond the RFC 6381 strings it is given.
//!
//! # Use
//!
//! ```
//! use openkvs_manifest::*;
//! # fn main() -> Result<(), Error> {
//! let session = Session {
//!     mode: PlaybackMode::OnDemand,
//!     container: ContainerFormat::MpegTs,
//!     discontinuity_mode: DiscontinuityMode::Never,
//!     display_fragment_timestamp: false,
//!     display_fragment_number: false,
//!     video: Some(VideoTrack { track: 1, codec: "avc1.64001f".into(), width: 320, height: 240,
//!                              frame_rate: Some(25.0), bandwidth_bps: 500_000 }),
//!     audio: None,
//!     hls_audio: HlsAudio::Muxed,
//!     ended: true,
//! };
//! let fragments = [Fragment { number: "91343852333181432392682062581306474624227082347".into(),
//!                             start_ms: 1_684_331_315_994, display_ms: 1_684_331_315_994,
//!                             duration_ms: 2_663, discontinuity: false }];
//! let urls = KvsUrls::new("CiC7~");
//! let playlist = hls_media_playlist(&session, &urls, None, &Window::first(&fragments))?;
//! assert!(playlist.contains("#EXTINF:2.663,\ngetTSFragment.ts?SessionToken=CiC7~&FragmentNumber=9134"));
//! # Ok(()) }
//! ```
//!
//! Design notes: `DESIGN.md` in this crate.
#![deny(missing_docs)]

mod dash;
mod error;
mod hls;
mod time;
mod urls;

pub use dash::{DashLive, KVS_NAMESPACE, dash_manifest};
pub use error::{Error, Result};
pub use hls::{hls_master_playlist, hls_media_playlist};
pub use urls::{KvsUrls, Urls};

/// Gap or overlap, in ms, above which `ON_DISCONTINUITY` marks a discontinuity (kvs-api.md
/// §11.1: "marker when gap/overlap > 50 ms").
pub const DISCONTINUITY_THRESHOLD_MS: i64 = 50;

/// One KVS fragment as a playlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// KVS fragment number (decimal string).
    pub number: String,
    /// Start on the media timeline, in ms: where the fragment's media segment says it starts
    /// (`tfdt`, PTS). openkvs uses the producer timeline (contiguous for a live producer,
    /// whatever the network did to the server timestamps), possibly shifted to close gaps.
    pub start_ms: i64,
    /// The timestamp players are shown (`#EXT-X-PROGRAM-DATE-TIME`, `kvs:ts`): ms since the
    /// Unix epoch, producer or server timestamp per the session's fragment selector.
    pub display_ms: i64,
    /// Duration in ms.
    pub duration_ms: i64,
    /// The fragment does not continue the previous one in the session's list (see
    /// [`mark_discontinuities`]); used by [`DiscontinuityMode::OnDiscontinuity`].
    pub discontinuity: bool,
}

/// Sets [`Fragment::discontinuity`] on every fragment whose start differs from the previous
/// fragment's end by more than [`DISCONTINUITY_THRESHOLD_MS`]; the first is left as it is
/// (the caller knows whether it continues an earlier, unlisted fragment).
pub fn mark_discontinuities(fragments: &mut [Fragment]) {
    for i in 1..fragments.len() {
        let prev_end = fragments[i - 1].start_ms + fragments[i - 1].duration_ms;
        fragments[i].discontinuity =
            (fragments[i].start_ms - prev_end).abs() > DISCONTINUITY_THRESHOLD_MS;
    }
}

/// `PlaybackMode` of GetHLSStreamingSessionURL / GetDASHStreamingSessionURL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackMode {
    /// Newest fragments; playlist refreshed by the player.
    Live,
    /// From a start time, paced in real time; ends when [`Session::ended`].
    LiveReplay,
    /// A fixed range, fetched once.
    OnDemand,
}

/// `ContainerFormat` of GetHLSStreamingSessionURL (DASH is always fragmented MP4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerFormat {
    /// fMP4 (CMAF): init fragment + `moof`/`mdat` media fragments.
    FragmentedMp4,
    /// MPEG-TS segments with all tracks.
    MpegTs,
}

/// `DiscontinuityMode` of GetHLSStreamingSessionURL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscontinuityMode {
    /// `#EXT-X-DISCONTINUITY` before every fragment.
    Always,
    /// Never.
    Never,
    /// Before fragments with [`Fragment::discontinuity`].
    OnDiscontinuity,
}

/// The video track of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTrack {
    /// Track number (`TrackNumber` in URLs).
    pub track: u64,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second, when known.
    pub frame_rate: Option<f64>,
    /// Peak bit rate in bits per second.
    pub bandwidth_bps: u64,
}

/// The audio track of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// Track number (`TrackNumber` in URLs).
    pub track: u64,
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub codec: String,
    /// Sampling rate in Hz.
    pub sample_rate_hz: u32,
    /// Channel count.
    pub channels: u32,
    /// Peak bit rate in bits per second.
    pub bandwidth_bps: u64,
}

/// How HLS carries audio next to video in `FRAGMENTED_MP4` sessions (TS is always muxed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsAudio {
    /// One media playlist; init and media fragments carry both tracks (URLs without
    /// `TrackNumber`). The default: what hls.js plays most reliably (see DESIGN.md).
    Muxed,
    /// Audio as an `#EXT-X-MEDIA:TYPE=AUDIO` rendition with its own media playlist, as
    /// kvs-api.md §11.2 describes KVS doing.
    Rendition,
}

/// What a playlist is written for: the session's parameters and tracks.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Playback mode.
    pub mode: PlaybackMode,
    /// Container (HLS only; DASH is always fMP4).
    pub container: ContainerFormat,
    /// Discontinuity mode (HLS only).
    pub discontinuity_mode: DiscontinuityMode,
    /// `DisplayFragmentTimestamp=ALWAYS`: HLS `#EXT-X-PROGRAM-DATE-TIME`, DASH `kvs:ts`.
    pub display_fragment_timestamp: bool,
    /// `DisplayFragmentNumber=ALWAYS` (DASH only): `kvs:fn`.
    pub display_fragment_number: bool,
    /// Video track, if any.
    pub video: Option<VideoTrack>,
    /// Audio track, if any.
    pub audio: Option<AudioTrack>,
    /// Audio layout for HLS fMP4.
    pub hls_audio: HlsAudio,
    /// LIVE_REPLAY reached its EndTimestamp: HLS adds `#EXT-X-ENDLIST`, DASH turns static.
    pub ended: bool,
}

impl Session {
    /// True when the HLS/DASH output is final (`ENDLIST`, static MPD).
    fn is_final(&self) -> bool {
        match self.mode {
            PlaybackMode::OnDemand => true,
            PlaybackMode::LiveReplay => self.ended,
            PlaybackMode::Live => false,
        }
    }
}

/// The fragments one playlist lists and where they sit in the session's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window<'a> {
    /// Fragments in playlist order.
    pub fragments: &'a [Fragment],
    /// Index of `fragments[0]` in the session's list: `#EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `#EXT-X-DISCONTINUITY` tags the session's earlier, no longer listed fragments had
    /// (`#EXT-X-DISCONTINUITY-SEQUENCE`, RFC 8216 §4.3.3.3). With
    /// [`DiscontinuityMode::Always`] this is `media_sequence` and the value here is ignored;
    /// with `Never` it is 0.
    pub discontinuity_sequence: u64,
}

impl<'a> Window<'a> {
    /// The start of a session: sequence numbers 0.
    pub fn first(fragments: &'a [Fragment]) -> Window<'a> {
        Window {
            fragments,
            media_sequence: 0,
            discontinuity_sequence: 0,
        }
    }

    fn check(&self) -> Result<()> {
        match self.fragments.iter().find(|f| f.duration_ms < 0) {
            Some(f) => Err(Error::NegativeDuration {
                number: f.number.clone(),
                duration_ms: f.duration_ms,
            }),
            None => Ok(()),
        }
    }
}
