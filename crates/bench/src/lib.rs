//! Shared pieces of the benchmark binaries: a minimal SigV4-signing HTTP/1.1 client over raw
//! TCP (full duplex, chunked), a synthetic camera (MKV generator) and process sampling via
//! `/proc`. Nothing here is used by the server.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod backends;
pub mod camera;
pub mod http;
pub mod procstat;
pub mod server;

/// Percentile of a sorted slice (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
