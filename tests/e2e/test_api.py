from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import celltable


def test_the_result_reports_paths_rows_and_time(tmp_path, example_human):
    dest = tmp_path / "eh.parquet"
    result = celltable.convert(example_human, dest, preset="cellprofiler_csv")
    assert result.dest_path == str(dest)
    assert result.plates == ("ExampleHuman",)
    assert dict(result.source_rows) == {"Image": 1, "Cells": 289, "Cytoplasm": 289, "Nuclei": 289}
    (table,) = result.tables
    assert (table.rows_in, table.rows_out, table.dropped, table.unaccounted) == (289, 289, 0, 0)
    assert table.path == str(dest) and table.columns == pq.read_schema(dest).__len__()
    assert result.duration_s > 0


def test_the_output_is_the_same_whatever_the_chunk_size_and_threads(tmp_path, nf1_sqlite):
    tables = []
    for i, (chunk, threads) in enumerate([(None, None), (1, 1), (37, 2)]):
        dest = tmp_path / f"nf1_{i}.parquet"
        celltable.convert(nf1_sqlite, dest, preset="cellprofiler_sqlite", chunk_size=chunk,
                          options=celltable.ConversionOptions(threads=threads))
        tables.append(pq.read_table(dest))
    assert tables[0].num_rows == 242
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_an_orphan_cytoplasm_is_counted_and_reported(tmp_path, example_human):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    lines = (src / "Cells.csv").read_text().splitlines(keepends=True)
    (src / "Cells.csv").write_text("".join(lines[:-2]))  # the last two cells go missing
    result = celltable.convert(src, tmp_path / "o.parquet")
    (table,) = result.tables
    assert (table.rows_in, table.rows_out, table.dropped) == (289, 287, 2)
    assert dict(table.missing) == {"Cytoplasm.Parent_Cells -> Cells": 2,
                                   "Cytoplasm.Parent_Nuclei -> Nuclei": 0}


def test_users_can_pass_their_own_join_sql(tmp_path, nf1_sqlite):
    sql = ('SELECT c."ImageNumber", c."Cytoplasm_Number_Object_Number", i."Image_Metadata_Well" '
           'FROM "Cytoplasm" c JOIN "Image" i USING ("ImageNumber")')
    result = celltable.convert(nf1_sqlite, tmp_path / "o.parquet", preset="cellprofiler_sqlite",
                               options=celltable.ConversionOptions(join_sql=sql))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column_names == ["Metadata_TableNumber", "ImageNumber",
                                  "Cytoplasm_Number_Object_Number", "Image_Metadata_Well"]
    assert result.rows_out == table.num_rows == 242


def test_bad_join_sql_is_a_named_error_and_writes_nothing(tmp_path, nf1_sqlite):
    dest = tmp_path / "o.parquet"
    with pytest.raises(celltable.SchemaError, match="join SQL"):
        celltable.convert(nf1_sqlite, dest, preset="cellprofiler_sqlite",
                          options=celltable.ConversionOptions(join_sql="SELECT nope FROM Cells"))
    assert list(tmp_path.iterdir()) == []


def test_a_parsl_config_runs_the_tasks(tmp_path, example_human):
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    config = Config(executors=[ThreadPoolExecutor(max_threads=2, label="user")],
                    run_dir=str(tmp_path / "runinfo"))
    result = celltable.convert(example_human, tmp_path / "o.parquet", chunk_size=50,
                               parsl_config=config)
    assert result.rows_out == 289


def test_an_unsupported_destination_type_is_refused(tmp_path, example_human):
    with pytest.raises(celltable.CelltableError, match="'anndata_loom' is not one celltable "
                                                       "writes; use one of parquet, h5ad, zarr"):
        celltable.convert(example_human, tmp_path / "o", dest_datatype="anndata_loom")
    assert not (tmp_path / "o").exists()


def test_the_source_is_never_changed(tmp_path, nf1_sqlite, example_human):
    import hashlib
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(nf1_sqlite, src / "plate.sqlite")
    before = hashlib.sha256((src / "plate.sqlite").read_bytes()).hexdigest()
    for copy in (False, True):
        sql = 'SELECT * FROM "Image"' if copy else None
        celltable.convert(src, tmp_path / f"o{copy}.parquet", preset="cellprofiler_sqlite",
                          options=celltable.ConversionOptions(join_sql=sql))
    assert sorted(p.name for p in src.iterdir()) == ["plate.sqlite"]
    assert hashlib.sha256((src / "plate.sqlite").read_bytes()).hexdigest() == before


def test_preset_changes_apply_to_the_detected_preset_as_the_options_do(tmp_path, example_human):
    detected = []
    changes = celltable.PresetChanges(drop=("Nuclei",))
    result = celltable.convert(example_human, tmp_path / "o.parquet", changes=changes,
                               on_detected=detected.append)
    assert [d.preset for d in detected] == ["cellprofiler_csv"]
    assert result.preset == "cellprofiler_csv (customised)"
    names = pq.read_schema(tmp_path / "o.parquet").names
    assert not any(n.startswith("Nuclei_") for n in names)
    assert any(n.startswith("Cells_") for n in names)
    inspection = celltable.inspect(example_human, changes=changes)
    assert "Nuclei" not in {t.table for p in inspection.plates for t in p.tables}
