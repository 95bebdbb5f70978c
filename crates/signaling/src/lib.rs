//! The WebRTC signaling channel of openkvs as a pure, synchronous state machine
//! (`kvs-api.md` §13.4–§13.6, quotas §15.3).
//!
//! One [`Channel`] per signaling channel holds its master, its viewers (by client id) and the
//! messages waiting for recipients that are not connected. It parses client text frames,
//! routes them (viewer → master with `senderClientId`, master → viewer by
//! `recipientClientId`), retains undelivered ones for the channel's `MessageTtlSeconds`,
//! enforces the connect, message-rate, payload, idle and connection-age limits, and renders the
//! exact server JSON including `STATUS_RESPONSE`, `GO_AWAY` and `RECONNECT_ICE_SERVER`.
//!
//! What it deliberately does not do: sockets, tasks, timers, clocks, SigV4, or looking up the
//! channel in the catalog. The async WebSocket shell in `openkvs-api` does those and validates
//! the client id (it is a [`kvs_core::ClientId`] by the time it reaches [`Role`]). Storage
//! sessions (§13.8) and cross-server fan-out are not modelled yet.
//!
//! # Drive loop
//!
//! The shell owns the channel (one task, no `Mutex`) and repeats:
//!
//! 1. Feed exactly one [`Input`] with [`Channel::handle_input`]. Every input except
//!    [`Input::Shutdown`] carries the current [`MonoTime`]; the channel never reads a clock.
//! 2. Drain [`Channel::poll_output`] until it returns `None`, performing each [`Output`] in
//!    order: [`Output::Send`] a text frame, [`Output::Close`] a socket, [`Output::Log`] at
//!    debug level. The drain always ends with one [`Output::Timeout`]; remember its deadline.
//! 3. Wait for the next socket event, connect request, or the deadline (then feed
//!    [`Input::Timeout`]).
//!
//! Ordering rule (as in str0m's "single-mutation invariant"): drain completely before feeding
//! the next input. Outputs are in causal order, so a `Send` to a connection always precedes
//! the `Close` of that connection, and a connection is never sent anything after its `Close`.
//! The channel forgets a connection when it emits `Close`; frames that raced with it are
//! ignored (logged as [`Event::UnknownConn`]).
//!
//! Time only moves forward: an input stamped earlier than one already handled is treated as
//! happening at the later time. Timers are checked on every input, so a late or missing
//! [`Input::Timeout`] delays closes but never lets an expired message through.
//!
//! [`Input::Connect`] is the one input that can fail: an `Err` is the refusal the shell answers
//! before the WebSocket upgrade (`ClientLimitExceededException` for the viewer and connect-rate
//! limits, see [`Error::kind`]). Refused messages never fail `handle_input`; they become a
//! `STATUS_RESPONSE` when the message carried a `correlationId`, and a log event either way.
//!
//! ```
//! use kvs_core::ClientId;
//! use openkvs_signaling::{Channel, Config, ConnId, Input, MonoTime, Output, Role};
//!
//! let mut ch = Channel::new(Config::default(), MonoTime::ZERO).unwrap();
//! let now = MonoTime::from_ms(1000);
//! let viewer = Role::Viewer { client_id: ClientId::parse("viewer-1").unwrap() };
//! ch.handle_input(Input::Connect { conn: ConnId(1), role: Role::Master, now }).unwrap();
//! ch.handle_input(Input::Connect { conn: ConnId(2), role: viewer, now }).unwrap();
//! let text = r#"{"action":"SDP_OFFER","messagePayload":"e30="}"#.to_owned();
//! ch.handle_input(Input::Message { conn: ConnId(2), text, now }).unwrap();
//! let mut sent = Vec::new();
//! while let Some(out) = ch.poll_output() {
//!     match out {
//!         Output::Send { conn, text } => sent.push((conn, text)),
//!         Output::Timeout(deadline) => assert!(deadline > now),
//!         _ => {}
//!     }
//! }
//! assert_eq!(
//!     sent,
//!     [(ConnId(1), r#"{"messageType":"SDP_OFFER","messagePayload":"e30=","senderClientId":"viewer-1"}"#.to_owned())]
//! );
//! ```
//!
//! Design notes: `DESIGN.md` beside this crate's `Cargo.toml`.
#![deny(missing_docs)]

mod channel;
mod config;
mod error;
mod pending;
mod rate;
mod time;
mod wire;

pub use channel::{Action, Channel, CloseReason, ConnId, DropReason, Event, Input, Output, Role};
pub use config::{Config, Rate};
pub use error::{Error, Result};
pub use time::MonoTime;
pub use wire::go_away;
