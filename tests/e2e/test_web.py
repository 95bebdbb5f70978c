"""The viewer page (web/, issue 6) against a real `openkvs serve --demo`: the Playwright suite in
tests/node/web.test.mjs (headless /usr/bin/chromium via playwright-core) signs in, watches live
(WebRTC when the demo runs a WebRTC master, else the LIVE HLS fallback), browses the archive
timeline, exports an MP4 (checked here with ffprobe) and checks the viewer role. Plus the
cookie/CSRF scheme over plain HTTP, the static files and the missing-web-dir message.
Screenshots and the exported clip: tests/out/web-*."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

import kvs_producer as kp
from e2e_support import REPO_ROOT, ServerProcess, free_port, server_binary

NODE_DIR = REPO_ROOT / "tests" / "node"
WEB_DIR = REPO_ROOT / "web"
OUT_DIR = REPO_ROOT / "tests" / "out"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEMO = "demo-bike-stand"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`openkvs serve --demo --web-dir <repo>/web`, started from another working directory."""
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
    base = tmp_path_factory.mktemp("web-demo")
    srv = ServerProcess(base / "data", log_dir=base, extra_args=[
        "--demo", "--web-dir", str(WEB_DIR), "--turn-listen", f"127.0.0.1:{free_port()}"])
    srv.start()
    deadline = time.monotonic() + 20
    frags = []
    while time.monotonic() < deadline:
        try:
            frags = kp.list_all_fragments(srv, DEMO)
        except ClientError:
            frags = []
        if len(frags) >= 3:
            break
        time.sleep(0.5)
    assert len(frags) >= 3, f"the demo camera stored {len(frags)} fragments in 20 s\n{srv.logs()}"
    yield srv
    srv.stop()


def mint_viewer(srv: ServerProcess) -> dict:
    p = subprocess.run([str(srv.binary), "credentials", "mint", "--data-dir", str(srv.data_dir),
                        "--role", "viewer", "--ttl", "900"],
                       capture_output=True, text=True, timeout=60, env=srv.environment())
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_demo_starts_the_bike_stand(demo):
    out = demo.stdout_text()
    assert f"viewer page: {demo.endpoint}/" in out, out
    assert f"stream + channel {DEMO}" in out, out
    kv = demo.client()
    info = kv.describe_stream(StreamName=DEMO)["StreamInfo"]
    assert info["DataRetentionInHours"] == 24
    ch = kv.describe_signaling_channel(ChannelName=DEMO)["ChannelInfo"]
    assert ch["ChannelName"] == DEMO
    # The archive grows in real time: about one 1 s fragment per second.
    n0 = len(kp.list_all_fragments(demo, DEMO))
    time.sleep(5)
    n1 = len(kp.list_all_fragments(demo, DEMO))
    assert 2 <= n1 - n0 <= 8, f"{n0} -> {n1} fragments in 5 s"


def test_viewer_page_in_chromium(demo):
    if shutil.which("node") is None:
        pytest.fail("node is not installed (tests/run.sh installs nodejs)", pytrace=False)
    if not (NODE_DIR / "node_modules" / "playwright-core").exists():
        pytest.fail("tests/node/node_modules/playwright-core missing: npm ci in tests/node "
                    "(tests/run.sh does)", pytrace=False)
    if not (WEB_DIR / "node_modules" / "hls.js" / "dist" / "hls.mjs").exists():
        pytest.fail("web/node_modules/hls.js missing: run `npm ci --prefix web` (tests/run.sh does)",
                    pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing (tests/run.sh installs chromium)", pytrace=False)
    viewer = mint_viewer(demo)
    export = OUT_DIR / "web-export.mp4"
    export.unlink(missing_ok=True)
    webrtc = "1" if "WebRTC master" in demo.stdout_text() else "0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKVS_"))}
    env.update(BASE_URL=demo.endpoint, ADMIN_AKID=demo.credentials[0],
               ADMIN_SECRET=demo.credentials[1], VIEWER_AKID=viewer["AccessKeyId"],
               VIEWER_SECRET=viewer["SecretAccessKey"], VIEWER_TOKEN=viewer["SessionToken"],
               WEBRTC_MASTER=webrtc, CHROMIUM=CHROMIUM, OUT_DIR=str(OUT_DIR),
               NODE_NO_WARNINGS="1")
    p = subprocess.run(["node", "--test", "web.test.mjs"], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=240)
    print(p.stdout[-12000:])
    assert p.returncode == 0, f"node --test failed:\n{p.stdout[-12000:]}\n{p.stderr[-3000:]}"
    want_pass = 10 if webrtc == "1" else 8
    assert "# fail 0" in p.stdout and f"# pass {want_pass}" in p.stdout, p.stdout[-3000:]
    if webrtc != "1":
        print("PENDING: the WebRTC live-view case was skipped: the demo has no WebRTC master "
              "(openkvs camera not merged); the HLS fallback case ran instead")
    # The exported clip is an MP4 that ffprobe accepts, with the demo's H.264 video.
    kp.need("ffprobe")
    streams = kp.ffprobe_streams(export)
    video = [s for s in streams if s["codec_type"] == "video"]
    assert video and video[0]["codec_name"] == "h264", streams
    assert (video[0]["width"], video[0]["height"]) == (320, 240)
    fmt = kp.ffprobe_json(export, "-show_format")["format"]
    assert "mp4" in fmt["format_name"], fmt
    assert float(fmt["duration"]) >= 3.0, fmt
    for shot in ("web-cameras.png", "web-live-hls-fallback.png", "web-archive.png",
                 "web-viewer.png", "web-phone.png"):
        assert (OUT_DIR / shot).stat().st_size > 5000, shot


def test_viewer_role_cannot_export_over_sigv4(demo):
    """The same refusal for SDK users: GetClip and the presigned clip URL need an admin key."""
    v = mint_viewer(demo)
    am = kp.archived(demo, DEMO, "GET_CLIP", access_key=v["AccessKeyId"],
                     secret_key=v["SecretAccessKey"], session_token=v["SessionToken"])
    now = dt.datetime.now(dt.timezone.utc)
    with pytest.raises(ClientError) as e:
        am.get_clip(StreamName=DEMO, ClipFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": now - dt.timedelta(seconds=20),
                               "EndTimestamp": now}})
    assert e.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    # Watching is allowed.
    am_hls = kp.archived(demo, DEMO, "GET_HLS_STREAMING_SESSION_URL",
                               access_key=v["AccessKeyId"], secret_key=v["SecretAccessKey"],
                               session_token=v["SessionToken"])
    url = am_hls.get_hls_streaming_session_url(StreamName=DEMO, PlaybackMode="LIVE")
    assert url["HLSStreamingSessionURL"].startswith(demo.endpoint)


def login(srv, akid, secret, token=None):
    s = requests.Session()
    body = {"AccessKeyId": akid, "SecretAccessKey": secret}
    if token:
        body["SessionToken"] = token
    r = s.post(srv.endpoint + "/web/v1/login", json=body, timeout=10)
    assert r.status_code == 200, r.text
    sc = r.headers["Set-Cookie"]
    assert "HttpOnly" in sc and "SameSite=Strict" in sc and "Path=/" in sc, sc
    assert secret not in sc and secret not in r.text
    return s, r.json()["CsrfToken"]


def test_cookie_session_and_csrf_over_http(demo):
    s, csrf = login(demo, *demo.credentials)
    ok = s.post(demo.endpoint + "/listStreams", json={}, headers={"x-okvs-csrf": csrf}, timeout=10)
    assert ok.status_code == 200 and any(
        x["StreamName"] == DEMO for x in ok.json()["StreamInfoList"]), ok.text
    no = s.post(demo.endpoint + "/listStreams", json={}, timeout=10)
    assert no.status_code == 403
    assert no.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    cross = s.post(demo.endpoint + "/listStreams", json={}, timeout=10,
                   headers={"x-okvs-csrf": csrf, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    # Tampered cookie.
    jar = requests.Session()
    value = s.cookies.get("okvs_session")
    jar.cookies.set("okvs_session", value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    bad = jar.post(demo.endpoint + "/listStreams", json={}, headers={"x-okvs-csrf": csrf}, timeout=10)
    assert bad.status_code == 403 and bad.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    # The clip sidecar accepts the cookie on GET (no CSRF token needed for a read).
    now = time.time()
    sha = s.get(demo.endpoint + "/clip/v1/getClip.sha256", timeout=30, params={
        "StreamName": DEMO, "FragmentSelectorType": "SERVER_TIMESTAMP",
        "StartTimestamp": f"{now - 10:.3f}", "EndTimestamp": f"{now:.3f}"})
    assert sha.status_code == 200 and len(sha.text.strip()) == 64, sha.text
    # Signed out: the cookie is cleared.
    out = s.post(demo.endpoint + "/web/v1/logout", timeout=10)
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert s.get(demo.endpoint + "/web/v1/session", timeout=10).json()["SignedIn"] is False


def test_signaling_websocket_cookie_needs_same_origin(demo):
    """The upgrade with a session cookie: refused from another Origin (before the upgrade),
    accepted as a viewer from this server's page."""
    s, csrf = login(demo, *demo.credentials)
    arn = demo.client().describe_signaling_channel(ChannelName=DEMO)["ChannelInfo"]["ChannelARN"]
    base = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    params = {"X-Amz-ChannelARN": arn, "X-Amz-ClientId": "web-test"}
    evil = s.get(demo.endpoint + "/", params=params, timeout=10,
                 headers={**base, "Origin": "http://evil.example"})
    assert evil.status_code == 403, evil.text
    master = s.get(demo.endpoint + "/", params={"X-Amz-ChannelARN": arn}, timeout=10,
                   headers={**base, "Origin": demo.endpoint})
    assert master.status_code == 401 and master.headers["x-amzn-ErrorType"] == "NotAuthorizedException"
    good = s.get(demo.endpoint + "/", params=params, timeout=10, stream=True,
                 headers={**base, "Origin": demo.endpoint})
    assert good.status_code == 101, good.text
    good.close()


def test_static_files_and_headers(demo):
    r = requests.get(demo.endpoint + "/", timeout=10)
    assert r.status_code == 200 and '<script type="module" src="/ui/app.js">' in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert requests.get(demo.endpoint + "/web/v1/session", timeout=10).json()["HlsJs"] is True
    js = requests.get(demo.endpoint + "/ui/node_modules/hls.js/dist/hls.mjs", timeout=10)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    for bad in ("/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml", "/ui/.gitignore", "/ui/package.json.bak"):
        assert requests.get(demo.endpoint + bad, timeout=10).status_code == 404, bad
    # POST / is still the API's answer, not the page's.
    r = requests.post(demo.endpoint + "/", data=b"{}", timeout=10)
    assert r.headers.get("x-amzn-ErrorType"), r.text


def test_missing_web_dir_is_explained(new_server, tmp_path):
    srv = new_server(extra_args=["--no-turn", "--web-dir", str(tmp_path / "no-such-web")]).start()
    r = requests.get(srv.endpoint + "/", timeout=10)
    assert r.status_code == 404
    assert "viewer page is not available" in r.text and "--web-dir" in r.text
    assert "viewer page not found" in srv.stderr_text()
    assert requests.get(srv.endpoint + "/web/v1/session", timeout=10).json()["HlsJs"] is False
    # The API is unaffected.
    assert srv.client().list_streams()["StreamInfoList"] == []
