"""Crash safety: real conversions killed with SIGKILL at several points, then resumed.

Each test runs a conversion in a child process that kills itself (SIGKILL: no clean-up runs) when
it reaches a given point: after a plate is staged, after some chunks are written, or as the
output is published. Nothing may appear at the destination; the same command with ``--resume``
must then give a table identical to an uninterrupted run, reusing the chunks already saved.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

KILLER = r"""
import os, signal, sys
import celltable

source, dest, stage, at, chunk_size, join, partition = sys.argv[1:8]

def progress(p):
    if p.stage == stage and p.done >= int(at):
        os.kill(os.getpid(), signal.SIGKILL)

if stage == "publish":  # killed as the finished output is moved into place
    from celltable.adapters import storage
    storage.LocalDestination.publish = lambda self: os.kill(os.getpid(), signal.SIGKILL)

options = celltable.ConversionOptions(resume=True, chunk_size=int(chunk_size), threads=1,
                                      join=join == "join", partition_by=partition or None)
celltable.convert(source, dest, options=options, progress=progress)
sys.exit("not killed")
"""


def _killed_run(tmp_path: Path, source: Path, dest: Path, stage: str, at: int, chunk_size: int,
                join: bool = True, partition: str = "") -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), str(source), str(dest), stage, str(at), str(chunk_size),
         "join" if join else "no-join", partition],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("celltable")
    return subprocess.run([str(exe), *args, "-v", "--log-format", "json"], capture_output=True,
                          text=True, timeout=300)


def _events(stderr: str, name: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            out.append(event)
    return out


def _tables(dest: Path) -> dict[str, object]:
    if dest.is_file():
        return {"": pq.read_table(dest)}
    return {p.relative_to(dest).as_posix(): pq.read_table(p) for p in sorted(dest.rglob("*.parquet"))}


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.glob(f".{dest.name}.celltable-*"))


def _reference(tmp_path: Path, source: Path, chunk_size: int, *extra: str) -> dict[str, object]:
    ref = tmp_path / "reference" / "out.parquet"
    done = _cli("convert", str(source), str(ref), "--chunk-size", str(chunk_size), *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    return _tables(ref)


CASES = {
    # (fixture, stage, at, chunk size, join, partition)
    "sqlite-during-read": ("two_nf1_plates", "staging", 1, 30, True, ""),
    "sqlite-during-write": ("two_nf1_plates", "joined", 12, 30, True, ""),
    "sqlite-during-publish": ("two_nf1_plates", "publish", 0, 30, True, ""),
    # ExampleHuman is one image per plate: one chunk per plate
    "csv-during-write": ("three_example_plates", "joined", 2, 60, True, ""),
    "csv-per-plate-files-during-write": ("three_example_plates", "joined", 2, 60, True, "plate"),
    "csv-no-join-during-write": ("three_example_plates", "Cells", 2, 60, False, ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_conversion_resumes_to_the_same_table(case, tmp_path, request):
    fixture, stage, at, chunk_size, join, partition = CASES[case]
    source = request.getfixturevalue(fixture)
    dest = tmp_path / "out" / ("out" if partition or not join else "out.parquet")
    extra = [] if join else ["--no-join"]
    if partition:
        extra += ["--partition-by", partition]

    _killed_run(tmp_path, source, dest, stage, at, chunk_size, join, partition)
    assert not dest.exists()  # nothing half-written where the output is expected
    resume_folder = dest.parent / f".{dest.name}.celltable-resume"
    saved = len(list(resume_folder.glob("*.json")))
    if stage in ("joined", "Cells"):
        assert saved >= at  # the chunks written before the kill were saved

    done = _cli("convert", str(source), str(dest), "--resume", "--chunk-size", str(chunk_size),
                *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    reused = sum(e["reused"] for e in _events(done.stderr, "resume_checked"))
    assert reused == saved
    assert _tables(dest) == _reference(tmp_path, source, chunk_size, *extra)
    assert _leftovers(dest) == []  # the killed run's staging and the saved chunks are gone


def test_a_changed_source_is_converted_again_not_reused(tmp_path, two_nf1_plates):
    dest = tmp_path / "out.parquet"
    _killed_run(tmp_path, two_nf1_plates, dest, "joined", 12, 30)
    plate = two_nf1_plates / "plate_2.sqlite"
    st = plate.stat()
    os.utime(plate, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as if rewritten
    done = _cli("convert", str(two_nf1_plates), str(dest), "--resume", "--chunk-size", "30")
    assert done.returncode == 0, done.stderr[-2000:]
    events = _events(done.stderr, "resume_checked")
    assert [e["reused"] for e in events] == [0]
    assert _tables(dest) == _reference(tmp_path, two_nf1_plates, 30)


def test_a_damaged_saved_chunk_is_converted_again(tmp_path, two_nf1_plates):
    dest = tmp_path / "out.parquet"
    _killed_run(tmp_path, two_nf1_plates, dest, "joined", 6, 30)
    folder = dest.parent / f".{dest.name}.celltable-resume"
    chunks = sorted(folder.glob("*.arrow"))
    assert len(chunks) >= 6
    data = bytearray(chunks[2].read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunks[2].write_bytes(bytes(data))
    done = _cli("convert", str(two_nf1_plates), str(dest), "--resume", "--chunk-size", "30")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum(e["reused"] for e in _events(done.stderr, "resume_checked")) == len(chunks) - 1
    assert _events(done.stderr, "saved_chunk_damaged")
    assert _tables(dest) == _reference(tmp_path, two_nf1_plates, 30)


def test_a_rerun_without_resume_starts_over_and_cleans_up(tmp_path, two_nf1_plates):
    dest = tmp_path / "out.parquet"
    _killed_run(tmp_path, two_nf1_plates, dest, "joined", 6, 30)
    assert len(_leftovers(dest)) == 2  # the killed run's staging folder and its saved chunks
    done = _cli("convert", str(two_nf1_plates), str(dest), "--chunk-size", "30")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _events(done.stderr, "resume_checked") == []
    assert _leftovers(dest) == []
    assert _tables(dest) == _reference(tmp_path, two_nf1_plates, 30)


FULL_DISK = r"""
import resource, signal, sys
from celltable.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["celltable", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("limit", [64 * 1024, 1024])
def test_a_full_disk_stops_with_a_clear_error_and_no_output(tmp_path, nf1_sqlite, limit):
    """No file may grow past ``limit`` bytes, as on a disk that is full."""
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    dest = tmp_path / "out" / "nf1.parquet"
    proc = subprocess.run(
        [sys.executable, str(script), str(limit), "convert", str(nf1_sqlite), str(dest), "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("celltable: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "the disk is full" in lines[0]
    assert not dest.exists() and _leftovers(dest) == []


def test_resume_over_an_existing_output_still_needs_overwrite(tmp_path, nf1_sqlite):
    dest = tmp_path / "nf1.parquet"
    assert _cli("convert", str(nf1_sqlite), str(dest)).returncode == 0
    again = _cli("convert", str(nf1_sqlite), str(dest), "--resume")
    assert again.returncode == 1 and "--overwrite" in again.stderr
    shutil.rmtree(tmp_path / "reference", ignore_errors=True)
