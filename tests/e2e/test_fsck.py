"""`openkvs fsck --data-dir DIR [--repair]` on a stopped server's directory (issue 8): reports
orphans and damage with a non-zero exit, repairs with --repair, refuses a directory in use."""

from __future__ import annotations

import json
import subprocess

import kvs_producer as kp
from kvs_producer import close_clients  # noqa: F401  (autouse: closes leftover connections)
import mkvgen


def fsck(srv, *args: str) -> tuple[int, dict, str]:
    p = subprocess.run([str(srv.binary), "fsck", "--data-dir", str(srv.data_dir), *args],
                       capture_output=True, text=True, timeout=120)
    report = json.loads(p.stdout) if "--json" in args and p.stdout.strip() else {}
    return p.returncode, report, p.stdout + p.stderr


def test_fsck_reports_and_repairs(new_server, tmp_path):
    srv = new_server().start()
    name = "fsck-stream"
    srv.client().create_stream(StreamName=name, DataRetentionInHours=24)
    head, body, gens = mkvgen.stream(6, frame_bytes=2000)
    pm = kp.put_media(srv.endpoint, name, body, expect_persisted=6)
    persisted = kp.events(pm.acks, "PERSISTED")
    assert len(persisted) == 6, pm.describe()

    # fsck refuses a directory the server holds (it is an offline tool)
    code, _, out = fsck(srv, "--quiet")
    assert code == 2 and "in use" in out.lower(), out
    srv.stop()

    code, report, out = fsck(srv, "--json", "--quiet")
    assert code == 0 and report["clean"] and report["check"]["fragments"] == 6, out

    media = srv.data_dir / "media"
    (stream_dir,) = [d for d in media.iterdir() if d.name.startswith(name + ".")]
    (seg,) = sorted(stream_dir.glob("*.seg"))
    # damage: the last fragment loses its final bytes; a directory of no stream; a stray file
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 100)
    orphan_dir = media / "gone-stream.1700000000000"
    orphan_dir.mkdir()
    (orphan_dir / "0000000000000001.seg").write_bytes(b"x" * 1000)
    stray = stream_dir / "notes.txt"
    stray.write_text("not openkvs's")

    code, report, out = fsck(srv, "--json", "--quiet")
    assert code == 1 and not report["clean"], out
    check = report["check"]
    assert [b["problem"] for b in check["bad_fragments"]] == [
        f"segment file {seg} is {size - 100} bytes, the fragment ends at {size}"], out
    assert check["orphan_dirs"] == [str(orphan_dir)], out
    assert check["unknown_entries"] == [str(stray)], out
    # the human form says the same and tells what to do
    code, _, out = fsck(srv, "--quiet")
    assert code == 1 and "--repair" in out and "damaged fragment" in out, out

    code, report, out = fsck(srv, "--json", "--quiet", "--repair")
    assert code == 0 and report["after_repair"]["clean"], out
    assert not orphan_dir.exists() and stray.exists(), "repair removes orphans, never strays"
    code, report, out = fsck(srv, "--json", "--quiet")
    assert code == 0 and report["clean"] and report["check"]["fragments"] == 5, out

    # the five whole fragments are still there and intact; the damaged one is gone
    srv.start()
    listed = [f["FragmentNumber"] for f in kp.list_all_fragments(srv, name)]
    assert listed == [a.number for a in persisted[:5]]
    chunks = kp.read_fragments(srv, name, listed)
    assert [sorted(c.digests()) for c in chunks] == [sorted(g.digests) for g in gens[:5]]


def test_fsck_refuses_a_non_data_dir(new_server, tmp_path):
    srv = new_server(data_dir=tmp_path / "nothing-here")
    code, _, out = fsck(srv, "--quiet")
    assert code == 2 and "not an openkvs data directory" in out, out
    assert not (tmp_path / "nothing-here").exists(), "fsck must not create a data directory"
