#!/usr/bin/env python3
"""Soak test (issue 8): 50 live producers + 200 signaling clients + HLS readers against one
`openkvs serve` for a configurable time, sampling the server's RSS, open file descriptors and
client-side latency percentiles every interval; asserts that memory and descriptors stay flat.

    .venv/bin/python tests/soak.py --seconds 600            # debug binary (cargo build)
    OPENKVS_BIN=target/release/openkvs .venv/bin/python tests/soak.py --seconds 3600

CI runs it for 120 s through tests/e2e/test_soak.py (OPENKVS_SOAK_SECONDS overrides).

Load: each producer is a PutMedia session at real time (one 1 s fragment of 25 frames x 1 KB
per second, ABSOLUTE timecodes = wall clock); latency = last frame sent -> PERSISTED ack.
Signaling: 20 channels x (1 master + 9 viewers); every viewer sends an SDP_OFFER to its master
once a second, the master answers; latency = offer sent -> offer received by the master. HLS:
readers open LIVE sessions and poll the media playlist and the newest fragment (getMP4MediaFragment)
once a second; latency = playlist request -> fragment bytes read.

Flatness: after a warm-up (a third of the run, at least 20 s), the last sample's RSS may exceed
the warm-up sample's by at most max(20 %, 16 MiB) and its descriptors by at most 10 %. Exit
status 1 (or an AssertionError from run()) when not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "e2e"))

import requests  # noqa: E402

import kvs_producer as kp  # noqa: E402
import mkvgen  # noqa: E402
from e2e_support import ServerProcess  # noqa: E402
from ws_client import WebSocket  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.credentials  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from e2e_support import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY  # noqa: E402


class Lat:
    """Latency samples per kind, drained per interval."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cur: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}

    def add(self, kind: str, secs: float) -> None:
        with self.lock:
            self.cur.setdefault(kind, []).append(secs)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def drain(self):
        with self.lock:
            cur, self.cur = self.cur, {}
            err, self.errors = self.errors, {}
        return cur, err


def pct(v: list[float], q: float) -> float:
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))]


def proc_stats(pid: int) -> tuple[int, int]:
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def producer(srv, stream: str, stop: threading.Event, lat: Lat) -> None:
    while not stop.is_set():
        try:
            pm = kp.PutMedia(srv.endpoint, stream, timeout=30).open()
            sent_at: dict[int, float] = {}

            def on_ack(a, sent_at=sent_at):
                if a.event == "PERSISTED" and a.timecode in sent_at:
                    lat.add("putmedia_persisted", a.at - sent_at.pop(a.timecode))
                elif a.event == "ERROR":
                    lat.error("putmedia")
            pm.on_ack = on_ack
            if not pm.send(mkvgen.document_header([mkvgen.video_track()])):
                raise OSError("send")
            prev = None
            while not stop.is_set():
                tc = int(time.time() * 1000)
                g = mkvgen.gop(tc, duration_ms=1000, fps=25, frame_bytes=1000)
                if not pm.send(g.bytes):
                    raise OSError("send")
                # a fragment completes when the next one opens
                if prev is not None:
                    sent_at[prev] = time.time()
                prev = tc
                stop.wait(max(0.0, 1.0 - (time.time() * 1000 - tc) / 1000))
            pm.send(mkvgen.end_of_fragment())
            pm.finish()
            pm.wait_done(10)
            pm.close()
        except Exception:
            lat.error("putmedia")
            stop.wait(1)


def presign_ws(srv, arn: str, client_id: str | None) -> str:
    q = {"X-Amz-ChannelARN": arn}
    if client_id:
        q["X-Amz-ClientId"] = client_id
    req = AWSRequest(method="GET", url=srv.endpoint + "/?" + urllib.parse.urlencode(q), data=b"")
    creds = botocore.credentials.Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", REGION, expires=299).add_auth(req)
    return req.url


def ws_text(ws: WebSocket, obj: dict) -> None:
    ws.send_frame(json.dumps(obj).encode())


def connect_retry(srv, arn, client_id, stop) -> WebSocket | None:
    while not stop.is_set():
        ws = WebSocket(presign_ws(srv, arn, client_id), timeout=30)
        if ws.status == 101:
            return ws
        ws.close()  # 400 ClientLimitExceeded: the 3 connects/s per channel limit
        stop.wait(0.4 + random.random() * 0.4)
    return None


def master(srv, arn: str, stop: threading.Event, lat: Lat, ready: threading.Event) -> None:
    ws = connect_retry(srv, arn, None, stop)
    ready.set()
    if ws is None:
        return
    ws.sock.settimeout(1.0)
    while not stop.is_set():
        try:
            op, data = ws.read_frame()
        except TimeoutError:
            continue
        except Exception:
            lat.error("signaling_master")
            break
        if op == 9:  # ping
            ws.send_frame(data, opcode=10)
            continue
        if op != 1 or not data:
            continue
        msg = json.loads(data)
        if msg.get("messageType") == "SDP_OFFER":
            sent = json.loads(base64.b64decode(msg["messagePayload"]))["t"]
            lat.add("signaling_offer", time.time() - sent)
            ws_text(ws, {"action": "SDP_ANSWER", "recipientClientId": msg["senderClientId"],
                         "messagePayload": base64.b64encode(b'{"type":"answer"}').decode()})
    ws.close()


def viewer(srv, arn: str, cid: str, stop: threading.Event, lat: Lat) -> None:
    ws = connect_retry(srv, arn, cid, stop)
    if ws is None:
        return
    ws.sock.settimeout(0.05)
    next_offer = time.time() + random.random()
    while not stop.is_set():
        if time.time() >= next_offer:
            payload = base64.b64encode(json.dumps({"type": "offer", "t": time.time()}).encode())
            try:
                ws_text(ws, {"action": "SDP_OFFER", "messagePayload": payload.decode()})
            except OSError:
                lat.error("signaling_viewer")
                break
            next_offer += 1.0
        try:
            op, data = ws.read_frame()  # answers: read and drop
            if op == 9:
                ws.send_frame(data, opcode=10)
            elif op == 8:
                lat.error("signaling_viewer")
                break
        except TimeoutError:
            pass
        except Exception:
            lat.error("signaling_viewer")
            break
    ws.close()


def hls_reader(srv, stream: str, stop: threading.Event, lat: Lat) -> None:
    am = kp.archived(srv, stream, "GET_HLS_STREAMING_SESSION_URL")
    url = None
    while not stop.is_set():
        try:
            if url is None:
                url = am.get_hls_streaming_session_url(
                    StreamName=stream, PlaybackMode="LIVE",
                    HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP"},
                    ContainerFormat="FRAGMENTED_MP4", Expires=3600)["HLSStreamingSessionURL"]
            t0 = time.time()
            master_pl = requests.get(url, timeout=10)
            master_pl.raise_for_status()
            base = url.rsplit("/", 1)[0]
            media_rel = [ln for ln in master_pl.text.splitlines() if ln and not ln.startswith("#")][0]
            media = requests.get(f"{base}/{media_rel}", timeout=10)
            media.raise_for_status()
            frags = [ln for ln in media.text.splitlines() if ln and not ln.startswith("#")]
            if frags:
                r = requests.get(f"{base}/{frags[-1]}", timeout=10)
                r.raise_for_status()
                lat.add("hls_playlist_and_fragment", time.time() - t0)
        except Exception:
            lat.error("hls")
            url = None
        stop.wait(1.0)


def run(seconds: float, producers: int = 50, channels: int = 20, per_channel: int = 10,
        hls_readers: int = 5, interval: float = 10.0, out=print) -> dict:
    base = Path(tempfile.mkdtemp(prefix="openkvs-soak-"))
    srv = ServerProcess(base / "data", log_dir=base, extra_args=["--no-turn"],
                        env={"RUST_LOG": "warn"})
    srv.start()
    stop = threading.Event()
    lat = Lat()
    threads = []
    samples = []
    try:
        kv = srv.client()
        streams = [f"soak-{i}" for i in range(producers)]
        for s in streams:
            kv.create_stream(StreamName=s, DataRetentionInHours=1)
        arns = [kv.create_signaling_channel(ChannelName=f"soak-ch-{i}")["ChannelARN"]
                for i in range(channels)]
        for s in streams:
            threads.append(threading.Thread(target=producer, args=(srv, s, stop, lat), daemon=True))
        readies = []
        for arn in arns:
            ready = threading.Event()
            readies.append(ready)
            threads.append(threading.Thread(target=master, args=(srv, arn, stop, lat, ready),
                                            daemon=True))
            for v in range(per_channel - 1):
                threads.append(threading.Thread(target=viewer,
                                                args=(srv, arn, f"v{v}", stop, lat), daemon=True))
        for i in range(hls_readers):
            threads.append(threading.Thread(target=hls_reader,
                                            args=(srv, streams[i % len(streams)], stop, lat),
                                            daemon=True))
        for t in threads:
            t.start()
        clients = producers + channels * per_channel + hls_readers
        out(f"soak: {producers} producers, {channels * per_channel} signaling clients "
            f"({channels} channels), {hls_readers} HLS readers for {seconds:.0f}s "
            f"against pid {srv.proc.pid} ({srv.binary})")
        out("| t s | RSS MiB | fds | PutMedia->PERSISTED p50/p99 ms | signaling offer p50/p99 ms "
            "| HLS playlist+fragment p50/p99 ms | samples (put/sig/hls) | errors |")
        out("|---:|---:|---:|---:|---:|---:|---:|---|")
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(interval, max(0.0, seconds - (time.monotonic() - t0))))
            assert srv.proc.poll() is None, f"the server died: {srv.logs()}"
            rss, fds = proc_stats(srv.proc.pid)
            cur, err = lat.drain()
            row = {"t": time.monotonic() - t0, "rss": rss, "fds": fds,
                   **{f"{k}_p50": pct(v, 0.5) for k, v in cur.items()},
                   **{f"{k}_p99": pct(v, 0.99) for k, v in cur.items()},
                   "n": {k: len(v) for k, v in cur.items()}, "errors": err}
            samples.append(row)

            def ms(k):
                return (f"{1000 * pct(cur.get(k, []), 0.5):.0f} / "
                        f"{1000 * pct(cur.get(k, []), 0.99):.0f}")
            n = row["n"]
            out(f"| {row['t']:.0f} | {rss / 2**20:.1f} | {fds} | {ms('putmedia_persisted')} | "
                f"{ms('signaling_offer')} | {ms('hls_playlist_and_fragment')} | "
                f"{n.get('putmedia_persisted', 0)}/{n.get('signaling_offer', 0)}/"
                f"{n.get('hls_playlist_and_fragment', 0)} | {err or ''} |")
        warm = next((s for s in samples if s["t"] >= max(20.0, seconds / 3)), samples[0])
        last = samples[-1]
        rss_limit = warm["rss"] + max(0.2 * warm["rss"], 16 * 2**20)
        fd_limit = warm["fds"] * 1.1 + 2
        total = {k: sum(s["n"].get(k, 0) for s in samples)
                 for k in ("putmedia_persisted", "signaling_offer", "hls_playlist_and_fragment")}
        summary = {"clients": clients, "warm": warm, "last": last, "rss_limit": rss_limit,
                   "fd_limit": fd_limit, "samples": samples, "totals": total}
        out(f"warm-up sample at {warm['t']:.0f}s: RSS {warm['rss'] / 2**20:.1f} MiB, "
            f"{warm['fds']} fds; last: RSS {last['rss'] / 2**20:.1f} MiB, {last['fds']} fds; "
            f"totals {total}")
        assert last["rss"] <= rss_limit, (
            f"RSS grew from {warm['rss'] / 2**20:.1f} to {last['rss'] / 2**20:.1f} MiB")
        assert last["fds"] <= fd_limit, f"fds grew from {warm['fds']} to {last['fds']}"
        for k, v in total.items():
            assert v > 0, f"no {k} measured: the load did not run"
        return summary
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        kp.close_all()
        srv.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--producers", type=int, default=50)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--per-channel", type=int, default=10, help="1 master + N-1 viewers")
    ap.add_argument("--hls-readers", type=int, default=5)
    ap.add_argument("--interval", type=float, default=10)
    a = ap.parse_args()
    try:
        run(a.seconds, a.producers, a.channels, a.per_channel, a.hls_readers, a.interval)
    except AssertionError as e:
        print(f"soak FAILED: {e}")
        return 1
    print("soak: memory and descriptors flat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
