from __future__ import annotations

import pytest

from celltable.application.detect import detect, preset_to_convert
from celltable.domain.detect import (
    KINDS,
    Detection,
    PresetMatch,
    SourceKind,
    SourceSurvey,
    choose_preset,
    kind_of,
)
from celltable.domain.errors import NoTablesFoundError, UnsupportedSourceError
from celltable.domain.presets import PRESETS
from celltable.domain.sources import Plate, SourceLayout, TableLocation
from tests.fakes import FakeSurveyor


def test_every_builtin_preset_reads_exactly_one_kind():
    for name in PRESETS:
        assert sum(name in k.presets for k in KINDS) == 1, name
    assert all(p in PRESETS for k in KINDS for p in k.presets)


def test_the_preset_finding_most_tables_wins():
    d = choose_preset("src", [PresetMatch("cellprofiler_csv", 1, 2),
                              PresetMatch("cellprofiler_sqlite", 2, 8)])
    assert (d.preset, d.kind.name, d.ambiguous) == ("cellprofiler_sqlite", "cellprofiler_sqlite", False)
    assert [m.preset for m in d.matches] == ["cellprofiler_sqlite", "cellprofiler_csv"]
    assert d.explain().startswith("detected preset cellprofiler_sqlite (8 tables in 2 plate(s))")


def test_variants_of_one_kind_are_no_ambiguity_the_first_preset_wins():
    d = choose_preset("src", [PresetMatch("cellprofiler_sqlite_pycytominer", 1, 4),
                              PresetMatch("cellprofiler_sqlite", 1, 4)])
    assert (d.preset, d.ambiguous) == ("cellprofiler_sqlite", False)


def test_a_tie_between_kinds_falls_back_to_the_default_and_says_so():
    d = choose_preset("src", [PresetMatch("cellprofiler_sqlite", 1, 4),
                              PresetMatch("cellprofiler_csv", 1, 4)])
    assert (d.preset, d.ambiguous) == ("cellprofiler_csv", True)
    assert "cellprofiler_sqlite" in d.explain() and "--preset" in d.explain()


def test_deepprofiler_is_recognised_from_npz_files_and_gets_its_preset():
    d = choose_preset("src", [], SourceSurvey("s", ((".npz", 2),)))
    assert (d.kind.name, d.kind.supported, d.preset) == ("deepprofiler", True, "deepprofiler")
    assert preset_to_convert(d).name == "deepprofiler"


def test_kinds_without_presets_are_recognised_but_not_supported():
    d = Detection("src", SourceKind("tool", "Some tool's files"), None)
    assert not d.kind.supported
    with pytest.raises(UnsupportedSourceError, match="cannot convert yet"):
        preset_to_convert(d)


@pytest.mark.parametrize("header", [('"OBJECT ID"', "Row", "WELL LABEL"),
                                    ("OBJECT ID", " well label ")])
def test_in_carta_is_recognised_from_its_columns_and_gets_its_preset(header):
    d = choose_preset("src", [], SourceSurvey("s", ((".csv", 1),), (("t 0.csv", header),)))
    assert (d.kind.name, d.preset) == ("in_carta", "in-carta")
    assert preset_to_convert(d).name == "in-carta" and "in-carta" in d.explain()


def test_nothing_recognised_converts_with_the_default_preset_so_its_error_names_the_files():
    d = choose_preset("src", [], SourceSurvey("s", ((".txt", 3),)))
    assert d.kind is None and d.preset is None
    assert preset_to_convert(d).name == "cellprofiler_csv"
    assert kind_of("mine") is None


class _Locator:
    """Finds the plates whose tables a preset names (table names per plate, in memory)."""

    def __init__(self, plates: dict[str, list[str]]) -> None:
        self.plates = plates

    def discover(self, source_path, preset):
        plates = []
        for key, names in self.plates.items():
            tables = tuple(TableLocation(t, key, n) for n in names
                           if (t := preset.match_table(n)) is not None)
            if tables:
                plates.append(Plate(key, preset.source_format, key, tables))
        if not plates:
            raise NoTablesFoundError("none")
        return SourceLayout(source_path, tuple(plates))


def test_detection_tries_every_preset_on_the_source():
    locator = _Locator({"a.sqlite": ["Per_Image", "Per_Cells", "Per_Cytoplasm", "Per_Nuclei",
                                     "Per_Experiment"]})
    d = detect("src", locator, FakeSurveyor(SourceSurvey("src")))
    assert d.preset == "cellprofiler_sqlite"
    assert {m.preset: m.tables for m in d.matches} == {
        "cellprofiler_sqlite": 4, "cellprofiler_sqlite_pycytominer": 4}


def test_the_survey_is_taken_only_when_no_preset_matches():
    class Refuses:
        def survey(self, source_path):
            raise AssertionError("not needed")

    assert detect("src", _Locator({"p": ["Image", "Cells"]}), Refuses()).preset == "cellprofiler_csv"
    d = detect("src", _Locator({"p": ["A01_5.npz"]}),
               FakeSurveyor(SourceSurvey("src", ((".npz", 1),))))
    assert d.kind.name == "deepprofiler"
