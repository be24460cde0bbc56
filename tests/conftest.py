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
