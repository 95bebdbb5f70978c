//! Cuts an MKV byte stream into what a resuming PutMedia uploader needs (sans-IO): a *stream
//! header* that can be sent again at the start of every connection, and *clusters* that can be
//! re-sent from any cluster on.
//!
//! Driven like `openkvs-mkv`'s parser: [`Cutter::push`] input as it is read, drain
//! [`Cutter::poll`] until `None`, [`Cutter::finish`] at end of input and drain again.
//!
//! # What is kept, what is rewritten
//!
//! - Stream header = the EBML header as read, a Segment header of **unknown size** (a file's
//!   known Segment size would be wrong once clusters are skipped or a Tags element is appended),
//!   then the Info and Tracks elements as read. Byte copies, not re-encodings, so fields this
//!   client does not model (ContentEncodings, Colour, CodecDelay…) survive. One header per EBML
//!   document: a body holding several documents (a KVS producer that restarted) keeps them.
//! - Cluster = the Cluster element's bytes as read (known or unknown size). Data flows out as it
//!   is parsed, cut at frame starts and tagged with the media time to pace it (`--realtime`).
//! - Segment-level Tags: a Tags element holding `AWS_KINESISVIDEO_END_OF_FRAGMENT` closes the
//!   fragment before it (kvs-api.md §7.3), so it travels *after* the previous cluster, as part
//!   of it. Other Tags are fragment metadata for the *next* cluster and travel before it. Tag
//!   entries with Targets (file-level tags from ffmpeg or mkvmerge: per-track `ENCODER`,
//!   `DURATION`…) are not fragment metadata and are dropped; when a Tags element mixes both,
//!   the untargeted entries are re-encoded.
//! - Dropped: SeekHead, Cues, Chapters, Attachments, Void and anything else between clusters;
//!   their offsets are meaningless in a re-cut stream.
//!
//! # Fragments
//!
//! Each cluster is reported with `fragment_start`: whether the server opens a new fragment
//! with it — its first video frame is a key frame (all clusters of a stream without video),
//! the rule of `openkvs-ingest` and of KVS. ACKs name fragments by the Timecode of their first
//! cluster; the uploader groups clusters with this flag.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use mkv::{AWS_KINESISVIDEO_END_OF_FRAGMENT, Event, Tag, Targets, TrackKind};

/// What is sent before the first cluster of a document on every connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamHeader {
    /// EBML header + unknown-size Segment header + Info + Tracks.
    pub(crate) bytes: Bytes,
    /// `TimecodeScale` of the document, ns per Timecode tick.
    pub(crate) timecode_scale_ns: u64,
}

/// One output of the cutter, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A cluster begins. Its bytes follow as `Data`.
    ClusterStart {
        header: Arc<StreamHeader>,
        /// Cluster `Timecode` in ticks of `header.timecode_scale_ns`.
        timecode: u64,
        fragment_start: bool,
    },
    /// More bytes of the current cluster, not to be sent before media time `pace_ns`.
    Data { bytes: Bytes, pace_ns: i64 },
    /// An `AWS_KINESISVIDEO_END_OF_FRAGMENT` Tags element that closes the current cluster's
    /// fragment; part of the current cluster.
    EndOfFragment(Bytes),
    /// The current cluster is complete.
    ClusterEnd,
}

/// The Tags element with an empty `AWS_KINESISVIDEO_END_OF_FRAGMENT` SimpleTag that kvssink
/// appends at end of stream (kvssink-behaviour.md §5), so the server acks the last fragment
/// without waiting for another cluster.
pub(crate) fn end_of_fragment_tags() -> Bytes {
    let mut w = mkv::Writer::new();
    w.tags(&[Tag::strings([(AWS_KINESISVIDEO_END_OF_FRAGMENT, "")])]);
    Bytes::from(w.into_bytes())
}

/// Per EBML document.
#[derive(Debug, Default)]
struct Doc {
    ebml: Vec<u8>,
    info: Vec<u8>,
    tracks: Option<Vec<u8>>,
    video_tracks: Vec<u64>,
    timecode_scale_ns: u64,
    /// Built at the first cluster; rebuilt if Info or Tracks change.
    header: Option<Arc<StreamHeader>>,
    /// Fragment-metadata Tags waiting for the next cluster.
    pending_tags: Vec<u8>,
}

#[derive(Debug)]
struct Cluster {
    /// Timecode, for fragment_start decisions and pace.
    timecode: u64,
    /// Absolute input offset up to which bytes were emitted (or skipped).
    emitted_to: u64,
    /// `ClusterStart` was emitted (the fragment role is known).
    announced: bool,
    /// Tags to send before the cluster bytes.
    prefix: Vec<u8>,
    /// Largest media time of the frames so far, ns.
    pace_ns: i64,
    /// The parser reported the cluster's end; `ClusterEnd` waits for the next element, in case
    /// an END_OF_FRAGMENT Tags element belongs to this cluster.
    parser_closed: bool,
}

/// Cuts MKV input into a stream header and clusters. See the module docs.
#[derive(Debug)]
pub(crate) struct Cutter {
    parser: mkv::Parser,
    /// Input bytes from absolute offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Bytes before this offset are no longer needed (outside a cluster).
    keep_from: u64,
    doc: Option<Doc>,
    cluster: Option<Cluster>,
    out: VecDeque<Piece>,
    clusters: u64,
}

fn element_end(buf: &[u8], offset: u64, buf_start: u64) -> anyhow::Result<u64> {
    let at = usize::try_from(offset - buf_start).expect("buffered bytes fit in memory");
    match mkv::ebml::read_header(&buf[at..]) {
        Ok(Some(h)) => match h.size.known() {
            Some(size) => Ok(offset + h.len as u64 + size),
            None => bail!("element at byte {offset} has an unknown size"),
        },
        _ => bail!("cannot re-read the element header at byte {offset}"),
    }
}

fn media_time_ns(timecode: i128, scale_ns: u64) -> i64 {
    let ns = timecode.saturating_mul(i128::from(scale_ns));
    i64::try_from(ns.clamp(0, i128::from(i64::MAX))).expect("clamped")
}

impl Cutter {
    pub(crate) fn new() -> Self {
        Cutter {
            // A whole SimpleBlock must fit: 64 MiB covers KVS's 50 MB fragment limit.
            parser: mkv::Parser::builder().max_element_size(64 << 20).build(),
            buf: Vec::new(),
            buf_start: 0,
            keep_from: 0,
            doc: None,
            cluster: None,
            out: VecDeque::new(),
            clusters: 0,
        }
    }

    /// Bytes consumed so far.
    #[cfg(test)]
    fn offset(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// Clusters started so far.
    pub(crate) fn clusters(&self) -> u64 {
        self.clusters
    }

    /// Feeds input and cuts what can be cut. Errors are invalid MKV (with the byte offset).
    pub(crate) fn push(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.buf.extend_from_slice(data);
        self.parser.push(data);
        while let Some(ev) = self.parser.poll().context("the input is not valid MKV")? {
            self.on_event(ev)?;
        }
        // Everything the parser consumed inside an announced cluster is that cluster's.
        if let Some(c) = &self.cluster
            && c.announced
            && !c.parser_closed
        {
            let to = self.parser.offset();
            self.emit_data(to);
        }
        self.trim();
        Ok(())
    }

    /// End of input.
    pub(crate) fn finish(&mut self) -> anyhow::Result<()> {
        self.parser
            .finish()
            .context("the input ends inside an MKV element (truncated file?)")?;
        while let Some(ev) = self.parser.poll().context("the input is not valid MKV")? {
            self.on_event(ev)?;
        }
        self.end_cluster();
        self.trim();
        Ok(())
    }

    /// The next piece, in order.
    pub(crate) fn poll(&mut self) -> Option<Piece> {
        self.out.pop_front()
    }

    /// Panics if internal bookkeeping is inconsistent. For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        assert!(self.keep_from >= self.buf_start || self.cluster.is_some());
        if let Some(c) = &self.cluster {
            assert!(
                c.emitted_to >= self.buf_start,
                "emitted_to {} < buf_start {}",
                c.emitted_to,
                self.buf_start
            );
            assert!(c.emitted_to <= self.offset());
        }
        self.parser.check_invariants();
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        let a = usize::try_from(from - self.buf_start).expect("fits");
        let b = usize::try_from(to - self.buf_start).expect("fits");
        &self.buf[a..b]
    }

    fn trim(&mut self) {
        let keep = match &self.cluster {
            Some(c) => c.emitted_to,
            None => self.keep_from,
        };
        if keep > self.buf_start {
            let n = usize::try_from(keep - self.buf_start)
                .expect("fits")
                .min(self.buf.len());
            self.buf.drain(..n);
            self.buf_start += n as u64;
        }
    }

    fn doc(&mut self, offset: u64) -> anyhow::Result<&mut Doc> {
        match &mut self.doc {
            Some(d) => Ok(d),
            None => bail!("element at byte {offset} comes before the EBML header"),
        }
    }

    /// Emits the current cluster's bytes up to `to`.
    fn emit_data(&mut self, to: u64) {
        let Some(c) = &self.cluster else { return };
        if to <= c.emitted_to {
            return;
        }
        let bytes = Bytes::copy_from_slice(self.slice(c.emitted_to, to));
        let pace_ns = c.pace_ns;
        self.out.push_back(Piece::Data { bytes, pace_ns });
        self.cluster.as_mut().expect("checked").emitted_to = to;
    }

    fn announce(&mut self, fragment_start: bool) {
        let header = self
            .doc
            .as_ref()
            .and_then(|d| d.header.clone())
            .expect("a cluster is only opened with a header");
        let c = self.cluster.as_mut().expect("announce inside a cluster");
        c.announced = true;
        let prefix = std::mem::take(&mut c.prefix);
        let pace_ns = c.pace_ns;
        self.out.push_back(Piece::ClusterStart {
            header,
            timecode: c.timecode,
            fragment_start,
        });
        if !prefix.is_empty() {
            self.out.push_back(Piece::Data {
                bytes: Bytes::from(prefix),
                pace_ns,
            });
        }
    }

    /// Closes the current cluster for good (`ClusterEnd`), if any.
    fn end_cluster(&mut self) {
        if let Some(c) = &self.cluster {
            if !c.announced {
                // No video frame decided it: the server lets it extend the open fragment.
                self.announce(false);
            }
            self.out.push_back(Piece::ClusterEnd);
            self.cluster = None;
        }
    }

    fn on_event(&mut self, ev: Event) -> anyhow::Result<()> {
        // Anything but an END_OF_FRAGMENT Tags element or a frame ends a cluster the parser
        // already closed.
        let keeps_cluster = match &ev {
            Event::Tags { tags, .. } => has_end_of_fragment(tags),
            Event::Frame(_) | Event::SegmentEnd { .. } => true,
            _ => false,
        };
        if !keeps_cluster && self.cluster.as_ref().is_some_and(|c| c.parser_closed) {
            self.end_cluster();
        }
        match ev {
            Event::EbmlHeader { offset, .. } => {
                let end = element_end(&self.buf, offset, self.buf_start)?;
                self.doc = Some(Doc {
                    ebml: self.slice(offset, end).to_vec(),
                    timecode_scale_ns: mkv::DEFAULT_TIMECODE_SCALE_NS,
                    ..Doc::default()
                });
                self.keep_from = end;
            }
            Event::SegmentStart { data_offset, .. } => self.keep_from = data_offset,
            Event::Info { offset, info } => {
                let end = element_end(&self.buf, offset, self.buf_start)?;
                let bytes = self.slice(offset, end).to_vec();
                let d = self.doc(offset)?;
                d.info = bytes;
                d.timecode_scale_ns = info.timecode_scale_ns;
                d.header = None;
                self.keep_from = end;
            }
            Event::Tracks { offset, tracks } => {
                let end = element_end(&self.buf, offset, self.buf_start)?;
                let bytes = self.slice(offset, end).to_vec();
                let d = self.doc(offset)?;
                d.tracks = Some(bytes);
                d.video_tracks = tracks
                    .iter()
                    .filter(|t| t.kind == TrackKind::Video)
                    .map(|t| t.number)
                    .collect();
                d.header = None;
                self.keep_from = end;
            }
            Event::Tags {
                in_cluster: true, ..
            } => {} // inside a known-size cluster: part of its bytes
            Event::Tags { offset, tags, .. } => {
                let end = element_end(&self.buf, offset, self.buf_start)?;
                if has_end_of_fragment(&tags) {
                    let closes_cluster = self.cluster.as_ref().is_some_and(|c| c.parser_closed);
                    if closes_cluster {
                        let bytes = Bytes::copy_from_slice(self.slice(offset, end));
                        self.out.push_back(Piece::EndOfFragment(bytes));
                        self.cluster.as_mut().expect("checked").emitted_to = end;
                    }
                    // Before any cluster it closes nothing: dropped.
                } else {
                    let untargeted: Vec<Tag> = tags
                        .iter()
                        .filter(|t| t.targets == Targets::default())
                        .cloned()
                        .collect();
                    let bytes = if untargeted.len() == tags.len() {
                        self.slice(offset, end).to_vec()
                    } else if untargeted.is_empty() {
                        Vec::new()
                    } else {
                        let mut w = mkv::Writer::new();
                        w.tags(&untargeted);
                        w.into_bytes()
                    };
                    self.doc(offset)?.pending_tags.extend_from_slice(&bytes);
                }
                self.keep_from = end;
            }
            Event::ClusterStart {
                offset, timecode, ..
            } => {
                let d = self.doc(offset)?;
                if d.tracks.is_none() {
                    bail!("the Cluster at byte {offset} comes before any Tracks element");
                }
                let header = d
                    .header
                    .get_or_insert_with(|| {
                        let mut b = d.ebml.clone();
                        mkv::ebml::write_id(&mut b, mkv::ids::SEGMENT);
                        b.extend_from_slice(&mkv::ebml::UNKNOWN_SIZE_8);
                        b.extend_from_slice(&d.info);
                        b.extend_from_slice(d.tracks.as_deref().unwrap_or_default());
                        Arc::new(StreamHeader {
                            bytes: Bytes::from(b),
                            timecode_scale_ns: d.timecode_scale_ns,
                        })
                    })
                    .clone();
                let prefix = std::mem::take(&mut d.pending_tags);
                self.clusters += 1;
                self.cluster = Some(Cluster {
                    timecode,
                    emitted_to: offset,
                    announced: false,
                    prefix,
                    pace_ns: media_time_ns(i128::from(timecode), header.timecode_scale_ns),
                    parser_closed: false,
                });
            }
            Event::Frame(f) => {
                let Some(d) = &self.doc else { return Ok(()) };
                let is_video = d.video_tracks.contains(&f.track);
                let no_video = d.video_tracks.is_empty();
                let scale = d.timecode_scale_ns;
                let Some(c) = &self.cluster else {
                    return Ok(());
                };
                if !c.announced && (is_video || no_video) {
                    self.announce(no_video || f.keyframe);
                }
                let c = self.cluster.as_ref().expect("checked");
                if c.announced {
                    // Bytes before this block belong to earlier frames: send them at their time.
                    self.emit_data(f.block_offset);
                }
                let c = self.cluster.as_mut().expect("checked");
                let t = media_time_ns(i128::from(c.timecode) + i128::from(f.timecode_rel), scale);
                c.pace_ns = c.pace_ns.max(t);
            }
            Event::ClusterEnd { offset_end } => {
                if let Some(c) = &self.cluster
                    && !c.announced
                {
                    self.announce(false);
                }
                self.emit_data(offset_end);
                if let Some(c) = &mut self.cluster {
                    c.parser_closed = true;
                }
                self.keep_from = offset_end;
            }
            Event::SegmentEnd { .. } => {}
            // `Event` is non_exhaustive; new events carry nothing a re-cut stream needs.
            _ => {}
        }
        Ok(())
    }
}

fn has_end_of_fragment(tags: &[Tag]) -> bool {
    tags.iter()
        .flat_map(|t| &t.simple_tags)
        .any(|s| s.name == AWS_KINESISVIDEO_END_OF_FRAGMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkv::{Block, SizeMode, TrackEntry, Writer};

    /// A cut cluster, reassembled.
    #[derive(Debug, Clone, PartialEq)]
    struct Cut {
        header: Arc<StreamHeader>,
        timecode: u64,
        fragment_start: bool,
        bytes: Vec<u8>,
        eofr: bool,
        paces: Vec<i64>,
    }

    fn cut(input: &[u8], chunk: usize) -> Vec<Cut> {
        let mut c = Cutter::new();
        let mut out = Vec::new();
        let mut open: Option<Cut> = None;
        let mut drain = |c: &mut Cutter, out: &mut Vec<Cut>| {
            while let Some(p) = c.poll() {
                match p {
                    Piece::ClusterStart {
                        header,
                        timecode,
                        fragment_start,
                    } => {
                        assert!(open.is_none(), "ClusterStart inside a cluster");
                        open = Some(Cut {
                            header,
                            timecode,
                            fragment_start,
                            bytes: Vec::new(),
                            eofr: false,
                            paces: Vec::new(),
                        });
                    }
                    Piece::Data { bytes, pace_ns } => {
                        let o = open.as_mut().expect("Data inside a cluster");
                        o.bytes.extend_from_slice(&bytes);
                        o.paces.push(pace_ns);
                    }
                    Piece::EndOfFragment(bytes) => {
                        let o = open.as_mut().expect("EOFR inside a cluster");
                        o.bytes.extend_from_slice(&bytes);
                        o.eofr = true;
                    }
                    Piece::ClusterEnd => {
                        out.push(open.take().expect("ClusterEnd after ClusterStart"))
                    }
                }
            }
        };
        for part in input.chunks(chunk.max(1)) {
            c.push(part).unwrap();
            c.check_invariants();
            drain(&mut c, &mut out);
        }
        c.finish().unwrap();
        drain(&mut c, &mut out);
        out
    }

    fn sample(name: &str) -> Vec<u8> {
        let path = format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn events(data: &[u8]) -> Vec<Event> {
        mkv::parse_all(data, mkv::Parser::builder()).unwrap()
    }

    /// `(cluster timecode, frames)` of every cluster in `data`.
    fn clusters_of(data: &[u8]) -> Vec<(u64, usize)> {
        let mut v: Vec<(u64, usize)> = Vec::new();
        for ev in events(data) {
            match ev {
                Event::ClusterStart { timecode, .. } => v.push((timecode, 0)),
                Event::Frame(_) => v.last_mut().expect("frame in a cluster").1 += 1,
                _ => {}
            }
        }
        v
    }

    /// A resend from cluster `k`: header, clusters k.., END_OF_FRAGMENT.
    fn resend(cuts: &[Cut], k: usize) -> Vec<u8> {
        let mut body = Vec::new();
        let mut last: Option<&Arc<StreamHeader>> = None;
        for c in &cuts[k..] {
            if last.is_none_or(|h| !Arc::ptr_eq(h, &c.header)) {
                body.extend_from_slice(&c.header.bytes);
                last = Some(&c.header);
            }
            body.extend_from_slice(&c.bytes);
        }
        body.extend_from_slice(&end_of_fragment_tags());
        body
    }

    #[test]
    fn ffmpeg_file_cut_into_header_and_cluster_ranges() {
        let input = sample("ffmpeg_h264_aac.mkv");
        let cuts = cut(&input, 64 << 10);
        let original = events(&input);
        let ranges: Vec<(u64, u64)> = original
            .iter()
            .filter_map(|e| match e {
                Event::ClusterStart { offset, .. } => Some(*offset),
                _ => None,
            })
            .zip(original.iter().filter_map(|e| match e {
                Event::ClusterEnd { offset_end } => Some(*offset_end),
                _ => None,
            }))
            .collect();
        assert_eq!(cuts.len(), 4);
        assert_eq!(ranges.len(), 4);
        for (c, (a, b)) in cuts.iter().zip(&ranges) {
            // The file's per-track ENCODER/DURATION tags are dropped: clusters are byte copies.
            assert_eq!(
                c.bytes,
                input[*a as usize..*b as usize],
                "cluster {}",
                c.timecode
            );
            assert!(
                c.fragment_start,
                "ffmpeg starts every cluster with a key frame"
            );
        }
        assert_eq!(
            cuts.iter().map(|c| c.timecode).collect::<Vec<_>>(),
            clusters_of(&input).iter().map(|c| c.0).collect::<Vec<_>>()
        );
        // Header: EBML header (0..40) + unknown-size Segment + Info (213..256) + Tracks (256..471).
        let h = &cuts[0].header.bytes;
        assert_eq!(&h[..40], &input[..40]);
        assert_eq!(
            &h[40..52],
            &[
                0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]
        );
        assert_eq!(&h[52..], &input[213..471]);
        assert_eq!(cuts[0].header.timecode_scale_ns, 1_000_000);
        assert!(cuts.iter().all(|c| Arc::ptr_eq(&c.header, &cuts[0].header)));
    }

    /// Resending from any cluster gives an MKV that the parser accepts, starting at that
    /// cluster, with all later frames and the END_OF_FRAGMENT tag at the end.
    #[test]
    fn resend_from_every_cluster_is_valid_mkv() {
        for name in [
            "ffmpeg_h264_aac.mkv",
            "ffmpeg_h265.mkv",
            "ffmpeg_live_h264.mkv",
            "gstreamer_h264.mkv",
            "kvs_style_h264.mkv",
            "mkvmerge_h264.mkv",
        ] {
            let input = sample(name);
            let want = clusters_of(&input);
            let cuts = cut(&input, 4096);
            assert_eq!(cuts.len(), want.len(), "{name}");
            for k in 0..cuts.len() {
                let body = resend(&cuts, k);
                let got = clusters_of(&body);
                assert_eq!(got, want[k..], "{name} from cluster {k}");
                let evs = events(&body);
                let Some(Event::Tags { tags, .. }) =
                    evs.iter().rev().find(|e| matches!(e, Event::Tags { .. }))
                else {
                    panic!("{name}: no Tags at the end")
                };
                assert!(has_end_of_fragment(tags), "{name}");
                assert!(
                    !evs.iter()
                        .any(|e| matches!(e, Event::SegmentStart { size: Some(_), .. })),
                    "{name}: Segment sizes are rewritten to unknown"
                );
            }
        }
    }

    #[test]
    fn cutting_is_independent_of_chunking() {
        for name in [
            "ffmpeg_h264_aac.mkv",
            "kvs_style_h264.mkv",
            "gstreamer_h264.mkv",
        ] {
            let input = sample(name);
            let whole = cut(&input, input.len());
            for chunk in [1, 7, 100, 4096] {
                let got = cut(&input, chunk);
                assert_eq!(got.len(), whole.len(), "{name} chunk {chunk}");
                for (g, w) in got.iter().zip(&whole) {
                    assert_eq!(
                        (g.timecode, g.fragment_start, g.eofr),
                        (w.timecode, w.fragment_start, w.eofr)
                    );
                    assert_eq!(
                        g.bytes, w.bytes,
                        "{name} chunk {chunk} cluster {}",
                        g.timecode
                    );
                    assert_eq!(g.header, w.header);
                }
            }
        }
    }

    /// The KVS-style sample: metadata Tags go before the next cluster, END_OF_FRAGMENT after
    /// the previous one, and the second EBML document gets its own header.
    #[test]
    fn kvs_style_tags_and_documents() {
        let input = sample("kvs_style_h264.mkv");
        let cuts = cut(&input, 1000);
        let summary: Vec<(u64, bool)> = cuts.iter().map(|c| (c.timecode, c.eofr)).collect();
        assert_eq!(
            summary,
            [
                (1_700_000_000_021, false),
                (1_700_000_001_021, false),
                (1_700_000_002_021, false),
                (1_700_000_003_021, true),
                (1_700_000_003_021, true),
            ]
        );
        // Cluster 3 carries the CAMERA_EVENT tags (32413..32465) in front of its bytes.
        assert_eq!(&cuts[2].bytes[..52], &input[32413..32465]);
        assert_eq!(&cuts[2].bytes[52..], &input[32465..48024]);
        // Cluster 4 ends with its END_OF_FRAGMENT Tags (63677..63726).
        assert_eq!(
            &cuts[3].bytes[cuts[3].bytes.len() - 49..],
            &input[63677..63726]
        );
        assert!(Arc::ptr_eq(&cuts[0].header, &cuts[3].header));
        assert!(!Arc::ptr_eq(&cuts[3].header, &cuts[4].header));
        assert_eq!(&cuts[4].header.bytes[..40], &input[63726..63766]);
    }

    fn tracks(video: bool) -> Vec<TrackEntry> {
        let mut v = Vec::new();
        if video {
            v.push(TrackEntry {
                number: 1,
                uid: 1,
                kind: TrackKind::Video,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                codec_private: None,
                name: None,
                language: None,
                default_duration_ns: None,
                codec_delay_ns: None,
                video: None,
                audio: None,
            });
        }
        v.push(TrackEntry {
            number: 2,
            uid: 2,
            kind: TrackKind::Audio,
            codec_id: "A_AAC".into(),
            codec_private: None,
            name: None,
            language: None,
            default_duration_ns: None,
            codec_delay_ns: None,
            video: None,
            audio: None,
        });
        v
    }

    /// Live layout with unknown sizes; audio before video in a cluster; a cluster whose first
    /// video frame is not a key frame; paces follow frame times.
    #[test]
    fn fragment_roles_and_pacing() {
        let mut w = Writer::new();
        w.ebml_header(&mkv::EbmlHeader::default());
        w.begin_segment(SizeMode::Unknown);
        w.info(&mkv::Info::default());
        w.tracks(&tracks(true));
        let frame = [0u8; 10];
        // (timecode, blocks: (track, rel, key))
        type Blocks = &'static [(u64, i16, bool)];
        let clusters: [(u64, Blocks); 4] = [
            (0, &[(2, 0, true), (1, 0, true), (1, 40, false)]),
            (1000, &[(2, 0, true), (1, 0, false), (1, 40, false)]),
            (2000, &[(1, 0, true), (2, 10, true)]),
            (3000, &[(2, 0, true)]),
        ];
        for (tc, blocks) in clusters {
            w.begin_cluster(tc, SizeMode::Unknown);
            for (track, rel, key) in blocks {
                w.block(&Block::simple(*track, *rel, *key, &frame)).unwrap();
            }
        }
        let input = w.into_bytes();
        let cuts = cut(&input, 3);
        let roles: Vec<(u64, bool)> = cuts
            .iter()
            .map(|c| (c.timecode, c.fragment_start))
            .collect();
        assert_eq!(
            roles,
            [(0, true), (1000, false), (2000, true), (3000, false)]
        );
        // Frame-level paces, non-decreasing, in ns.
        let ms = 1_000_000;
        assert_eq!(*cuts[0].paces.last().unwrap(), 40 * ms);
        assert!(cuts[0].paces.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(*cuts[2].paces.last().unwrap(), 2010 * ms);

        // Without video every cluster opens a fragment.
        let mut w = Writer::new();
        w.ebml_header(&mkv::EbmlHeader::default());
        w.begin_segment(SizeMode::Unknown);
        w.info(&mkv::Info::default());
        w.tracks(&tracks(false));
        for tc in [0, 500] {
            w.begin_cluster(tc, SizeMode::Unknown);
            w.block(&Block::simple(2, 0, false, &frame)).unwrap();
        }
        let cuts = cut(&w.into_bytes(), 5);
        assert!(cuts.iter().all(|c| c.fragment_start));
    }

    #[test]
    fn errors_say_where() {
        let input = sample("ffmpeg_h264_aac.mkv");
        let mut c = Cutter::new();
        c.push(&input[..1000]).unwrap();
        let e = c.finish().unwrap_err();
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");

        let mut c = Cutter::new();
        let e = c.push(b"not matroska at all").unwrap_err();
        assert!(format!("{e:#}").contains("not valid MKV"), "{e:#}");
    }

    #[test]
    fn end_of_fragment_tags_parse() {
        let mut w = Writer::new();
        w.ebml_header(&mkv::EbmlHeader::default());
        w.begin_segment(SizeMode::Unknown);
        let mut body = w.into_bytes();
        body.extend_from_slice(&end_of_fragment_tags());
        let evs = events(&body);
        let Some(Event::Tags { tags, .. }) = evs.iter().find(|e| matches!(e, Event::Tags { .. }))
        else {
            panic!("no Tags")
        };
        assert_eq!(
            tags[0].simple_tags[0].name,
            AWS_KINESISVIDEO_END_OF_FRAGMENT
        );
        assert_eq!(tags[0].simple_tags[0].as_str(), Some(""));
    }
}
