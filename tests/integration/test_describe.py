"""The query engine's describe (``celltable inspect``) against real DuckDB, and the survey."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.storage import LocalSourceLocator
from celltable.adapters.survey import LocalSurveyor
from celltable.domain.errors import SourceReadError
from celltable.domain.presets import get_preset
from celltable.domain.schema import DataType
from tests.conftest import REAL_DATA
from tests.fakes import FakeEngine, FakeSource
from tests.unit.test_convert import _plate

CSV = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")


def _describe(path, preset):
    plate = LocalSourceLocator().discover(str(path), preset).plates[0]
    return DuckDBEngine(threads=2).describe(plate, preset)


def test_nf1_is_described_without_staging_anything(nf1_sqlite):
    d = _describe(nf1_sqlite, SQLITE)
    rows = {t.table: (t.rows, len(t.schema.columns), t.null_keys, t.duplicate_keys) for t in d.tables}
    assert rows == {"Image": (32, 336, 0, 0), "Cytoplasm": (242, 394, 0, 0),
                    "Cells": (242, 402, 0, 0), "Nuclei": (433, 402, 0, 0)}
    assert dict(d.orphans) == {"Cytoplasm.Cytoplasm_Parent_Cells -> Cells": 0,
                               "Cytoplasm.Cytoplasm_Parent_Nuclei -> Nuclei": 0}
    assert d.table("Cells").schema.type_of("Cells_Number_Object_Number") is DataType.INT64


def test_orphans_are_the_rows_a_conversion_drops(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    lines = (src / "Cells.csv").read_text().splitlines(keepends=True)
    (src / "Cells.csv").write_text("".join(lines[:-2]))  # as in test_api: 2 dropped
    d = _describe(src, CSV)
    assert dict(d.orphans) == {"Cytoplasm.Parent_Cells -> Cells": 2,
                               "Cytoplasm.Parent_Nuclei -> Nuclei": 0}
    assert d.table("Cells").rows == 287


def _write_plate(folder: Path, plate: dict) -> None:
    folder.mkdir()
    for name, rows in plate.items():
        with (folder / f"{name}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def test_duckdb_and_the_fake_engine_describe_a_plate_alike(tmp_path):
    plate = _plate(images=3, orphan=True)
    plate["Nuclei"].append(dict(plate["Nuclei"][0]))  # a repeated (image, object) key
    plate["Cells"].append({**plate["Cells"][0], "ImageNumber": None, "ObjectNumber": 50})
    _write_plate(tmp_path / "p", plate)
    listed = LocalSourceLocator().discover(str(tmp_path / "p"), CSV).plates[0]
    real = DuckDBEngine().describe(listed, CSV)
    fake = FakeEngine(FakeSource({"p": plate})).describe(listed, CSV)

    def counts(d):
        return ({t.table: (t.rows, t.schema.names, t.null_keys, t.duplicate_keys) for t in d.tables},
                dict(d.orphans))

    assert counts(real) == counts(fake)
    assert counts(real)[0]["Nuclei"][3] == 1 and counts(real)[0]["Cells"][2] == 1
    assert dict(real.orphans)["Cytoplasm.Parent_Cells -> Cells"] == 1


def test_a_key_holding_text_is_typed_as_text_and_its_orphans_not_counted(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    text = (src / "Cells.csv").read_text().splitlines(keepends=True)
    head = text[0].split(",")
    column = head.index("ObjectNumber")
    row = text[1].split(",")
    row[column] = "first"
    (src / "Cells.csv").write_text(text[0] + ",".join(row) + "".join(text[2:]))
    d = _describe(src, CSV)
    assert d.table("Cells").schema.type_of("ObjectNumber") is DataType.STRING
    assert [rel for rel, _ in d.orphans] == ["Cytoplasm.Parent_Nuclei -> Nuclei"]


def test_an_unreadable_csv_is_named(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    (src / "Nuclei.csv").write_bytes(b'ImageNumber,ObjectNumber\n1,"unterminated\n' + b"\xff\xfe" * 10)
    with pytest.raises(SourceReadError, match=r"Nuclei\.csv"):
        _describe(src, CSV)


@pytest.mark.parametrize(("folder", "suffix", "files"), [
    ("deepprofiler/pycytominer_example", ".npz", 2),
    ("in-carta/colas-lab", ".csv", 4),
])
def test_the_survey_counts_files_and_reads_csv_headers(folder, suffix, files):
    path = REAL_DATA / folder
    survey = LocalSurveyor().survey(str(path))
    assert survey.count(suffix) == files
    if suffix == ".csv":
        assert len(survey.csv_headers) == 4
        assert {"OBJECT ID", "WELL LABEL"} <= set(survey.csv_headers[0][1])
