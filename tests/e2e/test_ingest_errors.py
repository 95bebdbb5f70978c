"""Bad PutMedia input, one table-driven test (kvs-api.md §7.1 errors before the 200, §7.4
ErrorIds in the ack stream). After every row the server must still be healthy and every
fragment acked PERSISTED so far (a baseline stream and the good fragments of earlier rows) must
still be listed and byte-identical through GetMediaForFragmentList.

Rows run in order and all run even if one fails; the test fails at the end listing every
failing row."""

from __future__ import annotations

import json
import random
import subprocess
import time
import traceback

import requests

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import unique

BASE_TC = 1_760_000_000_000


class Ledger:
    """Every fragment acked PERSISTED so far: stream -> {number: sorted frame digests}."""

    def __init__(self, server):
        self.server = server
        self.streams: dict[str, dict[str, list]] = {}

    def add(self, stream: str, number: str, gen: mkvgen.GenFragment) -> None:
        self.streams.setdefault(stream, {})[number] = sorted(gen.digests)

    def forget(self, stream: str) -> None:
        self.streams.pop(stream, None)

    def check(self) -> None:
        r = requests.get(self.server.endpoint + "/health", timeout=5)
        assert r.status_code == 200, f"/health answered {r.status_code}: {r.text[:200]}"
        for stream, frags in self.streams.items():
            listed = [f["FragmentNumber"] for f in kp.list_all_fragments(self.server, stream)]
            missing = [n for n in frags if n not in listed]
            assert not missing, f"{stream}: fragments acked PERSISTED are no longer listed: {missing}"
            chunks = kp.read_fragments(self.server, stream, list(frags))
            for c, (n, digests) in zip(chunks, frags.items()):
                assert c.fragment_number == n and sorted(c.digests()) == digests, \
                    f"{stream}: fragment {n} no longer reads back identical"


def push_gens(server, stream, gens, *, head=None, tail=b"", chunk_size=65536, wait=10.0,
              finish=True, **kw) -> kp.PutMedia:
    head = head if head is not None else mkvgen.document_header([mkvgen.video_track()])
    pm = kp.PutMedia(server.endpoint, stream, **kw).open()
    assert pm.wait_status(10) == 200, f"PutMedia refused: {pm.describe()}"
    pm.send(head, chunk_size=chunk_size)
    for g in gens:
        if not pm.send(g.bytes if isinstance(g, mkvgen.GenFragment) else g, chunk_size=chunk_size):
            break
    pm.send(tail + mkvgen.end_of_fragment(), chunk_size=chunk_size)
    if finish:
        pm.finish()
    pm.wait_done(wait)
    pm.close()
    return pm


def persisted_map(pm) -> dict[int, str]:
    return {a.timecode: a.number for a in kp.events(pm.acks, "PERSISTED")}


def errors_of(pm) -> list[tuple]:
    return [(a.error_id, a.timecode) for a in kp.events(pm.acks, "ERROR")]


def expect_fragment_error(server, kvs, ledger, *, gens, bad_index, error_id, chunk_size=65536):
    """Push `gens`; fragment `bad_index` must be refused with ERROR `error_id` (carrying its
    FragmentTimecode) while every other fragment is PERSISTED and stored (fragment-level
    error: the session goes on)."""
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    pm = push_gens(server, name, gens, chunk_size=chunk_size)
    good = [g for i, g in enumerate(gens) if i != bad_index]
    bad = gens[bad_index]
    pers = persisted_map(pm)
    for g in good:
        if g.timecode in pers:
            ledger.add(name, pers[g.timecode], g)
    assert (error_id, bad.timecode) in errors_of(pm), \
        f"want ERROR {error_id} for FragmentTimecode {bad.timecode}: {pm.describe()}"
    assert bad.timecode not in pers, f"the bad fragment was acked PERSISTED: {pm.acks}"
    assert sorted(pers) == sorted(g.timecode for g in good), \
        f"the other fragments must be PERSISTED (fragment-level error): {pm.acks}"
    listed = kp.list_all_fragments(server, name)
    assert sorted(f["FragmentNumber"] for f in listed) == sorted(pers.values()), \
        f"stored fragments {listed} != acked {pers}"


def row_random_bytes(server, kvs, ledger):
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    pm = kp.PutMedia(server.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(random.Random(4006).randbytes(64 * 1024))
    # a stream-level error: the server acks ERROR 4006 and ends the response by itself
    assert pm.wait_for(lambda a: kp.events(a, "ERROR"), 10), f"no ERROR ack: {pm.describe()}"
    ended = pm.wait_done(5)
    pm.close()
    assert [a.error_id for a in kp.events(pm.acks, "ERROR")] == [4006], pm.describe()
    assert ended, f"the response did not end after ERROR 4006: {pm.describe()}"
    assert kp.list_all_fragments(server, name) == []


def row_truncated_upload(server, kvs, ledger):
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    gens = [mkvgen.gop(BASE_TC + i * 1000) for i in range(4)]
    pm = kp.PutMedia(server.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(mkvgen.document_header([mkvgen.video_track()]))
    for g in gens[:3]:
        pm.send(g.bytes)
    last = gens[3].bytes
    pm.send(last[:len(last) // 2])  # its key frame is in, the cluster is not complete
    pm.wait_persisted(3, 10)
    pm.abort()  # producer dies mid-cluster: no terminating chunk
    pers = persisted_map(pm)
    for g in gens[:3]:
        if g.timecode in pers:
            ledger.add(name, pers[g.timecode], g)
    assert sorted(pers) == [g.timecode for g in gens[:3]], \
        f"the 3 complete fragments must be PERSISTED before the drop: {pm.describe()}"
    time.sleep(1.0)
    listed = [f["FragmentNumber"] for f in kp.list_all_fragments(server, name)]
    assert set(pers.values()) <= set(listed) and len(listed) <= 4, \
        f"after the drop: listed {listed}, persisted {pers}"


def row_oversized_fragment(server, kvs, ledger):
    filler = bytes(1 << 20)
    huge = mkvgen.gop(BASE_TC + 1000, duration_ms=2080, fps=25, filler=filler)  # 52 x 1 MiB
    assert huge.media_bytes > 50 * (1 << 20)
    gens = [mkvgen.gop(BASE_TC), huge, mkvgen.gop(BASE_TC + 4000), mkvgen.gop(BASE_TC + 5000)]
    expect_fragment_error(server, kvs, ledger, gens=gens, bad_index=1, error_id=4001,
                          chunk_size=1 << 18)


def row_overlong_fragment(server, kvs, ledger):
    gens = [mkvgen.gop(BASE_TC), mkvgen.gop(BASE_TC + 1000, duration_ms=11_000),
            mkvgen.gop(BASE_TC + 12_000), mkvgen.gop(BASE_TC + 13_000)]
    expect_fragment_error(server, kvs, ledger, gens=gens, bad_index=1, error_id=4002)


def row_decreasing_timecodes(server, kvs, ledger):
    gens = [mkvgen.gop(BASE_TC + 10_000), mkvgen.gop(BASE_TC + 12_000),
            mkvgen.gop(BASE_TC + 11_000), mkvgen.gop(BASE_TC + 13_000)]
    expect_fragment_error(server, kvs, ledger, gens=gens, bad_index=2, error_id=4004)


def row_four_tracks(server, kvs, ledger):
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    ts = [mkvgen.video_track(1), mkvgen.audio_track(2), mkvgen.audio_track(3),
          mkvgen.audio_track(4)]
    pm = kp.PutMedia(server.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(mkvgen.document_header(ts) + mkvgen.gop(BASE_TC).bytes)
    got = pm.wait_for(lambda a: kp.events(a, "ERROR"), 10)
    ended = pm.wait_done(5)
    pm.close()
    assert got and [a.error_id for a in kp.events(pm.acks, "ERROR")] == [4012], pm.describe()
    assert ended, f"4012 is stream-level: the response should end: {pm.describe()}"
    assert kp.list_all_fragments(server, name) == []


def row_unknown_track_number(server, kvs, ledger):
    bad = mkvgen.gop(BASE_TC + 1000)
    frames = list(bad.frames)
    frames.insert(5, mkvgen.Frame(7, frames[5].tc, False, b"\x00\x00\x00\x01unknown-track"))
    bad.frames = frames
    bad.bytes = mkvgen.cluster(bad.timecode, frames)
    gens = [mkvgen.gop(BASE_TC), bad, mkvgen.gop(BASE_TC + 2000), mkvgen.gop(BASE_TC + 3000)]
    expect_fragment_error(server, kvs, ledger, gens=gens, bad_index=1, error_id=4010)


def row_stream_deleted_mid_upload(server, kvs, ledger):
    name = unique("ing-bad")
    arn = kvs.create_stream(StreamName=name, DataRetentionInHours=24)["StreamARN"]
    gens = [mkvgen.gop(BASE_TC + i * 1000) for i in range(5)]
    pm = kp.PutMedia(server.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(mkvgen.document_header([mkvgen.video_track()]) + gens[0].bytes + gens[1].bytes)
    assert pm.wait_persisted(1, 10), pm.describe()
    kvs.delete_stream(StreamARN=arn)
    for g in gens[2:]:
        pm.send(g.bytes)
        time.sleep(0.2)
    got = pm.wait_for(lambda a: kp.events(a, "ERROR"), 5)
    ended = pm.wait_done(5)
    pm.close()
    errs = [a.error_id for a in kp.events(pm.acks, "ERROR")]
    assert got and errs == [4008], \
        f"PutMedia to a stream deleted mid-upload: want one ERROR 4008 ack, got {errs}; {pm.describe()}"
    assert ended, f"4008 is stream-level: the response should end: {pm.describe()}"
    assert len(kp.events(pm.acks, "PERSISTED")) <= 2, "fragments persisted after the delete"


def row_unknown_stream(server, kvs, ledger):
    pm = kp.PutMedia(server.endpoint, unique("ing-nosuch")).open()
    status = pm.wait_status(10)
    pm.wait_done(5)
    pm.close()
    assert (status, pm.error_type()) == (404, "ResourceNotFoundException"), \
        f"unknown stream: want 404 ResourceNotFoundException before any 200: {pm.describe()}"
    assert not pm.acks


def row_bad_signature(server, kvs, ledger):
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    pm = kp.PutMedia(server.endpoint, name, tamper_signature=True).open()
    status = pm.wait_status(10)
    pm.wait_done(5)
    pm.close()
    assert (status, pm.error_type()) == (403, "InvalidSignatureException"), \
        f"tampered signature: {pm.describe()}"
    msg = pm.json_body().get("message") or pm.json_body().get("Message") or ""
    assert msg.startswith("The request signature we calculated does not match"), msg


def row_viewer_credentials(server, kvs, ledger):
    name = unique("ing-bad")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    cmd = [str(server.binary), "credentials", "mint", "--data-dir", str(server.data_dir),
           "--role", "viewer", "--ttl", "600"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=server.environment())
    assert p.returncode == 0, f"{' '.join(cmd)}: {p.stderr}"
    creds = json.loads(p.stdout)
    # the viewer may read ...
    am = kp.archived(server, name, access_key=creds["AccessKeyId"],
                     secret_key=creds["SecretAccessKey"], session_token=creds["SessionToken"])
    am.list_fragments(StreamName=name, FragmentSelector=kp.all_time_selector())
    # ... but not write
    pm = kp.PutMedia(server.endpoint, name, access_key=creds["AccessKeyId"],
                     secret_key=creds["SecretAccessKey"],
                     session_token=creds["SessionToken"]).open()
    status = pm.wait_status(10)
    pm.wait_done(5)
    pm.close()
    assert (status, pm.error_type()) == (401, "NotAuthorizedException"), \
        f"viewer credentials: want 401 NotAuthorizedException: {pm.describe()}"


def row_no_stream_header(server, kvs, ledger):
    pm = kp.PutMedia(server.endpoint, None).open()
    status = pm.wait_status(10)
    pm.wait_done(5)
    pm.close()
    assert (status, pm.error_type()) == (400, "InvalidArgumentException"), pm.describe()


ROWS = [
    ("random bytes -> ERROR 4006", row_random_bytes),
    ("truncated upload (drop mid-cluster)", row_truncated_upload),
    ("fragment > 50 MiB -> 4001", row_oversized_fragment),
    ("11 s GOP -> 4002", row_overlong_fragment),
    ("decreasing cluster timecodes -> 4004", row_decreasing_timecodes),
    ("4 tracks -> 4012", row_four_tracks),
    ("unknown track number -> 4010", row_unknown_track_number),
    ("stream deleted mid-upload -> 4008", row_stream_deleted_mid_upload),
    ("unknown stream -> 404", row_unknown_stream),
    ("bad signature -> 403", row_bad_signature),
    ("viewer credentials -> 401", row_viewer_credentials),
    ("no stream header -> 400", row_no_stream_header),
]


def test_ingest_bad_input_table(server, kvs):
    ledger = Ledger(server)
    base = unique("ing-base")
    kvs.create_stream(StreamName=base, DataRetentionInHours=24)
    gens = [mkvgen.gop(BASE_TC + i * 1000) for i in range(3)]
    pm = push_gens(server, base, gens)
    pers = persisted_map(pm)
    assert sorted(pers) == [g.timecode for g in gens], pm.describe()
    for g in gens:
        ledger.add(base, pers[g.timecode], g)
    ledger.check()

    failures = []
    for label, row in ROWS:
        t = time.monotonic()
        try:
            row(server, kvs, ledger)
            outcome = "ok"
        except AssertionError as e:
            failures.append(f"[{label}] {e}")
            outcome = "FAILED"
        except Exception:
            failures.append(f"[{label}] {traceback.format_exc(limit=3)}")
            outcome = "ERROR"
        print(f"row {label}: {outcome} ({time.monotonic() - t:.1f}s)")
        try:
            ledger.check()
        except AssertionError as e:
            failures.append(f"[after {label}] {e}")
            print(server.logs())
            break
    assert not failures, "bad-input rows failed:\n" + "\n".join(failures)
