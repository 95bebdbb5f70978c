"""WebRTC signaling (`kvs-api.md` §13): the unmodified KVS WebRTC JS SDK and the AWS SDK for JS v3
in Node (tests/node/signaling.test.mjs), GetIceServerConfig with boto3, and the embedded TURN
server driven by coturn's `turnutils_uclient` with the credentials GetIceServerConfig hands out.

Each test starts its own server with the embedded TURN server on a free UDP port.
"""

import base64
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests

from e2e_support import REGION, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, unique

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def turn_server(new_server):
    """A server with the embedded TURN server on 127.0.0.1:<free port>; yields (server, port)."""
    port = free_udp_port()
    srv = new_server(extra_args=["--turn-listen", f"127.0.0.1:{port}"]).start()
    return srv, port


def signaling_client(srv):
    return boto3.client("kinesis-video-signaling", endpoint_url=srv.endpoint, region_name=REGION,
                        aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY)


def ice_config(srv, channel_name):
    kvs = srv.client()
    arn = kvs.create_signaling_channel(ChannelName=channel_name)["ChannelARN"]
    eps = kvs.get_signaling_channel_endpoint(
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": "VIEWER"},
    )["ResourceEndpointList"]
    https = next(e["ResourceEndpoint"] for e in eps if e["Protocol"] == "HTTPS")
    sig = boto3.client("kinesis-video-signaling", endpoint_url=https, region_name=REGION,
                       aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY)
    return arn, sig.get_ice_server_config(ChannelARN=arn, ClientId="viewer-1", Service="TURN")


def test_get_ice_server_config_boto3(turn_server):
    srv, port = turn_server
    arn, resp = ice_config(srv, unique("ice"))
    [server] = resp["IceServerList"]
    assert server["Uris"] == [f"turn:127.0.0.1:{port}?transport=udp",
                              f"turn:127.0.0.1:{port}?transport=tcp"]
    assert server["Ttl"] == 300
    expiry, user = server["Username"].split(":")
    assert int(expiry) - time.time() == pytest.approx(300, abs=30)
    assert base64.b64decode(user).decode() == f"v1:{arn}"
    assert len(base64.b64decode(server["Password"])) == 20  # HMAC-SHA1, coturn compatible

    sig = signaling_client(srv)
    with pytest.raises(sig.exceptions.ResourceNotFoundException):
        sig.get_ice_server_config(ChannelARN=arn.rsplit("/", 1)[0] + "/1")
    with pytest.raises(sig.exceptions.InvalidArgumentException):
        sig.get_ice_server_config(ChannelARN=arn, Service="STUN")


def test_no_turn_gives_empty_list(new_server):
    srv = new_server(extra_args=["--no-turn"]).start()
    _, resp = ice_config(srv, unique("noturn"))
    assert resp["IceServerList"] == []


def test_plain_get_root_is_not_signaling(turn_server):
    # GET / without an upgrade or X-Amz-ChannelARN falls through (another page may live there).
    srv, _ = turn_server
    r = requests.get(srv.endpoint + "/", timeout=10)
    assert r.status_code != 101
    assert "X-Amz-ChannelARN" not in r.text
    # An upgrade without a signature is refused before switching protocols.
    r = requests.get(srv.endpoint + "/?X-Amz-ChannelARN=arn:aws:kinesisvideo:us-east-1:111122223333:channel/x/1",
                     headers={"Connection": "Upgrade", "Upgrade": "websocket",
                              "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
                     timeout=10)
    assert r.status_code == 403, r.text
    assert r.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_js_sdks_in_node(turn_server):
    if shutil.which("node") is None:
        pytest.fail("node is not installed (tests/run.sh installs nodejs)", pytrace=False)
    if not (NODE_DIR / "node_modules" / "amazon-kinesis-video-streams-webrtc").exists():
        pytest.fail("tests/node/node_modules missing: run `npm ci --legacy-peer-deps` in tests/node "
                    "(tests/run.sh does)", pytrace=False)
    srv, _ = turn_server
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKVS_"))}
    env.update(OPENKVS_ENDPOINT=srv.endpoint, AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=ROOT_SECRET_KEY, AWS_REGION=REGION, EXPECT_TURN="1",
               NODE_NO_WARNINGS="1")
    p = subprocess.run(["node", "--test", "signaling.test.mjs"], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=90)
    print(p.stdout[-6000:])
    assert p.returncode == 0, f"node --test failed:\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}\n{srv.logs()}"
    assert "# fail 0" in p.stdout


def uclient(user, password, port, timeout=30, tcp=False):
    return subprocess.run(
        ["turnutils_uclient", *(["-t"] if tcp else []), "-u", user, "-w", password,
         "-e", "127.0.0.1", "-n", "5", "-m", "1", "-y", "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=timeout)


def test_turn_relay_with_turnutils_uclient(turn_server):
    if shutil.which("turnutils_uclient") is None:
        pytest.fail("turnutils_uclient not found (Debian package coturn; tests/run.sh installs it)",
                    pytrace=False)
    srv, port = turn_server
    _, resp = ice_config(srv, unique("turn"))
    [server] = resp["IceServerList"]
    ok = uclient(server["Username"], server["Password"], port)
    out = ok.stdout + ok.stderr
    assert "tot_send_msgs=20, tot_recv_msgs=20" in out, out[-3000:]
    assert "Total lost packets 0 " in out, out[-3000:]

    # Tampered password, and a username whose expiry was extended: no relayed traffic.
    bad_pw = ("A" if server["Password"][0] != "A" else "B") + server["Password"][1:]
    expiry, rest = server["Username"].split(":", 1)
    for user, pw in [(server["Username"], bad_pw), (f"{int(expiry) + 3600}:{rest}", server["Password"])]:
        try:
            bad = uclient(user, pw, port, timeout=20)
            out = bad.stdout + bad.stderr
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        assert "tot_recv_msgs=20" not in out, out[-3000:]
        assert "Total lost packets 0 " not in out, out[-3000:]


def test_turn_over_tcp_with_turnutils_uclient(turn_server):
    """TURN over TCP on the same port number (`?transport=tcp`): coturn's client talks to the
    embedded server over TCP (`-t`), the relay to the peer stays UDP."""
    if shutil.which("turnutils_uclient") is None:
        pytest.fail("turnutils_uclient not found (Debian package coturn; tests/run.sh installs it)",
                    pytrace=False)
    srv, port = turn_server
    _, resp = ice_config(srv, unique("turntcp"))
    [server] = resp["IceServerList"]
    assert f"turn:127.0.0.1:{port}?transport=tcp" in server["Uris"]
    ok = uclient(server["Username"], server["Password"], port, tcp=True)
    out = ok.stdout + ok.stderr
    assert "tot_send_msgs=20, tot_recv_msgs=20" in out, out[-3000:]
    assert "Total lost packets 0 " in out, out[-3000:]

    bad_pw = ("A" if server["Password"][0] != "A" else "B") + server["Password"][1:]
    try:
        bad = uclient(server["Username"], bad_pw, port, timeout=20, tcp=True)
        out = bad.stdout + bad.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    assert "tot_recv_msgs=20" not in out, out[-3000:]


def test_viewer_credentials_cannot_connect_as_master(server):
    """A read-only key (`credentials mint --role viewer`) may watch a channel but not become
    its camera: ConnectAsMaster is refused before the upgrade, ConnectAsViewer works."""
    import json
    import urllib.parse

    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest
    from ws_client import WebSocket

    p = subprocess.run([str(server.binary), "credentials", "mint", "--data-dir",
                        str(server.data_dir), "--role", "viewer"], capture_output=True, text=True,
                       timeout=60, env=server.environment())
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    creds = botocore.credentials.Credentials(c["AccessKeyId"], c["SecretAccessKey"],
                                             c["SessionToken"])
    arn = server.client().create_signaling_channel(ChannelName=unique("ro"))["ChannelARN"]

    def ws(client_id=None):
        q = {"X-Amz-ChannelARN": arn} | ({"X-Amz-ClientId": client_id} if client_id else {})
        req = AWSRequest(method="GET", url=server.endpoint + "/?" + urllib.parse.urlencode(q))
        botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", REGION, expires=300).add_auth(req)
        return WebSocket(req.url)

    master = ws()
    try:
        assert master.status == 401, master.head
        assert master.error_type() == "NotAuthorizedException", master.head
    finally:
        master.close()
    viewer = ws("viewer-ro")
    try:
        assert viewer.status == 101, viewer.head
    finally:
        viewer.close()
