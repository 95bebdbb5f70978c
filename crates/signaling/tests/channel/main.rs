//! Simulation tests of [`openkvs_signaling::Channel`] with virtual time: no sleeping, no sockets.
//! The harness ([`sim::Sim`]) checks invariants after every input and asserts that nothing is
//! ever sent to a connection that is not open.

mod connections;
mod limits;
mod props;
mod retention;
mod routing;
mod sim;
mod timers;
