"""The cost of the first look at every file (bad files named before any data moves), against
the conversion it precedes: N cytominer-database sites copied from the bundled real data.

    python -m benchmarks.bad_files_survey [SITES]

Prints the survey's time, the conversion's, and their ratio, from one run each.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import celltable
from celltable.adapters.file_checks import _csv_problem, plate_problems
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.presets import get_preset

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "real" / "cytominer-database" / "data_a"


def main(sites: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sites"
        for i in range(sites):
            shutil.copytree(DATA / str(i % 2 + 1), src / f"site{i:04d}")
        layout = LocalSourceLocator().discover(str(src), get_preset("cellprofiler_csv"))
        _csv_problem.cache_clear()
        started = time.perf_counter()
        bad = plate_problems(layout.plates)
        survey = time.perf_counter() - started
        started = time.perf_counter()
        result = celltable.convert(src, Path(tmp) / "o.parquet", preset="cellprofiler_csv")
        convert = time.perf_counter() - started
    files = sum(len(u.tables) for u in layout.plates)
    print(f"{sites} sites, {files} files, {len(bad)} bad: survey {survey:.3f} s, convert "
          f"{convert:.2f} s ({result.rows_out} rows); survey / convert = {survey / convert:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
