"""`GET /metrics`: Prometheus text format, unauthenticated like /health, counters that move with
real traffic, and labels from closed sets only (no stream names)."""

from __future__ import annotations

import re

import requests

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import unique


def _scrape(server) -> dict[str, float]:
    r = requests.get(server.endpoint + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+(?:\{[^}]*\})?) (\S+)', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_move_with_ingest_and_name_no_stream(server, kvs):
    name = unique("metrics-stream")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    before = _scrape(server)
    _, body, gens = mkvgen.stream(4, start_tc=1_770_000_000_000)
    pm = kp.put_media(server.endpoint, name, body, max_wait=10)
    assert pm.status == 200, pm.describe()
    assert len(kp.events(pm.acks, "PERSISTED")) == 4
    after = _scrape(server)
    delta = lambda k: after.get(k, 0) - before.get(k, 0)  # noqa: E731
    assert delta("openkvs_fragments_persisted_total") >= 4
    assert delta("openkvs_fragment_bytes_persisted_total") > 0
    assert delta('openkvs_putmedia_acks_total{event="PERSISTED"}') >= 4
    assert delta("openkvs_persist_seconds_count") >= 4
    assert after['openkvs_persist_seconds_bucket{le="+Inf"}'] == after["openkvs_persist_seconds_count"]
    assert delta('openkvs_http_requests_total{route="/putMedia",status="2xx"}') >= 1
    assert "openkvs_putmedia_sessions" in after and "openkvs_uptime_seconds" in after
    text = requests.get(server.endpoint + "/metrics", timeout=10).text
    assert name not in text, "metrics must not carry stream names"


def test_error_acks_are_counted_by_error_id(server, kvs):
    """Malformed MKV gets an ERROR ack (kvs-api.md §7.4); its ErrorId is a label."""
    name = unique("metrics-err")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    before = _scrape(server)
    pm = kp.put_media(server.endpoint, name, b"this is not matroska" * 200, max_wait=10)
    errors = kp.events(pm.acks, "ERROR")
    assert errors, pm.describe()
    key = f'openkvs_putmedia_acks_total{{event="ERROR",error_id="{errors[0].error_id}"}}'
    after = _scrape(server)
    assert after.get(key, 0) - before.get(key, 0) >= 1, key


def test_refused_requests_count_as_4xx(server):
    key = 'openkvs_http_requests_total{route="/putMedia",status="4xx"}'
    before = _scrape(server)
    resp = requests.post(server.endpoint + "/putMedia", data=b"\x00" * 64, timeout=10)
    assert resp.status_code in (400, 403)
    assert _scrape(server).get(key, 0) > before.get(key, 0)
