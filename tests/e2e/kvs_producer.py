"""Client side of the ingest tests: a PutMedia producer that behaves like the KVS C producer on
the wire, presigned PutMedia URLs for ffmpeg/GStreamer, boto3 data-plane clients, a live
GetMedia chunk reader, and ffprobe helpers.

PutMedia (kvs-api.md §7, §14.3; kvssink-behaviour.md §4) is not in any AWS SDK model. The C
producer sends it as one HTTP/1.1 POST with `Transfer-Encoding: chunked`, signs it with the
SHA-256 of the *empty* payload, includes `connection`, `host` (without port), `transfer-encoding`,
`user-agent`, `x-amz-date` and the `x-amzn-*` headers in SignedHeaders, leaves
`x-amz-security-token` and `content-type` unsigned, and reads the ACK stream (one JSON object per
line, chunked) while it is still sending. `PutMedia` below does exactly that over a raw socket,
so the test controls every byte (delays, truncation, abrupt close).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Optional

import boto3
import botocore.auth
import botocore.config
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest

import mkvgen
from e2e_support import (REGION, REPO_ROOT, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, client_config,
                         hermetic_env)

SAMPLES = REPO_ROOT / "samples"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Every PutMedia / GetMediaReader a test opened, closed by the `close_clients` fixture so that
# a failing test leaves no live request behind (it would hold up the server's shutdown).
_OPEN: "set" = set()
USER_AGENT = "AWS-SDK-KVS-CPP-CLIENT/3.6.0/1.6.2 GCC/12.2.0 Linux/6.1.0 x86_64 CPPSDK"
# Headers the C producer never signs (kvs-api.md §14.1, [PC] IS_CANONICAL_HEADER_NAME).
C_UNSIGNED = {"x-amz-security-token", "content-type", "content-length", "authorization"}


# -- SigV4, the C producer's way ---------------------------------------------------------------

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _uri_encode(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    enc = sorted((_uri_encode(k), _uri_encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def sign_headers(method: str, path: str, headers: list[tuple[str, str]], *, access_key: str,
                 secret_key: str, region: str = REGION, service: str = "kinesisvideo",
                 query: str = "", payload_hash: str = EMPTY_SHA256,
                 amz_date: Optional[str] = None, unsigned=C_UNSIGNED) -> list[tuple[str, str]]:
    """Returns `headers` + X-Amz-Date + Authorization, signed over every header except
    `unsigned` (header names are kept as given; canonical names are lower-case)."""
    amz_date = amz_date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = list(headers) + [("X-Amz-Date", amz_date)]
    signed: dict[str, list[str]] = {}
    for k, v in headers:
        lk = k.lower()
        if lk in unsigned:
            continue
        signed.setdefault(lk, []).append(" ".join(v.strip().split()))
    names = sorted(signed)
    canon_headers = "".join(f"{n}:{','.join(signed[n])}\n" for n in names)
    signed_names = ";".join(names)
    creq = "\n".join([method, path, canonical_query(query), canon_headers, signed_names,
                      payload_hash])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), amz_date[:8]), region),
                      service), "aws4_request")
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_names}, "
            f"Signature={sig}")
    return headers + [("Authorization", auth)]


# -- PutMedia ----------------------------------------------------------------------------------

@dataclass
class Ack:
    event: str
    timecode: Optional[int]
    number: Optional[str]
    error_id: Optional[int]
    raw: dict
    at: float  # time.time() when it arrived

    def __repr__(self) -> str:
        extra = f" err={self.error_id}" if self.error_id is not None else ""
        return f"<{self.event} tc={self.timecode} n={self.number}{extra}>"


class PutMedia:
    """One PutMedia request over a raw socket: full duplex, chunked, C-producer signing.

    Usage: `pm = PutMedia(endpoint, stream).open()`, then `pm.send(bytes)` any number of times
    (acks are read concurrently by a thread and appended to `pm.acks`), then `pm.finish()`
    (terminating chunk) and `pm.wait_done()`; or `pm.abort()` to drop the connection."""

    def __init__(self, endpoint: str, stream: Optional[str] = None, *,
                 stream_arn: Optional[str] = None,
                 access_key: str = ROOT_ACCESS_KEY, secret_key: str = ROOT_SECRET_KEY,
                 session_token: Optional[str] = None, region: str = REGION,
                 timecode_type: str = "ABSOLUTE", producer_start: Optional[float] = None,
                 ack_required: bool = True, host_with_port: bool = False,
                 presigned_url: Optional[str] = None, extra_headers: Optional[dict] = None,
                 tamper_signature: bool = False,
                 on_ack: Optional[Callable[[Ack], None]] = None, timeout: float = 30.0,
                 read_reply: bool = True, expect_continue: bool = False):
        self.endpoint = endpoint
        u = urllib.parse.urlsplit(presigned_url or endpoint)
        self.host, self.port = u.hostname, u.port or 80
        self.stream, self.stream_arn = stream, stream_arn
        self.access_key, self.secret_key, self.session_token = access_key, secret_key, session_token
        self.region = region
        self.timecode_type = timecode_type
        self.producer_start = time.time() if producer_start is None else producer_start
        self.ack_required = ack_required
        self.host_with_port = host_with_port
        self.presigned_url = presigned_url
        self.extra_headers = dict(extra_headers or {})
        self.tamper_signature = tamper_signature
        self.on_ack = on_ack
        self.timeout = timeout
        self.read_reply = read_reply  # False: never read the response (like ffmpeg)
        self.expect_continue = expect_continue  # curl (kvssink) adds `Expect: 100-continue`
        self.got_continue = threading.Event()
        self.sock: Optional[socket.socket] = None
        self.status: Optional[int] = None
        self.headers: dict[str, str] = {}
        self.body = b""  # raw response body (de-chunked)
        self.acks: list[Ack] = []
        self.bad_lines: list[bytes] = []
        self.got_headers = threading.Event()
        self.done = threading.Event()  # response fully read (or connection gone)
        self.read_error: Optional[BaseException] = None
        self.send_error: Optional[BaseException] = None
        self.bytes_sent = 0
        self._cond = threading.Condition()
        self._reader: Optional[threading.Thread] = None

    # -- request ------------------------------------------------------------------------------
    def request_head(self) -> bytes:
        if self.presigned_url:
            u = urllib.parse.urlsplit(self.presigned_url)
            target = u.path + ("?" + u.query if u.query else "")
            lines = [f"POST {target} HTTP/1.1", f"Host: {u.netloc}",
                     "Transfer-Encoding: chunked", "Content-Type: video/x-matroska",
                     "User-Agent: Lavf/59.27.100"]
            lines += [f"{k}: {v}" for k, v in self.extra_headers.items()]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()
        host = f"{self.host}:{self.port}" if self.host_with_port else self.host
        hdrs: list[tuple[str, str]] = [("Host", host), ("Accept", "*/*")]
        hdrs += [("connection", "keep-alive"), ("content-type", "application/json"),
                 ("transfer-encoding", "chunked"), ("user-agent", USER_AGENT),
                 ("x-amzn-fragment-acknowledgment-required", "1" if self.ack_required else "0"),
                 ("x-amzn-fragment-timecode-type", self.timecode_type),
                 ("x-amzn-producer-start-timestamp", f"{self.producer_start:.3f}")]
        if self.stream is not None:
            hdrs.append(("x-amzn-stream-name", self.stream))
        if self.stream_arn is not None:
            hdrs.append(("x-amzn-stream-arn", self.stream_arn))
        hdrs += list(self.extra_headers.items())
        if self.session_token:
            hdrs.append(("x-amz-security-token", self.session_token))
        hdrs = sign_headers("POST", "/putMedia", hdrs, access_key=self.access_key,
                            secret_key=self.secret_key, region=self.region)
        if self.tamper_signature:
            k, v = hdrs[-1]
            hdrs[-1] = (k, v[:-4] + ("0000" if not v.endswith("0000") else "1111"))
        if self.expect_continue:  # added by curl after the C producer signed
            hdrs.append(("Expect", "100-continue"))
        lines = ["POST /putMedia HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def open(self) -> "PutMedia":
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        _OPEN.add(self)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.request_head())
        if not self.read_reply:
            return self
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"putmedia-acks-{self.stream}")
        self._reader.start()
        return self

    def send(self, data: bytes, *, chunk_size: int = 16384, delay: float = 0.0) -> bool:
        """Sends `data` as HTTP chunks of at most `chunk_size`, sleeping `delay` after each.
        Returns False (and records `send_error`) if the connection is gone."""
        assert self.sock is not None, "open() first"
        for i in range(0, len(data), chunk_size):
            c = data[i:i + chunk_size]
            try:
                self.sock.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
            except OSError as e:
                self.send_error = e
                return False
            self.bytes_sent += len(c)
            if delay:
                time.sleep(delay)
        return True

    def send_raw(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError as e:
            self.send_error = e
            return False

    def finish(self) -> bool:
        """The terminating chunk: the producer is done."""
        return self.send_raw(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection without the terminating chunk (a producer that crashed)."""
        _OPEN.discard(self)
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def close(self) -> None:
        _OPEN.discard(self)
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass

    # -- response -----------------------------------------------------------------------------
    def _read_loop(self) -> None:
        f = self.sock.makefile("rb")
        try:
            while True:  # skip interim 1xx responses
                status_line = f.readline()
                if not status_line:
                    raise ConnectionError("connection closed before the response status")
                parts = status_line.decode("latin-1").split()
                status = int(parts[1])
                hdrs = {}
                while True:
                    line = f.readline()
                    if not line or line in (b"\r\n", b"\n"):
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                if status >= 200:
                    break
                if status == 100:
                    self.got_continue.set()
            self.status, self.headers = status, hdrs
            self.got_headers.set()
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                while True:
                    size_line = f.readline()
                    if not size_line:
                        raise ConnectionError("connection closed inside the chunked response")
                    n = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        f.readline()
                        break
                    data = f.read(n)
                    f.read(2)
                    self._feed(data)
            elif "content-length" in hdrs:
                self._feed(f.read(int(hdrs["content-length"])))
            else:
                while True:
                    data = f.read1(65536)
                    if not data:
                        break
                    self._feed(data)
        except (OSError, ValueError, ConnectionError) as e:
            self.read_error = e
        finally:
            self._flush_line()
            self.got_headers.set()
            self.done.set()
            with self._cond:
                self._cond.notify_all()

    _pending = b""

    def _feed(self, data: bytes) -> None:
        self.body += data
        if self.status != 200:
            return
        self._pending += data
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            self._line(line)

    def _flush_line(self) -> None:
        if self.status == 200 and self._pending.strip():
            self._line(self._pending)
        self._pending = b""

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except ValueError:
            self.bad_lines.append(line)
            return
        ack = Ack(obj.get("EventType"), obj.get("FragmentTimecode"), obj.get("FragmentNumber"),
                  obj.get("ErrorId"), obj, time.time())
        with self._cond:
            self.acks.append(ack)
            self._cond.notify_all()
        if self.on_ack:
            self.on_ack(ack)

    def wait_status(self, timeout: float = 10.0) -> Optional[int]:
        self.got_headers.wait(timeout)
        return self.status

    def wait_for(self, pred: Callable[[list[Ack]], bool], timeout: float = 10.0) -> bool:
        """Waits until `pred(acks)` holds or the response ended; returns pred's last value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if pred(self.acks):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.done.is_set():
                    return bool(pred(self.acks))
                self._cond.wait(min(left, 0.2))

    def wait_persisted(self, n: int, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda a: len(events(a, "PERSISTED")) >= n, timeout)

    def wait_done(self, timeout: float = 10.0) -> bool:
        return self.done.wait(timeout)

    def json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}

    def error_type(self) -> Optional[str]:
        t = self.headers.get("x-amzn-errortype") or self.json_body().get("__type")
        return t.split(":")[0].split("#")[-1] if t else None

    def describe(self) -> str:
        return (f"HTTP {self.status} headers={self.headers} acks={self.acks} "
                f"bad_lines={self.bad_lines[:3]} body={self.body[:300]!r} "
                f"read_error={self.read_error!r} send_error={self.send_error!r}")


def events(acks: list[Ack], kind: str) -> list[Ack]:
    return [a for a in acks if a.event == kind]


def put_media(endpoint: str, stream: Optional[str], data: bytes, *, chunk_size: int = 16384,
              delay: float = 0.0, max_wait: float = 20.0, expect_persisted: Optional[int] = None,
              **kw) -> PutMedia:
    """Push `data` in one session the way the C producer does: send everything without waiting
    for the response (the upload is not gated by acks; acks are read concurrently), wait until
    `expect_persisted` PERSISTED acks arrived (if given), send the terminating chunk and wait
    until the server ended the response, at most `max_wait` seconds each."""
    pm = PutMedia(endpoint, stream, **kw).open()
    if pm.send(data, chunk_size=chunk_size, delay=delay) and expect_persisted is not None:
        pm.wait_persisted(expect_persisted, max_wait)
    pm.finish()
    pm.wait_done(max_wait)
    pm.close()
    return pm


def close_all() -> None:
    for c in list(_OPEN):
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture(autouse=True)
def close_clients():
    """Autouse (import it into a test module): closes every PutMedia / GetMedia the test left
    open."""
    yield
    close_all()


# -- presigned PutMedia URLs (ffmpeg, GStreamer) -----------------------------------------------

def presign_put_media(server, stream: str, *, timecode_type: str = "RELATIVE",
                      expires: int = 300) -> tuple[str, str]:
    """(url, how): `openkvs presign put-media` when the binary has it, else botocore's
    SigV4QueryAuth over `EP/putMedia?x-amzn-stream-name=S&x-amzn-fragment-timecode-type=T&...`
    (method POST, empty payload hash)."""
    binary = str(server.binary)
    helptext = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    if "presign" in helptext:
        env = hermetic_env({"AWS_ACCESS_KEY_ID": server.credentials[0],
                            "AWS_SECRET_ACCESS_KEY": server.credentials[1],
                            "AWS_REGION": REGION,
                            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                            "AWS_CONFIG_FILE": os.devnull})
        p = subprocess.run([binary, "presign", "put-media", "--stream", stream,
                            "--endpoint-url", server.endpoint, "--expires", str(expires),
                            "--timecode-type", timecode_type.lower()],
                           capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 0, f"openkvs presign put-media failed: {p.stderr}"
        url = p.stdout.strip()
        assert url.startswith(server.endpoint + "/putMedia?"), f"presigned URL {url!r}"
        return url, "openkvs presign put-media"
    # like `openkvs presign put-media`: these tools never read the reply while they send, so
    # they ask for no acks (the server then answers after the body)
    q = urllib.parse.urlencode({"x-amzn-stream-name": stream,
                                "x-amzn-fragment-timecode-type": timecode_type,
                                "x-amzn-fragment-acknowledgment-required": "0"})
    req = AWSRequest(method="POST", url=f"{server.endpoint}/putMedia?{q}", data=b"")
    creds = botocore.credentials.Credentials(*server.credentials)
    botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", REGION, expires=expires).add_auth(req)
    return req.url, "botocore SigV4QueryAuth"


# -- boto3 data-plane clients ------------------------------------------------------------------

_CLIENTS: dict = {}


def _cached_client(service: str, endpoint: str, ak: str, sk: str, token, read_timeout: float):
    """boto3 clients are slow to build (model loading): one per endpoint/service/credentials."""
    key = (service, endpoint, ak, sk, token, read_timeout)
    if key not in _CLIENTS:
        cfg = client_config().merge(botocore.config.Config(read_timeout=read_timeout))
        _CLIENTS[key] = boto3.session.Session().client(
            service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ak,
            aws_secret_access_key=sk, aws_session_token=token, config=cfg)
    return _CLIENTS[key]


def data_client(server, service: str, api: str, stream: str, *, access_key=None,
                secret_key=None, session_token=None, read_timeout: float = 15.0):
    """An unmodified boto3 client for `service` with endpoint_url = GetDataEndpoint(api)
    (asked every time; the clients themselves are cached)."""
    ak = access_key or server.credentials[0]
    sk = secret_key or server.credentials[1]
    kv = _cached_client("kinesisvideo", server.endpoint, *server.credentials, None, 15.0)
    ep = kv.get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"]
    return _cached_client(service, ep, ak, sk, session_token, read_timeout)


def archived(server, stream: str, api: str = "LIST_FRAGMENTS", **kw):
    return data_client(server, "kinesis-video-archived-media", api, stream, **kw)


def all_time_selector() -> dict:
    """A SERVER_TIMESTAMP FragmentSelector covering everything (ListFragments requires a
    selector unless NextToken is given, kvs-api.md §9)."""
    return {"FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc),
                               "EndTimestamp": _dt.datetime.now(_dt.timezone.utc)
                               + _dt.timedelta(days=1)}}


def list_all_fragments(server, stream: str, **kw) -> list[dict]:
    """Every fragment of the stream (paginated), sorted by fragment number."""
    am = archived(server, stream)
    kw.setdefault("FragmentSelector", all_time_selector())
    out = []
    for page in am.get_paginator("list_fragments").paginate(StreamName=stream, **kw):
        out += page["Fragments"]
    return sorted(out, key=lambda f: int(f["FragmentNumber"]))


def get_fragments_media(server, stream: str, numbers: list[str]) -> bytes:
    am = archived(server, stream, "GET_MEDIA_FOR_FRAGMENT_LIST")
    r = am.get_media_for_fragment_list(StreamName=stream, Fragments=numbers)
    return r["Payload"].read()


def read_fragments(server, stream: str, numbers: list[str]) -> list[mkvgen.Chunk]:
    return mkvgen.parse_documents(get_fragments_media(server, stream, numbers))[0]


class GetMediaReader:
    """A live GetMedia response (boto3 `kinesis-video-media`) read incrementally:
    `next_chunk(timeout)` returns the next complete MKV document (fragment chunk), or None if
    none arrived in time. A thread blocks on the payload's raw stream (urllib3 `read1`) and
    hands bytes over through a queue, so a slow stream never trips a socket timeout."""

    def __init__(self, server, stream: str, selector: dict, *, read_timeout: float = 120.0):
        self.client = data_client(server, "kinesis-video-media", "GET_MEDIA", stream,
                                  read_timeout=read_timeout)
        self.resp = self.client.get_media(StreamName=stream, StartSelector=selector)
        self.content_type = self.resp.get("ContentType")
        self.raw = self.resp["Payload"]._raw_stream
        self.buf = b""
        self.chunks: list[mkvgen.Chunk] = []
        self.eof = False
        self.error: Optional[BaseException] = None
        self._q: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._closed = False
        _OPEN.add(self)
        threading.Thread(target=self._pump, daemon=True, name=f"getmedia-{stream}").start()

    def _pump(self) -> None:
        try:
            while True:
                data = self.raw.read1(65536) if hasattr(self.raw, "read1") else self.raw.read(4096)
                if not data:
                    break
                self._q.put(data)
        except Exception as e:  # closed by close(), or the server broke the stream
            if not self._closed:
                self.error = e
        finally:
            self._q.put(None)

    def next_chunk(self, timeout: float = 5.0) -> Optional[mkvgen.Chunk]:
        deadline = time.monotonic() + timeout
        while not self.chunks:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                return None
            try:
                data = self._q.get(timeout=left)
            except queue.Empty:
                return None
            if data is None:
                self.eof = True
                if self.buf:
                    docs, used = mkvgen.parse_documents(self.buf, final=True)
                    self.chunks += docs
                    self.buf = self.buf[used:]
                continue
            self.buf += data
            docs, used = mkvgen.parse_documents(self.buf, final=False)
            self.chunks += docs
            self.buf = self.buf[used:]
        return self.chunks.pop(0)

    def _socket(self) -> Optional[socket.socket]:
        conn = getattr(self.raw, "_connection", None) or getattr(self.raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is None:  # http.client.HTTPResponse -> SocketIO -> socket
            sock = getattr(getattr(getattr(getattr(self.raw, "_fp", None), "fp", None), "raw", None),
                           "_sock", None)
        return sock

    def close(self) -> None:
        """Drop the connection. The socket is shut down first: closing the buffered reader
        alone would wait for the pump thread's blocked read."""
        self._closed = True
        _OPEN.discard(self)
        sock = self._socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        threading.Thread(target=self._close_payload, daemon=True).start()

    def _close_payload(self) -> None:
        try:
            self.resp["Payload"].close()
        except Exception:
            pass


# -- ffprobe / ffmpeg --------------------------------------------------------------------------

def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def need(*tools: str) -> None:
    """Skip the calling test, with a printed reason, when a command-line tool is missing."""
    for t in tools:
        if not have(t):
            print(f"SKIP: `{t}` is not installed (tests/run.sh installs it with apt-get)")
            pytest.skip(f"`{t}` is not installed (tests/run.sh installs it with apt-get)")


def ffprobe_json(path, *args: str) -> dict:
    p = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"ffprobe {args} {path} failed: {p.stderr[-2000:]}"
    return json.loads(p.stdout or "{}")


def ffprobe_streams(path) -> list[dict]:
    return ffprobe_json(path, "-show_streams")["streams"]


def ffprobe_packets(path) -> list[dict]:
    """Packets with pts_time (s), stream_index and the key flag."""
    return ffprobe_json(path, "-show_entries", "packet=stream_index,pts_time,dts_time,flags,size",
                        "-show_packets")["packets"]


def ffprobe_frame_counts(path) -> dict[str, int]:
    """Decoded frames per codec type (video/audio), with -count_frames."""
    st = ffprobe_json(path, "-count_frames", "-show_entries",
                      "stream=codec_type,codec_name,nb_read_frames")["streams"]
    out: dict[str, int] = {}
    for s in st:
        out[s["codec_type"]] = out.get(s["codec_type"], 0) + int(s.get("nb_read_frames") or 0)
    return out
