"""SigV4 authentication as the SDKs see it (kvs-api.md §1.4, §14) and temporary credentials
minted with `openkvs credentials mint`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import botocore
import pytest

from e2e_support import (ROOT_ACCESS_KEY, ROOT_SECRET_KEY, client_config, clock_shift,
                         expect_error, hermetic_env, kvs_client, raw_error, signed_request)

import requests


def test_valid_signature_accepted(kvs):
    resp = kvs.list_streams(MaxResults=1)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_no_auth_header_raw(server):
    r = requests.post(server.endpoint + "/listStreams", data=b"{}",
                      headers={"Content-Type": "application/json"}, timeout=10)
    etype, msg = raw_error(r)
    assert (r.status_code, etype) == (403, "MissingAuthenticationTokenException"), \
        f"unsigned request: HTTP {r.status_code} {r.headers.get('x-amzn-ErrorType')} {r.text!r}"


def test_no_auth_via_boto3_unsigned(server):
    c = kvs_client(server.endpoint, config=client_config(signature_version=botocore.UNSIGNED))
    expect_error(c.list_streams, "MissingAuthenticationTokenException", 403)


def test_unknown_access_key(server):
    c = kvs_client(server.endpoint, access_key="AKIAUNKNOWNKEY000000", secret_key="whatever")
    expect_error(c.list_streams, "UnrecognizedClientException", 403)


def test_wrong_secret(server):
    c = kvs_client(server.endpoint, secret_key=ROOT_SECRET_KEY + "x")
    e = expect_error(c.describe_stream, "InvalidSignatureException", 403, StreamName="anything")
    msg = e.response["Error"]["Message"]
    assert msg.startswith("The request signature we calculated does not match"), \
        f"InvalidSignatureException message {msg!r}"


def test_any_signing_region_accepted(server, name):
    """Clients sign with their configured region; the server accepts the scope's region."""
    c = kvs_client(server.endpoint, region="eu-west-1")
    c.list_streams(MaxResults=1)


def test_wrong_signing_service_rejected(server):
    r = signed_request(server.endpoint, "/listStreams", service="kinesis")
    etype, msg = raw_error(r)
    assert r.status_code in (400, 403) and etype, \
        f"a request signed for service 'kinesis' must be rejected with a typed error, " \
        f"got HTTP {r.status_code} {etype} {r.text!r}"


def test_body_tampered_after_signing(server):
    r = signed_request(server.endpoint, "/listStreams", b'{"MaxResults": 1}',
                       tamper_body=b'{"MaxResults": 2}')
    etype, msg = raw_error(r)
    assert (r.status_code, etype) == (403, "InvalidSignatureException"), \
        f"tampered body: HTTP {r.status_code} {etype} {msg!r}"


def test_raw_signed_request_accepted(server):
    r = signed_request(server.endpoint, "/listStreams", b'{"MaxResults": 1}')
    assert r.status_code == 200, f"botocore-signed raw request rejected: {r.status_code} {r.text}"


def test_clock_skew_expired(server):
    c = server.client()
    with clock_shift(dt.timedelta(minutes=-20)):
        e = expect_error(c.list_streams, "InvalidSignatureException", 403)
    msg = e.response["Error"]["Message"]
    assert msg.startswith("Signature expired:"), f"message {msg!r} must start 'Signature expired:'"


def test_clock_skew_not_yet_current(server):
    r = signed_request(server.endpoint, "/listStreams", shift=dt.timedelta(minutes=20))
    etype, msg = raw_error(r)
    assert (r.status_code, etype) == (403, "InvalidSignatureException"), \
        f"future-dated request: HTTP {r.status_code} {etype} {msg!r}"
    assert msg.startswith("Signature not yet current:"), f"message {msg!r}"


def test_small_clock_skew_accepted(server):
    c = server.client()
    with clock_shift(dt.timedelta(minutes=-10)):
        c.list_streams(MaxResults=1)
    with clock_shift(dt.timedelta(minutes=10)):
        c.list_streams(MaxResults=1)


def test_auth_error_has_request_id(server):
    r = requests.post(server.endpoint + "/describeStream", data=b'{"StreamName":"x"}',
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.headers.get("x-amzn-RequestId"), f"no x-amzn-RequestId on a 403: {dict(r.headers)}"


# -- temporary credentials -----------------------------------------------------------------

def mint(server, ttl: int | None = None) -> dict:
    cmd = [str(server.binary), "credentials", "mint", "--data-dir", str(server.data_dir)]
    if ttl is not None:
        cmd += ["--ttl", str(ttl)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=server.environment())
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}"
    try:
        creds = json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"`openkvs credentials mint` did not print JSON: {p.stdout!r}")
    for k in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"):
        assert creds.get(k), f"minted credentials lack {k}: {creds}"
    exp = parse_expiration(creds["Expiration"])
    want = time.time() + (ttl if ttl is not None else 3600)
    assert abs(exp - want) < 120, \
        f"Expiration {creds['Expiration']!r} is not about now + ttl ({ttl or 3600} s)"
    return creds


def parse_expiration(v) -> float:
    """Epoch seconds of an Expiration given as an ISO-8601 string or an epoch number."""
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise AssertionError(f"Expiration {v!r} is neither ISO-8601 nor epoch seconds")


def temp_client(server, creds, token=None):
    return kvs_client(server.endpoint, access_key=creds["AccessKeyId"],
                      secret_key=creds["SecretAccessKey"],
                      session_token=creds["SessionToken"] if token is None else token)


def test_minted_credentials_work(server, name):
    creds = mint(server, ttl=3600)
    assert creds["AccessKeyId"] != ROOT_ACCESS_KEY
    c = temp_client(server, creds)
    arn = c.create_stream(StreamName=name)["StreamARN"]
    assert c.describe_stream(StreamARN=arn)["StreamInfo"]["StreamName"] == name
    # the root client sees the stream made with temporary credentials
    assert server.client().describe_stream(StreamName=name)["StreamInfo"]["StreamARN"] == arn


def test_minted_credentials_default_ttl(server):
    creds = mint(server)
    temp_client(server, creds).list_streams(MaxResults=1)


def test_minted_credentials_need_session_token(server):
    creds = mint(server, ttl=3600)
    c = kvs_client(server.endpoint, access_key=creds["AccessKeyId"],
                   secret_key=creds["SecretAccessKey"])
    e = expect_error(c.list_streams, ("UnrecognizedClientException", "InvalidSignatureException",
                                      "MissingAuthenticationTokenException"), 403)
    assert e


def test_tampered_session_token(server):
    creds = mint(server, ttl=3600)
    tok = creds["SessionToken"]
    i = len(tok) // 2
    flipped = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]
    expect_error(temp_client(server, creds, token=flipped).list_streams,
                 "UnrecognizedClientException", 403)
    expect_error(temp_client(server, creds, token=tok + "AAAA").list_streams,
                 "UnrecognizedClientException", 403)


def test_expired_session_token(server):
    creds = mint(server, ttl=2)
    c = temp_client(server, creds)
    c.list_streams(MaxResults=1)  # valid right now
    time.sleep(3.5)
    expect_error(c.list_streams, ("ExpiredTokenException", "UnrecognizedClientException"), 403)

