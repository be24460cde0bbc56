"""Presets: the known layouts of source data, as plain data.

A preset names the image table, the compartment tables, the columns that identify an image and
an object, and how compartments relate (``Cytoplasm.Parent_Cells -> Cells``). The join celltable
runs is derived from these relationships (see :mod:`celltable.domain.join`); no preset carries SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from celltable.domain.errors import InvalidPresetError, UnknownPresetError

IMAGE = "Image"  # the name celltable gives the image table, whatever it is called in the source


class SourceFormat(str, Enum):
    """How the tables of a source are stored."""

    CSV = "csv"
    SQLITE = "sqlite"
    NPZ = "npz"  # DeepProfiler: NumPy archives of features, locations and a metadata dict


@dataclass(frozen=True, slots=True)
class Compartment:
    """A table of objects (one row per object per image).

    Attributes:
        name: The compartment name, also the prefix of its output columns (``Cells``).
        table: The table name in the source: a CSV file stem or a SQLite table.
        object_number: The column numbering objects within an image.
    """

    name: str
    table: str
    object_number: str


@dataclass(frozen=True, slots=True)
class Relationship:
    """``child.column`` holds the object number of a ``parent`` object in the same image."""

    child: str
    column: str
    parent: str


@dataclass(frozen=True, slots=True)
class Preset:
    """A source layout celltable knows how to convert.

    Attributes:
        name: The name users pass as ``preset``.
        description: One line shown by ``celltable presets``.
        source_format: CSV files or SQLite tables.
        image_table: The table with one row per image.
        image_key: The column identifying an image within a plate, present in every table.
        compartments: The object tables.
        relationships: How compartments reference each other.
        base: The compartment whose objects become the rows of the joined table.
        image_columns: Prefixes of image-table columns (after any ``Image_`` prefix) carried into
            the joined table besides ``Metadata_*``; ``--no-join`` keeps every image column.
        keep_object_numbers: Also keep the object-number column of every joined compartment
            (``Metadata_Cells_Number_Object_Number``), as pycytominer's merge names them.
        one_table_per_file: Every CSV file is a plate holding the base compartment alone, whatever
            its name (IN Carta exports); no image table, nothing to join.
        metadata_columns: Source columns that identify rather than measure; they are named
            ``Metadata_<name>``.
        safe_names: Output names replace every run of characters other than letters, digits and
            ``_`` (spaces, quotes, ``-``) with one ``_``.
        table_number: The column numbering CellProfiler runs inside one source file
            (cytominer-database's ``TableNumber``): each of its values is a plate of its own, so
            every join key includes it and image numbers, which restart per run, never mix.
        source_names: The reader names the columns (DeepProfiler NPZ: ``Metadata_*``,
            ``Location_*``, ``<model>_<i>``); only the image and object keys are renamed, and
            the columns after the metadata keep the reader's order.
    """

    name: str
    description: str
    source_format: SourceFormat
    image_table: str
    image_key: str
    compartments: tuple[Compartment, ...]
    relationships: tuple[Relationship, ...]
    base: str
    image_columns: tuple[str, ...] = ("FileName_", "PathName_", "URL_", "Count_")
    keep_object_numbers: bool = False
    table_number: str | None = None
    one_table_per_file: bool = False
    metadata_columns: tuple[str, ...] = ()
    safe_names: bool = False
    source_names: bool = False
    tables_by_name: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.compartments]
        if len(set(names)) != len(names):
            raise InvalidPresetError(f"preset {self.name!r} names a compartment twice: {names}")
        if self.base not in names:
            raise InvalidPresetError(
                f"preset {self.name!r}: base compartment {self.base!r} is not one of {names}"
            )
        for rel in self.relationships:
            if rel.child not in names or rel.parent not in names:
                raise InvalidPresetError(
                    f"preset {self.name!r}: relationship {rel.child}.{rel.column} -> {rel.parent} "
                    f"names a compartment that is not one of {names}"
                )
        if self.one_table_per_file and (len(names) != 1 or self.relationships):
            raise InvalidPresetError(
                f"preset {self.name!r} reads one table per file: it has one compartment and no "
                "relationships")
        tables = {self.image_table.lower(): IMAGE} if self.image_table else {}
        for c in self.compartments:
            if c.table.lower() in tables:
                raise InvalidPresetError(f"preset {self.name!r} uses table {c.table!r} twice")
            if c.name == IMAGE:
                raise InvalidPresetError(f"preset {self.name!r}: {IMAGE!r} names the image table")
            tables[c.table.lower()] = c.name
        object.__setattr__(self, "tables_by_name", tables)

    def key_columns(self, table: str) -> tuple[str, ...]:
        """The columns of ``table`` (``Image`` or a compartment) holding keys: the image number,
        its object number, and the parent references it holds. A join matches them exactly, so
        each must hold whole numbers."""
        found = [self.image_key]
        if table != IMAGE:
            found.append(self.compartment(table).object_number)
            found += [r.column for r in self.relationships if r.child == table]
        return tuple(dict.fromkeys(found))

    def compartment(self, name: str) -> Compartment:
        """The compartment called ``name``."""
        for c in self.compartments:
            if c.name == name:
                return c
        raise InvalidPresetError(f"preset {self.name!r} has no compartment {name!r}")

    @property
    def tables(self) -> tuple[str, ...]:
        """The names of the tables the preset reads: ``Image``, then the compartments."""
        return (IMAGE, *(c.name for c in self.compartments))

    @property
    def tables_named(self) -> bool:
        """Whether the source's tables are found by their names (not every CSV file or ``.npz``
        file being one, as for IN Carta and DeepProfiler, which a survey recognises)."""
        return not (self.one_table_per_file or self.source_format is SourceFormat.NPZ)

    def match_table(self, found: str) -> str | None:
        """Which table a found table or file stem is: ``Image`` or a compartment name.

        Names match exactly, ignoring case: ``cells`` is ``Cells``; ``Cells_Cellpose3`` is nothing.
        """
        return self.tables_by_name.get(found.lower())


def _cellprofiler(
    name: str,
    description: str,
    fmt: SourceFormat,
    *,
    table: str,
    object_number: str,
    parent: str,
    **extra: object,
) -> Preset:
    """A CellProfiler layout: cells, cytoplasm and nuclei, cytoplasm as base."""
    comps = tuple(
        Compartment(n, table.format(n), object_number.format(n))
        for n in ("Cytoplasm", "Cells", "Nuclei")
    )
    rels = (
        Relationship("Cytoplasm", parent.format("Cytoplasm", "Cells"), "Cells"),
        Relationship("Cytoplasm", parent.format("Cytoplasm", "Nuclei"), "Nuclei"),
    )
    return Preset(
        name=name,
        description=description,
        source_format=fmt,
        image_table=table.format("Image"),
        image_key="ImageNumber",
        compartments=comps,
        relationships=rels,
        base="Cytoplasm",
        **extra,  # type: ignore[arg-type]
    )


_BUILTIN: tuple[Preset, ...] = (
    _cellprofiler(
        "cellprofiler_csv",
        "CellProfiler ExportToSpreadsheet CSVs: Image.csv, Cells.csv, Cytoplasm.csv, Nuclei.csv "
        "(one folder per plate allowed)",
        SourceFormat.CSV,
        table="{}",
        object_number="ObjectNumber",
        parent="Parent_{1}",
    ),
    _cellprofiler(
        "cellprofiler_csv_cytominer_database",
        "cytominer-database's CSV input: one folder per site with image.csv, Cells.csv, "
        "Cytoplasm.csv, Nuclei.csv (as cellprofiler_csv; table names match ignoring case)",
        SourceFormat.CSV,
        table="{}",
        object_number="ObjectNumber",
        parent="Parent_{1}",
    ),
    _cellprofiler(
        "cellprofiler_sqlite",
        "CellProfiler ExportToDatabase SQLite: Per_Image, Per_Cells, Per_Cytoplasm, Per_Nuclei",
        SourceFormat.SQLITE,
        table="Per_{}",
        object_number="{}_Number_Object_Number",
        parent="{0}_Parent_{1}",
    ),
    _cellprofiler(
        "cellprofiler_sqlite_pycytominer",
        "As cellprofiler_sqlite, also keeping each compartment's object number as pycytominer "
        "names it (Metadata_Cells_Number_Object_Number ...)",
        SourceFormat.SQLITE,
        table="Per_{}",
        object_number="{}_Number_Object_Number",
        parent="{0}_Parent_{1}",
        keep_object_numbers=True,
    ),
    _cellprofiler(
        "cellprofiler_sqlite_cpg0016_jump",
        "JUMP cpg0016 SQLite: tables Image, Cells, Cytoplasm, Nuclei with ObjectNumber and "
        "prefixed features",
        SourceFormat.SQLITE,
        table="{}",
        object_number="ObjectNumber",
        parent="{0}_Parent_{1}",
    ),
    _cellprofiler(
        "cell-health-cellprofiler-to-cytominer-database",
        "cytominer-database SQLite (Cell Health): tables Image, Cells, Cytoplasm, Nuclei with "
        "TableNumber, ImageNumber, ObjectNumber; each TableNumber is a plate of its own",
        SourceFormat.SQLITE,
        table="{}",
        object_number="ObjectNumber",
        parent="{0}_Parent_{1}",
        table_number="TableNumber",
    ),
)

_IN_CARTA_IDS = ("Row", "Column", "FOV", "WELL LABEL", "Z", "T", "Class Name", "Class Color",
                 "Ancestry Path", "Plate ID", "Acquisition Time Stamp", "Slice Algorithm",
                 "Slice Indicator")

_BUILTIN += (
    Preset(
        name="in-carta",
        description="IN Carta CSV exports: every CSV file is a plate of objects (OBJECT ID), "
        "stacked; names made safe, identifiers as Metadata_*",
        source_format=SourceFormat.CSV,
        image_table="",
        image_key="ImageNumber",  # IN Carta has none: every file is one chunk
        compartments=(Compartment("Objects", "*", "OBJECT ID"),),
        relationships=(),
        base="Objects",
        one_table_per_file=True,
        metadata_columns=_IN_CARTA_IDS,
        safe_names=True,
    ),
)

_BUILTIN += (
    Preset(
        name="deepprofiler",
        description="DeepProfiler NPZ files: one folder per plate, one file per well and site "
        "(features, locations, metadata); one row per cell",
        source_format=SourceFormat.NPZ,
        image_table="",
        image_key="ImageNumber",  # the site: the file's position in its plate folder
        compartments=(Compartment("Cells", "*", "ObjectNumber"),),  # the cell: its row in the file
        relationships=(),
        base="Cells",
        source_names=True,
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _BUILTIN}
DEFAULT_PRESET = "cellprofiler_csv"


def get_preset(name: str) -> Preset:
    """The built-in preset called ``name``.

    Raises:
        UnknownPresetError: No preset has that name; the message lists the valid ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(sorted(PRESETS))
        raise UnknownPresetError(
            f"unknown preset {name!r}; choose one of: {valid} (see `celltable presets`)"
        ) from None
