from __future__ import annotations

import pyarrow as pa
import pytest

from celltable.bootstrap import Settings


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("1", True), ("0", False), ("false", False)])
def test_memory_mapping_is_on_unless_turned_off(value, expected):
    env = {} if value is None else {"CELLTABLE_ARROW_USE_MEMORY_MAPPING": value}
    assert Settings.resolve(None, None, env).memory_map is expected


def test_one_thread_knob_bounds_tasks_and_duckdb_together():
    for threads in (1, 2, 3, 8):
        s = Settings.resolve(threads, None, {})
        assert 1 <= s.workers * s.engine_threads <= threads


def test_the_arrow_allocator_is_arrows_own_choice():
    # ARROW_DEFAULT_MEMORY_POOL is read by Arrow itself when it starts; celltable never
    # replaces the default pool (a subprocess shows the variable takes effect).
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import celltable, pyarrow as pa; print(pa.default_memory_pool().backend_name)"],
        env={"ARROW_DEFAULT_MEMORY_POOL": "system", "PATH": ""}, capture_output=True, text=True,
    )
    assert out.stdout.strip() == "system", out.stderr
    assert pa.default_memory_pool().backend_name in {"mimalloc", "jemalloc", "system"}
