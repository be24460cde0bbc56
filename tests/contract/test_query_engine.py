"""The ``QueryEngine`` port's behaviour: DuckDB (plates as CSV folders, read in place or staged
as a copy) and the fake (the same plates as rows in memory) give the same chunk outputs.

Only the port's methods are used (``stage``, ``chunk_sources``, ``read_chunk``, ``release``,
``describe``); the queries are built from the domain's plan as the convert use case builds
them. Outputs are compared with each value's Python type, so an integer the fake leaves where
DuckDB casts to a float is a difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.join import ChunkQuery, derive_join
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import check_join_columns, plan_output
from celltable.domain.plan import plan_chunks
from celltable.domain.ports import QueryEngine
from celltable.domain.presets import IMAGE, get_preset
from celltable.domain.sources import ChunkOutput, SourceLayout
from tests.fakes import FakeEngine, FakeSource
from tests.integration.test_describe import _write_plate

PRESET = get_preset("cellprofiler_csv")
ORDER = (TABLE_NUMBER, image_number(PRESET), OBJECT_NUMBER)
Plate = dict[str, list[dict[str, Any]]]


def _plate(images: int = 2, per_image: int = 3, area: float | int = 1.5) -> Plate:
    image = [{"ImageNumber": i, "Metadata_Well": f"A0{i}", "FileName_DNA": f"{i}.tif"}
             for i in range(1, images + 1)]
    cells, cyto, nuclei = [], [], []
    for i in range(1, images + 1):
        for o in range(1, per_image + 1):
            cells.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": area * o})
            nuclei.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": 2 * area * o})
            cyto.append({"ImageNumber": i, "ObjectNumber": o, "Parent_Cells": o,
                         "Parent_Nuclei": o, "AreaShape_Area": 3 * area * o})
    return {"Image": image, "Cells": cells, "Cytoplasm": cyto, "Nuclei": nuclei}


def _orphans() -> Plate:
    """A cytoplasm without its cell, one without its nucleus, one without either."""
    plate = _plate(images=3)
    plate["Cytoplasm"] += [
        {"ImageNumber": 1, "ObjectNumber": 7, "Parent_Cells": 99, "Parent_Nuclei": 1,
         "AreaShape_Area": 0.5},
        {"ImageNumber": 2, "ObjectNumber": 8, "Parent_Cells": 1, "Parent_Nuclei": 99,
         "AreaShape_Area": 0.25},
        {"ImageNumber": 3, "ObjectNumber": 9, "Parent_Cells": 98, "Parent_Nuclei": 98,
         "AreaShape_Area": 0.125},
    ]
    plate["Cytoplasm"].sort(key=lambda r: r["ImageNumber"])
    return plate


def _objects_out_of_order() -> Plate:
    """Images in order, each image's objects stored last first."""
    plate = _plate(images=3)
    for rows in plate.values():
        rows.sort(key=lambda r: (r["ImageNumber"], -r.get("ObjectNumber", 0)))
    return plate


def _images_out_of_order() -> Plate:
    plate = _plate(images=3)
    for name in ("Cells", "Cytoplasm"):
        plate[name].sort(key=lambda r: -r["ImageNumber"])
    return plate


def _without_an_image_row() -> Plate:
    plate = _plate(images=3)
    plate["Image"] = [r for r in plate["Image"] if r["ImageNumber"] != 2]
    return plate


def _null_object_numbers() -> Plate:
    plate = _plate(images=2)
    plate["Nuclei"][1]["ObjectNumber"] = None
    return plate


PLATES: dict[str, Callable[[], dict[str, Plate]]] = {
    "plain": lambda: {"p1": _plate()},
    "two plates, integer and float areas": lambda: {"p1": _plate(), "p2": _plate(area=2)},
    "orphans": lambda: {"p1": _orphans()},
    "objects out of order": lambda: {"p1": _objects_out_of_order()},
    "images out of order": lambda: {"p1": _images_out_of_order()},
    "an image without its image row": lambda: {"p1": _without_an_image_row()},
    "NULL object numbers": lambda: {"p1": _null_object_numbers()},
}


def _value(v: Any) -> tuple[str, Any]:
    return type(v).__name__, v


def _rows(data: object) -> list[tuple[tuple[str, tuple[str, Any]], ...]]:
    rows = data.to_pylist() if hasattr(data, "to_pylist") else data  # type: ignore[attr-defined]
    return [tuple((k, _value(v)) for k, v in row.items()) for row in rows]  # type: ignore[union-attr]


def _outcome(out: ChunkOutput) -> tuple[Any, ...]:
    return (out.chunk, out.rows_out, out.rows_in, out.dropped, dict(out.missing),
            out.null_objects, _rows(out.data))


def _convert(engine: QueryEngine, layout: SourceLayout, scratch: str, *, joined: bool,
             chunk_size: int, copy: bool) -> dict[str, Any]:
    """Every output table's chunk outcomes, and what staging found of each table."""
    staged = [engine.stage(u, PRESET, scratch, copy=copy) for u in layout.units]
    try:
        tables: dict[str, Any] = {
            f"{s.unit.key}/{t}": (s.table(t).schema, s.table(t).rows, s.table(t).rows_by_image)
            for s in staged for t in PRESET.tables if s.table(t) is not None}
        spec = derive_join(PRESET)
        outputs = [("joined", (IMAGE, *spec.tables), spec.base)] if joined else \
            [(t.lower(), (t,), t) for t in PRESET.tables]
        for name, sources, base in outputs:
            plan = plan_output(PRESET, name, sources, staged, joined=joined)
            tables[name] = [(c.name, c.type) for c in plan.columns]
            for s in staged:
                join = check_join_columns(PRESET, spec, s) if joined else None
                queries = [ChunkQuery(chunk, plan.selects_for(s.unit.key), base, PRESET.image_key,
                                      join=join, order_by=ORDER)
                           for chunk in plan_chunks(s.unit.key, s.table(base).rows_by_image,
                                                    chunk_size)]
                for source, query in zip(engine.chunk_sources(s, queries), queries, strict=True):
                    tables.setdefault(f"{name} chunks", []).append(
                        _outcome(engine.read_chunk(source, query)))
        return tables
    finally:
        for s in staged:
            engine.release(s)


# a chunk per image both ways; one chunk per plate, joined from the source itself
COMBINATIONS = [
    *(pytest.param(joined, 1, copy, id=f"{'joined' if joined else 'per table'}-"
                   f"{'copied' if copy else 'in place'}-chunk per image")
      for joined in (True, False) for copy in (False, True)),
    pytest.param(True, 1000, False, id="joined-in place-one chunk"),
]


@pytest.mark.parametrize(("joined", "chunk_size", "copy"), COMBINATIONS)
@pytest.mark.parametrize("case", sorted(PLATES))
def test_duckdb_and_the_fake_give_the_same_chunks(case, joined, chunk_size, copy, tmp_path):
    plates = PLATES[case]()
    (tmp_path / "src").mkdir()
    for key, plate in plates.items():
        _write_plate(tmp_path / "src" / key, plate)
    layout = LocalSourceLocator().discover(str(tmp_path / "src"), PRESET)
    assert sorted(u.key for u in layout.units) == sorted(plates)
    real = _convert(DuckDBEngine(), layout, str(tmp_path), joined=joined,
                    chunk_size=chunk_size, copy=copy)
    fake = _convert(FakeEngine(FakeSource(plates)), layout, str(tmp_path), joined=joined,
                    chunk_size=chunk_size, copy=copy)
    assert fake == real


def test_a_plate_is_described_alike_without_staging(tmp_path):
    plates = {"p1": _orphans()}
    _write_plate(tmp_path / "p1", plates["p1"])
    (unit,) = LocalSourceLocator().discover(str(tmp_path / "p1"), PRESET).units
    real = DuckDBEngine().describe(unit, PRESET)
    fake = FakeEngine(FakeSource(plates)).describe(unit, PRESET)
    assert {t.table: (t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in fake.tables} \
        == {t.table: (t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in real.tables}
    assert dict(fake.orphans) == dict(real.orphans) == {
        "Cytoplasm.Parent_Cells -> Cells": 2, "Cytoplasm.Parent_Nuclei -> Nuclei": 2}
