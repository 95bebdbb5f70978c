//! The streaming parser: push bytes, poll events. See the crate docs for the drive loop and
//! `DESIGN.md` for the buffering bound.

use std::collections::VecDeque;

use crate::block::{self, FLAG_DISCARDABLE, FLAG_INVISIBLE, FLAG_KEYFRAME};
use crate::crc::Crc32;
use crate::ebml::{self, Header, HeaderError, MAX_HEADER_LEN, Size};
use crate::error::{Error, Result};
use crate::event::{Event, Frame};
use crate::header::EbmlHeader;
use crate::ids::{self, ElementId};
use crate::info::Info;
use crate::master::Master;
use crate::tags::parse_tags;
use crate::tracks::parse_tracks;

/// Default [`ParserBuilder::max_element_size`]: 16 MiB. A 4K H.264 keyframe is a few MB; KVS
/// caps a whole fragment at 50 MB (kvs-api.md §7.3).
pub const DEFAULT_MAX_ELEMENT_SIZE: u64 = 16 << 20;

/// Configures a [`Parser`].
#[derive(Debug, Clone)]
pub struct ParserBuilder {
    max_element_size: u64,
    verify_crc: bool,
}

impl Default for ParserBuilder {
    fn default() -> Self {
        ParserBuilder {
            max_element_size: DEFAULT_MAX_ELEMENT_SIZE,
            verify_crc: true,
        }
    }
}

impl ParserBuilder {
    /// Largest data size of an element the parser buffers whole (SimpleBlock, BlockGroup,
    /// Info, Tracks, Tags, EBML header). Larger ones fail with [`Error::ElementTooLarge`].
    /// Skipped elements (Cues, SeekHead, Void, unknown IDs, ...) and the streamed Segment and
    /// Cluster masters are not limited.
    pub fn max_element_size(mut self, bytes: u64) -> Self {
        self.max_element_size = bytes;
        self
    }

    /// Whether to check `CRC-32` elements (default true). When off they are skipped.
    pub fn verify_crc(mut self, on: bool) -> Self {
        self.verify_crc = on;
        self
    }

    /// Builds the parser.
    pub fn build(self) -> Parser {
        Parser {
            max_element_size: self.max_element_size,
            verify_crc: self.verify_crc,
            buf: Vec::new(),
            pos: 0,
            buf_offset: 0,
            stack: Vec::new(),
            skip: None,
            pending: VecDeque::new(),
            in_document: false,
            eof: false,
            waiting: false,
            error: None,
        }
    }
}

/// A master element that is streamed rather than buffered: Segment or Cluster.
#[derive(Debug, Clone)]
struct Open {
    id: u32,
    offset: u64,
    data_offset: u64,
    /// Absolute end for a known size.
    end: Option<u64>,
    /// Running CRC of the data after a leading CRC-32 child: (stored value, hasher).
    crc: Option<(u32, Crc32)>,
    /// Cluster Timecode once read.
    timecode: Option<u64>,
}

/// Skipping the data of an element we do not interpret.
#[derive(Debug, Clone, Copy)]
struct Skip {
    id: u32,
    offset: u64,
    remaining: u64,
}

enum Step {
    Event(Event),
    Continue,
    NeedMore,
}

/// Sans-IO streaming Matroska parser. See the crate docs for the drive loop.
#[derive(Debug)]
pub struct Parser {
    max_element_size: u64,
    verify_crc: bool,
    /// Unconsumed input is `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Absolute offset of `buf[0]`.
    buf_offset: u64,
    /// Open Segment (and Cluster inside it). Depth ≤ 2.
    stack: Vec<Open>,
    skip: Option<Skip>,
    /// Events produced but not yet polled (laced frames, and everything after `finish`).
    pending: VecDeque<Event>,
    /// An EBML header has been seen; before that only an EBML header is accepted.
    in_document: bool,
    eof: bool,
    /// The last `poll` returned `Ok(None)` and nothing was pushed since.
    waiting: bool,
    /// Sticky: once set, `poll` and `finish` return it again.
    error: Option<Error>,
}

impl Default for Parser {
    fn default() -> Self {
        ParserBuilder::default().build()
    }
}

impl Parser {
    /// A builder with the defaults (16 MiB element limit, CRC-32 verified).
    pub fn builder() -> ParserBuilder {
        ParserBuilder::default()
    }

    /// Appends input. Any split is fine; bytes are consumed only as whole elements (or skipped
    /// data) become available.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.eof {
            if !data.is_empty() {
                self.error = Some(Error::InputAfterFinish { offset: self.cur() });
            }
            return;
        }
        self.waiting = false;
        // Fast path: data being skipped (Cues, Void, ...) never enters the buffer.
        if self.pos == self.buf.len()
            && let Some(skip) = &mut self.skip
        {
            let n = (skip.remaining.min(data.len() as u64)) as usize;
            for o in &mut self.stack {
                if let Some((_, crc)) = &mut o.crc {
                    crc.update(&data[..n]);
                }
            }
            skip.remaining -= n as u64;
            // Nothing is buffered (pos == len), so dropping the buffer loses nothing.
            self.buf_offset += (self.pos + n) as u64;
            self.buf.clear();
            self.pos = 0;
            data = &data[n..];
            if skip.remaining == 0 {
                self.skip = None;
            }
        }
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Returns the next event, `Ok(None)` when more input is needed (or, after
    /// [`Parser::finish`], when everything was returned), or the first error in the input.
    /// After an error the parser is stuck: events produced before it are still returned, then
    /// the same error again.
    pub fn poll(&mut self) -> Result<Option<Event>> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(Some(ev));
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        loop {
            match self.step() {
                Ok(Step::Event(ev)) => return Ok(Some(ev)),
                Ok(Step::Continue) => {}
                Ok(Step::NeedMore) => {
                    self.compact();
                    self.waiting = true;
                    return Ok(None);
                }
                Err(e) => {
                    self.error = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Marks the end of input. Parses what is left into the queue that [`Parser::poll`] drains
    /// (including the `ClusterEnd`/`SegmentEnd` that close unknown-size elements) and fails if
    /// the input stops inside an element — except an unknown-size Segment or Cluster, which
    /// the end of input closes cleanly.
    pub fn finish(&mut self) -> Result<()> {
        self.eof = true;
        self.waiting = false;
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        loop {
            match self.step() {
                Ok(Step::Event(ev)) => self.pending.push_back(ev),
                Ok(Step::Continue) => {}
                Ok(Step::NeedMore) => {
                    self.compact();
                    return Ok(());
                }
                Err(e) => {
                    self.error = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Absolute offset of the next unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.cur()
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Largest number of bytes the parser holds while waiting for more input:
    /// `max_element_size` plus one element header.
    pub fn buffer_limit(&self) -> u64 {
        self.max_element_size.saturating_add(MAX_HEADER_LEN as u64)
    }

    /// Panics if an internal invariant does not hold. For tests and fuzz targets, to be called
    /// after every `push`/`poll`/`finish`.
    pub fn check_invariants(&self) {
        assert!(self.pos <= self.buf.len(), "cursor past buffer");
        let cur = self.cur();
        if self.waiting {
            assert!(
                self.buffered() as u64 <= self.buffer_limit(),
                "waiting with {} bytes buffered, limit {}",
                self.buffered(),
                self.buffer_limit()
            );
            assert!(self.pending.is_empty(), "waiting with queued events");
        }
        assert!(self.stack.len() <= 2, "stack depth {}", self.stack.len());
        for (i, o) in self.stack.iter().enumerate() {
            let want = if i == 0 { ids::SEGMENT } else { ids::CLUSTER };
            assert_eq!(o.id, want, "stack[{i}] holds {}", ElementId(o.id));
            assert!(o.offset < o.data_offset && o.data_offset <= cur);
            if let Some(end) = o.end {
                assert!(
                    cur <= end,
                    "cursor {cur} past end {end} of {}",
                    ElementId(o.id)
                );
            }
            if i > 0
                && let (Some(pe), Some(e)) = (self.stack[i - 1].end, o.end)
            {
                assert!(e <= pe, "child ends after parent");
            }
            if o.crc.is_some() {
                assert!(o.end.is_some(), "CRC on an unknown-size element");
            }
        }
        if let Some(s) = &self.skip {
            assert!(s.remaining > 0, "empty skip left active");
            if let Some(end) = self.stack.iter().filter_map(|o| o.end).min() {
                assert!(cur + s.remaining <= end, "skip past parent end");
            }
        }
        if !self.in_document {
            assert!(self.stack.is_empty(), "open elements before an EBML header");
        }
    }

    fn cur(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
    }

    /// Consumes `n` buffered bytes, feeding running CRCs.
    fn advance(&mut self, n: usize) {
        let bytes = &self.buf[self.pos..self.pos + n];
        for o in &mut self.stack {
            if let Some((_, crc)) = &mut o.crc {
                crc.update(bytes);
            }
        }
        self.pos += n;
    }

    /// The nearest known end among open elements (an unknown-size Cluster in a known-size
    /// Segment ends with it).
    fn effective_end(&self) -> Option<u64> {
        self.stack.iter().rev().find_map(|o| o.end)
    }

    fn step(&mut self) -> Result<Step> {
        if let Some(skip) = &mut self.skip {
            let avail = (self.buf.len() - self.pos) as u64;
            let n = avail.min(skip.remaining);
            skip.remaining -= n;
            let done = skip.remaining == 0;
            let (id, offset) = (skip.id, skip.offset);
            self.advance(n as usize);
            if done {
                self.skip = None;
                return Ok(Step::Continue);
            }
            if self.eof {
                return Err(Error::Truncated {
                    offset,
                    id: ElementId(id),
                    input_end: self.cur(),
                });
            }
            return Ok(Step::NeedMore);
        }
        let cur = self.cur();
        if self.effective_end() == Some(cur) {
            return self.close_top(cur).map(Step::Event);
        }
        if self.pos == self.buf.len() {
            return if self.eof {
                self.end_of_input(cur)
            } else {
                Ok(Step::NeedMore)
            };
        }
        let h = match ebml::read_header(&self.buf[self.pos..]) {
            Ok(Some(h)) => h,
            Ok(None) if self.eof => {
                return Err(Error::TruncatedHeader {
                    offset: cur,
                    input_end: cur + self.buffered() as u64,
                });
            }
            Ok(None) => return Ok(Step::NeedMore),
            Err(HeaderError::Id(source)) => {
                return Err(Error::InvalidId {
                    offset: cur,
                    source,
                });
            }
            Err(HeaderError::Size { id, err }) => {
                return Err(Error::InvalidSize {
                    offset: cur,
                    id: ElementId(id),
                    source: err,
                });
            }
        };
        self.dispatch(h, cur)
    }

    /// End of input at an element boundary.
    fn end_of_input(&mut self, cur: u64) -> Result<Step> {
        match self.stack.last() {
            None => Ok(Step::NeedMore),
            Some(o) if o.end.is_none() => self.close_top(cur).map(Step::Event),
            Some(o) => Err(Error::Truncated {
                offset: o.offset,
                id: ElementId(o.id),
                input_end: cur,
            }),
        }
    }

    fn close_top(&mut self, cur: u64) -> Result<Event> {
        let o = self.stack.pop().expect("close_top with an open element");
        if let Some((stored, crc)) = o.crc {
            let computed = crc.finish();
            if stored != computed {
                return Err(Error::CrcMismatch {
                    offset: o.offset,
                    id: ElementId(o.id),
                    stored,
                    computed,
                });
            }
        }
        if o.id == ids::CLUSTER {
            if o.timecode.is_none() {
                return Err(Error::MissingClusterTimecode {
                    offset: o.offset,
                    found: ElementId(ids::CLUSTER),
                });
            }
            Ok(Event::ClusterEnd { offset_end: cur })
        } else {
            Ok(Event::SegmentEnd { offset_end: cur })
        }
    }

    fn dispatch(&mut self, h: Header, cur: u64) -> Result<Step> {
        // An unknown-size parent ends where an element that cannot be its child begins.
        if let Some(top) = self.stack.last()
            && top.end.is_none()
        {
            let ends = match top.id {
                ids::CLUSTER => ids::ends_unknown_cluster(h.id),
                _ => ids::ends_unknown_segment(h.id),
            };
            if ends {
                return self.close_top(cur).map(Step::Event);
            }
        }
        // A child must fit in its known-size ancestors.
        if let Some(parent_end) = self.effective_end() {
            let header_end = cur + h.len as u64;
            let end = match h.size {
                Size::Known(s) => header_end.saturating_add(s),
                Size::Unknown => header_end,
            };
            if end > parent_end {
                let parent = self
                    .stack
                    .iter()
                    .rev()
                    .find(|o| o.end.is_some())
                    .expect("effective_end came from an element");
                return Err(Error::Overrun {
                    offset: cur,
                    id: ElementId(h.id),
                    end,
                    parent: ElementId(parent.id),
                    parent_end,
                });
            }
        }
        match self.stack.last().map(|o| o.id) {
            None => self.top_level(h, cur),
            Some(ids::SEGMENT) => self.in_segment(h, cur),
            Some(_) => self.in_cluster(h, cur),
        }
    }

    fn top_level(&mut self, h: Header, cur: u64) -> Result<Step> {
        match h.id {
            ids::EBML => {
                let verify = self.verify_crc;
                let Some(header) = self.take(h, cur, |m| EbmlHeader::parse(m, verify))? else {
                    return Ok(Step::NeedMore);
                };
                self.in_document = true;
                Ok(Step::Event(Event::EbmlHeader {
                    offset: cur,
                    header,
                }))
            }
            _ if !self.in_document => Err(Error::ExpectedEbmlHeader {
                offset: cur,
                id: ElementId(h.id),
            }),
            ids::SEGMENT => {
                self.advance(h.len);
                let data_offset = cur + h.len as u64;
                let size = h.size.known();
                self.stack.push(Open {
                    id: ids::SEGMENT,
                    offset: cur,
                    data_offset,
                    end: size.map(|s| data_offset + s),
                    crc: None,
                    timecode: None,
                });
                Ok(Step::Event(Event::SegmentStart {
                    offset: cur,
                    data_offset,
                    size,
                }))
            }
            _ => self.start_skip(h, cur),
        }
    }

    fn in_segment(&mut self, h: Header, cur: u64) -> Result<Step> {
        let verify = self.verify_crc;
        match h.id {
            ids::CRC32 => self.maybe_start_crc(h, cur),
            ids::INFO => Ok(match self.take(h, cur, |m| Info::parse(m, verify))? {
                Some(info) => Step::Event(Event::Info { offset: cur, info }),
                None => Step::NeedMore,
            }),
            ids::TRACKS => Ok(match self.take(h, cur, |m| parse_tracks(m, verify))? {
                Some(tracks) => Step::Event(Event::Tracks {
                    offset: cur,
                    tracks,
                }),
                None => Step::NeedMore,
            }),
            ids::TAGS => Ok(match self.take(h, cur, |m| parse_tags(m, verify))? {
                Some(tags) => Step::Event(Event::Tags {
                    offset: cur,
                    in_cluster: false,
                    tags,
                }),
                None => Step::NeedMore,
            }),
            ids::CLUSTER => {
                self.advance(h.len);
                let data_offset = cur + h.len as u64;
                self.stack.push(Open {
                    id: ids::CLUSTER,
                    offset: cur,
                    data_offset,
                    end: h.size.known().map(|s| data_offset + s),
                    crc: None,
                    timecode: None,
                });
                // ClusterStart waits for the Timecode child.
                Ok(Step::Continue)
            }
            _ => self.start_skip(h, cur),
        }
    }

    fn in_cluster(&mut self, h: Header, cur: u64) -> Result<Step> {
        let verify = self.verify_crc;
        match h.id {
            ids::CRC32 => self.maybe_start_crc(h, cur),
            ids::TIMECODE => {
                let Some(timecode) = self.take(h, cur, |m| {
                    ebml::decode_uint(m.data).ok_or(Error::InvalidValue {
                        offset: cur,
                        id: ElementId(ids::TIMECODE),
                        reason: "unsigned integer of 0 to 8 bytes",
                    })
                })?
                else {
                    return Ok(Step::NeedMore);
                };
                let top = self.stack.last_mut().expect("in a cluster");
                if top.timecode.is_some() {
                    return Err(Error::InvalidValue {
                        offset: cur,
                        id: ElementId(ids::TIMECODE),
                        reason: "one Timecode per Cluster",
                    });
                }
                top.timecode = Some(timecode);
                Ok(Step::Event(Event::ClusterStart {
                    offset: top.offset,
                    size: top.end.map(|e| e - top.data_offset),
                    timecode,
                }))
            }
            ids::SIMPLE_BLOCK | ids::BLOCK_GROUP => {
                let top = self.stack.last().expect("in a cluster");
                if top.timecode.is_none() {
                    return Err(Error::MissingClusterTimecode {
                        offset: top.offset,
                        found: ElementId(h.id),
                    });
                }
                let Some(frames) = self.take(h, cur, |m| frames_of(m, verify))? else {
                    return Ok(Step::NeedMore);
                };
                let mut frames = frames.into_iter().map(Event::Frame);
                let first = frames.next().expect("a block has at least one frame");
                self.pending.extend(frames);
                Ok(Step::Event(first))
            }
            // Tags inside a known-size Cluster (an unknown-size one was closed by dispatch).
            ids::TAGS => Ok(match self.take(h, cur, |m| parse_tags(m, verify))? {
                Some(tags) => Step::Event(Event::Tags {
                    offset: cur,
                    in_cluster: true,
                    tags,
                }),
                None => Step::NeedMore,
            }),
            _ => self.start_skip(h, cur),
        }
    }

    /// A CRC-32 that is the first child of a known-size Segment/Cluster covers the rest of its
    /// data: hash it as it streams by. Anywhere else it is skipped.
    fn maybe_start_crc(&mut self, h: Header, cur: u64) -> Result<Step> {
        let top = self.stack.last().expect("called inside an element");
        if !self.verify_crc || top.end.is_none() || cur != top.data_offset {
            return self.start_skip(h, cur);
        }
        let Some(stored) = self.take(h, cur, |m| {
            <[u8; 4]>::try_from(m.data)
                .map(u32::from_le_bytes)
                .map_err(|_| Error::InvalidValue {
                    offset: cur,
                    id: ElementId(ids::CRC32),
                    reason: "CRC-32 must have 4 bytes of data",
                })
        })?
        else {
            return Ok(Step::NeedMore);
        };
        self.stack.last_mut().expect("checked above").crc = Some((stored, Crc32::new()));
        Ok(Step::Continue)
    }

    fn start_skip(&mut self, h: Header, cur: u64) -> Result<Step> {
        let Size::Known(size) = h.size else {
            return Err(Error::UnknownSizeNotAllowed {
                offset: cur,
                id: ElementId(h.id),
            });
        };
        self.advance(h.len);
        if size > 0 {
            self.skip = Some(Skip {
                id: h.id,
                offset: cur,
                remaining: size,
            });
        }
        Ok(Step::Continue)
    }

    /// Buffers an element whole and parses its data with `f`; `Ok(None)` = need more bytes.
    /// Consumes the element only when `f` succeeds.
    fn take<T>(
        &mut self,
        h: Header,
        cur: u64,
        f: impl FnOnce(Master<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let Size::Known(size) = h.size else {
            return Err(Error::UnknownSizeNotAllowed {
                offset: cur,
                id: ElementId(h.id),
            });
        };
        let too_large = Error::ElementTooLarge {
            offset: cur,
            id: ElementId(h.id),
            size,
            max: self.max_element_size,
        };
        if size > self.max_element_size {
            return Err(too_large);
        }
        // Only fails on targets whose usize cannot address the configured limit.
        let total = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(h.len))
            .ok_or(too_large)?;
        if self.buffered() < total {
            if self.eof {
                return Err(Error::Truncated {
                    offset: cur,
                    id: ElementId(h.id),
                    input_end: cur + self.buffered() as u64,
                });
            }
            return Ok(None);
        }
        let start = self.pos + h.len;
        let value = f(Master {
            id: h.id,
            offset: cur,
            data_offset: cur + h.len as u64,
            data: &self.buf[start..self.pos + total],
        })?;
        self.advance(total);
        Ok(Some(value))
    }
}

/// Frames of a SimpleBlock or BlockGroup element.
fn frames_of(m: Master<'_>, verify_crc: bool) -> Result<Vec<Frame>> {
    let (block, group) = if m.id == ids::SIMPLE_BLOCK {
        (m, None)
    } else {
        if verify_crc {
            m.check_crc()?;
        }
        let mut block = None;
        let mut duration = None;
        let mut referenced = false;
        for c in m.children() {
            let c = c?;
            match c.id {
                ids::BLOCK if block.is_none() => block = Some(c.as_master()),
                ids::BLOCK => {
                    return Err(Error::InvalidValue {
                        offset: c.offset,
                        id: ElementId(ids::BLOCK),
                        reason: "one Block per BlockGroup",
                    });
                }
                ids::BLOCK_DURATION => duration = Some(c.uint()?),
                ids::REFERENCE_BLOCK => {
                    c.int()?;
                    referenced = true;
                }
                _ => {}
            }
        }
        let block = block.ok_or(Error::MissingElement {
            offset: m.offset,
            id: ElementId(ids::BLOCK_GROUP),
            missing: ElementId(ids::BLOCK),
        })?;
        (block, Some((duration, referenced)))
    };
    let p = block::parse_block(block.data, block.offset, block.id)?;
    let lace_count = p.frames.len() as u16; // ≤ 256
    Ok(p.frames
        .iter()
        .enumerate()
        .map(|(i, &(start, len))| Frame {
            track: p.track,
            timecode_rel: p.timecode_rel,
            keyframe: match group {
                Some((_, referenced)) => !referenced,
                None => p.flags & FLAG_KEYFRAME != 0,
            },
            invisible: p.flags & FLAG_INVISIBLE != 0,
            discardable: group.is_none() && p.flags & FLAG_DISCARDABLE != 0,
            duration: group.and_then(|(d, _)| d),
            block_group: group.is_some(),
            block_offset: m.offset,
            lace_index: i as u16,
            lace_count,
            payload_offset: block.data_offset + start as u64,
            payload: block.data[start..start + len].to_vec(),
        })
        .collect())
}
