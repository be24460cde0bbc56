from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE

# Run in a fresh interpreter: the test session has imported everything already.
_CONVERT_THEN_LIST_MODULES = """
import sys
from celltable.cli import main
sys.argv = ["celltable", "convert", sys.argv[1], sys.argv[2], "--quiet"]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
print(" ".join(sorted(m for m in sys.modules if "." not in m)))
"""


def test_a_local_conversion_does_not_import_the_cloud_libraries(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT_THEN_LIST_MODULES, str(EXAMPLE_HUMAN),
         str(tmp_path / "example.parquet")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "example.parquet").exists()
    loaded = set(done.stdout.splitlines()[-1].split())
    assert {"duckdb", "parsl"} <= loaded  # tasks run as Parsl apps, on threads by default
    assert "cloudpathlib" not in loaded  # (Parsl itself imports boto3 when it is installed)


_CONVERT_VALIDATE_THEN_LIST_MODULES = """
import sys
from celltable.cli import main
validate, source, dest, *extra = sys.argv[1:]
for argv in (["convert", source, dest, "--quiet", *extra], *([["validate", dest]] * (validate == "1"))):
    sys.argv = ["celltable", *argv]
    try:
        main()
    except SystemExit as e:
        assert not e.code, (argv, e.code)
print(" ".join(sorted(m for m in sys.modules if "." not in m)))
"""


@pytest.mark.parametrize(("source", "extra"), [
    (EXAMPLE_HUMAN, ()), (EXAMPLE_HUMAN, ("--no-join",)),
    (NF1_SQLITE, ()), (NF1_SQLITE, ("--no-join", "--chunk-size", "50")),
])
def test_a_conversion_to_parquet_and_its_validation_never_import_pandas(tmp_path, source, extra):
    """Arrow values are built from their bytes (``adapters/arrow_types.py``): given a Python
    value, Arrow first asks pandas whether it is one of its objects, importing it (0.25 s and
    40 MB in every process, every worker's too), and ADBC's DB-API module imports pandas and
    polars."""
    pytest.importorskip("pandas")  # installed (by the test extras), so importing it is possible
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT_VALIDATE_THEN_LIST_MODULES, "1", str(source),
         str(tmp_path / "out"), *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines()[-1].split())
    assert {"duckdb", "pyarrow"} <= loaded
    assert not loaded & {"pandas", "polars"}


def test_the_main_process_of_a_run_by_plate_tasks_loads_neither_duckdb_nor_arrow(tmp_path):
    """Under worker processes the main process plans and commits: it unpickles the surveys'
    staged handles, which must not bring DuckDB in (nor Arrow, nor pandas)."""
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT_VALIDATE_THEN_LIST_MODULES, "0", str(NF1_SQLITE),
         str(tmp_path / "out"), "--executor", "htex", "--workers", "1", "--partition-by", "plate"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "all_cellprofiler.sqlite.parquet").exists()
    loaded = set(done.stdout.splitlines()[-1].split())
    assert "parsl" in loaded
    assert not loaded & {"duckdb", "pyarrow", "numpy", "pandas"}
