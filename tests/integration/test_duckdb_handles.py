"""A staged plate's handle owns its DuckDB connection: the conversion's ``release`` ends it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.errors import ExecutionError
from celltable.domain.presets import get_preset

SQLITE = get_preset("cellprofiler_sqlite")


def _count(engine, staged) -> int:
    sql = 'SELECT count(*) AS n FROM "Cells"'
    return engine.read_sql(staged, sql, staged.plate.key).data.column("n")[0].as_py()


def test_a_plate_staged_in_a_file_is_read_in_another_process_and_released_with_its_file(
        tmp_path, nf1_sqlite):
    plate = LocalSourceLocator().discover(str(nf1_sqlite), SQLITE).plates[0]
    engine = DuckDBEngine()
    staged = engine.stage(plate, SQLITE, str(tmp_path), copy=True)
    path = Path(staged.handle.path)
    assert path.exists() and staged.handle.exists()
    assert _count(engine, staged) == staged.table("Cells").rows
    elsewhere = pickle.loads(pickle.dumps(staged))  # as a task in a worker process gets it
    assert _count(engine, elsewhere) == staged.table("Cells").rows
    engine.release(elsewhere)
    engine.release(staged)
    assert not path.exists() and not staged.handle.exists()


def test_a_plate_staged_in_memory_is_readable_here_only_and_until_released(tmp_path, nf1_sqlite):
    plate = LocalSourceLocator().discover(str(nf1_sqlite), SQLITE).plates[0]
    engine = DuckDBEngine(memory_limit=2**30, in_memory=True)
    staged = engine.stage(plate, SQLITE, str(tmp_path), copy=True)
    assert not list(tmp_path.glob("*.duckdb"))  # nothing on disk
    assert _count(engine, staged) == staged.table("Cells").rows
    elsewhere = pickle.loads(pickle.dumps(staged))
    assert not elsewhere.handle.exists()
    with pytest.raises(ExecutionError, match="another process"):
        _count(engine, elsewhere)
    engine.release(staged)
    with pytest.raises(ExecutionError):
        _count(engine, staged)


def test_a_plate_read_in_place_is_never_touched_by_release(tmp_path, nf1_sqlite):
    plate = LocalSourceLocator().discover(str(nf1_sqlite), SQLITE).plates[0]
    engine = DuckDBEngine()
    staged = engine.stage(plate, SQLITE, str(tmp_path))
    assert staged.in_place and pickle.loads(pickle.dumps(staged)).handle == staged.handle
    before = Path(plate.path).stat()
    engine.release(staged)
    assert Path(plate.path).stat().st_mtime_ns == before.st_mtime_ns
