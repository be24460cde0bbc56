"""Convert a fixed set of sources and compare the tables with those of another checkout.

A refactoring must not change what comes out. This script converts the bundled real data sets and
two generated plates (SQLite and CSV) with one checkout's ``celltable`` and compares every output
table, column by column and row by row, with a reference folder written the same way:

    # the reference, from the state before the change
    python benchmarks/same_outputs.py write /tmp/before --celltable /path/to/old/.venv/bin/celltable
    # the state after, compared with it
    python benchmarks/same_outputs.py compare /tmp/before /tmp/after

The footer's provenance (it names times and paths) is not compared; schemas, row order and values
are. It exits non-zero when any table differs and says which.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "real"

CASES = {
    "example_human": (ROOT / "tests" / "data" / "ExampleHuman", "cellprofiler_csv", ()),
    "nf1": (REAL / "cellprofiler" / "NF1_SchwannCell_data" / "all_cellprofiler.sqlite",
            "cellprofiler_sqlite", ()),
    "nf1_no_join": (REAL / "cellprofiler" / "NF1_SchwannCell_data" / "all_cellprofiler.sqlite",
                    "cellprofiler_sqlite", ("--no-join",)),
    "cytominer_database": (REAL / "cytominer-database" / "data_a_sqlite" / "data_a.sqlite",
                           "cell-health-cellprofiler-to-cytominer-database", ()),
    "deepprofiler": (REAL / "deepprofiler" / "pycytominer_example", "deepprofiler", ()),
    "in_carta": (REAL / "in-carta" / "colas-lab", "in-carta", ()),
}


def _generated(scratch: Path) -> dict[str, tuple[Path, str, tuple[str, ...]]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from plategen import generate_plate

    cases = {}
    for fmt, preset in (("sqlite", "cellprofiler_sqlite"), ("csv", "cellprofiler_csv")):
        path = scratch / ("plate.sqlite" if fmt == "sqlite" else "plate_csv")
        if not path.exists():
            generate_plate(path, fmt=fmt, images=12, cells_per_image=40, features=30, seed=7,
                           orphans=3)
        cases[f"generated_{fmt}"] = (path, preset, ())
    return cases


def write(out: Path, celltable: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cases = {**CASES, **_generated(out / "sources")}
    for name, (src, preset, extra) in cases.items():
        dest = out / f"{name}.parquet"
        cmd = [celltable, "convert", str(src), str(dest), "--preset", preset, "--overwrite",
               *extra]
        if "--no-join" in extra:
            cmd[3] = str(out / name)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(f"{name}: exit {done.returncode}")
        if done.returncode:
            print(done.stderr.strip()[-2000:])


def _tables(folder: Path) -> dict[str, Path]:
    found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.parquet")
             if "sources" not in p.relative_to(folder).parts}
    return dict(sorted(found.items()))


def _same_values(a: pa.Table, b: pa.Table) -> bool:
    """Row by row, NaN equal to NaN (``Table.equals`` says NaN differs from itself)."""
    if a.num_rows != b.num_rows:
        return False
    for name in a.column_names:
        x, y = a[name].combine_chunks(), b[name].combine_chunks()
        if x.equals(y):
            continue
        if not pa.types.is_floating(x.type) or not x.is_null().equals(y.is_null()):
            return False
        same = pc.or_(pc.equal(x, y), pc.and_(pc.is_nan(x), pc.is_nan(y)))
        if not pc.all(pc.fill_null(same, True)).as_py():
            return False
    return True


def compare(before: Path, after: Path) -> int:
    left, right = _tables(before), _tables(after)
    bad = 0
    for name in sorted(set(left) | set(right)):
        if name not in left or name not in right:
            print(f"{name}: only in {'after' if name in right else 'before'}")
            bad += 1
            continue
        a, b = pq.read_table(left[name]), pq.read_table(right[name])
        a, b = a.replace_schema_metadata(None), b.replace_schema_metadata(None)
        if a.schema != b.schema:
            print(f"{name}: schemas differ")
            bad += 1
        elif not _same_values(a, b):
            print(f"{name}: values differ ({a.num_rows} vs {b.num_rows} rows)")
            bad += 1
        else:
            print(f"{name}: identical ({a.num_rows} rows, {a.num_columns} columns)")
    print("all identical" if not bad else f"{bad} table(s) differ")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("write", help="convert every case into OUT")
    w.add_argument("out", type=Path)
    w.add_argument("--celltable", default=str(ROOT / ".venv" / "bin" / "celltable"))
    c = sub.add_parser("compare", help="convert into AFTER (unless --no-write), compare with BEFORE")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--celltable", default=str(ROOT / ".venv" / "bin" / "celltable"))
    c.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.what == "write":
        write(args.out, args.celltable)
        return 0
    if not args.no_write:
        write(args.after, args.celltable)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
