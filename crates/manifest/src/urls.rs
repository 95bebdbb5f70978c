//! URLs of the session resources. Playlists hold relative URLs only (kvs-api.md §11.2), so
//! the server controls naming; [`KvsUrls`] keeps KVS's resource names for drop-in
//! compatibility with tools that rewrite KVS playlists.

/// Builds the URL of each resource a playlist points at. `track` is `None` when the resource
/// carries all tracks of the session (muxed HLS).
pub trait Urls {
    /// An HLS media playlist.
    fn hls_media_playlist(&self, track: Option<u64>) -> String;
    /// An fMP4 initialization fragment (`ftyp` + `moov`).
    fn mp4_init_fragment(&self, track: Option<u64>) -> String;
    /// An fMP4 media fragment (`moof` + `mdat`) of one KVS fragment.
    fn mp4_media_fragment(&self, fragment_number: &str, track: Option<u64>) -> String;
    /// An MPEG-TS segment of one KVS fragment, all tracks.
    fn ts_fragment(&self, fragment_number: &str) -> String;
}

/// KVS resource names relative to `/hls/v1/` or `/dash/v1/`, with the session token:
///
/// ```text
/// getHLSMediaPlaylist.m3u8?SessionToken=T[&TrackNumber=N]
/// getMP4InitFragment.mp4?SessionToken=T[&TrackNumber=N]
/// getMP4MediaFragment.mp4?SessionToken=T&FragmentNumber=F[&TrackNumber=N]
/// getTSFragment.ts?SessionToken=T&FragmentNumber=F
/// ```
///
/// Query values are percent-encoded (RFC 3986 unreserved characters pass; real KVS tokens
/// use only those plus none other), so no URL contains `"`, `,` or whitespace that would
/// break a playlist attribute. XML escaping is the MPD writer's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvsUrls {
    token: String,
}

impl KvsUrls {
    /// URLs for the session with this token.
    pub fn new(session_token: &str) -> KvsUrls {
        KvsUrls {
            token: encode(session_token),
        }
    }

    fn with_track(&self, mut s: String, track: Option<u64>) -> String {
        if let Some(t) = track {
            s.push_str("&TrackNumber=");
            s.push_str(&t.to_string());
        }
        s
    }
}

impl Urls for KvsUrls {
    fn hls_media_playlist(&self, track: Option<u64>) -> String {
        self.with_track(
            format!("getHLSMediaPlaylist.m3u8?SessionToken={}", self.token),
            track,
        )
    }

    fn mp4_init_fragment(&self, track: Option<u64>) -> String {
        self.with_track(
            format!("getMP4InitFragment.mp4?SessionToken={}", self.token),
            track,
        )
    }

    fn mp4_media_fragment(&self, fragment_number: &str, track: Option<u64>) -> String {
        self.with_track(
            format!(
                "getMP4MediaFragment.mp4?SessionToken={}&FragmentNumber={}",
                self.token,
                encode(fragment_number)
            ),
            track,
        )
    }

    fn ts_fragment(&self, fragment_number: &str) -> String {
        format!(
            "getTSFragment.ts?SessionToken={}&FragmentNumber={}",
            self.token,
            encode(fragment_number)
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvs_urls_table() {
        let u = KvsUrls::new("CiC7+/=~");
        let cases: &[(String, &str)] = &[
            (
                u.hls_media_playlist(None),
                "getHLSMediaPlaylist.m3u8?SessionToken=CiC7%2B%2F%3D~",
            ),
            (
                u.hls_media_playlist(Some(2)),
                "getHLSMediaPlaylist.m3u8?SessionToken=CiC7%2B%2F%3D~&TrackNumber=2",
            ),
            (
                u.mp4_init_fragment(Some(1)),
                "getMP4InitFragment.mp4?SessionToken=CiC7%2B%2F%3D~&TrackNumber=1",
            ),
            (
                u.mp4_media_fragment("9134", Some(1)),
                "getMP4MediaFragment.mp4?SessionToken=CiC7%2B%2F%3D~&FragmentNumber=9134&TrackNumber=1",
            ),
            (
                u.ts_fragment("9134"),
                "getTSFragment.ts?SessionToken=CiC7%2B%2F%3D~&FragmentNumber=9134",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
