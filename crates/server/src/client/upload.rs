//! The resumable upload (sans-IO): clusters buffered until the server ACKs them `PERSISTED`,
//! what to send next on the current connection, and where a new connection resumes — the
//! behaviour of the KVS producer SDK (kvssink-behaviour.md §6): after a dropped connection or an
//! `ERROR` ACK, a new PutMedia starts with a fresh stream header and re-sends from the oldest
//! fragment without a `PERSISTED` ACK.
//!
//! Drive loop (the shell, `put_media.rs`):
//!
//! ```text
//! input bytes ─▶ push_input / finish_input
//! connect     ─▶ start_connection, then while next_pace() is Some: wait for the pace, take_next()
//! ACK         ─▶ on_ack (PERSISTED frees buffer; ERROR: end the connection, start a new one)
//! is_complete() once the input ended and every cluster is PERSISTED: end the body.
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::client::ack::{Ack, AckKind, error_id_is_fatal};
use crate::client::cutter::{Cutter, Piece, StreamHeader, end_of_fragment_tags};

/// Without `--realtime`, consecutive chunks of a cluster go out as one HTTP chunk up to this size.
const COALESCE_BYTES: usize = 64 << 10;

#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    pace_ns: i64,
    /// An END_OF_FRAGMENT Tags element.
    eofr: bool,
}

#[derive(Debug)]
struct ClusterBuf {
    seq: u64,
    header: Arc<StreamHeader>,
    timecode: u64,
    fragment_start: bool,
    chunks: Vec<Chunk>,
    bytes: usize,
    /// All its bytes are here (`ClusterEnd` seen).
    complete: bool,
    persisted: bool,
    received: bool,
    /// Chunks sent on the current connection.
    sent_chunks: usize,
    ever_sent: bool,
}

#[derive(Debug)]
struct Cursor {
    /// Header sent last on this connection.
    header: Option<Arc<StreamHeader>>,
    /// Cluster being sent (`seq`), and its next chunk.
    seq: u64,
    chunk: usize,
    /// Anything sent on this connection.
    started: bool,
    /// The last bytes sent were an END_OF_FRAGMENT Tags element.
    ends_with_eofr: bool,
    eofr_sent: bool,
}

/// Counters for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) input_bytes: u64,
    /// Body bytes written, re-sends included.
    pub(crate) sent_bytes: u64,
    pub(crate) clusters: u64,
    /// Fragments sent at least once.
    pub(crate) fragments_sent: u64,
    pub(crate) fragments_persisted: u64,
    pub(crate) fragments_received: u64,
    pub(crate) error_acks: u64,
}

/// What an ACK means for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckEffect {
    /// Nothing to do (BUFFERING, RECEIVED, IDLE, or an ACK for nothing buffered).
    None,
    /// A fragment is stored; the buffer shrank.
    Persisted,
    /// End this connection. `fatal`: re-sending cannot help (see `error_id_is_fatal`).
    Error { error_id: u32, fatal: bool },
}

/// What goes next on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Header { idx: usize },
    Chunks { idx: usize, from: usize },
    EndOfFragment,
}

/// Resumable upload state. See the module docs.
#[derive(Debug)]
pub(crate) struct Upload {
    cutter: Cutter,
    /// Not yet released clusters, oldest first; `seq`s are consecutive.
    clusters: VecDeque<ClusterBuf>,
    next_seq: u64,
    buffered: usize,
    max_buffer: usize,
    input_done: bool,
    cursor: Option<Cursor>,
    coalesce: bool,
    eofr: Bytes,
    /// `(Timecode, TimecodeScale ns)` of the first cluster of the input.
    first_cluster: Option<(u64, u64)>,
    stats: Stats,
}

impl Upload {
    /// `max_buffer`: bytes of unacknowledged clusters after which input pauses (see
    /// [`Upload::input_paused`]). `coalesce`: merge chunks into larger HTTP chunks (off when
    /// pacing frame by frame).
    pub(crate) fn new(max_buffer: usize, coalesce: bool) -> Self {
        Upload {
            cutter: Cutter::new(),
            clusters: VecDeque::new(),
            next_seq: 0,
            buffered: 0,
            max_buffer,
            input_done: false,
            cursor: None,
            coalesce,
            eofr: end_of_fragment_tags(),
            first_cluster: None,
            stats: Stats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes of clusters held for a possible re-send.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// `(Timecode, TimecodeScale ns)` of the first cluster, once read.
    pub(crate) fn first_cluster(&self) -> Option<(u64, u64)> {
        self.first_cluster
    }

    pub(crate) fn input_done(&self) -> bool {
        self.input_done
    }

    /// Feeds input bytes.
    pub(crate) fn push_input(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.stats.input_bytes += data.len() as u64;
        self.cutter.push(data)?;
        self.drain_cutter();
        Ok(())
    }

    /// End of input.
    pub(crate) fn finish_input(&mut self) -> anyhow::Result<()> {
        self.cutter.finish()?;
        self.drain_cutter();
        self.input_done = true;
        if self.cutter.clusters() == 0 {
            anyhow::bail!(
                "the input has no Cluster: nothing to upload ({} bytes read)",
                self.stats.input_bytes
            );
        }
        Ok(())
    }

    fn drain_cutter(&mut self) {
        while let Some(p) = self.cutter.poll() {
            match p {
                Piece::ClusterStart {
                    header,
                    timecode,
                    fragment_start,
                } => {
                    self.first_cluster
                        .get_or_insert((timecode, header.timecode_scale_ns));
                    self.stats.clusters += 1;
                    self.clusters.push_back(ClusterBuf {
                        seq: self.next_seq,
                        header,
                        timecode,
                        fragment_start,
                        chunks: Vec::new(),
                        bytes: 0,
                        complete: false,
                        persisted: false,
                        received: false,
                        sent_chunks: 0,
                        ever_sent: false,
                    });
                    self.next_seq += 1;
                }
                Piece::Data { bytes, pace_ns } => self.add_chunk(bytes, pace_ns, false),
                Piece::EndOfFragment(bytes) => {
                    let pace = self
                        .clusters
                        .back()
                        .and_then(|c| c.chunks.last())
                        .map_or(0, |c| c.pace_ns);
                    self.add_chunk(bytes, pace, true);
                }
                Piece::ClusterEnd => {
                    let c = self
                        .clusters
                        .back_mut()
                        .expect("ClusterEnd after ClusterStart");
                    c.complete = true;
                    self.release();
                }
            }
        }
    }

    fn add_chunk(&mut self, bytes: Bytes, pace_ns: i64, eofr: bool) {
        let c = self
            .clusters
            .back_mut()
            .expect("cluster data after ClusterStart");
        c.bytes += bytes.len();
        self.buffered += bytes.len();
        c.chunks.push(Chunk {
            bytes,
            pace_ns,
            eofr,
        });
    }

    /// True when reading more input should wait: the buffer is full and it holds at least two
    /// fragments, so the oldest one is closed and its ACK can come. (A single fragment larger
    /// than the buffer is read whole: at most one fragment, ≤ 50 MB at KVS, on top.)
    pub(crate) fn input_paused(&self) -> bool {
        !self.input_done
            && self.buffered >= self.max_buffer
            && self.clusters.iter().filter(|c| c.fragment_start).count() >= 2
    }

    /// A new connection: it starts with a stream header and the oldest cluster not PERSISTED.
    pub(crate) fn start_connection(&mut self) {
        for c in &mut self.clusters {
            c.sent_chunks = 0;
        }
        let seq = self.clusters.front().map_or(self.next_seq, |c| c.seq);
        self.cursor = Some(Cursor {
            header: None,
            seq,
            chunk: 0,
            started: false,
            ends_with_eofr: false,
            eofr_sent: false,
        });
    }

    /// The connection is gone.
    pub(crate) fn end_connection(&mut self) {
        self.cursor = None;
        for c in &mut self.clusters {
            c.sent_chunks = 0;
        }
    }

    /// Where the cursor really is: past finished and already-persisted clusters.
    fn position(&self) -> Option<(u64, usize)> {
        let cur = self.cursor.as_ref()?;
        let front = self.clusters.front().map_or(self.next_seq, |c| c.seq);
        let (mut seq, mut chunk) = if cur.seq < front {
            (front, 0)
        } else {
            (cur.seq, cur.chunk)
        };
        while let Some(c) = self.clusters.get((seq - front) as usize) {
            let finished = c.complete && chunk >= c.chunks.len();
            if (chunk == 0 && c.persisted) || finished {
                seq += 1;
                chunk = 0;
            } else {
                break;
            }
        }
        Some((seq, chunk))
    }

    fn next(&self) -> Option<Next> {
        let cur = self.cursor.as_ref()?;
        let (seq, chunk) = self.position()?;
        let front = self.clusters.front().map_or(self.next_seq, |c| c.seq);
        let idx = (seq - front) as usize;
        match self.clusters.get(idx) {
            Some(c) if chunk < c.chunks.len() => {
                if cur
                    .header
                    .as_ref()
                    .is_none_or(|h| !Arc::ptr_eq(h, &c.header))
                {
                    Some(Next::Header { idx })
                } else {
                    Some(Next::Chunks { idx, from: chunk })
                }
            }
            Some(_) => None, // waiting for more of this cluster
            None if self.input_done && cur.started && !cur.eofr_sent && !cur.ends_with_eofr => {
                Some(Next::EndOfFragment)
            }
            None => None,
        }
    }

    /// The media time (ns) the next bytes must wait for: `Some(None)` to send them at once,
    /// `None` when there is nothing to send.
    pub(crate) fn next_pace(&self) -> Option<Option<i64>> {
        Some(match self.next()? {
            Next::Header { .. } | Next::EndOfFragment => None,
            Next::Chunks { idx, from } => Some(self.clusters[idx].chunks[from].pace_ns),
        })
    }

    /// The next bytes for the body, `None` when there is nothing to send now.
    pub(crate) fn take_next(&mut self) -> Option<Bytes> {
        let next = self.next()?;
        let (seq, chunk) = self.position().expect("next() saw a cursor");
        let front = self.clusters.front().map_or(self.next_seq, |c| c.seq);
        let coalesce = self.coalesce;
        let cur = self.cursor.as_mut().expect("next() saw a cursor");
        let out = match next {
            Next::Header { idx } => {
                let h = self.clusters[idx].header.clone();
                let bytes = h.bytes.clone();
                cur.header = Some(h);
                cur.seq = seq;
                cur.chunk = chunk;
                bytes
            }
            Next::Chunks { idx, from } => {
                debug_assert_eq!(idx as u64, seq - front);
                let c = &mut self.clusters[idx];
                let mut to = from + 1;
                if coalesce {
                    let mut size = c.chunks[from].bytes.len();
                    while to < c.chunks.len() && size + c.chunks[to].bytes.len() <= COALESCE_BYTES {
                        size += c.chunks[to].bytes.len();
                        to += 1;
                    }
                }
                let bytes = if to == from + 1 {
                    c.chunks[from].bytes.clone()
                } else {
                    let mut b = BytesMut::new();
                    for ch in &c.chunks[from..to] {
                        b.extend_from_slice(&ch.bytes);
                    }
                    b.freeze()
                };
                cur.ends_with_eofr = c.chunks[to - 1].eofr;
                c.sent_chunks = to;
                if !c.ever_sent {
                    c.ever_sent = true;
                    if c.fragment_start || c.seq == 0 {
                        self.stats.fragments_sent += 1;
                    }
                }
                cur.seq = seq;
                cur.chunk = to;
                bytes
            }
            Next::EndOfFragment => {
                cur.eofr_sent = true;
                cur.ends_with_eofr = true;
                self.eofr.clone()
            }
        };
        cur.started = true;
        self.stats.sent_bytes += out.len() as u64;
        Some(out)
    }

    /// Everything readable so far is on the wire (or PERSISTED), END_OF_FRAGMENT included once
    /// the input ended.
    #[cfg(test)]
    pub(crate) fn all_sent(&self) -> bool {
        self.cursor.is_some() && self.next().is_none() && self.input_done
    }

    /// Input ended and every cluster is PERSISTED.
    pub(crate) fn is_complete(&self) -> bool {
        self.input_done && self.clusters.is_empty()
    }

    /// Some cluster went out on this connection and waits for its PERSISTED ACK.
    pub(crate) fn awaiting_acks(&self) -> bool {
        self.clusters
            .iter()
            .any(|c| c.sent_chunks > 0 && !c.persisted)
    }

    /// Fragments ACKed RECEIVED but not PERSISTED (a stream without retention).
    pub(crate) fn received_not_persisted(&self) -> usize {
        self.clusters
            .iter()
            .filter(|c| c.received && !c.persisted)
            .count()
    }

    /// Timecode of the oldest cluster not PERSISTED, where a new connection resumes.
    pub(crate) fn resume_timecode(&self) -> Option<u64> {
        self.clusters
            .iter()
            .find(|c| !c.persisted)
            .map(|c| c.timecode)
    }

    /// Applies an ACK.
    pub(crate) fn on_ack(&mut self, ack: &Ack) -> AckEffect {
        match &ack.kind {
            AckKind::Persisted => {
                let Some(tc) = ack.fragment_timecode else {
                    return AckEffect::None;
                };
                let Some(idx) = self
                    .clusters
                    .iter()
                    .position(|c| !c.persisted && c.sent_chunks > 0 && c.timecode == tc)
                else {
                    return AckEffect::None;
                };
                self.clusters[idx].persisted = true;
                // The fragment also holds the following clusters that did not open one.
                for c in self.clusters.iter_mut().skip(idx + 1) {
                    if c.fragment_start
                        || c.persisted
                        || c.sent_chunks == 0
                        || c.sent_chunks < c.chunks.len()
                    {
                        break;
                    }
                    c.persisted = true;
                }
                self.stats.fragments_persisted += 1;
                self.release();
                AckEffect::Persisted
            }
            AckKind::Received => {
                if let Some(tc) = ack.fragment_timecode
                    && let Some(c) = self
                        .clusters
                        .iter_mut()
                        .find(|c| !c.received && c.sent_chunks > 0 && c.timecode == tc)
                {
                    c.received = true;
                    self.stats.fragments_received += 1;
                }
                AckEffect::None
            }
            AckKind::Error => {
                self.stats.error_acks += 1;
                let error_id = ack.error_id.unwrap_or(0);
                AckEffect::Error {
                    error_id,
                    fatal: error_id_is_fatal(error_id),
                }
            }
            AckKind::Buffering | AckKind::Idle | AckKind::Other(_) => AckEffect::None,
        }
    }

    /// Drops PERSISTED, complete clusters from the front.
    fn release(&mut self) {
        while let Some(c) = self.clusters.front() {
            let being_sent = self
                .cursor
                .as_ref()
                .is_some_and(|cur| cur.seq == c.seq && cur.chunk > 0 && cur.chunk < c.chunks.len());
            if !(c.persisted && c.complete) || being_sent {
                break;
            }
            self.buffered -= c.bytes;
            self.clusters.pop_front();
        }
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let sum: usize = self.clusters.iter().map(|c| c.bytes).sum();
        assert_eq!(sum, self.buffered);
        for (i, c) in self.clusters.iter().enumerate() {
            assert_eq!(c.seq, self.clusters[0].seq + i as u64, "consecutive seqs");
            assert_eq!(
                c.bytes,
                c.chunks.iter().map(|ch| ch.bytes.len()).sum::<usize>()
            );
            assert!(c.sent_chunks <= c.chunks.len());
            if i + 1 < self.clusters.len() {
                assert!(c.complete, "only the newest cluster may be incomplete");
            }
        }
        if let Some(back) = self.clusters.back() {
            assert_eq!(back.seq + 1, self.next_seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn persisted(tc: u64) -> Ack {
        Ack {
            kind: AckKind::Persisted,
            fragment_timecode: Some(tc),
            fragment_number: Some("1".into()),
            error_id: None,
        }
    }

    fn send_all(u: &mut Upload) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(b) = u.take_next() {
            body.extend_from_slice(&b);
            u.check_invariants();
        }
        body
    }

    fn cluster_timecodes(body: &[u8]) -> Vec<u64> {
        mkv::parse_all(body, mkv::Parser::builder())
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                mkv::Event::ClusterStart { timecode, .. } => Some(timecode),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn whole_upload_then_acks_release_everything() {
        let input = sample("ffmpeg_h264_aac.mkv");
        let mut u = Upload::new(usize::MAX, true);
        u.push_input(&input).unwrap();
        u.finish_input().unwrap();
        u.start_connection();
        let body = send_all(&mut u);
        let tcs = cluster_timecodes(&body);
        assert_eq!(tcs.len(), 4);
        assert!(u.all_sent());
        assert!(!u.is_complete());
        for tc in &tcs {
            assert_eq!(u.on_ack(&persisted(*tc)), AckEffect::Persisted);
            u.check_invariants();
        }
        assert!(u.is_complete());
        assert_eq!(u.buffered_bytes(), 0);
        let s = u.stats();
        assert_eq!(
            (s.fragments_sent, s.fragments_persisted, s.clusters),
            (4, 4, 4)
        );
        assert_eq!(s.input_bytes, input.len() as u64);
        // An ACK for something no longer buffered changes nothing.
        assert_eq!(u.on_ack(&persisted(tcs[0])), AckEffect::None);
    }

    #[test]
    fn resume_starts_with_a_header_and_the_oldest_unpersisted_cluster() {
        let input = sample("ffmpeg_h264_aac.mkv");
        let mut u = Upload::new(usize::MAX, false);
        u.push_input(&input).unwrap();
        u.finish_input().unwrap();
        u.start_connection();
        let first = send_all(&mut u);
        let tcs = cluster_timecodes(&first);
        // Clusters 0 and 2 persisted, 1 and 3 not (an ERROR for 1, say).
        u.on_ack(&persisted(tcs[0]));
        u.on_ack(&persisted(tcs[2]));
        assert_eq!(u.resume_timecode(), Some(tcs[1]));
        u.end_connection();
        u.start_connection();
        let second = send_all(&mut u);
        assert_eq!(
            cluster_timecodes(&second),
            [tcs[1], tcs[3]],
            "persisted clusters are skipped"
        );
        assert!(
            second.starts_with(&input[..40]),
            "a fresh EBML header first"
        );
        u.on_ack(&persisted(tcs[1]));
        assert!(!u.is_complete());
        u.on_ack(&persisted(tcs[3]));
        assert!(u.is_complete());
        u.check_invariants();
    }

    /// Clusters that do not open a fragment are PERSISTED with the fragment they extend, and a
    /// connection that drops mid-cluster resends that cluster whole.
    #[test]
    fn non_key_clusters_ride_with_their_fragment() {
        use mkv::{Block, SizeMode, TrackEntry, TrackKind, Writer};
        let mut w = Writer::new();
        w.ebml_header(&mkv::EbmlHeader::default());
        w.begin_segment(SizeMode::Unknown);
        w.info(&mkv::Info::default());
        w.tracks(&[TrackEntry {
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
        }]);
        let f = [7u8; 100];
        for (tc, key) in [(0, true), (1000, false), (2000, true), (3000, false)] {
            w.begin_cluster(tc, SizeMode::Unknown);
            w.block(&Block::simple(1, 0, key, &f)).unwrap();
            w.block(&Block::simple(1, 40, false, &f)).unwrap();
        }
        let input = w.into_bytes();
        let mut u = Upload::new(usize::MAX, false);
        u.push_input(&input).unwrap();
        u.finish_input().unwrap();
        u.start_connection();
        let _ = send_all(&mut u);
        assert_eq!(u.stats().fragments_sent, 2);
        u.on_ack(&persisted(0));
        assert_eq!(
            u.resume_timecode(),
            Some(2000),
            "cluster 1000 went with fragment 0"
        );
        u.end_connection();

        // Second connection: drop after part of cluster 2000 went out.
        u.start_connection();
        let header = u.take_next().unwrap();
        assert!(header.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        let _part = u.take_next().unwrap();
        u.end_connection();
        u.start_connection();
        let body = send_all(&mut u);
        assert_eq!(cluster_timecodes(&body), [2000, 3000]);
        u.on_ack(&persisted(2000));
        assert!(u.is_complete());
    }

    #[test]
    fn end_of_fragment_is_sent_once_unless_the_input_has_one() {
        let eofr = end_of_fragment_tags();
        for (name, input_has_eofr) in [("ffmpeg_h264_aac.mkv", false), ("kvs_style_h264.mkv", true)]
        {
            let input = sample(name);
            let mut u = Upload::new(usize::MAX, true);
            u.push_input(&input).unwrap();
            u.finish_input().unwrap();
            u.start_connection();
            let body = send_all(&mut u);
            let count = body.windows(eofr.len()).filter(|w| *w == &eofr[..]).count();
            // kvs_style has two EOFR tags of its own and needs none appended.
            assert_eq!(count, if input_has_eofr { 2 } else { 1 }, "{name}");
            assert!(body.ends_with(&eofr), "{name}");
        }
    }

    #[test]
    fn input_pauses_when_the_buffer_is_full() {
        let input = sample("ffmpeg_h264_aac.mkv");
        let mut u = Upload::new(1, true);
        let mut offset = 0;
        while !u.input_paused() {
            let end = (offset + 1000).min(input.len());
            u.push_input(&input[offset..end]).unwrap();
            offset = end;
            u.check_invariants();
        }
        // Paused as soon as a second fragment began: the first one can be closed and ACKed.
        assert!(offset < input.len(), "paused before the end");
        assert_eq!(u.stats().clusters, 2);
        u.start_connection();
        let _ = send_all(&mut u);
        let first = u.resume_timecode().unwrap();
        u.on_ack(&persisted(first));
        assert!(!u.input_paused(), "one fragment left: reading goes on");
        u.check_invariants();
    }

    #[test]
    fn error_acks() {
        let mut u = Upload::new(usize::MAX, true);
        let err = |id| Ack {
            kind: AckKind::Error,
            fragment_timecode: None,
            fragment_number: None,
            error_id: Some(id),
        };
        assert_eq!(
            u.on_ack(&err(4002)),
            AckEffect::Error {
                error_id: 4002,
                fatal: false
            }
        );
        assert_eq!(
            u.on_ack(&err(4008)),
            AckEffect::Error {
                error_id: 4008,
                fatal: true
            }
        );
        assert_eq!(u.stats().error_acks, 2);
    }
}
