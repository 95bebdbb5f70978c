//! The PutMedia session: MKV events in, fragments and ACKs out. The crate docs give the drive
//! loop; DESIGN.md gives the rules and why.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use kvs_core::FragmentNumber;
use mkv::{Event, Frame, TrackEntry, TrackKind};
use store::{NewFragment, TrackInfo, TrackSet};

use crate::ack::Ack;
use crate::config::{SessionConfig, TimecodeType};
use crate::error::Error;
use crate::fragment::{Limits, OpenFragment, ticks_to_ms};
use crate::tags::{self, TagAcc};

/// How many `(producer_ms, number)` pairs a session remembers for replay de-duplication,
/// besides [`SessionConfig::recent`]: more than 1 h of one fragment per second, far beyond
/// kvssink's 120 s replay buffer, for about 200 kB.
pub const MAX_REMEMBERED: usize = 4096;

/// What [`Session::poll`] yields, in causal order.
#[derive(Debug, Clone)]
pub enum Output {
    /// An ACK to send now: `BUFFERING` (a fragment's first frame arrived), `RECEIVED` (it is
    /// complete; always followed by its `Fragment` or `Duplicate`) or `ERROR` (always preceded
    /// by the `Error` that explains it).
    Ack(Ack),
    /// A complete fragment to persist. The shell stores it, then sends
    /// [`Ack::persisted`] with `fragment_timecode` and its number, or `ERROR` 5001 (and calls
    /// [`Session::persist_failed`]).
    Fragment(CompletedFragment),
    /// A replay of an already stored fragment: the shell sends [`Ack::persisted`] with this
    /// number and timecode and stores nothing.
    Duplicate {
        /// The stored fragment's number.
        number: FragmentNumber,
        /// The replayed cluster's Timecode, as sent.
        fragment_timecode: u64,
    },
    /// Why the next `ERROR` ACK is sent, for logs and metrics; not sent on the wire.
    Error(Error),
    /// The last output of every session. `Some(id)` after a stream-level failure (its `ERROR`
    /// ACK was already emitted), `None` after [`Session::finish`]. The shell sends the
    /// PERSISTED/ERROR ACKs it still owes for fragments being stored, then ends the response.
    End {
        /// The ErrorId of the failure, if any.
        error_id: Option<u32>,
    },
}

/// A fragment ready to be stored.
#[derive(Debug, Clone)]
pub struct CompletedFragment {
    /// What the store persists; `media` is the concatenated frame payloads.
    pub fragment: NewFragment,
    /// The opening cluster's Timecode as sent, for the PERSISTED ACK (equal to
    /// `fragment.cluster_timecode`).
    pub fragment_timecode: u64,
}

/// Counters for logs and metrics. Every parsed frame ends up in exactly one of
/// `stored_frames`, `dropped_frames`, `duplicate_frames` — or is still in the open fragment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Body bytes pushed.
    pub bytes: u64,
    /// Frames parsed.
    pub frames: u64,
    /// Fragments emitted as [`Output::Fragment`].
    pub fragments: u64,
    /// Fragments recognised as replays ([`Output::Duplicate`]).
    pub duplicates: u64,
    /// Frames in emitted fragments.
    pub stored_frames: u64,
    /// Frames not stored: before the first key frame, after an END_OF_FRAGMENT, or in a
    /// rejected fragment.
    pub dropped_frames: u64,
    /// Frames of replayed fragments.
    pub duplicate_frames: u64,
    /// `ERROR` ACKs emitted.
    pub errors: u64,
}

/// The current MKV document's Info and Tracks.
#[derive(Debug)]
struct Doc {
    timecode_scale_ns: u64,
    tracks: Option<Arc<TrackSet>>,
    has_video: bool,
}

impl Default for Doc {
    fn default() -> Self {
        Doc {
            timecode_scale_ns: mkv::DEFAULT_TIMECODE_SCALE_NS,
            tracks: None,
            has_video: false,
        }
    }
}

impl Doc {
    /// The tracks fragments of this document share (an empty set before any `Tracks`, so that
    /// every frame is on an unknown track: 4010).
    fn track_set(&self) -> Arc<TrackSet> {
        self.tracks.clone().unwrap_or_else(|| {
            Arc::new(TrackSet {
                timecode_scale_ns: self.timecode_scale_ns,
                tracks: Vec::new(),
            })
        })
    }

    fn is_video(&self, track: u64) -> Option<bool> {
        let t = self
            .tracks
            .as_ref()?
            .tracks
            .iter()
            .find(|t| t.number == track)?;
        Some(t.track_type == TrackKind::Video.track_type())
    }
}

/// Producer timestamps of stored fragments → their numbers (replay de-duplication). FIFO
/// eviction past `cap`.
#[derive(Debug)]
struct Known {
    by_ms: HashMap<i64, FragmentNumber>,
    order: VecDeque<i64>,
    cap: usize,
}

impl Known {
    fn new(recent: Vec<(i64, FragmentNumber)>) -> Self {
        let mut k = Known {
            by_ms: HashMap::new(),
            order: VecDeque::new(),
            cap: recent.len().max(MAX_REMEMBERED),
        };
        for (ms, n) in recent {
            k.insert(ms, n);
        }
        k
    }

    fn get(&self, producer_ms: i64) -> Option<FragmentNumber> {
        self.by_ms.get(&producer_ms).copied()
    }

    fn insert(&mut self, producer_ms: i64, number: FragmentNumber) {
        if self.by_ms.insert(producer_ms, number).is_none() {
            self.order.push_back(producer_ms);
        }
        while self.order.len() > self.cap {
            let old = self.order.pop_front().expect("longer than cap");
            self.by_ms.remove(&old);
        }
    }

    fn forget(&mut self, number: FragmentNumber) {
        let Known { by_ms, order, .. } = self;
        by_ms.retain(|_, n| *n != number);
        order.retain(|ms| by_ms.contains_key(ms));
    }
}

/// The opening cluster of the previous fragment of this document, for 4004.
#[derive(Debug, Clone, Copy)]
struct Previous {
    /// Timecode × TimecodeScale: comparable across documents with different scales.
    start_ns: u128,
    timecode: u64,
}

/// The cluster being read.
#[derive(Debug)]
struct Cluster {
    timecode: u64,
    role: Role,
}

#[derive(Debug)]
enum Role {
    /// A document with video: the cluster opens a fragment iff its first video frame is a key
    /// frame. Until that frame, other frames are held.
    Undecided(Box<Held>),
    /// A document without video: the cluster opens a fragment at its first frame.
    OpensOnFirstFrame,
    /// Frames go to the current fragment.
    Member,
}

/// What arrived in an undecided cluster before its first video frame.
#[derive(Debug, Default)]
struct Held {
    frames: Vec<Frame>,
    bytes: u64,
    first_ms: Option<i64>,
    tags: TagAcc,
    violation: Option<HeldViolation>,
    /// The held frames passed `max_fragment_bytes` and were dropped.
    oversize: bool,
}

#[derive(Debug, Clone, Copy)]
enum HeldViolation {
    UnknownTrack { track: u64, offset: u64 },
    TooLarge,
}

impl HeldViolation {
    fn into_error(self, fragment_timecode: u64, limits: &Limits) -> Error {
        match self {
            HeldViolation::UnknownTrack { track, offset } => Error::UnknownTrack {
                fragment_timecode,
                track,
                offset,
            },
            HeldViolation::TooLarge => Error::FragmentTooLarge {
                fragment_timecode,
                max_bytes: limits.max_fragment_bytes,
            },
        }
    }
}

/// The fragment frames are going to.
#[derive(Debug, Default)]
enum Current {
    /// None: frames are dropped (before the first key frame; after END_OF_FRAGMENT).
    #[default]
    None,
    Open(Box<OpenFragment>),
    /// A replay: frames are counted, not kept.
    Duplicate {
        number: FragmentNumber,
        timecode: u64,
    },
    /// Rejected with an ERROR ACK: frames are dropped until the next fragment opens.
    Dropped,
}

/// One PutMedia request body. See the crate docs for the drive loop.
#[derive(Debug)]
pub struct Session {
    stream_arn: String,
    timecode_type: TimecodeType,
    producer_start_ms: Option<i64>,
    limits: Limits,
    parser: mkv::Parser,
    out: VecDeque<Output>,
    /// `End` was emitted; input is ignored.
    ended: bool,
    doc: Doc,
    /// Segment-level producer tags, for the next fragment that opens.
    pending_tags: TagAcc,
    cluster: Option<Cluster>,
    current: Current,
    previous: Option<Previous>,
    /// The greatest number known to be taken (configured or assigned here).
    last_number: Option<FragmentNumber>,
    known: Known,
    /// RELATIVE mode without `x-amzn-producer-start-timestamp`: the first fragment's
    /// server time.
    relative_base_ms: Option<i64>,
    stats: SessionStats,
}

impl Session {
    /// A session for one PutMedia request.
    pub fn new(cfg: SessionConfig) -> Self {
        let SessionConfig {
            stream_arn,
            timecode_type,
            producer_start_ms,
            max_fragment_bytes,
            max_fragment_duration_ms,
            max_tracks,
            max_tags_per_fragment,
            max_element_size,
            last_number,
            recent,
        } = cfg;
        Session {
            stream_arn,
            timecode_type,
            producer_start_ms,
            limits: Limits {
                max_fragment_bytes: max_fragment_bytes.min(u64::from(u32::MAX)),
                max_fragment_duration_ms,
                max_tracks,
                max_tags: max_tags_per_fragment,
            },
            parser: mkv::Parser::builder()
                .max_element_size(max_element_size)
                .build(),
            out: VecDeque::new(),
            ended: false,
            doc: Doc::default(),
            pending_tags: TagAcc::default(),
            cluster: None,
            current: Current::None,
            previous: None,
            last_number,
            known: Known::new(recent),
            relative_base_ms: None,
            stats: SessionStats::default(),
        }
    }

    /// Feeds body bytes that arrived at server time `now_ms` (epoch ms). Any split is fine.
    /// Ignored after [`Output::End`].
    pub fn push(&mut self, bytes: &[u8], now_ms: i64) {
        if self.ended {
            return;
        }
        self.stats.bytes += bytes.len() as u64;
        self.parser.push(bytes);
        self.drain_parser(now_ms);
    }

    /// The request body ended: completes the open fragment (or fails with 4006 if the body
    /// stopped inside an element) and emits [`Output::End`]. Later calls do nothing.
    pub fn finish(&mut self, now_ms: i64) {
        if self.ended {
            return;
        }
        // A truncation error is kept by the parser and returned by `poll` after the events
        // before it, so `drain_parser` reports it in order.
        let _ = self.parser.finish();
        self.drain_parser(now_ms);
        if !self.ended {
            self.end_cluster();
            self.complete();
            self.end(None);
        }
    }

    /// The next output; call until `None` after every `push` and `finish`.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The store failed to persist fragment `number` (the shell sent ERROR 5001): a replay of
    /// it must be stored again, not acknowledged as a duplicate.
    pub fn persist_failed(&mut self, number: FragmentNumber) {
        self.known.forget(number);
    }

    /// True once [`Output::End`] was emitted.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Panics if an internal invariant does not hold. For tests and fuzz targets, after every
    /// `push`/`finish`/`poll`.
    pub fn check_invariants(&self) {
        self.parser.check_invariants();
        let l = &self.limits;
        let (mut open_frames, mut open_bytes) = (0, 0);
        if let Current::Open(f) = &self.current {
            f.check_invariants(l);
            assert!(
                self.last_number.is_some_and(|n| n >= f.number),
                "open fragment number above last_number"
            );
            open_frames = f.frames.len() as u64;
            open_bytes = f.media.len() as u64;
        }
        let mut held_frames = 0;
        if let Some(Cluster {
            role: Role::Undecided(h),
            ..
        }) = &self.cluster
        {
            assert!(
                self.doc.has_video,
                "undecided cluster in a document without video"
            );
            let sum: u64 = h.frames.iter().map(|f| f.payload.len() as u64).sum();
            assert_eq!(h.bytes, sum, "held byte count");
            assert!(
                h.bytes + open_bytes <= l.max_fragment_bytes,
                "held {} + open {} bytes over {}",
                h.bytes,
                open_bytes,
                l.max_fragment_bytes
            );
            if h.oversize {
                assert!(h.frames.is_empty(), "frames held after overflow");
            }
            h.tags.check_invariants(l.max_tags);
            held_frames = h.frames.len() as u64;
        }
        self.pending_tags.check_invariants(l.max_tags);
        let s = &self.stats;
        assert_eq!(
            s.frames,
            s.stored_frames + s.dropped_frames + s.duplicate_frames + held_frames + open_frames,
            "frame accounting: {s:?}, held {held_frames}, open {open_frames}"
        );
        assert_eq!(self.known.by_ms.len(), self.known.order.len());
        assert!(self.known.order.len() <= self.known.cap);
        if self.ended {
            assert!(
                matches!(self.current, Current::None),
                "fragment left after End"
            );
            assert!(self.cluster.is_none(), "cluster left after End");
        }
    }

    fn drain_parser(&mut self, now_ms: i64) {
        while !self.ended {
            match self.parser.poll() {
                Ok(Some(ev)) => self.on_event(ev, now_ms),
                Ok(None) => break,
                Err(e) => {
                    let err = if matches!(e, mkv::Error::ElementTooLarge { .. }) {
                        Error::ElementTooLarge(e)
                    } else {
                        Error::InvalidMkv(e)
                    };
                    self.fail_session(err);
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event, now_ms: i64) {
        match ev {
            // A new document (a producer restarting inside one body) or Segment: Info and
            // Tracks start from scratch, and so may timecodes: 4004 compares within one
            // document only.
            Event::EbmlHeader { .. } | Event::SegmentStart { .. } => {
                self.end_cluster();
                self.complete();
                self.doc = Doc::default();
                self.pending_tags = TagAcc::default();
                self.previous = None;
            }
            Event::SegmentEnd { .. } => {
                self.end_cluster();
                self.complete();
            }
            Event::Info { info, .. } => {
                self.end_cluster();
                self.complete();
                self.doc.timecode_scale_ns = info.timecode_scale_ns;
                if let Some(t) = &self.doc.tracks {
                    self.doc.tracks = Some(Arc::new(TrackSet {
                        timecode_scale_ns: info.timecode_scale_ns,
                        tracks: t.tracks.clone(),
                    }));
                }
            }
            Event::Tracks { offset, tracks } => {
                self.end_cluster();
                self.complete();
                self.on_tracks(offset, tracks);
            }
            Event::Tags {
                in_cluster, tags, ..
            } => self.on_tags(in_cluster, &tags),
            Event::ClusterStart { timecode, .. } => self.on_cluster_start(timecode),
            Event::Frame(f) => self.on_frame(f, now_ms),
            Event::ClusterEnd { .. } => self.end_cluster(),
            // Events a newer parser may add carry nothing ingest needs.
            _ => {}
        }
    }

    fn on_tracks(&mut self, offset: u64, entries: Vec<TrackEntry>) {
        if entries.len() > self.limits.max_tracks {
            return self.fail_session(Error::TooManyTracks {
                offset,
                count: entries.len(),
                max: self.limits.max_tracks,
            });
        }
        for (i, t) in entries.iter().enumerate() {
            if entries[..i].iter().any(|u| u.number == t.number) {
                return self.fail_session(Error::DuplicateTrack {
                    offset,
                    track: t.number,
                });
            }
        }
        self.doc.has_video = entries.iter().any(|t| t.kind == TrackKind::Video);
        let set = TrackSet {
            timecode_scale_ns: self.doc.timecode_scale_ns,
            tracks: entries.into_iter().map(track_info).collect(),
        };
        self.doc.tracks = Some(match &self.doc.tracks {
            Some(old) if **old == set => Arc::clone(old),
            _ => Arc::new(set),
        });
    }

    fn on_tags(&mut self, in_cluster: bool, tags: &[mkv::Tag]) {
        let ex = tags::extract(tags);
        let max = self.limits.max_tags;
        // Tags the parser saw inside a Cluster but before its Timecode (so before
        // ClusterStart) are treated as Segment-level: metadata for the next fragment.
        match self.cluster.as_mut() {
            Some(cluster) if in_cluster => {
                let tc = cluster.timecode;
                match std::mem::replace(&mut cluster.role, Role::Member) {
                    Role::Undecided(mut held) if !ex.end_of_fragment => {
                        held.tags.extend(ex.pairs, max);
                        self.set_role(Role::Undecided(held));
                    }
                    // END_OF_FRAGMENT before the cluster's first video frame: the cluster
                    // belongs to the fragment it ends.
                    Role::Undecided(held) => {
                        self.continue_cluster(tc, *held);
                        self.add_pairs_to_current(ex.pairs);
                    }
                    Role::OpensOnFirstFrame => {
                        self.set_role(Role::OpensOnFirstFrame);
                        self.pending_tags.extend(ex.pairs, max);
                    }
                    Role::Member => self.add_pairs_to_current(ex.pairs),
                }
            }
            _ => self.pending_tags.extend(ex.pairs, max),
        }
        if ex.end_of_fragment {
            self.complete();
        }
    }

    fn on_cluster_start(&mut self, timecode: u64) {
        self.end_cluster();
        let role = if self.doc.has_video {
            Role::Undecided(Box::default())
        } else {
            // Without video every cluster is a fragment: the previous one is complete.
            self.complete();
            Role::OpensOnFirstFrame
        };
        self.cluster = Some(Cluster { timecode, role });
    }

    /// The cluster ended (or something that ends it arrived): an undecided cluster had no
    /// video frame, so it extends the current fragment.
    fn end_cluster(&mut self) {
        if let Some(c) = self.cluster.take()
            && let Role::Undecided(held) = c.role
        {
            self.continue_cluster(c.timecode, *held);
        }
    }

    fn set_role(&mut self, role: Role) {
        self.cluster.as_mut().expect("inside a cluster").role = role;
    }

    fn on_frame(&mut self, f: Frame, now_ms: i64) {
        self.stats.frames += 1;
        let Some(cluster) = self.cluster.as_mut() else {
            // The parser reports frames only between ClusterStart and ClusterEnd.
            self.stats.dropped_frames += 1;
            return;
        };
        let tc = cluster.timecode;
        match std::mem::replace(&mut cluster.role, Role::Member) {
            Role::Member => self.route(&f, tc),
            Role::OpensOnFirstFrame => {
                self.open_fragment(tc, now_ms, now_ms, None, TagAcc::default());
                self.route(&f, tc);
            }
            Role::Undecided(mut held) => match self.doc.is_video(f.track) {
                Some(true) => {
                    if f.keyframe {
                        self.open_cluster(tc, *held, now_ms);
                    } else {
                        self.continue_cluster(tc, *held);
                    }
                    self.route(&f, tc);
                }
                Some(false) => {
                    held.first_ms.get_or_insert(now_ms);
                    self.hold(&mut held, f);
                    self.set_role(Role::Undecided(held));
                }
                None => {
                    held.first_ms.get_or_insert(now_ms);
                    held.violation.get_or_insert(HeldViolation::UnknownTrack {
                        track: f.track,
                        offset: f.block_offset,
                    });
                    self.stats.dropped_frames += 1;
                    self.set_role(Role::Undecided(held));
                }
            },
        }
    }

    /// Holds a non-video frame of an undecided cluster. Held and open bytes together stay
    /// within `max_fragment_bytes` (DESIGN.md "Memory").
    fn hold(&mut self, held: &mut Held, f: Frame) {
        let max = self.limits.max_fragment_bytes;
        let n = f.payload.len() as u64;
        if held.oversize {
            self.stats.dropped_frames += 1;
            return;
        }
        if held.bytes + n > max {
            held.oversize = true;
            held.violation.get_or_insert(HeldViolation::TooLarge);
            self.stats.dropped_frames += held.frames.len() as u64 + 1;
            held.frames.clear();
            held.bytes = 0;
            return;
        }
        let open_bytes = match &self.current {
            Current::Open(o) => o.media.len() as u64,
            _ => 0,
        };
        if held.bytes + n + open_bytes > max {
            // Both cannot be kept: the open fragment ends here, before this cluster.
            self.complete();
        }
        held.bytes += n;
        held.frames.push(f);
    }

    /// The cluster's first video frame is a key frame: it opens a fragment.
    fn open_cluster(&mut self, tc: u64, held: Held, now_ms: i64) {
        self.complete();
        let Held {
            frames,
            first_ms,
            tags,
            violation,
            ..
        } = held;
        let violation = violation.map(|v| v.into_error(tc, &self.limits));
        self.open_fragment(tc, first_ms.unwrap_or(now_ms), now_ms, violation, tags);
        for f in frames {
            self.route(&f, tc);
        }
    }

    /// The cluster does not open a fragment: what it held goes to the current one.
    fn continue_cluster(&mut self, tc: u64, held: Held) {
        let Held {
            frames,
            tags,
            violation,
            ..
        } = held;
        if let (Some(v), Current::Open(f)) = (violation, &self.current) {
            let e = v.into_error(f.cluster_timecode, &self.limits);
            self.fail_current(e);
        }
        self.add_tags_to_current(tags);
        for f in frames {
            self.route(&f, tc);
        }
    }

    /// Starts the fragment of the cluster with Timecode `tc`: replay check, 4004, violations
    /// found before it opened, then a number and BUFFERING.
    fn open_fragment(
        &mut self,
        tc: u64,
        server_ms: i64,
        now_ms: i64,
        violation: Option<Error>,
        cluster_tags: TagAcc,
    ) {
        debug_assert!(matches!(self.current, Current::None));
        let max_tags = self.limits.max_tags;
        let producer_ms = self.producer_ms(tc, server_ms);
        let mut tags = std::mem::take(&mut self.pending_tags);
        let start_ns = u128::from(tc) * u128::from(self.doc.timecode_scale_ns);
        if let Some(number) = self.known.get(producer_ms) {
            self.previous = Some(Previous {
                start_ns,
                timecode: tc,
            });
            self.current = Current::Duplicate {
                number,
                timecode: tc,
            };
            self.out.push_back(Output::Ack(Ack::buffering(tc, number)));
            return;
        }
        if let Some(prev) = self.previous
            && start_ns <= prev.start_ns
        {
            return self.reject(
                tc,
                Error::TimecodeNotIncreasing {
                    fragment_timecode: tc,
                    previous: prev.timecode,
                },
            );
        }
        self.previous = Some(Previous {
            start_ns,
            timecode: tc,
        });
        tags.merge(cluster_tags, max_tags);
        if let Some(e) = violation.or_else(|| tags.error(tc, max_tags)) {
            return self.reject(tc, e);
        }
        let now_us = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        let by_time = FragmentNumber::from_time(now_us, 0);
        let number = match self.last_number {
            Some(last) => by_time.max(last.next()),
            None => by_time,
        };
        self.last_number = Some(number);
        self.out.push_back(Output::Ack(Ack::buffering(tc, number)));
        self.current = Current::Open(Box::new(OpenFragment::new(
            number,
            tc,
            producer_ms,
            server_ms,
            self.doc.track_set(),
            tags,
        )));
    }

    /// kvs-api.md §7.2: ABSOLUTE = Timecode × TimecodeScale in ms; RELATIVE adds the
    /// producer start timestamp (or, without one, the first fragment's server time).
    fn producer_ms(&mut self, tc: u64, server_ms: i64) -> i64 {
        let ms = ticks_to_ms(i128::from(tc), self.doc.timecode_scale_ns);
        match self.timecode_type {
            TimecodeType::Absolute => ms,
            TimecodeType::Relative => {
                let base = match self.producer_start_ms {
                    Some(b) => b,
                    None => *self.relative_base_ms.get_or_insert(server_ms),
                };
                base.saturating_add(ms)
            }
        }
    }

    /// Sends a frame of the cluster with Timecode `tc` where it belongs.
    fn route(&mut self, f: &Frame, tc: u64) {
        match &mut self.current {
            Current::Open(frag) => {
                if let Err(e) = frag.push(tc, f, &self.limits) {
                    self.stats.dropped_frames += 1;
                    self.fail_current(e);
                }
            }
            Current::Duplicate { .. } => self.stats.duplicate_frames += 1,
            Current::Dropped | Current::None => self.stats.dropped_frames += 1,
        }
    }

    fn add_pairs_to_current(&mut self, pairs: Vec<(String, String)>) {
        let mut acc = TagAcc::default();
        acc.extend(pairs, self.limits.max_tags);
        self.add_tags_to_current(acc);
    }

    fn add_tags_to_current(&mut self, tags: TagAcc) {
        if tags.count == 0 {
            return;
        }
        let max = self.limits.max_tags;
        if let Current::Open(f) = &mut self.current {
            f.tags.merge(tags, max);
            if let Some(e) = f.tags.error(f.cluster_timecode, max) {
                self.fail_current(e);
            }
        }
    }

    /// Drops the open fragment with an ERROR ACK (fragment-level errors).
    fn fail_current(&mut self, e: Error) {
        let Current::Open(f) = std::mem::replace(&mut self.current, Current::Dropped) else {
            unreachable!("fail_current is only called with an open fragment");
        };
        self.stats.dropped_frames += f.frames.len() as u64;
        self.emit_error(e, Some(f.cluster_timecode));
    }

    /// Rejects a fragment as it opens: no number, ERROR instead of BUFFERING.
    fn reject(&mut self, tc: u64, e: Error) {
        self.current = Current::Dropped;
        self.emit_error(e, Some(tc));
    }

    /// The current fragment is complete: RECEIVED then Fragment/Duplicate, or the ERROR of a
    /// rule that needs the whole fragment.
    fn complete(&mut self) {
        match std::mem::take(&mut self.current) {
            Current::Open(f) => {
                let (tc, number, producer_ms) = (f.cluster_timecode, f.number, f.producer_ms);
                let frames = f.frames.len() as u64;
                match f.finish(&self.stream_arn, &self.limits) {
                    Ok(fragment) => {
                        self.stats.fragments += 1;
                        self.stats.stored_frames += frames;
                        self.known.insert(producer_ms, number);
                        self.out.push_back(Output::Ack(Ack::received(tc, number)));
                        self.out.push_back(Output::Fragment(CompletedFragment {
                            fragment,
                            fragment_timecode: tc,
                        }));
                    }
                    Err(e) => {
                        self.stats.dropped_frames += frames;
                        self.emit_error(e, Some(tc));
                    }
                }
            }
            Current::Duplicate { number, timecode } => {
                self.stats.duplicates += 1;
                self.out
                    .push_back(Output::Ack(Ack::received(timecode, number)));
                self.out.push_back(Output::Duplicate {
                    number,
                    fragment_timecode: timecode,
                });
            }
            Current::Dropped | Current::None => {}
        }
    }

    /// A stream-level failure: the fragment being received is dropped, ERROR, End.
    fn fail_session(&mut self, e: Error) {
        let tc = match &self.current {
            Current::Open(f) => Some(f.cluster_timecode),
            Current::Duplicate { timecode, .. } => Some(*timecode),
            Current::Dropped | Current::None => self.cluster.as_ref().map(|c| c.timecode),
        };
        if let Current::Open(f) = &self.current {
            self.stats.dropped_frames += f.frames.len() as u64;
        }
        if let Some(Cluster {
            role: Role::Undecided(h),
            ..
        }) = &self.cluster
        {
            self.stats.dropped_frames += h.frames.len() as u64;
        }
        self.current = Current::None;
        self.cluster = None;
        let id = e.error_id();
        self.emit_error(e, tc);
        self.end(Some(id));
    }

    fn emit_error(&mut self, e: Error, fragment_timecode: Option<u64>) {
        self.stats.errors += 1;
        let ack = Ack::error(fragment_timecode, e.error_id());
        self.out.push_back(Output::Error(e));
        self.out.push_back(Output::Ack(ack));
    }

    fn end(&mut self, error_id: Option<u32>) {
        self.out.push_back(Output::End { error_id });
        self.ended = true;
    }
}

/// The store's view of an MKV `TrackEntry`.
fn track_info(t: TrackEntry) -> TrackInfo {
    TrackInfo {
        number: t.number,
        uid: t.uid,
        track_type: t.kind.track_type(),
        codec_id: t.codec_id,
        codec_private: t.codec_private,
        name: t.name,
        language: t.language,
        default_duration_ns: t.default_duration_ns,
        width: t.video.map(|v| v.pixel_width),
        height: t.video.map(|v| v.pixel_height),
        sampling_frequency: t.audio.map(|a| a.sampling_frequency),
        channels: t.audio.map(|a| a.channels),
        bit_depth: t.audio.and_then(|a| a.bit_depth),
    }
}
