"""Every command on every bundled real data set, from the command line, the preset detected: inspect
names the preset, convert writes a table with rows, validate passes it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from celltable.cli import app
from tests.conftest import REAL_DATA

DATASETS = {
    # folder under tests/data/real: the preset inspect must detect
    "cellprofiler/ExampleHuman": "cellprofiler_csv",
    "cellprofiler/NF1_SchwannCell_data/all_cellprofiler.sqlite": "cellprofiler_sqlite",
    "cytominer-database/data_a_sqlite/data_a.sqlite": "cell-health-cellprofiler-to-cytominer-database",
    "cytominer-database/data_a": "cellprofiler_csv",
    "in-carta/colas-lab": "in-carta",
    "deepprofiler/pycytominer_example": "deepprofiler",
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_inspect_convert_and_validate_work_on_each_real_data_set(tmp_path, name):
    source = REAL_DATA / name
    runner = CliRunner()
    inspected = runner.invoke(app, ["inspect", str(source), "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["preset"] == DATASETS[name]

    dest = tmp_path / "out.parquet"
    converted = runner.invoke(app, ["convert", str(source), str(dest), "-q"])
    assert converted.exit_code == 0, converted.output
    assert dest.exists() and " 0 rows" not in converted.output

    validated = runner.invoke(app, ["validate", str(dest), "--json"])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.output)["ok"] is True
