"""Clip export: `openkvs get-clip` (GetClip to a file) and the ranged clip URL from
`openkvs presign get-clip` (`/clip/v1/getClip.mp4`, beyond KVS): same bytes, Range / HEAD /
ETag / If-None-Match, the `.sha256` integrity sidecar, and presigned-URL authentication
(tampered and expired URLs 403, viewer credentials 401)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time

import pytest
import requests

import kvs_producer as kp
from e2e_support import hermetic_env, unique

REGION = "us-east-1"
SAMPLE = kp.SAMPLES / "ffmpeg_h264_aac.mkv"


def _env(server, creds: dict | None = None) -> dict:
    ak, sk = server.credentials
    env = {
        "AWS_ACCESS_KEY_ID": ak,
        "AWS_SECRET_ACCESS_KEY": sk,
        "AWS_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "OPENKVS_ENDPOINT_URL": server.endpoint,
    }
    if creds:
        env["AWS_ACCESS_KEY_ID"] = creds["AccessKeyId"]
        env["AWS_SECRET_ACCESS_KEY"] = creds["SecretAccessKey"]
        env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
    return hermetic_env(env)


def _run(server, *args: str, creds: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(server.binary), *args], capture_output=True, text=True, timeout=120,
                       env=_env(server, creds))
    assert p.returncode == 0, f"openkvs {' '.join(args)} exited {p.returncode}:\n{p.stderr[-2000:]}"
    return p


def _presign(server, clip, *extra: str, creds: dict | None = None) -> str:
    p = _run(server, "presign", "get-clip", "--stream", clip["name"], "--start", clip["start"],
             "--end", clip["end"], *extra, creds=creds)
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(server.endpoint + "/clip/v1/getClip.mp4?"), \
        f"presign get-clip should print the URL alone: {p.stdout!r}"
    return lines[0]


@pytest.fixture(scope="module")
def clip(server, kvs, tmp_path_factory):
    """A stream with the sample pushed once and `openkvs get-clip` of it in a file."""
    name = unique("clip-url")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    t0 = time.time()
    pm = kp.put_media(server.endpoint, name, SAMPLE.read_bytes(), timecode_type="RELATIVE",
                      expect_persisted=4)
    persisted = kp.events(pm.acks, "PERSISTED")
    assert len(persisted) == 4, f"want 4 PERSISTED acks, got {pm.acks}"
    t1 = time.time()
    # Epoch seconds, so the CLI and the URL mean exactly the same range.
    start, end = str(math.floor(t0) - 1), str(math.ceil(t1) + 1)
    time.sleep(max(0.0, float(end) - time.time()) + 0.2)
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    p = _run(server, "get-clip", "--stream", name, "--start", start, "--end", end,
             "--timestamp-type", "server", "-o", str(out))
    return {"name": name, "start": start, "end": end, "path": out, "stdout": p.stdout}


def test_get_clip_writes_a_playable_mp4_and_prints_its_sha256(clip):
    data = clip["path"].read_bytes()
    assert data[4:8] == b"ftyp", "not an MP4"
    digest = clip["stdout"].split()[0]
    assert digest == hashlib.sha256(data).hexdigest(), \
        f"printed {clip['stdout']!r}, file hashes to {hashlib.sha256(data).hexdigest()}"
    assert not clip["path"].with_name("clip.mp4.part").exists()
    kp.need("ffprobe", "ffmpeg")
    streams = kp.ffprobe_streams(clip["path"])
    codecs = sorted(s["codec_name"] for s in streams)
    assert codecs == ["aac", "h264"], codecs
    fmt = kp.ffprobe_json(clip["path"], "-show_format")["format"]
    assert abs(float(fmt["duration"]) - 4.0) < 0.5, f"duration {fmt['duration']}"
    p = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip["path"]), "-f", "null", "-"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr.strip() == "", f"ffmpeg decode: {p.stderr[-2000:]}"


def test_presigned_clip_url_serves_the_same_bytes(server, clip):
    data = clip["path"].read_bytes()
    url = _presign(server, clip, "--expires", "1h")
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.content == data, "the URL's body differs from the get-clip file"
    h = r.headers
    assert h["Content-Type"] == "video/mp4"
    assert h["Accept-Ranges"] == "bytes"
    assert int(h["Content-Length"]) == len(data)
    assert h["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in h.get("Access-Control-Expose-Headers", "")
    want = f'attachment; filename="{clip["name"]}_{clip["start"]}_{clip["end"]}.mp4"'
    assert h["Content-Disposition"] == want


def test_range_head_etag(server, clip):
    data = clip["path"].read_bytes()
    url = _presign(server, clip)
    # A single range: 206 and exactly those bytes.
    a, b = 100, 100 + len(data) // 3
    r = requests.get(url, headers={"Range": f"bytes={a}-{b}"}, timeout=30)
    assert r.status_code == 206, r.text[:500]
    assert r.content == data[a:b + 1]
    assert r.headers["Content-Range"] == f"bytes {a}-{b}/{len(data)}"
    r = requests.get(url, headers={"Range": "bytes=-1000"}, timeout=30)
    assert r.status_code == 206 and r.content == data[-1000:]
    # Past the end: 416 with the size.
    r = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=30)
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    # HEAD on the same URL.
    r = requests.head(url, timeout=30)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(data)
    assert r.content == b""
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    # Revalidation.
    r = requests.get(url, headers={"If-None-Match": etag}, timeout=30)
    assert r.status_code == 304 and r.content == b""
    assert r.headers["ETag"] == etag
    r = requests.get(url, headers={"If-None-Match": '"other"'}, timeout=30)
    assert r.status_code == 200 and r.content == data


def test_sha256_sidecar(server, clip):
    data = clip["path"].read_bytes()
    url = _presign(server, clip)
    # The clip URL's parameters and signature also serve the sidecar.
    sidecar = url.replace("/getClip.mp4?", "/getClip.sha256?", 1)
    r = requests.get(sidecar, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text.strip() == hashlib.sha256(data).hexdigest()
    # Once known, the digest rides along on the .mp4 (never computed per request).
    r = requests.head(url, timeout=30)
    assert r.headers.get("x-amz-meta-sha256") == hashlib.sha256(data).hexdigest()


def test_tampered_and_expired_urls_are_refused(server, clip):
    url = _presign(server, clip)
    tampered = url.replace(f"EndTimestamp={clip['end']}", f"EndTimestamp={int(clip['end']) + 1}")
    assert tampered != url
    r = requests.get(tampered, timeout=30)
    assert r.status_code == 403, r.text[:500]
    short = _presign(server, clip, "--expires", "1")
    time.sleep(2.5)
    r = requests.get(short, timeout=30)
    assert r.status_code == 403, r.text[:500]
    assert "xpired" in r.text, r.text[:500]


def test_viewer_url_is_not_authorized(server, clip):
    p = subprocess.run([str(server.binary), "credentials", "mint", "--data-dir",
                        str(server.data_dir), "--role", "viewer"], capture_output=True, text=True,
                       timeout=60, env=server.environment())
    assert p.returncode == 0, p.stderr
    creds = json.loads(p.stdout)
    url = _presign(server, clip, creds=creds)
    assert "X-Amz-Security-Token=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 401, r.text[:500]
    assert r.json()["__type"] == "NotAuthorizedException"


def test_cors_preflight_for_playback_resources(server, clip):
    """A player on another origin that sends Range gets a preflight answer, and the GET itself
    exposes the headers a seeking player and an integrity check read."""
    url = _presign(server, clip)
    for path in (url, server.endpoint + "/hls/v1/getHLSMasterPlaylist.m3u8",
                 server.endpoint + "/dash/v1/getDASHManifest.mpd"):
        r = requests.options(path, headers={"Origin": "https://viewer.example",
                                            "Access-Control-Request-Method": "GET",
                                            "Access-Control-Request-Headers": "range"}, timeout=10)
        assert r.status_code == 204, (path, r.status_code, r.text)
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "range" in r.headers["Access-Control-Allow-Headers"].lower()
        assert "GET" in r.headers["Access-Control-Allow-Methods"]
    r = requests.get(url, headers={"Origin": "https://viewer.example", "Range": "bytes=0-99"},
                     timeout=30)
    assert r.status_code == 206, r.status_code
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    assert "content-range" in exposed and "etag" in exposed, exposed
