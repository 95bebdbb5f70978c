"""The bad-input matrix of issue 8: ONE table-driven test. Each row sends something hostile or
broken to a private server and states the error KVS (or openkvs, where KVS has no rule) answers:
an HTTP status and exception type, a PutMedia ack ErrorId, or a WebSocket close. After every row
the server must still answer GET /health with 200 and every fragment acked PERSISTED by an
earlier row must still read back identical (the Ledger of test_ingest_errors.py).

The PutMedia rows reuse test_ingest_errors.py's row functions (that test runs them against the
session server with extra rows of its own); everything else is here. Keep the whole matrix under
2 minutes: rows that wait for a timeout use the smallest timeout that proves the point.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.parse

import botocore.auth
import botocore.credentials
import pytest
import requests
from botocore.awsrequest import AWSRequest

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
import test_ingest_errors as ie
from e2e_support import (REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, ServerProcess, raw_error,
                         server_binary, signed_request, unique)
from ws_client import WebSocket


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
    base = tmp_path_factory.mktemp("bad-input")
    # a 3 s header read timeout so that the slowloris row is quick (default 30 s)
    s = ServerProcess(base / "data", log_dir=base,
                      extra_args=["--no-turn", "--header-read-timeout", "3"]).start()
    yield s
    s.kill()


@pytest.fixture(scope="module")
def ledger(srv):
    return ie.Ledger(srv)


# -- small clients -------------------------------------------------------------------------------

def expect_http(resp: requests.Response, status: int, etype: str | None) -> None:
    got_type, msg = raw_error(resp)
    assert resp.status_code == status and (etype is None or got_type == etype), (
        f"want HTTP {status} {etype}, got {resp.status_code} {got_type}: {resp.text[:300]!r}")


def presign(url: str, *, method: str = "GET", expires: int = 300, region: str = REGION,
            shift: dt.timedelta | None = None) -> str:
    req = AWSRequest(method=method, url=url, data=b"")
    creds = botocore.credentials.Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    auth = botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", region, expires=expires)
    if shift:
        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: real(*a, **k) + shift
        try:
            auth.add_auth(req)
        finally:
            botocore.auth.get_current_datetime = real
    else:
        auth.add_auth(req)
    return req.url


def channel_ws_url(srv, arn: str, client_id: str | None = None, **kw) -> str:
    q = {"X-Amz-ChannelARN": arn}
    if client_id:
        q["X-Amz-ClientId"] = client_id
    url = srv.endpoint + "/?" + urllib.parse.urlencode(q)
    return presign(url, **kw)


def new_channel(srv) -> str:
    return srv.client().create_signaling_channel(ChannelName=unique("bad-ch"))["ChannelARN"]


def connect(srv, arn, client_id=None) -> WebSocket:
    ws = WebSocket(channel_ws_url(srv, arn, client_id))
    return ws


# -- rows: media input (reused from test_ingest_errors) -------------------------------------------

def _ingest(fn):
    def row(srv, ledger):
        fn(srv, srv.client(), ledger)
    return row


def row_oversized_element(srv, ledger):
    """A SimpleBlock that claims 1 GiB: the parser cannot buffer it -> stream-level ERROR 4001."""
    name = unique("bad")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    pm = kp.PutMedia(srv.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    head = mkvgen.document_header([mkvgen.video_track()])
    cluster = mkvgen.unknown(mkvgen.CLUSTER) + mkvgen.uint_el(mkvgen.TIMECODE, ie.BASE_TC, 8)
    block = mkvgen.id_bytes(mkvgen.SIMPLE_BLOCK) + mkvgen.size_vint(1 << 30, 8) + b"\x81\x00\x00\x80"
    pm.send(head + cluster + block + bytes(64 * 1024))
    assert pm.wait_for(lambda a: kp.events(a, "ERROR"), 10), pm.describe()
    pm.close()
    assert [a.error_id for a in kp.events(pm.acks, "ERROR")] == [4001], pm.describe()


def row_sixty_mb_fragment(srv, ledger):
    """60 MB in one fragment (> 50 MB): ERROR 4001 for it, the fragments around it persist."""
    filler = bytes(1 << 20)
    huge = mkvgen.gop(ie.BASE_TC + 1000, duration_ms=2400, fps=25, filler=filler)  # 60 x 1 MiB
    assert huge.media_bytes >= 60 * (1 << 20)
    gens = [mkvgen.gop(ie.BASE_TC), huge, mkvgen.gop(ie.BASE_TC + 4000)]
    ie.expect_fragment_error(srv, srv.client(), ledger, gens=gens, bad_index=1, error_id=4001,
                             chunk_size=1 << 18)


def base_range() -> dict:
    """PRODUCER_TIMESTAMP range around ie.BASE_TC, where these rows put their fragments."""
    t = dt.datetime.fromtimestamp(ie.BASE_TC / 1000, dt.timezone.utc)
    return {"StartTimestamp": t - dt.timedelta(seconds=5),
            "EndTimestamp": t + dt.timedelta(seconds=30)}


def vp8_stream(srv, ledger) -> str:
    name = unique("bad-vp8")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    track = mkvgen.Track(1, "V_VP8", "video", codec_private=b"", name="vp8")
    gens = [mkvgen.gop(ie.BASE_TC + i * 1000) for i in range(2)]
    pm = ie.push_gens(srv, name, gens, head=mkvgen.document_header([track]))
    pers = ie.persisted_map(pm)
    assert len(pers) == 2, pm.describe()
    for g in gens:
        ledger.add(name, pers[g.timecode], g)
    return name


def row_wrong_codec_get_clip(srv, ledger):
    name = vp8_stream(srv, ledger)
    am = kp.archived(srv, name, "GET_CLIP")
    try:
        am.get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": base_range()})
    except am.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "UnsupportedStreamMediaTypeException", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    else:
        raise AssertionError("GetClip of a VP8 stream succeeded")


def row_wrong_codec_hls(srv, ledger):
    name = vp8_stream(srv, ledger)
    am = kp.archived(srv, name, "GET_HLS_STREAMING_SESSION_URL")
    try:
        am.get_hls_streaming_session_url(StreamName=name, PlaybackMode="ON_DEMAND",
                                         HLSFragmentSelector={
                                             "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                             "TimestampRange": base_range()})
    except am.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "UnsupportedStreamMediaTypeException", e.response
    else:
        raise AssertionError("GetHLSStreamingSessionURL of a VP8 stream succeeded")


# -- rows: authentication --------------------------------------------------------------------------

def row_bad_signature(srv, ledger):
    r = signed_request(srv.endpoint, "/listStreams", secret_key="wrong" + ROOT_SECRET_KEY[5:])
    expect_http(r, 403, "InvalidSignatureException")


def row_unknown_access_key(srv, ledger):
    r = signed_request(srv.endpoint, "/listStreams", access_key="AKIANOTAKNOWNKEY0000")
    expect_http(r, 403, "UnrecognizedClientException")


def row_expired_signature(srv, ledger):
    r = signed_request(srv.endpoint, "/listStreams", shift=-dt.timedelta(minutes=20))
    expect_http(r, 403, "InvalidSignatureException")
    assert "Signature expired" in r.text, r.text


def row_replayed_request(srv, ledger):
    """SigV4 has no nonce: a captured request is valid for its 15-minute window (as at AWS),
    so the defence is the window. Replayed later (signed 16 min ago) it is refused; replayed
    with another body it is refused at once."""
    r = signed_request(srv.endpoint, "/listStreams", shift=-dt.timedelta(minutes=16))
    expect_http(r, 403, "InvalidSignatureException")
    r = signed_request(srv.endpoint, "/listStreams", body=b"{}",
                       tamper_body=b'{"MaxResults":1}')
    expect_http(r, 403, "InvalidSignatureException")


def row_foreign_region_signature(srv, ledger):
    """Any signing region is accepted (clients sign with their configured region, kvs-api.md
    §14.1); the signature still needs the secret. A foreign-region ARN names nothing here."""
    r = signed_request(srv.endpoint, "/listStreams", region="eu-west-1")
    assert r.status_code == 200, r.text
    r = signed_request(srv.endpoint, "/describeStream", region="eu-west-1", body=(
        '{"StreamARN":"arn:aws:kinesisvideo:eu-west-1:111122223333:stream/x/1700000000000"}'))
    expect_http(r, 404, "ResourceNotFoundException")
    # a wrong region with a wrong secret is still a bad signature
    r = signed_request(srv.endpoint, "/listStreams", region="eu-west-1", secret_key="x" * 40)
    expect_http(r, 403, "InvalidSignatureException")


def row_presigned_after_expiry(srv, ledger):
    name = unique("bad")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    q = urllib.parse.urlencode({"x-amzn-stream-name": name,
                                "x-amzn-fragment-timecode-type": "ABSOLUTE",
                                "x-amzn-fragment-acknowledgment-required": "0"})
    url = presign(f"{srv.endpoint}/putMedia?{q}", method="POST", expires=1)
    time.sleep(2.2)
    _, body, _ = mkvgen.stream(1)
    r = requests.post(url, data=body, timeout=15)
    expect_http(r, 403, None)
    assert "xpired" in r.text, r.text


def hls_url(srv, ledger) -> str:
    name = unique("bad-hls")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    gens = [mkvgen.gop(ie.BASE_TC + i * 1000) for i in range(2)]
    pm = ie.push_gens(srv, name, gens)
    pers = ie.persisted_map(pm)
    for g in gens:
        ledger.add(name, pers[g.timecode], g)
    am = kp.archived(srv, name, "GET_HLS_STREAMING_SESSION_URL")
    return am.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": base_range()},
    )["HLSStreamingSessionURL"]


def row_tampered_hls_token(srv, ledger):
    url = hls_url(srv, ledger)
    assert requests.get(url, timeout=15).status_code == 200
    u = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(u.query)["SessionToken"][0]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (flipped, token[:-10], "x", token + "x" * 5000):
        r = requests.get(url.replace(urllib.parse.quote(token, safe=""), urllib.parse.quote(bad, safe=""))
                         .replace(token, bad), timeout=15)
        # openkvs names this InvalidSignatureException (the token is an HMAC over its claims)
        expect_http(r, 403, "InvalidSignatureException")


# -- rows: names, paths, sizes -----------------------------------------------------------------------

def row_path_traversal_names(srv, ledger):
    kv = srv.client()
    for bad in ("../../etc", "a/b", "a\\b", "%2e%2e%2f", "a\u0000b", ""):
        r = signed_request(srv.endpoint, "/createStream",
                           body=json.dumps({"StreamName": bad}))
        expect_http(r, 400, "InvalidArgumentException")
    # ".." and "." match KVS's name pattern [a-zA-Z0-9_.-]+ and are valid stream names; the
    # store's directory is "<name>.<creation ms>", so they stay inside media/
    for name in ("..", "."):
        kv.create_stream(StreamName=name, DataRetentionInHours=1)
        gens = [mkvgen.gop(ie.BASE_TC)]
        pm = ie.push_gens(srv, name, gens)
        pers = ie.persisted_map(pm)
        assert len(pers) == 1, pm.describe()
        ledger.add(name, pers[gens[0].timecode], gens[0])
    r = signed_request(srv.endpoint, "/describeStream", body=json.dumps(
        {"StreamARN": "arn:aws:kinesisvideo:us-east-1:111122223333:stream/../../etc/1"}))
    expect_http(r, 400, "InvalidArgumentException")
    media = srv.data_dir / "media"
    for p in media.iterdir():
        assert p.name == ".trash" or p.name.rsplit(".", 1)[-1].isdigit(), p
        assert p.resolve().parent == media.resolve(), p
    assert not (srv.data_dir.parent / "etc").exists()


def row_path_traversal_query(srv, ledger):
    url = hls_url(srv, ledger)
    u = urllib.parse.urlsplit(url)
    base = f"{u.scheme}://{u.netloc}"
    token = urllib.parse.parse_qs(u.query)["SessionToken"][0]
    q = urllib.parse.urlencode({"SessionToken": token, "FragmentNumber": "../../../etc/passwd"})
    r = requests.get(f"{base}/hls/v1/getMP4MediaFragment.mp4?{q}", timeout=15)
    expect_http(r, 400, "InvalidArgumentException")
    # static web files: encoded and raw dot-segments never leave web/
    for path in ("/web/../Cargo.toml", "/web/%2e%2e/Cargo.toml", "/web/..%2fCargo.toml",
                 "/%2e%2e/%2e%2e/etc/passwd"):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        resp = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            resp += b
        s.close()
        status = int(resp.split(b" ", 2)[1])
        assert status in (400, 403, 404), f"{path}: HTTP {status}"
        assert b"[workspace]" not in resp and b"root:" not in resp, f"{path} leaked a file"


def row_oversized_json_body(srv, ledger):
    big = '{"StreamName":"' + "a" * (2 << 20) + '"}'
    r = signed_request(srv.endpoint, "/createStream", body=big)
    expect_http(r, 413, None)
    # a declared length over the limit is refused before the body is read
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /listStreams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000000000\r\n\r\n{")
    s.settimeout(10)
    head = s.recv(4096)
    s.close()
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def row_oversized_ws_frame(srv, ledger):
    arn = new_channel(srv)
    ws = connect(srv, arn)
    assert ws.status == 101, ws.head
    ws.send_frame(b"x" * (1 << 20))  # 1 MiB text frame; the limit is 128 KiB
    code = ws.wait_close(10)
    ws.close()
    # tungstenite drops the connection with a bare close frame (no status code) or a reset
    assert code in (1009, 1005, "eof"), f"the connection is still open after 10 s: {code}"
    # the channel still works: a new master connects
    ws2 = connect(srv, arn)
    assert ws2.status == 101, ws2.head
    ws2.close()


def row_second_master(srv, ledger):
    """One master per channel; a new master connection replaces the old one (§13.4)."""
    arn = new_channel(srv)
    m1 = connect(srv, arn)
    assert m1.status == 101, m1.head
    time.sleep(0.4)  # ConnectAsMaster: 3 per second per channel
    m2 = connect(srv, arn)
    assert m2.status == 101, m2.head
    code = m1.wait_close(5)
    m1.close()
    assert code != "open", "the replaced master's connection stayed open"
    m2.close()


def row_eleventh_viewer(srv, ledger):
    arn = new_channel(srv)
    viewers = []
    try:
        for i in range(10):
            ws = connect(srv, arn, f"viewer-{i}")
            assert ws.status == 101, (i, ws.head)
            viewers.append(ws)
            time.sleep(0.34)  # ConnectAsViewer: 3 per second per channel
        time.sleep(0.34)
        ws = connect(srv, arn, "viewer-10")
        try:
            assert ws.status == 400 and ws.error_type() == "ClientLimitExceededException", ws.head
        finally:
            ws.close()
    finally:
        for v in viewers:
            v.close()


def row_slowloris_headers(srv, ledger):
    """A client that sends its request head one byte at a time, forever: the server closes the
    connection after --header-read-timeout (3 s here) and serves others meanwhile."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    t0 = time.monotonic()
    s.settimeout(0.5)
    closed = False
    while not closed and time.monotonic() - t0 < 15:
        assert requests.get(srv.endpoint + "/health", timeout=5).status_code == 200
        try:
            s.sendall(b"a")
            closed = s.recv(4096) == b""  # (a 408 response would come first; then EOF)
        except socket.timeout:
            pass
        except OSError:
            closed = True
    took = time.monotonic() - t0
    s.close()
    assert closed, "a request head trickled for 15 s is still being read"
    assert 2.5 < took < 6, f"closed after {took:.1f}s, the header read timeout is 3 s"


def row_slow_upload(srv, ledger):
    """PutMedia trickling one byte every 1.5 s, longer than the header read timeout: the body
    is not cut (that timer is for request heads only), and other producers are unaffected."""
    name = unique("bad-slow")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    pm = kp.PutMedia(srv.endpoint, name).open()
    assert pm.wait_status(10) == 200
    head = mkvgen.document_header([mkvgen.video_track()])
    other = unique("bad")
    srv.client().create_stream(StreamName=other, DataRetentionInHours=24)
    for b in head[:4]:
        assert pm.send(bytes([b])), pm.describe()
        time.sleep(1.5)
    assert not pm.done.is_set(), f"the slow upload was cut: {pm.describe()}"
    gens = [mkvgen.gop(ie.BASE_TC + i * 1000) for i in range(2)]
    p2 = ie.push_gens(srv, other, gens)
    pers = ie.persisted_map(p2)
    assert len(pers) == 2, p2.describe()
    for g in gens:
        ledger.add(other, pers[g.timecode], g)
    # the slow producer can still finish its upload
    gens0 = mkvgen.gop(ie.BASE_TC + 100_000)
    assert pm.send(head[4:] + gens0.bytes + mkvgen.end_of_fragment()), pm.describe()
    assert pm.wait_persisted(1, 10), pm.describe()
    ledger.add(name, kp.events(pm.acks, "PERSISTED")[0].number, gens0)
    pm.close()


def row_thousand_idle_connections(srv, ledger):
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        t0 = time.monotonic()
        r = requests.get(srv.endpoint + "/health", timeout=10)
        took = time.monotonic() - t0
        assert r.status_code == 200 and took < 2.0, f"/health took {took:.2f}s with 1000 idle"
        assert srv.client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        for s in socks:
            s.close()


ROWS = [
    # (id, expected, row)
    ("garbage-mkv", "PutMedia ERROR 4006, response ends", _ingest(ie.row_random_bytes)),
    ("truncated-mkv", "complete fragments PERSISTED, the cut one never listed",
     _ingest(ie.row_truncated_upload)),
    ("oversized-element", "PutMedia ERROR 4001 (stream level)", row_oversized_element),
    ("four-tracks", "PutMedia ERROR 4012, response ends", _ingest(ie.row_four_tracks)),
    ("unknown-track", "PutMedia ERROR 4010 for that fragment", _ingest(ie.row_unknown_track_number)),
    ("decreasing-timecodes", "PutMedia ERROR 4004 for that fragment",
     _ingest(ie.row_decreasing_timecodes)),
    ("eleven-second-fragment", "PutMedia ERROR 4002 for that fragment",
     _ingest(ie.row_overlong_fragment)),
    ("sixty-mb-fragment", "PutMedia ERROR 4001 for that fragment", row_sixty_mb_fragment),
    ("wrong-codec-getclip", "400 UnsupportedStreamMediaTypeException", row_wrong_codec_get_clip),
    ("wrong-codec-hls", "400 UnsupportedStreamMediaTypeException", row_wrong_codec_hls),
    ("bad-signature", "403 InvalidSignatureException", row_bad_signature),
    ("unknown-access-key", "403 UnrecognizedClientException", row_unknown_access_key),
    ("expired-signature", "403 InvalidSignatureException 'Signature expired'",
     row_expired_signature),
    ("replayed-request", "403 InvalidSignatureException (outside the window / other body)",
     row_replayed_request),
    ("foreign-region", "accepted; foreign ARN 404 ResourceNotFoundException",
     row_foreign_region_signature),
    ("presigned-after-expiry", "403, 'expired'", row_presigned_after_expiry),
    ("tampered-hls-token", "403 InvalidSignatureException", row_tampered_hls_token),
    ("path-traversal-names", "400 InvalidArgumentException", row_path_traversal_names),
    ("path-traversal-query", "400 InvalidArgumentException / 404, nothing leaked",
     row_path_traversal_query),
    ("oversized-json", "413 (declared length: before the body is read)",
     row_oversized_json_body),
    ("oversized-ws-frame", "WebSocket closed (1009), channel still usable", row_oversized_ws_frame),
    ("second-master", "accepted; the first master is disconnected", row_second_master),
    ("eleventh-viewer", "400 ClientLimitExceededException before the upgrade",
     row_eleventh_viewer),
    ("slowloris-headers", "connection closed after --header-read-timeout",
     row_slowloris_headers),
    ("slow-upload", "body not cut; others unaffected; it still persists", row_slow_upload),
    ("thousand-idle-connections", "/health < 2 s, API works", row_thousand_idle_connections),
]


@pytest.mark.parametrize("row", [r[2] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(srv, ledger, row):
    row(srv, ledger)
    ledger.check()  # /health 200 and every fragment acked so far intact
