"""CytoTable, the incumbent, set up and run offline for the benchmark.

Two roles in one file:

* **Set-up** (run with any Python >= 3.10, standard library only)::

      python benchmarks/cytotable_runner.py setup [--venv benchmarks/.venvs/cytotable]

  creates a separate virtual environment with ``cytotable==1.2.6`` and makes it work without
  internet access (see "Offline" below). ``run.py`` calls :func:`ensure_venv` itself, so this
  step is only needed to prepare the environment ahead of time.

* **Runner** (executed *inside* that environment by the harness)::

      benchmarks/.venvs/cytotable/bin/python benchmarks/cytotable_runner.py run \
          --source SRC --dest OUT.parquet --preset cellprofiler_sqlite [--chunk-size N]

  calls ``cytotable.convert(...)`` once and prints a JSON line with the in-process time.

Offline
-------
Every CytoTable conversion opens DuckDB connections through ``cytotable.utils._duckdb_reader``,
which runs ``INSTALL sqlite_scanner; LOAD sqlite_scanner; INSTALL httpfs;``. ``INSTALL`` is a
no-op when the extension file is already in DuckDB's extension directory, and downloads it
otherwise (so, with no internet, every conversion fails with an IOException, CSV included).
The directory is ``$HOME/.duckdb/extensions/v<duckdb version>/<platform>/`` and DuckDB reads
``HOME`` from the environment. So the set-up

1. pins ``duckdb`` to a version for which PyPI has the extension wheels
   ``duckdb-extension-sqlite-scanner`` and ``duckdb-extension-httpfs`` (unpinned, CytoTable 1.2.6
   pulls in a DuckDB newer than any of those wheels) and installs those two wheels;
2. copies the two ``.duckdb_extension`` files into a private home inside the environment
   (``<venv>/home/.duckdb/extensions/v<ver>/<platform>/``);
3. and the harness runs CytoTable with ``HOME=<venv>/home``. Nothing outside the venv changes,
   and CytoTable's own code is used unmodified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".venvs" / "cytotable"
CYTOTABLE_VERSION = "1.2.6"
# Same DuckDB as celltable pins, so both tools run on one engine version; it is also the newest
# version with extension wheels on PyPI.
DEFAULT_DUCKDB_VERSION = "1.5.5"
EXTENSIONS = ("sqlite_scanner", "httpfs")
MARKER = "celltable-bench-setup.json"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", *args],
        check=False,
        capture_output=True,
        text=True,
    )


def _probe(venv: Path) -> dict[str, str]:
    code = (
        "import json, duckdb, cytotable, importlib.util as u;"
        "print(json.dumps({'duckdb': duckdb.__version__,"
        " 'platform': duckdb.sql('PRAGMA platform').fetchone()[0],"
        " 'cytotable': getattr(cytotable, '__version__', '?'),"
        " 'ext_pkgs': {n: str(__import__('pathlib').Path(u.find_spec(n).origin).parent)"
        " for n in ('duckdb_extension_sqlite_scanner', 'duckdb_extension_httpfs')}}))"
    )
    out = subprocess.run(
        [str(_venv_python(venv)), "-c", code], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def home_dir(venv: Path) -> Path:
    """The private HOME the CytoTable processes run with."""
    return venv / "home"


def ensure_venv(
    venv: str | os.PathLike[str] = DEFAULT_VENV,
    *,
    python: str | None = None,
    duckdb_version: str = DEFAULT_DUCKDB_VERSION,
    with_matplotlib: bool = True,
    quiet: bool = False,
) -> dict[str, str]:
    """Create (if needed) the CytoTable venv and its offline DuckDB extensions; return info.

    Idempotent: a marker file records a finished set-up and is checked against the venv.
    """
    venv = Path(venv).resolve()
    marker = venv / MARKER

    def say(msg: str) -> None:
        if not quiet:
            print(f"[cytotable setup] {msg}", file=sys.stderr)

    if marker.exists() and _venv_python(venv).exists():
        info = json.loads(marker.read_text())
        ext_dir = Path(info["extension_dir"])
        if all((ext_dir / f"{e}.duckdb_extension").exists() for e in EXTENSIONS):
            return info
    if not _venv_python(venv).exists():
        base = python or _base_python()
        say(f"creating venv {venv} with {base}")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    want = [
        f"cytotable=={CYTOTABLE_VERSION}",
        f"duckdb=={duckdb_version}",
        *(f"duckdb-extension-{e.replace('_', '-')}=={duckdb_version}" for e in EXTENSIONS),
    ]
    say("pip install " + " ".join(want))
    r = _pip(venv, *want)
    if r.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    if with_matplotlib:
        # Only for the optional plot; a failure here is not an error.
        r = _pip(venv, "matplotlib")
        if r.returncode != 0:
            say("matplotlib not installable; plots will be skipped")
    info = _probe(venv)
    ver = info["duckdb"]
    ext_dir = home_dir(venv) / ".duckdb" / "extensions" / f"v{ver}" / info["platform"]
    ext_dir.mkdir(parents=True, exist_ok=True)
    for e in EXTENSIONS:
        pkg = Path(info["ext_pkgs"][f"duckdb_extension_{e}"])
        src = pkg / "extensions" / f"v{ver}" / f"{e}.duckdb_extension"
        if not src.exists():
            raise RuntimeError(f"{src} missing: extension wheel does not match duckdb {ver}")
        shutil.copy2(src, ext_dir / src.name)
    info.update(
        {
            "venv": str(venv),
            "python": str(_venv_python(venv)),
            "home": str(home_dir(venv)),
            "extension_dir": str(ext_dir),
        }
    )
    info.pop("ext_pkgs", None)
    marker.write_text(json.dumps(info, indent=2))
    say(f"ready: cytotable {info['cytotable']}, duckdb {ver}, extensions in {ext_dir}")
    return info


IMAGE_EXPORT = ("ome-arrow", "pyiceberg[sql-sqlite,pyarrow]==0.11.1")
"""What CytoTable's image export (``dest_backend="iceberg"``, ``image_dir``) needs beside it:
ome-arrow, and a pyiceberg before 0.12 (whose ``Catalog`` gained abstract methods CytoTable
1.2.6's own catalog class does not define: "Can't instantiate abstract class TinyCatalog")."""


def ensure_image_export(info: dict[str, str]) -> None:
    """Install :data:`IMAGE_EXPORT` into CytoTable's venv when missing."""
    venv = Path(info["venv"])
    probe = subprocess.run([str(_venv_python(venv)), "-c", "import ome_arrow, pyiceberg"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        r = _pip(venv, *IMAGE_EXPORT)
        if r.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


def _base_python() -> str:
    """A base interpreter for the new venv (not the venv the harness itself runs in)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base


def runner_command(
    info: dict[str, str],
    *,
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    preset: str,
    chunk_size: int | None,
    executor: str = "threads",
    workers: int | None = None,
    run_dir: str | os.PathLike[str],
    dest_datatype: str = "parquet",
    image_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run one CytoTable conversion (with ``image_dir``,
    into its Iceberg warehouse with image crops)."""
    cmd = [
        info["python"],
        str(Path(__file__).resolve()),
        "run",
        "--source",
        str(Path(source).resolve()),
        "--dest",
        str(Path(dest).resolve()),
        "--preset",
        preset,
        "--executor",
        executor,
        "--run-dir",
        str(Path(run_dir).resolve()),
        "--dest-datatype",
        dest_datatype,
    ]
    if chunk_size is not None:
        cmd += ["--chunk-size", str(chunk_size)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if image_dir is not None:
        cmd += ["--dest-backend", "iceberg", "--image-dir", str(Path(image_dir).resolve())]
    env = dict(os.environ)
    env["HOME"] = info["home"]
    # As if the venv were activated: Parsl's HighThroughputExecutor starts `interchange.py`
    # and `process_worker_pool.py` from PATH.
    env["VIRTUAL_ENV"] = info["venv"]
    env["PATH"] = str(Path(info["venv"]) / "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return cmd, env


# --------------------------------------------------------------------------- runner (in venv)


def _parsl_config(executor: str, workers: int, run_dir: Path):  # type: ignore[no-untyped-def]
    from parsl.config import Config

    if executor == "threads":
        from parsl.executors import ThreadPoolExecutor

        ex = ThreadPoolExecutor(label="bench_threads", max_threads=workers)
    elif executor == "htex":
        # CytoTable's own default executor, with the worker count made explicit.
        from parsl.executors import HighThroughputExecutor

        ex = HighThroughputExecutor(
            label="htex_default_for_cytotable", max_workers_per_node=workers
        )
    else:
        raise SystemExit(f"unknown executor {executor!r}")
    return Config(executors=[ex], run_dir=str(run_dir / "runinfo"))


def _run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir or Path.cwd()).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(run_dir)  # CytoTable and Parsl leave files in the working directory
    t0 = time.perf_counter()
    import cytotable

    t_import = time.perf_counter() - t0
    workers = args.workers or os.cpu_count() or 1
    kwargs = {
        "source_path": args.source,
        "dest_path": args.dest,
        "dest_datatype": args.dest_datatype,
        "preset": args.preset,
        "chunk_size": args.chunk_size,
        "parsl_config": _parsl_config(args.executor, workers, run_dir),
    }
    if args.dest_backend:
        kwargs.update(dest_backend=args.dest_backend, image_dir=args.image_dir)
    t1 = time.perf_counter()
    result = cytotable.convert(**kwargs)
    t_convert = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "cytotable_result": str(result),
                "import_s": round(t_import, 4),
                "convert_s": round(t_convert, 4),
                "chunk_size": args.chunk_size,
                "executor": args.executor,
                "workers": workers,
            }
        )
    )
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="create the CytoTable venv and offline extensions")
    s.add_argument("--venv", default=str(DEFAULT_VENV))
    s.add_argument("--python", help="base interpreter for the venv (default: this one's base)")
    s.add_argument("--duckdb-version", default=DEFAULT_DUCKDB_VERSION)
    s.add_argument("--no-matplotlib", action="store_true")
    r = sub.add_parser("run", help="(inside the venv) run one cytotable.convert")
    r.add_argument("--source", required=True)
    r.add_argument("--dest", required=True)
    r.add_argument("--preset", default="cellprofiler_sqlite")
    r.add_argument("--chunk-size", type=int, default=None, help="default: the preset's (1000)")
    r.add_argument("--executor", choices=["threads", "htex"], default="threads")
    r.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    r.add_argument("--dest-datatype", default="parquet",
                   help="parquet, anndata_h5ad or anndata_zarr")
    r.add_argument("--run-dir", default=None, help="working directory (runinfo goes here)")
    r.add_argument("--dest-backend", default=None, help="iceberg: a warehouse (with --image-dir)")
    r.add_argument("--image-dir", default=None, help="crop the images of this folder")
    a = ap.parse_args(argv)
    if a.cmd == "setup":
        info = ensure_venv(
            a.venv,
            python=a.python,
            duckdb_version=a.duckdb_version,
            with_matplotlib=not a.no_matplotlib,
        )
        print(json.dumps(info, indent=2))
        return 0
    return _run(a)


if __name__ == "__main__":
    sys.exit(main())
