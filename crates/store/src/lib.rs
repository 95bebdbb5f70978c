//! Persistent state of openkvs: the [`Catalog`] of streams, signaling channels and tags (and, from
//! the ingest work on, the fragment time index), plus the media store.
//!
//! The embedded default is [`SqliteCatalog`]: one SQLite file in the data directory, zero setup.
//! The trait is async and object-safe so a PostgreSQL implementation can sit beside it and pass
//! the same conformance tests (`tests/catalog_conformance.rs`).
//!
//! What this crate does not do: validate request members (the API layer does, with
//! `openkvs-core`), read the clock (callers pass `created_ms`), or know about HTTP.
#![deny(missing_docs)]

mod catalog;
mod error;
mod sqlite;

pub use catalog::{
    Catalog, ChannelRecord, ChannelUpdate, NewChannel, NewStream, Page, ResourceStatus, Selector, StreamRecord,
    StreamUpdate, Tags, MAX_TAGS_PER_RESOURCE,
};
pub use error::{Error, Result};
pub use sqlite::SqliteCatalog;
