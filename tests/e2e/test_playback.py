"""Playback through the unmodified boto3 `kinesis-video-archived-media` client (endpoint_url =
GetDataEndpoint): GetClip (progressive MP4), HLS (FRAGMENTED_MP4 and MPEG_TS; ON_DEMAND,
LIVE_REPLAY, LIVE) and DASH sessions, checked with ffprobe/ffmpeg, plus the error cases.
Spec: kvs-api.md §10, §11. Browser players (hls.js, dash.js): test_playback_browser.py."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
import urllib.parse

import pytest
import requests
from botocore.exceptions import ClientError

import kvs_producer as kp
import mkvgen
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
from e2e_support import unique

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def push_sample(server, kvs, sample: str, *, retention: int = 24, fragments: int = 4) -> dict:
    """Creates a stream and pushes `samples/<sample>` (RELATIVE timecodes, producer start = now);
    returns {name, t0, t1, frags} with t0/t1 the wall clock around the push."""
    name = unique("pb")
    kvs.create_stream(StreamName=name, DataRetentionInHours=retention)
    t0 = _now()
    pm = kp.put_media(server.endpoint, name, (kp.SAMPLES / sample).read_bytes(),
                      timecode_type="RELATIVE", expect_persisted=fragments)
    t1 = _now()
    assert pm.status == 200, pm.describe()
    assert len(kp.events(pm.acks, "PERSISTED")) == fragments, pm.describe()
    frags = []
    for _ in range(20):
        frags = kp.list_all_fragments(server, name)
        if len(frags) >= fragments:
            break
        time.sleep(0.25)
    assert len(frags) == fragments, frags
    return {"name": name, "t0": t0, "t1": t1, "frags": frags}


def server_range(info: dict, pad: float = 1.0) -> dict:
    return {"StartTimestamp": info["t0"] - dt.timedelta(seconds=pad),
            "EndTimestamp": info["t1"] + dt.timedelta(seconds=pad)}


def ffmpeg_decode(src: str, timeout: float = 60) -> str:
    """`ffmpeg -v error -i SRC -f null -`: returns what it printed (empty = clean decode)."""
    try:
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", src, "-f", "null", "-"],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"ffmpeg did not finish decoding {src} within {timeout}s: {e.stderr!r}")
    assert p.returncode == 0, f"ffmpeg failed ({p.returncode}) on {src}: {p.stderr[-3000:]}"
    return (p.stdout + p.stderr).strip()


def ffprobe_url(url: str) -> dict:
    return kp.ffprobe_json(url, "-show_streams", "-show_format")


@pytest.fixture(scope="module")
def h264(server):
    kp.need("ffmpeg", "ffprobe")
    return push_sample(server, server.client(), "ffmpeg_h264_aac.mkv")


def am(server, stream, api):
    return kp.archived(server, stream, api)


def hls_url(server, stream, **kw) -> str:
    return am(server, stream, "GET_HLS_STREAMING_SESSION_URL").get_hls_streaming_session_url(
        StreamName=stream, **kw)["HLSStreamingSessionURL"]


def dash_url(server, stream, **kw) -> str:
    return am(server, stream, "GET_DASH_STREAMING_SESSION_URL").get_dash_streaming_session_url(
        StreamName=stream, **kw)["DASHStreamingSessionURL"]


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def media_playlist(master_url: str) -> tuple[str, str]:
    """(media playlist URL, text) of the first variant of a master playlist."""
    r = requests.get(master_url, timeout=10)
    assert r.status_code == 200, r.text
    lines = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
    assert lines, f"no variant in the master playlist:\n{r.text}"
    url = urllib.parse.urljoin(master_url, lines[0])
    m = requests.get(url, timeout=10)
    assert m.status_code == 200, m.text
    return url, m.text


# -- GetClip -----------------------------------------------------------------------------------

def test_get_clip_h264_aac(server, h264, tmp_path):
    name, frags = h264["name"], h264["frags"]
    # from the second fragment's start to the third's: fragments 2 and 3 (starts inclusive).
    # Producer timestamps: the burst push gives server timestamps only ms apart.
    start = frags[1]["ProducerTimestamp"]
    end = frags[2]["ProducerTimestamp"]
    r = am(server, name, "GET_CLIP").get_clip(
        StreamName=name,
        ClipFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                              "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}})
    assert r["ContentType"] == "video/mp4"
    out = tmp_path / "clip.mp4"
    out.write_bytes(r["Payload"].read())
    probe = kp.ffprobe_json(out, "-show_streams", "-show_format")
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"], probe["streams"]
    want = sum(f["FragmentLengthInMilliseconds"] for f in frags[1:3]) / 1000
    got = float(probe["format"]["duration"])
    assert abs(got - want) <= 1.0, f"clip lasts {got}s, fragments 2..3 last {want}s (GOP 1 s)"
    pk = [p for p in kp.ffprobe_packets(out) if p["stream_index"] == next(
        s["index"] for s in probe["streams"] if s["codec_type"] == "video")]
    assert pk and pk[0]["flags"].startswith("K"), f"first video packet {pk[:1]} is not a key frame"
    assert ffmpeg_decode(str(out)) == ""


def test_get_clip_whole_stream_and_empty_range(server, h264, tmp_path):
    name = h264["name"]
    client = am(server, name, "GET_CLIP")
    r = client.get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": server_range(h264)})
    out = tmp_path / "all.mp4"
    out.write_bytes(r["Payload"].read())
    dur = float(kp.ffprobe_json(out, "-show_format")["format"]["duration"])
    assert 3.0 <= dur <= 5.0, f"whole clip lasts {dur}s, the sample 4 s"
    assert ffmpeg_decode(str(out)) == ""
    with pytest.raises(ClientError) as e:
        client.get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": h264["t0"] - dt.timedelta(hours=2),
                               "EndTimestamp": h264["t0"] - dt.timedelta(hours=1)}})
    assert error_code(e.value) == "ResourceNotFoundException", e.value.response


def test_get_clip_configured_cap(new_server, tmp_path):
    """--max-clip-fragments / --max-clip-bytes truncate a clip the way KVS's 200-fragment /
    100 MB limits do; without them the same range gives the whole clip (tested above)."""
    for flags, want_frags in ((["--max-clip-fragments", "2"], 2), (["--max-clip-bytes", "1"], 1)):
        srv = new_server(extra_args=flags).start()
        kvs = srv.client()
        info = push_sample(srv, kvs, "ffmpeg_h264_aac.mkv")
        r = am(srv, info["name"], "GET_CLIP").get_clip(
            StreamName=info["name"], ClipFragmentSelector={
                "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": server_range(info)})
        out = tmp_path / f"capped{want_frags}.mp4"
        out.write_bytes(r["Payload"].read())
        dur = float(kp.ffprobe_json(out, "-show_format")["format"]["duration"])
        want = sum(f["FragmentLengthInMilliseconds"] for f in info["frags"][:want_frags]) / 1000
        assert abs(dur - want) <= 0.5, f"{flags}: clip lasts {dur}s, {want_frags} fragments {want}s"
        assert ffmpeg_decode(str(out)) == ""
        srv.stop()


@pytest.mark.parametrize("track, want", [
    (mkvgen.Track(1, "V_VP8", "video"), "UnsupportedStreamMediaTypeException"),
    (mkvgen.Track(1, mkvgen.H264, "video", codec_private=b"\x01\x64"),
     "InvalidCodecPrivateDataException"),
])
def test_codec_errors(server, kvs, track, want):
    """Media that cannot become MP4 is stored (ingest does not judge codecs) but GetClip,
    HLS and DASH refuse it with the KVS exception for the reason."""
    name = unique("pb-codec")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    t0 = _now()
    head = mkvgen.document_header([track])
    frags = [mkvgen.gop(1_700_000_000_000 + i * 1000) for i in range(3)]
    body = head + b"".join(f.bytes for f in frags) + mkvgen.end_of_fragment()
    pm = kp.put_media(server.endpoint, name, body, expect_persisted=3)
    assert pm.status == 200 and len(kp.events(pm.acks, "PERSISTED")) == 3, pm.describe()
    rng = {"StartTimestamp": t0 - dt.timedelta(seconds=1), "EndTimestamp": _now()}
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng}
    calls = {
        "GetClip": lambda: am(server, name, "GET_CLIP").get_clip(
            StreamName=name, ClipFragmentSelector=sel),
        "HLS": lambda: hls_url(server, name, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel),
        "DASH": lambda: dash_url(server, name, PlaybackMode="ON_DEMAND", DASHFragmentSelector=sel),
    }
    for what, call in calls.items():
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == want, (what, e.value.response)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, what
    assert requests.get(server.endpoint + "/health", timeout=5).status_code == 200


def test_get_clip_hevc(server, kvs, tmp_path):
    kp.need("ffmpeg", "ffprobe")
    info = push_sample(server, kvs, "ffmpeg_h265.mkv", fragments=3)  # x265 GOPs: 2 s, 1 s, 1 s
    r = am(server, info["name"], "GET_CLIP").get_clip(
        StreamName=info["name"], ClipFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": server_range(info)})
    out = tmp_path / "hevc.mp4"
    out.write_bytes(r["Payload"].read())
    streams = kp.ffprobe_streams(out)
    assert [s["codec_name"] for s in streams] == ["hevc"], streams
    assert ffmpeg_decode(str(out)) == ""


def test_no_data_retention(server, kvs):
    name = unique("pb-noret")
    kvs.create_stream(StreamName=name, DataRetentionInHours=0)
    rng = {"StartTimestamp": _now() - dt.timedelta(minutes=5), "EndTimestamp": _now()}
    with pytest.raises(ClientError) as e:
        am(server, name, "GET_CLIP").get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng})
    assert error_code(e.value) == "NoDataRetentionException", e.value.response
    with pytest.raises(ClientError) as e:
        hls_url(server, name, PlaybackMode="ON_DEMAND", HLSFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng})
    assert error_code(e.value) == "NoDataRetentionException", e.value.response


# -- HLS / DASH ON_DEMAND and LIVE_REPLAY, decoded by ffmpeg -------------------------------------

@pytest.mark.parametrize("container", ["FRAGMENTED_MP4", "MPEG_TS"])
def test_hls_on_demand_ffmpeg(server, h264, container):
    url = hls_url(server, h264["name"], PlaybackMode="ON_DEMAND", ContainerFormat=container,
                  HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                       "TimestampRange": server_range(h264)})
    assert "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" in url
    _, text = media_playlist(url)
    assert text.rstrip().endswith("#EXT-X-ENDLIST"), text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text, text
    seg = "getMP4MediaFragment.mp4" if container == "FRAGMENTED_MP4" else "getTSFragment.ts"
    assert text.count(seg) == len(h264["frags"]), text
    probe = ffprobe_url(url)
    assert {"h264", "aac"} <= {s["codec_name"] for s in probe["streams"]}, probe["streams"]
    assert ffmpeg_decode(url) == ""


def test_dash_on_demand_ffmpeg(server, h264):
    url = dash_url(server, h264["name"], PlaybackMode="ON_DEMAND",
                   DASHFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                         "TimestampRange": server_range(h264)})
    assert "/dash/v1/getDASHManifest.mpd?SessionToken=" in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and 'type="static"' in r.text, r.text
    probe = ffprobe_url(url)
    assert {"h264", "aac"} <= {s["codec_name"] for s in probe["streams"]}, probe["streams"]
    assert ffmpeg_decode(url) == ""


def test_hls_live_replay_with_end(server, h264):
    url = hls_url(server, h264["name"], PlaybackMode="LIVE_REPLAY",
                  HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                       "TimestampRange": server_range(h264)})
    # real-time pacing: after the range's length the whole range is listed and ENDLIST is set
    deadline = time.monotonic() + 12
    while True:
        _, text = media_playlist(url)
        if text.rstrip().endswith("#EXT-X-ENDLIST") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert text.rstrip().endswith("#EXT-X-ENDLIST"), text
    assert ffmpeg_decode(url) == ""


# -- LIVE while a producer pushes --------------------------------------------------------------

class LivePush:
    """ffmpeg pushing a live test pattern (1 s GOPs) to a presigned PutMedia URL."""

    def __init__(self, server, name: str, seconds: int):
        url, _ = kp.presign_put_media(server, name, timecode_type="RELATIVE", expires=300)
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
             "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
             "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-f", "matroska", "-live", "1", "-method", "POST",
             "-chunked_post", "1", "-content_type", "video/x-matroska", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(self, timeout: float) -> str:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"live ffmpeg push did not end in time: {err[-2000:]}")
        assert self.proc.returncode == 0, f"live ffmpeg push failed: {err[-2000:]}"
        return err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _fragment_numbers(text: str) -> list[str]:
    return re.findall(r"FragmentNumber=(\d+)", text)


def _media_sequence(text: str) -> int:
    m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    assert m, text
    return int(m.group(1))


def test_hls_live_while_pushing(server, kvs, tmp_path):
    kp.need("ffmpeg", "ffprobe")
    name = unique("pb-live")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    push = LivePush(server, name, 12)
    try:
        # LIVE needs a fragment from the last 30 s: wait for the first ones
        deadline = time.monotonic() + 10
        while not kp.list_all_fragments(server, name) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        url = hls_url(server, name, PlaybackMode="LIVE", MaxMediaPlaylistFragmentResults=3)
        murl, first = media_playlist(url)
        assert "#EXT-X-ENDLIST" not in first, first
        time.sleep(4)
        second = requests.get(murl, timeout=10).text
        assert "#EXT-X-ENDLIST" not in second, second
        n1, n2 = _fragment_numbers(first), _fragment_numbers(second)
        assert n1 and n2, (first, second)
        assert _media_sequence(second) > _media_sequence(first), (first, second)
        assert int(n2[-1]) > int(n1[-1]), f"newest fragment did not advance:\n{first}\n{second}"
        newest = kp.list_all_fragments(server, name)[-1]["FragmentNumber"]
        assert n2[-1] in {newest} | {f["FragmentNumber"] for f in
                                     kp.list_all_fragments(server, name)[-2:]}, (newest, second)
        # a live player (ffmpeg) can read it: a few seconds of the live edge
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "2",
                            "-f", "null", "-"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stderr.strip() == "", p.stderr[-3000:]
        push.wait(timeout=25)
    finally:
        push.stop()
    frags = kp.list_all_fragments(server, name)
    assert len(frags) >= 10, f"{len(frags)} fragments for a 12 s push"
    # the whole push as one clip
    rng = {"StartTimestamp": frags[0]["ServerTimestamp"] - dt.timedelta(seconds=0.5),
           "EndTimestamp": frags[-1]["ServerTimestamp"]}
    r = am(server, name, "GET_CLIP").get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng})
    out = tmp_path / "live.mp4"
    out.write_bytes(r["Payload"].read())
    probe = kp.ffprobe_json(out, "-show_streams", "-show_format")
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    want = sum(f["FragmentLengthInMilliseconds"] for f in frags) / 1000
    got = float(probe["format"]["duration"])
    assert abs(got - want) <= 1.0, (
        f"clip of all {len(frags)} fragments lasts {got}s, fragments sum to {want}s: "
        f"{[(f['FragmentNumber'][-6:], f['ServerTimestamp'].isoformat(), f['FragmentLengthInMilliseconds']) for f in frags]}")
    assert ffmpeg_decode(str(out)) == ""
    # DASH ON_DEMAND over data ingested in real time
    durl = dash_url(server, name, PlaybackMode="ON_DEMAND", DASHFragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng})
    assert ffmpeg_decode(durl) == ""
    dprobe = ffprobe_url(durl)
    assert {"h264", "aac"} <= {s["codec_name"] for s in dprobe["streams"]}, dprobe["streams"]


def test_live_without_recent_fragments(server, h264, kvs):
    """LIVE needs a fragment ingested in the last 30 s (§11.1); a stream that never had one
    must fail the same way."""
    name = unique("pb-empty")
    kvs.create_stream(StreamName=name, DataRetentionInHours=24)
    with pytest.raises(ClientError) as e:
        hls_url(server, name, PlaybackMode="LIVE")
    assert error_code(e.value) == "ResourceNotFoundException", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        dash_url(server, name, PlaybackMode="LIVE")
    assert error_code(e.value) == "ResourceNotFoundException", e.value.response


# -- session tokens ----------------------------------------------------------------------------

def _with_token(url: str, token: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode({"SessionToken": token})))


def _token(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["SessionToken"][0]


def test_session_token_tampered_or_foreign(server, h264, new_server):
    url = hls_url(server, h264["name"], PlaybackMode="ON_DEMAND", Expires=300,
                  HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                       "TimestampRange": server_range(h264)})
    assert requests.get(url, timeout=10).status_code == 200
    tok = _token(url)
    mid = len(tok) // 2
    flipped = tok[:mid] + ("A" if tok[mid] != "A" else "B") + tok[mid + 1:]
    for bad in (flipped, tok[:-3], tok + "x", ""):
        r = requests.get(_with_token(url, bad), timeout=10)
        assert r.status_code == 403, f"token {bad!r}: HTTP {r.status_code} {r.text[:300]}"
    # an HLS token is not a DASH token
    dash = urllib.parse.urljoin(url, "../../dash/v1/getDASHManifest.mpd")
    r = requests.get(_with_token(dash, tok), timeout=10)
    assert r.status_code == 403, f"HLS token on DASH: HTTP {r.status_code} {r.text[:300]}"

    # a token of another server (own key, same credentials and stream name) is refused here
    other = new_server()
    other.start()
    okv = other.client()
    okv.create_stream(StreamName=h264["name"], DataRetentionInHours=24)
    t0 = _now()
    pm = kp.put_media(other.endpoint, h264["name"],
                      (kp.SAMPLES / "ffmpeg_h264_aac.mkv").read_bytes(),
                      timecode_type="RELATIVE", expect_persisted=4)
    assert pm.status == 200, pm.describe()
    foreign = hls_url(other, h264["name"], PlaybackMode="ON_DEMAND", HLSFragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": t0 - dt.timedelta(seconds=1), "EndTimestamp": _now()}})
    assert requests.get(foreign, timeout=10).status_code == 200
    r = requests.get(_with_token(url, _token(foreign)), timeout=10)
    assert r.status_code == 403, f"foreign token: HTTP {r.status_code} {r.text[:300]}"


def test_live_stale_stream(server, h264):
    last = h264["frags"][-1]
    end = last["ServerTimestamp"] + dt.timedelta(milliseconds=last["FragmentLengthInMilliseconds"])
    wait = 31.5 - (_now() - end).total_seconds()
    if wait > 0:  # this test runs last in the module, so the wait is mostly spent already
        time.sleep(wait)
    with pytest.raises(ClientError) as e:
        hls_url(server, h264["name"], PlaybackMode="LIVE")
    assert error_code(e.value) == "ResourceNotFoundException", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
