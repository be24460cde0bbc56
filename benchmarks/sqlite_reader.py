"""SQLite readers side by side: time and peak memory of ``celltable convert`` on generated SQLite
plates, for several installs and readers, as ratios to a reference ("before").

    .venv/bin/python benchmarks/sqlite_reader.py --sizes 24,96,384 \\
        --config before=/path/to/old/venv/bin/python \\
        --config fallback=/path/to/venv/bin/python:arrow \\
        --config accelerator=/path/to/venv/bin/python:extension

Each ``--config NAME=PYTHON[:READER]`` runs ``PYTHON -m celltable.cli convert`` with
``CELLTABLE_SQLITE_READER=READER`` (none: the install's default); the first is the reference.
Plates come from ``plategen.py`` (cached in ``benchmarks/out/plates``); each is read once first
so every run starts with a warm page cache. Configurations run one after another per size, in
turn (``--repeat 2`` runs them again in the reverse order and keeps each one's best). One run
each by default: figures on a shared machine are noisy. Informative only, never a CI gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import run_measured  # noqa: E402
from plategen import generate_plate  # noqa: E402

MiB = 2**20


def _plate(images: int) -> Path:
    path = HERE / "out" / "plates" / f"p{images}.sqlite"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_plate(path, "sqlite", images=images)
    with path.open("rb") as f:  # warm the page cache
        while f.read(2**24):
            pass
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="24,96,384", help="images per plate, comma-separated")
    ap.add_argument("--config", action="append", required=True, help="NAME=PYTHON[:READER]")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    ap.add_argument("--json", default=str(HERE / "out" / "sqlite_reader.json"))
    a = ap.parse_args(argv)
    configs = []
    for c in a.config:
        name, _, rest = c.partition("=")
        python, _, reader = rest.partition(":")
        configs.append((name, python, reader))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for images in (int(s) for s in a.sizes.split(",")):
        src = _plate(images)
        best: dict[str, dict[str, float]] = {}
        for r in range(a.repeat):
            for name, python, reader in (configs if r % 2 == 0 else configs[::-1]):
                env = {**os.environ}
                env.pop("CELLTABLE_SQLITE_READER", None)
                if reader:
                    env["CELLTABLE_SQLITE_READER"] = reader
                with tempfile.TemporaryDirectory() as tmp:
                    dest = Path(tmp) / "out.parquet"
                    m = run_measured(name, [python, "-m", "celltable.cli", "convert", str(src),
                                            str(dest), "--preset", "cellprofiler_sqlite",
                                            "--overwrite", "-q"], output=dest, env=env,
                                     log_path=Path(tmp) / "log")
                    if m.returncode != 0:
                        print(f"{name} failed on {images} images:",
                              (Path(tmp) / "log").read_text()[-600:])
                        continue
                got = {"time_s": m.wall_s, "peak_mib": m.peak_rss_bytes / MiB}
                old = best.get(name)
                best[name] = got if old is None else {k: min(v, old[k]) for k, v in got.items()}
        results[str(images)] = best
        ref = best.get(configs[0][0])
        print(f"\n{images} images ({src.stat().st_size / MiB:.0f} MiB)")
        print(f"{'config':<14}{'time s':>9}{'peak MiB':>10}{'time x':>8}{'mem x':>8}")
        for name, *_ in configs:
            if name not in best:
                continue
            b = best[name]
            tr = b["time_s"] / ref["time_s"] if ref else float("nan")
            mr = b["peak_mib"] / ref["peak_mib"] if ref else float("nan")
            print(f"{name:<14}{b['time_s']:>9.1f}{b['peak_mib']:>10.0f}{tr:>8.2f}{mr:>8.2f}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
