from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLE_HUMAN

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
