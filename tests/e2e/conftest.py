from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import celltable
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE


@dataclass(frozen=True)
class Outputs:
    example_human: Path
    nf1: Path


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Outputs:
    """ExampleHuman and NF1 (bundled real data), converted once with detected
    presets, for the tests that read outputs (validate, pycytominer)."""
    root = tmp_path_factory.mktemp("converted")
    example = celltable.convert(EXAMPLE_HUMAN, root / "example_human.parquet").dest_path
    nf1 = celltable.convert(NF1_SQLITE, root / "nf1.parquet").dest_path
    return Outputs(Path(example), Path(nf1))
