"""`openkvs camera` (WebRTC MASTER, issue 5 item 5) against real WebRTC viewers through openkvs
signaling: `openkvs viewer` (a webrtc-rs peer that sends an offer and counts the RTP packets
it receives) with host candidates and forced through the embedded TURN relay (relay-only ICE
policy on both peers), two viewers at once, `--stream` pushing the same media with PutMedia,
and a camera that stops when its channel is deleted.

Every peer binds 127.0.0.1 (`--udp-addr 127.0.0.1:0`), which also turns on webrtc-rs' loopback
candidates, so the tests need no network interface and keep all traffic on this machine.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from e2e_support import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, hermetic_env, server_binary, unique

LOOPBACK = ["--udp-addr", "127.0.0.1:0"]
CONNECTED_LINE = "camera connected as MASTER"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env() -> dict:
    return hermetic_env({
        "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        # keep webrtc-rs quiet, the camera's own lines on
        "RUST_LOG": "info,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error,webrtc=error",
    })


@pytest.fixture
def turn_server(new_server):
    """A server with the embedded TURN server on 127.0.0.1:<free UDP port>."""
    port = free_udp_port()
    return new_server(extra_args=["--turn-listen", f"127.0.0.1:{port}"]).start()


class Camera:
    """One `openkvs camera` process; stopped (SIGTERM) by the fixture."""

    def __init__(self, srv, log: Path, *args: str):
        self.log = log
        self.cmd = [str(server_binary()), "camera", "--endpoint", srv.endpoint, *args]
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=client_env())

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_connected(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if CONNECTED_LINE in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"openkvs camera exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"openkvs camera did not connect within {timeout}s:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


@pytest.fixture
def camera(tmp_path):
    started: list[Camera] = []

    def start(srv, *args: str) -> Camera:
        cam = Camera(srv, tmp_path / f"camera{len(started)}.log", *args)
        started.append(cam)
        return cam

    yield start
    for cam in started:
        cam.stop()


def run_viewer(srv, channel: str, *args: str, duration: str = "3s", timeout: float = 60.0) -> dict:
    """Runs `openkvs viewer` to completion and returns its JSON report."""
    cmd = [str(server_binary()), "viewer", "--endpoint", srv.endpoint, "--channel", channel,
           "--duration", duration, "--connect-timeout", "30s", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=client_env())
    assert p.returncode == 0, f"viewer failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


def assert_media(report: dict, seconds: float = 3.0) -> None:
    """H.264 at 25 fps and Opus at 50 packets/s arrived for about `seconds` seconds."""
    assert report["connected"] is True
    # The first key frame can be up to 1 s (one GOP) after connecting.
    want_frames = int(25 * (seconds - 1.0) * 0.8)
    assert report["video_frames"] >= want_frames, report
    assert report["video_packets"] >= report["video_frames"], report
    assert report["video_bytes"] > 10_000, report
    assert report["audio_packets"] >= int(50 * (seconds - 1.0) * 0.8), report


def test_camera_to_viewer_host_candidates(turn_server, camera):
    srv = turn_server
    ch = unique("cam")
    srv.client().create_signaling_channel(ChannelName=ch)
    cam = camera(srv, "--channel", ch, "--test-pattern", *LOOPBACK)
    cam.wait_connected()

    report = run_viewer(srv, ch, *LOOPBACK)
    assert_media(report)
    assert "host" in report["local_candidate_types"], report
    assert "host" in report["remote_candidate_types"], report
    assert "answered a viewer's offer" in cam.text()


def test_camera_to_viewer_through_turn_relay(turn_server, camera):
    """Relay-only ICE on both peers: the only candidates are relayed by the embedded TURN server,
    so media that arrives went through it."""
    srv = turn_server
    ch = unique("camrelay")
    srv.client().create_signaling_channel(ChannelName=ch)
    cam = camera(srv, "--channel", ch, "--test-pattern", *LOOPBACK,
                 "--ice-transport-policy", "relay")
    cam.wait_connected()

    report = run_viewer(srv, ch, *LOOPBACK, "--ice-transport-policy", "relay")
    assert_media(report)
    assert report["local_candidate_types"] == ["relay"], report
    assert report["remote_candidate_types"] == ["relay"], report


def test_camera_serves_two_viewers_at_once(turn_server, camera):
    srv = turn_server
    ch = unique("cam2v")
    srv.client().create_signaling_channel(ChannelName=ch)
    cam = camera(srv, "--channel", ch, "--file", str(Path(__file__).resolve().parents[2]
                                                     / "samples" / "ffmpeg_h264_aac.mkv"), *LOOPBACK)
    cam.wait_connected()
    cmd = lambda cid: [str(server_binary()), "viewer", "--endpoint", srv.endpoint, "--channel", ch,
                       "--client-id", cid, "--duration", "3s", *LOOPBACK]
    procs = [subprocess.Popen(cmd(f"viewer-{i}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=client_env()) for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-3000:]
        report = json.loads(out)
        assert report["connected"] and report["video_frames"] >= 25, report
        # The AAC track of this file is not sent (WebRTC has no AAC).
        assert report["audio_packets"] == 0, report
    log = cam.text()
    assert "viewer=viewer-0" in log and "viewer=viewer-1" in log
    assert "A_AAC" in log


def test_camera_pushes_the_same_media_to_a_stream(turn_server, camera):
    srv = turn_server
    kvs = srv.client()
    ch, stream = unique("camput"), unique("camput-stream")
    kvs.create_signaling_channel(ChannelName=ch)
    kvs.create_stream(StreamName=stream, DataRetentionInHours=1)
    started = time.time()
    cam = camera(srv, "--channel", ch, "--test-pattern", "--stream", stream, *LOOPBACK)
    cam.wait_connected()
    report = run_viewer(srv, ch, *LOOPBACK)
    assert_media(report)

    am = boto3.client("kinesis-video-archived-media", endpoint_url=srv.endpoint, region_name=REGION,
                      aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY)
    frags = am.list_fragments(StreamName=stream, FragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": dt.datetime.fromtimestamp(started - 60, dt.timezone.utc),
                           "EndTimestamp": dt.datetime.fromtimestamp(time.time() + 60, dt.timezone.utc)},
    })["Fragments"]
    # One fragment per 1 s GOP; the camera has been up for several seconds by now.
    assert len(frags) >= 3, frags
    for f in frags:
        # ABSOLUTE timecodes: wall-clock producer timestamps, not 1970 + file time.
        assert abs(f["ProducerTimestamp"].timestamp() - time.time()) < 120, f
        assert 900 <= f["FragmentLengthInMilliseconds"] <= 1100, f
    assert cam.proc.poll() is None, f"the camera stopped:\n{cam.text()}"


def test_camera_fails_fast_on_unknown_channel(turn_server, camera):
    cam = camera(turn_server, "--channel", unique("nochannel"), "--test-pattern")
    assert cam.proc.wait(timeout=30) != 0
    assert "ResourceNotFoundException" in cam.text(), cam.text()


def test_camera_stops_when_its_channel_is_deleted(turn_server, camera):
    """DeleteSignalingChannel closes the camera's WebSocket; its reconnect finds no channel and
    it exits with an error instead of retrying forever."""
    srv = turn_server
    kvs = srv.client()
    ch = unique("camdel")
    arn = kvs.create_signaling_channel(ChannelName=ch)["ChannelARN"]
    cam = camera(srv, "--channel", ch, "--test-pattern", *LOOPBACK)
    cam.wait_connected()
    kvs.delete_signaling_channel(ChannelARN=arn)
    assert cam.proc.wait(timeout=20) != 0, cam.text()
    assert "signaling channel is gone" in cam.text(), cam.text()
    assert "signaling channel deleted: connections closed" in srv.stderr_text(), srv.logs()
