//! The EBML header (RFC 8794 §11.2), which starts every Matroska document.

use crate::ebml;
use crate::error::{Error, Result};
use crate::ids::{self, ElementId};
use crate::master::Master;

/// The EBML header of a document. Absent children take their RFC 8794 / Matroska defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbmlHeader {
    /// `EBMLVersion` (default 1).
    pub version: u64,
    /// `EBMLReadVersion` (default 1).
    pub read_version: u64,
    /// `EBMLMaxIDLength` (default 4).
    pub max_id_length: u64,
    /// `EBMLMaxSizeLength` (default 8).
    pub max_size_length: u64,
    /// `DocType`: `matroska` or `webm` (default `matroska`).
    pub doc_type: String,
    /// `DocTypeVersion` (default 1).
    pub doc_type_version: u64,
    /// `DocTypeReadVersion` (default 1).
    pub doc_type_read_version: u64,
}

impl Default for EbmlHeader {
    fn default() -> Self {
        EbmlHeader {
            version: 1,
            read_version: 1,
            max_id_length: 4,
            max_size_length: 8,
            doc_type: "matroska".to_owned(),
            doc_type_version: 1,
            doc_type_read_version: 1,
        }
    }
}

impl EbmlHeader {
    /// A `matroska` header with the given DocTypeVersion and DocTypeReadVersion 2: KVS
    /// producers write version 2 (kvs-api.md §7.3), GetMedia output version 4 (§8.1).
    pub fn matroska(doc_type_version: u64) -> Self {
        EbmlHeader {
            doc_type_version,
            doc_type_read_version: 2,
            ..Default::default()
        }
    }

    pub(crate) fn parse(m: Master<'_>, verify_crc: bool) -> Result<Self> {
        if verify_crc {
            m.check_crc()?;
        }
        let mut h = EbmlHeader::default();
        for c in m.children() {
            let c = c?;
            match c.id {
                ids::EBML_VERSION => h.version = c.uint()?,
                ids::EBML_READ_VERSION => h.read_version = c.uint()?,
                ids::EBML_MAX_ID_LENGTH => h.max_id_length = c.uint()?,
                ids::EBML_MAX_SIZE_LENGTH => h.max_size_length = c.uint()?,
                ids::DOC_TYPE => h.doc_type = c.string(),
                ids::DOC_TYPE_VERSION => h.doc_type_version = c.uint()?,
                ids::DOC_TYPE_READ_VERSION => h.doc_type_read_version = c.uint()?,
                _ => {}
            }
        }
        // RFC 8794 §11.2.2: a reader must refuse a document it cannot read; this crate reads
        // EBML version 1 only.
        if h.read_version != 1 {
            return Err(Error::InvalidValue {
                offset: m.offset,
                id: ElementId(ids::EBML_READ_VERSION),
                reason: "EBMLReadVersion 1",
            });
        }
        Ok(h)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut c = Vec::new();
        ebml::write_uint(&mut c, ids::EBML_VERSION, self.version);
        ebml::write_uint(&mut c, ids::EBML_READ_VERSION, self.read_version);
        ebml::write_uint(&mut c, ids::EBML_MAX_ID_LENGTH, self.max_id_length);
        ebml::write_uint(&mut c, ids::EBML_MAX_SIZE_LENGTH, self.max_size_length);
        ebml::write_string(&mut c, ids::DOC_TYPE, &self.doc_type);
        ebml::write_uint(&mut c, ids::DOC_TYPE_VERSION, self.doc_type_version);
        ebml::write_uint(
            &mut c,
            ids::DOC_TYPE_READ_VERSION,
            self.doc_type_read_version,
        );
        c
    }
}
