"""Run the celltable CLI in this process and, as it exits, record what this process (the main
process of a conversion, not its workers) read and wrote, and which object-store requests it sent.

    python benchmarks/io_probe.py OUT.json convert SRC DEST ...

``OUT.json`` gets ``/proc/self/io`` (``rchar``/``wchar``: bytes through read/write system calls,
page-cache hits included, sockets' recv/send not; ``read_bytes``/``write_bytes``: bytes the
storage layer fetched or will write for this process), the peak resident memory of this process
(``VmHWM``), and the object-store operations this process sent (botocore's operation names with
the bytes of ``GetObject`` bodies): a main process that downloads no plate sends no ``GetObject``
for a plate's file.

It also records the CPU time of the whole process tree (``cpu_tree_s``: user plus system seconds
of this process and of every descendant, Parsl's interchange and worker pool included): this
process adopts the orphaned descendants (a Linux child subreaper) and reaps them before it
exits. On a machine shared with other work, a run's share of the cores is set by the other
work (the kernel shares CPU between sessions), so its CPU time says more than its wall time.
"""

from __future__ import annotations

import atexit
import json
import sys
from collections import Counter
from pathlib import Path

requests: Counter[str] = Counter()


def _count_s3_requests() -> None:
    try:
        from botocore.client import BaseClient
    except ImportError:  # no cloud SDK installed: nothing to count
        return
    original = BaseClient._make_api_call

    def counted(self, operation_name, api_params):  # type: ignore[no-untyped-def]
        key = api_params.get("Key", "")
        requests[f"{operation_name} {key}".strip()] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted


def _adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the tree's CPU time is this process's
        pass


def _reap(timeout: float = 20.0) -> None:
    """Wait for every descendant to end (Parsl stops its processes as the run closes)."""
    import os
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def _record(path: str) -> None:
    import resource
    import time

    # read first: the descendants reaped below would add their I/O to this process's
    io_text = Path("/proc/self/io").read_text()
    started = time.perf_counter()
    _reap()
    reap_s = time.perf_counter() - started
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    io = dict(line.split(": ") for line in io_text.splitlines())
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    Path(path).write_text(json.dumps({
        "io": {k: int(v) for k, v in io.items()},
        "peak_rss_bytes": hwm,
        "cpu_tree_s": round(me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime, 2),
        "cpu_main_s": round(me.ru_utime + me.ru_stime, 2),
        "requests": dict(requests),
        # how long this probe waited, after the command had finished, for Parsl's processes
        # to end (the command's own process would have exited already)
        "reap_s": round(reap_s, 3),
    }, indent=1))


def main() -> None:
    out = sys.argv[1]
    atexit.register(_record, out)
    _adopt_orphans()
    if any(a.startswith("s3://") for a in sys.argv):  # botocore's import is not the command's
        _count_s3_requests()
    sys.argv = ["celltable", *sys.argv[2:]]
    from celltable.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
