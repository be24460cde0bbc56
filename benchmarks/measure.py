"""Run one command in a fresh process and measure it.

Records wall time, peak resident memory of the whole process tree, exit code, and, when the
command wrote a Parquet output, its size on disk and its row/column counts.

Peak memory is measured two ways:

* ``peak_rss_tree_bytes``: every ``poll_interval`` seconds (50 ms by default) the RSS of the
  process, all its live descendants and anything else in its session (the command gets a new
  session, so worker pools reparented away from the tree still count) is summed (psutil); the
  largest sum wins. Short spikes between two polls can be missed, and shared pages are counted
  once per process that maps them.
* ``max_rss_single_bytes``: the kernel's exact high-water mark (``ru_maxrss`` from ``wait4``)
  of the single largest process in the tree (the child and the descendants it waited for).
  It never misses a spike, but it does not add processes together.

``peak_rss_bytes`` is the larger of the two, which is the number the harness reports.

``pss_at_peak_tree_bytes``: at the poll of ``peak_rss_tree_bytes``, the same processes' PSS
summed (proportional set size: a page shared by k processes counts 1/k in each), so pages
shared between processes (libraries, forked workers) count once: the tree's real footprint at
that moment. Read only when the RSS sum reaches a new peak 1% above the last peak it was read
at (it is slower to read), so it may come from a poll just before the RSS peak.

Only the standard library and psutil are needed to measure; pyarrow is needed to count rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["Measurement", "output_stats", "run_measured"]


@dataclass
class Measurement:
    """What one measured run produced."""

    tool: str
    command: list[str]
    returncode: int | None
    wall_s: float
    peak_rss_bytes: int
    peak_rss_tree_bytes: int
    max_rss_single_bytes: int
    peak_processes: int
    samples: int
    pss_at_peak_tree_bytes: int = 0
    timed_out: bool = False
    output_path: str | None = None
    output_bytes: int | None = None
    rows: int | None = None
    columns: int | None = None
    row_groups: int | None = None
    error: str | None = None
    log_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None

    @classmethod
    def failed(cls, tool: str, command: list[str], error: str,
               log_path: str | None = None) -> Measurement:
        """A run that could not start: nothing measured, only why."""
        return cls(tool=tool, command=list(command), returncode=None, wall_s=0.0,
                   peak_rss_bytes=0, peak_rss_tree_bytes=0, max_rss_single_bytes=0,
                   peak_processes=0, samples=0, error=error, log_path=log_path)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _tree_rss(root: int) -> tuple[int, int, list[psutil.Process]]:
    """Sum the RSS of process ``root``, its live descendants and the rest of its session.

    The command runs in a session of its own (its session id is ``root``), so processes that
    were reparented away from the tree (e.g. worker pools started through a shell that
    exited) are still counted. Returns (bytes, number of processes, the processes).
    """
    procs: dict[int, psutil.Process] = {}
    children: dict[int, list[int]] = {}
    members: set[int] = {root}
    for p in psutil.process_iter(["ppid"]):
        procs[p.pid] = p
        children.setdefault(p.info["ppid"] or 0, []).append(p.pid)
        try:
            if os.getsid(p.pid) == root:
                members.add(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    stack = [root]
    seen = {root}
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in seen:
                seen.add(c)
                members.add(c)
                stack.append(c)
    total = 0
    counted = []
    for pid in members:
        p = procs.get(pid)
        if p is None:
            continue
        try:
            total += p.memory_info().rss
            counted.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return total, len(counted), counted


def _tree_pss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += getattr(p.memory_full_info(), "pss", 0)
    return total


def _dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def output_stats(path: str | os.PathLike[str]) -> dict[str, int | None]:
    """Size on disk and Parquet row/column/row-group counts of a file or a directory of files."""
    p = Path(path)
    stats: dict[str, int | None] = {
        "output_bytes": None,
        "rows": None,
        "columns": None,
        "row_groups": None,
    }
    if not p.exists():
        return stats
    stats["output_bytes"] = _dir_size(p)
    import pyarrow.parquet as pq

    files = [p] if p.is_file() else sorted(q for q in p.rglob("*.parquet") if q.is_file())
    if not files:
        return stats
    rows = 0
    row_groups = 0
    names: list[str] | None = None
    for f in files:
        md = pq.ParquetFile(f).metadata
        rows += md.num_rows
        row_groups += md.num_row_groups
        if names is None:
            names = list(md.schema.to_arrow_schema().names)
    stats["rows"] = rows
    stats["columns"] = len(names or [])
    stats["row_groups"] = row_groups
    return stats


def _kill_session(sid: int, exclude: int) -> list[int]:
    """SIGKILL processes left in session ``sid`` (a session this module started)."""
    killed = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == exclude:
            continue
        try:
            if os.getsid(p.pid) == sid:
                p.kill()
                killed.append(p.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return killed


def run_measured(
    tool: str,
    command: list[str],
    *,
    output: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    poll_interval: float = 0.05,
    log_path: str | os.PathLike[str] | None = None,
) -> Measurement:
    """Run ``command`` in a new process (its own session) and measure it.

    stdout and stderr go to ``log_path`` (or are discarded). On timeout the whole session is
    killed. Processes the command leaves behind in its session are killed after it exits, so
    they cannot disturb the next measurement.
    """
    log_fh = Path(log_path).open("wb") if log_path else None
    sink = log_fh if log_fh is not None else subprocess.DEVNULL
    error: str | None = None
    timed_out = False
    peak_tree = 0
    peak_procs = 0
    samples = 0
    pss_at_peak = pss_read_at = 0
    max_single = 0
    returncode: int | None = None
    t0 = time.perf_counter()
    t_end: list[float] = []
    try:
        popen = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        if log_fh is not None:
            log_fh.close()
        return Measurement.failed(tool, list(command), f"could not start: {exc}",
                                  str(log_path) if log_path else None)

    pid = popen.pid
    status: dict[str, Any] = {}

    def _waiter() -> None:
        # wait4 gives this child's own rusage (ru_maxrss: its largest process), unlike
        # RUSAGE_CHILDREN, which accumulates over every child this harness ever had.
        _, st, ru = os.wait4(pid, 0)
        t_end.append(time.perf_counter())
        status["status"] = st
        status["rusage"] = ru

    waiter = threading.Thread(target=_waiter, daemon=True)
    waiter.start()
    deadline = None if timeout is None else t0 + timeout
    while waiter.is_alive():
        rss, n, procs = _tree_rss(pid)
        samples += 1
        if rss > peak_tree:
            if rss > pss_read_at * 1.01:  # PSS is slow to read: again once the peak grew 1%
                pss_at_peak, pss_read_at = _tree_pss(procs), rss
            peak_tree = rss
        peak_procs = max(peak_procs, n)
        if deadline is not None and time.perf_counter() > deadline:
            timed_out = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            waiter.join()
            break
        waiter.join(poll_interval if deadline is None
                    else max(0.0, min(poll_interval, deadline - time.perf_counter())))
    waiter.join()
    wall = (t_end[0] if t_end else time.perf_counter()) - t0
    if "status" in status:
        returncode = os.waitstatus_to_exitcode(status["status"])
        # ru_maxrss is in KiB on Linux.
        max_single = int(status["rusage"].ru_maxrss) * 1024
    popen.returncode = returncode  # already reaped by wait4; stop Popen from waiting again
    # Leftovers in the command's session (e.g. orphaned worker pools) are ours to end.
    _kill_session(pid, exclude=os.getpid())
    if log_fh is not None:
        log_fh.close()
    if timed_out:
        error = f"timed out after {timeout} s"
    elif returncode not in (0, None):
        error = f"exit code {returncode}"

    m = Measurement(
        tool=tool,
        command=[str(c) for c in command],
        returncode=returncode,
        wall_s=wall,
        peak_rss_bytes=max(peak_tree, max_single),
        peak_rss_tree_bytes=peak_tree,
        max_rss_single_bytes=max_single,
        peak_processes=peak_procs,
        samples=samples,
        pss_at_peak_tree_bytes=pss_at_peak,
        timed_out=timed_out,
        output_path=str(output) if output is not None else None,
        error=error,
        log_path=str(log_path) if log_path else None,
    )
    if output is not None and m.error is None:
        try:
            for k, v in output_stats(output).items():
                setattr(m, k, v)
            if m.rows is None:
                m.error = "no Parquet output was written"
        except Exception as exc:
            m.error = f"could not read output: {exc!r}"
    return m


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(description="Measure one command: time, peak RSS, output.")
    ap.add_argument("--output", help="Parquet file or directory the command writes")
    ap.add_argument("--timeout", type=float)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command given")
    res = run_measured("cmd", cmd, output=a.output, timeout=a.timeout)
    json.dump(res.to_dict(), sys.stdout, indent=2)
    print()
