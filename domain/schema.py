"""Column types and the rules that reconcile them across tables and plates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class DataType(str, Enum):
    """The logical types celltable writes. Adapters map their engine's types onto these."""

    BOOL = "bool"
    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    NULL = "null"  # a column with no values anywhere (for example an all-empty CSV column)


_NUMERIC = {DataType.BOOL, DataType.INT64, DataType.FLOAT64}


def unify_types(types: Iterable[DataType]) -> DataType:
    """The one type that holds every value of columns typed ``types``.

    Rules: equal types stay; ``null`` yields to anything; numbers widen (bool < int64 <
    float64); anything mixed with text becomes text.
    """
    present = {t for t in types if t is not DataType.NULL}
    if not present:
        return DataType.NULL
    if len(present) == 1:
        return present.pop()
    if present <= _NUMERIC:
        return DataType.FLOAT64 if DataType.FLOAT64 in present else DataType.INT64
    return DataType.STRING


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table: its name and logical type."""

    name: str
    type: DataType


@dataclass(frozen=True, slots=True)
class TableSchema:
    """The columns of one source table, in source order."""

    table: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def type_of(self, name: str) -> DataType:
        for c in self.columns:
            if c.name == name:
                return c.type
        raise KeyError(name)
