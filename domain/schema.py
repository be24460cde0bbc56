"""Column types and the rules that reconcile them across tables and plates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class DataType(str, Enum):
    """The logical types celltable writes. Adapters map their engine's types onto these."""

    BOOL = "bool"
    INT64 = "int64"
    FLOAT32 = "float32"  # DeepProfiler features, or float64 features stored with ``float32=True``
    FLOAT64 = "float64"
    STRING = "string"
    NULL = "null"  # a column with no values anywhere (for example an all-empty CSV column)


_NUMERIC = {DataType.BOOL, DataType.INT64, DataType.FLOAT32, DataType.FLOAT64}


def unify_types(types: Iterable[DataType]) -> DataType:
    """The one type that holds every value of columns typed ``types``.

    Rules: equal types stay; ``null`` yields to anything; numbers widen (bool < int64 <
    float64); float32 stays float32 only beside bool, since it holds integers exactly only up
    to 2**24 (int64 or float64 with float32 give float64); anything mixed with text becomes
    text.
    """
    present = {t for t in types if t is not DataType.NULL}
    if not present:
        return DataType.NULL
    if len(present) == 1:
        return present.pop()
    if present <= _NUMERIC:
        if DataType.FLOAT64 in present or {DataType.FLOAT32, DataType.INT64} <= present:
            return DataType.FLOAT64
        return DataType.FLOAT32 if DataType.FLOAT32 in present else DataType.INT64
    return DataType.STRING


class Role(str, Enum):
    """What an output column is to downstream tools (decided where output names are made,
    :mod:`celltable.domain.naming`, so no writer guesses from prefixes)."""

    KEY = "key"  # identifies a row: the plate, image and object numbers
    METADATA = "metadata"  # Metadata_* columns: wells, plates, parent references
    IMAGE = "image"  # Image_* columns of a joined table: file and path names, counts
    FEATURE = "feature"  # a measurement of a compartment


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table: its name and logical type; an output column also carries its role
    and, for features, its compartment (neither takes part in comparisons)."""

    name: str
    type: DataType
    role: Role | None = field(default=None, compare=False)
    compartment: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """The columns of one source table, in source order."""

    table: str
    columns: tuple[Column, ...]
    _types: dict[str, DataType] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A lookup per column of a wide table (DeepProfiler: 6,400 features) must not scan them
        # all; the first column of a repeated name wins, as a scan would find it.
        types: dict[str, DataType] = {}
        for c in self.columns:
            types.setdefault(c.name, c.type)
        object.__setattr__(self, "_types", types)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def type_of(self, name: str) -> DataType:
        return self._types[name]
