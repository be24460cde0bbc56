"""User presets on real data: a second segmentation added by a preset file or by options,
nuclei dropped, and preset files that are wrong failing in one line.

The second segmentation is what a CellProfiler pipeline writes when it segments the same image
twice (say with Cellpose) and relates the two with RelateObjects: ``Cells_Cellpose3.csv``,
``Cytoplasm_Cellpose3.csv``, ``Nuclei_Cellpose3.csv`` (their own object numbers and parent
columns) and a ``Parent_Cytoplasm_Cellpose3`` column in ``Cytoplasm.csv``. Expected rows and
values are computed here from the CSV files with the csv module."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app
from celltable.domain.presets import PRESETS, get_preset
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE
from tests.e2e.test_cli import _convert, _fails

runner = CliRunner()

SEGMENTATION = ("Cytoplasm", "Cells", "Nuclei")
UNRELATED = (3, 50, 51, 200)  # Cytoplasm objects RelateObjects found no Cellpose3 object for

CELLPOSE_TOML = """\
# ExampleHuman segmented twice: CellProfiler's objects and Cellpose3's
extends = "cellprofiler_csv"
name = "example_cellpose3"
relationships = [
    "Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3",
    "Cytoplasm_Cellpose3.Parent_Cells_Cellpose3 -> Cells_Cellpose3",
    { child = "Cytoplasm_Cellpose3", column = "Parent_Nuclei_Cellpose3", parent = "Nuclei_Cellpose3" },
]

[compartments.Cytoplasm_Cellpose3]
[compartments.Cells_Cellpose3]
table = "Cells_Cellpose3"
[compartments.Nuclei_Cellpose3]
object_number = "ObjectNumber"
"""


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or ()), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)


def _renamed(header: list[str]) -> dict[str, str]:
    """Parent and children columns as the second segmentation's modules name them."""
    out = {}
    for col in header:
        new = col
        for name in SEGMENTATION:
            new = new.replace(f"Parent_{name}", f"Parent_{name}_Cellpose3")
            new = new.replace(f"Children_{name}_Count", f"Children_{name}_Cellpose3_Count")
        out[col] = new
    return out


def second_segmentation(folder: Path) -> Path:
    """A copy of ExampleHuman with a second segmentation related to the first.

    Cellpose3 numbers the same objects the other way round (object k of n is CellProfiler's
    n + 1 - k), so a correct join finds, for every row, Cellpose3 features equal to CellProfiler's.
    """
    shutil.copytree(EXAMPLE_HUMAN, folder)
    counts = {}
    for name in SEGMENTATION:
        header, rows = _read(folder / f"{name}.csv")
        counts[name] = {}
        for r in rows:
            image = r["ImageNumber"]
            counts[name][image] = max(counts[name].get(image, 0), int(r["ObjectNumber"]))
    for name in SEGMENTATION:
        header, rows = _read(folder / f"{name}.csv")
        names = _renamed(header)
        out = []
        for r in rows:
            image = r["ImageNumber"]
            new = {names[c]: v for c, v in r.items()}
            new["ObjectNumber"] = str(counts[name][image] + 1 - int(r["ObjectNumber"]))
            for parent in SEGMENTATION:
                col = f"Parent_{parent}"
                if col in r and int(r[col]) > 0:
                    new[f"{col}_Cellpose3"] = str(counts[parent][image] + 1 - int(r[col]))
            out.append(new)
        out.sort(key=lambda r: (int(r["ImageNumber"]), int(r["ObjectNumber"])))
        _write(folder / f"{name}_Cellpose3.csv", [names[c] for c in header], out)
    header, rows = _read(folder / "Cytoplasm.csv")
    for r in rows:
        n = int(r["ObjectNumber"])
        related = n not in UNRELATED
        r["Parent_Cytoplasm_Cellpose3"] = str(counts["Cytoplasm"][r["ImageNumber"]] + 1 - n
                                              if related else 0)
    _write(folder / "Cytoplasm.csv", [*header, "Parent_Cytoplasm_Cellpose3"], rows)
    return folder


def _objects(folder: Path, table: str) -> dict[tuple[str, str], dict[str, str]]:
    _, rows = _read(folder / f"{table}.csv")
    return {(r["ImageNumber"], r["ObjectNumber"]): r for r in rows}


def _expected_keys(folder: Path, segmentations: int = 2, with_nuclei: bool = True) -> set:
    """The (image, object) keys of the cytoplasm objects whose every partner exists."""
    names = ["Cells", "Nuclei"] + (
        ["Cytoplasm_Cellpose3", "Cells_Cellpose3", "Nuclei_Cellpose3"] if segmentations == 2 else [])
    tables = {t: _objects(folder, t) for t in names}
    kept = set()
    for (image, number), r in _objects(folder, "Cytoplasm").items():
        partners = [("Cells", r["Parent_Cells"])]
        if with_nuclei:
            partners.append(("Nuclei", r["Parent_Nuclei"]))
        if segmentations == 2:
            second = tables["Cytoplasm_Cellpose3"].get((image, r["Parent_Cytoplasm_Cellpose3"]))
            if second is None:
                continue
            partners += [("Cells_Cellpose3", second["Parent_Cells_Cellpose3"]),
                         ("Nuclei_Cellpose3", second["Parent_Nuclei_Cellpose3"])]
        if all((image, ref) in tables[t] for t, ref in partners):
            kept.add((int(image), int(number)))
    return kept


def _features(folder: Path, table: str) -> set[str]:
    header, _ = _read(folder / f"{table}.csv")
    return {c for c in header if c not in ("ImageNumber", "ObjectNumber")
            and not c.startswith("Parent_")}


@pytest.fixture
def cellpose(tmp_path: Path) -> tuple[Path, Path]:
    src = second_segmentation(tmp_path / "plate")
    preset_file = tmp_path / "cellpose.toml"
    preset_file.write_text(CELLPOSE_TOML)
    return src, preset_file


def test_a_preset_file_joins_a_second_segmentation_beside_the_first(cellpose, tmp_path):
    src, preset_file = cellpose
    dest = tmp_path / "out.parquet"
    result = _convert(src, dest, "--preset-file", preset_file)
    assert result.exit_code == 0, result.output
    expected = _expected_keys(src)
    assert len(expected) == 289 - len(UNRELATED)
    line = next(ln for ln in result.output.splitlines() if "out.parquet:" in ln)
    assert f"{len(expected)} rows" in line
    # a row without its Cytoplasm_Cellpose3 has no Cellpose3 cell or nucleus either: counted
    # under each relationship, as every missing partner is
    # counted once, where the chain broke, not again for the partners beyond it
    assert line.endswith(f"; {len(UNRELATED)} dropped ({len(UNRELATED)} without Cytoplasm_Cellpose3)")

    table = pq.read_table(dest)
    keys = set(zip(table.column("Metadata_ImageNumber").to_pylist(),
                   table.column("Metadata_ObjectNumber").to_pylist(), strict=True))
    assert keys == expected and table.num_rows == len(expected)
    names = table.column_names
    for compartment in ("Cytoplasm", "Cells", "Nuclei"):
        for suffix in ("", "_Cellpose3"):
            prefix = f"{compartment}{suffix}_"
            features = {c[len(prefix):] for c in names if c.startswith(prefix)
                        and (suffix or not c.startswith(f"{compartment}_Cellpose3_"))}
            assert features == _features(src, f"{compartment}{suffix}"), prefix
    # the same objects numbered the other way round: equal features prove the chain joined right
    for compartment in SEGMENTATION:
        for feature in ("AreaShape_Area", "Intensity_MeanIntensity_DNA"):
            first = table.column(f"{compartment}_{feature}").to_pylist()
            second = table.column(f"{compartment}_Cellpose3_{feature}").to_pylist()
            assert first == second and any(v is not None for v in first), feature
    assert "Metadata_Cytoplasm_Cellpose3_Parent_Cells_Cellpose3" in names
    # each compartment's columns stay together, in the preset's order
    groups = [c.split("_AreaShape_Area")[0] for c in names if c.endswith("_AreaShape_Area")]
    assert groups == ["Cytoplasm", "Cells", "Nuclei", "Cytoplasm_Cellpose3", "Cells_Cellpose3",
                      "Nuclei_Cellpose3"]
    assert celltable.validate(dest).ok


def test_the_python_api_takes_a_preset_file_path_or_the_loaded_preset(cellpose, tmp_path):
    src, preset_file = cellpose
    preset = celltable.load_preset(preset_file)
    assert preset.name == "example_cellpose3"
    by_path = celltable.convert(src, tmp_path / "a.parquet", preset=preset_file)
    by_str = celltable.convert(src, tmp_path / "b.parquet", preset=str(preset_file))
    loaded = celltable.convert(src, tmp_path / "c.parquet", preset=preset)
    (t,) = by_path.tables
    assert by_path.preset == by_str.preset == loaded.preset == "example_cellpose3"
    assert (t.rows_in, t.rows_out, t.dropped) == (289, 289 - len(UNRELATED), len(UNRELATED))
    assert dict(t.missing)["Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3"] == len(
        UNRELATED)
    first = pq.read_table(tmp_path / "a.parquet")
    assert first.equals(pq.read_table(tmp_path / "b.parquet"))
    assert first.equals(pq.read_table(tmp_path / "c.parquet"))


def test_options_add_the_same_segmentation_without_a_file(cellpose, tmp_path):
    src, preset_file = cellpose
    celltable.convert(src, tmp_path / "file.parquet", preset=preset_file)
    args = []
    for name in ("Cytoplasm_Cellpose3", "Cells_Cellpose3", "Nuclei_Cellpose3"):
        args += ["--compartment", name]
    args += ["--relationship", "Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3",
             "--relationship", "Cytoplasm_Cellpose3.Parent_Cells_Cellpose3 -> Cells_Cellpose3",
             # the column as the preset names references: Parent_Nuclei_Cellpose3
             "--relationship", "Cytoplasm_Cellpose3 -> Nuclei_Cellpose3"]
    dest = tmp_path / "options.parquet"
    result = _convert(src, dest, *args)  # preset detected, then changed
    assert result.exit_code == 0, result.output
    assert pq.read_table(dest).equals(pq.read_table(tmp_path / "file.parquet"))


def test_dropping_nuclei_joins_cytoplasm_with_cells_only(tmp_path):
    src = tmp_path / "plate"
    shutil.copytree(EXAMPLE_HUMAN, src)
    header, rows = _read(src / "Nuclei.csv")
    _write(src / "Nuclei.csv", header, [r for r in rows if int(r["ObjectNumber"]) % 10])
    with_nuclei = celltable.convert(src, tmp_path / "all.parquet").tables[0]
    expected = _expected_keys(src, segmentations=1, with_nuclei=False)
    assert with_nuclei.rows_out == len(_expected_keys(src, segmentations=1)) < len(expected)

    dest = tmp_path / "no_nuclei.parquet"
    result = _convert(src, dest, "--drop-compartment", "Nuclei")
    assert result.exit_code == 0, result.output
    table = pq.read_table(dest)
    keys = set(zip(table.column("Metadata_ImageNumber").to_pylist(),
                   table.column("Metadata_ObjectNumber").to_pylist(), strict=True))
    assert keys == expected and table.num_rows == len(expected) == 289
    assert not [c for c in table.column_names if c.startswith("Nuclei_")]
    assert {c[len("Cells_"):] for c in table.column_names if c.startswith("Cells_")} == (
        _features(src, "Cells"))
    assert "Metadata_Cytoplasm_Parent_Nuclei" in table.column_names  # a reference, kept
    meta = pq.read_metadata(dest).metadata
    assert b"(customised)" in meta[b"celltable.provenance"]


def test_inspect_reads_with_a_preset_file(cellpose):
    src, preset_file = cellpose
    result = runner.invoke(app, ["inspect", str(src), "--preset-file", str(preset_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["preset"] == "example_cellpose3"
    (plate,) = report["plates"]
    tables = {t["table"]: t for t in plate["tables"]}
    assert set(tables) == {"Image", *SEGMENTATION, *(f"{n}_Cellpose3" for n in SEGMENTATION)}
    assert tables["Cytoplasm"]["parent_references"] == [
        "Parent_Cells", "Parent_Nuclei", "Parent_Cytoplasm_Cellpose3"]
    assert plate["orphans"]["Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3"] == len(
        UNRELATED)
    people = runner.invoke(app, ["inspect", str(src), "--drop-compartment", "Nuclei"])
    assert people.exit_code == 0, people.output
    assert "cellprofiler_csv (customised)" in people.output


def test_a_sqlite_preset_file_names_new_tables_and_columns_as_the_preset_does(tmp_path):
    src = tmp_path / "plate.sqlite"
    shutil.copy(NF1_SQLITE, src)
    with sqlite3.connect(src) as con:
        columns = [r[1] for r in con.execute('PRAGMA table_info("Per_Cells")')]
        renamed = ", ".join(
            f'"{c}" AS "{c.replace("Cells_", "Cells_Cellpose3_", 1)}"' for c in columns)
        con.execute(f'CREATE TABLE "Per_Cells_Cellpose3" AS SELECT {renamed} FROM "Per_Cells"')
        con.execute('ALTER TABLE "Per_Cytoplasm" ADD COLUMN "Cytoplasm_Parent_Cells_Cellpose3" '
                    "INTEGER")
        con.execute('UPDATE "Per_Cytoplasm" SET "Cytoplasm_Parent_Cells_Cellpose3" = '
                    '"Cytoplasm_Parent_Cells"')
    preset_file = tmp_path / "nf1_cellpose.toml"
    preset_file.write_text('extends = "cellprofiler_sqlite"\n'
                           'relationships = ["Cytoplasm -> Cells_Cellpose3"]\n'
                           "[compartments.Cells_Cellpose3]\n")
    preset = celltable.load_preset(preset_file)
    added = preset.compartments[-1]
    assert (added.table, added.object_number) == ("Per_Cells_Cellpose3",
                                                  "Cells_Cellpose3_Number_Object_Number")
    assert preset.relationships[-1].column == "Cytoplasm_Parent_Cells_Cellpose3"
    result = celltable.convert(src, tmp_path / "out.parquet", preset=preset_file)
    (t,) = result.tables
    assert (t.rows_in, t.rows_out, t.dropped) == (242, 242, 0)
    table = pq.read_table(tmp_path / "out.parquet")
    cells = [c for c in table.column_names if c.startswith("Cells_") and "Cellpose3" not in c]
    second = [c for c in table.column_names if c.startswith("Cells_Cellpose3_")]
    assert len(second) == len(cells) > 300
    assert table.column("Cells_Cellpose3_AreaShape_Area").equals(
        table.column("Cells_AreaShape_Area"))
    # the same columns as without the preset file, and the second segmentation's
    plain = set(pq.read_schema(_plain(src, tmp_path)).names)
    assert set(table.column_names) - plain == {*second, "Metadata_Cells_Cellpose3_Parent_Nuclei"}
    assert plain <= set(table.column_names)


def _plain(src: Path, tmp: Path) -> Path:
    dest = tmp / "plain.parquet"
    celltable.convert(src, dest, preset=get_preset("cellprofiler_sqlite"))
    return dest


# errors: one line, exit 1, nothing written -------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ('extends = "cellprofiler_csv"\nrelationships = ["Cytoplasm.Parent_Cels -> Cels"]\n',
     ("bad.toml", "'Cels'", "did you mean 'Cells'?")),
    ('extends = "cellprofiler_csv"\nrelationship = []\n',
     ("bad.toml", "unknown key 'relationship'", "did you mean 'relationships'?")),
    ('extends = "cellprofiler_csv"\n\n[compartments.Cells_Cellpose3\n',
     ("bad.toml", "not valid TOML", "line 3")),
    ('extends = "cellprofiler_csv"\n[compartments.Cells_Cellpose3]\n',
     ("Cells_Cellpose3 is not connected", "Cytoplasm.Parent_Cells_Cellpose3 -> Cells_Cellpose3")),
])
def test_an_invalid_preset_file_fails_in_one_line_naming_the_fix(tmp_path, text, words):
    preset_file = tmp_path / "bad.toml"
    preset_file.write_text(text)
    dest = tmp_path / "out.parquet"
    _fails(_convert(EXAMPLE_HUMAN, dest, "--preset-file", preset_file), dest, *words)
    with pytest.raises(celltable.InvalidPresetError) as raised:
        celltable.convert(EXAMPLE_HUMAN, dest, preset=preset_file)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    result = runner.invoke(app, ["inspect", str(EXAMPLE_HUMAN), "--preset-file", str(preset_file)])
    assert result.exit_code == 1 and words[0] in result.output


@pytest.mark.parametrize(("args", "words"), [
    (("--preset-file", "nowhere.toml"), ("nowhere.toml", "does not exist")),
    (("--preset", "cellprofiler_csv", "--preset-file", "x.toml"), ("--preset-file", "not both")),
    (("--drop-compartment", "Cytoplasm"), ("'Cytoplasm' is the base", "--base Cells --drop-compartment Cytoplasm")),
    (("--drop-compartment", "Nucleus"), ("cannot drop 'Nucleus'", "did you mean 'Nuclei'?")),
    (("--relationship", "Cytoplasm.Parent_Cells"), ("--relationship", "Child.Column -> Parent")),
    (("--compartment", "Cells Cellpose"), ("--compartment", "letters, digits and _")),
    (("--relationship", "Cells.Parent_Nuclei -> Nuclei", "--relationship",
      "Cytoplasm.Parent_Nuclei -> Nuclei"), ("Nuclei is reached twice",)),
])
def test_invalid_overrides_fail_in_one_line(tmp_path, args, words):
    dest = tmp_path / "out.parquet"
    _fails(_convert(EXAMPLE_HUMAN, dest, *args), dest, *words)


def test_the_presets_page_lists_every_built_in_preset():
    page = (Path(__file__).resolve().parents[2] / "docs" / "presets.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines()
            if line.startswith("| `")}
    assert set(PRESETS) <= rows, set(PRESETS) - rows
