"""AnnData output: celltable's .h5ad against CytoTable's ``anndata_h5ad`` and against
celltable's own Parquet, on one generated plate (96 images by default), one run each.

    .venv/bin/python benchmarks/anndata_bench.py [--images 96] [--chunk-sizes default,10000]

Prints each run's wall time and peak memory (the process tree's resident set), then the ratios
the AnnData issue set as targets. One run per tool on whatever machine runs it: on a shared
machine the figures are noisy. Results go to ``benchmarks/out/anndata.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from cytotable_runner import ensure_venv, runner_command  # noqa: E402
from measure import Measurement, run_measured  # noqa: E402
from run import _generate, _warm  # noqa: E402

MiB = 2**20
PRESET = "cellprofiler_sqlite"


def _celltable(src: Path, dest: Path, work: Path, timeout: float) -> Measurement:
    cmd = [str(REPO / ".venv" / "bin" / "celltable"), "convert", str(src), str(dest),
           "--preset", PRESET, "--overwrite", "-q", "--report", "-"]
    # the harness reads Parquet outputs back; an .h5ad is checked by the table's own rows
    output = dest if dest.suffix == ".parquet" else None
    return run_measured(f"celltable {dest.suffix[1:]}", cmd, output=output, cwd=work,
                        timeout=timeout, log_path=work / f"celltable{dest.suffix}.log")


def _cytotable(info: dict[str, str], src: Path, dest: Path, chunk: int | None, work: Path,
               timeout: float) -> Measurement:
    run_dir = Path(tempfile.mkdtemp(prefix="cytotable-", dir=work))
    cmd, env = runner_command(info, source=src, dest=dest, preset=PRESET, chunk_size=chunk,
                              run_dir=run_dir, dest_datatype="anndata_h5ad")
    return run_measured(f"cytotable anndata_h5ad (chunk {chunk or 1000})", cmd, output=None,
                        cwd=run_dir, env=env, timeout=timeout,
                        log_path=work / f"cytotable-{chunk or 'default'}.log")


def _shape(path: Path) -> tuple[int | None, int | None]:
    """Rows and feature columns (X) of an AnnData file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            x = f["X"]
            shape = x.attrs.get("shape", None) if isinstance(x, h5py.Group) else x.shape
            return int(shape[0]), int(shape[1])
    except (OSError, KeyError, TypeError):
        return None, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--cells-per-image", type=int, default=300)
    ap.add_argument("--features", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--chunk-sizes", default="default,10000",
                    help="CytoTable chunk sizes to try; its best is compared")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out-dir", default=str(HERE / "out"))
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    src, error, stats = _generate(args.images, "sqlite", args, out / "plates")
    if src is None:
        print(f"no plate: {error}")
        return 1
    work = out / "runs" / "anndata"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = ensure_venv(HERE / ".venvs" / "cytotable")
    runs: list[Measurement] = []

    def show(m: Measurement) -> Measurement:
        if m.ok and m.rows is None and m.command:
            m.rows, m.columns = _shape(Path(m.command[3] if "celltable" in m.tool
                                            else m.command[m.command.index("--dest") + 1]))
        state = "ok" if m.ok else f"FAILED ({m.error}, rc={m.returncode})"
        print(f"  {m.tool:<36} {m.wall_s:8.2f} s {m.peak_rss_bytes / MiB:9.1f} MiB  "
              f"rows={m.rows} X columns={m.columns}  {state}", flush=True)
        runs.append(m)
        return m

    print(f"plate: {src} ({stats.get('joined_rows', '?')} rows); machine shared, one run each")
    _warm(src)
    parquet = show(_celltable(src, work / "celltable.parquet", work, args.timeout))
    _warm(src)
    h5ad = show(_celltable(src, work / "celltable.h5ad", work, args.timeout))
    incumbent = []
    for size in args.chunk_sizes.split(","):
        chunk = None if size == "default" else int(size)
        _warm(src)
        m = show(_cytotable(info, src, work / f"cytotable-{size}.h5ad", chunk, work,
                            args.timeout))
        if m.ok:
            incumbent.append(m)
    ratios: dict[str, float] = {}
    if h5ad.ok and parquet.ok:
        ratios["h5ad_time / parquet_time (target <= 1.5)"] = h5ad.wall_s / parquet.wall_s
        ratios["h5ad_peak / parquet_peak (target <= 1.25)"] = (h5ad.peak_rss_bytes
                                                              / parquet.peak_rss_bytes)
    if h5ad.ok and incumbent:
        best_time = min(m.wall_s for m in incumbent)
        best_peak = min(m.peak_rss_bytes for m in incumbent)
        ratios["cytotable_best_time / h5ad_time (target >= 5)"] = best_time / h5ad.wall_s
        ratios["h5ad_peak / cytotable_best_peak (target <= 0.25)"] = (h5ad.peak_rss_bytes
                                                                      / best_peak)
    for name, value in ratios.items():
        print(f"  {name:<52} {value:6.2f}")
    (out / "anndata.json").write_text(json.dumps(
        {"plate": str(src), "stats": stats, "runs": [m.to_dict() for m in runs],
         "ratios": ratios, "note": "one run each on a shared machine"}, indent=2, default=str))
    return 0 if all(m.ok for m in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
