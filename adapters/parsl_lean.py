"""Runs one of Parsl's own scripts (its interchange, its worker pool) without the optional
libraries Parsl imports as it starts whenever they are installed: boto3 (for its AWS provider)
and SQLAlchemy (for its monitoring database), which the ``s3`` and ``iceberg`` extras install.
A local executor's processes never use them; each costs every Parsl process about 0.35 s of CPU
and 25 MB (measured), and a local run starts five or more such processes.

    python parsl_lean.py [--forkserver] SCRIPT ARGS...

Run by path, not imported through ``celltable`` (whose package imports the API). The script's
code runs in this module's namespace, so the worker pool's processes, which Python's ``spawn``
starts by running the main module again (as ``__mp_main__``), run this module too: each imports
Parsl without those libraries, then makes them importable again, so a task that needs boto3 (a
cloud plate's download) imports it as usual. The main module is the script (``__main__``): it
never needs them. The script's path travels to those processes in ``CELLTABLE_PARSL_SCRIPT``.

``--forkserver`` (the worker pool's): the processes the script starts with Parsl's spawn context
(the pool's workers and its multiprocessing manager) are forked from one server process
instead, which imported Parsl once. With spawn each started a fresh interpreter that imported
Parsl again, one after another: about 0.5 s of CPU each, and the manager's start (about 0.5 s)
came before any worker's. Forkserver is one of Python's own start methods (the default from
Python 3.14 on Linux); the server holds no threads when it forks, so nothing is forked
half-done. Libraries the tasks need (DuckDB, Arrow) are not imported there: a task imports them
in its worker as before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OPTIONAL = ("boto3", "sqlalchemy")


def _run(script: str, name: str, forkserver: bool = False) -> None:
    """Run ``script``'s code here, under ``name``, with :data:`OPTIONAL` unimportable."""
    blocked = [m for m in OPTIONAL if m not in sys.modules]
    sys.modules.update(dict.fromkeys(blocked))  # None: ``import`` raises ImportError
    try:
        if forkserver:
            _fork_from_server()
        code = compile(Path(script).read_text(encoding="utf-8"), script, "exec", dont_inherit=True)
        namespace = globals()
        namespace["__name__"] = name
        exec(code, namespace)
    finally:
        for m in blocked:
            if sys.modules.get(m, ...) is None:
                del sys.modules[m]


def _fork_from_server() -> None:
    """Parsl's spawn context, as the script will import it, made a forkserver context whose
    server imports this module (so the script's code) once. Left as it is where the system has
    no forkserver, or Parsl no such name (a later Parsl): then its processes spawn as before
    (and the server, if started, idles until the pool ends)."""
    import multiprocessing
    import multiprocessing.forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    context = multiprocessing.get_context("forkserver")
    # The server imports this module by its file's name, not ``__main__``: Python before 3.13
    # never hands the main module's path to the server, nor its ``sys.path``, so this folder
    # goes on the server's ``PYTHONPATH`` while it starts. Started first, it imports Parsl while
    # this process does the same (two cores), rather than when the script first needs it.
    context.set_forkserver_preload([Path(__file__).stem])
    before = os.environ.get("PYTHONPATH")
    os.environ[PYTHONPATH_VARIABLE] = before or ""  # put back in the server (its workers inherit)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *filter(None, [before])])
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        del os.environ[PYTHONPATH_VARIABLE]
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    try:
        import parsl.multiprocessing
    except ImportError:  # pragma: no cover - a later Parsl
        return
    if hasattr(parsl.multiprocessing, "SpawnContext"):
        parsl.multiprocessing.SpawnContext = context  # type: ignore[assignment]


def _preload() -> None:
    """In the fork server: the environment and path its processes would have had (not this
    folder on ``PYTHONPATH``, not the working folder first on ``sys.path``), then the script's
    imports."""
    before = os.environ.pop(PYTHONPATH_VARIABLE, "")
    if before:
        os.environ["PYTHONPATH"] = before
    else:
        os.environ.pop("PYTHONPATH", None)
    sys.path[:] = [p for p in sys.path if p not in ("", str(Path(__file__).parent))]
    _run(os.environ[SCRIPT_VARIABLE], "__parsl_lean_preload__")


# The processes the script starts inherit the environment; Python runs this module again in
# them with its own path as ``sys.argv[0]``, so the script's path travels here.
SCRIPT_VARIABLE = "CELLTABLE_PARSL_SCRIPT"
PYTHONPATH_VARIABLE = "CELLTABLE_PARSL_PYTHONPATH"
""":func:`_fork_from_server`'s ``PYTHONPATH`` before it put this folder on it for the server."""

if __name__ == "__main__":
    fork = sys.argv[1] == "--forkserver"
    if fork:
        sys.argv.pop(1)
    os.environ[SCRIPT_VARIABLE] = sys.argv[0] = sys.argv.pop(1)
    _run(os.environ[SCRIPT_VARIABLE], "__main__", fork)
elif __name__ == "__mp_main__" and SCRIPT_VARIABLE in os.environ:
    _run(os.environ[SCRIPT_VARIABLE], "__mp_main__")  # the script's definitions, not its main
elif __name__ == Path(__file__).stem and SCRIPT_VARIABLE in os.environ:
    # the forkserver's preload: the script's imports, once, for every process forked from it
    # (each still runs the script's definitions as ``__mp_main__``, in milliseconds)
    _preload()
