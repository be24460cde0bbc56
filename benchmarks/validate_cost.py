"""What checking every column costs: convert a generated plate, time ``celltable validate`` on
the output, and time the column digests alone (what conversion now computes while writing).
Prints each time and its ratio to the conversion's. One run, informative only.

    .venv/bin/python benchmarks/validate_cost.py --images 24
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq

import celltable
from benchmarks.plategen import generate_plate
from celltable.adapters.column_digest import ColumnDigester


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--format", choices=["sqlite", "csv"], default="sqlite")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / ("plate.sqlite" if args.format == "sqlite" else "plate")
        generate_plate(src, args.format, images=args.images)
        dest = Path(tmp) / "out.parquet"
        started = time.perf_counter()
        celltable.convert(src, dest)
        convert_s = time.perf_counter() - started
        started = time.perf_counter()
        report = celltable.validate(dest)
        validate_s = time.perf_counter() - started
        assert report.ok
        pf = pq.ParquetFile(dest)
        table = pf.read()
        digester = ColumnDigester(table.schema)
        started = time.perf_counter()
        for batch in table.to_batches(max_chunksize=20_000):
            digester.update(batch)
        digester.digests()
        digest_s = time.perf_counter() - started
        mb = table.nbytes / 2**20
    print(f"plate: {args.images} images ({args.format}), output {table.num_rows:,} rows x "
          f"{table.num_columns:,} columns, {mb:,.0f} MiB in memory")
    print(f"convert            {convert_s:7.2f} s")
    print(f"validate           {validate_s:7.2f} s  ({validate_s / convert_s:.2f}x convert)")
    print(f"column digests     {digest_s:7.2f} s  ({digest_s / convert_s:.2f}x convert; "
          f"{mb / digest_s:,.0f} MiB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
