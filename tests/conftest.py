from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO / "tests" / "data" / "real"
EXAMPLE_HUMAN = REPO / "tests" / "data" / "ExampleHuman"
NF1_SQLITE = REAL_DATA / "cellprofiler" / "NF1_SchwannCell_data" / "all_cellprofiler.sqlite"


@pytest.fixture
def example_human() -> Path:
    """The bundled ExampleHuman CellProfiler CSV plate (289 cytoplasm objects, one image)."""
    return EXAMPLE_HUMAN


@pytest.fixture
def nf1_sqlite() -> Path:
    """The NF1 CellProfiler SQLite (242 cytoplasm objects over 32 images)."""
    return NF1_SQLITE


@pytest.fixture
def three_example_plates(tmp_path: Path, example_human: Path) -> Path:
    """Three copies of ExampleHuman, one subfolder per plate."""
    root = tmp_path / "plates"
    for name in ("plate_a", "plate_b", "plate_c"):
        shutil.copytree(example_human, root / name)
    return root


@pytest.fixture
def two_nf1_plates(tmp_path: Path, nf1_sqlite: Path) -> Path:
    """Two copies of the NF1 SQLite in one folder."""
    root = tmp_path / "sqlite_plates"
    root.mkdir()
    for name in ("plate_1.sqlite", "plate_2.sqlite"):
        shutil.copy(nf1_sqlite, root / name)
    return root


SQLITE_FIXTURES = {"nf1_sqlite", "two_nf1_plates"}
SQLITE_MODULES = {"test_cytominer_database.py", "test_partition.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that read SQLite (``-m sqlite``: CI runs them again on the oldest DuckDB
    supported, with DuckDB's SQLite extension): those named for it, reading NF1's SQLite, or
    in a module of SQLite sources."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        node = item.nodeid.lower()
        if ("sqlite" in node or "nf1" in node or names & SQLITE_FIXTURES
                or item.path.name in SQLITE_MODULES):
            item.add_marker(pytest.mark.sqlite)
