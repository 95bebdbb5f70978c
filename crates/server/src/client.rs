//! The client subcommands: `openkvs put-media`, `openkvs get-clip` and `openkvs presign …`.
//!
//! Every client subcommand resolves its endpoint, credentials and region the same way
//! ([`aws_config`]: `--endpoint-url`, then the AWS CLI's environment variables and
//! `~/.aws/{credentials,config}` files) and signs with `openkvs-sigv4`.
//!
//! Layout, following the sans-IO rule of STYLE.md §2:
//!
//! - [`cutter`] (pure): cuts an MKV byte stream into a replayable stream header and clusters.
//! - [`upload`] (pure): what is buffered, sent and acknowledged; where to resume after a
//!   reconnect.
//! - [`ack`] (pure): PutMedia ACK JSON objects out of the response body.
//! - [`put_media`]: the async shell — one full-duplex HTTP/1.1 connection at a time, reconnects,
//!   pacing, progress and summary.
//! - [`http`]: TCP/TLS connection setup and the channel-fed request body.
//! - [`presign`]: presigned PutMedia URLs for ffmpeg and GStreamer.
//! - [`get_clip`]: `get-clip` (GetClip to a file) and `presign get-clip` (ranged clip URLs).
//! - `camera` (feature `webrtc`): `openkvs camera` and `openkvs viewer`, around `openkvs-camera`.
//! - [`timearg`] (pure): `--start`/`--end` times (ISO-8601, epoch seconds, `-15m`, `now`).

pub(crate) mod ack;
pub(crate) mod aws_config;
#[cfg(feature = "webrtc")]
pub(crate) mod camera;
pub(crate) mod cutter;
pub(crate) mod duration;
pub(crate) mod get_clip;
pub(crate) mod http;
pub(crate) mod presign;
pub(crate) mod put_media;
pub(crate) mod timearg;
pub(crate) mod upload;
