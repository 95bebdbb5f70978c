"""Fixtures of the end-to-end suite.

The suite never builds anything: tests/run.sh runs `cargo build` first. The session server is
`target/debug/openkvs serve` on a free port with a temporary data dir and root credentials from
the environment; it is stopped with SIGTERM at the end and must exit within 5 s.
"""

from __future__ import annotations

import pytest

from e2e_support import AwsCli, ServerProcess, aws_cli, server_binary, unique


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The shared server: yields a ServerProcess (`.endpoint`, `.credentials`, `.restart()`)."""
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found; run ./tests/run.sh "
                    "(or `cargo build -p openkvs-server`) first", pytrace=False)
    base = tmp_path_factory.mktemp("session-server")
    srv = ServerProcess(base / "data", log_dir=base)
    srv.start()
    yield srv
    elapsed, code = srv.stop()
    print(f"\nsession server stopped in {elapsed:.2f}s with exit code {code}")


@pytest.fixture(scope="session")
def kvs(server):
    """A boto3 `kinesisvideo` client for the session server (root credentials)."""
    return server.client()


@pytest.fixture
def new_server(tmp_path):
    """Factory for extra servers (own data dir / options); all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(**kw) -> ServerProcess:
        if not server_binary().exists():
            pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
        kw.setdefault("log_dir", tmp_path / f"logs{len(started)}")
        data_dir = kw.pop("data_dir", tmp_path / f"data{len(started)}")
        srv = ServerProcess(data_dir, **kw)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.kill()


@pytest.fixture
def name():
    """A unique resource name for this test."""
    return unique()


@pytest.fixture
def stream(kvs, name):
    """A fresh stream; yields (name, arn)."""
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    return name, arn


@pytest.fixture
def channel(kvs, name):
    """A fresh signaling channel; yields (name, arn)."""
    arn = kvs.create_signaling_channel(ChannelName=name + "-ch")["ChannelARN"]
    return name + "-ch", arn


@pytest.fixture(scope="session")
def cli_command():
    cmd = aws_cli()
    if cmd is None:
        print("SKIP: the AWS CLI (`aws`) is not installed; `pip install awscli` (tests/run.sh does)")
    return cmd


@pytest.fixture
def cli(server, cli_command, tmp_path):
    if cli_command is None:
        pytest.skip("the AWS CLI (`aws`) is not installed; `pip install awscli` (tests/run.sh does)")
    return AwsCli(cli_command, server.endpoint, tmp_path)
