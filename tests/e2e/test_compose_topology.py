"""docker/compose.yaml, kept honest without Docker (issue 7): this test reads the compose file,
takes the openkvs nodes' environment exactly as written there (only host names become loopback
ports and `${VAR}` references get test values), starts the same topology as native processes —
PostgreSQL, an S3 server (moto), Redis, coturn with the compose file's own arguments, and two
openkvs nodes configured by that environment alone — and checks that it works end to end: ingest
on A, clip from B; a viewer on B reaches the master on A; a TURN allocation on coturn with
credentials from node B; a session URL minted on A plays on B (one token key file)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests
import yaml

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import (REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, ServerProcess, free_port,
                         server_binary, unique)
from test_scaleout import S3_KEY, S3_SECRET, _missing, _wait_port, backends  # noqa: F401
from test_scaleout_signaling import Redis, _connect, _exchange, _has_redis_feature

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"

# The values docker/example.env asks for, as a test would fill them in.
ENV_FILE = {
    "POSTGRES_PASSWORD": "unused-trust-auth",
    "S3_ACCESS_KEY_ID": S3_KEY,
    "S3_SECRET_ACCESS_KEY": S3_SECRET,
    # The suite's root keys, so its signing helpers work unchanged.
    "OPENKVS_ACCESS_KEY_ID": ROOT_ACCESS_KEY,
    "OPENKVS_SECRET_ACCESS_KEY": ROOT_SECRET_KEY,
    "TURN_SECRET": "compose-turn-secret",
    "TURN_HOST": "127.0.0.1",
}


def _substitute(value: str, extra: dict) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, from ENV_FILE + `extra`."""
    env = ENV_FILE | extra

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"compose.yaml needs {name} ({arg}); docker/example.env must list it")

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, value)


def _compose():
    return yaml.safe_load(COMPOSE.read_text())


def _node_env(service: str, ports: dict, key_file: Path) -> dict:
    """The service's environment from compose.yaml, pointed at this test's processes."""
    env = {k: _substitute(str(v), {"NODE_A_URL": ports["a"], "NODE_B_URL": ports["b"]})
           for k, v in _compose()["services"][service]["environment"].items()}
    hosts = {
        "@postgres:5432/openkvs": f"@127.0.0.1:{ports['pg']}/openkvs",
        "http://s3:9000": ports["s3_url"],
        "redis://redis:6379": ports["redis_url"],
        ":3478?": f":{ports['turn']}?",
        "/run/secrets/openkvs-token-key": str(key_file),
    }
    for k, v in env.items():
        for old, new in hosts.items():
            v = v.replace(old, new)
        env[k] = v
    return env


@pytest.fixture(scope="module")
def topology(backends, tmp_path_factory):  # noqa: F811
    if not _has_redis_feature():
        _missing("an openkvs binary built with --features s3,redis")
    for tool in ("redis-server", "turnserver", "turnutils_uclient"):
        if not shutil.which(tool):
            _missing(f"{tool} (tests/run.sh installs redis-server and coturn)")
    base = tmp_path_factory.mktemp("compose")
    key_file = base / "token-key.hex"
    key_file.write_text(os.urandom(32).hex() + "\n")
    key_file.chmod(0o600)
    redis = Redis(shutil.which("redis-server"))
    redis.start()
    coturn = None
    nodes = []
    try:
        # coturn with the compose file's own command line, on a spare port and a private state dir.
        turn_port = free_port()
        args = [_substitute(a, {}) for a in _compose()["services"]["coturn"]["command"]]
        args = [f"--listening-port={turn_port}" if a.startswith("--listening-port=") else a
                for a in args]
        coturn = subprocess.Popen(["turnserver", *args, "--listening-ip=127.0.0.1",
                                   "--relay-ip=127.0.0.1", "--no-tcp",
                                   # test only: the peer of the allocation is on loopback here
                                   "--allow-loopback-peers",
                                   f"--pidfile={base / 'turn.pid'}", f"--log-file={base / 'turn.log'}",
                                   "--min-port=50000", "--max-port=50999"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pg_port = int(backends["pg_url"].rsplit(":", 1)[1].split("/")[0])
        # The compose file's database user and name (POSTGRES_USER/POSTGRES_DB of its postgres
        # service); the test server trusts loopback, so the password is not checked.
        pg_env = _compose()["services"]["postgres"]["environment"]
        psql = shutil.which("psql")
        if not psql:
            _missing("psql (Debian postgresql-client)")
        for sql in (f'CREATE ROLE "{pg_env["POSTGRES_USER"]}" LOGIN',
                    f'CREATE DATABASE "{pg_env["POSTGRES_DB"]}" OWNER "{pg_env["POSTGRES_USER"]}"'):
            subprocess.run([psql, backends["pg_url"], "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                           check=True, capture_output=True, timeout=30)
        port_a, port_b = free_port(), free_port()
        ports = {"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}",
                 "pg": pg_port, "s3_url": backends["s3_url"], "redis_url": redis.url,
                 "turn": turn_port}
        # What the compose file's s3-init service does: create the nodes' bucket.
        bucket = _compose()["services"]["openkvs-a"]["environment"]["OPENKVS_S3_BUCKET"]
        boto3.client("s3", endpoint_url=backends["s3_url"], region_name="us-east-1",
                     aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET
                     ).create_bucket(Bucket=bucket)
        for name, service, port in (("a", "openkvs-a", port_a), ("b", "openkvs-b", port_b)):
            env = _node_env(service, ports, key_file)
            creds = (env.pop("OPENKVS_ACCESS_KEY_ID"), env.pop("OPENKVS_SECRET_ACCESS_KEY"))
            n = ServerProcess(base / name, port=port, log_dir=base / f"logs-{name}",
                              credentials=creds, env=env)
            nodes.append(n)
            n.start()
        time.sleep(0.5)
        assert coturn.poll() is None, (base / "turn.log").read_text()[-2000:]
        yield {"a": nodes[0], "b": nodes[1], "turn_port": turn_port, "bucket": bucket}
    finally:
        # Also when a start above failed: nothing this fixture started outlives it.
        for n in nodes:
            n.kill()
        if coturn is not None:
            coturn.kill()
            coturn.wait()
        redis.stop()


def test_compose_environment_names_real_options():
    """Every OPENKVS_* variable the compose file sets is one `openkvs serve` reads."""
    help_text = subprocess.run([str(server_binary()), "serve", "--help"], capture_output=True,
                               text=True).stdout
    env = _compose()["services"]["openkvs-a"]["environment"]
    names = [k for k in env if k.startswith("OPENKVS_")]
    assert "OPENKVS_HUB" in names and env["OPENKVS_HUB"] == "redis"
    credentials = {"OPENKVS_ACCESS_KEY_ID", "OPENKVS_SECRET_ACCESS_KEY"}
    for name in names:
        if name not in credentials:
            assert f"env: {name}" in help_text or f"env: {name}=" in help_text, name


def test_compose_topology_end_to_end(topology, tmp_path):
    a, b = topology["a"], topology["b"]
    # The nodes announce what compose.yaml selected.
    for n in (a, b):
        banner = n.stdout_text()
        assert "signaling hub: redis" in banner, banner
        assert "store: S3" in banner and "catalog: Postgres" in banner, banner

    # Ingest on A, ListFragments and GetClip on B.
    name = unique("compose")
    a.client().create_stream(StreamName=name, DataRetentionInHours=24)
    head, body, gens = mkvgen.stream(3, start_tc=1_770_000_000_000)
    pm = kp.put_media(a.endpoint, name, body, max_wait=15)
    assert len(kp.events(pm.acks, "PERSISTED")) == 3, pm.describe()
    s3 = boto3.client("s3", endpoint_url=topology_s3(a), region_name="us-east-1",
                      aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=topology["bucket"], Prefix=f"streams/{name}/")
            .get("Contents", [])]
    assert len(keys) == 3 and all(re.fullmatch(
        rf"streams/{re.escape(name)}/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/\d+", k) for k in keys), keys

    # A viewer on B reaches the master on A (Redis hub).
    arn = a.client().create_signaling_channel(ChannelName=unique("compose-ch"))["ChannelARN"]
    master = _connect(a, arn)
    viewer = _connect(b, arn, "v-compose")
    try:
        _exchange(master, viewer, "v-compose", n=3)
    finally:
        master.close()
        viewer.close()

    # TURN credentials from B work on the compose file's coturn.
    sig = boto3.client("kinesis-video-signaling", endpoint_url=b.endpoint, region_name=REGION,
                       aws_access_key_id=a.credentials[0], aws_secret_access_key=a.credentials[1])
    [server] = sig.get_ice_server_config(ChannelARN=arn, ClientId="v1")["IceServerList"]
    assert any(f":{topology['turn_port']}?" in u for u in server["Uris"]), server["Uris"]
    out = subprocess.run(["turnutils_uclient", "-u", server["Username"], "-w", server["Password"],
                          "-e", "127.0.0.1", "-n", "5", "-m", "1", "-y",
                          "-p", str(topology["turn_port"]), "127.0.0.1"],
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "tot_send_msgs=20, tot_recv_msgs=20" in text, text[-3000:]

    # One token key file: an HLS session minted on A plays on B.
    url = kp.data_client(a, "kinesis-video-archived-media", "GET_HLS_STREAMING_SESSION_URL", name) \
        .get_hls_streaming_session_url(StreamName=name, PlaybackMode="ON_DEMAND",
                                       HLSFragmentSelector={
                                           "FragmentSelectorType": "SERVER_TIMESTAMP",
                                           "TimestampRange": {
                                               "StartTimestamp": time.time() - 3600,
                                               "EndTimestamp": time.time() - 0.1}}
                                       )["HLSStreamingSessionURL"]
    on_b = url.replace(a.endpoint, b.endpoint)
    assert on_b != url
    r = requests.get(on_b, timeout=10)
    assert r.status_code == 200 and r.text.startswith("#EXTM3U"), (r.status_code, r.text[:300])


def topology_s3(node: ServerProcess) -> str:
    return node.extra_env["OPENKVS_S3_ENDPOINT_URL"]
