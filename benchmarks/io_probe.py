"""Run the celltable CLI in this process and, as it exits, record what this process (the main
process of a conversion, not its workers) read and wrote, and which object-store requests it sent.

    python benchmarks/io_probe.py OUT.json convert SRC DEST ...

``OUT.json`` gets ``/proc/self/io`` (``rchar``/``wchar``: bytes through read/write system calls,
page-cache hits included, sockets' recv/send not; ``read_bytes``/``write_bytes``: bytes the
storage layer fetched or will write for this process), the peak resident memory of this process
(``VmHWM``), and the object-store operations this process sent (botocore's operation names with
the bytes of ``GetObject`` bodies): a main process that downloads no plate sends no ``GetObject``
for a plate's file.
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


def _record(path: str) -> None:
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    Path(path).write_text(json.dumps({
        "io": {k: int(v) for k, v in io.items()},
        "peak_rss_bytes": hwm,
        "requests": dict(requests),
    }, indent=1))


def main() -> None:
    out = sys.argv[1]
    atexit.register(_record, out)
    _count_s3_requests()
    sys.argv = ["celltable", *sys.argv[2:]]
    from celltable.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
