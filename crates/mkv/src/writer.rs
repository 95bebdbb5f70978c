//! A small Matroska writer: enough for GetMedia output (kvs-api.md §8.1) and test inputs.
//!
//! It appends to an in-memory `Vec<u8>`. Segment and Cluster can be written with unknown size
//! (streaming, like KVS producers) or known size; a known size is written as an 8-byte field
//! (as KVS does, §8.1) and patched by the matching `end_*` call, so a known-size element must
//! stay in the buffer until it ends — [`Writer::take`] never hands out its bytes early.

use crate::block::{FLAG_DISCARDABLE, FLAG_INVISIBLE, FLAG_KEYFRAME, Lacing, encode_block};
use crate::crc::crc32;
use crate::ebml::{self, UNKNOWN_SIZE_8, write_vint_len};
use crate::error::{Error, Result};
use crate::header::EbmlHeader;
use crate::ids;
use crate::info::Info;
use crate::master::write_master;
use crate::tags::{Tag, encode_tags};
use crate::tracks::{TrackEntry, encode_tracks};

/// How to write the size of a Segment or Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeMode {
    /// 8-byte size patched when the element ends.
    Known,
    /// `01 FF FF FF FF FF FF FF`: the element ends where the next non-child begins.
    Unknown,
}

/// SimpleBlock or BlockGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockKind {
    /// A SimpleBlock (what KVS producers write).
    #[default]
    Simple,
    /// A BlockGroup. A non-keyframe gets a `ReferenceBlock` (-1): Matroska marks keyframes in
    /// BlockGroups by the absence of references.
    Group {
        /// `BlockDuration` in ticks.
        duration: Option<u64>,
    },
}

/// A block to write: one frame, or several laced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    /// Track number.
    pub track: u64,
    /// Timecode relative to the Cluster's.
    pub timecode_rel: i16,
    /// Keyframe.
    pub keyframe: bool,
    /// Invisible.
    pub invisible: bool,
    /// Discardable (SimpleBlock only).
    pub discardable: bool,
    /// Lacing mode; `None` requires exactly one frame.
    pub lacing: Lacing,
    /// Frame payloads.
    pub frames: Vec<&'a [u8]>,
    /// SimpleBlock or BlockGroup.
    pub kind: BlockKind,
}

impl<'a> Block<'a> {
    /// An unlaced SimpleBlock.
    pub fn simple(track: u64, timecode_rel: i16, keyframe: bool, payload: &'a [u8]) -> Self {
        Block {
            track,
            timecode_rel,
            keyframe,
            invisible: false,
            discardable: false,
            lacing: Lacing::None,
            frames: vec![payload],
            kind: BlockKind::Simple,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct OpenMaster {
    id: u32,
    /// Offset of the element header in `buf`.
    start: usize,
    /// Offset of the 8-byte size field for a known size.
    size_pos: Option<usize>,
    /// Offset of the CRC-32 element when writing CRCs.
    crc_pos: Option<usize>,
}

/// Appends Matroska elements to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    open: Vec<OpenMaster>,
    crc32: bool,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also write a `CRC-32` first child in Info, Tracks, Tags and known-size Segment/Cluster
    /// (as ffmpeg does by default).
    pub fn with_crc32(mut self, on: bool) -> Self {
        self.crc32 = on;
        self
    }

    /// The bytes written so far (including any unfinished known-size element).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The finished bytes, for streaming: everything before the first open known-size element
    /// (whose size is not written yet) is removed from the buffer and returned.
    pub fn take(&mut self) -> Vec<u8> {
        let keep_from = self
            .open
            .iter()
            .filter(|o| o.size_pos.is_some())
            .map(|o| o.start)
            .min()
            .unwrap_or(self.buf.len());
        let rest = self.buf.split_off(keep_from);
        for o in &mut self.open {
            // Unknown-size elements may start before `keep_from`; their start is never used.
            o.start = o.start.saturating_sub(keep_from);
            o.size_pos = o.size_pos.map(|p| p - keep_from);
            o.crc_pos = o.crc_pos.map(|p| p - keep_from);
        }
        std::mem::replace(&mut self.buf, rest)
    }

    /// The whole buffer. Known-size elements still open keep their placeholder size.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Writes an EBML header, starting a new document: open unknown-size elements end here.
    pub fn ebml_header(&mut self, header: &EbmlHeader) {
        self.close_unknown(&[ids::SEGMENT, ids::CLUSTER]);
        write_master(&mut self.buf, ids::EBML, &header.encode(), false);
    }

    /// Begins a Segment (an open unknown-size Segment ends here).
    pub fn begin_segment(&mut self, size: SizeMode) {
        self.close_unknown(&[ids::SEGMENT, ids::CLUSTER]);
        self.begin(ids::SEGMENT, size);
    }

    /// Ends the Segment, closing open Clusters first; patches a known size.
    pub fn end_segment(&mut self) -> Result<()> {
        while self.open.last().is_some_and(|o| o.id == ids::CLUSTER) {
            self.end(ids::CLUSTER)?;
        }
        self.end(ids::SEGMENT)
    }

    /// Writes an Info element.
    pub fn info(&mut self, info: &Info) {
        write_master(&mut self.buf, ids::INFO, &info.encode(), self.crc32);
    }

    /// Writes a Tracks element.
    pub fn tracks(&mut self, tracks: &[TrackEntry]) {
        write_master(
            &mut self.buf,
            ids::TRACKS,
            &encode_tracks(tracks),
            self.crc32,
        );
    }

    /// Writes a Tags element (at Segment level, or inside the open Cluster).
    pub fn tags(&mut self, tags: &[Tag]) {
        write_master(&mut self.buf, ids::TAGS, &encode_tags(tags), self.crc32);
    }

    /// Begins a Cluster and writes its Timecode (an open unknown-size Cluster ends here).
    pub fn begin_cluster(&mut self, timecode: u64, size: SizeMode) {
        self.close_unknown(&[ids::CLUSTER]);
        self.begin(ids::CLUSTER, size);
        ebml::write_uint(&mut self.buf, ids::TIMECODE, timecode);
    }

    /// Ends the open Cluster; patches a known size.
    pub fn end_cluster(&mut self) -> Result<()> {
        self.end(ids::CLUSTER)
    }

    /// Writes a whole known-size Cluster.
    pub fn cluster(&mut self, timecode: u64, blocks: &[Block<'_>]) -> Result<()> {
        self.begin_cluster(timecode, SizeMode::Known);
        for b in blocks {
            self.block(b)?;
        }
        self.end_cluster()
    }

    /// Writes a SimpleBlock or BlockGroup.
    pub fn block(&mut self, b: &Block<'_>) -> Result<()> {
        let mut flags = 0;
        if b.invisible {
            flags |= FLAG_INVISIBLE;
        }
        let mut data = Vec::with_capacity(16 + b.frames.iter().map(|f| f.len()).sum::<usize>());
        match b.kind {
            BlockKind::Simple => {
                if b.keyframe {
                    flags |= FLAG_KEYFRAME;
                }
                if b.discardable {
                    flags |= FLAG_DISCARDABLE;
                }
                encode_block(
                    &mut data,
                    b.track,
                    b.timecode_rel,
                    flags,
                    b.lacing,
                    &b.frames,
                )?;
                ebml::write_element(&mut self.buf, ids::SIMPLE_BLOCK, &data);
            }
            BlockKind::Group { duration } => {
                if b.discardable {
                    return Err(Error::Unwritable {
                        reason: "a BlockGroup cannot carry the discardable flag",
                    });
                }
                encode_block(
                    &mut data,
                    b.track,
                    b.timecode_rel,
                    flags,
                    b.lacing,
                    &b.frames,
                )?;
                let mut g = Vec::with_capacity(data.len() + 32);
                ebml::write_element(&mut g, ids::BLOCK, &data);
                if let Some(d) = duration {
                    ebml::write_uint(&mut g, ids::BLOCK_DURATION, d);
                }
                if !b.keyframe {
                    ebml::write_int(&mut g, ids::REFERENCE_BLOCK, -1);
                }
                write_master(&mut self.buf, ids::BLOCK_GROUP, &g, false);
            }
        }
        Ok(())
    }

    /// Writes an unsigned-integer element (e.g. `Position` = 0 as KVS producers do).
    pub fn uint_element(&mut self, id: u32, value: u64) {
        ebml::write_uint(&mut self.buf, id, value);
    }

    /// Writes an element with arbitrary data (unknown elements, Void, in tests).
    pub fn element(&mut self, id: u32, data: &[u8]) {
        ebml::write_element(&mut self.buf, id, data);
    }

    /// Forgets innermost open unknown-size elements with these IDs: a reader ends them at the
    /// element written next, so there is nothing to patch.
    fn close_unknown(&mut self, which: &[u32]) {
        while self
            .open
            .last()
            .is_some_and(|o| o.size_pos.is_none() && which.contains(&o.id))
        {
            self.open.pop();
        }
    }

    fn begin(&mut self, id: u32, size: SizeMode) {
        let start = self.buf.len();
        ebml::write_id(&mut self.buf, id);
        let (size_pos, crc_pos) = match size {
            SizeMode::Unknown => {
                self.buf.extend_from_slice(&UNKNOWN_SIZE_8);
                (None, None)
            }
            SizeMode::Known => {
                let size_pos = self.buf.len();
                self.buf.extend_from_slice(&[0; 8]);
                let crc_pos = self.crc32.then(|| {
                    let p = self.buf.len();
                    ebml::write_element(&mut self.buf, ids::CRC32, &[0; 4]);
                    p
                });
                (Some(size_pos), crc_pos)
            }
        };
        self.open.push(OpenMaster {
            id,
            start,
            size_pos,
            crc_pos,
        });
    }

    fn end(&mut self, id: u32) -> Result<()> {
        if self.open.last().is_none_or(|o| o.id != id) {
            return Err(Error::Unwritable {
                reason: "end of an element that is not the innermost open one",
            });
        }
        let o = self.open.pop().expect("checked above");
        if let Some(crc_pos) = o.crc_pos {
            let crc = crc32(&self.buf[crc_pos + 6..]);
            self.buf[crc_pos + 2..crc_pos + 6].copy_from_slice(&crc.to_le_bytes());
        }
        if let Some(size_pos) = o.size_pos {
            let size = (self.buf.len() - size_pos - 8) as u64;
            let mut field = Vec::with_capacity(8);
            write_vint_len(&mut field, size, 8);
            self.buf[size_pos..size_pos + 8].copy_from_slice(&field);
        }
        Ok(())
    }
}
