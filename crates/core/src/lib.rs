//! Shared vocabulary of openkvs: validated names and identifiers, ARNs, and [`ErrorKind`].
//!
//! This crate does no I/O and reads no clock. Everything here is checked against the AWS service
//! models (`shared/aws-models/kinesisvideo.service-2.json`) and `kvs-api.md` §15.
//!
//! It deliberately knows nothing about HTTP: the mapping from [`ErrorKind`] to an AWS error code
//! and status lives in `openkvs-api`.
#![deny(missing_docs)]

mod arn;
mod calendar;
mod error;
mod fragment;
mod name;

pub use arn::{Arn, ArnError, ResourceKind};
pub use calendar::civil_from_days;
pub use error::ErrorKind;
pub use fragment::{FragmentNumber, FragmentNumberError};
pub use name::{ChannelName, ClientId, NameError, StreamName, is_valid_version};
