"""What ``celltable inspect`` reports about a source: its tables as they are, their key columns,
and anything that would make a conversion fail, drop rows or mix values.

The query engine describes each plate (schemas, row counts, key counts: nothing staged); the
rules here turn those descriptions into findings, as pure functions over plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from celltable.domain.join import JoinStep, derive_join
from celltable.domain.presets import IMAGE, Preset
from celltable.domain.schema import DataType, TableSchema
from celltable.domain.sources import Plate, SkippedFile


@dataclass(frozen=True, slots=True)
class TableDescription:
    """One source table of a plate, as read straight from the source.

    Attributes:
        table: The preset's name for it (``Image``, ``Cells`` ...).
        name_in_source: The SQLite table or CSV file stem.
        schema: Its columns and their types.
        rows: Its row count.
        null_keys: Rows without an image key.
        duplicate_keys: Rows repeating another row's key (image and object number; image number
            alone for the image table), so joins would match them twice.
    """

    table: str
    name_in_source: str
    schema: TableSchema
    rows: int
    null_keys: int = 0
    duplicate_keys: int = 0
    fractional: tuple[tuple[str, int], ...] = ()
    """Per key column, its values that are not whole numbers (a conversion refuses them)."""


@dataclass(frozen=True, slots=True)
class PlateDescription:
    """One plate: its tables, and per relationship the base rows whose partner is missing
    (``Cytoplasm.Parent_Cells -> Cells``: the rows a joined conversion drops)."""

    plate: Plate
    tables: tuple[TableDescription, ...]
    orphans: tuple[tuple[str, int], ...] = ()

    def table(self, name: str) -> TableDescription | None:
        for t in self.tables:
            if t.table == name:
                return t
        return None


@dataclass(frozen=True, slots=True)
class KeyColumns:
    """The identifying columns a table holds (None: absent)."""

    image: str | None
    object: str | None
    parents: tuple[str, ...]


def _is_parent_reference(table: str, column: str) -> bool:
    rest = column[len(table) + 1 :] if column.startswith(table + "_") else column
    return rest.startswith("Parent_")


def key_columns(preset: Preset, table: str, schema: TableSchema) -> KeyColumns:
    """The image key, object number and parent references (``Parent_*``) of a table."""
    names = set(schema.names)
    image = preset.image_key if preset.image_key in names else None
    if table == IMAGE:
        return KeyColumns(image, None, ())
    number = preset.compartment(table).object_number
    parents = tuple(c for c in schema.names if _is_parent_reference(table, c))
    return KeyColumns(image, number if number in names else None, parents)


NUMBERS = (DataType.INT64, DataType.FLOAT64, DataType.FLOAT32)


def orphan_checks(preset: Preset, schemas: Mapping[str, TableSchema]) -> tuple[JoinStep, ...]:
    """The relationships whose orphans can be counted: both tables present, and the image key,
    the reference and the partner's object number all numbers (a fraction, as a conversion
    compares it, matches no whole object number: its row is an orphan)."""
    def ints(table: str, *columns: str) -> bool:
        schema = schemas.get(table)
        return schema is not None and all(
            c in schema.names and schema.type_of(c) in NUMBERS for c in columns)

    key = preset.image_key
    return tuple(
        s for s in derive_join(preset).steps
        if ints(s.child, key, s.column) and ints(s.parent, key, s.parent_object_number)
    )


class Severity(str, Enum):
    """How much a finding matters: ``error`` stops a joined conversion, ``warning`` changes its
    output (rows dropped, values NULL), ``info`` is worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Issue:
    """A finding about a source, for one plate or (``plate`` None) the whole source."""

    severity: Severity
    plate: str | None
    message: str


_SHOWN = 5


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def find_issues(
    preset: Preset, plates: Sequence[PlateDescription], skipped: Sequence[str] = (),
    bad: Sequence[SkippedFile] = (),
) -> tuple[Issue, ...]:
    """Everything suspicious in the described plates, errors first.

    Args:
        preset: The preset the plates were described with.
        units: One description per plate.
        skipped: Files the locator passed over (CSV files no table of the preset is named
            after), as users should see them (relative to the source).
        bad: Files that cannot be read, with why: a conversion fails naming them all (or,
            skipping bad files, leaves their plates out).
    """
    issues: list[Issue] = [
        Issue(Severity.ERROR, None, f"{b.path} cannot be read: {b.reason}; convert fails "
                                    "naming it (--skip-bad-files leaves its plate out)")
        for b in bad]
    for u in plates:
        issues.extend(_plate_issues(preset, u))
    issues.extend(_mixed_types(plates))
    if skipped:
        issues.append(Issue(Severity.INFO, None, f"not read (no table of preset {preset.name} "
                                                 f"has that name): {_some(list(skipped))}"))
    order = list(Severity)
    return tuple(sorted(issues, key=lambda i: order.index(i.severity)))


def _plate_issues(preset: Preset, u: PlateDescription) -> list[Issue]:
    plate = u.plate.key
    found: list[Issue] = []

    def add(severity: Severity, message: str) -> None:
        found.append(Issue(severity, plate, message))

    if u.table(IMAGE) is None and preset.image_table:  # a one-table preset has none
        add(Severity.WARNING, f"no image table ({preset.image_table}): image metadata "
                              "(Metadata_Well ...) will be empty")
    for c in preset.compartments:
        if u.table(c.name) is None:
            add(Severity.ERROR, f"no {c.name} table ({c.table}): a joined conversion fails; "
                                "convert with --no-join")
    for t in u.tables:
        if not t.rows:  # a header only: no values to type (convert reads its keys as integers)
            add(Severity.INFO, f"{t.table} ({t.name_in_source}) has no rows (a header only)")
            continue
        keys = key_columns(preset, t.table, t.schema)
        if keys.image is None:
            if not preset.one_table_per_file:  # a lone table joins nothing on images
                add(Severity.ERROR, f"{t.table} has no image key column {preset.image_key}")
        elif t.schema.type_of(keys.image) not in NUMBERS:  # fractions: counted below
            add(Severity.ERROR, f"{t.table}.{keys.image} holds "
                                f"{t.schema.type_of(keys.image).value} values, not whole numbers")
        if t.table != IMAGE:
            number = preset.compartment(t.table).object_number
            if keys.object is None:
                add(Severity.ERROR, f"{t.table} has no object number column {number}")
            elif t.schema.type_of(number) not in NUMBERS:
                add(Severity.WARNING, f"{t.table}.{number} holds "
                                      f"{t.schema.type_of(number).value} values, not whole numbers")
        for column, n in t.fractional:
            add(Severity.ERROR, f"{t.table}.{column} holds {n:,} value(s) that are not whole "
                                "numbers: a conversion fails (a key must be whole, or a join "
                                "would match another object); fix the export, or leave the "
                                "table out (--drop-compartment)")
        if t.null_keys:
            add(Severity.WARNING, f"{t.null_keys:,} {t.table} rows have no {preset.image_key}")
        if t.duplicate_keys:
            what = ("image" if t.table == IMAGE else "identifier and object number"
                    if preset.one_table_per_file else "(image, object)")
            then = ("the output keeps every copy" if preset.one_table_per_file
                    else "joined rows would repeat")
            add(Severity.WARNING, f"{t.duplicate_keys:,} {t.table} rows repeat an {what} key: "
                                  f"{then}")
    references = {(r.child, r.column) for r in preset.relationships}
    for child, column in sorted(references):
        t = u.table(child)
        if t is None:
            continue
        if not t.rows:
            continue
        if column not in t.schema.names:
            add(Severity.ERROR, f"{child} has no parent reference {column}")
        elif t.schema.type_of(column) in NUMBERS:
            pass  # whole numbers read as floating point join as integers; fractions: above
        elif t.schema.type_of(column) is not DataType.INT64:
            add(Severity.WARNING, f"{child}.{column} holds {t.schema.type_of(column).value} "
                                  "values, not whole numbers: orphans not counted")
    base = u.table(preset.base)
    refused = {f"{t.table}.{c} " for t in u.tables for c, _ in t.fractional}
    for relationship, n in u.orphans:
        if n and not any(relationship.startswith(r) for r in refused):  # fails, drops nothing
            of = f" of {base.rows:,}" if base is not None else ""
            add(Severity.WARNING, f"{n:,}{of} {preset.base} rows have no partner in "
                                  f"{relationship}: a joined conversion drops them")
    return found


def _mixed_types(plates: Sequence[PlateDescription]) -> list[Issue]:
    """Columns holding numbers in one plate and text in another: they become text."""
    types: dict[tuple[str, str], set[DataType]] = {}
    for u in plates:
        for t in u.tables:
            if not t.rows:  # typed as text for want of values, not text
                continue
            for c in t.schema.columns:
                types.setdefault((t.table, c.name), set()).add(c.type)
    mixed = [f"{table}.{name}" for (table, name), ts in types.items()
             if DataType.STRING in ts and ts - {DataType.STRING, DataType.NULL}]
    if not mixed:
        return []
    return [Issue(Severity.WARNING, None, f"{len(mixed)} column(s) hold numbers in some plates "
                                          f"and text in others, and become text: {_some(mixed)}")]
