"""PutMedia with a C-producer-style client (kvs_producer.PutMedia: chunked, full duplex,
empty-payload signature, Host without port) pushing the real producer files in samples/, then
reading everything back with unmodified boto3 (ListFragments, GetMediaForFragmentList,
GetMedia) and ffprobe.

Spec: kvs-api.md §7 (PutMedia, acks), §8 (chunk layout), §9 (ListFragments), §3 (GetMedia
start selectors); fragmenting rules: crates/ingest/DESIGN.md.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import REPO_ROOT, unique

SAMPLES = REPO_ROOT / "samples"
NUMBER_RE = re.compile(r"^[0-9]{47}$")
NEXT_TOKEN_RE = re.compile(r"^[a-zA-Z0-9+/]+={0,2}$")
AWS_TAGS = ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP")
POST_TAGS = ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "AWS_KINESISVIDEO_CONTINUATION_TOKEN")


def epoch(d: dt.datetime) -> float:
    return d.timestamp()


def to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def ms_of(d: dt.datetime) -> int:
    return round(d.timestamp() * 1000)


def check_ack_groups(acks, expected_timecodes, *, what=""):
    """The ack stream is exactly BUFFERING, RECEIVED, PERSISTED per fragment, in order, with
    FragmentTimecode = the cluster Timecode and one 47-digit number per fragment, strictly
    increasing. Returns the numbers."""
    real = [a for a in acks if a.event != "IDLE"]
    want = ["BUFFERING", "RECEIVED", "PERSISTED"] * len(expected_timecodes)
    assert [a.event for a in real] == want, f"{what}: ack events {real}, want {want}"
    numbers = []
    for i, tc in enumerate(expected_timecodes):
        group = real[3 * i:3 * i + 3]
        assert [a.timecode for a in group] == [tc] * 3, \
            f"{what}: fragment {i} acks {group} should carry FragmentTimecode {tc} (cluster Timecode)"
        nums = {a.number for a in group}
        assert len(nums) == 1, f"{what}: fragment {i} acks carry different numbers {group}"
        n = nums.pop()
        assert isinstance(n, str) and NUMBER_RE.match(n), \
            f"{what}: FragmentNumber {n!r} is not a 47-digit decimal string"
        numbers.append(n)
    assert numbers == sorted(numbers, key=int) and len(set(numbers)) == len(numbers), \
        f"{what}: fragment numbers not strictly increasing: {numbers}"
    for a in real:
        assert isinstance(a.raw.get("FragmentTimecode"), int), \
            f"{what}: FragmentTimecode must be a JSON number: {a.raw}"
    return numbers


def keyframe_times_ms(path: Path) -> list[int]:
    """pts (ms) of the video key frames per `ffprobe -show_packets`."""
    streams = kp.ffprobe_streams(path)
    vidx = next(s["index"] for s in streams if s["codec_type"] == "video")
    return sorted(round(float(p["pts_time"]) * 1000) for p in kp.ffprobe_packets(path)
                  if p["stream_index"] == vidx and "K" in p.get("flags", ""))


def push_sample(server, stream, path: Path, mode: str, *, gap: float = 0.0):
    """Push a sample file; with `gap`, pause that long before each fragment-opening cluster
    (so that server timestamps differ). Returns (PutMedia, producer_start, send times)."""
    data = path.read_bytes()
    doc = mkvgen.parse_documents(data)[0][0]
    cuts = mkvgen.fragment_offsets(doc)
    start = round(time.time() - 5.0, 3)
    pm = kp.PutMedia(server.endpoint, stream, timecode_type=mode, producer_start=start).open()
    assert pm.wait_status(10) == 200, f"PutMedia refused: {pm.describe()}"
    sent_at = []
    pos = 0
    for c in cuts[1:] + [len(data)]:
        if gap and sent_at:
            time.sleep(gap)
        sent_at.append(time.time())
        assert pm.send(data[pos:c], chunk_size=4096), f"send failed: {pm.describe()}"
        pos = c
    pm.finished_at = time.time()
    assert pm.finish()
    assert pm.wait_done(15), f"the response did not end after the terminating chunk: {pm.describe()}"
    pm.close()
    return pm, start, sent_at


SAMPLE_CASES = [
    ("ffmpeg_h264_aac", "RELATIVE"),
    ("ffmpeg_h264_aac", "ABSOLUTE"),
    ("ffmpeg_h265", "RELATIVE"),
    ("ffmpeg_live_h264", "RELATIVE"),
    ("gstreamer_h264", "ABSOLUTE"),
    ("mkvmerge_h264", "RELATIVE"),
]


@pytest.mark.parametrize("sample,mode", SAMPLE_CASES, ids=[f"{s}-{m}" for s, m in SAMPLE_CASES])
def test_ingest_sample(server, kvs, tmp_path, sample, mode):
    kp.need("ffprobe")
    path = SAMPLES / f"{sample}.mkv"
    name = unique("ing")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    src = mkvgen.read_file(path)[0]
    expected = mkvgen.expected_fragments(src)
    t0 = time.time()
    pm, start, sent_at = push_sample(server, name, path, mode, gap=0.0)
    t1 = time.time()
    assert pm.status == 200 and not pm.bad_lines, pm.describe()
    numbers = check_ack_groups(pm.acks, [tc for tc, _ in expected], what=sample)

    # -- fragments are GOP-aligned: they start at the key frames ffprobe sees, and a fragment
    #    holds exactly the frames up to the next one
    keys = keyframe_times_ms(path)
    starts = []
    for tc, frames in expected:
        vid = [f for f in frames if src.tracks[f.track].startswith("V_")]
        starts.append(vid[0].tc)
    assert set(starts) <= set(keys), f"fragment starts {starts} are not all key frames {keys}"
    if sample != "ffmpeg_h265":  # its first cluster holds two GOPs: one fragment (DESIGN.md)
        assert starts == keys, f"one fragment per GOP expected: starts {starts}, key frames {keys}"

    # -- ListFragments through boto3 (endpoint from GetDataEndpoint(LIST_FRAGMENTS))
    lo, hi = to_dt(int(t0 * 1000) - 60_000), to_dt(int(t1 * 1000) + 60_000)
    frags = kp.list_all_fragments(server, name, FragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": lo, "EndTimestamp": hi}})
    assert [f["FragmentNumber"] for f in frags] == numbers, \
        f"ListFragments {[f['FragmentNumber'] for f in frags]} != acked {numbers}"
    laced = any(getattr(f, "laced", False) for f in src.frames)
    for f, (tc, frames) in zip(frags, expected):
        prod = ms_of(f["ProducerTimestamp"])
        want_prod = tc if mode == "ABSOLUTE" else round(start * 1000) + tc
        assert prod == want_prod, \
            f"{mode}: ProducerTimestamp {prod} ms, want {want_prod} (cluster Timecode {tc})"
        srv = f["ServerTimestamp"].timestamp()
        assert t0 - 1 <= srv <= t1 + 1, f"ServerTimestamp {srv} not within the push [{t0}, {t1}]"
        span = max(x.tc for x in frames) - min(x.tc for x in frames)
        length = f["FragmentLengthInMilliseconds"]
        assert span <= length <= span + 150, \
            f"FragmentLengthInMilliseconds {length} vs frames spanning {span} ms (+ last frame)"
        media = sum(len(x.payload) for x in frames)  # (laced blocks count their lace headers)
        assert laced or f["FragmentSizeInBytes"] >= media, \
            f"FragmentSizeInBytes {f['FragmentSizeInBytes']} < media bytes {media}"

    # -- GetMediaForFragmentList: one chunk per fragment, in order, byte-identical frames
    body = kp.get_fragments_media(server, name, numbers)
    out = tmp_path / "out.mkv"
    out.write_bytes(body)
    chunks = mkvgen.parse_documents(body)[0]
    assert [c.fragment_number for c in chunks] == numbers
    for c, f, (tc, frames) in zip(chunks, frags, expected):
        for t in AWS_TAGS:
            assert t in c.tags_before, f"chunk lacks {t} before its Cluster: {c.tags}"
        assert not any(t in c.tags for t in POST_TAGS), \
            f"GetMediaForFragmentList chunk carries GetMedia-only tags: {c.tags}"
        assert c.tags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"] == f"{epoch(f['ServerTimestamp']):.3f}"
        assert c.tags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"] == f"{epoch(f['ProducerTimestamp']):.3f}"
        assert c.cluster_timecodes[0] == tc, f"chunk Cluster Timecode {c.cluster_timecodes} != {tc}"
        assert all(c.cluster_known_size), "GetMedia chunks use known-size Clusters (§8.1)"
        assert c.segment_unknown_size, "GetMedia chunks use an unknown-size Segment (§8.1)"
        assert c.tracks == src.tracks, f"chunk tracks {c.tracks} != source {src.tracks}"
        if not laced:
            assert sorted(c.digests()) == sorted((x.track, x.digest) for x in frames), \
                "frame payloads differ from what was pushed"
            assert sorted(x.tc for x in c.frames) == sorted(x.tc for x in frames), \
                "frame timestamps differ from what was pushed"
    src_streams = sorted(s["codec_name"] for s in kp.ffprobe_streams(path))
    got_streams = sorted(s["codec_name"] for s in kp.ffprobe_streams(out))
    assert got_streams == src_streams
    assert kp.ffprobe_frame_counts(out) == kp.ffprobe_frame_counts(path), \
        "decoded frame counts differ between the pushed file and GetMediaForFragmentList"


# -- one stream pushed with pauses between fragments, shared by the selector tests -------------

PACE = 0.6  # seconds before each fragment of the paced push


@pytest.fixture(scope="module")
def paced(server):
    """ffmpeg_h264_aac.mkv pushed RELATIVE with 0.6 s before each fragment: distinct server
    timestamps. Yields dict(name, numbers, frags, sent_at, start, pm)."""
    name = unique("ing-paced")
    server.client().create_stream(StreamName=name, DataRetentionInHours=24)
    pm, start, sent_at = push_sample(server, name, SAMPLES / "ffmpeg_h264_aac.mkv", "RELATIVE",
                                     gap=PACE)
    src = mkvgen.read_file(SAMPLES / "ffmpeg_h264_aac.mkv")[0]
    numbers = check_ack_groups(pm.acks, [tc for tc, _ in mkvgen.expected_fragments(src)],
                               what="paced push")
    frags = kp.list_all_fragments(server, name)
    assert [f["FragmentNumber"] for f in frags] == numbers
    return dict(name=name, numbers=numbers, frags=frags, sent_at=sent_at, start=start, pm=pm)


def test_ingest_server_timestamps_follow_arrival(paced):
    """ServerTimestamp = when the fragment's first byte arrived (§7.2); acks stream back while
    the body is still being sent (full duplex, §7.1)."""
    pm = paced["pm"]
    # fragment i is complete when fragment i+1's first cluster arrives (sent_at[i+1]); the
    # last send is followed at once by the terminating chunk, so fragments 0..n-3 had PACE s
    early = [a for a in kp.events(pm.acks, "PERSISTED") if a.at < pm.finished_at]
    want = len(paced["sent_at"]) - 2
    assert len(early) >= want, (f"only {len(early)} PERSISTED acks arrived before the body "
                                f"ended; {want} fragments were complete {PACE} s earlier: {pm.acks}")
    for a, sent in zip(early, paced["sent_at"][1:]):
        assert a.at - sent < 0.4, \
            f"fragment {a.number} completed at {sent:.3f} (next cluster sent) but PERSISTED came {a.at - sent:.2f}s later"
    for f, sent in zip(paced["frags"], paced["sent_at"]):
        got = f["ServerTimestamp"].timestamp()
        assert abs(got - sent) < 0.3, \
            f"ServerTimestamp {got:.3f} but the fragment was sent at {sent:.3f}"


def test_ingest_list_fragments_selectors_and_paging(server, paced):
    name, frags = paced["name"], paced["frags"]
    am = kp.archived(server, name)
    nums = [f["FragmentNumber"] for f in frags]

    def listed(kind, start, end, **kw):
        r = am.list_fragments(StreamName=name, FragmentSelector={
            "FragmentSelectorType": kind,
            "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}, **kw)
        return sorted((f["FragmentNumber"] for f in r["Fragments"]), key=int), r

    s = [f["ServerTimestamp"] for f in frags]
    p = [f["ProducerTimestamp"] for f in frags]
    ms = dt.timedelta(milliseconds=1)
    # inclusive bounds on the fragment's start timestamp, both selector types
    assert listed("SERVER_TIMESTAMP", s[1], s[2])[0] == nums[1:3], "SERVER_TIMESTAMP [s1, s2]"
    assert listed("SERVER_TIMESTAMP", s[1] + ms, s[2])[0] == nums[2:3], "SERVER_TIMESTAMP (s1, s2]"
    assert listed("SERVER_TIMESTAMP", s[1], s[2] - ms)[0] == nums[1:2], "SERVER_TIMESTAMP [s1, s2)"
    assert listed("PRODUCER_TIMESTAMP", p[1], p[3])[0] == nums[1:4], "PRODUCER_TIMESTAMP [p1, p3]"
    assert listed("PRODUCER_TIMESTAMP", p[1] + ms, p[3] - ms)[0] == nums[2:3], \
        "PRODUCER_TIMESTAMP (p1, p3)"
    # a fragment that starts before Start is excluded even though it runs past it
    assert listed("PRODUCER_TIMESTAMP", p[0] + 500 * ms, p[1] + 500 * ms)[0] == nums[1:2]
    assert listed("PRODUCER_TIMESTAMP", p[3] + ms, p[3] + 3600 * 1000 * ms)[0] == []

    # MaxResults + NextToken by hand, then NextToken alone (no selector) continues the listing
    everything = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                  "TimestampRange": {"StartTimestamp": s[0] - 60 * 1000 * ms,
                                     "EndTimestamp": s[-1] + 60 * 1000 * ms}}
    r = am.list_fragments(StreamName=name, MaxResults=1, FragmentSelector=everything)
    seen = [f["FragmentNumber"] for f in r["Fragments"]]
    assert len(seen) == 1 and r.get("NextToken"), f"MaxResults=1: {r}"
    pages = 1
    while r.get("NextToken"):
        tok = r["NextToken"]
        assert NEXT_TOKEN_RE.match(tok) and len(tok) <= 4096, f"NextToken {tok!r}"
        r = am.list_fragments(StreamName=name, MaxResults=1, NextToken=tok)
        seen += [f["FragmentNumber"] for f in r["Fragments"]]
        pages += 1
        assert pages <= 10, "NextToken never ends"
    assert sorted(seen, key=int) == nums and len(seen) == len(set(seen)), \
        f"paging with MaxResults=1 returned {seen}, want {nums}"
    assert pages in (4, 5), f"{pages} pages for 4 fragments at MaxResults=1"

    # the boto3 paginator (PageSize -> MaxResults)
    pager = am.get_paginator("list_fragments").paginate(
        StreamName=name, FragmentSelector=everything, PaginationConfig={"PageSize": 3})
    sizes, got = [], []
    for page in pager:
        sizes.append(len(page["Fragments"]))
        got += [f["FragmentNumber"] for f in page["Fragments"]]
    assert sorted(got, key=int) == nums and sizes[0] == 3 and sum(sizes) == 4, \
        f"paginator pages {sizes}: {got}"
    # MaxItems on the paginator resumes with its own token
    first = am.get_paginator("list_fragments").paginate(
        StreamName=name, FragmentSelector=everything,
        PaginationConfig={"PageSize": 1, "MaxItems": 2}).build_full_result()
    assert len(first["Fragments"]) == 2 and first.get("NextToken")
    rest = am.get_paginator("list_fragments").paginate(
        StreamName=name, FragmentSelector=everything,
        PaginationConfig={"PageSize": 1, "StartingToken": first["NextToken"]}).build_full_result()
    both = [f["FragmentNumber"] for f in first["Fragments"] + rest["Fragments"]]
    assert sorted(both, key=int) == nums and len(set(both)) == 4, f"resumed paging gave {both}"


def test_ingest_list_fragments_requires_selector(server, paced):
    """FragmentSelector "is required only when the NextToken parameter is not passed" (model
    doc, kvs-api.md §9): neither -> InvalidArgumentException (400)."""
    am = kp.archived(server, paced["name"])
    try:
        r = am.list_fragments(StreamName=paced["name"])
    except am.exceptions.InvalidArgumentException as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return
    raise AssertionError(f"ListFragments without FragmentSelector or NextToken succeeded "
                         f"({len(r['Fragments'])} fragments); want InvalidArgumentException")


def _first_chunk(server, name, selector, timeout=8.0):
    r = kp.GetMediaReader(server, name, selector)
    try:
        c = r.next_chunk(timeout)
        assert c is not None, f"GetMedia {selector}: no chunk within {timeout}s"
        return c, r
    finally:
        r.close()


def check_getmedia_chunk(c, frag):
    for t in AWS_TAGS:
        assert t in c.tags_before, f"GetMedia chunk lacks {t} before its Cluster: {c.tags_before}"
    for t in POST_TAGS:
        assert t in c.tags_after, f"GetMedia chunk lacks {t} after its Cluster: {c.tags_after}"
    assert c.fragment_number == frag["FragmentNumber"]
    assert re.match(r"^[0-9]+$", c.tags["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"]), c.tags
    assert re.match(r"^[a-zA-Z0-9_.\-]{1,128}$", c.tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"])
    assert re.match(r"^[0-9]+\.[0-9]{3}$", c.tags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"])


def test_ingest_get_media_start_selectors(server, paced):
    name, frags = paced["name"], paced["frags"]
    nums = [f["FragmentNumber"] for f in frags]
    ms = dt.timedelta(milliseconds=1)

    # EARLIEST: every fragment, in order, each a complete chunk
    r = kp.GetMediaReader(server, name, {"StartSelectorType": "EARLIEST"})
    try:
        assert r.content_type, "GetMedia has a Content-Type"
        got = []
        for f in frags:
            c = r.next_chunk(8)
            assert c is not None, f"EARLIEST: only {len(got)} chunks arrived"
            check_getmedia_chunk(c, f)
            got.append(c)
    finally:
        r.close()
    token1 = got[1].tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"]

    cases = [
        ({"StartSelectorType": "NOW"}, 3),
        ({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": nums[1]}, 2),
        ({"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": frags[2]["ServerTimestamp"]}, 2),
        # the chunk containing the timestamp: 500 ms into fragment 1
        ({"StartSelectorType": "PRODUCER_TIMESTAMP",
          "StartTimestamp": frags[1]["ProducerTimestamp"] + 500 * ms}, 1),
        ({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": frags[0]["ProducerTimestamp"]}, 0),
        ({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token1}, 2),
    ]
    for sel, want in cases:
        time.sleep(0.25)  # stay under 5 GetMedia calls/s per stream
        c, _ = _first_chunk(server, name, sel)
        assert c.fragment_number == nums[want], \
            f"GetMedia {sel}: first chunk is fragment {nums.index(c.fragment_number) if c.fragment_number in nums else c.fragment_number}, want {want}"
        check_getmedia_chunk(c, frags[want])


def test_ingest_get_media_live_tail(server, kvs):
    """GetMedia NOW: the newest chunk first, then chunks of fragments pushed afterwards arrive
    within a few seconds of their PERSISTED ack."""
    name = unique("ing-tail")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    # NOW on a stream without fragments waits for the first one (§8.3)
    empty_reader = kp.GetMediaReader(server, name, {"StartSelectorType": "NOW"})
    head, body, gen = mkvgen.stream(2, start_tc=1_750_000_000_000)
    pm = kp.put_media(server.endpoint, name, body, expect_persisted=2)
    first_numbers = [a.number for a in kp.events(pm.acks, "PERSISTED")]
    assert len(first_numbers) == 2, pm.describe()
    try:
        for n in first_numbers:
            c = empty_reader.next_chunk(5)
            assert c is not None and c.fragment_number == n, \
                f"GetMedia NOW started on an empty stream: want chunk {n}, got {c and c.fragment_number}"
    finally:
        empty_reader.close()

    r = kp.GetMediaReader(server, name, {"StartSelectorType": "NOW"})
    try:
        c = r.next_chunk(8)
        assert c is not None and c.fragment_number == first_numbers[-1], \
            f"NOW should start with the newest chunk {first_numbers[-1]}, got {c and c.fragment_number}"
        # push three more, live, in a new session
        more = [mkvgen.gop(1_750_000_002_000 + i * 1000) for i in range(3)]
        persisted_at = {}
        live = kp.PutMedia(server.endpoint, name,
                           on_ack=lambda a: a.event == "PERSISTED" and persisted_at.setdefault(a.number, a.at)).open()
        assert live.wait_status(10) == 200, live.describe()
        live.send(head)
        for g in more:
            live.send(g.bytes)
            time.sleep(0.3)
        live.send(mkvgen.end_of_fragment())
        assert live.wait_persisted(3, 10), live.describe()
        live.finish()
        live.wait_done(10)
        live.close()
        new_numbers = [a.number for a in kp.events(live.acks, "PERSISTED")]
        for n, g in zip(new_numbers, more):
            c = r.next_chunk(5)
            assert c is not None, f"live GetMedia: chunk for {n} did not arrive within 5 s"
            lag = time.time() - persisted_at[n]
            assert c.fragment_number == n, f"live chunk {c.fragment_number}, want {n}"
            assert lag < 5, f"live chunk arrived {lag:.1f}s after PERSISTED"
            assert sorted(c.digests()) == sorted(g.digests)
            assert c.cluster_timecodes[0] == g.timecode
    finally:
        r.close()


# -- kvs_style_h264.mkv: replay inside one body, and a second session --------------------------

def test_ingest_kvs_style_replay_and_second_session(server, kvs, tmp_path):
    kp.need("ffprobe")
    path = SAMPLES / "kvs_style_h264.mkv"
    name = unique("ing-kvs")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    docs = mkvgen.read_file(path)
    assert len(docs) == 2, "kvs_style_h264.mkv holds two MKV documents"
    first = mkvgen.expected_fragments(docs[0])
    replay = mkvgen.expected_fragments(docs[1])
    assert len(first) == 4 and len(replay) == 1 and replay[0][0] == first[-1][0]

    pm = kp.put_media(server.endpoint, name, path.read_bytes(), timecode_type="ABSOLUTE")
    assert pm.status == 200, pm.describe()
    tcs = [tc for tc, _ in first] + [replay[0][0]]
    real = [a for a in pm.acks if a.event != "IDLE"]
    assert [a.event for a in real] == ["BUFFERING", "RECEIVED", "PERSISTED"] * 5, \
        f"4 fragments + 1 replay, each BUFFERING/RECEIVED/PERSISTED: {real}"
    numbers = check_ack_groups(real[:12], tcs[:4], what="kvs_style")
    rep = real[12:]
    assert [a.timecode for a in rep] == [tcs[4]] * 3
    assert {a.number for a in rep} == {numbers[3]}, \
        f"the replayed GOP must be acked with the stored number {numbers[3]}: {rep}"

    frags = kp.list_all_fragments(server, name)
    assert [f["FragmentNumber"] for f in frags] == numbers, \
        f"stored {len(frags)} fragments, want the 4 distinct ones (replay not stored twice)"
    for f, (tc, _) in zip(frags, first):
        assert ms_of(f["ProducerTimestamp"]) == tc, "ABSOLUTE: ProducerTimestamp = cluster Timecode"
    chunks = kp.read_fragments(server, name, numbers)
    for c, (tc, frames) in zip(chunks, first):
        assert sorted(c.digests()) == sorted((f.track, f.digest) for f in frames)
    # producer fragment metadata (Tags before the third cluster) comes back with its chunk
    assert chunks[2].tags.get("CAMERA_EVENT") == "motion" and chunks[2].tags.get("ZONE") == "door", \
        f"fragment metadata of the third fragment not returned: {chunks[2].tags}"
    assert "CAMERA_EVENT" not in chunks[1].tags and "CAMERA_EVENT" not in chunks[3].tags
    assert not any(k.startswith("AWS_KINESISVIDEO_END") for c in chunks for k in c.tags), \
        "the END_OF_FRAGMENT marker is not fragment metadata"

    # a second session replays everything: all acked as duplicates, nothing new stored
    pm2 = kp.put_media(server.endpoint, name, path.read_bytes(), timecode_type="ABSOLUTE")
    real2 = [a for a in pm2.acks if a.event != "IDLE"]
    assert kp.events(real2, "ERROR") == [], pm2.describe()
    persisted2 = kp.events(real2, "PERSISTED")
    assert [a.number for a in persisted2] == numbers + [numbers[3]], \
        f"second session: PERSISTED acks {persisted2} should carry the stored numbers"
    assert [a.timecode for a in persisted2] == tcs
    assert [f["FragmentNumber"] for f in kp.list_all_fragments(server, name)] == numbers, \
        "the second session stored new fragments"


def test_ingest_c_style_signer_matches_botocore():
    """kvs_producer.sign_headers (the C producer's way) agrees with botocore's SigV4Auth on a
    request whose headers botocore also signs, so the PutMedia tests rest on a correct signer."""
    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest
    from unittest import mock

    date = "20261122T010203Z"
    hdrs = [("Host", "127.0.0.1:8080"), ("x-amzn-stream-name", "cam  1 "),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE")]
    ours = dict(kp.sign_headers("POST", "/putMedia", hdrs, access_key="AKID", secret_key="SECRET",
                                amz_date=date, query="b=2&a=1 2"))["Authorization"]
    req = AWSRequest(method="POST", url="http://127.0.0.1:8080/putMedia?b=2&a=1%202", data=b"",
                     headers={k: v for k, v in hdrs if k != "Host"})
    fixed = __import__("datetime").datetime(2026, 11, 22, 1, 2, 3)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: fixed):
        botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKID", "SECRET"),
                                "kinesisvideo", "us-east-1").add_auth(req)
    assert ours == req.headers["Authorization"]


def test_ingest_expect_100_continue(server, kvs):
    """curl under kvssink adds `Expect: 100-continue` (kvssink-behaviour.md §4, §7): the server
    must answer at once, with 100 Continue or with the final 200 (curl starts sending the body
    on either; with neither it waits ~1 s per connection), and then work as usual."""
    name = unique("ing-100")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    head, body, gens = mkvgen.stream(2, start_tc=1_745_000_000_000)
    t = time.monotonic()
    pm = kp.PutMedia(server.endpoint, name, expect_continue=True).open()
    while not (pm.got_continue.is_set() or pm.got_headers.is_set()) and time.monotonic() - t < 1:
        time.sleep(0.005)
    took = time.monotonic() - t
    assert took < 0.5, f"no 100 Continue nor final status within {took:.2f}s: {pm.describe()}"
    assert pm.wait_status(5) == 200, pm.describe()
    pm.send(body)
    assert pm.wait_persisted(2, 10), pm.describe()
    pm.finish()
    pm.wait_done(5)
    pm.close()
    print(f"100 Continue: {pm.got_continue.is_set()}, after {took * 1000:.0f} ms")


def test_ingest_no_acks_requested(server, kvs):
    """`x-amzn-fragment-acknowledgment-required: 0` (the C producer with fragment-acks=false,
    and the presigned URLs for ffmpeg/GStreamer): "no ACK events needed" (§7.1, inferred). The
    server writes nothing while the body is arriving (acks may follow once it ended), never
    ERROR, and stores everything."""
    name = unique("ing-noack")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    head, body, gens = mkvgen.stream(3, start_tc=1_740_000_000_000)
    pm = kp.PutMedia(server.endpoint, name, ack_required=False).open()
    pm.send(head)
    for g in gens:
        pm.send(g.bytes)
        time.sleep(0.3)  # room for acks to be (wrongly) streamed
    pm.send(mkvgen.end_of_fragment())
    time.sleep(0.3)
    finished_at = time.time()
    pm.finish()
    assert pm.wait_done(10), pm.describe()
    pm.close()
    assert pm.status == 200, pm.describe()
    early = [a for a in pm.acks if a.at < finished_at]
    assert early == [], f"acks written during an upload that asked for none: {early}"
    assert kp.events(pm.acks, "ERROR") == [], pm.describe()
    frags = kp.list_all_fragments(server, name)
    assert len(frags) == 3
    chunks = kp.read_fragments(server, name, [f["FragmentNumber"] for f in frags])
    assert [sorted(c.digests()) for c in chunks] == [sorted(g.digests) for g in gens]
    late = kp.events(pm.acks, "PERSISTED")
    if late:  # acks delivered after the body must still be right
        assert [a.number for a in late] == [f["FragmentNumber"] for f in frags]
