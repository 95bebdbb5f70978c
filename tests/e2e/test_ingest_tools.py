"""Live PutMedia from real tools that cannot sign: ffmpeg (`-method POST -chunked_post 1`) and
GStreamer (`curlhttpsink`), through a presigned URL (`openkvs presign put-media`, or botocore's
SigV4QueryAuth when the binary lacks it). Spec: kvs-api.md §7, §14.2;
dependencies-and-tools.md §3 (both tools close without reading the acks)."""

from __future__ import annotations

import subprocess
import time

import pytest

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen
from e2e_support import unique


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd[0]} did not finish within {timeout}s: {e.stderr!r}")


def _stored(server, name, *, want_min: int, wait: float = 5.0):
    """ListFragments until at least `want_min` fragments are listed (eventual consistency,
    §9: normally within 1 s) and the count is stable."""
    deadline = time.monotonic() + wait
    last = []
    while time.monotonic() < deadline:
        frags = kp.list_all_fragments(server, name)
        if len(frags) >= want_min and len(frags) == len(last):
            return frags
        last = frags
        time.sleep(0.5)
    return kp.list_all_fragments(server, name)


def test_ingest_ffmpeg_live_push(server, kvs, tmp_path):
    kp.need("ffmpeg", "ffprobe")
    name = unique("ing-ffmpeg")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    url, how = kp.presign_put_media(server, name, timecode_type="RELATIVE", expires=300)
    print(f"presigned with {how}: {url}")
    t0 = time.time()
    start = round(t0, 3)
    # ffmpeg cannot sign, but it can add headers: the producer start timestamp (unsigned; the
    # presigned URL signs only `host`) makes ProducerTimestamp = start + cluster Timecode
    p = _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
              "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
              "-f", "lavfi", "-i", "sine", "-t", "6",
              "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25",
              "-pix_fmt", "yuv420p", "-c:a", "aac",
              "-f", "matroska", "-live", "1", "-method", "POST", "-chunked_post", "1",
              "-content_type", "video/x-matroska",
              "-headers", f"x-amzn-producer-start-timestamp: {start:.3f}\r\n", url], timeout=40)
    t1 = time.time()
    assert p.returncode == 0, f"ffmpeg failed ({p.returncode}): {p.stderr[-3000:]}"

    frags = _stored(server, name, want_min=6)
    lengths = [f["FragmentLengthInMilliseconds"] for f in frags]
    assert 5 <= len(frags) <= 7, (
        f"{len(frags)} fragments stored for a 6 s ffmpeg push with 1 s GOPs (lengths {lengths}); "
        f"ffmpeg closes the connection right after its last cluster without reading the reply")
    assert all(800 <= n <= 1300 for n in lengths), f"fragment lengths {lengths}, want ~1 s each"
    for f in frags:
        assert t0 - 1 <= f["ServerTimestamp"].timestamp() <= t1 + 1
    prod = [f["ProducerTimestamp"].timestamp() for f in frags]
    assert abs(prod[0] - start) <= 0.1, \
        f"RELATIVE: first ProducerTimestamp {prod[0]:.3f}, want the start header {start:.3f} + ~0"
    assert all(0.8 <= b - a <= 1.3 for a, b in zip(prod, prod[1:])), \
        f"producer timestamps not 1 s apart: {prod}"

    body = kp.get_fragments_media(server, name, [f["FragmentNumber"] for f in frags])
    out = tmp_path / "ffmpeg_out.mkv"
    out.write_bytes(body)
    chunks = mkvgen.parse_documents(body)[0]
    video = sum(1 for c in chunks for fr in c.frames if c.tracks.get(fr.track, "").startswith("V_"))
    # ffmpeg closes the connection without reading the reply: not one frame may be lost
    assert video == 150, f"stored {video} video frames, ffmpeg sent 150 (6 s at 25 fps)"
    for c in chunks:
        first_video = next(fr for fr in c.frames if c.tracks[fr.track].startswith("V_"))
        assert first_video.key, f"fragment {c.fragment_number} does not start with a key frame"
    counts = kp.ffprobe_frame_counts(out)
    assert counts.get("video") == 150, f"ffprobe decoded {counts}"
    assert counts.get("audio", 0) >= 250, f"ffprobe decoded {counts} (6 s of AAC ≈ 258 frames)"


def test_ingest_gstreamer_curlhttpsink(server, kvs, tmp_path):
    kp.need("gst-launch-1.0", "gst-inspect-1.0", "ffprobe")
    for element in ("curlhttpsink", "x264enc", "matroskamux", "h264parse"):
        if subprocess.run(["gst-inspect-1.0", element], capture_output=True).returncode != 0:
            print(f"SKIP: GStreamer element {element} is missing")
            pytest.skip(f"GStreamer element {element} is missing (gstreamer1.0-plugins-*)")
    name = unique("ing-gst")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    url, how = kp.presign_put_media(server, name, timecode_type="RELATIVE", expires=300)
    print(f"presigned with {how}")
    t0 = time.time()
    p = _run(["gst-launch-1.0", "-q", "-e", "videotestsrc", "num-buffers=150", "!",
              "video/x-raw,width=320,height=240,framerate=25/1", "!",
              "x264enc", "speed-preset=veryfast", "tune=zerolatency", "key-int-max=25",
              "bitrate=300", "!", "h264parse", "!", "matroskamux", "streamable=true", "!",
              "curlhttpsink", f"location={url}", "use-content-length=false",
              "content-type=video/x-matroska"], timeout=60)
    assert p.returncode == 0, f"gst-launch failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}"

    t1 = time.time()
    frags = _stored(server, name, want_min=1)
    assert frags, "GStreamer's upload stored no fragment"
    # RELATIVE without x-amzn-producer-start-timestamp: dated from the start of the upload
    prod = [f["ProducerTimestamp"].timestamp() for f in frags]
    assert t0 - 2 <= prod[0] <= t1 and prod == sorted(prod), \
        f"producer timestamps {prod} not from the upload ({t0:.3f}..{t1:.3f})"
    numbers = [f["FragmentNumber"] for f in frags]
    chunks = kp.read_fragments(server, name, numbers)
    video = sum(len(c.frames) for c in chunks)
    assert video == 150, f"stored {video} frames of the 150 GStreamer sent"
    assert all(f["FragmentLengthInMilliseconds"] <= 1100 for f in frags), \
        "key-int-max=25 at 25 fps: no fragment longer than ~1 s"
    # every fragment, on its own, starts with a key frame that ffprobe sees as one
    for i, n in enumerate(numbers):
        one = tmp_path / f"gst_{i}.mkv"
        one.write_bytes(kp.get_fragments_media(server, name, [n]))
        fr = kp.ffprobe_json(one, "-select_streams", "v:0", "-show_entries",
                             "frame=key_frame,pict_type", "-read_intervals", "%+#1",
                             "-show_frames")["frames"]
        assert fr and fr[0]["key_frame"] == 1, \
            f"fragment {i} ({n}) first frame is not a key frame: {fr[:1]}"
    out = tmp_path / "gst_all.mkv"
    out.write_bytes(kp.get_fragments_media(server, name, numbers))
    assert kp.ffprobe_frame_counts(out).get("video") == 150


# Not covered, on purpose: a producer that *asks* for acks (acknowledgment-required: 1) and then
# closes without reading them. The server streams acks while the body arrives (full duplex, as
# kvssink needs); when the unread acks make the producer's close a TCP reset, the HTTP stack
# drops what it had not handed over yet. Producers that cannot read the reply send
# `x-amzn-fragment-acknowledgment-required: 0` (the presigned URLs do); the server then
# answers only after the body (README, "Push live video").
NO_READ_CASES = [("presigned-url", 0.0), ("presigned-url", 0.5)]


@pytest.mark.parametrize("how,pause", NO_READ_CASES, ids=[f"{h}-{p}s" for h, p in NO_READ_CASES])
def test_ingest_producer_that_never_reads_the_reply(server, kvs, how, pause):
    """What ffmpeg does (dependencies-and-tools.md §3): POST the chunked body, send the
    terminating chunk and close the socket at once, never reading the 200 or the acks. If the
    server wrote anything the producer did not read, the producer's kernel answers the close
    with a TCP reset; every byte the producer sent had already reached the server's socket,
    so all fragments must be stored.

    presigned-url: the URL `openkvs presign put-media` gives ffmpeg (pause = -re pacing, the
    last cluster then EOF); signed-acks-requested: a header-signed producer that asks for acks
    (x-amzn-fragment-acknowledgment-required: 1) but never reads them."""
    name = unique("ing-noread")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    data = (kp.SAMPLES / "ffmpeg_live_h264.mkv").read_bytes()
    cuts = mkvgen.fragment_offsets(mkvgen.parse_documents(data)[0][0])
    if how == "presigned-url":
        url, _ = kp.presign_put_media(server, name, timecode_type="RELATIVE")
        pm = kp.PutMedia(server.endpoint, presigned_url=url, read_reply=False).open()
    else:
        pm = kp.PutMedia(server.endpoint, name, timecode_type="RELATIVE", read_reply=False).open()
    pos = 0
    for i, c in enumerate(cuts[1:] + [len(data)]):
        if i:
            time.sleep(pause)  # like ffmpeg -re: one cluster per second, the last one then EOF
        assert pm.send(data[pos:c]), f"send failed: {pm.send_error!r}"
        pos = c
    assert pm.finish()
    pm.close()
    frags = _stored(server, name, want_min=len(cuts), wait=6)
    assert len(frags) == len(cuts), (
        f"the producer sent {len(cuts)} complete fragments and the terminating chunk, then "
        f"closed without reading the reply; {len(frags)} were stored")


def test_ingest_presigned_url_raw_client(server, kvs):
    """The presigned PutMedia URL with a plain chunked POST (no signing headers at all), sent
    the way ffmpeg does (body first, reply read at the end): data stored; acks, if the server
    sends any for this URL, are right; the query parameters are covered by the signature, so
    pointing the URL at another stream is refused (kvs-api.md §14.2)."""
    name, other = unique("ing-psu"), unique("ing-psu")
    for n in (name, other):
        kvs.create_stream(StreamName=n, DataRetentionInHours=24)
    url, how = kp.presign_put_media(server, name, timecode_type="ABSOLUTE", expires=300)
    head, body, gens = mkvgen.stream(2, start_tc=1_735_000_000_000)
    pm = kp.put_media(server.endpoint, None, body, presigned_url=url, max_wait=10)
    assert pm.status == 200, f"presigned ({how}) PutMedia refused: {pm.describe()}"
    assert kp.events(pm.acks, "ERROR") == [], pm.describe()
    pers = kp.events(pm.acks, "PERSISTED")
    assert pers == [] or [a.timecode for a in pers] == [g.timecode for g in gens], pm.describe()
    frags = kp.list_all_fragments(server, name)
    assert len(frags) == 2
    chunks = kp.read_fragments(server, name, [f["FragmentNumber"] for f in frags])
    assert [sorted(c.digests()) for c in chunks] == [sorted(g.digests) for g in gens]

    forged = url.replace(f"x-amzn-stream-name={name}", f"x-amzn-stream-name={other}")
    assert forged != url
    bad = kp.put_media(server.endpoint, None, body, presigned_url=forged, max_wait=10)
    assert bad.status == 403, f"a presigned URL edited to another stream was accepted: {bad.describe()}"
    assert kp.list_all_fragments(server, other) == []
