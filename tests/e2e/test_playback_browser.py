"""hls.js and dash.js in headless Chromium (tests/node/playback.test.mjs, playwright-core with
Debian's /usr/bin/chromium) playing openkvs HLS/DASH sessions (kvs-api.md §11): LIVE while ffmpeg
pushes in real time through a presigned PutMedia URL, and ON_DEMAND over the first seconds of
that push. Screenshots: tests/out/playback-*.png."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
from e2e_support import unique
from test_playback import LivePush, dash_url, hls_url

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
OUT_DIR = Path(__file__).resolve().parents[1] / "out"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def run_node(server, urls: dict[str, str]) -> subprocess.CompletedProcess:
    if shutil.which("node") is None:
        pytest.fail("node is not installed (tests/run.sh installs nodejs)", pytrace=False)
    for need in ("hls.js", "dashjs", "playwright-core"):
        if not (NODE_DIR / "node_modules" / need).exists():
            pytest.fail(f"tests/node/node_modules/{need} missing: run `npm ci --legacy-peer-deps` "
                        "in tests/node (tests/run.sh does)", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing (tests/run.sh installs the Debian package chromium)",
                    pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKVS_"))}
    env.update(urls, CHROMIUM=CHROMIUM, OUT_DIR=str(OUT_DIR), NODE_NO_WARNINGS="1")
    p = subprocess.run(["node", "--test", "playback.test.mjs"], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=150)
    print(p.stdout[-12000:])
    return p


def test_players_in_chromium(server, kvs):
    kp.need("ffmpeg")
    name = unique("pb-browser")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    t0 = dt.datetime.now(dt.timezone.utc)
    push = LivePush(server, name, 40)
    try:
        deadline = time.monotonic() + 20
        while len(kp.list_all_fragments(server, name)) < 7 and time.monotonic() < deadline:
            time.sleep(0.5)
        frags = kp.list_all_fragments(server, name)
        assert len(frags) >= 7, f"{len(frags)} fragments after 20 s of live push"
        rng = {"StartTimestamp": t0 - dt.timedelta(seconds=1),
               "EndTimestamp": frags[-1]["ServerTimestamp"]}
        urls = {
            "HLS_LIVE_URL": hls_url(server, name, PlaybackMode="LIVE"),
            "DASH_LIVE_URL": dash_url(server, name, PlaybackMode="LIVE"),
            "HLS_ON_DEMAND_URL": hls_url(server, name, PlaybackMode="ON_DEMAND", HLSFragmentSelector={
                "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng}),
            "DASH_ON_DEMAND_URL": dash_url(server, name, PlaybackMode="ON_DEMAND", DASHFragmentSelector={
                "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng}),
        }
        p = run_node(server, urls)
        assert p.returncode == 0, f"node --test failed:\n{p.stdout[-12000:]}\n{p.stderr[-3000:]}"
        assert "# fail 0" in p.stdout and "# pass 4" in p.stdout, p.stdout[-3000:]
    finally:
        push.stop()



def test_players_on_burst_pushed_sample(server, kvs):
    """samples/ffmpeg_h264_aac.mkv pushed in one burst (4 fragments arrive within a few ms, as
    from `openkvs put-media FILE` or a producer catching up), played ON_DEMAND."""
    from test_playback import push_sample, server_range
    info = push_sample(server, kvs, "ffmpeg_h264_aac.mkv")
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": server_range(info)}
    urls = {"HLS_ON_DEMAND_URL": hls_url(server, info["name"], PlaybackMode="ON_DEMAND",
                                         HLSFragmentSelector=sel),
            "DASH_ON_DEMAND_URL": dash_url(server, info["name"], PlaybackMode="ON_DEMAND",
                                           DASHFragmentSelector=sel),
            "LABEL": "burst"}
    p = run_node(server, urls)
    assert p.returncode == 0, f"node --test failed:\n{p.stdout[-12000:]}\n{p.stderr[-3000:]}"
    assert "# fail 0" in p.stdout and "# pass 2" in p.stdout, p.stdout[-3000:]
