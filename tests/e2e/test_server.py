"""The `openkvs` process itself: --help, graceful shutdown, restart persistence, concurrency,
first-start credential generation, the TOML config file, OPENKVS_* variables, --public-url and
--log-format json."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading

import pytest
from botocore.exceptions import ClientError

from e2e_support import (ACCOUNT_ID, REGION, error_of, expect_error, free_port, kvs_client,
                         server_binary, stream_arn_regex, unique)


def run_binary(*args, timeout=30):
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
    return subprocess.run([str(server_binary()), *args], capture_output=True, text=True,
                          timeout=timeout)


# -- command line ----------------------------------------------------------------------------

def test_help_top_level():
    p = run_binary("--help")
    assert p.returncode == 0, f"openkvs --help exited {p.returncode}: {p.stderr}"
    for word in ("serve", "credentials"):
        assert word in p.stdout, f"`openkvs --help` does not mention {word!r}:\n{p.stdout}"


def test_help_serve_mentions_every_option():
    p = run_binary("serve", "--help")
    assert p.returncode == 0, f"openkvs serve --help exited {p.returncode}: {p.stderr}"
    for opt in ("--listen", "--data-dir", "--region", "--account-id", "--public-url",
                "--log-format", "--config"):
        assert opt in p.stdout, f"`openkvs serve --help` does not mention {opt}:\n{p.stdout}"


def test_help_credentials_mint():
    p = run_binary("credentials", "mint", "--help")
    assert p.returncode == 0, f"openkvs credentials mint --help exited {p.returncode}: {p.stderr}"
    for opt in ("--data-dir", "--ttl"):
        assert opt in p.stdout, f"`openkvs credentials mint --help` lacks {opt}:\n{p.stdout}"


def test_bad_option_fails():
    p = run_binary("serve", "--no-such-option")
    assert p.returncode != 0, "an unknown option must make openkvs exit non-zero"


# -- lifecycle -------------------------------------------------------------------------------

def test_graceful_shutdown(new_server):
    srv = new_server().start()
    srv.client().list_streams()
    elapsed, code = srv.stop()
    assert code == 0, f"SIGTERM must end openkvs gracefully with exit code 0, got {code}\n" \
                      f"{srv.logs()}"
    assert elapsed < 5


def test_restart_persists_everything(new_server):
    srv = new_server().start()
    c = srv.client()
    s1, s2, gone = unique("p1"), unique("p2"), unique("pgone")
    arn1 = c.create_stream(StreamName=s1, MediaType="video/h264", DataRetentionInHours=1,
                           Tags={"t": "1"})["StreamARN"]
    v = c.describe_stream(StreamName=s1)["StreamInfo"]["Version"]
    c.update_data_retention(StreamName=s1, CurrentVersion=v,
                            Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=5)
    c.create_stream(StreamName=s2)
    c.tag_stream(StreamName=s2, Tags={"x": "y"})
    garn = c.create_stream(StreamName=gone)["StreamARN"]
    c.delete_stream(StreamARN=garn)
    ch = unique("pch")
    charn = c.create_signaling_channel(ChannelName=ch, SingleMasterConfiguration={
        "MessageTtlSeconds": 33}, Tags=[{"Key": "ck", "Value": "cv"}])["ChannelARN"]

    before_streams = {n: c.describe_stream(StreamName=n)["StreamInfo"] for n in (s1, s2)}
    before_channel = c.describe_signaling_channel(ChannelARN=charn)["ChannelInfo"]

    srv.restart()
    c = srv.client()
    for n, info in before_streams.items():
        after = c.describe_stream(StreamName=n)["StreamInfo"]
        assert after == info, f"stream {n} changed across restart:\n before {info}\n after {after}"
    assert before_streams[s1]["DataRetentionInHours"] == 6
    assert c.list_tags_for_stream(StreamARN=arn1)["Tags"] == {"t": "1"}
    assert c.list_tags_for_stream(StreamName=s2)["Tags"] == {"x": "y"}
    expect_error(c.describe_stream, "ResourceNotFoundException", 404, StreamName=gone)
    after_ch = c.describe_signaling_channel(ChannelName=ch)["ChannelInfo"]
    assert after_ch == before_channel, f"channel changed across restart: {before_channel} -> " \
                                       f"{after_ch}"
    assert c.list_tags_for_resource(ResourceARN=charn)["Tags"] == {"ck": "cv"}
    names = {s["StreamName"] for s in c.list_streams()["StreamInfoList"]}
    assert {s1, s2} <= names and gone not in names, names
    # still consistent after restart: duplicates rejected, versions still checked
    expect_error(c.create_stream, "ResourceInUseException", 400, StreamName=s1)
    expect_error(c.create_signaling_channel, "ResourceInUseException", 400, ChannelName=ch)
    expect_error(c.update_stream, "VersionMismatchException", 400, StreamName=s1,
                 CurrentVersion=v, MediaType="video/h265")
    c.update_stream(StreamName=s1, CurrentVersion=before_streams[s1]["Version"],
                    MediaType="video/h265")
    # a second restart sees the post-restart mutation
    srv.restart()
    assert srv.client().describe_stream(StreamName=s1)["StreamInfo"]["MediaType"] == "video/h265"


def _race(n, fn):
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = ("ok", fn(i))
        except ClientError as e:
            results[i] = ("err", error_of(e))
        except Exception as e:  # noqa: BLE001 - reported in the assertion
            results[i] = ("exc", repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_create_same_stream(server):
    n = 12
    name = unique("race")
    clients = [server.client() for _ in range(n)]
    results = _race(n, lambda i: clients[i].create_stream(StreamName=name)["StreamARN"])
    oks = [r for r in results if r[0] == "ok"]
    others = [r for r in results if r[0] != "ok"]
    assert len(oks) == 1, f"exactly one concurrent CreateStream must succeed: {results}"
    assert all(r[0] == "err" and r[1][:2] == ("ResourceInUseException", 400) for r in others), \
        f"the losers must get ResourceInUseException 400: {others}"
    info = server.client().describe_stream(StreamName=name)["StreamInfo"]
    assert info["StreamARN"] == oks[0][1]
    listed = server.client().list_streams(StreamNameCondition={
        "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})["StreamInfoList"]
    assert len(listed) == 1, f"one stream expected after the race: {listed}"


def test_concurrent_create_same_channel(server):
    n = 8
    name = unique("racech")
    clients = [server.client() for _ in range(n)]
    results = _race(n, lambda i: clients[i].create_signaling_channel(ChannelName=name))
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, f"exactly one concurrent CreateSignalingChannel must succeed: {results}"
    assert all(r[0] == "ok" or r[1][:2] == ("ResourceInUseException", 400) for r in results), \
        results


def test_concurrent_create_distinct_streams(server):
    n = 16
    prefix = unique("many")
    clients = [server.client() for _ in range(n)]
    results = _race(n, lambda i: clients[i].create_stream(StreamName=f"{prefix}-{i:02d}"))
    assert all(r[0] == "ok" for r in results), results
    pages = server.client().get_paginator("list_streams").paginate(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix})
    names = sorted(s["StreamName"] for p in pages for s in p["StreamInfoList"])
    assert names == [f"{prefix}-{i:02d}" for i in range(n)], names


# -- credentials and configuration -----------------------------------------------------------

def _parse_printed(stdout: str, key: str):
    patterns = {
        "AccessKeyId": r"(?i)(?:aws_access_key_id|access[ _-]?key[ _-]?id|access key)"
                       r"[\"']?\s*[:=]?\s*[\"']?([A-Za-z0-9]{12,128})",
        "SecretAccessKey": r"(?i)(?:aws_secret_access_key|secret[ _-]?access[ _-]?key|secret key)"
                           r"[\"']?\s*[:=]?\s*[\"']?([^\s\"',]{16,128})",
    }
    m = re.search(patterns[key], stdout)
    return m.group(1) if m else None


def test_first_start_generates_root_credentials(new_server):
    srv = new_server(credentials=None).start()
    path = srv.data_dir / "root-credentials.json"
    assert path.exists(), f"{path} was not created on first start\n{srv.logs()}"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, f"{path} has mode {oct(mode)}, want 0o600"
    stored = json.loads(path.read_text())
    ak, sk = stored.get("AccessKeyId"), stored.get("SecretAccessKey")
    assert ak and sk, f"root-credentials.json lacks AccessKeyId/SecretAccessKey: {stored}"

    out = srv.stdout_text()
    printed_ak, printed_sk = _parse_printed(out, "AccessKeyId"), _parse_printed(out, "SecretAccessKey")
    assert ak in out and sk in out, f"first start must print the generated pair on stdout:\n{out}"
    assert "aws configure" in out, f"first start must print `aws configure` instructions:\n{out}"
    if printed_ak is not None:
        assert printed_ak == ak, f"printed key id {printed_ak!r} != stored {ak!r}"
    if printed_sk is not None:
        assert printed_sk == sk, f"printed secret {printed_sk!r} != stored secret"

    c = kvs_client(srv.endpoint, access_key=printed_ak or ak, secret_key=printed_sk or sk)
    name = unique("gen")
    c.create_stream(StreamName=name)

    srv.restart()
    assert json.loads(path.read_text()) == stored, "restart must reuse root-credentials.json"
    assert sk not in srv.stdout_text(), "the secret must be printed only on the first start"
    c = kvs_client(srv.endpoint, access_key=ak, secret_key=sk)
    assert c.describe_stream(StreamName=name)["StreamInfo"]["StreamName"] == name
    expect_error(kvs_client(srv.endpoint, access_key=ak, secret_key=sk + "x").list_streams,
                 "InvalidSignatureException", 403)


def test_env_credentials_do_not_generate_file(new_server):
    srv = new_server().start()
    srv.client().list_streams()
    assert not (srv.data_dir / "root-credentials.json").exists(), \
        "with OPENKVS_ACCESS_KEY_ID/SECRET set, no root-credentials.json must be generated"


def test_toml_config_file(new_server, tmp_path):
    port = free_port()
    data = tmp_path / "toml-data"
    cfg = tmp_path / "openkvs.toml"
    cfg.write_text(
        f'listen = "127.0.0.1:{port}"\n'
        f'data_dir = "{data}"\n'
        'region = "eu-west-1"\n'
        'account_id = "444455556666"\n'
        'access_key_id = "AKIATOMLCONFIG000001"\n'
        'secret_access_key = "tomlSecretKey0123456789abcdefghij"\n')
    srv = new_server(port=port, data_dir=data, credentials=None,
                     args=["serve", "--config", str(cfg)]).start()
    c = kvs_client(srv.endpoint, access_key="AKIATOMLCONFIG000001",
                   secret_key="tomlSecretKey0123456789abcdefghij", region="eu-west-1")
    name = unique("toml")
    arn = c.create_stream(StreamName=name)["StreamARN"]
    assert re.match(stream_arn_regex(name, "eu-west-1", "444455556666"), arn), \
        f"region/account_id from the TOML file not used: {arn}"
    assert any(data.iterdir()), f"data_dir {data} from the TOML file is unused"
    expect_error(kvs_client(srv.endpoint).list_streams, "UnrecognizedClientException", 403)


def test_openkvs_env_vars(new_server, tmp_path):
    port = free_port()
    data = tmp_path / "env-data"
    srv = new_server(port=port, data_dir=data, args=["serve"], env={
        "OPENKVS_LISTEN": f"127.0.0.1:{port}",
        "OPENKVS_DATA_DIR": str(data),
        "OPENKVS_REGION": "eu-central-1",
        "OPENKVS_ACCOUNT_ID": "777788889999",
    }).start()
    c = kvs_client(srv.endpoint, region="eu-central-1")
    name = unique("env")
    arn = c.create_stream(StreamName=name)["StreamARN"]
    assert re.match(stream_arn_regex(name, "eu-central-1", "777788889999"), arn), \
        f"OPENKVS_REGION / OPENKVS_ACCOUNT_ID not used: {arn}"
    assert any(data.iterdir()), f"OPENKVS_DATA_DIR {data} is unused"


def test_command_line_overrides_env(new_server, tmp_path):
    port = free_port()
    srv = new_server(port=port, region="ap-south-1",
                     env={"OPENKVS_REGION": "eu-central-1"}).start()
    name = unique("prec")
    arn = srv.client(region="ap-south-1").create_stream(StreamName=name)["StreamARN"]
    assert re.match(stream_arn_regex(name, "ap-south-1"), arn), \
        f"--region must win over OPENKVS_REGION: {arn}"


def test_public_url(new_server):
    public = "https://kvs.example.test:8443"
    srv = new_server(extra_args=["--public-url", public]).start()
    c = srv.client()
    name = unique("pub")
    c.create_stream(StreamName=name)
    for api in ("PUT_MEDIA", "GET_MEDIA", "GET_HLS_STREAMING_SESSION_URL"):
        ep = c.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
        assert ep == public, f"GetDataEndpoint({api}) = {ep!r}, want --public-url {public!r}"
    arn = c.create_signaling_channel(ChannelName=name)["ChannelARN"]
    eps = c.get_signaling_channel_endpoint(ChannelARN=arn, SingleMasterChannelEndpointConfiguration={
        "Protocols": ["WSS", "HTTPS"], "Role": "MASTER"})["ResourceEndpointList"]
    assert eps == [{"Protocol": "WSS", "ResourceEndpoint": "wss://kvs.example.test:8443"},
                   {"Protocol": "HTTPS", "ResourceEndpoint": "https://kvs.example.test:8443"}], eps


def test_log_format_json(new_server):
    srv = new_server(extra_args=["--log-format", "json"]).start()
    c = srv.client()
    c.list_streams()
    expect_error(c.describe_stream, "ResourceNotFoundException", 404, StreamName=unique("nolog"))
    srv.stop()
    lines = [ln for ln in (srv.stdout_text() + "\n" + srv.stderr_text()).splitlines()
             if ln.strip()]
    objs = []
    for ln in lines:
        try:
            v = json.loads(ln)
        except ValueError:
            continue
        if isinstance(v, dict):
            objs.append(v)
    assert objs, f"--log-format json produced no JSON log line:\n{srv.logs()}"


def test_default_account_and_region(new_server):
    """Without --region/--account-id the ARNs still have a region and a 12-digit account."""
    srv = new_server(region=None, account_id=None).start()
    name = unique("dflt")
    arn = srv.client().create_stream(StreamName=name)["StreamARN"]
    assert re.match(rf"^arn:aws:kinesisvideo:us-east-1:[0-9]{{12}}:stream/{name}/[0-9]{{13}}$",
                    arn), f"default region must be us-east-1: {arn}"


def test_session_server_uses_given_account(kvs, name):
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    assert f":{REGION}:{ACCOUNT_ID}:" in arn, arn
