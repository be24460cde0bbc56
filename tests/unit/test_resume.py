"""Resuming (saved chunks reused only when nothing they depend on changed) and one file per plate."""

from __future__ import annotations

import json

import pytest

from celltable.application.convert import Services, convert
from celltable.domain.errors import ExecutionError, InvalidOptionError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.output import partition_files
from celltable.domain.presets import get_preset
from tests.fakes import (
    FakeChunkStore,
    FakeDestination,
    FakeEngine,
    FakeSource,
    FakeWriter,
    SyncRunner,
)
from tests.unit.test_convert import _plate

PRESET = get_preset("cellprofiler_csv")


def _convert(plates, store, *, fail_on_chunk=None, **opts):
    source = FakeSource(plates)
    engine = FakeEngine(source, fail_on_chunk)
    services = Services(
        locator=source, engine=engine, writer=FakeWriter(), destination=FakeDestination(),
        runner=SyncRunner(), memory_budget=2**30, producer="celltable", version="test",
        chunk_store=store.open,
    )
    options = ConversionOptions(resume=True, chunk_size=3, **opts)
    result = convert(ConversionRequest("src", "out.parquet", PRESET, options), services)
    return result, services


def _reads(engine: FakeEngine, calls: list[int]) -> None:
    """Record the chunks the engine converts."""
    original = engine.read_chunk

    def read_chunk(staged, query):
        calls.append(query.chunk.index)
        return original(staged, query)

    engine.read_chunk = read_chunk  # type: ignore[method-assign]


def test_a_failed_run_resumes_from_the_chunks_it_finished():
    store = FakeChunkStore()
    plates = {"p": _plate(images=5)}
    with pytest.raises(ExecutionError):
        _convert(plates, store, fail_on_chunk=3)
    assert len(store.saves) == 3  # chunks 0, 1, 2 were written and saved

    resumed, services = _convert(plates, store)
    _, fresh = _convert(plates, FakeChunkStore())
    assert services.writer.files["staged"]["rows"] == fresh.writer.files["staged"]["rows"]
    assert len(store.loaded) == 3 and resumed.rows_out == 15
    (table,) = resumed.tables
    assert (table.rows_in, table.rows_out, table.dropped) == (15, 15, 0)


def test_reused_chunks_are_not_converted_again():
    store = FakeChunkStore()
    plates = {"p": _plate(images=5, orphan=True)}
    first, _ = _convert(plates, store)
    source = FakeSource(plates)
    engine = FakeEngine(source)
    calls: list[int] = []
    _reads(engine, calls)
    services = Services(
        locator=source, engine=engine, writer=FakeWriter(), destination=FakeDestination(),
        runner=SyncRunner(), memory_budget=2**30, producer="celltable", version="test",
        chunk_store=store.open,
    )
    again = convert(ConversionRequest("src", "out.parquet", PRESET,
                                      ConversionOptions(resume=True, chunk_size=3)), services)
    assert calls == []
    # the counts of reused chunks are the counts first computed, orphans included
    assert again.tables[0].dropped == first.tables[0].dropped == 1
    assert again.tables[0].missing == first.tables[0].missing


def test_a_changed_source_invalidates_the_saved_chunks():
    store = FakeChunkStore()
    plates = {"p": _plate(images=4)}
    _convert(plates, store)
    store.source_version = "v2"
    store.loaded.clear()
    changed = {"p": _plate(images=4, area=9.0)}
    _, services = _convert(changed, store)
    assert store.loaded == []
    assert {r["Cells_AreaShape_Area"] for r in services.writer.files["staged"]["rows"]} == {9.0}


def test_changed_options_invalidate_the_saved_chunks():
    store = FakeChunkStore()
    plates = {"p": _plate(images=4)}
    _convert(plates, store)
    store.loaded.clear()
    source = FakeSource(plates)
    services = Services(
        locator=source, engine=FakeEngine(source), writer=FakeWriter(),
        destination=FakeDestination(), runner=SyncRunner(), memory_budget=2**30,
        producer="celltable", version="test", chunk_store=store.open,
    )
    convert(ConversionRequest("src", "out.parquet", PRESET,
                              ConversionOptions(resume=True, chunk_size=6)), services)
    assert store.loaded == []  # other chunks (two images each): nothing reused


def test_without_resume_nothing_is_saved():
    store = FakeChunkStore()
    source = FakeSource({"p": _plate()})
    services = Services(
        locator=source, engine=FakeEngine(source), writer=FakeWriter(),
        destination=FakeDestination(), runner=SyncRunner(), memory_budget=2**30,
        producer="celltable", version="test", chunk_store=store.open,
    )
    convert(ConversionRequest("src", "out.parquet", PRESET, ConversionOptions()), services)
    assert store.saves == {}


def test_partitioned_output_has_one_file_per_plate_with_its_own_counts():
    plates = {"a": _plate(images=2), "b/c": _plate(images=3, orphan=True)}
    result, services = _convert(plates, FakeChunkStore(), partition_by="plate")
    files = services.writer.files
    assert set(files) == {"staged/a.parquet", "staged/b_c.parquet"}
    assert len(files["staged/a.parquet"]["rows"]) == 6
    assert len(files["staged/b_c.parquet"]["rows"]) == 9
    assert {r["Metadata_TableNumber"] for r in files["staged/b_c.parquet"]["rows"]} == {"b/c"}
    assert files["staged/a.parquet"]["columns"] == files["staged/b_c.parquet"]["columns"]
    prov = json.loads(files["staged/b_c.parquet"]["metadata"]["celltable.provenance"])
    assert (prov["rows_in"], prov["rows_out"], prov["rows_dropped"]) == (10, 9, 1)
    assert [s["plate"] for s in prov["sources"]] == ["b/c"]
    (table,) = result.tables
    assert (table.rows_in, table.rows_out, table.dropped) == (16, 15, 1)


def test_partition_names_are_safe_and_unique():
    names = partition_files(["plate 1", "plate_1", "a/b.sqlite", "..", "Plate_1"])
    assert names == {"plate 1": "plate_1.parquet", "plate_1": "plate_1-2.parquet",
                     "a/b.sqlite": "a_b.sqlite.parquet", "..": "plate.parquet",
                     "Plate_1": "Plate_1-3.parquet"}


def test_an_unknown_partition_is_a_named_error():
    with pytest.raises(InvalidOptionError, match="partition_by"):
        ConversionOptions(partition_by="well")
