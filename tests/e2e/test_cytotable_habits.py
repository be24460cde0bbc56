"""What CytoTable users bring: choosing compartments on the command line (``--base``), their
custom join SQL over ``read_parquet('cytoplasm.parquet')``, CellProfiler's Experiment table,
and help that names every source format and option."""

from __future__ import annotations

import json
import re
import shutil
from importlib.metadata import metadata
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import celltable
from celltable import InvalidOptionError, InvalidPresetError
from celltable.cli import app
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE, REAL_DATA, REPO
from tests.e2e.test_cli import _fails

runner = CliRunner()
FORMATS = ("CellProfiler", "cytominer-database", "DeepProfiler", "IN Carta")

# CytoTable 1.2.6's join for its cellprofiler_csv preset (join shape A), as users copy it.
CYTOTABLE_CSV_JOIN = """
SELECT
    image.Metadata_ImageNumber,
    cytoplasm.* EXCLUDE (Metadata_ImageNumber),
    cells.* EXCLUDE (Metadata_ImageNumber, Metadata_ObjectNumber),
    nuclei.* EXCLUDE (Metadata_ImageNumber, Metadata_ObjectNumber)
FROM
    read_parquet('cytoplasm.parquet') AS cytoplasm
LEFT JOIN read_parquet('cells.parquet') AS cells USING (Metadata_ImageNumber)
LEFT JOIN read_parquet('nuclei.parquet') AS nuclei USING (Metadata_ImageNumber)
LEFT JOIN read_parquet('image.parquet') AS image USING (Metadata_ImageNumber)
WHERE
    cells.Metadata_ObjectNumber = cytoplasm.Metadata_Cytoplasm_Parent_Cells
    AND nuclei.Metadata_ObjectNumber = cytoplasm.Metadata_Cytoplasm_Parent_Nuclei
"""


def _cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


# --base --------------------------------------------------------------------------------------


def test_cells_and_nuclei_only_from_the_command_line(tmp_path):
    dest = tmp_path / "cells.parquet"
    result = _cli("convert", EXAMPLE_HUMAN, dest, "--base", "Cells",
                  "--drop-compartment", "Cytoplasm", "--quiet")
    assert result.exit_code == 0, result.output
    table = pq.read_table(dest)
    names = table.column_names
    assert not [n for n in names if n.startswith("Cytoplasm_")]
    assert [n for n in names if n.startswith("Nuclei_")] and "Metadata_Cells_Parent_Nuclei" in names
    # one row per cell, each with the nucleus its Parent_Nuclei names
    assert table.num_rows == 289
    by_cell = dict(zip(table.column("Metadata_ObjectNumber").to_pylist(),
                       table.column("Metadata_Cells_Parent_Nuclei").to_pylist(), strict=True))
    header, *rows = (EXAMPLE_HUMAN / "Cells.csv").read_text().splitlines()
    columns = header.split(",")
    number, parent = columns.index("ObjectNumber"), columns.index("Parent_Nuclei")
    assert by_cell == {int(r.split(",")[number]): int(r.split(",")[parent]) for r in rows}
    assert _cli("validate", dest).exit_code == 0


def test_nuclei_only_and_inspect_takes_the_same_options(tmp_path):
    result = _cli("convert", EXAMPLE_HUMAN, tmp_path / "n.parquet", "--base", "Nuclei",
                  "--drop-compartment", "Cytoplasm", "--drop-compartment", "Cells", "--quiet")
    assert result.exit_code == 0, result.output
    names = pq.read_schema(tmp_path / "n.parquet").names
    assert not [n for n in names if n.startswith(("Cells_", "Cytoplasm_"))]
    inspected = _cli("inspect", EXAMPLE_HUMAN, "--base", "Cells", "--drop-compartment",
                     "Cytoplasm", "--json")
    assert inspected.exit_code == 0, inspected.output
    assert "Cells.Parent_Nuclei -> Nuclei" in json.loads(inspected.output)["plates"][0]["orphans"]


@pytest.mark.parametrize(("args", "words"), [
    (("--drop-compartment", "Cytoplasm"), ("base compartment", "--base Cells --drop-compartment "
                                           "Cytoplasm")),
    (("--base", "Cellz"), ("base 'Cellz' is not a compartment", "did you mean 'Cells'?")),
    (("--base", "Cells"), ("Cytoplasm", "not connected to the base 'Cells'",
                           "drop Cytoplasm")),
])
def test_compartment_choices_the_command_line_cannot_make_say_what_it_can(tmp_path, args, words):
    dest = tmp_path / "out.parquet"
    _fails(_cli("convert", EXAMPLE_HUMAN, dest, *args), dest, *words)


# CytoTable's join SQL ------------------------------------------------------------------------


def test_cytotable_join_sql_runs_unchanged_and_matches_the_preset_join(tmp_path):
    sql = tmp_path / "join.sql"
    sql.write_text(CYTOTABLE_CSV_JOIN)
    dest = tmp_path / "custom.parquet"
    result = _cli("convert", EXAMPLE_HUMAN, dest, "--join-sql", sql, "--quiet")
    assert result.exit_code == 0, result.output
    custom = pq.read_table(dest)
    preset = pq.read_table(celltable.convert(EXAMPLE_HUMAN, tmp_path / "p.parquet").dest_path)
    assert custom.num_rows == preset.num_rows == 289
    key = ["Metadata_ImageNumber", "Metadata_ObjectNumber"]
    custom, preset = custom.sort_by([(k, "ascending") for k in key]), \
        preset.sort_by([(k, "ascending") for k in key])
    # the compartments' columns carry the preset join's names and values
    shared = [n for n in preset.column_names if n.startswith(("Cytoplasm_", "Cells_", "Nuclei_"))]
    assert shared and set(shared) <= set(custom.column_names)
    for name in (*key, *shared[:: max(1, len(shared) // 25)]):
        assert custom.column(name).to_pylist() == preset.column(name).to_pylist(), name
    checked = celltable.validate(dest)
    assert checked.ok
    (custom_check,) = [c for c in checked.tables[0].checks if c.name == "custom join"]
    assert custom_check.ok is None and "not checked" in custom_check.detail


def test_join_sql_over_source_tables_says_which_key_columns_validate_cannot_digest(tmp_path):
    dest = tmp_path / "o.parquet"
    celltable.convert(NF1_SQLITE, dest, options=celltable.ConversionOptions(
        join_sql="SELECT ImageNumber, Cells_AreaShape_Area FROM Cells"))
    (check,) = [c for c in celltable.validate(dest).tables[0].checks if c.name == "custom join"]
    assert "Metadata_ImageNumber, Metadata_ObjectNumber" in check.detail


@pytest.mark.parametrize(("sql", "words"), [
    ("SELECT * FROM read_parquet('cytoplasm_*.parquet')", ("names no table", "read_parquet('cells.parquet')", "FROM Image")),
    ("SELECT * FROM read_parquet('/data/PH3.parquet')", ("PH3.parquet", "names no table")),
    ("SELECT * FROM read_csv('Cells.csv')", ("reads files", "FROM Cells")),
])
def test_join_sql_that_cannot_map_onto_the_tables_says_how_to_write_it(tmp_path, sql, words):
    with pytest.raises(InvalidOptionError) as raised:
        celltable.convert(EXAMPLE_HUMAN, tmp_path / "x.parquet",
                          options=celltable.ConversionOptions(join_sql=sql))
    assert all(w in str(raised.value) for w in words), str(raised.value)
    assert not (tmp_path / "x.parquet").exists()
    file = tmp_path / "q.sql"
    file.write_text(sql)
    dest = tmp_path / "cli.parquet"
    _fails(_cli("convert", EXAMPLE_HUMAN, dest, "--join-sql", file), dest, words[0])


# CellProfiler's Experiment table -------------------------------------------------------------


def _experiments(dest: Path) -> list[dict]:
    prov = json.loads(pq.read_metadata(dest).metadata[b"celltable.provenance"])
    report = json.loads(Path(f"{dest}.report.json").read_text())
    assert prov["experiments"] == report["experiments"]
    return prov["experiments"]


def test_the_experiment_csv_is_kept_in_the_metadata_and_the_report(tmp_path):
    src = tmp_path / "plate"
    shutil.copytree(REAL_DATA / "cellprofiler" / "ExampleHuman", src)
    dest = tmp_path / "o.parquet"
    result = celltable.convert(src, dest)
    (experiment,) = _experiments(dest)
    assert experiment["plates"] == ["plate"]
    values = experiment["values"]
    assert values["CellProfiler_Version"] == "4.0.6"
    assert values["Run_Timestamp"] == "2022-11-03T16:58:53.324795"
    assert values["Pipeline_Pipeline"].startswith("CellProfiler Pipeline: http://www.cellprofiler.org")
    assert "IdentifySecondaryObjects" in values["Pipeline_Pipeline"]
    assert "ImageSet_Zip_Dictionary" not in values
    (why,) = [s.reason for s in result.report.skipped if s.path.endswith("Experiment.csv")]
    assert "Experiment table" in why


def test_the_per_experiment_table_of_a_sqlite_file_is_kept(tmp_path):
    dest = tmp_path / "o.parquet"
    said = _cli("convert", NF1_SQLITE, dest, "--quiet").output
    assert "measured with CellProfiler 4.2.4 (run 2023-03-06T10:43:34.121450, 1 plate(s))" in said
    (experiment,) = _experiments(dest)
    values = experiment["values"]
    assert values["CellProfiler_Version"] == "4.2.4"
    assert values["Run_Timestamp"] == "2023-03-06T10:43:34.121450"
    assert values["Pipeline_Pipeline"].startswith("CellProfiler Pipeline")
    assert "\n" in values["Pipeline_Pipeline"]  # the stored text, its escapes read


def test_plates_sharing_an_experiment_are_listed_under_it_once(tmp_path):
    src = tmp_path / "plates"
    for name in ("a", "b"):
        shutil.copytree(REAL_DATA / "cellprofiler" / "ExampleHuman", src / name)
    dest = tmp_path / "o.parquet"
    celltable.convert(src, dest)
    (experiment,) = _experiments(dest)
    assert experiment["plates"] == ["a", "b"]


# help and docs -------------------------------------------------------------------------------


def test_the_package_description_and_the_help_name_every_source_format():
    description = metadata("celltable")["Summary"]
    top = _cli("--help").output
    source_help = " ".join(_cli("convert", "--help").output.split())
    for name in FORMATS:
        assert name in description and name in " ".join(top.split()), name
    for name in ("DeepProfiler", "IN Carta", "cytominer-database"):
        assert name in source_help, name


def test_the_readme_usage_block_lists_every_option_of_every_command():
    readme = (REPO / "README.md").read_text()
    usage = re.search(r"```\n(celltable inspect.*?)```", readme, re.S).group(1)
    command = typer.main.get_command(app)
    for name in ("convert", "inspect", "validate"):
        sub = command.commands[name]  # type: ignore[attr-defined]
        for param in sub.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                longest = max(param.opts, key=len)
                assert longest in usage, f"{name} {longest}"
    assert "--skip-bad-files" in usage and "--base" in usage


def test_the_migration_guide_shows_how_to_bring_cytotable_join_sql():
    text = (REPO / "docs" / "migrating-from-cytotable.md").read_text()
    assert "read_parquet('cytoplasm.parquet')" in text and "--join-sql" in text
    assert "--base Cells --drop-compartment Cytoplasm" in text


def test_inspect_and_convert_refuse_a_base_the_preset_file_cannot_name():
    with pytest.raises(InvalidPresetError, match="cannot name a compartment"):
        from celltable.domain.preset_file import override_builtin
        from celltable.domain.presets import get_preset

        override_builtin(get_preset("cellprofiler_csv"), base="Image")
