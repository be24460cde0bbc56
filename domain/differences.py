"""How the plates of one output table differ in their columns: columns a plate lacks (NULL in
its rows), columns typed differently (cast to one type), columns celltable adds. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from celltable.domain.output import OutputPlan
from celltable.domain.schema import DataType, unify_types
from celltable.domain.sources import StagedPlate


@dataclass(frozen=True, slots=True)
class MissingColumns:
    """Output columns one plate lacks (NULL in its rows), grouped by the table that gives them in
    the other plates.

    Attributes:
        output: The output table (``"joined"``, or the table's name with ``join=False``).
        plate: The plate lacking them.
        table: The preset table the columns come from elsewhere.
        path: The plate's file of that table; None when the plate lacks the whole table.
        columns: The output names of the columns.
    """

    output: str
    plate: str
    table: str
    path: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ColumnCast:
    """An output column whose type differs from its source type in some plates: those plates'
    values were cast to ``type`` (``int64`` in one plate and ``float64`` in another give
    ``float64``; anything with text gives text).

    ``sources`` holds ``(plate, source type)`` for the plates whose type differs.
    """

    output: str
    column: str
    type: DataType
    sources: tuple[tuple[str, DataType], ...]


@dataclass(frozen=True, slots=True)
class ColumnDifferences:
    """How the plates of one output table differ in their columns: :func:`column_differences`."""

    added: tuple[str, ...] = ()
    missing: tuple[MissingColumns, ...] = ()
    cast: tuple[ColumnCast, ...] = ()


def column_differences(plan: OutputPlan, staged: Sequence[StagedPlate]) -> ColumnDifferences:
    """What the union of columns in ``plan`` filled in and cast, plate by plate.

    A column a plate lacks is NULL in its rows (``missing``); a column typed differently in some
    plates is cast to the type holding them all (``cast``); a column no source holds is added by
    celltable (``added``: ``Metadata_TableNumber``). Tables without rows cast no values and are
    not counted as cast.
    """
    staged_by_key = {s.plate.key: s for s in staged}
    origin: dict[str, str] = {}
    for _, selects in plan.selects:
        for c in selects:
            if c.table is not None:
                origin.setdefault(c.output, c.table)
    added = tuple(c.output for c in plan.selects[0][1] if c.constant is not None) if plan.selects else ()
    missing: list[MissingColumns] = []
    found: dict[str, list[tuple[str, DataType, int]]] = {}  # column -> (plate, type, rows)
    for plate, selects in plan.selects:
        staged_plate = staged_by_key.get(plate)
        lacking: dict[str, list[str]] = {}
        for c in selects:
            if c.constant is not None:
                continue
            if c.table is None:
                lacking.setdefault(origin.get(c.output, "?"), []).append(c.output)
                continue
            st = staged_plate.table(c.table) if staged_plate is not None else None
            if st is not None and c.source is not None:
                found.setdefault(c.output, []).append(
                    (plate, st.schema.type_of(c.source), st.rows))
        for table, columns in lacking.items():
            loc = staged_plate.plate.location(table) if staged_plate is not None else None
            missing.append(MissingColumns(plan.name, plate, table, loc.path if loc else None,
                                          tuple(columns)))
    cast = []
    for name, sources in found.items():
        # Against the type the plates were reconciled to, not the stored one: storing features
        # as float32 is a choice made for every plate alike, not a difference between them.
        common = unify_types(t for _, t, _ in sources)
        differing = tuple((plate, t) for plate, t, rows in sources
                          if rows and t not in (common, DataType.NULL))
        if differing:
            cast.append(ColumnCast(plan.name, name, common, differing))
    return ColumnDifferences(added, tuple(missing), tuple(cast))
