"""Cross-cutting wire rules (kvs-api.md §1): /health, x-amzn-RequestId, error shape, epoch-second
timestamps, unsupported operations and unknown paths."""

from __future__ import annotations

import json

import requests

from e2e_support import expect_error, raw_error, signed_request, unique


def test_health(server):
    r = requests.get(server.endpoint + "/health", timeout=10)
    assert r.status_code == 200, f"/health: {r.status_code} {r.text!r}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body.get("status") == "ok", body
    assert isinstance(body.get("version"), str) and body["version"], body
    up = body.get("uptime_seconds")
    assert isinstance(up, (int, float)) and not isinstance(up, bool) and up >= 0, body
    out = server.stdout_text() + server.stderr_text()
    assert f"127.0.0.1:{server.port}" in out, f"the server must print its listen URL:\n{out[-2000:]}"


def test_request_id_on_success_and_error(kvs, stream):
    name, _ = stream
    ok = kvs.describe_stream(StreamName=name)["ResponseMetadata"]
    assert ok["RequestId"], f"no RequestId on success: {ok}"
    assert ok["HTTPHeaders"].get("x-amzn-requestid"), ok["HTTPHeaders"]
    assert ok["HTTPHeaders"].get("date"), "responses must carry a Date header (§1.3)"
    ok2 = kvs.describe_stream(StreamName=name)["ResponseMetadata"]
    assert ok2["RequestId"] != ok["RequestId"], "RequestId must be unique per request"
    e = expect_error(kvs.describe_stream, "ResourceNotFoundException", 404,
                     StreamName=unique("missing"))
    meta = e.response["ResponseMetadata"]
    assert meta.get("RequestId"), f"no RequestId on an error: {meta}"
    assert meta["HTTPHeaders"].get("x-amzn-requestid")


def test_error_wire_shape(server):
    r = signed_request(server.endpoint, "/describeStream",
                       json.dumps({"StreamName": unique("missing")}))
    assert r.status_code == 404, r.text
    assert r.headers.get("x-amzn-ErrorType", "").split(":")[0] == "ResourceNotFoundException", \
        f"x-amzn-ErrorType header: {r.headers.get('x-amzn-ErrorType')!r}"
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    assert body.get("Message") or body.get("message"), f"error body without message: {body}"


def test_success_wire_shape_epoch_seconds(server, kvs, stream):
    name, _ = stream
    r = signed_request(server.endpoint, "/describeStream", json.dumps({"StreamName": name}))
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    info = r.json()["StreamInfo"]
    ct = info["CreationTime"]
    assert isinstance(ct, (int, float)) and not isinstance(ct, bool), \
        f"CreationTime must be an epoch-seconds JSON number, got {ct!r}"
    assert 1.5e9 < ct < 4e9, f"CreationTime {ct} is not in seconds"
    assert None not in info.values(), f"absent members must be omitted, not null: {info}"
    r = signed_request(server.endpoint, "/listStreams", "{}")
    for s in r.json()["StreamInfoList"]:
        assert isinstance(s["CreationTime"], (int, float))
    arn = kvs.create_signaling_channel(ChannelName=name + "-wire")["ChannelARN"]
    r = signed_request(server.endpoint, "/describeSignalingChannel",
                       json.dumps({"ChannelARN": arn}))
    ct = r.json()["ChannelInfo"]["CreationTime"]
    assert isinstance(ct, (int, float)) and 1.5e9 < ct < 4e9, \
        f"ChannelInfo.CreationTime must be epoch seconds, got {ct!r}"


def test_empty_output_operations_return_empty_object(server, kvs, stream):
    name, _ = stream
    r = signed_request(server.endpoint, "/tagStream",
                       json.dumps({"StreamName": name, "Tags": {"k": "v"}}))
    assert r.status_code == 200, r.text
    assert r.json() == {}, f"TagStream must return {{}}, got {r.text!r}"


def test_lenient_request_parsing(server, stream):
    """Pretty-printed JSON, unknown members and null members are accepted (§1.2)."""
    name, _ = stream
    body = '{\n\t"StreamName" : "%s",\n\t"SomethingNew": 1,\n\t"StreamARN": null\n}' % name
    r = signed_request(server.endpoint, "/describeStream", body)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    assert r.json()["StreamInfo"]["StreamName"] == name


def test_malformed_json_is_a_typed_400(server):
    r = signed_request(server.endpoint, "/describeStream", b"{not json")
    etype, msg = raw_error(r)
    assert r.status_code == 400 and etype, \
        f"malformed JSON: HTTP {r.status_code} type={etype} body={r.text!r}"


def test_unsupported_operation(kvs, stream):
    name, _ = stream
    e = expect_error(kvs.describe_edge_configuration, "UnsupportedOperationException", 400,
                     StreamName=name)
    msg = e.response["Error"]["Message"]
    assert "describeedgeconfiguration" in msg.lower(), \
        f"message must name the operation: {msg!r}"
    assert e.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")


def test_unknown_path_signed_is_json(server):
    r = signed_request(server.endpoint, "/noSuchOperation", "{}")
    assert 400 <= r.status_code < 500, f"unknown path: HTTP {r.status_code}"
    assert "html" not in r.headers.get("Content-Type", "").lower(), r.headers
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"unknown path must answer JSON, got {r.text[:300]!r}")
    etype, _ = raw_error(r)
    assert etype, f"unknown path error has no type: {r.headers} {body}"


def test_unknown_path_unsigned_is_json(server):
    for method, path in (("GET", "/no/such/page"), ("POST", "/nothing"), ("GET", "/index.html")):
        r = requests.request(method, server.endpoint + path, timeout=10)
        assert r.status_code >= 400, f"{method} {path}: HTTP {r.status_code}"
        assert "<html" not in r.text.lower(), f"{method} {path} answered HTML: {r.text[:200]!r}"
        try:
            r.json()
        except ValueError:
            raise AssertionError(f"{method} {path} must answer JSON, got {r.text[:200]!r}")


def test_paths_are_case_sensitive(server):
    """`/TagResource` is capitalised, `/tagStream` is not (§2.1): `/TagStream` is not a route."""
    r = signed_request(server.endpoint, "/DescribeStream", '{"StreamName":"x"}')
    assert r.status_code != 200, "/DescribeStream (wrong case) must not be routed"
    r.json()  # still JSON
