"""Runs one of Parsl's own scripts (its interchange, its worker pool) without the optional
libraries Parsl imports as it starts whenever they are installed: boto3 (for its AWS provider)
and SQLAlchemy (for its monitoring database), which the ``s3`` and ``iceberg`` extras install.
A local executor's processes never use them; each costs every Parsl process about 0.35 s of CPU
and 25 MB (measured), and a local run starts five or more such processes.

    python parsl_lean.py SCRIPT ARGS...

Run by path, not imported through ``celltable`` (whose package imports the API). The script's
code runs in this module's namespace, so the worker pool's processes, which Python's ``spawn``
starts by running the main module again (as ``__mp_main__``), run this module too: each imports
Parsl without those libraries, then makes them importable again, so a task that needs boto3 (a
cloud plate's download) imports it as usual. The main module is the script (``__main__``): it
never needs them. The script's path travels to those processes in ``CELLTABLE_PARSL_SCRIPT``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OPTIONAL = ("boto3", "sqlalchemy")


def _run(script: str, name: str) -> None:
    """Run ``script``'s code here, under ``name``, with :data:`OPTIONAL` unimportable."""
    blocked = [m for m in OPTIONAL if m not in sys.modules]
    sys.modules.update(dict.fromkeys(blocked))  # None: ``import`` raises ImportError
    try:
        code = compile(Path(script).read_text(encoding="utf-8"), script, "exec", dont_inherit=True)
        namespace = globals()
        namespace["__name__"] = name
        exec(code, namespace)
    finally:
        for m in blocked:
            if sys.modules.get(m, ...) is None:
                del sys.modules[m]


# The processes the script starts inherit the environment; Python runs this module again in
# them with its own path as ``sys.argv[0]``, so the script's path travels here.
SCRIPT_VARIABLE = "CELLTABLE_PARSL_SCRIPT"

if __name__ == "__main__":
    os.environ[SCRIPT_VARIABLE] = sys.argv[0] = sys.argv.pop(1)
    _run(os.environ[SCRIPT_VARIABLE], "__main__")
elif __name__ == "__mp_main__" and SCRIPT_VARIABLE in os.environ:
    _run(os.environ[SCRIPT_VARIABLE], "__mp_main__")  # the script's definitions, not its main
