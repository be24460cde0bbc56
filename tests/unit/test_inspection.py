from __future__ import annotations

from dataclasses import replace

import pytest

from celltable.application.inspect import InspectServices, inspect
from celltable.domain import detect as detect_module
from celltable.domain.detect import SourceKind, SourceSurvey
from celltable.domain.errors import NoTablesFoundError
from celltable.domain.inspection import (
    PlateDescription,
    Severity,
    TableDescription,
    find_issues,
    key_columns,
    orphan_checks,
)
from celltable.domain.presets import SourceFormat, get_preset
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import Plate, SourceLayout
from tests.fakes import FakeEngine, FakeSource, FakeSurveyor
from tests.unit.test_convert import _plate

CSV = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")
INT, F, S = DataType.INT64, DataType.FLOAT64, DataType.STRING


def _schema(table, **cols):
    return TableSchema(table, tuple(Column(n, t) for n, t in cols.items()))


def _table(table, rows=10, **cols):
    return TableDescription(table, table, _schema(table, **cols), rows)


def _plate_tables(**overrides):
    tables = {
        "Image": _table("Image", 2, ImageNumber=INT, Metadata_Well=S),
        "Cytoplasm": _table("Cytoplasm", ImageNumber=INT, ObjectNumber=INT, Parent_Cells=INT,
                            Parent_Nuclei=INT, AreaShape_Area=F),
        "Cells": _table("Cells", ImageNumber=INT, ObjectNumber=INT, Parent_Nuclei=INT),
        "Nuclei": _table("Nuclei", ImageNumber=INT, ObjectNumber=INT),
    }
    tables.update(overrides)
    return tuple(t for t in tables.values() if t is not None)


def _unit(key="p", orphans=(), **overrides):
    return PlateDescription(Plate(key, SourceFormat.CSV, key, ()), _plate_tables(**overrides),
                           orphans)


def _messages(issues, severity=None):
    return [i.message for i in issues if severity is None or i.severity is severity]


def test_a_sound_plate_has_no_issues():
    assert find_issues(CSV, [_unit()]) == ()


def test_key_columns_name_the_image_key_object_number_and_parent_references():
    nf1 = _schema("Cytoplasm", ImageNumber=INT, Cytoplasm_Number_Object_Number=INT,
                  Cytoplasm_Parent_Cells=INT, Cytoplasm_Parent_Nuclei=INT, Cytoplasm_AreaShape_Area=F)
    keys = key_columns(SQLITE, "Cytoplasm", nf1)
    assert keys.image == "ImageNumber" and keys.object == "Cytoplasm_Number_Object_Number"
    assert keys.parents == ("Cytoplasm_Parent_Cells", "Cytoplasm_Parent_Nuclei")
    assert key_columns(CSV, "Cells", _schema("Cells", AreaShape_Area=F)).object is None


def test_a_missing_image_table_warns_and_a_missing_compartment_is_an_error():
    issues = find_issues(CSV, [_unit(Image=None, Nuclei=None)])
    assert issues[0].severity is Severity.ERROR  # errors come first
    assert any("no Nuclei table (Nuclei)" in m and "--no-join" in m
               for m in _messages(issues, Severity.ERROR))
    assert any("no image table" in m for m in _messages(issues, Severity.WARNING))


def test_orphans_are_reported_with_their_relationship():
    issues = find_issues(CSV, [_unit(orphans=(("Cytoplasm.Parent_Cells -> Cells", 3),
                                              ("Cytoplasm.Parent_Nuclei -> Nuclei", 0)))])
    assert _messages(issues) == ["3 of 10 Cytoplasm rows have no partner in "
                                 "Cytoplasm.Parent_Cells -> Cells: a joined conversion drops them"]


def test_keys_that_are_not_whole_numbers_are_named():
    cyto = replace(_table("Cytoplasm", ImageNumber=S, ObjectNumber=F, Parent_Cells=S,
                          Parent_Nuclei=INT), fractional=(("ObjectNumber", 3),))
    msgs = _messages(find_issues(CSV, [_unit(Cytoplasm=cyto)]))
    assert "Cytoplasm.ImageNumber holds string values, not whole numbers" in msgs
    assert any(m.startswith("Cytoplasm.ObjectNumber holds 3 value(s) that are not whole numbers: "
                            "a conversion fails") for m in msgs)
    assert any(m.startswith("Cytoplasm.Parent_Cells holds string") for m in msgs)


def test_whole_numbers_read_as_floating_point_are_not_flagged():
    cyto = _table("Cytoplasm", ImageNumber=INT, ObjectNumber=F, Parent_Cells=F, Parent_Nuclei=INT)
    assert not [m for m in _messages(find_issues(CSV, [_unit(Cytoplasm=cyto)]))
                if "whole" in m]


def test_orphans_are_only_counted_where_keys_are_whole_numbers():
    schemas = {t.table: t.schema for t in _plate_tables(
        Cells=_table("Cells", ImageNumber=INT, ObjectNumber=S))}
    assert [s.describe() for s in orphan_checks(CSV, schemas)] == [
        "Cytoplasm.Parent_Nuclei -> Nuclei"]


def test_missing_and_repeated_keys_warn():
    cells = TableDescription("Cells", "Cells", _schema("Cells", ImageNumber=INT, ObjectNumber=INT),
                             10, null_keys=2, duplicate_keys=1)
    msgs = _messages(find_issues(CSV, [_unit(Cells=cells)]), Severity.WARNING)
    assert "2 Cells rows have no ImageNumber" in msgs
    assert any(m.startswith("1 Cells rows repeat an (image, object) key") for m in msgs)


def test_columns_typed_number_in_one_plate_and_text_in_another_are_flagged():
    text = _table("Cytoplasm", ImageNumber=INT, ObjectNumber=INT, Parent_Cells=INT, Parent_Nuclei=INT,
                  AreaShape_Area=S)
    msgs = _messages(find_issues(CSV, [_unit("a"), _unit("b", Cytoplasm=text)]))
    assert any("Cytoplasm.AreaShape_Area" in m and "become text" in m for m in msgs)


def test_skipped_files_are_mentioned():
    issues = find_issues(CSV, [_unit()], ["PH3.csv", "Experiment.csv"])
    assert [(i.severity, i.message) for i in issues] == [
        (Severity.INFO, "not read (no table of preset cellprofiler_csv has that name): "
                        "PH3.csv, Experiment.csv")]


class _Locator:
    """FakeSource, but finding only plates whose table names the preset knows."""

    def __init__(self, source):
        self.source = source

    def discover(self, source_path, preset):
        if preset.name != "cellprofiler_csv":
            raise NoTablesFoundError("no")
        return SourceLayout(source_path, self.source.discover(source_path, preset).plates,
                            (f"{source_path}/PH3.csv",))


def _services(plates, survey=None):
    source = FakeSource(plates)
    return InspectServices(_Locator(source), FakeEngine(source),
                           FakeSurveyor(survey or SourceSurvey("src")))


def test_inspect_detects_the_preset_and_describes_every_plate():
    report = inspect("src", _services({"a": _plate(images=2), "b": _plate(images=3)}))
    assert report.preset == "cellprofiler_csv" and report.detection.preset == "cellprofiler_csv"
    assert [u.plate.key for u in report.plates] == ["a", "b"]
    assert report.plates[1].table("Cytoplasm").rows == 9
    assert dict(report.plates[0].orphans) == {"Cytoplasm.Parent_Cells -> Cells": 0,
                                              "Cytoplasm.Parent_Nuclei -> Nuclei": 0}
    assert _messages(report.issues) == [
        "not read (no table of preset cellprofiler_csv has that name): PH3.csv"]


def test_inspect_counts_the_orphans_a_conversion_would_drop():
    report = inspect("src", _services({"p": _plate(orphan=True)}))
    assert dict(report.plates[0].orphans)["Cytoplasm.Parent_Cells -> Cells"] == 1
    assert any("1 of 7 Cytoplasm rows have no partner" in m for m in _messages(report.issues))


def test_inspect_names_a_kind_it_cannot_convert_and_refuses_the_unknown(monkeypatch):
    monkeypatch.setattr(detect_module, "KINDS", (
        SourceKind("tool", "Some tool's files", recognise=lambda s: s.count(".tool") > 0),))
    empty = _services({}, SourceSurvey("src", ((".tool", 4),)))
    report = inspect("src", empty)
    assert report.preset is None and report.detection.kind.name == "tool"
    assert report.issues[0].severity is Severity.ERROR
    with pytest.raises(NoTablesFoundError, match="no built-in preset finds tables"):
        inspect("src", _services({}))
