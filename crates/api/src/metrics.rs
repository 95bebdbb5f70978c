//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4), hand-rolled on atomics:
//! a handful of counters, gauges and one histogram need no metrics framework.
//!
//! Labels are closed sets only (status classes, operation names from a fixed list, ack events,
//! KVS ErrorIds), never stream or channel names: the endpoint is unauthenticated, like
//! `/health`, for scrapers on the operator's network, and must not leak names or grow without
//! bound.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};

use crate::AppState;

/// Upper bounds (seconds) of the persist-latency histogram.
const PERSIST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// HTTP routes counted by name; anything else is `other` (bounded label set).
const ROUTES: &[&str] = &[
    "/putMedia",
    "/getMedia",
    "/getMediaForFragmentList",
    "/listFragments",
    "/getClip",
    "/getHLSStreamingSessionURL",
    "/getDASHStreamingSessionURL",
    "/getDataEndpoint",
    "/getSignalingChannelEndpoint",
    "/v1/get-ice-server-config",
    "/v1/send-alexa-offer-to-master",
    "/hls/v1",
    "/dash/v1",
    "/clip/v1",
    "/web/v1",
    "/ui",
    "/health",
    "/metrics",
];

/// A cumulative histogram over fixed buckets.
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; PERSIST_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in PERSIST_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, le) in PERSIST_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)] // microseconds: exact below 2^53
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Process-wide counters, shared through [`AppState`].
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (route, status class) → requests.
    http: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    putmedia_sessions: AtomicI64,
    fragments_persisted: AtomicU64,
    bytes_persisted: AtomicU64,
    persist: Histogram,
    /// (event, error id or "") → acks sent.
    acks: Mutex<BTreeMap<(&'static str, u32), u64>>,
}

/// Counts a PutMedia session while it lives.
pub(crate) struct SessionGauge(AppState);

impl SessionGauge {
    pub(crate) fn new(st: AppState) -> Self {
        st.metrics.putmedia_sessions.fetch_add(1, Ordering::Relaxed);
        Self(st)
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0
            .metrics
            .putmedia_sessions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one HTTP response.
    pub(crate) fn http_request(&self, path: &str, status: u16) {
        let route = ROUTES
            .iter()
            .copied()
            .find(|r| path == *r || path.strip_prefix(r).is_some_and(|t| t.starts_with('/')))
            .unwrap_or(if path == "/" { "/" } else { "other" });
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        *self
            .http
            .lock()
            .expect("metrics lock poisoned")
            .entry((route, class))
            .or_default() += 1;
    }

    /// A fragment became durable after `took`.
    pub(crate) fn persisted(&self, bytes: u64, took: Duration) {
        self.fragments_persisted.fetch_add(1, Ordering::Relaxed);
        self.bytes_persisted.fetch_add(bytes, Ordering::Relaxed);
        self.persist.observe(took);
    }

    /// An ack was sent to a producer.
    pub(crate) fn ack(&self, event: &'static str, error_id: Option<u32>) {
        *self
            .acks
            .lock()
            .expect("metrics lock poisoned")
            .entry((event, error_id.unwrap_or(0)))
            .or_default() += 1;
    }

    fn render(&self, st: &AppState) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            "openkvs_uptime_seconds",
            "Seconds since the server started.",
            "gauge",
            st.started.elapsed().as_secs().to_string(),
        );
        gauge(
            "openkvs_putmedia_sessions",
            "PutMedia connections in progress.",
            "gauge",
            self.putmedia_sessions.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "openkvs_fragments_persisted_total",
            "Fragments stored durably (acknowledged PERSISTED).",
            "counter",
            self.fragments_persisted.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "openkvs_fragment_bytes_persisted_total",
            "Media bytes of the fragments stored durably.",
            "counter",
            self.bytes_persisted.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "openkvs_signaling_channels_active",
            "Signaling channels with a running state machine on this node.",
            "gauge",
            st.signaling.active_channels().to_string(),
        );
        #[cfg(feature = "redis")]
        if let Some((outbound, inbound)) = st.signaling.relayed() {
            let _ = writeln!(
                out,
                "# HELP openkvs_signaling_relayed_connections Signaling connections relayed between nodes through Redis.\n\
                 # TYPE openkvs_signaling_relayed_connections gauge\n\
                 openkvs_signaling_relayed_connections{{direction=\"to_owner\"}} {outbound}\n\
                 openkvs_signaling_relayed_connections{{direction=\"from_nodes\"}} {inbound}"
            );
        }
        self.persist.render(
            &mut out,
            "openkvs_persist_seconds",
            "Time from a complete fragment to its durable write (store and index).",
        );
        let _ = writeln!(
            out,
            "# HELP openkvs_putmedia_acks_total PutMedia acknowledgements sent, by event and ErrorId.\n\
             # TYPE openkvs_putmedia_acks_total counter"
        );
        for ((event, id), n) in self.acks.lock().expect("metrics lock poisoned").iter() {
            if *id == 0 {
                let _ = writeln!(out, "openkvs_putmedia_acks_total{{event=\"{event}\"}} {n}");
            } else {
                let _ = writeln!(
                    out,
                    "openkvs_putmedia_acks_total{{event=\"{event}\",error_id=\"{id}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP openkvs_http_requests_total HTTP responses, by route and status class.\n\
             # TYPE openkvs_http_requests_total counter"
        );
        for ((route, class), n) in self.http.lock().expect("metrics lock poisoned").iter() {
            let _ = writeln!(
                out,
                "openkvs_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}"
            );
        }
        out
    }
}

/// Middleware: counts every response by route and status class.
pub(crate) async fn count(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    st.metrics.http_request(&path, resp.status().as_u16());
    resp
}

/// `GET /metrics`.
pub(crate) async fn handler(State(st): State<AppState>) -> Response {
    let mut r = st.metrics.render(&st).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_a_closed_set() {
        let m = Metrics::default();
        m.http_request("/putMedia", 200);
        m.http_request("/hls/v1/getHLSMasterPlaylist.m3u8", 200);
        m.http_request("/hls/v1x", 404);
        m.http_request("/some/../random", 404);
        m.http_request("/", 101);
        let http = m.http.lock().unwrap();
        assert_eq!(http.get(&("/putMedia", "2xx")), Some(&1));
        assert_eq!(http.get(&("/hls/v1", "2xx")), Some(&1));
        assert_eq!(http.get(&("other", "4xx")), Some(&2));
        assert_eq!(http.get(&("/", "1xx")), Some(&1));
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(800));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(9));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert!(out.contains("x_sum 9.0308\n"), "{out}");
    }
}
