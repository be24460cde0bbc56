"""The columns of an output table across plates, and what each plate selects for them.

Plates can differ (a column missing in one, typed int in one and float in another): the output
holds the union of columns, each with the type that holds every plate's values
(:func:`celltable.domain.schema.unify_types`); a plate lacking a column gives NULLs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from celltable.domain.errors import SchemaError
from celltable.domain.formats import PARQUET
from celltable.domain.join import JoinSpec, SelectColumn
from celltable.domain.naming import (
    TABLE_NUMBER,
    NamedColumn,
    column_order_key,
    name_compartment_columns,
    name_image_columns,
)
from celltable.domain.presets import IMAGE, Preset
from celltable.domain.schema import Column, DataType, Role, unify_types
from celltable.domain.sources import StagedPlate


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """An output table: its columns, and per plate the select list that fills them."""

    name: str
    columns: tuple[Column, ...]
    selects: tuple[tuple[str, tuple[SelectColumn, ...]], ...]

    def selects_for(self, plate: str) -> tuple[SelectColumn, ...]:
        return dict(self.selects)[plate]


def _named(preset: Preset, table: str, columns: Sequence[str], joined: bool) -> tuple[NamedColumn, ...]:
    if table == IMAGE:
        return name_image_columns(preset, columns, joined=joined)
    return name_compartment_columns(preset, preset.compartment(table), columns, joined=joined)


def plan_output(
    preset: Preset, name: str, tables: Sequence[str], plates: Sequence[StagedPlate], *,
    joined: bool, float32: bool = False,
) -> OutputPlan:
    """The output table ``name`` made of ``tables`` (a join, or one table) over ``plates``.

    With ``float32``, feature columns that would be float64 are float32 (half the size, about 7
    significant digits); keys and metadata keep their type.
    """
    per_plate_count: dict[str, dict[str, tuple[str, str, DataType]]] = {}
    types: dict[str, list[DataType]] = {}
    roles: dict[str, tuple[Role, str]] = {}
    for staged in plates:
        chosen: dict[str, tuple[str, str, DataType]] = {}
        for table in tables:
            st = staged.table(table)
            if st is None:
                continue
            for col in _named(preset, table, st.schema.names, joined):
                out = col.output
                n = 1
                while out in chosen:  # the same name from two tables of one plate
                    n += 1
                    out = f"{col.output}_{n}"
                chosen[out] = (table, col.source, st.schema.type_of(col.source))
                roles.setdefault(out, (col.role, col.compartment))
                types.setdefault(out, []).append(chosen[out][2])
        per_plate_count[staged.plate.key] = chosen
    if TABLE_NUMBER in types:
        raise SchemaError(
            f"a source column is named {TABLE_NUMBER!r}, which celltable uses for the plate; "
            "rename it in the source"
        )
    order = sorted(types, key=lambda n: column_order_key(preset, n))
    # image columns (file names, counts) count as features for float32, as they always did
    measured = (Role.FEATURE, Role.IMAGE)
    columns = (
        Column(TABLE_NUMBER, DataType.STRING, Role.KEY),
        *(Column(n, _stored(unify_types(types[n]), float32 and roles[n][0] in measured),
                 *roles[n]) for n in order),
    )
    selects = []
    made: dict[SelectColumn, SelectColumn] = {}  # one object per distinct select, not per plate
    for plate, chosen in per_plate_count.items():
        row = [SelectColumn(TABLE_NUMBER, DataType.STRING, constant=plate)]
        for col in columns[1:]:
            if col.name in chosen:
                table, source, _ = chosen[col.name]
                select = SelectColumn(col.name, col.type, table=table, source=source)
            else:
                select = SelectColumn(col.name, col.type)
            row.append(made.setdefault(select, select))
        selects.append((plate, tuple(row)))
    return OutputPlan(name, columns, tuple(selects))


def _stored(kind: DataType, as_float32: bool) -> DataType:
    return DataType.FLOAT32 if as_float32 and kind is DataType.FLOAT64 else kind


def check_join_columns(preset: Preset, spec: JoinSpec, staged: StagedPlate) -> JoinSpec:
    """The join for one plate, after checking it has every table and key column the join needs.

    A plate without an image table still joins (its image columns are NULL).

    Raises:
        SchemaError: A compartment table or a key column is missing; the message names the plate.
    """
    where = f"plate {staged.plate.key!r} ({staged.plate.path})"
    needed: dict[str, set[str]] = {}
    for table in spec.tables:
        needed.setdefault(table, set()).add(preset.compartment(table).object_number)
        if spec.steps or spec.with_image:  # a lone table joins nothing on its image
            needed[table].add(preset.image_key)
    for step in spec.steps:
        needed[step.child].add(step.column)
    for table, cols in needed.items():
        st = staged.table(table)
        if st is None:
            raise SchemaError(
                f"{where} has no {table} table ({preset.compartment(table).table}); "
                "convert with --no-join, or choose a preset without it"
            )
        missing = sorted(cols - set(st.schema.names))
        if missing:
            raise SchemaError(
                f"{where}: table {table} lacks the key columns {missing} that preset "
                f"{preset.name!r} joins on; is this the right preset?"
            )
        text = sorted(c for c in cols if st.schema.type_of(c) is DataType.STRING)
        if text:
            raise SchemaError(
                f"{where}: table {table} has key columns holding text, not numbers: {text}; "
                "objects can only be joined on numbers: fix those values in the source, or "
                "convert with --no-join"
            )
    image = staged.table(IMAGE)
    with_image = spec.with_image and image is not None and preset.image_key in image.schema.names
    if with_image == spec.with_image:
        return spec
    return JoinSpec(spec.base, spec.image_key, spec.steps, with_image)


def partition_files(plates: Sequence[str], suffix: str = PARQUET.suffix) -> dict[str, str]:
    """A file name per plate for output partitioned by plate: the plate's name with every
    character outside letters, digits, ``.``, ``-`` and ``_`` made ``_``, and the output
    format's ``suffix`` added; a name that two plates would share gets ``-2``, ``-3`` ... (in
    plate order)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for plate in plates:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", plate).strip(".") or "plate"
        name, n = f"{stem}{suffix}", 1
        while name.lower() in taken:  # some filesystems ignore case
            n += 1
            name = f"{stem}-{n}{suffix}"
        taken.add(name.lower())
        names[plate] = name
    return names
