#!/usr/bin/env python3
"""Records SigV4 vectors signed by botocore, for crates/sigv4/tests/vectors.rs.

Regenerate (the committed botocore.json was made with botocore 1.44.5, Python 3.11):

    python3 -m venv /tmp/sigv4venv
    /tmp/sigv4venv/bin/pip install botocore
    /tmp/sigv4venv/bin/python crates/sigv4/tests/vectors/gen_botocore.py

The output is deterministic: the signing time is fixed by patching
`botocore.auth.get_current_datetime`, the credentials are made-up constants, and the only
non-deterministic header values (User-Agent with the OS version, amz-sdk-invocation-id) are
replaced after signing. The script asserts that botocore did not sign those two.

Nothing is sent over the network: a `before-send` handler captures each prepared request and
answers it locally.

Each vector records the request as a server would receive it: method, raw path, raw query,
headers (lower-case names, including the `host` header that urllib3 adds from the URL, which
is what botocore signs via `_host_from_url`) and body.
"""

import datetime
import json
import os
from unittest import mock
from urllib.parse import urlsplit

import botocore
import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

NOW = datetime.datetime(2024, 1, 1, 12, 0, 0)  # naive UTC, as botocore uses it
NOW_UNIX = 1704110400
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TEMP_AKID = "ASIAEXAMPLETEMPORARY"
TEMP_SECRET = "tEmPoRaRy/SeCrEt+KeY=="
# Session tokens are base64: make sure '+', '/' and '=' all appear.
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQD+token/with+plus/slash=="
REGION = "us-west-2"
SERVICE = "kinesisvideo"
UNSIGNED_REWRITES = {
    "user-agent": "Botocore/%s (rest elided: unsigned)" % botocore.__version__,
    "amz-sdk-invocation-id": "00000000-0000-4000-8000-000000000000",
}


def host_header(url):
    # What urllib3/http.client send, and what botocore signs (auth._host_from_url).
    return botocore.auth._host_from_url(url)


def record(name, source, creds, region, service, now_unix, method, url, headers, body, form):
    parts = urlsplit(url)
    hdrs = []
    for k, v in headers.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        hdrs.append([k.lower(), v])
    if not any(k == "host" for k, _ in hdrs):
        hdrs.insert(0, ["host", host_header(url)])
    auth = next((v for k, v in hdrs if k == "authorization"), None)
    signed = ""
    if auth is not None:
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
    for i, (k, v) in enumerate(hdrs):
        if k in UNSIGNED_REWRITES:
            assert k not in signed.split(";"), (name, k, signed)
            hdrs[i] = [k, UNSIGNED_REWRITES[k]]
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return {
        "name": name,
        "source": source,
        "form": form,
        "access_key_id": creds.access_key,
        "secret_access_key": creds.secret_key,
        "session_token": creds.token,
        "region": region,
        "service": service,
        "now_unix": now_unix,
        "method": method,
        "url": url,
        "path": parts.path,
        "query": parts.query,
        "headers": hdrs,
        "body": body or "",
        "authorization": auth,
    }


def client_vectors():
    """Real kinesisvideo clients: serialization and signing exactly as boto3/awscli do it."""
    out = []
    captured = []

    class Raw:
        def stream(self, **_):
            yield b"{}"

    def before_send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "x"}, Raw())

    session = botocore.session.get_session()

    def client(endpoint, akid, secret, token=None):
        c = session.create_client(
            "kinesisvideo",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=akid,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )
        c.meta.events.register("before-send", before_send)
        return c

    calls = [
        ("ListStreams, http endpoint with port", "http://localhost:8080", False,
         lambda c: c.list_streams()),
        ("CreateStream with a JSON body, http endpoint with port", "http://localhost:8080", False,
         lambda c: c.create_stream(StreamName="cam1", DataRetentionInHours=24,
                                   MediaType="video/h264", Tags={"team": "a b+c/d=e"})),
        ("ListStreams with a session token containing +/=", "http://localhost:8080", True,
         lambda c: c.list_streams(MaxResults=10)),
        ("DescribeStream, https endpoint on the default port (Host without port)",
         "https://kinesisvideo.us-west-2.amazonaws.com", False,
         lambda c: c.describe_stream(StreamName="cam1")),
        ("GetSignalingChannelEndpoint with a session token, https endpoint with a port",
         "https://127.0.0.1:8443", True,
         lambda c: c.get_signaling_channel_endpoint(
             ChannelARN="arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1578944519357",
             SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"],
                                                       "Role": "VIEWER"})),
    ]
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
        for name, endpoint, temporary, call in calls:
            akid, secret, token = (TEMP_AKID, TEMP_SECRET, TOKEN) if temporary else (AKID, SECRET, None)
            captured.clear()
            call(client(endpoint, akid, secret, token))
            (req,) = captured
            out.append(record(
                name, "botocore %s kinesisvideo client (SigV4Auth)" % botocore.__version__,
                Credentials(akid, secret, token), REGION, SERVICE, NOW_UNIX,
                req.method, req.url, req.headers, req.body, "header"))
    return out


def auth_vectors():
    """botocore.auth.SigV4Auth / SigV4QueryAuth on hand-made requests (paths, queries, headers
    that the KVS clients do not produce but the verifier must canonicalise the same way)."""
    out = []
    creds = Credentials(AKID, SECRET)
    temp = Credentials(TEMP_AKID, TEMP_SECRET, TOKEN)

    def header_signed(name, url, headers, body=b"", method="POST", c=creds,
                      region=REGION, service=SERVICE, now=NOW, now_unix=NOW_UNIX):
        req = AWSRequest(method=method, url=url, data=body)
        for k, v in headers:
            req.headers[k] = v  # HTTPHeaders.__setitem__ appends: duplicates are kept
        with mock.patch("botocore.auth.get_current_datetime", return_value=now):
            botocore.auth.SigV4Auth(c, service, region).add_auth(req)
        out.append(record(name, "botocore %s SigV4Auth" % botocore.__version__, c, region,
                          service, now_unix, method, req.url, req.headers, body, "header"))

    def presigned(name, url, c=creds, expires=299):
        req = AWSRequest(method="GET", url=url)
        with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
            botocore.auth.SigV4QueryAuth(c, SERVICE, REGION, expires=expires).add_auth(req)
        out.append(record(name, "botocore %s SigV4QueryAuth" % botocore.__version__, c, REGION,
                          SERVICE, NOW_UNIX, "GET", req.url, {}, b"", "presigned"))

    # AWS SigV4 test suite "get-vanilla"; botocore must reproduce AWS's published signature.
    header_signed(
        "AWS test suite get-vanilla (service 'service', us-east-1)",
        "https://example.amazonaws.com/", [], method="GET", region="us-east-1",
        service="service", now=datetime.datetime(2015, 8, 30, 12, 36, 0), now_unix=1440938160)
    assert out[-1]["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"), out[-1]

    header_signed(
        "percent-encoded path and unsorted query with encoded values",
        "http://localhost:8080/hls/v1/a%20b/getHLSMediaPlaylist.m3u8?b=2&a=x%2Fy&a=%41&empty=",
        [("Content-Type", "application/json")], method="GET")
    header_signed(
        "duplicate and untrimmed header values",
        "http://localhost:8080/putMedia",
        [("x-amzn-stream-name", "cam1"), ("X-Amzn-Custom", "  a   b  "), ("X-Amzn-Custom", "c"),
         ("x-amzn-fragment-timecode-type", "ABSOLUTE")],
        body=b"")
    header_signed(
        "Date header instead of X-Amz-Date (botocore writes it with a -0000 zone)",
        "http://localhost:8080/listStreams",
        [("Date", "placeholder, replaced by botocore"), ("Content-Type", "application/json")],
        body=b"{}")
    header_signed(
        "UNSIGNED-PAYLOAD via x-amz-content-sha256",
        "https://localhost:8443/listStreams",
        [("Content-Type", "application/json"), ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")],
        body=b'{"MaxResults": 5}')
    header_signed(
        "session token, signed as x-amz-security-token",
        "http://localhost:8080/describeSignalingChannel",
        [("Content-Type", "application/json")], body=b'{"ChannelName": "demo"}', c=temp)

    arn = "arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo%2F1578944519357"
    presigned("SigV4QueryAuth presigned viewer URL",
              "https://localhost:8443/?X-Amz-ChannelARN=%s&X-Amz-ClientId=viewer1" % arn)
    presigned("SigV4QueryAuth presigned master URL with a session token, default port",
              "https://kinesisvideo.us-west-2.amazonaws.com/?X-Amz-ChannelARN=%s" % arn, c=temp)
    return out


def main():
    vectors = client_vectors() + auth_vectors()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "botocore.json")
    with open(path, "w") as f:
        json.dump({
            "generator": "gen_botocore.py",
            "botocore_version": botocore.__version__,
            "vectors": vectors,
        }, f, indent=2)
        f.write("\n")
    print("wrote %d vectors to %s" % (len(vectors), path))


if __name__ == "__main__":
    main()
