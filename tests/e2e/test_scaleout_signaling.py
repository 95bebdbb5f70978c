"""Signaling between nodes through Redis (`hub = "redis"`, issue 7): two or more `openkvs serve`
nodes share PostgreSQL (the channel catalog) and a real redis-server, all started here on
loopback ports. A viewer connected to node B reaches the master connected to node A; a dead
node's relayed clients are dropped; a Redis restart is a clear error and then recovers.

The binary must be built with the `redis` feature (tests/run.sh builds `--all-features`).
Design: crates/api/src/signaling_ws/cluster.rs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest

from e2e_support import (REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, ServerProcess, free_port,
                         server_binary, unique)
from test_scaleout import _missing, _wait_port, backends  # noqa: F401  (fixture)
from ws_client import WebSocket

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


class Redis:
    """A private redis-server on a loopback port; `restart()` keeps the port."""

    def __init__(self, exe: str):
        self.exe, self.port, self.proc = exe, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def redis():
    exe = shutil.which("redis-server")
    if not exe:
        _missing("redis-server (apt-get install redis-server)")
    r = Redis(exe)
    r.start()
    yield r
    r.stop()


def _has_redis_feature() -> bool:
    out = subprocess.run([str(server_binary()), "serve", "--help"], capture_output=True,
                         text=True).stdout
    return "--redis-url" in out and "Redis pub/sub between nodes" in out


def _node(base: Path, name: str, backends, redis) -> ServerProcess:
    return ServerProcess(base / name, log_dir=base / f"logs-{name}",
                         extra_args=["--catalog", "postgres", "--postgres-url", backends["pg_url"],
                                     "--hub", "redis", "--redis-url", redis.url, "--no-turn"])


@pytest.fixture(scope="module")
def nodes(backends, redis, tmp_path_factory):  # noqa: F811
    if not _has_redis_feature():
        _missing("an openkvs binary built with --features redis")
    base = tmp_path_factory.mktemp("signodes")
    a, b = _node(base, "a", backends, redis), _node(base, "b", backends, redis)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for n in (a, b):
            n.kill()


def _ws(node: ServerProcess, arn: str, client_id: str | None = None) -> WebSocket:
    q = {"X-Amz-ChannelARN": arn} | ({"X-Amz-ClientId": client_id} if client_id else {})
    req = AWSRequest(method="GET", url=node.endpoint + "/?" + urllib.parse.urlencode(q))
    creds = botocore.credentials.Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", REGION, expires=300).add_auth(req)
    return WebSocket(req.url, timeout=10)


def _send(ws: WebSocket, action: str, payload: dict, recipient: str | None = None):
    msg = {"action": action,
           "messagePayload": base64.b64encode(json.dumps(payload).encode()).decode()}
    if recipient:
        msg["recipientClientId"] = recipient
    ws.send_frame(json.dumps(msg).encode())


def _recv(ws: WebSocket, timeout: float = 10.0) -> dict | None:
    """The next relayed message as a dict; None on close/EOF/timeout."""
    ws.sock.settimeout(timeout)
    try:
        while True:
            op, data = ws.read_frame()
            if op == 1:
                return json.loads(data)
            if op == 8:
                return None
    except (OSError, EOFError):
        return None


def _payload(msg: dict) -> dict:
    return json.loads(base64.b64decode(msg["messagePayload"]))


def _connect(node, arn, client_id=None, timeout=20.0) -> WebSocket:
    """Connects, retrying 503s (a channel changing owner) until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ws = _ws(node, arn, client_id)
        if ws.status == 101 or time.monotonic() > deadline:
            assert ws.status == 101, ws.head
            return ws
        ws.close()
        time.sleep(0.5)


def _exchange(master: WebSocket, viewer: WebSocket, client_id: str, n: int = 10):
    """The viewer sends an offer and `n` numbered candidates; the master gets them in order and
    answers; the viewer gets the answer."""
    _send(viewer, "SDP_OFFER", {"type": "offer", "sdp": f"o={client_id}"})
    for i in range(n):
        _send(viewer, "ICE_CANDIDATE", {"candidate": f"candidate:{i}", "sdpMid": "0"})
    got = []
    while len(got) < n + 1:
        m = _recv(master)
        assert m is not None, f"master closed after {len(got)} messages"
        assert m.get("messageType") != "GO_AWAY", "the master was asked to reconnect"
        assert m["senderClientId"] == client_id, m
        got.append(m)
    assert got[0]["messageType"] == "SDP_OFFER"
    assert [_payload(m)["candidate"] for m in got[1:]] == [f"candidate:{i}" for i in range(n)]
    _send(master, "SDP_ANSWER", {"type": "answer", "sdp": f"for-{client_id}"}, client_id)
    m = _recv(viewer)
    assert m is not None and m["messageType"] == "SDP_ANSWER", m
    assert _payload(m)["sdp"] == f"for-{client_id}"


def test_js_sdk_master_on_a_viewers_on_b(nodes):
    a, b = nodes
    if shutil.which("node") is None or not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("node and tests/node/node_modules are needed (tests/run.sh installs them)",
                    pytrace=False)
    env = dict(os.environ, OPENKVS_ENDPOINT_A=a.endpoint, OPENKVS_ENDPOINT_B=b.endpoint,
               AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=ROOT_SECRET_KEY,
               AWS_REGION=REGION)
    p = subprocess.run(["node", "--test", "signaling_nodes.test.mjs"], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (f"node --test failed:\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}\n"
                               f"A: {a.logs()}\nB: {b.logs()}")


def test_messages_cross_nodes_in_order_both_ways(nodes):
    a, b = nodes
    arn = a.client().create_signaling_channel(ChannelName=unique("x"))["ChannelARN"]
    master = _connect(a, arn)
    viewer_b = _connect(b, arn, "vb")
    viewer_a = _connect(a, arn, "va")
    try:
        _exchange(master, viewer_b, "vb", n=20)  # ICE: 20 per second per connection
        _exchange(master, viewer_a, "va", n=5)
    finally:
        for w in (master, viewer_b, viewer_a):
            w.close()


def test_one_master_per_channel_across_nodes(nodes):
    """A second master on another node replaces the first (KVS: newest master wins), exactly
    as on one node: the channel's state machine runs once, on its owner."""
    a, b = nodes
    arn = a.client().create_signaling_channel(ChannelName=unique("m"))["ChannelARN"]
    first = _connect(a, arn)
    second = _connect(b, arn)
    try:
        assert first.wait_close(timeout=10) in (1000, 1001, "eof"), "the first master stays open"
        viewer = _connect(a, arn, "v1")
        _exchange(second, viewer, "v1", n=3)
        viewer.close()
    finally:
        first.close()
        second.close()


def test_dead_owner_node_drops_relayed_viewers_and_another_node_takes_over(
        backends, redis, tmp_path):  # noqa: F811
    """Node C owns the channel (its master connected first) and is SIGKILLed: the viewer on
    node D gets GO_AWAY and a close within the presence expiry, and the channel then works on D."""
    if not _has_redis_feature():
        _missing("an openkvs binary built with --features redis")
    c, d = _node(tmp_path, "c", backends, redis), _node(tmp_path, "d", backends, redis)
    try:
        c.start()
        d.start()
        arn = c.client().create_signaling_channel(ChannelName=unique("dead"))["ChannelARN"]
        master = _connect(c, arn)
        viewer = _connect(d, arn, "v-d")
        _exchange(master, viewer, "v-d", n=2)
        os.kill(c.proc.pid, signal.SIGKILL)
        c.proc.wait()
        t0 = time.monotonic()
        msgs = []
        while True:
            m = _recv(viewer, timeout=30)
            if m is None:
                break
            msgs.append(m)
        waited = time.monotonic() - t0
        assert any(m.get("messageType") == "GO_AWAY" for m in msgs), msgs
        assert waited < 25, f"the relayed viewer lingered {waited:.1f}s after its owner died"
        master2 = _connect(d, arn, timeout=20)
        viewer2 = _connect(d, arn, "v-d2")
        _exchange(master2, viewer2, "v-d2", n=2)
        for w in (master, viewer, master2, viewer2):
            w.close()
    finally:
        for n in (c, d):
            n.kill()


def test_redis_restart_is_a_clear_error_then_recovers(nodes, redis):
    a, b = nodes
    arn = a.client().create_signaling_channel(ChannelName=unique("rr"))["ChannelARN"]
    local_arn = a.client().create_signaling_channel(ChannelName=unique("rl"))["ChannelARN"]
    master = _connect(a, arn)
    viewer = _connect(b, arn, "v-r")
    local_master = _connect(a, local_arn)
    local_viewer = _connect(a, local_arn, "v-l")
    _exchange(master, viewer, "v-r", n=2)
    redis.stop()
    try:
        # The relayed viewer loses its path to the owner: GO_AWAY and a close, promptly.
        msgs = []
        while (m := _recv(viewer, timeout=15)) is not None:
            msgs.append(m)
        assert any(m.get("messageType") == "GO_AWAY" for m in msgs), msgs
        # New connections cannot find their channel's node: 503, said clearly.
        refused = _ws(b, arn, "v-r2")
        assert refused.status == 503, refused.head
        assert refused.error_type() == "ServiceUnavailable", refused.head
        refused.close()
        # A master and viewer on the same node keep talking.
        _exchange(local_master, local_viewer, "v-l", n=2)
    finally:
        redis.start()
    # Recovery: within a few refresh periods a viewer on B reaches a master on A again (the
    # master reconnects if its node was told to hand the channel over).
    deadline = time.monotonic() + 30
    while True:
        viewer2 = None
        try:
            viewer2 = _connect(b, arn, "v-r3", timeout=20)
            _exchange(master, viewer2, "v-r3", n=2)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            # The master's node may have handed the channel over (GO_AWAY): reconnect it, as
            # the SDK's users do on GO_AWAY.
            master.close()
            time.sleep(1)
            master = _connect(a, arn)
        finally:
            if viewer2:
                viewer2.close()
    for w in (master, local_master, local_viewer):
        w.close()


def test_offer_sent_before_the_master_connects_is_kept_across_nodes(nodes):
    """Message retention (§13.6, the channel's MessageTtlSeconds): a viewer on node B offers
    before any master exists; the channel then lives on B. A master connecting to node A later
    is relayed to B and still gets the offer, and its answer reaches the viewer."""
    a, b = nodes
    arn = a.client().create_signaling_channel(
        ChannelName=unique("ttl"), SingleMasterConfiguration={"MessageTtlSeconds": 30}
    )["ChannelARN"]
    viewer = _connect(b, arn, "early")
    try:
        _send(viewer, "SDP_OFFER", {"type": "offer", "sdp": "o=early"})
        time.sleep(1.0)
        master = _connect(a, arn)
        try:
            m = _recv(master)
            assert m is not None and m["messageType"] == "SDP_OFFER", m
            assert m["senderClientId"] == "early" and _payload(m)["sdp"] == "o=early"
            _send(master, "SDP_ANSWER", {"type": "answer", "sdp": "for-early"}, "early")
            got = _recv(viewer)
            assert got is not None and _payload(got)["sdp"] == "for-early", got
        finally:
            master.close()
    finally:
        viewer.close()
