//! The crate error. Every parse error names the absolute byte offset in the input stream and
//! the element involved, so a hexdump of a PutMedia body finds it.

use kvs_core::ErrorKind;

use crate::ebml::VintError;
use crate::ids::ElementId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Invalid input (parser) or an unwritable request (writer). "Need more bytes" is not an error:
/// [`crate::Parser::poll`] returns `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An element ID that is not valid EBML.
    #[error("invalid element id at byte {offset}")]
    InvalidId {
        /// Offset of the ID.
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: VintError,
    },
    /// An element data size that is not valid EBML.
    #[error("invalid data size of element {id} at byte {offset}")]
    InvalidSize {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
        /// What is wrong with the size.
        #[source]
        source: VintError,
    },
    /// Unknown size on an element other than Segment or Cluster (Matroska allows no others).
    #[error("element {id} at byte {offset} has unknown size; only Segment and Cluster may")]
    UnknownSizeNotAllowed {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
    },
    /// An element that would have to be buffered whole is larger than
    /// [`crate::ParserBuilder::max_element_size`].
    #[error("element {id} at byte {offset} has {size} bytes of data; the limit is {max}")]
    ElementTooLarge {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
        /// Its data size.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A child element extends past the end of its known-size parent.
    #[error(
        "element {id} at byte {offset} ends at byte {end}, past the end (byte {parent_end}) of its parent {parent}"
    )]
    Overrun {
        /// Offset of the child.
        offset: u64,
        /// The child.
        id: ElementId,
        /// Where the child claims to end (header end when its size could not be read).
        end: u64,
        /// The parent.
        parent: ElementId,
        /// Where the parent ends.
        parent_end: u64,
    },
    /// The input ended in the middle of an element header.
    #[error("input ended at byte {input_end} inside the element header at byte {offset}")]
    TruncatedHeader {
        /// Offset of the header.
        offset: u64,
        /// Total input length.
        input_end: u64,
    },
    /// The input ended inside a known-size element.
    #[error("input ended at byte {input_end} inside element {id} at byte {offset}")]
    Truncated {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
        /// Total input length.
        input_end: u64,
    },
    /// The stream does not start with an EBML header.
    #[error("expected an EBML header at byte {offset}, found element {id}")]
    ExpectedEbmlHeader {
        /// Offset of the element found.
        offset: u64,
        /// The element found.
        id: ElementId,
    },
    /// A value with an impossible encoding or meaning (e.g. a 9-byte integer, TimecodeScale 0).
    #[error("invalid value of element {id} at byte {offset}: {reason}")]
    InvalidValue {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
        /// What was expected.
        reason: &'static str,
    },
    /// A malformed SimpleBlock or Block (header or lacing).
    #[error("invalid block {id} at byte {offset}: {reason}")]
    InvalidBlock {
        /// Offset of the SimpleBlock/Block element.
        offset: u64,
        /// SimpleBlock or Block.
        id: ElementId,
        /// What was expected.
        reason: &'static str,
    },
    /// A mandatory child element is missing.
    #[error("element {id} at byte {offset} lacks its mandatory child {missing}")]
    MissingElement {
        /// Offset of the parent.
        offset: u64,
        /// The parent.
        id: ElementId,
        /// The missing child.
        missing: ElementId,
    },
    /// A Cluster has a block before its Timecode, or no Timecode at all.
    #[error("cluster at byte {offset} has no Timecode before {found}")]
    MissingClusterTimecode {
        /// Offset of the Cluster.
        offset: u64,
        /// What came first (the Cluster itself when it ended without a Timecode).
        found: ElementId,
    },
    /// A stored CRC-32 does not match the data (RFC 8794 §11.3.1).
    #[error(
        "CRC-32 mismatch in element {id} at byte {offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    CrcMismatch {
        /// Offset of the element whose data the CRC covers.
        offset: u64,
        /// That element.
        id: ElementId,
        /// CRC in the file.
        stored: u32,
        /// CRC of the data.
        computed: u32,
    },
    /// SimpleTags nested deeper than the parser allows (protects the stack).
    #[error("element {id} at byte {offset} nests more than {max} levels deep")]
    TooDeep {
        /// Offset of the element.
        offset: u64,
        /// The element.
        id: ElementId,
        /// The nesting limit.
        max: usize,
    },
    /// [`crate::Parser::push`] after [`crate::Parser::finish`].
    #[error("input pushed at byte {offset} after finish()")]
    InputAfterFinish {
        /// Stream length at finish().
        offset: u64,
    },
    /// The writer was asked for something Matroska cannot express.
    #[error("cannot write: {reason}")]
    Unwritable {
        /// What was wrong with the request.
        reason: &'static str,
    },
}

impl Error {
    /// Whose fault this is. Parse errors are the producer's (`InvalidArgument`, which ingest
    /// turns into ErrorId 4006 "invalid MKV"), except an element over our buffering limit
    /// (`LimitExceeded`). Writer errors are the caller's bug and map to `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ElementTooLarge { .. } => ErrorKind::LimitExceeded,
            Error::Unwritable { .. } | Error::InputAfterFinish { .. } => ErrorKind::Internal,
            Error::InvalidId { .. }
            | Error::InvalidSize { .. }
            | Error::UnknownSizeNotAllowed { .. }
            | Error::Overrun { .. }
            | Error::TruncatedHeader { .. }
            | Error::Truncated { .. }
            | Error::ExpectedEbmlHeader { .. }
            | Error::InvalidValue { .. }
            | Error::InvalidBlock { .. }
            | Error::MissingElement { .. }
            | Error::MissingClusterTimecode { .. }
            | Error::CrcMismatch { .. }
            | Error::TooDeep { .. } => ErrorKind::InvalidArgument,
        }
    }

    /// Absolute byte offset in the input the error refers to (`None` for writer errors).
    pub fn offset(&self) -> Option<u64> {
        match *self {
            Error::InvalidId { offset, .. }
            | Error::InvalidSize { offset, .. }
            | Error::UnknownSizeNotAllowed { offset, .. }
            | Error::ElementTooLarge { offset, .. }
            | Error::Overrun { offset, .. }
            | Error::TruncatedHeader { offset, .. }
            | Error::Truncated { offset, .. }
            | Error::ExpectedEbmlHeader { offset, .. }
            | Error::InvalidValue { offset, .. }
            | Error::InvalidBlock { offset, .. }
            | Error::MissingElement { offset, .. }
            | Error::MissingClusterTimecode { offset, .. }
            | Error::CrcMismatch { offset, .. }
            | Error::TooDeep { offset, .. }
            | Error::InputAfterFinish { offset } => Some(offset),
            Error::Unwritable { .. } => None,
        }
    }
}
