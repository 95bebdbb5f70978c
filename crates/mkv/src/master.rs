//! Reading the children of a master element that is fully buffered (EBML header, Info,
//! Tracks, Tags, BlockGroup). The streaming parser buffers these whole, so here every
//! truncation is an overrun of the parent, never "need more bytes".

use crate::crc::crc32;
use crate::ebml::{self, HeaderError, Size};
use crate::error::{Error, Result};
use crate::ids::{self, ElementId};

/// Nesting limit for recursive masters (SimpleTag in SimpleTag); fuzzed input must not be able
/// to overflow the stack. Real files nest SimpleTags one or two levels.
pub(crate) const MAX_DEPTH: usize = 16;

/// A buffered master element: its ID, offset and data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Master<'a> {
    pub(crate) id: u32,
    /// Absolute offset of the element header.
    pub(crate) offset: u64,
    /// Absolute offset of `data[0]`.
    pub(crate) data_offset: u64,
    pub(crate) data: &'a [u8],
}

/// One child of a [`Master`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child<'a> {
    pub(crate) id: u32,
    pub(crate) offset: u64,
    pub(crate) data_offset: u64,
    pub(crate) data: &'a [u8],
}

impl<'a> Master<'a> {
    /// Iterates over the children; errors on malformed or overrunning children.
    pub(crate) fn children(self) -> Children<'a> {
        Children {
            parent: self,
            pos: 0,
            failed: false,
        }
    }

    /// Checks a leading CRC-32 child, if any, against the rest of the data.
    pub(crate) fn check_crc(self) -> Result<()> {
        let Ok(Some(h)) = ebml::read_header(self.data) else {
            return Ok(()); // children() reports malformed headers.
        };
        if h.id != ids::CRC32 {
            return Ok(());
        }
        if h.size != Size::Known(4) {
            return Err(Error::InvalidValue {
                offset: self.data_offset,
                id: ElementId(ids::CRC32),
                reason: "CRC-32 must have 4 bytes of data",
            });
        }
        let Some(stored) = self.data.get(h.len..h.len + 4) else {
            return Ok(()); // children() reports the overrun.
        };
        let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
        let computed = crc32(&self.data[h.len + 4..]);
        if stored != computed {
            return Err(Error::CrcMismatch {
                offset: self.offset,
                id: ElementId(self.id),
                stored,
                computed,
            });
        }
        Ok(())
    }
}

impl<'a> Child<'a> {
    /// This child viewed as a master.
    pub(crate) fn as_master(self) -> Master<'a> {
        Master {
            id: self.id,
            offset: self.offset,
            data_offset: self.data_offset,
            data: self.data,
        }
    }

    fn invalid(self, reason: &'static str) -> Error {
        Error::InvalidValue {
            offset: self.offset,
            id: ElementId(self.id),
            reason,
        }
    }

    /// Unsigned integer value.
    pub(crate) fn uint(self) -> Result<u64> {
        ebml::decode_uint(self.data).ok_or_else(|| self.invalid("unsigned integer of 0 to 8 bytes"))
    }

    /// Signed integer value.
    pub(crate) fn int(self) -> Result<i64> {
        ebml::decode_int(self.data).ok_or_else(|| self.invalid("signed integer of 0 to 8 bytes"))
    }

    /// Float value.
    pub(crate) fn float(self) -> Result<f64> {
        ebml::decode_float(self.data).ok_or_else(|| self.invalid("float of 0, 4 or 8 bytes"))
    }

    /// String value, NUL padding trimmed.
    pub(crate) fn string(self) -> String {
        ebml::decode_string(self.data)
    }
}

/// Iterator over the children of a [`Master`].
#[derive(Debug)]
pub(crate) struct Children<'a> {
    parent: Master<'a>,
    pos: usize,
    failed: bool,
}

impl<'a> Children<'a> {
    fn next_child(&mut self) -> Result<Child<'a>> {
        let p = self.parent;
        let rest = &p.data[self.pos..];
        let offset = p.data_offset + self.pos as u64;
        let parent_end = p.data_offset + p.data.len() as u64;
        let overrun = |id: u32, end: u64| Error::Overrun {
            offset,
            id: ElementId(id),
            end,
            parent: ElementId(p.id),
            parent_end,
        };
        let h = match ebml::read_header(rest) {
            Ok(Some(h)) => h,
            // The header runs past the parent's data; report the ID when it is readable.
            Ok(None) => {
                let id = ebml::read_id(rest)
                    .ok()
                    .flatten()
                    .map_or(p.id, |(id, _)| id);
                return Err(overrun(id, parent_end + 1));
            }
            Err(HeaderError::Id(source)) => return Err(Error::InvalidId { offset, source }),
            Err(HeaderError::Size { id, err }) => {
                return Err(Error::InvalidSize {
                    offset,
                    id: ElementId(id),
                    source: err,
                });
            }
        };
        let Size::Known(size) = h.size else {
            return Err(Error::UnknownSizeNotAllowed {
                offset,
                id: ElementId(h.id),
            });
        };
        let start = self.pos + h.len;
        let avail = (p.data.len() - start) as u64;
        if size > avail {
            return Err(overrun(h.id, offset + h.len as u64 + size));
        }
        let end = start + size as usize;
        self.pos = end;
        Ok(Child {
            id: h.id,
            offset,
            data_offset: p.data_offset + start as u64,
            data: &p.data[start..end],
        })
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.parent.data.len() {
            return None;
        }
        let r = self.next_child();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Writes a master element whose children are already encoded, optionally preceded by a
/// CRC-32 element over them.
pub(crate) fn write_master(out: &mut Vec<u8>, id: u32, children: &[u8], with_crc: bool) {
    ebml::write_id(out, id);
    if with_crc {
        ebml::write_size(out, children.len() as u64 + 6);
        ebml::write_element(out, ids::CRC32, &crc32(children).to_le_bytes());
    } else {
        ebml::write_size(out, children.len() as u64);
    }
    out.extend_from_slice(children);
}
