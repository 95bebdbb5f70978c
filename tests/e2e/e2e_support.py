"""Helpers shared by the end-to-end suite: start/stop/restart the real `openkvs` binary,
build unmodified boto3 clients and AWS CLI invocations against it, and sign raw requests.

Nothing here knows how the server is implemented; everything follows the contract in
shared/spec/kvs-api.md and the AWS model (shared/aws-models/kinesisvideo.service-2.json).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional
from unittest import mock

import boto3
import botocore
import botocore.auth
import botocore.config
import botocore.credentials
import requests
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]

REGION = "us-east-1"
# The session server is started with an explicit, non-default account id so that the
# `--account-id` option is exercised by every ARN assertion.
ACCOUNT_ID = "111122223333"
ROOT_ACCESS_KEY = "AKIAOPENKVSE2ETEST01"
ROOT_SECRET_KEY = "e2eSecretKeyForOpenkvsTests/abcdefghijKL"

HEALTH_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 15.0


def server_binary() -> Path:
    """Path of the debug server binary (tests/run.sh builds it)."""
    if os.environ.get("OPENKVS_BIN"):
        return Path(os.environ["OPENKVS_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "openkvs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str = "e2e") -> str:
    """A stream/channel name that no other test uses: `[a-zA-Z0-9_.-]+`."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def hermetic_env(extra: Optional[dict] = None) -> dict:
    """The caller's environment without any OPENKVS_* or AWS_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKVS_", "AWS_"))}
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


class ServerProcess:
    """One `openkvs serve` process with its own data dir, port and log files.

    `args` replaces the default `serve --listen ... --data-dir ...` command line when given
    (used by the config-file and environment-variable tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: Optional[int] = None,
        region: Optional[str] = REGION,
        account_id: Optional[str] = ACCOUNT_ID,
        credentials: Optional[tuple[str, str]] = (ROOT_ACCESS_KEY, ROOT_SECRET_KEY),
        extra_args: Iterable[str] = (),
        env: Optional[dict] = None,
        args: Optional[list[str]] = None,
        log_dir: Optional[Path] = None,
    ):
        self.binary = server_binary()
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.region = region
        self.account_id = account_id
        self.credentials = credentials
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.custom_args = args
        self.log_dir = Path(log_dir or self.data_dir.parent)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.stdout_path: Optional[Path] = None
        self.stderr_path: Optional[Path] = None

    # -- addresses -----------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.custom_args is not None:
            return [str(self.binary), *self.custom_args]
        cmd = [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", str(self.data_dir)]
        if self.region:
            cmd += ["--region", self.region]
        if self.account_id:
            cmd += ["--account-id", self.account_id]
        return cmd + self.extra_args

    def environment(self) -> dict:
        extra = dict(self.extra_env)
        if self.credentials:
            extra["OPENKVS_ACCESS_KEY_ID"], extra["OPENKVS_SECRET_ACCESS_KEY"] = self.credentials
        return hermetic_env(extra)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "ServerProcess":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not self.binary.exists():
            raise AssertionError(
                f"server binary {self.binary} does not exist; build it first "
                "(`cargo build -p openkvs-server`, or run ./tests/run.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        tag = f"openkvs-{self.port}-{self.starts}"
        self.stdout_path = self.log_dir / f"{tag}.stdout"
        self.stderr_path = self.log_dir / f"{tag}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=self.environment(), cwd=str(self.log_dir))
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"openkvs exited with code {self.proc.returncode} before answering "
                    f"/health.\ncommand: {self.command()}\n{self.logs()}")
            try:
                r = requests.get(self.endpoint + "/health", timeout=2)
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except (requests.RequestException, ValueError) as e:  # not listening yet
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise AssertionError(
            f"openkvs did not answer GET /health with 200 within {timeout}s (last: {last})\n"
            f"command: {self.command()}\n{self.logs()}")

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> tuple[float, int]:
        """SIGTERM and wait; asserts a graceful exit within `timeout` seconds.

        Returns (seconds taken, exit code)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0, (self.proc.returncode if self.proc else 0)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"openkvs did not exit within {timeout}s of SIGTERM (no graceful shutdown)\n"
                f"{self.logs()}")
        return time.monotonic() - t0, code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> "ServerProcess":
        """Stop gracefully and start again on the same data dir and port."""
        self.stop()
        return self.start()

    # -- diagnostics ---------------------------------------------------------------------
    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def logs(self, limit: int = 4000) -> str:
        return (f"--- server stdout (tail) ---\n{self.stdout_text()[-limit:]}\n"
                f"--- server stderr (tail) ---\n{self.stderr_text()[-limit:]}")

    # -- clients -------------------------------------------------------------------------
    def client(self, **kw):
        return kvs_client(self.endpoint, **kw)


def client_config(**kw) -> botocore.config.Config:
    # One attempt: an error must surface as the server sent it, not after retries.
    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=HTTP_TIMEOUT_S, read_timeout=HTTP_TIMEOUT_S, **kw)


def kvs_client(endpoint: str, *, access_key: str = ROOT_ACCESS_KEY,
               secret_key: str = ROOT_SECRET_KEY, session_token: Optional[str] = None,
               region: str = REGION, config: Optional[botocore.config.Config] = None):
    """An unmodified boto3 `kinesisvideo` client; only the endpoint URL is changed."""
    return boto3.session.Session().client(
        "kinesisvideo", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        aws_session_token=session_token, config=config or client_config())


@contextlib.contextmanager
def clock_shift(delta: _dt.timedelta):
    """Make botocore sign as if the clock were `delta` off (for clock-skew tests)."""
    real = botocore.auth.get_current_datetime

    def shifted(*a, **k):
        return real(*a, **k) + delta

    with mock.patch.object(botocore.auth, "get_current_datetime", shifted):
        yield


def signed_request(endpoint: str, path: str, body: bytes | str | None = b"{}", *,
                   method: str = "POST", access_key: str = ROOT_ACCESS_KEY,
                   secret_key: str = ROOT_SECRET_KEY, session_token: Optional[str] = None,
                   region: str = REGION, service: str = "kinesisvideo",
                   shift: Optional[_dt.timedelta] = None, tamper_body: Optional[bytes] = None,
                   headers: Optional[dict] = None) -> requests.Response:
    """Sign a raw request with botocore's SigV4Auth and send it with `requests`.

    `tamper_body`, when given, is sent instead of `body` after signing."""
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    req = AWSRequest(method=method, url=endpoint + path, data=body, headers=hdrs)
    creds = botocore.credentials.Credentials(access_key, secret_key, session_token)
    ctx = clock_shift(shift) if shift else contextlib.nullcontext()
    with ctx:
        botocore.auth.SigV4Auth(creds, service, region).add_auth(req)
    send_body = tamper_body if tamper_body is not None else body
    return requests.request(method, endpoint + path, headers=dict(req.headers.items()),
                            data=send_body, timeout=HTTP_TIMEOUT_S)


def error_of(exc: ClientError) -> tuple[str, int, str]:
    """(code, HTTP status, message) as the SDK sees them."""
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return err.get("Code"), status, err.get("Message", "")


def expect_error(fn, code: str | tuple[str, ...], status: int | tuple[int, ...], *args,
                 **kwargs) -> ClientError:
    """Call `fn(*args, **kwargs)`; assert it fails with one of the given codes and statuses."""
    codes = (code,) if isinstance(code, str) else tuple(code)
    statuses = (status,) if isinstance(status, int) else tuple(status)
    op = getattr(fn, "__name__", str(fn))
    try:
        result = fn(*args, **kwargs)
    except ClientError as e:
        got_code, got_status, msg = error_of(e)
        assert got_code in codes and got_status in statuses, (
            f"{op}({kwargs}) expected {'/'.join(codes)} HTTP {'/'.join(map(str, statuses))}, "
            f"got {got_code} HTTP {got_status}: {msg!r}; headers="
            f"{e.response.get('ResponseMetadata', {}).get('HTTPHeaders')}")
        assert msg, f"{op}: {got_code} has an empty message; errors carry Message/message"
        headers = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        assert headers.get("x-amzn-errortype", "").split(":")[0] == got_code, (
            f"{op}: error responses carry x-amzn-ErrorType: {got_code}; headers={headers}")
        assert headers.get("x-amzn-requestid"), f"{op}: error without x-amzn-RequestId"
        return e
    result = dict(result or {})
    result.pop("ResponseMetadata", None)
    raise AssertionError(
        f"{op}({kwargs}) expected {'/'.join(codes)} but it succeeded: {result}")


def raw_error(resp: requests.Response) -> tuple[Optional[str], str]:
    """(error type, message) of a raw error response, read like botocore does."""
    etype = resp.headers.get("x-amzn-ErrorType")
    msg = ""
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if isinstance(body, dict):
        etype = etype or body.get("code") or body.get("Code") or body.get("__type")
        msg = body.get("message") or body.get("Message") or ""
    if etype:
        etype = etype.split(":")[0].split("#")[-1]
    return etype, msg


# -- AWS CLI ---------------------------------------------------------------------------------

def aws_cli() -> Optional[list[str]]:
    """The AWS CLI command: the one installed next to this Python (the .venv), else PATH."""
    here = Path(sys.executable).parent / "aws"
    if here.exists():
        return [str(here)]
    found = shutil.which("aws")
    return [found] if found else None


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else {}


class AwsCli:
    def __init__(self, command: list[str], endpoint: str, tmp: Path,
                 access_key: str = ROOT_ACCESS_KEY, secret_key: str = ROOT_SECRET_KEY):
        self.command = command
        self.endpoint = endpoint
        cfg = tmp / "aws-config"
        cfg.write_text("[default]\n")
        self.env = hermetic_env({
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": str(cfg),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials-none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
        })

    def run(self, *args: str, check: bool = True) -> CliResult:
        cmd = [*self.command, "kinesisvideo", *args, "--endpoint-url", self.endpoint,
               "--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=120)
        res = CliResult(p.returncode, p.stdout, p.stderr)
        if check:
            assert p.returncode == 0, (
                f"`aws kinesisvideo {' '.join(args)}` exited {p.returncode}\n"
                f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
        return res

    def json(self, *args: str):
        return self.run(*args).json()


def stream_arn_regex(name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return rf"^arn:aws:kinesisvideo:{region}:{account}:stream/{name}/[0-9]{{13}}$"


def channel_arn_regex(name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return rf"^arn:aws:kinesisvideo:{region}:{account}:channel/{name}/[0-9]{{13}}$"


def wait_until(pred, timeout: float = 5.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
