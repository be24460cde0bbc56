from __future__ import annotations

import sys

import pytest

from celltable.adapters.peak_memory import peak_memory, running_children_peak


def _process(proc, pid: int, parent: int, peak_kib: int | None) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "stat").write_text(f"{pid} (a (tricky) name) S {parent} 1 1 0\n")
    if peak_kib is not None:
        (proc / str(pid) / "status").write_text(f"Name:\tx\nVmHWM:\t{peak_kib} kB\nVmRSS:\t1 kB\n")


def test_the_largest_peak_among_running_descendants_is_found(tmp_path):
    _process(tmp_path, 10, 1, 100)  # this process
    _process(tmp_path, 11, 10, 2048)  # a worker pool
    _process(tmp_path, 12, 11, 4096)  # its worker
    _process(tmp_path, 13, 10, None)  # ended meanwhile: no status left
    _process(tmp_path, 20, 1, 999_999)  # someone else's
    assert running_children_peak(tmp_path, pid=10) == 4096 * 1024
    assert running_children_peak(tmp_path, pid=12) == 0


def test_without_proc_running_children_count_nothing(tmp_path):
    assert running_children_peak(tmp_path / "absent", pid=1) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="no getrusage on Windows")
def test_this_process_peak_is_measured():
    peak = peak_memory()
    assert peak is not None and peak.process > 10 * 2**20
