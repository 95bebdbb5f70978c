//! The fragment time index and media bytes: what ingest persists and every reader reads.
//!
//! A fragment's media is stored as the concatenation of its frames' payloads (no MKV framing),
//! and its [`FrameEntry`] table says where each frame is and when it plays. Readers build
//! GetMedia MKV, MP4 and MPEG-TS from that table and byte ranges of the payload, never by
//! re-parsing MKV (the moonfire-nvr design).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kvs_core::FragmentNumber;
use serde::{Deserialize, Serialize};

use crate::Result;

/// One track of a stream as the producer described it (from MKV `Tracks`).
///
/// `PartialEq` only: `sampling_frequency` is an `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// MKV `TrackNumber` (what frames refer to).
    pub number: u64,
    /// MKV `TrackUID`.
    pub uid: u64,
    /// MKV `TrackType`: 1 video, 2 audio, other values as given.
    pub track_type: u64,
    /// `CodecID` with trailing NULs trimmed, e.g. `V_MPEG4/ISO/AVC`, `A_AAC`.
    pub codec_id: String,
    /// `CodecPrivate` (avcC, hvcC, AudioSpecificConfig…), if any.
    pub codec_private: Option<Vec<u8>>,
    /// `Name`.
    pub name: Option<String>,
    /// `Language`.
    pub language: Option<String>,
    /// `DefaultDuration` in ns.
    pub default_duration_ns: Option<u64>,
    /// Video `PixelWidth`.
    pub width: Option<u64>,
    /// Video `PixelHeight`.
    pub height: Option<u64>,
    /// Audio `SamplingFrequency` in Hz.
    pub sampling_frequency: Option<f64>,
    /// Audio `Channels`.
    pub channels: Option<u64>,
    /// Audio `BitDepth`.
    pub bit_depth: Option<u64>,
}

/// The tracks (and timescale) that a run of fragments shares. Stored once, referenced by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSet {
    /// MKV `TimecodeScale` in ns (1,000,000 = ms ticks).
    pub timecode_scale_ns: u64,
    /// Tracks in producer order.
    pub tracks: Vec<TrackInfo>,
}

/// One frame of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEntry {
    /// MKV track number.
    pub track: u64,
    /// Key frame (SimpleBlock key flag, or BlockGroup without ReferenceBlock).
    pub keyframe: bool,
    /// Presentation time in timecode ticks relative to the fragment's `cluster_timecode`.
    pub pts: i64,
    /// Duration in ticks when known (BlockDuration or DefaultDuration), else 0.
    pub duration: u32,
    /// Offset of the payload within the fragment's media bytes.
    pub offset: u32,
    /// Payload size in bytes.
    pub size: u32,
}

/// What ingest hands to [`FragmentStore::persist`].
#[derive(Debug, Clone)]
pub struct NewFragment {
    /// The stream (its ARN identifies this incarnation of the name).
    pub stream_arn: String,
    /// Assigned by ingest; strictly increasing per stream.
    pub number: FragmentNumber,
    /// Producer timestamp of the first frame, epoch ms.
    pub producer_ms: i64,
    /// Server time when the fragment's first byte arrived, epoch ms.
    pub server_ms: i64,
    /// Duration in ms.
    pub duration_ms: i64,
    /// Timecode of the producer cluster that opened the fragment, as sent (ticks).
    pub cluster_timecode: u64,
    /// Tracks and timescale.
    pub tracks: Arc<TrackSet>,
    /// Frames in decode order (as received).
    pub frames: Vec<FrameEntry>,
    /// Producer fragment metadata (MKV SimpleTag name/value), at most 10.
    pub tags: Vec<(String, String)>,
    /// Concatenated frame payloads.
    pub media: Bytes,
}

/// An indexed fragment (without its frame table, which [`FragmentStore::frames`] loads).
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentMeta {
    /// The stream's ARN.
    pub stream_arn: String,
    /// Fragment number.
    pub number: FragmentNumber,
    /// Producer timestamp, epoch ms.
    pub producer_ms: i64,
    /// Server timestamp, epoch ms.
    pub server_ms: i64,
    /// Duration in ms.
    pub duration_ms: i64,
    /// Size of the media bytes.
    pub size_bytes: u64,
    /// Producer cluster timecode, as sent.
    pub cluster_timecode: u64,
    /// Number of frames.
    pub frame_count: u32,
    /// The fragment's track set.
    pub track_set_id: i64,
    /// Producer metadata tags.
    pub tags: Vec<(String, String)>,
}

/// Which timestamp a time-range query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// The producer's clock.
    Producer,
    /// The server's receive time.
    Server,
}

/// A time-range query: fragments whose *start* is in `start_ms..=end_ms` (KVS's inclusive
/// semantics, `kvs-api.md` §9), ordered by fragment number, strictly after `after` if given.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// Which timestamp.
    pub kind: TimestampKind,
    /// Inclusive start, epoch ms.
    pub start_ms: i64,
    /// Inclusive end, epoch ms.
    pub end_ms: i64,
    /// Resume after this fragment number (pagination).
    pub after: Option<FragmentNumber>,
    /// At most this many.
    pub limit: usize,
}

/// Durable fragment storage: media bytes plus the time index.
///
/// `persist` returns only when both the media bytes and the index row are durable (fsynced), so
/// the caller may then send PERSISTED. Implementations batch concurrent calls into one sync
/// ("group commit"). After a crash, a fragment whose `persist` returned is present and intact; a
/// fragment whose `persist` did not return is absent (never half-visible).
#[async_trait]
pub trait FragmentStore: Send + Sync + std::fmt::Debug {
    /// Stores a track set if an identical one is not stored yet for this stream; returns its id.
    async fn track_set(&self, stream_arn: &str, set: &TrackSet) -> Result<i64>;
    /// Loads a track set by id.
    async fn load_track_set(&self, id: i64) -> Result<Arc<TrackSet>>;
    /// Durably stores a fragment whose track set was stored with [`Self::track_set`].
    async fn persist(&self, fragment: NewFragment, track_set_id: i64) -> Result<FragmentMeta>;
    /// One fragment by number.
    async fn get(&self, stream_arn: &str, number: FragmentNumber) -> Result<Option<FragmentMeta>>;
    /// Fragments in a time range, by number.
    async fn range(&self, stream_arn: &str, q: &RangeQuery) -> Result<Vec<FragmentMeta>>;
    /// Fragments with a number greater than `after` (all if `None`), oldest first.
    async fn after(
        &self,
        stream_arn: &str,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>>;
    /// The newest fragment.
    async fn latest(&self, stream_arn: &str) -> Result<Option<FragmentMeta>>;
    /// The fragment with exactly this producer timestamp, if stored (replay de-duplication).
    async fn by_producer_ms(
        &self,
        stream_arn: &str,
        producer_ms: i64,
    ) -> Result<Option<FragmentMeta>>;
    /// The frame table.
    async fn frames(&self, meta: &FragmentMeta) -> Result<Vec<FrameEntry>>;
    /// The frame tables of many fragments, in order (a clip plan needs all of them before its
    /// first byte). The default asks one at a time; stores override it to batch.
    async fn frames_many(&self, metas: &[FragmentMeta]) -> Result<Vec<Vec<FrameEntry>>> {
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            out.push(self.frames(m).await?);
        }
        Ok(out)
    }
    /// Media bytes `offset..offset+len` of a fragment (`len` clipped to its size).
    async fn read(&self, meta: &FragmentMeta, offset: u64, len: u64) -> Result<Bytes>;
    /// Deletes fragments whose server timestamp is older than `before_ms`; returns how many.
    async fn expire(&self, stream_arn: &str, before_ms: i64) -> Result<u64>;
    /// Deletes everything of a stream (DeleteStream).
    async fn delete_stream(&self, stream_arn: &str) -> Result<()>;
}
