"""A tiny EBML / Matroska writer and reader for the ingest tests.

Writer: just enough Matroska to build what a KVS producer sends (kvs-api.md §7.3,
kvssink-behaviour.md §5) and the broken variants the bad-input tests need: an EBML header, an
unknown-size Segment, Info, Tracks with N tracks (H.264 CodecID + a dummy avcC), unknown- or
known-size Clusters with a Timecode and SimpleBlocks (key flag), segment-level Tags.

Reader: a forgiving EBML walker that splits a byte string into MKV documents ("chunks" of
GetMedia / GetMediaForFragmentList, kvs-api.md §8.1) and returns, per document, its tracks,
tags and frames (track, absolute timecode, key flag, payload). Unknown-size masters end where
an element that cannot be their child begins (Matroska rule), which is how a live stream of
documents is read. BlockGroups and Xiph/EBML/fixed lacing are not decoded (frames of laced
blocks are reported as one frame with `laced=True`).

Nothing here imports from the server; the payload bytes are arbitrary (KVS does not validate
codec data at ingest, §7.3), so generated streams are not decodable video.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field
from typing import Iterable, Optional

# -- element ids -------------------------------------------------------------------------------
EBML = 0x1A45DFA3
EBML_VERSION, EBML_READ_VERSION, EBML_MAX_ID, EBML_MAX_SIZE = 0x4286, 0x42F7, 0x42F2, 0x42F3
DOC_TYPE, DOC_TYPE_VERSION, DOC_TYPE_READ_VERSION = 0x4282, 0x4287, 0x4285
SEGMENT = 0x18538067
SEEK_HEAD, VOID, CRC32 = 0x114D9B74, 0xEC, 0xBF
INFO, TIMECODE_SCALE, SEGMENT_UID, TITLE, MUXING_APP, WRITING_APP = (
    0x1549A966, 0x2AD7B1, 0x73A4, 0x7BA9, 0x4D80, 0x5741)
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83
CODEC_ID, CODEC_PRIVATE, TRACK_NAME = 0x86, 0x63A2, 0x536E
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xE0, 0xB0, 0xBA
AUDIO, SAMPLING_FREQUENCY, CHANNELS = 0xE1, 0xB5, 0x9F
CLUSTER, TIMECODE, POSITION, SIMPLE_BLOCK = 0x1F43B675, 0xE7, 0xA7, 0xA3
BLOCK_GROUP, BLOCK = 0xA0, 0xA1
CUES, CHAPTERS, ATTACHMENTS = 0x1C53BB6B, 0x1043A770, 0x1941A469
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = (
    0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487)

LEVEL1 = {SEEK_HEAD, INFO, TRACKS, CLUSTER, CUES, TAGS, CHAPTERS, ATTACHMENTS}
MASTERS = {EBML, SEGMENT, SEEK_HEAD, INFO, TRACKS, TRACK_ENTRY, VIDEO, AUDIO, CLUSTER,
           BLOCK_GROUP, TAGS, TAG, TARGETS, SIMPLE_TAG, CUES}

UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"

H264 = "V_MPEG4/ISO/AVC"
AAC = "A_AAC"
TRACK_VIDEO, TRACK_AUDIO = 1, 2

# A syntactically valid avcC (Baseline 3.0, one 4-byte SPS, one 4-byte PPS); never decoded.
DUMMY_AVCC = bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E,
                    1, 0, 4, 0x68, 0xCE, 0x3C, 0x80])
DUMMY_AAC_ASC = bytes([0x11, 0x90])


# -- writer ------------------------------------------------------------------------------------

def id_bytes(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def size_vint(n: int, width: Optional[int] = None) -> bytes:
    """EBML size: minimal width unless `width` (1..8) is given."""
    if width is None:
        width = 1
        while n >= (1 << (7 * width)) - 1:
            width += 1
    assert n < (1 << (7 * width)) - 1, "size does not fit"
    return ((1 << (7 * width)) | n).to_bytes(width, "big")


def element(eid: int, payload: bytes, *, size_width: Optional[int] = None) -> bytes:
    return id_bytes(eid) + size_vint(len(payload), size_width) + payload


def unknown(eid: int) -> bytes:
    """The opening of an unknown-size master."""
    return id_bytes(eid) + UNKNOWN_SIZE


def uint_el(eid: int, v: int, width: Optional[int] = None) -> bytes:
    if width is None:
        width = max(1, (v.bit_length() + 7) // 8)
    return element(eid, v.to_bytes(width, "big"))


def str_el(eid: int, s: str) -> bytes:
    return element(eid, s.encode())


def float_el(eid: int, v: float) -> bytes:
    return element(eid, struct.pack(">d", v))


@dataclass
class Track:
    number: int
    codec_id: str = H264
    kind: str = "video"  # or "audio"
    codec_private: Optional[bytes] = None
    name: Optional[str] = None
    uid: Optional[int] = None

    def entry(self) -> bytes:
        body = uint_el(TRACK_NUMBER, self.number)
        body += uint_el(TRACK_UID, self.uid or self.number, 8)
        body += uint_el(TRACK_TYPE, 1 if self.kind == "video" else 2)
        body += str_el(CODEC_ID, self.codec_id)
        if self.name:
            body += str_el(TRACK_NAME, self.name)
        cpd = self.codec_private
        if cpd is None:
            cpd = DUMMY_AVCC if self.kind == "video" else DUMMY_AAC_ASC
        body += element(CODEC_PRIVATE, cpd)
        if self.kind == "video":
            body += element(VIDEO, uint_el(PIXEL_WIDTH, 320) + uint_el(PIXEL_HEIGHT, 240))
        else:
            body += element(AUDIO, float_el(SAMPLING_FREQUENCY, 48000.0) + uint_el(CHANNELS, 2))
        return element(TRACK_ENTRY, body)


def video_track(number: int = 1) -> Track:
    return Track(number, H264, "video", name="kinesis_video")


def audio_track(number: int = 2) -> Track:
    return Track(number, AAC, "audio", name="audio")


def ebml_header(doc_type_version: int = 2) -> bytes:
    body = (uint_el(EBML_VERSION, 1) + uint_el(EBML_READ_VERSION, 1) + uint_el(EBML_MAX_ID, 4)
            + uint_el(EBML_MAX_SIZE, 8) + str_el(DOC_TYPE, "matroska")
            + uint_el(DOC_TYPE_VERSION, doc_type_version) + uint_el(DOC_TYPE_READ_VERSION, 2))
    return element(EBML, body)


def info(timecode_scale_ns: int = 1_000_000, segment_uid: Optional[bytes] = None) -> bytes:
    uid = segment_uid or random.Random().randbytes(16)
    body = (element(SEGMENT_UID, uid) + uint_el(TIMECODE_SCALE, timecode_scale_ns)
            + str_el(TITLE, "openkvs e2e") + str_el(MUXING_APP, "mkvgen")
            + str_el(WRITING_APP, "mkvgen"))
    return element(INFO, body)


def tracks(ts: Iterable[Track]) -> bytes:
    return element(TRACKS, b"".join(t.entry() for t in ts))


def document_header(ts: Iterable[Track], timecode_scale_ns: int = 1_000_000) -> bytes:
    """EBML header + Segment (unknown size) + Info + Tracks: what starts every PutMedia body."""
    return ebml_header() + unknown(SEGMENT) + info(timecode_scale_ns) + tracks(ts)


def simple_block(track: int, rel_tc: int, key: bool, payload: bytes) -> bytes:
    assert -32768 <= rel_tc <= 32767, f"block timecode {rel_tc} does not fit int16"
    head = size_vint(track) + struct.pack(">hB", rel_tc, 0x80 if key else 0)
    return element(SIMPLE_BLOCK, head + payload)


@dataclass
class Frame:
    track: int
    tc: int  # absolute, in TimecodeScale ticks
    key: bool
    payload: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()[:16]


def cluster(timecode: int, frames: Iterable[Frame], *, unknown_size: bool = True,
            position: bool = True) -> bytes:
    body = uint_el(TIMECODE, timecode, 8)
    if position:
        body += uint_el(POSITION, 0)
    for f in frames:
        body += simple_block(f.track, f.tc - timecode, f.key, f.payload)
    if unknown_size:
        return unknown(CLUSTER) + body
    return element(CLUSTER, body)


def tags(pairs: dict[str, str]) -> bytes:
    """A segment-level Tags element with one Tag of SimpleTags (fragment metadata)."""
    simple = b"".join(element(SIMPLE_TAG, str_el(TAG_NAME, k) + str_el(TAG_STRING, v))
                      for k, v in pairs.items())
    return element(TAGS, element(TAG, element(TARGETS, b"") + simple))


def end_of_fragment() -> bytes:
    return tags({"AWS_KINESISVIDEO_END_OF_FRAGMENT": ""})


# -- generated streams -------------------------------------------------------------------------

@dataclass
class GenFragment:
    """One generated GOP = one cluster = one expected fragment."""
    timecode: int
    frames: list[Frame]
    bytes: bytes = b""

    @property
    def video_digests(self) -> list[str]:
        return [f.digest for f in self.frames]

    @property
    def digests(self) -> list[tuple[int, str]]:
        return [(f.track, f.digest) for f in self.frames]

    @property
    def media_bytes(self) -> int:
        return sum(len(f.payload) for f in self.frames)


def gop(timecode: int, *, duration_ms: int = 1000, fps: int = 25, frame_bytes: int = 600,
        audio: bool = False, track: int = TRACK_VIDEO, seed: Optional[int] = None,
        filler: Optional[bytes] = None) -> GenFragment:
    """A GOP starting at `timecode` (ms, TimecodeScale 1 ms): a key frame then P-frames every
    1000/fps ms up to `duration_ms`, optionally AAC-like audio frames every ~21 ms interleaved.
    Payloads are unique random bytes (or `filler` repeated, for huge fragments)."""
    rnd = random.Random(seed if seed is not None else (timecode * 7919 + track))
    frames: list[Frame] = []
    step = 1000 / fps
    n = max(1, int(round(duration_ms / step)))
    for i in range(n):
        tc = timecode + int(round(i * step))
        if filler is not None:
            payload = struct.pack(">QI", timecode, i) + filler
        else:
            payload = struct.pack(">QI", timecode, i) + rnd.randbytes(max(0, frame_bytes - 12))
        frames.append(Frame(track, tc, i == 0, payload))
    if audio:
        t = 0
        while t < duration_ms:
            frames.append(Frame(TRACK_AUDIO, timecode + t, False,
                                struct.pack(">QI", timecode, 100000 + t) + rnd.randbytes(120)))
            t += 21
        # interleave by time; at equal times video (track 1) first, so the cluster starts
        # with its key frame
        frames.sort(key=lambda f: (f.tc, f.track))
    frag = GenFragment(timecode, frames)
    frag.bytes = cluster(timecode, frames)
    return frag


def stream(n: int, *, start_tc: int = 1_700_000_000_000, duration_ms: int = 1000,
           audio: bool = False, fps: int = 25, frame_bytes: int = 600,
           end_marker: bool = True) -> tuple[bytes, bytes, list[GenFragment]]:
    """A KVS-style body: (header bytes, header + clusters [+ END_OF_FRAGMENT], fragments)."""
    ts = [video_track()] + ([audio_track()] if audio else [])
    head = document_header(ts)
    frags = [gop(start_tc + i * duration_ms, duration_ms=duration_ms, audio=audio, fps=fps,
                 frame_bytes=frame_bytes) for i in range(n)]
    body = head + b"".join(f.bytes for f in frags) + (end_of_fragment() if end_marker else b"")
    return head, body, frags


# -- reader ------------------------------------------------------------------------------------

class EbmlError(ValueError):
    pass


class _Incomplete(EbmlError):
    """The buffer ends inside an element."""


def read_vint(buf: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, new position, is_unknown_size)."""
    if pos >= len(buf):
        raise _Incomplete(f"vint past end at {pos}")
    first = buf[pos]
    if first == 0:
        raise EbmlError(f"invalid vint byte 0 at {pos}")
    width = 1
    while not first & (0x80 >> (width - 1)):
        width += 1
    if pos + width > len(buf):
        raise _Incomplete(f"vint past end at {pos}")
    raw = int.from_bytes(buf[pos:pos + width], "big")
    if keep_marker:
        return raw, pos + width, False
    value = raw & ((1 << (7 * width)) - 1)
    return value, pos + width, value == (1 << (7 * width)) - 1


@dataclass
class Chunk:
    """One MKV document (one GetMedia chunk)."""
    tracks: dict[int, str] = field(default_factory=dict)  # number -> codec id
    timecode_scale: int = 1_000_000
    tags_before: dict[str, str] = field(default_factory=dict)  # tags before the first cluster
    tags_after: dict[str, str] = field(default_factory=dict)  # tags after a cluster
    cluster_timecodes: list[int] = field(default_factory=list)
    cluster_known_size: list[bool] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    clusters: list[list[Frame]] = field(default_factory=list)  # frames per cluster
    cluster_offsets: list[int] = field(default_factory=list)  # byte offset of each Cluster
    segment_unknown_size: Optional[bool] = None
    doc_type_version: Optional[int] = None
    size: int = 0

    @property
    def tags(self) -> dict[str, str]:
        return {**self.tags_before, **self.tags_after}

    @property
    def fragment_number(self) -> Optional[str]:
        return self.tags.get("AWS_KINESISVIDEO_FRAGMENT_NUMBER")

    def digests(self) -> list[tuple[int, str]]:
        return [(f.track, f.digest) for f in self.frames]


def _uint(b: bytes) -> int:
    return int.from_bytes(b, "big") if b else 0


def _parse_simple_tags(buf: bytes, start: int, end: int, out: dict[str, str]) -> None:
    pos = start
    while pos < end:
        eid, pos, _ = read_vint(buf, pos, keep_marker=True)
        size, pos, _ = read_vint(buf, pos, keep_marker=False)
        stop = pos + size
        if eid in (TAG, SIMPLE_TAG):
            if eid == SIMPLE_TAG:
                name, value = None, ""
                p = pos
                while p < stop:
                    cid, p, _ = read_vint(buf, p, keep_marker=True)
                    csize, p, _ = read_vint(buf, p, keep_marker=False)
                    if cid == TAG_NAME:
                        name = buf[p:p + csize].decode(errors="replace")
                    elif cid == TAG_STRING:
                        value = buf[p:p + csize].decode(errors="replace")
                    p += csize
                if name is not None:
                    out[name] = value
            else:
                _parse_simple_tags(buf, pos, stop, out)
        pos = stop


def _parse_tracks(buf: bytes, start: int, end: int, chunk: Chunk) -> None:
    pos = start
    while pos < end:
        eid, pos, _ = read_vint(buf, pos, keep_marker=True)
        size, pos, _ = read_vint(buf, pos, keep_marker=False)
        if eid == TRACK_ENTRY:
            number, codec, p = None, "", pos
            while p < pos + size:
                cid, p, _ = read_vint(buf, p, keep_marker=True)
                csize, p, _ = read_vint(buf, p, keep_marker=False)
                if cid == TRACK_NUMBER:
                    number = _uint(buf[p:p + csize])
                elif cid == CODEC_ID:
                    codec = buf[p:p + csize].rstrip(b"\0").decode()
                p += csize
            if number is not None:
                chunk.tracks[number] = codec
        pos += size


def _parse_block(data: bytes, cluster_tc: int, key_from_flags: bool) -> Frame:
    track, p, _ = read_vint(data, 0, keep_marker=False)
    rel, flags = struct.unpack(">hB", data[p:p + 3])
    payload = data[p + 3:]
    f = Frame(track, cluster_tc + rel, bool(flags & 0x80) if key_from_flags else False, payload)
    if flags & 0x06:
        f.laced = True  # type: ignore[attr-defined]
    return f


def parse_documents(buf: bytes, *, final: bool = True) -> tuple[list[Chunk], int]:
    """Split `buf` into MKV documents. Returns (complete documents, bytes consumed).

    `final=False` reads a live stream incrementally: an unknown-size document counts as
    complete only once its post-cluster Tags (GetMedia) or the next EBML header arrived, and an
    incomplete trailing document is left unconsumed. With `final=True` the end of `buf` ends
    the last document and anything malformed raises EbmlError."""
    docs: list[Chunk] = []
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        try:
            doc, pos = _parse_document(buf, pos, final)
        except _Incomplete:
            if not final:
                return docs, start
            raise
        doc.size = pos - start
        docs.append(doc)
    return docs, pos


def _parse_document(buf: bytes, pos: int, final: bool) -> tuple[Chunk, int]:
    n = len(buf)
    chunk = Chunk()
    eid, p, _ = read_vint(buf, pos, keep_marker=True)
    if eid != EBML:
        raise EbmlError(f"expected an EBML header at {pos}, found id {eid:#x}")
    size, p, _ = read_vint(buf, p, keep_marker=False)
    if p + size > n:
        raise _Incomplete("EBML header past end")
    q = p
    while q < p + size:
        cid, q, _ = read_vint(buf, q, keep_marker=True)
        csize, q, _ = read_vint(buf, q, keep_marker=False)
        if cid == DOC_TYPE_VERSION:
            chunk.doc_type_version = _uint(buf[q:q + csize])
        q += csize
    pos = p + size
    eid, pos, _ = read_vint(buf, pos, keep_marker=True)
    if eid != SEGMENT:
        raise EbmlError(f"expected a Segment, found id {eid:#x}")
    seg_size, pos, seg_unknown = read_vint(buf, pos, keep_marker=False)
    chunk.segment_unknown_size = seg_unknown
    seg_end = n if seg_unknown else pos + seg_size
    if not seg_unknown and seg_end > n:
        raise _Incomplete("Segment past end")
    seen_cluster = False
    complete = False
    while pos < seg_end:
        if buf[pos:pos + 4] == id_bytes(EBML):
            complete = True
            break  # the next document starts: this unknown-size Segment ends here
        eid, body, _ = read_vint(buf, pos, keep_marker=True)
        size, body, unk = read_vint(buf, body, keep_marker=False)
        if eid == CLUSTER:
            seen_cluster = True
            chunk.cluster_offsets.append(pos)
            if unk:
                end = _cluster_end_unknown(buf, body)
            else:
                end = body + size
                if end > n:
                    raise _Incomplete("Cluster past end")
            chunk.cluster_known_size.append(not unk)
            _parse_cluster(buf, body, end, chunk)
            pos = end
            continue
        if unk:
            raise EbmlError(f"unknown-size element {eid:#x} at segment level")
        end = body + size
        if end > n:
            raise _Incomplete(f"element {eid:#x} past end")
        if eid == INFO:
            q = body
            while q < end:
                cid, q, _ = read_vint(buf, q, keep_marker=True)
                csize, q, _ = read_vint(buf, q, keep_marker=False)
                if cid == TIMECODE_SCALE:
                    chunk.timecode_scale = _uint(buf[q:q + csize])
                q += csize
        elif eid == TRACKS:
            _parse_tracks(buf, body, end, chunk)
        elif eid == TAGS:
            _parse_simple_tags(buf, body, end, chunk.tags_after if seen_cluster else chunk.tags_before)
        pos = end
    if pos >= n and seg_unknown and not complete and not final:
        # A live stream: the document is complete once the post-cluster Tags arrived
        # (GetMedia); otherwise more may follow.
        if not chunk.tags_after:
            raise _Incomplete("document may continue")
    return chunk, pos


def _cluster_end_unknown(buf: bytes, pos: int) -> int:
    n = len(buf)
    while pos < n:
        if buf[pos:pos + 4] in (id_bytes(CLUSTER), id_bytes(EBML), id_bytes(TAGS),
                                id_bytes(CUES), id_bytes(INFO), id_bytes(TRACKS)):
            return pos
        eid, p, _ = read_vint(buf, pos, keep_marker=True)
        size, p, _ = read_vint(buf, p, keep_marker=False)
        if p + size > n:
            raise _Incomplete("cluster child past end")
        pos = p + size
    return pos


def _parse_cluster(buf: bytes, pos: int, end: int, chunk: Chunk) -> None:
    tc = 0
    first = len(chunk.frames)
    while pos < end:
        eid, p, _ = read_vint(buf, pos, keep_marker=True)
        size, p, _ = read_vint(buf, p, keep_marker=False)
        if p + size > end:
            raise _Incomplete("block past cluster end")
        if eid == TIMECODE:
            tc = _uint(buf[p:p + size])
            chunk.cluster_timecodes.append(tc)
        elif eid == SIMPLE_BLOCK:
            chunk.frames.append(_parse_block(buf[p:p + size], tc, True))
        elif eid == BLOCK_GROUP:
            q, ref = p, False
            blk = None
            while q < p + size:
                cid, q, _ = read_vint(buf, q, keep_marker=True)
                csize, q, _ = read_vint(buf, q, keep_marker=False)
                if cid == BLOCK:
                    blk = buf[q:q + csize]
                elif cid == 0xFB:  # ReferenceBlock
                    ref = True
                q += csize
            if blk is not None:
                f = _parse_block(blk, tc, False)
                f.key = not ref
                chunk.frames.append(f)
        pos = p + size
    chunk.clusters.append(chunk.frames[first:])


def fragment_offsets(doc: Chunk) -> list[int]:
    """Byte offsets (in the parsed buffer) of the clusters that open a fragment."""
    video = {n for n, c in doc.tracks.items() if c.startswith("V_")}
    out = []
    for off, frames in zip(doc.cluster_offsets, doc.clusters):
        first_video = next((f for f in frames if f.track in video), None)
        if first_video is not None and first_video.key:
            out.append(off)
    return out


def expected_fragments(doc: Chunk) -> list[tuple[int, list[Frame]]]:
    """How openkvs-ingest cuts a producer document into fragments (crates/ingest/DESIGN.md
    rules 1-2): a cluster opens a fragment iff its first video frame is a key frame; other
    clusters extend the open one. Returns [(opening cluster Timecode, frames)]."""
    video = {n for n, c in doc.tracks.items() if c.startswith("V_")}
    out: list[tuple[int, list[Frame]]] = []
    for tc, frames in zip(doc.cluster_timecodes, doc.clusters):
        first_video = next((f for f in frames if f.track in video), None)
        if first_video is not None and first_video.key:
            out.append((tc, list(frames)))
        elif out:
            out[-1][1].extend(frames)
    return out


def read_file(path) -> list[Chunk]:
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_documents(data)[0]
