"""Compare two builds of celltable on the same plates: time and peak memory, as ratios.

A change that must not cost speed (a refactoring) is measured against the build before it. Give
each build's ``celltable`` executable; the runs alternate (before, after, before, after ...) so a
busy machine slows both alike, and the best of ``--repeat`` runs of each is compared:

    python benchmarks/before_after.py --before /old/.venv/bin/celltable \\
        --after .venv/bin/celltable --sizes 24,96 --repeat 3

Plates come from ``benchmarks/plategen.py`` (cached in ``benchmarks/out/plates``). It prints one
line per case: after ÷ before for the best time and for the best peak memory of the process tree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import run_measured  # noqa: E402
from plategen import generate_plate  # noqa: E402

ROOT = HERE.parent
REAL = ROOT / "tests" / "data" / "real"


def _plate(size: int, fmt: str) -> Path:
    folder = HERE / "out" / "plates"
    target = folder / f"plate-{fmt}-i{size}-c300-f600-s0{'.sqlite' if fmt == 'sqlite' else ''}"
    done = folder / f"plate-{fmt}-i{size}-c300-f600-s0.done"
    if not (done.exists() and target.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        generate_plate(target, fmt=fmt, images=size, cells_per_image=300, features=600, seed=0)
        done.write_text(json.dumps({"images": size}))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier build's celltable executable")
    parser.add_argument("--after", default=str(ROOT / ".venv" / "bin" / "celltable"))
    parser.add_argument("--sizes", default="24,96", help="generated SQLite plate sizes (images)")
    parser.add_argument("--csv-sizes", default="24", help="generated CSV plate sizes (images)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-real", action="store_true", help="skip the bundled real data")
    args = parser.parse_args()

    cases: list[tuple[str, Path, str]] = []
    for size in filter(None, args.sizes.split(",")):
        cases.append((f"sqlite {size} images", _plate(int(size), "sqlite"), "cellprofiler_sqlite"))
    for size in filter(None, args.csv_sizes.split(",")):
        cases.append((f"csv {size} images", _plate(int(size), "csv"), "cellprofiler_csv"))
    if not args.no_real:
        cases.append(("NF1 (real SQLite)",
                      REAL / "cellprofiler" / "NF1_SchwannCell_data" / "all_cellprofiler.sqlite",
                      "cellprofiler_sqlite"))
        cases.append(("ExampleHuman (real CSV)", ROOT / "tests" / "data" / "ExampleHuman",
                      "cellprofiler_csv"))

    scratch = Path(tempfile.mkdtemp(prefix="celltable-before-after-"))
    print(f"{'case':28} {'time after/before':>18} {'peak after/before':>18}")
    try:
        for name, src, preset in cases:
            best: dict[str, tuple[float, int]] = {}
            for _ in range(args.repeat):
                for label, exe in (("before", args.before), ("after", args.after)):
                    dest = scratch / f"{label}.parquet"
                    run = run_measured(label, [exe, "convert", str(src), str(dest), "--preset",
                                               preset, "--overwrite"], output=dest)
                    if run.returncode != 0:
                        print(f"{name}: {label} failed (exit {run.returncode})")
                        return 1
                    wall, peak = best.get(label, (float("inf"), 1 << 62))
                    best[label] = (min(wall, run.wall_s), min(peak, run.peak_rss_bytes))
            (tb, pb), (ta, pa_) = best["before"], best["after"]
            print(f"{name:28} {ta / tb:18.2f} {pa_ / pb:18.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
