from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine, sqlite_extension
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.errors import SchemaError, SourceReadError
from celltable.domain.presets import get_preset
from celltable.domain.schema import DataType

CSV = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")


def test_the_sqlite_extension_comes_from_the_pinned_wheel():
    import duckdb

    path = sqlite_extension()
    assert path.endswith("sqlite_scanner.duckdb_extension")
    assert f"v{duckdb.__version__}" in path


def test_staging_counts_rows_per_image_and_maps_types(tmp_path, nf1_sqlite):
    unit = LocalSourceLocator().discover(str(nf1_sqlite), SQLITE).units[0]
    staged = DuckDBEngine().stage(unit, SQLITE, str(tmp_path))
    cyto = staged.table("Cytoplasm")
    assert cyto.rows == 242 == sum(n for _, n in cyto.rows_by_image)
    assert len(cyto.rows_by_image) == 32
    assert cyto.schema.type_of("Cytoplasm_AreaShape_Area") is DataType.FLOAT64
    assert staged.table("Image").schema.type_of("Image_Metadata_Well") is DataType.STRING


def test_names_with_quotes_spaces_and_keywords_are_quoted_not_pasted(tmp_path, example_human):
    from celltable import convert

    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    text = (src / "Cells.csv").read_text()
    header, rest = text.split("\n", 1)
    cols = header.split(",")
    cols[2], cols[3] = '"a ""quoted"" name"', "select"
    (src / "Cells.csv").write_text(",".join(cols) + "\n" + rest)
    dest = tmp_path / "o.parquet"
    convert(src, dest)
    names = pq.read_schema(dest).names
    assert 'Cells_a "quoted" name' in names and "Cells_select" in names
    assert pq.read_metadata(dest).num_rows == 289


def test_a_text_image_key_is_a_named_error(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    text = (src / "Cells.csv").read_text().splitlines()
    text[1] = "x" + text[1][1:]  # ImageNumber "x" instead of 1
    (src / "Cells.csv").write_text("\n".join(text) + "\n")
    unit = LocalSourceLocator().discover(str(src), CSV).units[0]
    with pytest.raises(SchemaError, match="ImageNumber"):
        DuckDBEngine().stage(unit, CSV, str(tmp_path))


def test_a_sqlite_file_that_is_not_a_database_is_a_read_error(tmp_path):
    bad = tmp_path / "plate.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SourceReadError, match=r"plate\.sqlite"):
        LocalSourceLocator().discover(str(bad), SQLITE)
