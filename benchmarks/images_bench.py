"""Image crops: celltable's Iceberg warehouse against CytoTable 1.2.6's image export.

Generates a CellProfiler CSV plate with its TIFFs (:mod:`benchmarks.imagegen`), then converts it
with each tool into an Iceberg warehouse with a crop of every object from every channel, once
each, in fresh processes, measuring wall time and peak memory of the process tree
(:mod:`benchmarks.measure`). Prints crops per second and the ratios (one run; the machine may
be shared: say so when quoting the figures).

    python benchmarks/images_bench.py --images 24 --cells-per-image 200 --size 1080
    python benchmarks/images_bench.py --no-cytotable   # celltable only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.cytotable_runner import ensure_image_export, ensure_venv, runner_command  # noqa: E402
from benchmarks.imagegen import generate_plate_with_images  # noqa: E402
from benchmarks.measure import run_measured  # noqa: E402


def _celltable(plate: Path, dest: Path, log: Path) -> dict:
    exe = Path(sys.executable).parent / "celltable"
    m = run_measured("celltable", [str(exe), "convert", str(plate), str(dest), "--format",
                                   "iceberg", "--images", str(plate), "-q", "--preset",
                                   "cellprofiler_csv"], log_path=log)
    out = {"ok": m.returncode == 0, "seconds": m.wall_s, "peak_mib": m.peak_rss_bytes / 2**20}
    report = Path(f"{dest}.report.json")
    if report.exists():  # the cropping stage alone, as the run report times it
        out["crop_seconds"] = json.loads(report.read_text())["warehouse"]["crop_seconds"]
    return out


def _cytotable(plate: Path, dest: Path, work: Path, log: Path, timeout: float) -> dict:
    info = ensure_venv(HERE / ".venvs" / "cytotable")
    ensure_image_export(info)
    cmd, env = runner_command(info, source=plate, dest=dest, preset="cellprofiler_csv",
                              chunk_size=None, run_dir=work, image_dir=plate)
    m = run_measured("cytotable", cmd, env=env, log_path=log, timeout=timeout)
    return {"ok": m.returncode == 0, "seconds": m.wall_s, "peak_mib": m.peak_rss_bytes / 2**20,
            "error": None if m.returncode == 0 else log.read_text()[-1500:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--cells-per-image", type=int, default=200)
    ap.add_argument("--size", type=int, default=1080)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--work", default=None, help="folder for the plate and outputs (kept)")
    ap.add_argument("--no-cytotable", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="celltable-images-"))
    plate = work / "plate"
    if not plate.exists():
        stats = generate_plate_with_images(plate, images=a.images,
                                           cells_per_image=a.cells_per_image, size=a.size,
                                           channels=a.channels)
        (work / "plate.json").write_text(json.dumps(stats))
    stats = json.loads((work / "plate.json").read_text())
    results = {"plate": stats}
    for name in ("celltable", "cytotable"):
        dest = work / f"{name}-warehouse"
        shutil.rmtree(dest, ignore_errors=True)
        if name == "celltable":
            results[name] = _celltable(plate, dest, work / "celltable.log")
        elif not a.no_cytotable:
            results[name] = _cytotable(plate, dest, work / "cytotable-run", work / "cytotable.log",
                                       a.timeout)
    for name in ("celltable", "cytotable"):
        r = results.get(name)
        if r and r["ok"]:
            r["crops_per_s"] = stats["crops"] / r["seconds"]
            if r.get("crop_seconds"):
                r["crops_per_s_cropping"] = stats["crops"] / r["crop_seconds"]
    print(json.dumps(results, indent=2))
    ct, cy = results.get("celltable"), results.get("cytotable")
    if ct and cy and ct["ok"] and cy["ok"]:
        print(f"celltable / CytoTable: {cy['seconds'] / ct['seconds']:.2f}x faster, "
              f"{cy['peak_mib'] / ct['peak_mib']:.2f}x less peak memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
