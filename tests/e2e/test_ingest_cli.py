"""`openkvs put-media`, the client a user actually has (issue: ingest, item 6): a file and a pipe
pushed through the real server, every fragment acked PERSISTED, the summary printed, and the
stored media identical to what was sent. Also the resume path: the server is restarted in the
middle of a paced upload and the client carries on from the last PERSISTED fragment."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import kvs_producer as kp
from e2e_support import hermetic_env, unique

REGION = "us-east-1"


def _env(server) -> dict:
    return hermetic_env({
        "AWS_ACCESS_KEY_ID": server.credentials[0],
        "AWS_SECRET_ACCESS_KEY": server.credentials[1],
        "AWS_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    })


def _frames(server, name: str, numbers: list[str]) -> int:
    return sum(len(c.frames) for c in kp.read_fragments(server, name, numbers))


def test_ingest_cli_put_media_file_and_pipe(server, kvs):
    sample = kp.SAMPLES / "ffmpeg_h264_aac.mkv"
    want_frames = sum(kp.ffprobe_frame_counts(sample).values()) if kp.have("ffprobe") else None
    for mode in ("file", "pipe"):
        name = unique(f"ing-cli-{mode}")
        kvs.create_stream(StreamName=name, DataRetentionInHours=24)
        args = [str(server.binary), "put-media", "--stream", name, "--endpoint-url", server.endpoint,
                "--output", "json"]
        if mode == "file":
            p = subprocess.run(args + [str(sample)], capture_output=True, text=True, timeout=120,
                               env=_env(server))
        else:
            p = subprocess.run(args + ["-"], input=sample.read_bytes(), capture_output=True,
                               timeout=120, env=_env(server))
            p.stdout, p.stderr = p.stdout.decode(), p.stderr.decode()
        assert p.returncode == 0, f"openkvs put-media ({mode}) failed:\n{p.stderr[-2000:]}"
        acks = [line for line in p.stdout.splitlines() if '"EventType"' in line]
        persisted = [a for a in acks if '"PERSISTED"' in a]
        frags = kp.list_all_fragments(server, name)
        assert len(frags) == 4, f"{mode}: {len(frags)} fragments stored, want 4 GOPs"
        assert len(persisted) == 4, f"{mode}: {len(persisted)} PERSISTED acks printed: {acks}"
        numbers = sorted(f["FragmentNumber"] for f in frags)
        if want_frames is not None:
            assert _frames(server, name, numbers) == want_frames, f"{mode}: stored frames differ"


def test_ingest_cli_put_media_resumes_after_server_restart(new_server):
    srv = new_server()
    srv.start()
    client = srv.client()
    name = unique("ing-cli-resume")
    client.create_stream(StreamName=name, DataRetentionInHours=24)
    sample = kp.SAMPLES / "ffmpeg_live_h264.mkv"
    proc = subprocess.Popen(
        [str(srv.binary), "put-media", "--stream", name, "--endpoint-url", srv.endpoint,
         "--realtime", "--retries", "20", str(sample)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(srv))
    errs: list[str] = []
    reader = threading.Thread(target=lambda: errs.append(proc.stderr.read().decode()), daemon=True)
    reader.start()
    time.sleep(2.2)  # a couple of fragments in, then the server goes away and comes back
    srv.restart()
    try:
        rc = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert rc == 0, f"put-media did not finish after the restart:\n{''.join(errs)[-3000:]}"
    frags = kp.list_all_fragments(srv, name)
    produced = sorted(f["ProducerTimestamp"].timestamp() for f in frags)
    assert len(produced) == len(set(produced)), f"a fragment was stored twice: {produced}"
    if kp.have("ffprobe"):
        want = kp.ffprobe_frame_counts(sample).get("video")
        got = _frames(srv, name, sorted(f["FragmentNumber"] for f in frags))
        assert got == want, f"{got} frames stored after resume, the file has {want}"
