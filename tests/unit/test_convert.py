from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import pytest

from celltable.application.convert import Services, convert
from celltable.domain.errors import (
    DestinationError,
    ExecutionError,
    InPlaceReadFailed,
    SchemaError,
)
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import get_preset
from tests.fakes import FakeDestination, FakeEngine, FakeSource, FakeWriter, SyncRunner

PRESET = get_preset("cellprofiler_csv")


def _plate(images=2, per_image=3, orphan=False, area=1.5):
    image = [{"ImageNumber": i, "Metadata_Well": f"A0{i}", "FileName_DNA": f"{i}.tif"}
             for i in range(1, images + 1)]
    cells, cyto, nuclei = [], [], []
    for i in range(1, images + 1):
        for o in range(1, per_image + 1):
            cells.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": area})
            nuclei.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": 2 * area})
            cyto.append({"ImageNumber": i, "ObjectNumber": o, "Parent_Cells": o,
                         "Parent_Nuclei": o, "AreaShape_Area": 3 * area})
    if orphan:
        cyto.append({"ImageNumber": 1, "ObjectNumber": 99, "Parent_Cells": 99, "Parent_Nuclei": 1,
                     "AreaShape_Area": 0.0})
    return {"Image": image, "Cells": cells, "Cytoplasm": cyto, "Nuclei": nuclei}


def _services(plates, *, fail_on_chunk=None, destination=None):
    source = FakeSource(plates)
    return Services(
        locator=source, engine=FakeEngine(source, fail_on_chunk), writer=FakeWriter(),
        destination=destination or FakeDestination(), runner=SyncRunner(),
        memory_budget=2**30, producer="celltable", version="test",
    )


def _run(plates, **opts):
    services = _services(plates)
    request = ConversionRequest("src", "out.parquet", PRESET, ConversionOptions(**opts))
    return convert(request, services), services


def test_one_row_per_cytoplasm_object_with_image_metadata():
    result, services = _run({"p": _plate()})
    out = services.writer.files["staged"]
    assert result.rows_out == len(out["rows"]) == 6
    assert out["columns"][:4] == ["Metadata_TableNumber", "Metadata_ImageNumber",
                                  "Metadata_ObjectNumber", "Metadata_Cytoplasm_Parent_Cells"]
    row = out["rows"][0]
    assert row["Metadata_Well"] == "A01" and row["Cells_AreaShape_Area"] == 1.5
    assert row["Nuclei_AreaShape_Area"] == 3.0 and row["Cytoplasm_AreaShape_Area"] == 4.5


def test_plates_never_mix_and_each_row_names_its_plate():
    result, services = _run({"a": _plate(), "b": _plate(area=10.0)}, chunk_size=2)
    rows = services.writer.files["staged"]["rows"]
    assert result.rows_out == 12
    assert {r["Metadata_TableNumber"] for r in rows} == {"a", "b"}
    for r in rows:
        assert r["Cells_AreaShape_Area"] == (1.5 if r["Metadata_TableNumber"] == "a" else 10.0)


def test_an_orphan_is_counted_not_silently_lost():
    result, services = _run({"p": _plate(orphan=True)})
    (table,) = result.tables
    assert (table.rows_in, table.rows_out, table.dropped) == (7, 6, 1)
    # every relationship is listed, as the DuckDB engine lists it (tests/e2e/test_api.py)
    assert dict(table.missing) == {"Cytoplasm.Parent_Cells -> Cells": 1,
                                   "Cytoplasm.Parent_Nuclei -> Nuclei": 0}
    assert table.unaccounted == 0
    prov = json.loads(services.writer.files["staged"]["metadata"]["celltable.provenance"])
    assert prov["rows_dropped"] == 1 and prov["rows_in"] == 7


def test_the_chunk_size_changes_nothing_in_the_output():
    _, one = _run({"p": _plate(images=5)}, chunk_size=1)
    _, big = _run({"p": _plate(images=5)}, chunk_size=1000)
    assert one.writer.files["staged"]["rows"] == big.writer.files["staged"]["rows"]


def test_a_failed_chunk_names_itself_and_publishes_nothing():
    services = _services({"p": _plate(images=3)}, fail_on_chunk=1)
    request = ConversionRequest("src", "out.parquet", PRESET, ConversionOptions(chunk_size=1))
    with pytest.raises(ExecutionError, match=r"plate 'p' chunk 1 .*disk on fire"):
        convert(request, services)
    assert services.destination.published == [] and services.destination.discarded == 1


def test_an_existing_destination_is_refused_without_overwrite():
    services = _services({"p": _plate()}, destination=FakeDestination(existing={"out.parquet"}))
    request = ConversionRequest("src", "out.parquet", PRESET)
    with pytest.raises(DestinationError):
        convert(request, services)


def test_the_destination_is_told_the_sources_before_anything_is_staged():
    services = _services({"p": _plate()})
    convert(ConversionRequest("src", "out.parquet", PRESET), services)
    layout = services.locator.discover("src", PRESET)
    paths = {u.path for u in layout.plates} | {t.path for u in layout.plates for t in u.tables}
    assert services.destination.sources[0] == "src"
    assert set(services.destination.sources) == {"src", *paths}


def test_a_destination_beside_the_source_is_fine():
    services = _services({"p": _plate()})
    request = ConversionRequest("src", "src-out.parquet", PRESET)
    assert convert(request, services).rows_out == 6


def test_a_plate_without_a_compartment_cannot_join():
    plate = _plate()
    del plate["Nuclei"]
    with pytest.raises(SchemaError, match=r"plate 'p'.*no Nuclei table.*--no-join"):
        _run({"p": plate})


def test_without_join_each_table_is_written_on_its_own():
    result, services = _run({"p": _plate()}, join=False)
    assert [t.name for t in result.tables] == ["Image", "Cytoplasm", "Cells", "Nuclei"]
    assert [t.rows_out for t in result.tables] == [2, 6, 6, 6]
    assert set(services.writer.files) == {"staged/image.parquet", "staged/cytoplasm.parquet",
                                         "staged/cells.parquet", "staged/nuclei.parquet"}


@dataclass
class _InPlaceFails(FakeEngine):
    """Plate ``b`` cannot be read in place (a value unlike its type), only from a copy."""

    released: list = field(default_factory=list)

    def stage(self, plate, preset, staging_dir, copy=False, share=1):
        staged = super().stage(plate, preset, staging_dir, copy, share)
        return replace(staged, handle="copy" if copy else "in place")

    def read_chunk(self, staged, query):
        if staged.plate.key == "b" and staged.handle == "in place":
            raise InPlaceReadFailed("b", "a value past the sniffer's sample")
        return super().read_chunk(staged, query)

    def release(self, staged):
        self.released.append((staged.plate.key, staged.handle))


def test_a_plate_that_cannot_be_read_in_place_is_copied_and_the_output_written_again():
    _, expected = _run({"a": _plate(), "b": _plate(area=10.0)})
    services = _services({"a": _plate(), "b": _plate(area=10.0)})
    services = replace(services, engine=_InPlaceFails(services.locator))
    result = convert(ConversionRequest("src", "out.parquet", PRESET), services)
    assert result.rows_out == 12 and result.plates == ("a", "b")
    assert services.writer.files["staged"]["rows"] == expected.writer.files["staged"]["rows"]
    assert services.engine.released == [("b", "in place"), ("a", "in place"), ("b", "copy")]


def test_memory_housekeeping_is_held_around_the_conversion_and_done_after_each_chunk():
    events = []

    @contextmanager
    def held():
        events.append("held")
        yield
        events.append("let go")

    services = replace(_services({"p": _plate(images=3)}), around_conversion=held,
                       after_chunk=lambda: events.append("chunk"))
    convert(ConversionRequest("src", "out.parquet", PRESET, ConversionOptions(chunk_size=1)),
            services)
    assert events == ["held", "chunk", "chunk", "chunk", "let go"]
