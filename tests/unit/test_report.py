from __future__ import annotations

import json

import pytest

from celltable.application.convert import Services, convert
from celltable.domain.join import derive_join
from celltable.domain.model import ConversionOptions, ConversionRequest, PlateRows, TableReport
from celltable.domain.output import plan_output
from celltable.domain.presets import IMAGE, SourceFormat, get_preset
from celltable.domain.report import (
    REPORT_VERSION,
    ColumnCast,
    MissingColumns,
    PeakMemory,
    RunReport,
    column_differences,
    report_json,
    tables_read,
    values_not_cast,
    widened_in_source,
)
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import (
    Plate,
    SkippedFile,
    SourceLayout,
    StagedPlate,
    StagedTable,
    TableLocation,
)
from tests.fakes import FakeDestination, FakeEngine, FakeSource, FakeWriter, SyncRunner

PRESET = get_preset("cellprofiler_csv")
INT, FLOAT, TEXT = DataType.INT64, DataType.FLOAT64, DataType.STRING
KEYS = [("ImageNumber", INT), ("ObjectNumber", INT)]


def _unit(key, cells, *, rows=5, image=True, not_cast=(), widened=()):
    """A staged CSV plate under ``/src/<key>``: Cells has ``cells`` besides its keys."""
    def table(name, cols, n=rows, **extra):
        return StagedTable(name, TableSchema(name, tuple(Column(c, t) for c, t in cols)), n, (),
                           **extra)
    tables = [
        table("Cytoplasm", [*KEYS, ("Parent_Cells", INT), ("Parent_Nuclei", INT)]),
        table("Cells", KEYS + cells, not_cast=not_cast, widened=widened),
        table("Nuclei", KEYS),
    ]
    if image:
        tables.insert(0, table(IMAGE, [("ImageNumber", INT), ("Metadata_Well", TEXT)], 1))
    where = f"/src/{key}"
    locations = tuple(TableLocation(t.table, f"{where}/{t.table}.csv", t.table) for t in tables)
    return StagedPlate(Plate(key, SourceFormat.CSV, where, locations), key, tuple(tables))


def _plan(*plates):
    return plan_output(PRESET, "joined", (IMAGE, *derive_join(PRESET).tables), plates, joined=True)


def test_a_plate_lacking_columns_is_named_with_its_file_and_the_columns():
    a = _unit("a", [("AreaShape_Area", FLOAT), ("AreaShape_Perimeter", FLOAT)])
    b = _unit("b", [("AreaShape_Area", FLOAT)])
    diff = column_differences(_plan(a, b), [a, b])
    assert diff.missing == (
        MissingColumns("joined", "b", "Cells", "/src/b/Cells.csv", ("Cells_AreaShape_Perimeter",)),)
    assert diff.added == ("Metadata_TableNumber",)
    assert diff.cast == ()


def test_a_plate_without_a_whole_table_lacks_its_columns_with_no_file():
    a = _unit("a", [])
    b = _unit("b", [], image=False)
    (gap,) = column_differences(_plan(a, b), [a, b]).missing
    assert (gap.plate, gap.table, gap.path, gap.columns) == ("b", IMAGE, None, ("Metadata_Well",))


def test_columns_typed_differently_are_cast_and_the_plates_that_changed_are_named():
    a = _unit("a", [("AreaShape_Area", INT), ("Count", INT)])
    b = _unit("b", [("AreaShape_Area", FLOAT), ("Count", INT)])
    c = _unit("c", [("AreaShape_Area", INT), ("Count", TEXT)])
    diff = column_differences(_plan(a, b, c), [a, b, c])
    assert set(diff.cast) == {
        ColumnCast("joined", "Cells_AreaShape_Area", FLOAT, (("a", INT), ("c", INT))),
        ColumnCast("joined", "Cells_Count", TEXT, (("a", INT), ("b", INT))),
    }


def test_a_table_without_rows_casts_nothing():
    a = _unit("a", [("AreaShape_Area", FLOAT)])
    empty = _unit("e", [("AreaShape_Area", INT)], rows=0)  # a header-only CSV reads as int64
    assert column_differences(_plan(a, empty), [a, empty]).cast == ()


def test_float32_storage_is_not_taken_for_a_difference_between_plates():
    a = _unit("a", [("AreaShape_Area", FLOAT)])
    b = _unit("b", [("AreaShape_Area", FLOAT)])
    plan = plan_output(PRESET, "joined", (IMAGE, *derive_join(PRESET).tables), [a, b],
                       joined=True, float32=True)
    assert column_differences(plan, [a, b]).cast == ()


def test_values_not_cast_and_widened_columns_come_from_the_staged_tables():
    a = _unit("a", [("Count", INT), ("Area", FLOAT)], not_cast=(("Count", 3),), widened=("Area",))
    (junk,) = values_not_cast([a])
    assert (junk.plate, junk.table, junk.column, junk.type, junk.values) == ("a", "Cells", "Count",
                                                                              INT, 3)
    assert widened_in_source([a]) == (("a", "Cells", "Area"),)


def test_skipped_files_keep_their_reasons_and_a_missing_reason_is_said():
    layout = SourceLayout("/src", (), ("/src/x.csv",), ("empty file (0 bytes)",))
    assert layout.skipped_files() == (SkippedFile("/src/x.csv", "empty file (0 bytes)"),)
    assert SourceLayout("/src", (), ("/src/y.csv",)).skipped_files()[0].reason == "not read"
    with pytest.raises(ValueError, match="one reason"):
        SourceLayout("/src", (), ("/src/x.csv",), ("a", "b"))


def _report(a, b):
    return RunReport(
        source="/src", dest="/out.parquet", preset="cellprofiler_csv", join=True,
        producer="celltable", version="1.0",
        used=("/src/a/Cells.csv",), skipped=(SkippedFile("/src/a/PH3.csv", "header only"),),
        read=tables_read([a, b]),
        tables=(TableReport("joined", "/out.parquet", 10, 9, 12, 1,
                            (("Cytoplasm.Parent_Cells -> Cells", 1),),
                            (PlateRows("a", 10, 9, 1, (("Cytoplasm.Parent_Cells -> Cells", 1),)),
                             PlateRows("b", 0, 0))),),
        differences=(("joined", column_differences(_plan(a, b), [a, b])),),
        duration_s=1.23456, peak_memory=PeakMemory(100, 50),
    )


def test_the_json_report_has_a_version_relative_paths_and_rows_per_stage():
    a = _unit("a", [("AreaShape_Area", INT)])
    b = _unit("b", [("AreaShape_Area", FLOAT)], rows=0)
    data = report_json(_report(a, b))
    json.dumps(data)  # plain data only
    assert data["report_version"] == REPORT_VERSION
    assert data["files"] == {"found": 2, "used": ["a/Cells.csv"],
                             "skipped": [{"path": "a/PH3.csv", "reason": "header only"}]}
    assert data["rows_read"] == {IMAGE: 1 + 1, "Cytoplasm": 5, "Cells": 5, "Nuclei": 5}
    assert [t["path"] for t in data["tables_without_rows"]] == [
        "b/Cytoplasm.csv", "b/Cells.csv", "b/Nuclei.csv"]
    assert data["outputs"] == [{
        "table": "joined", "path": "/out.parquet", "columns": 12, "rows_in": 10, "rows_out": 9,
        "rows_dropped": 1, "rows_unaccounted": 0, "orphans": {"Cytoplasm.Parent_Cells -> Cells": 1},
        "null_object_numbers": 0,
        "plates": [
            {"plate": "a", "rows_in": 10, "rows_out": 9, "rows_dropped": 1,
             "orphans": {"Cytoplasm.Parent_Cells -> Cells": 1}, "null_object_numbers": 0},
            {"plate": "b", "rows_in": 0, "rows_out": 0, "rows_dropped": 0, "orphans": {},
             "null_object_numbers": 0}]}]
    assert data["duration_s"] == 1.235
    assert data["peak_memory_bytes"] == {"process": 100, "workers": 50}
    # b has no rows, but its float type still makes the column float64: a's integers are cast
    assert data["columns"]["cast"] == [{"table": "joined", "column": "Cells_AreaShape_Area",
                                        "type": "float64", "from": {"a": "int64"}}]


# the use case ------------------------------------------------------------------------------


def _plate(area=1.5, extra=None):
    image = [{"ImageNumber": 1, "Metadata_Well": "A01"}]
    cells = [{"ImageNumber": 1, "ObjectNumber": o, "AreaShape_Area": area, **(extra or {})}
             for o in (1, 2)]
    nuclei = [{"ImageNumber": 1, "ObjectNumber": o} for o in (1, 2)]
    cyto = [{"ImageNumber": 1, "ObjectNumber": o, "Parent_Cells": o, "Parent_Nuclei": o}
            for o in (1, 2)]
    return {"Image": image, "Cells": cells, "Cytoplasm": cyto, "Nuclei": nuclei}


def _convert(plates, *, fail_on_chunk=None, **opts):
    source = FakeSource(plates)
    services = Services(
        locator=source, engine=FakeEngine(source, fail_on_chunk), writer=FakeWriter(),
        destination=FakeDestination(), runner=SyncRunner(), memory_budget=2**30,
        producer="celltable", version="test", peak_memory=lambda: PeakMemory(7),
    )
    request = ConversionRequest("src", "out.parquet", PRESET, ConversionOptions(**opts))
    return convert(request, services), services


def test_a_conversion_writes_its_report_beside_the_output_and_returns_it():
    result, services = _convert({"a": _plate(area=1), "b": _plate(area=2.5, extra={"Extra": 1})})
    assert result.report_path == "out.parquet.report.json"
    data = json.loads(services.destination.texts["out.parquet.report.json"])
    assert data["columns"]["missing"][0]["plate"] == "a"
    assert data["columns"]["missing"][0]["columns"] == ["Cells_Extra"]
    assert data["columns"]["cast"] == [{"table": "joined", "column": "Cells_AreaShape_Area",
                                        "type": "float64", "from": {"a": "int64"}}]
    assert data["peak_memory_bytes"] == {"process": 7, "workers": 0}
    assert result.report is not None and result.report.tables == result.tables


def test_the_report_goes_where_asked_or_nowhere_with_a_dash():
    result, services = _convert({"a": _plate()}, report_path="logs/run.json")
    assert result.report_path == "logs/run.json" and list(services.destination.texts) == [
        "logs/run.json"]
    result, services = _convert({"a": _plate()}, report_path="-")
    assert result.report_path is None and services.destination.texts == {}
    assert result.report is not None


def test_a_failed_conversion_writes_no_report():
    with pytest.raises(Exception, match="disk on fire"):
        _convert({"a": _plate()}, fail_on_chunk=0)


def test_counts_add_rows_drops_and_missing_partners_relationship_by_relationship():
    a = PlateRows("a", 10, 7, 3, (("Cytoplasm.Parent_Cells -> Cells", 2),
                                  ("Cytoplasm.Parent_Nuclei -> Nuclei", 1)), null_objects=1)
    b = PlateRows("b", 5, 4, 1, (("Cytoplasm.Parent_Cells -> Cells", 1),), null_objects=0)
    total = TableReport("joined", "out", 0, 0, 3).plus(a).plus(b)
    assert (total.rows_in, total.rows_out, total.dropped, total.null_objects) == (15, 11, 4, 1)
    assert dict(total.missing) == {"Cytoplasm.Parent_Cells -> Cells": 3,
                                   "Cytoplasm.Parent_Nuclei -> Nuclei": 1}
    assert total.unaccounted == 0
    assert a.plus(b).plate == "a" and a.plus(b).rows_in == 15


def test_per_plate_drops_and_null_object_numbers_name_only_the_plates_that_have_them():
    plates = (PlateRows("a", 10, 7, 3), PlateRows("b", 5, 5, 0, null_objects=2),
              PlateRows("c", 1, 1))
    report = TableReport("joined", "out", 16, 13, 3, dropped=3, plates=plates, null_objects=2)
    assert report.dropped_by_plate() == {"a": 3}
    assert report.null_objects_by_plate() == {"b": 2}


def test_a_published_table_reports_its_path_under_the_destination():
    staged = TableReport("cells", "/d/.staging/out/cells.parquet", 1, 1, 2)
    assert staged.published_at("/d/out", "/d/.staging/out").path == "/d/out/cells.parquet"


def test_the_bad_files_of_a_run_are_the_skipped_files_that_cannot_be_read():
    skipped = (SkippedFile("/src/a/Cells.csv", "bad file: cut short"),
               SkippedFile("/src/a/notes.txt", "not a table of the preset"))
    report = RunReport("/src", "/out", "cellprofiler_csv", True, "celltable", "t", (), skipped,
                       (), ())
    assert report.bad_files == skipped[:1]
