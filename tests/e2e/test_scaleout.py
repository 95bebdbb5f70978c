"""Two `openkvs serve` nodes sharing PostgreSQL (catalog + fragment index) and an S3-compatible
server (moto) for media, all real processes on loopback ports started here: a fragment ingested
on node A is listed and played (GetClip) from node B. Node A is configured by a TOML file, node B
by flags, so both configuration paths are exercised. Spec: issue 7, crates/store/DESIGN.md.

The binary must be built with the scale-out features (tests/run.sh builds `--all-features`).
Missing PostgreSQL or moto skips loudly, or fails when OPENKVS_REQUIRE_SCALEOUT=1 (run.sh)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
from e2e_support import ServerProcess, free_port, server_binary, unique

ROOT = Path(__file__).resolve().parents[2]
S3_KEY, S3_SECRET, BUCKET = "scaleout-key", "scaleout-secret", "openkvs-e2e"
# One TURN REST secret for all nodes (a shared coturn verifies credentials from any node).
TURN_SECRET, TURN_URI = "scaleout-turn-secret", "turn:127.0.0.1:3478?transport=udp"


def _missing(what: str):
    msg = f"SKIPPED: the scale-out e2e test needs {what}; tests/run.sh installs it"
    if os.environ.get("OPENKVS_REQUIRE_SCALEOUT") == "1":
        pytest.fail(f"OPENKVS_REQUIRE_SCALEOUT=1 but {what} is missing", pytrace=False)
    print("\n" + "!" * 78 + "\n" + msg + "\n" + "!" * 78, file=sys.stderr)
    pytest.skip(msg)


def _pg_bin(name: str):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port} within {timeout}s")


@pytest.fixture(scope="module")
def backends():
    """Starts PostgreSQL and moto; yields their settings; stops them."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        _missing("PostgreSQL (initdb, pg_ctl)")
    moto = ROOT / ".venv" / "bin" / "moto_server"
    moto = str(moto) if moto.exists() else shutil.which("moto_server")
    if not moto:
        _missing("moto_server (pip install 'moto[server]')")
    # Not under pytest's tmp dir: that is 0700 root, which the postgres user cannot traverse.
    pgdir = Path(tempfile.mkdtemp(prefix="openkvs-e2e-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            user, pw = "nobody", pwd.getpwnam("nobody")
        os.chown(pgdir, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", user, "--"]
    subprocess.run(prefix + [initdb, "-D", str(pgdir / "data"), "-A", "trust", "-U", "postgres",
                             "--no-sync", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    pg_port = free_port()
    subprocess.run(prefix + [pg_ctl, "-D", str(pgdir / "data"), "-l", str(pgdir / "log"), "-w",
                             "-o", f"-p {pg_port} -k {pgdir} -c listen_addresses=127.0.0.1 "
                                   "-c fsync=off", "start"], check=True, stdout=subprocess.DEVNULL)
    s3_port = free_port()
    moto_proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(s3_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(s3_port, moto_proc, "moto_server")
        s3_url = f"http://127.0.0.1:{s3_port}"
        boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                     aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET
                     ).create_bucket(Bucket=BUCKET)
        yield {"pg_url": f"postgres://postgres@127.0.0.1:{pg_port}/postgres", "s3_url": s3_url}
    finally:
        moto_proc.kill()
        moto_proc.wait()
        subprocess.run(prefix + [pg_ctl, "-D", str(pgdir / "data"), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(pgdir, ignore_errors=True)


def _supports_s3() -> bool:
    out = subprocess.run([str(server_binary()), "serve", "--help"], capture_output=True,
                         text=True).stdout
    return "--s3-bucket" in out


@pytest.fixture(scope="module")
def nodes(backends, tmp_path_factory):
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
    base = tmp_path_factory.mktemp("nodes")
    port_a, port_b = free_port(), free_port()
    config = base / "node-a.toml"
    config.write_text(
        'store = "s3"\ncatalog = "postgres"\nhub = "local"\nno_turn = true\n'
        f'turn_secret = "{TURN_SECRET}"\nturn_uris = ["{TURN_URI}"]\n'
        f'public_url = "http://127.0.0.1:{port_b}"  # overridden by [node]\n'
        f'[node]\npublic_url = "http://127.0.0.1:{port_a}"\n'
        f'[postgres]\nurl = "{backends["pg_url"]}"\n'
        f'[s3]\nbucket = "{BUCKET}"\nendpoint_url = "{backends["s3_url"]}"\n'
        f'access_key_id = "{S3_KEY}"\nsecret_access_key = "{S3_SECRET}"\n')
    a = ServerProcess(base / "a", port=port_a, log_dir=base / "logs-a",
                      extra_args=["--config", str(config)])
    b = ServerProcess(base / "b", port=port_b, log_dir=base / "logs-b",
                      extra_args=["--store", "s3", "--catalog", "postgres", "--no-turn",
                                  "--postgres-url", backends["pg_url"],
                                  "--s3-bucket", BUCKET, "--s3-endpoint-url", backends["s3_url"],
                                  "--turn-secret", TURN_SECRET, "--turn-uri", TURN_URI],
                      env={"OPENKVS_S3_ACCESS_KEY_ID": S3_KEY,
                           "OPENKVS_S3_SECRET_ACCESS_KEY": S3_SECRET})
    a.start()
    b.start()
    yield a, b
    for n in (a, b):
        n.kill()


def test_binary_has_scaleout_features():
    if not _supports_s3():
        _missing("an openkvs binary built with --features s3")
    assert _supports_s3()


def test_fragment_ingested_on_a_is_listed_and_played_on_b(nodes, backends, tmp_path):
    kp.need("ffmpeg", "ffprobe")
    a, b = nodes
    name = unique("scale")
    a.client().create_stream(StreamName=name, DataRetentionInHours=24)
    # The shared catalog: node B describes the stream node A created.
    assert b.client().describe_stream(StreamName=name)["StreamInfo"]["StreamName"] == name
    pm = kp.put_media(a.endpoint, name, (kp.SAMPLES / "ffmpeg_h264_aac.mkv").read_bytes(),
                      timecode_type="RELATIVE", expect_persisted=4)
    assert pm.status == 200, pm.describe()
    persisted = kp.events(pm.acks, "PERSISTED")
    assert len(persisted) == 4, pm.describe()

    frags_b = kp.list_all_fragments(b, name)
    frags_a = kp.list_all_fragments(a, name)
    assert len(frags_b) == 4, frags_b
    assert [f["FragmentNumber"] for f in frags_b] == [f["FragmentNumber"] for f in frags_a]
    assert sorted(str(e.number) for e in persisted) == \
        sorted(f["FragmentNumber"] for f in frags_b)

    r = kp.archived(b, name, "GET_CLIP").get_clip(
        StreamName=name,
        ClipFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": {
            "StartTimestamp": frags_b[0]["ProducerTimestamp"],
            "EndTimestamp": frags_b[-1]["ProducerTimestamp"]}})
    assert r["ContentType"] == "video/mp4"
    out = tmp_path / "clip-from-b.mp4"
    out.write_bytes(r["Payload"].read())
    probe = kp.ffprobe_json(out, "-show_streams", "-show_format")
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"], probe
    want = sum(f["FragmentLengthInMilliseconds"] for f in frags_b) / 1000
    assert abs(float(probe["format"]["duration"]) - want) <= 1.0, (probe["format"], want)

    # The media is in S3 under the documented layout, one object per fragment.
    s3 = boto3.client("s3", endpoint_url=backends["s3_url"],
                      region_name="us-east-1", aws_access_key_id=S3_KEY,
                      aws_secret_access_key=S3_SECRET)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"streams/{name}/").get(
        "Contents", [])]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(f["FragmentNumber"] for f in frags_b)
    assert all(len(k.split("/")) == 7 for k in keys), keys

    # DeleteStream on B removes the objects A wrote.
    info = b.client().describe_stream(StreamName=name)["StreamInfo"]
    b.client().delete_stream(StreamARN=info["StreamARN"])
    left = keys
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"streams/{name}/").get("Contents", [])
        if not left:
            break
        time.sleep(0.2)
    assert not left, left


def test_get_data_endpoint_is_the_node_url(nodes):
    a, b = nodes
    name = unique("scale-ep")
    a.client().create_stream(StreamName=name)
    for node in (a, b):
        ep = node.client().get_data_endpoint(StreamName=name, APIName="PUT_MEDIA")["DataEndpoint"]
        # [node] public_url (A) overrides the top-level public_url, which names B.
        assert ep == node.endpoint or node is b, (node.endpoint, ep)
    assert a.client().get_data_endpoint(StreamName=name, APIName="GET_CLIP")[
        "DataEndpoint"] == a.endpoint


def test_redis_hub_errors_are_clear(tmp_path):
    """`hub = "redis"` without a URL, or with Redis not listening, stops at startup with a
    message that says what to do (the working hub is tests/e2e/test_scaleout_signaling.py)."""
    base = [str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--data-dir",
            str(tmp_path / "d"), "--no-turn", "--hub", "redis"]
    p = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "needs a Redis URL" in p.stderr, p.stderr
    p = subprocess.run(base + ["--redis-url", f"redis://127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "is Redis running" in p.stderr, p.stderr


def test_node_killed_mid_ingest_loses_nothing_persisted(nodes, backends, tmp_path):
    """A third node C ingests; it is SIGKILLed after some PERSISTED acks, mid-upload. Every
    fragment C acknowledged as PERSISTED is listed and readable on B, and the producer goes on
    by reconnecting to B."""
    import threading
    _, b = nodes
    c = ServerProcess(tmp_path / "c", log_dir=tmp_path / "logs-c",
                      extra_args=["--store", "s3", "--catalog", "postgres", "--no-turn",
                                  "--postgres-url", backends["pg_url"],
                                  "--s3-bucket", BUCKET, "--s3-endpoint-url", backends["s3_url"]],
                      env={"OPENKVS_S3_ACCESS_KEY_ID": S3_KEY,
                           "OPENKVS_S3_SECRET_ACCESS_KEY": S3_SECRET})
    c.start()
    try:
        name = unique("scale-kill")
        b.client().create_stream(StreamName=name, DataRetentionInHours=24)
        data = (kp.SAMPLES / "ffmpeg_h264_aac.mkv").read_bytes()
        pm = kp.PutMedia(c.endpoint, name, timecode_type="RELATIVE").open()
        # 64 kB in 2 kB chunks every 0.2 s: about 6 s of upload, killed partway.
        sender = threading.Thread(target=pm.send, args=(data,),
                                  kwargs={"chunk_size": 2048, "delay": 0.2}, daemon=True)
        sender.start()
        assert pm.wait_persisted(2, 30), pm.describe()
        c.kill()
        sender.join(15)
        acked = [a.number for a in kp.events(pm.acks, "PERSISTED")]
        assert pm.bytes_sent < len(data), "the upload finished before the kill: not mid-ingest"
        pm.close()
    finally:
        c.kill()

    listed = {f["FragmentNumber"] for f in kp.list_all_fragments(b, name)}
    assert set(acked) <= listed, (acked, listed)
    media = kp.get_fragments_media(b, name, acked)
    assert len(media) > 0

    # The producer reconnects to B and goes on.
    pm2 = kp.put_media(b.endpoint, name, data, timecode_type="RELATIVE", expect_persisted=4)
    assert pm2.status == 200, pm2.describe()
    assert len(kp.events(pm2.acks, "PERSISTED")) == 4, pm2.describe()
    after = [f["FragmentNumber"] for f in kp.list_all_fragments(b, name)]
    assert set(acked) <= set(after) and len(after) >= len(acked) + 4, (acked, after)
    # Numbers keep increasing across the move: both nodes number fragments from their own
    # clocks, so this holds while the nodes' clocks agree (NTP) to better than the gap.
    new = [a.number for a in kp.events(pm2.acks, "PERSISTED")]
    assert min(int(n) for n in new) > max(int(n) for n in acked), (acked, new)


def test_s3_down_gives_archival_error_acks_then_recovers(backends, tmp_path):
    """With the S3 server gone, a node answers ERROR 5001 (ARCHIVAL_ERROR) acks and lists
    nothing for those fragments (no silent loss, no PERSISTED); with S3 back it persists again.
    Uses its own moto so the shared one stays up for the other tests."""
    moto = ROOT / ".venv" / "bin" / "moto_server"
    moto = str(moto) if moto.exists() else shutil.which("moto_server")
    port = free_port()

    def start_moto():
        p = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port, p, "moto_server")
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET
                     ).create_bucket(Bucket=BUCKET)
        return p

    s3_proc = start_moto()
    node = ServerProcess(tmp_path / "d", log_dir=tmp_path / "logs-d",
                         extra_args=["--store", "s3", "--catalog", "postgres", "--no-turn",
                                     "--postgres-url", backends["pg_url"], "--s3-bucket", BUCKET,
                                     "--s3-endpoint-url", f"http://127.0.0.1:{port}"],
                         env={"OPENKVS_S3_ACCESS_KEY_ID": S3_KEY,
                              "OPENKVS_S3_SECRET_ACCESS_KEY": S3_SECRET})
    try:
        node.start()
        name = unique("scale-s3down")
        node.client().create_stream(StreamName=name, DataRetentionInHours=24)
        data = (kp.SAMPLES / "ffmpeg_h264_aac.mkv").read_bytes()
        s3_proc.kill()
        s3_proc.wait()
        pm = kp.put_media(node.endpoint, name, data, timecode_type="RELATIVE", max_wait=60)
        errors = [a.error_id for a in kp.events(pm.acks, "ERROR")]
        assert 5001 in errors, pm.describe()
        assert not kp.events(pm.acks, "PERSISTED"), pm.describe()
        assert kp.list_all_fragments(node, name) == []

        s3_proc = start_moto()
        pm = kp.put_media(node.endpoint, name, data, timecode_type="RELATIVE",
                          expect_persisted=4, max_wait=60)
        assert len(kp.events(pm.acks, "PERSISTED")) == 4, pm.describe()
        assert len(kp.list_all_fragments(node, name)) == 4
    finally:
        node.kill()
        s3_proc.kill()
        s3_proc.wait()


def test_turn_credentials_from_any_node_verify_with_the_shared_secret(nodes):
    """GetIceServerConfig on either node, for a channel created on A, hands out coturn REST
    credentials (password = base64(HMAC-SHA1(secret, username))) under the one shared secret."""
    import base64
    import hashlib
    import hmac
    from e2e_support import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY
    a, b = nodes
    arn = a.client().create_signaling_channel(ChannelName=unique("scale-ice"))["ChannelARN"]
    for node in (a, b):
        eps = node.client().get_signaling_channel_endpoint(
            ChannelARN=arn, SingleMasterChannelEndpointConfiguration={
                "Protocols": ["HTTPS"], "Role": "VIEWER"})["ResourceEndpointList"]
        sig = boto3.client("kinesis-video-signaling", endpoint_url=eps[0]["ResourceEndpoint"],
                           region_name=REGION, aws_access_key_id=ROOT_ACCESS_KEY,
                           aws_secret_access_key=ROOT_SECRET_KEY)
        [server] = sig.get_ice_server_config(ChannelARN=arn, ClientId="v1")["IceServerList"]
        assert server["Uris"] == [TURN_URI]
        want = base64.b64encode(hmac.new(TURN_SECRET.encode(), server["Username"].encode(),
                                         hashlib.sha1).digest()).decode()
        assert server["Password"] == want, (node.endpoint, server)
