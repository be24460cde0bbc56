"""The ``ChunkStore`` port's behaviour, on the fake and on the local store (Arrow IPC files)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from celltable.adapters.chunk_store import LocalChunkStore
from celltable.domain.join import ChunkQuery, SelectColumn
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.plan import Chunk
from celltable.domain.presets import get_preset
from celltable.domain.resume import chunk_key, run_identity
from celltable.domain.schema import Column, DataType
from celltable.domain.sources import ChunkOutput
from tests.fakes import FakeChunkStore

PRESET = get_preset("cellprofiler_csv")
CHUNK = Chunk("plate", 0, 1, 2, 4)
ROWS = pa.table({"Metadata_TableNumber": ["plate"] * 3, "Metadata_ObjectNumber": [1, None, 3],
                 "Cells_AreaShape_Area": [1.5, 2.5, None]})
OUTPUT = ChunkOutput(CHUNK, ROWS, rows_out=3, rows_in=4, dropped=1,
                     missing=(("Cytoplasm.Parent_Cells -> Cells", 1),), null_objects=1)


class Store:
    """A store under test, and how its sources change (a file rewritten, for the local one)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.source = tmp_path / "Cells.csv"
        self.source.write_text("ImageNumber,ObjectNumber\n1,1\n")
        self.folder = tmp_path / "resume"
        self.folder.mkdir()
        self.store = FakeChunkStore() if kind == "fake" else LocalChunkStore(str(self.folder))

    def rerun(self) -> FakeChunkStore | LocalChunkStore:
        """The store a later run opens on the same resume folder."""
        if isinstance(self.store, FakeChunkStore):
            return self.store.open(str(self.folder))
        return LocalChunkStore(str(self.folder))

    def change_source(self) -> None:
        if self.kind == "fake":
            self.store.source_version = "v2"
        else:
            self.source.write_text("ImageNumber,ObjectNumber\n1,1\n1,2\n")


@pytest.fixture(params=["fake", "local"])
def store(request, tmp_path) -> Store:
    return Store(request.param, tmp_path)


def _key(store: Store) -> str:
    """A chunk's key as the convert use case makes it, from the store's source versions."""
    request = ConversionRequest("src", "out.parquet", PRESET, ConversionOptions())
    columns = [Column(c, DataType.STRING) for c in ROWS.column_names]
    run = run_identity(request, "cells", columns, store.store.versions([str(store.source)]))
    return chunk_key(run, ChunkQuery(CHUNK, (SelectColumn("x", DataType.STRING),), "Cells",
                                     "ImageNumber"))


def _rows(data: object) -> list[dict]:
    return data.to_pylist() if isinstance(data, pa.Table) else list(data)  # type: ignore[attr-defined]


def test_nothing_is_saved_under_a_new_key(store):
    assert store.store.saved(_key(store)) is None


def test_a_saved_chunk_comes_back_with_its_counts_and_rows(store):
    key = _key(store)
    store.store.save(key, OUTPUT)
    saved = store.store.saved(key)
    assert saved is not None and saved.key == key
    assert (saved.rows_out, saved.rows_in, saved.dropped, saved.missing, saved.null_objects) == (
        OUTPUT.rows_out, OUTPUT.rows_in, OUTPUT.dropped, OUTPUT.missing, OUTPUT.null_objects)
    assert _rows(store.store.load(saved)) == ROWS.to_pylist()


def test_saving_a_key_again_replaces_its_chunk(store):
    key = _key(store)
    store.store.save(key, OUTPUT)
    fewer = ChunkOutput(CHUNK, ROWS.slice(0, 1), rows_out=1, rows_in=1)
    store.store.save(key, fewer)
    saved = store.store.saved(key)
    assert saved.rows_out == 1 and _rows(store.store.load(saved)) == ROWS.slice(0, 1).to_pylist()


def test_chunks_of_other_keys_are_kept_apart(store):
    key = _key(store)
    store.store.save(key, OUTPUT)
    assert store.store.saved(key[::-1]) is None


def test_a_changed_source_version_invalidates_its_saved_chunks(store):
    before = store.store.versions([str(store.source)])
    key = _key(store)
    store.store.save(key, OUTPUT)
    store.change_source()
    assert store.store.versions([str(store.source)]) != before
    assert _key(store) != key and store.store.saved(_key(store)) is None


def test_a_later_run_finds_the_chunks_an_earlier_one_saved(store):
    key = _key(store)
    store.store.save(key, OUTPUT)
    later = store.rerun()
    saved = later.saved(key)
    assert saved is not None and saved.rows_out == OUTPUT.rows_out
    assert _rows(later.load(saved)) == ROWS.to_pylist()
