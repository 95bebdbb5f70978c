"""Scale-out, live: two `openkvs serve` nodes on one PostgreSQL (catalog + fragment index) and
one S3-compatible server (moto), real processes on loopback ports.

- A fragment PERSISTED on node A wakes live readers on node B at once: the index insert NOTIFYs
  in its transaction and every node LISTENs (issue 7; crates/store/src/pg_listen.rs). GetMedia
  NOW on B follows a producer on A; the LIVE HLS playlist on B grows while A ingests.
- The nodes share one token key file (`--token-key-file` / OPENKVS_TOKEN_KEY_FILE), so an HLS
  session URL minted on A plays on B; one minted under another key is refused (403
  InvalidSignatureException).
- PostgreSQL restart while A ingests (its own PostgreSQL, so the other tests are undisturbed):
  acks are PERSISTED or ERROR 5001, never a PERSISTED that is not listed afterwards; ingest
  resumes, B's listener reconnects and live tailing on B goes on.

Needs the binary built with the scale-out features; missing PostgreSQL or moto skips loudly, or
fails with OPENKVS_REQUIRE_SCALEOUT=1 (run.sh)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

import kvs_producer as kp
import mkvgen
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
from e2e_support import ServerProcess, free_port, raw_error, server_binary, unique
from test_scaleout import BUCKET, S3_KEY, S3_SECRET, _missing, _pg_bin, _supports_s3
from test_scaleout import backends  # noqa: F401  (module fixture: PostgreSQL + moto)

S3_ENV = {"OPENKVS_S3_ACCESS_KEY_ID": S3_KEY, "OPENKVS_S3_SECRET_ACCESS_KEY": S3_SECRET}
# A/B latency of the cross-node wake-up must be well under the readers' 2 s fallback poll.
MEDIAN_LATENCY_MAX_S = 0.6


def write_key(path: Path, mode: int = 0o600) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(mode)
    return path


def node(tmp: Path, name: str, pg_url: str, s3_url: str, key: Path | None, *,
         key_via_env: bool = False) -> ServerProcess:
    args = ["--store", "s3", "--catalog", "postgres", "--no-turn", "--postgres-url", pg_url,
            "--s3-bucket", BUCKET, "--s3-endpoint-url", s3_url]
    env = dict(S3_ENV)
    if key is not None:
        if key_via_env:
            env["OPENKVS_TOKEN_KEY_FILE"] = str(key)
        else:
            args += ["--token-key-file", str(key)]
    return ServerProcess(tmp / name, log_dir=tmp / f"logs-{name}", extra_args=args, env=env)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    return write_key(tmp_path_factory.mktemp("key") / "token-key.hex")


@pytest.fixture(scope="module")
def nodes(backends, key_file, tmp_path_factory):  # noqa: F811
    if not server_binary().exists():
        pytest.fail(f"server binary {server_binary()} not found", pytrace=False)
    if not _supports_s3():
        _missing("an openkvs binary built with --features s3")
    base = tmp_path_factory.mktemp("live-nodes")
    a = node(base, "a", backends["pg_url"], backends["s3_url"], key_file, key_via_env=True)
    b = node(base, "b", backends["pg_url"], backends["s3_url"], key_file)
    a.start()
    b.start()
    yield a, b
    for n in (a, b):
        n.kill()


class ChunkCollector:
    """Reads a live GetMedia on a thread, stamping each chunk with its arrival time."""

    def __init__(self, server, stream: str, selector: dict):
        self.reader = kp.GetMediaReader(server, stream, selector)
        self.got: list[tuple[float, mkvgen.Chunk]] = []
        self._stop = False
        self._cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop:
            c = self.reader.next_chunk(1.0)
            if c is None:
                if self.reader.eof:
                    break
                continue
            with self._cond:
                self.got.append((time.time(), c))
                self._cond.notify_all()

    def wait_for(self, numbers: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not numbers <= {c.fragment_number for _, c in self.got}:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def arrival(self, number: str) -> float:
        return next(t for t, c in self.got if c.fragment_number == number)

    def numbers(self) -> list[str]:
        return [c.fragment_number for _, c in self.got]

    def close(self):
        self._stop = True
        self.reader.close()


def push_gops(endpoint: str, name: str, gops: list[mkvgen.GenFragment], head: bytes, *,
              gap: float, on_sent=None) -> kp.PutMedia:
    """One PutMedia session sending `head`, then one GOP every `gap` seconds, then the end
    marker; returns the session (still open, acks arriving) after the last send."""
    pm = kp.PutMedia(endpoint, name, timecode_type="ABSOLUTE").open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(head)
    for i, g in enumerate(gops):
        if not pm.send(g.bytes):
            break
        if on_sent:
            on_sent(i)
        time.sleep(gap)
    pm.send(mkvgen.end_of_fragment())
    return pm


def push_live_gops(endpoint: str, name: str, count: int) -> tuple[list, list]:
    """`count` one-second GOPs stamped from now, 0.4 s apart, in one session that must end with
    every one PERSISTED and no ERROR; returns the GOPs sent and the PERSISTED acks."""
    start_tc = int(time.time() * 1000)
    head, _, _ = mkvgen.stream(0, start_tc=start_tc)
    gops = [mkvgen.gop(start_tc + i * 1000) for i in range(count)]
    pm = push_gops(endpoint, name, gops, head, gap=0.4)
    assert pm.wait_persisted(count, 20), pm.describe()
    pm.finish()
    pm.wait_done(10)
    pm.close()
    acks = kp.events(pm.acks, "PERSISTED")
    assert len(acks) == count and not kp.events(pm.acks, "ERROR"), pm.describe()
    return gops, acks


def test_get_media_now_on_b_follows_ingest_on_a(nodes):
    a, b = nodes
    name = unique("live-gm")
    a.client().create_stream(StreamName=name, DataRetentionInHours=24)
    # NOW on an empty stream, opened on B before anything is pushed to A.
    col = ChunkCollector(b, name, {"StartSelectorType": "NOW"})
    try:
        time.sleep(0.5)
        gops, acks = push_live_gops(a.endpoint, name, 8)
        numbers = [x.number for x in acks]
        assert col.wait_for(set(numbers), 10), (numbers, col.numbers())
        # Every fragment, once, in order, with the producer's frames.
        assert col.numbers() == numbers, (col.numbers(), numbers)
        for (_, c), g in zip(col.got, gops):
            assert sorted(c.digests()) == sorted(g.digests)
            assert c.cluster_timecodes[0] == g.timecode
        lat = [col.arrival(x.number) - x.at for x in acks]
    finally:
        col.close()
    med = statistics.median(lat)
    print(f"\nA PERSISTED -> B GetMedia chunk latency (s): median {med:.3f}, max {max(lat):.3f}, "
          f"all {[round(x, 3) for x in lat]}")
    # Without the cross-node wake-up B would only notice on its 2 s poll.
    assert med < MEDIAN_LATENCY_MAX_S, lat
    assert "listening for fragments stored by any node" in b.stderr_text()


def _media_playlist(master_url: str) -> tuple[str, str]:
    r = requests.get(master_url, timeout=10)
    assert r.status_code == 200, r.text
    variant = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")][0]
    url = urllib.parse.urljoin(master_url, variant)
    m = requests.get(url, timeout=10)
    assert m.status_code == 200, m.text
    return url, m.text


def _numbers(playlist: str) -> list[str]:
    import re
    return re.findall(r"FragmentNumber=(\d+)", playlist)


def _on_node(url: str, server) -> str:
    """The same session URL with its host replaced by `server`'s."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(netloc=urllib.parse.urlsplit(server.endpoint).netloc))


def hls(server, name: str, **kw) -> str:
    return kp.archived(server, name, "GET_HLS_STREAMING_SESSION_URL") \
        .get_hls_streaming_session_url(StreamName=name, **kw)["HLSStreamingSessionURL"]


def test_live_hls_and_dash_on_b_grow_while_a_ingests_hls_js_plays(nodes, tmp_path):
    kp.need("ffmpeg", "ffprobe")
    from test_playback import LivePush
    a, b = nodes
    name = unique("live-hls")
    a.client().create_stream(StreamName=name, DataRetentionInHours=24)
    push = LivePush(a, name, 40)
    try:
        deadline = time.monotonic() + 20
        while len(kp.list_all_fragments(b, name)) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        url = hls(b, name, PlaybackMode="LIVE", MaxMediaPlaylistFragmentResults=4)
        assert url.startswith(b.endpoint), url
        murl, first = _media_playlist(url)
        n1 = _numbers(first)
        assert n1 and "#EXT-X-ENDLIST" not in first, first
        time.sleep(3)
        second = requests.get(murl, timeout=10).text
        n2 = _numbers(second)
        assert n2 and int(n2[-1]) > int(n1[-1]), f"the playlist on B did not grow:\n{first}\n{second}"
        # The newest fragment A has stored is (about) the newest one B's playlist lists.
        listed = [f["FragmentNumber"] for f in kp.list_all_fragments(a, name)]
        assert n2[-1] in listed[-2:], (n2[-1], listed[-3:])
        # Its segments decode: init + one media fragment, and the live playlist itself.
        init = requests.get(urllib.parse.urljoin(murl, [ln for ln in second.splitlines()
                            if ln.startswith("#EXT-X-MAP")][0].split('URI="')[1].rstrip('"')),
                            timeout=10)
        seg_url = urllib.parse.urljoin(murl, [ln for ln in second.splitlines()
                                              if ln and not ln.startswith("#")][-1])
        seg = requests.get(seg_url, timeout=10)
        assert init.status_code == 200 and seg.status_code == 200, (init.text, seg.text)
        mp4 = tmp_path / "seg.mp4"
        mp4.write_bytes(init.content + seg.content)
        probe = kp.ffprobe_json(mp4, "-show_streams", "-count_frames")
        video = [s for s in probe["streams"] if s["codec_name"] == "h264"]
        assert video and int(video[0]["nb_read_frames"]) >= 20, probe
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "2", "-f", "null",
                            "-"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stderr.strip() == "", p.stderr[-3000:]
        # DASH LIVE on B grows too, and lists what A stored.
        durl = kp.archived(b, name, "GET_DASH_STREAMING_SESSION_URL") \
            .get_dash_streaming_session_url(StreamName=name, PlaybackMode="LIVE")[
                "DASHStreamingSessionURL"]
        mpd1 = requests.get(durl, timeout=10).text
        time.sleep(2.5)
        mpd2 = requests.get(durl, timeout=10).text
        d1, d2 = _numbers(mpd1), _numbers(mpd2)
        assert d1 and d2 and int(d2[-1]) > int(d1[-1]), f"DASH on B did not grow:\n{mpd1}\n{mpd2}"
        listed = [f["FragmentNumber"] for f in kp.list_all_fragments(a, name)]
        assert d2[-1] in listed[-2:], (d2[-1], listed[-3:])
        # hls.js in headless Chromium, on B's LIVE session while A ingests.
        from test_playback_browser import CHROMIUM, NODE_DIR, run_node
        if not (shutil.which("node") and (NODE_DIR / "node_modules" / "hls.js").exists()
                and Path(CHROMIUM).exists()):
            pytest.skip("node, tests/node/node_modules or chromium missing: hls.js part skipped")
        os.environ["LABEL"] = "scaleout-b"
        try:
            r = run_node(b, {"HLS_LIVE_URL": hls(b, name, PlaybackMode="LIVE")})
        finally:
            os.environ.pop("LABEL", None)
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
        assert "hls.js plays HLS LIVE" in r.stdout and "# pass 1" in r.stdout, r.stdout[-3000:]
    finally:
        push.stop()


def test_session_url_from_a_plays_on_b_and_foreign_key_is_refused(nodes, backends, tmp_path):  # noqa: F811
    kp.need("ffmpeg")
    a, b = nodes
    name = unique("live-key")
    a.client().create_stream(StreamName=name, DataRetentionInHours=24)
    t0 = dt.datetime.now(dt.timezone.utc)
    pm = kp.put_media(a.endpoint, name, (kp.SAMPLES / "ffmpeg_h264_aac.mkv").read_bytes(),
                      timecode_type="RELATIVE", expect_persisted=4)
    assert len(kp.events(pm.acks, "PERSISTED")) == 4, pm.describe()
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {
        "StartTimestamp": t0 - dt.timedelta(seconds=1),
        "EndTimestamp": dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)}}
    url_a = hls(a, name, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel)
    assert url_a.startswith(a.endpoint), url_a
    on_b = _on_node(url_a, b)
    _, playlist = _media_playlist(on_b)
    assert len(_numbers(playlist)) == 4, playlist
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", on_b, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr[-3000:]

    # Node C: same PostgreSQL and S3, so the same stream, but another key (0644: warned).
    other = write_key(tmp_path / "other-key.hex", 0o644)
    c = node(tmp_path, "c", backends["pg_url"], backends["s3_url"], other)
    c.start()
    try:
        url_c = hls(c, name, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel)
        assert requests.get(url_c, timeout=10).status_code == 200
        for target in (b, a):
            r = requests.get(_on_node(url_c, target), timeout=10)
            assert r.status_code == 403, (r.status_code, r.text[:300])
            assert raw_error(r)[0] == "InvalidSignatureException", (r.headers, r.text[:300])
        assert "readable by group or others" in c.stderr_text(), c.stderr_text()[-2000:]
    finally:
        c.kill()


@pytest.mark.parametrize("content,want", [
    (None, "does not exist"),
    ("not hex\n", "hex digits only"),
    ("00112233", "holds 4 bytes"),
])
def test_bad_token_key_file_is_refused_at_start(tmp_path, content, want):
    key = tmp_path / "key.hex"
    if content is not None:
        key.write_text(content)
        key.chmod(0o600)
    p = subprocess.run([str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                        str(tmp_path / "d"), "--no-turn", "--token-key-file", str(key)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stdout
    assert want in p.stderr and str(key) in p.stderr, p.stderr


# -- PostgreSQL restart -----------------------------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL server of this test alone, restartable."""

    def __init__(self):
        import pwd
        initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not (initdb and self.pg_ctl):
            _missing("PostgreSQL (initdb, pg_ctl)")
        self.dir = Path(tempfile.mkdtemp(prefix="openkvs-e2e-pg-restart-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pw = pwd.getpwnam("nobody")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", pw.pw_name, "--"]
        subprocess.run(self.prefix + [initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U",
                                      "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        self._ctl("start")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *what: str):
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.dir / "data"), "-l",
                                      str(self.dir / "log"), "-w", "-o",
                                      f"-p {self.port} -k {self.dir} "
                                      "-c listen_addresses=127.0.0.1 -c fsync=off", *what],
                       check=True, stdout=subprocess.DEVNULL)

    def restart(self, down_s: float = 0.0, times: dict | None = None):
        """`pg_ctl restart -m fast`, or stop, `down_s` seconds down (`times` gets when it was
        fully down: "stopped", "starting"), start."""
        if not down_s:
            self._ctl("-m", "fast", "restart")
            return
        self._ctl("-m", "fast", "stop")
        if times is not None:
            times["stopped"] = time.time()
        time.sleep(down_s)
        if times is not None:
            times["starting"] = time.time()
        self._ctl("start")

    def close(self):
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate",
                                      "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _retry(fn, timeout: float = 20.0):
    """`fn()` until it does not raise (a node's pooled connections from before a PostgreSQL
    restart may fail once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.parametrize("down_s", [0, 3], ids=["restart", "down-3s"])
def test_postgres_restart_during_ingest(backends, key_file, tmp_path, down_s):  # noqa: F811
    if not _supports_s3():
        _missing("an openkvs binary built with --features s3")
    pg = PrivatePostgres()
    a = node(tmp_path, "ra", pg.url, backends["s3_url"], key_file)
    b = node(tmp_path, "rb", pg.url, backends["s3_url"], key_file)
    try:
        a.start()
        b.start()
        name = unique("live-pgrestart")
        a.client().create_stream(StreamName=name, DataRetentionInHours=24)
        col = ChunkCollector(b, name, {"StartSelectorType": "NOW"})
        time.sleep(0.5)
        start_tc = int(time.time() * 1000)
        head, _, _ = mkvgen.stream(0, start_tc=start_tc)
        gops = [mkvgen.gop(start_tc + i * 1000) for i in range(36)]
        restart = {}

        def on_sent(i):
            if i == 6:  # a few fragments in: restart PostgreSQL while the producer goes on
                def do():
                    restart["start"] = time.time()
                    pg.restart(down_s, restart)
                    restart["end"] = time.time()
                threading.Thread(target=do, daemon=True).start()

        pm = push_gops(a.endpoint, name, gops, head, gap=0.3, on_sent=on_sent)
        # One ack per fragment, PERSISTED or ERROR (the last GOP is closed by the end marker).
        settled = pm.wait_for(lambda acks: len(kp.events(acks, "PERSISTED"))
                              + len(kp.events(acks, "ERROR")) >= len(gops), 60)
        pm.finish()
        pm.wait_done(15)
        pm.close()
        assert "end" in restart, "PostgreSQL restart did not finish"
        assert settled, pm.describe()
        persisted = kp.events(pm.acks, "PERSISTED")
        errors = kp.events(pm.acks, "ERROR")
        # Errors are the archival error a producer retries on (kvs-api.md §7.4), nothing else.
        assert {e.error_id for e in errors} <= {5001}, pm.describe()
        after_restart = [x for x in persisted if x.at > restart["end"]]
        assert len(after_restart) >= 5, f"ingest did not resume: {pm.describe()}"
        if down_s:
            # Fragments completed while PostgreSQL was down cannot have been PERSISTED then.
            assert not [x for x in persisted
                        if restart["stopped"] + 0.2 < x.at < restart["starting"]], pm.describe()
            assert errors, f"no ERROR ack during a {down_s}s outage: {pm.describe()}"
        print(f"\nPostgreSQL restart took {restart['end'] - restart['start']:.2f}s; "
              f"{len(persisted)} PERSISTED, {len(errors)} ERROR 5001 acks")

        # Every PERSISTED fragment is listed on B (nothing acknowledged was lost).
        listed = _retry(lambda: {f["FragmentNumber"] for f in kp.list_all_fragments(b, name)})
        missing = [x.number for x in persisted if x.number not in listed]
        assert not missing, (missing, sorted(listed))

        # The GetMedia tail opened on B before the restart went on: every PERSISTED fragment,
        # in number order, no repeats.
        want = {x.number for x in persisted}
        assert col.wait_for(want, 15), (sorted(want - set(col.numbers())), col.numbers())
        got = col.numbers()
        assert got == sorted(got, key=int) and len(got) == len(set(got)), got
        col.close()

        # B's listener reconnected: a new live reader on B gets a new session's fragments from
        # A promptly (not only through the 2 s poll).
        assert "fragment listener reconnected" in b.stderr_text(), b.stderr_text()[-3000:]
        col2 = _retry(lambda: ChunkCollector(b, name, {"StartSelectorType": "NOW"}))
        try:
            time.sleep(1.0)
            _, acks2 = push_live_gops(a.endpoint, name, 6)
            assert col2.wait_for({x.number for x in acks2}, 10), col2.numbers()
            lat = [col2.arrival(x.number) - x.at for x in acks2]
        finally:
            col2.close()
        print(f"after the restart: A PERSISTED -> B chunk latency median "
              f"{statistics.median(lat):.3f}s, all {[round(x, 3) for x in lat]}")
        assert statistics.median(lat) < MEDIAN_LATENCY_MAX_S, lat
    finally:
        for n in (a, b):
            n.kill()
        pg.close()
