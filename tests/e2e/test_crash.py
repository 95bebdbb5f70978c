"""Crash consistency (issue 8): live producers and readers, SIGKILL of the server at random
moments, restart, and check what survived.

Per iteration: start `openkvs serve` on the same data dir (the time from exec to a 200 on /health
is the restart time), run PRODUCERS live PutMedia sessions (one stream each, acks read while
sending) and READERS that list and read back fragments while ingest runs, SIGKILL the server
after a random 0.3-2.0 s, then check

- every fragment ever acked PERSISTED (in any iteration) is listed by ListFragments and reads back
  through GetMediaForFragmentList with exactly the frame payloads that were sent (fragments new
  since the last check after every restart, all of them again after the last one);
- every fragment listed at all (acked or not: a batch may commit and the ack be lost with the
  SIGKILL) is one that was sent, whole: same frames, same payloads; nothing half-visible;
- what the readers saw while the server was alive was whole too;
- on odd iterations `openkvs fsck` runs on the killed server's directory before the restart
  (its open does the crash recovery) and must report clean; on even ones the server's own
  recovery at start does it; at the end fsck must be clean.

OPENKVS_CRASH_ITERATIONS sets the number of iterations (CI: 20; run 100+ locally);
OPENKVS_CRASH_SEED fixes the random choices (kill moments, chunk sizes, session lengths; the
kill moment relative to the server's progress still varies).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time


import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen

ITERATIONS = int(os.environ.get("OPENKVS_CRASH_ITERATIONS", "20"))
PRODUCERS = 3
READERS = 2
FRAGMENT_MS = 400  # 10 frames at 25 fps, ~1.5 KB each: ~15 KB per fragment


def run_fsck(server, *extra: str) -> tuple[int, dict]:
    p = subprocess.run([str(server.binary), "fsck", "--data-dir", str(server.data_dir), "--json",
                        "--quiet", *extra], capture_output=True, text=True, timeout=120)
    try:
        report = json.loads(p.stdout)
    except ValueError:
        report = {"stdout": p.stdout, "stderr": p.stderr}
    return p.returncode, report


class Sent:
    """What the producers sent: producer timecode (ms) -> sorted (track, digest) of its frames,
    and what was acked PERSISTED: stream -> {fragment number: producer timecode}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.frames: dict[str, dict[int, list]] = {}
        self.acked: dict[str, dict[str, int]] = {}

    def add(self, stream: str, gen: mkvgen.GenFragment) -> None:
        with self.lock:
            self.frames.setdefault(stream, {})[gen.timecode] = sorted(gen.digests)

    def ack(self, stream: str, number: str, tc: int) -> None:
        with self.lock:
            self.acked.setdefault(stream, {})[number] = tc


def producer(server, stream: str, sent: Sent, next_tc: list, stop: threading.Event,
             seed: int) -> None:
    """One PutMedia session after another until the server dies (or `stop`)."""
    rnd = random.Random(seed)
    while not stop.is_set():
        try:
            pm = kp.PutMedia(server.endpoint, stream, timeout=5.0).open()
        except OSError:
            return  # server gone
        ok = pm.send(mkvgen.document_header([mkvgen.video_track()]))
        n = 0
        while ok and not stop.is_set() and n < rnd.randint(5, 40):
            tc = next_tc[0]
            next_tc[0] += FRAGMENT_MS
            gen = mkvgen.gop(tc, duration_ms=FRAGMENT_MS, fps=25, frame_bytes=1500,
                             seed=rnd.getrandbits(32))
            sent.add(stream, gen)
            ok = pm.send(gen.bytes, chunk_size=rnd.choice([512, 4096, 65536]))
            n += 1
            time.sleep(rnd.uniform(0.0, 0.04))
        if ok:
            pm.send(mkvgen.end_of_fragment())
            pm.finish()
            pm.wait_done(5.0)
        else:
            pm.wait_done(2.0)
        for a in kp.events(list(pm.acks), "PERSISTED"):
            sent.ack(stream, a.number, a.timecode)
        pm.close()
        if not ok:
            return


def reader(server, streams: list[str], sent: Sent, problems: list, seen: list,
           stop: threading.Event) -> None:
    """ListFragments + GetMediaForFragmentList of the newest fragments, over and over; every
    fragment read must be one that was sent, whole."""
    while not stop.is_set():
        for s in streams:
            try:
                frags = kp.list_all_fragments(server, s)
                newest = [f["FragmentNumber"] for f in frags[-3:]]
                chunks = kp.read_fragments(server, s, newest) if newest else []
            except Exception:  # the server was killed under us
                return
            for c in chunks:
                check_chunk(s, c, sent, problems, "reader")
            seen[0] += len(chunks)
        time.sleep(0.05)


def check_chunk(stream: str, c: mkvgen.Chunk, sent: Sent, problems: list, who: str) -> None:
    tc = c.cluster_timecodes[0] if c.cluster_timecodes else None
    with sent.lock:
        want = sent.frames.get(stream, {}).get(tc)
    if want is None:
        problems.append(f"{who}: {stream} fragment {c.fragment_number} at {tc} was never sent")
    elif sorted(c.digests()) != want:
        problems.append(f"{who}: {stream} fragment {c.fragment_number} at {tc} is not what was "
                        f"sent ({len(c.frames)} frames read, {len(want)} sent)")


def verify(server, streams: list[str], sent: Sent, done: set | None = None) -> int:
    """Checks that every acked fragment is listed, and reads back every listed fragment not in
    `done` (all when None; the checked ones are added). Returns how many were read."""
    problems: list[str] = []
    checked = 0
    for s in streams:
        listed = [f["FragmentNumber"] for f in kp.list_all_fragments(server, s)]
        acked = sent.acked.get(s, {})
        missing = sorted(set(acked) - set(listed))
        assert not missing, f"{s}: {len(missing)} fragments acked PERSISTED are not listed: {missing[:5]}"
        todo = [n for n in listed if done is None or (s, n) not in done]
        for i in range(0, len(todo), 200):
            numbers = todo[i:i + 200]
            chunks = kp.read_fragments(server, s, numbers)
            assert [c.fragment_number for c in chunks] == numbers, f"{s}: GetMediaForFragmentList order/count"
            for c in chunks:
                check_chunk(s, c, sent, problems, "after restart")
                if c.fragment_number in acked:
                    assert c.cluster_timecodes[0] == acked[c.fragment_number], (
                        f"{s}: fragment {c.fragment_number} holds timecode {c.cluster_timecodes[0]}, "
                        f"acked for {acked[c.fragment_number]}")
            checked += len(chunks)
            if done is not None:
                done.update((s, n) for n in numbers)
    assert not problems, "\n".join(problems[:20])
    return checked


def test_sigkill_during_ingest(new_server):
    srv = new_server()
    seed = int(os.environ.get("OPENKVS_CRASH_SEED", str(time.time_ns())))
    print(f"crash harness seed: OPENKVS_CRASH_SEED={seed}")  # shown when the test fails
    rnd = random.Random(seed)
    sent = Sent()
    streams: list[str] = []
    next_tc: dict[str, list] = {}
    restart_s: list[float] = []
    reader_problems: list[str] = []
    kills_with_fsck = 0
    seen = [0]
    done: set = set()
    t0 = time.monotonic()
    srv.start()
    kv = srv.client()
    for i in range(PRODUCERS):
        name = f"crash-{i}-{rnd.getrandbits(24):06x}"
        kv.create_stream(StreamName=name, DataRetentionInHours=24)
        streams.append(name)
        next_tc[name] = [1_760_000_000_000 + i * 10_000_000]
    for it in range(ITERATIONS):
        if it > 0:
            start = time.monotonic()
            srv.start()
            restart_s.append(time.monotonic() - start)
            # every iteration: all acked listed, new fragments read back; the end reads all again
            verify(srv, streams, sent, done)
        stop = threading.Event()
        threads = [threading.Thread(target=producer, daemon=True,
                                    args=(srv, s, sent, next_tc[s], stop, rnd.getrandbits(32)))
                   for s in streams]
        threads += [threading.Thread(target=reader, daemon=True,
                                     args=(srv, streams, sent, reader_problems, seen, stop))
                    for _ in range(READERS)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 2.0))
        srv.kill()  # SIGKILL
        stop.set()
        for t in threads:
            t.join(timeout=15)
            assert not t.is_alive(), "a client thread hung after the server was killed"
        kp.close_all()
        assert not reader_problems, "\n".join(reader_problems[:20])
        if it % 2 == 1:
            code, report = run_fsck(srv)
            kills_with_fsck += 1
            assert code == 0, f"iteration {it}: fsck after SIGKILL is not clean: {report}"
    # the last kill: recovery by fsck, which must then find nothing
    code, report = run_fsck(srv)
    assert code == 0 and report["check"]["clean"], f"final fsck: {report}"
    start = time.monotonic()
    srv.start()
    restart_s.append(time.monotonic() - start)
    checked = verify(srv, streams, sent)
    acked = sum(len(v) for v in sent.acked.values())
    sent_n = sum(len(v) for v in sent.frames.values())
    assert acked >= ITERATIONS, f"too few fragments acked to mean anything: {acked}"
    srv.stop()
    restart_s.sort()
    print(f"\ncrash: {ITERATIONS} SIGKILLs ({kills_with_fsck} followed by fsck) in "
          f"{time.monotonic() - t0:.1f}s; fragments sent {sent_n}, acked PERSISTED {acked}, "
          f"listed and verified after the last restart {checked}; reader reads {seen[0]}; "
          f"restart to /health p50 {restart_s[len(restart_s) // 2]:.3f}s "
          f"max {restart_s[-1]:.3f}s")
