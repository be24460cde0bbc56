"""Peak resident memory of this process and of its worker processes, for the run report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from celltable.domain.report import PeakMemory


def peak_memory() -> PeakMemory | None:
    """Peak resident memory of this process, and of its largest child process (Parsl's worker
    processes): finished ones from ``getrusage``, running ones from ``/proc`` on Linux; None
    where the platform has no ``getrusage``."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    plate = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return PeakMemory(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * plate,
                      max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * plate,
                          running_children_peak()))


def running_children_peak(proc: Path = Path("/proc"), pid: int | None = None) -> int:
    """The largest peak resident memory (``VmHWM``) of the running descendants of ``pid``
    (default: this process), in bytes: HTEX workers are still running when the report is
    made. 0 without ``/proc``."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):  # ended meanwhile, or not Linux's layout
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    peak, todo = 0, list(children.get(os.getpid() if pid is None else pid, ()))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, ()))
        try:
            status = (proc / str(child) / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak
