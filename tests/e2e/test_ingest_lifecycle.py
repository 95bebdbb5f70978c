"""PutMedia lifecycles: retention-0 streams (acks without PERSISTED, in-memory reads), crash
consistency under `kill -9` (every PERSISTED ack is a promise), and "newest connection wins"
when a second producer connects (kvs-api.md §7.1, §7.4, §8.3, §15.1)."""

from __future__ import annotations

import random
import threading
import time

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import unique


def test_ingest_retention_zero_in_memory(server, kvs):
    name = unique("ing-r0")
    kvs.create_stream(StreamName=name, DataRetentionInHours=0)
    head, body, gens = mkvgen.stream(3, start_tc=1_770_000_000_000)
    pm = kp.put_media(server.endpoint, name, body, max_wait=10)
    assert pm.status == 200, pm.describe()
    real = [a for a in pm.acks if a.event != "IDLE"]
    assert [a.event for a in real] == ["BUFFERING", "RECEIVED"] * 3, \
        f"retention 0: BUFFERING and RECEIVED per fragment, never PERSISTED: {real}"
    assert [a.timecode for a in real[::2]] == [g.timecode for g in gens]
    numbers = [a.number for a in real[::2]]
    assert [a.number for a in real[1::2]] == numbers

    listed = kp.list_all_fragments(server, name)
    assert [f["FragmentNumber"] for f in listed] == numbers, \
        f"ListFragments on a retention-0 stream: {listed}, want the in-memory {numbers}"

    r = kp.GetMediaReader(server, name, {"StartSelectorType": "EARLIEST"})
    try:
        for n, g in zip(numbers, gens):
            c = r.next_chunk(8)
            assert c is not None, f"GetMedia EARLIEST on retention 0: chunk {n} did not arrive"
            assert c.fragment_number == n and sorted(c.digests()) == sorted(g.digests)
    finally:
        r.close()
    chunks = kp.read_fragments(server, name, numbers)
    assert [sorted(c.digests()) for c in chunks] == [sorted(g.digests) for g in gens]


def _push_live(server, name, tc0, n, acked, stop, errors):
    """Producer thread: 0.5 s GOPs every 0.2 s; records each PERSISTED ack in `acked`."""
    gens = {}
    try:
        pm = kp.PutMedia(server.endpoint, name, timeout=10,
                         on_ack=lambda a: a.event == "PERSISTED" and acked.setdefault(a.timecode, a.number))
        pm.open()
        if not pm.send(mkvgen.document_header([mkvgen.video_track()])):
            return gens
        for i in range(n):
            if stop.is_set():
                break
            g = mkvgen.gop(tc0 + i * 500, duration_ms=500, frame_bytes=8000)
            gens[g.timecode] = g
            if not pm.send(g.bytes, chunk_size=4096):
                break
            time.sleep(0.2)
        pm.close()
    except OSError as e:
        errors.append(e)
    return gens


def test_ingest_crash_consistency_kill9(new_server):
    """kill -9 mid-push, restart on the same data dir: every fragment acked PERSISTED is
    listed and byte-identical; nothing torn is listed. Three rounds on one stream."""
    srv = new_server().start()
    kvs = srv.client()
    name = unique("ing-crash")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    rnd = random.Random(20261122)
    promised: dict[int, str] = {}  # cluster timecode -> number, over all rounds
    sent: dict[int, mkvgen.GenFragment] = {}
    for rnd_i in range(3):
        acked: dict[int, str] = {}
        stop = threading.Event()
        errors: list = []
        result = {}
        t = threading.Thread(target=lambda: result.update(
            _push_live(srv, name, 1_780_000_000_000 + rnd_i * 100_000, 40, acked, stop, errors)))
        t.start()
        kill_after = rnd.uniform(1.2, 2.4)
        time.sleep(kill_after)
        before = len(acked)
        srv.kill()  # SIGKILL
        stop.set()
        t.join(15)
        assert not t.is_alive(), "the producer thread hung after the server died"
        sent.update(result)
        promised.update(acked)
        print(f"round {rnd_i}: killed after {kill_after:.2f}s, {before} fragments acked PERSISTED, "
              f"{len(result)} sent")
        assert before >= 2, f"round {rnd_i}: only {before} PERSISTED acks before the kill"
        srv.start()
        listed = {f["FragmentNumber"]: f for f in kp.list_all_fragments(srv, name)}
        missing = {tc: n for tc, n in promised.items() if n not in listed}
        assert not missing, (f"round {rnd_i}: fragments acked PERSISTED before kill -9 are gone "
                             f"after restart: {missing}\n{srv.logs()}")
        by_number = {n: tc for tc, n in promised.items()}
        chunks = kp.read_fragments(srv, name, sorted(listed, key=int))
        assert len(chunks) == len(listed)
        for c in chunks:
            tc = c.cluster_timecodes[0] if c.cluster_timecodes else None
            assert tc in sent, f"listed fragment {c.fragment_number} (Timecode {tc}) was never sent"
            if c.fragment_number in by_number:
                assert by_number[c.fragment_number] == tc
            assert sorted(c.digests()) == sorted(sent[tc].digests), \
                f"round {rnd_i}: fragment {c.fragment_number} (Timecode {tc}) is not byte-identical"
        numbers = sorted(listed, key=int)
        assert len(set(numbers)) == len(numbers)


def test_ingest_newest_connection_wins(server, kvs):
    name = unique("ing-repl")
    arn = kvs.create_stream(StreamName=name, DataRetentionInHours=24)["StreamARN"]
    head = mkvgen.document_header([mkvgen.video_track()])
    a_gens = [mkvgen.gop(1_790_000_000_000 + i * 1000) for i in range(3)]
    a = kp.PutMedia(server.endpoint, name).open()
    assert a.wait_status(10) == 200, a.describe()
    a.send(head + a_gens[0].bytes + a_gens[1].bytes)
    assert a.wait_persisted(1, 10), a.describe()
    assert not a.done.is_set()

    # the second producer names the stream by ARN (x-amzn-stream-arn): the same stream
    b = kp.PutMedia(server.endpoint, stream_arn=arn).open()
    assert b.wait_status(10) == 200, f"the second producer was refused: {b.describe()}"
    t = time.monotonic()
    assert a.wait_done(5), \
        f"the first PutMedia response did not end within 5 s of a newer connection: {a.describe()}"
    print(f"first session ended {time.monotonic() - t:.2f}s after the second connected; "
          f"its acks: {a.acks}")
    a.close()

    b_gens = [mkvgen.gop(1_790_000_010_000 + i * 1000) for i in range(2)]
    b.send(head + b"".join(g.bytes for g in b_gens) + mkvgen.end_of_fragment())
    assert b.wait_persisted(2, 10), f"the newest connection does not work: {b.describe()}"
    b.finish()
    b.wait_done(5)
    b.close()
    assert kp.events(b.acks, "ERROR") == []
    a_pers = [x.number for x in kp.events(a.acks, "PERSISTED")]
    b_pers = [x.number for x in kp.events(b.acks, "PERSISTED")]
    listed = [f["FragmentNumber"] for f in kp.list_all_fragments(server, name)]
    assert set(a_pers + b_pers) <= set(listed), f"listed {listed}; A {a_pers}; B {b_pers}"
    assert max(b_pers, key=int) == max(listed, key=int)


def test_ingest_graceful_shutdown_with_live_sessions(new_server):
    """SIGTERM while a producer is connected (PutMedia open, between fragments) and a reader
    follows the stream live (GetMedia NOW): the server still exits within 5 s (the suite's
    shutdown contract, conftest.py), ends both responses, and keeps what it acked PERSISTED."""
    srv = new_server().start()
    name = unique("ing-term")
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    gens = [mkvgen.gop(1_795_000_000_000 + i * 1000) for i in range(2)]
    pm = kp.PutMedia(srv.endpoint, name).open()
    assert pm.wait_status(10) == 200, pm.describe()
    pm.send(mkvgen.document_header([mkvgen.video_track()]) + gens[0].bytes + gens[1].bytes)
    assert pm.wait_persisted(1, 10), pm.describe()
    reader = kp.GetMediaReader(srv, name, {"StartSelectorType": "NOW"})
    try:
        assert reader.next_chunk(5) is not None, "GetMedia NOW returned nothing"
        elapsed, code = srv.stop()  # asserts an exit within 5 s of SIGTERM
        print(f"stopped in {elapsed:.2f}s with exit code {code}")
        assert pm.wait_done(2), f"the PutMedia response did not end at shutdown: {pm.describe()}"
        assert reader.next_chunk(2) is None and reader.eof, "GetMedia did not end at shutdown"
    finally:
        reader.close()
        pm.close()
    srv.start()
    acked = [a.number for a in kp.events(pm.acks, "PERSISTED")]
    listed = [f["FragmentNumber"] for f in kp.list_all_fragments(srv, name)]
    assert set(acked) <= set(listed), f"acked {acked}, listed after restart {listed}"
