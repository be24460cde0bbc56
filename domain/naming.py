"""Output column names and order.

One naming rule for every preset, so the same plate exported as CSV or as SQLite gives the same
columns, and pycytominer infers features from prefixes:

* ``Metadata_TableNumber`` (the plate), ``Metadata_ImageNumber`` and
  ``Metadata_ObjectNumber`` (of the base compartment) identify a row;
* image metadata keeps its name without any ``Image_`` prefix: ``Metadata_Well``, ``Metadata_Plate``;
* other image columns (file and path names, counts) become ``Image_*``;
* parent references and other identifiers of a compartment become ``Metadata_<Compartment>_*``:
  ``Metadata_Cytoplasm_Parent_Cells``;
* every other compartment column is a feature named ``<Compartment>_*``; a source column already
  carrying that prefix keeps it (``Cells_AreaShape_Area`` from SQLite, ``AreaShape_Area`` from CSV
  both give ``Cells_AreaShape_Area``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from celltable.domain.presets import IMAGE, Compartment, Preset
from celltable.domain.schema import Role

TABLE_NUMBER = "Metadata_TableNumber"
OBJECT_NUMBER = "Metadata_ObjectNumber"


@dataclass(frozen=True, slots=True)
class NamedColumn:
    """A source column, the name it takes in the output, its role there and (features and
    image columns) the compartment it measures."""

    source: str
    output: str
    role: Role
    compartment: str = ""


def image_number(preset: Preset) -> str:
    """The output name of the image key: ``Metadata_ImageNumber``."""
    return f"Metadata_{preset.image_key}"


def _strip(column: str, prefix: str) -> str:
    head = prefix + "_"
    return column[len(head) :] if column.startswith(head) else column


def name_image_columns(
    preset: Preset, columns: Iterable[str], *, joined: bool
) -> tuple[NamedColumn, ...]:
    """Names of the image table's columns.

    In a joined table the image key comes from the base compartment, and only metadata and the
    columns starting with one of ``preset.image_columns`` are carried.
    """
    named = []
    for col in columns:
        rest = _strip(col, IMAGE)
        if col == preset.table_number:
            continue  # the plate: its value is Metadata_TableNumber
        if col == preset.image_key:
            if not joined:
                named.append(NamedColumn(col, image_number(preset), Role.KEY))
        elif rest.startswith("Metadata_"):
            named.append(NamedColumn(col, rest, Role.METADATA))
        elif not joined or rest.startswith(preset.image_columns):
            named.append(NamedColumn(col, f"{IMAGE}_{rest}", Role.IMAGE, IMAGE))
    return _deduplicate(named)


def name_compartment_columns(
    preset: Preset, compartment: Compartment, columns: Iterable[str], *, joined: bool
) -> tuple[NamedColumn, ...]:
    """Names of a compartment table's columns.

    In a joined table only the base compartment contributes the image and object keys; the other
    compartments' object numbers equal the base's parent references and are dropped, unless the
    preset keeps them (pycytominer naming).
    """
    prefix = compartment.name
    is_base = compartment.name == preset.base
    if preset.source_names:
        return _source_named(preset, compartment, columns, joined=joined)
    references = {r.column for r in preset.relationships if r.child == compartment.name}
    named = []
    for col in columns:
        rest = safe_name(_strip(col, prefix)) if preset.safe_names else _strip(col, prefix)
        if col in preset.metadata_columns:
            named.append(NamedColumn(col, f"Metadata_{rest}", Role.METADATA))
            continue
        if col == preset.table_number:
            continue  # the plate: its value is Metadata_TableNumber
        if col == preset.image_key:
            if is_base or not joined:
                named.append(NamedColumn(col, image_number(preset), Role.KEY))
        elif col == compartment.object_number:
            if is_base or not joined:
                named.append(NamedColumn(col, OBJECT_NUMBER, Role.KEY))
            if joined and preset.keep_object_numbers:
                named.append(NamedColumn(col, f"Metadata_{prefix}_{rest}", Role.METADATA))
        elif col in references or rest.startswith("Parent_"):
            named.append(NamedColumn(col, f"Metadata_{prefix}_{rest}", Role.METADATA))
        elif rest.startswith("Metadata_"):
            named.append(NamedColumn(col, f"Metadata_{prefix}_{_strip(rest, 'Metadata')}", Role.METADATA))
        else:
            named.append(NamedColumn(col, f"{prefix}_{rest}", Role.FEATURE, prefix))
    return _deduplicate(named)


def _source_named(preset: Preset, compartment: Compartment, columns: Iterable[str], *,
                  joined: bool) -> tuple[NamedColumn, ...]:
    """Columns a reader has named already (DeepProfiler): keys as usual, the rest as they are;
    ``Location_*`` are identifiers (metadata to pycytominer's DeepProfiler code), not features."""
    is_base = compartment.name == preset.base
    named = []
    for col in columns:
        if col == preset.image_key:
            if is_base or not joined:
                named.append(NamedColumn(col, image_number(preset), Role.KEY))
        elif col == compartment.object_number:
            if is_base or not joined:
                named.append(NamedColumn(col, OBJECT_NUMBER, Role.KEY))
        elif col.startswith(("Metadata_", "Location_")):
            named.append(NamedColumn(col, col, Role.METADATA))
        else:
            named.append(NamedColumn(col, col, Role.FEATURE, compartment.name))
    return _deduplicate(named)


_UNSAFE = re.compile(r"[^0-9A-Za-z_]+")


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits and ``_`` made one
    ``_``: ``WELL LABEL`` gives ``WELL_LABEL``, ``Intensity-Bckg`` gives ``Intensity_Bckg``."""
    return _UNSAFE.sub("_", name).strip("_") or "_"


def _deduplicate(named: Sequence[NamedColumn]) -> tuple[NamedColumn, ...]:
    """Two source columns that would share a name keep both: later ones get ``_2``, ``_3`` ...."""
    seen: dict[str, int] = {}
    out = []
    for col in named:
        n = seen.get(col.output, 0) + 1
        seen[col.output] = n
        out.append(col if n == 1 else
                   NamedColumn(col.source, f"{col.output}_{n}", col.role, col.compartment))
    return tuple(out)


_FIXED_ORDER = ("metadata_tablenumber", "metadata_imagenumber", "metadata_objectnumber")


def column_order_key(preset: Preset, name: str) -> tuple[int, int, str]:
    """Sort key giving the incumbent's column order: keys, metadata, image, compartments, rest.

    Compartments follow the preset's order (base first); names sort alphabetically within a group.
    """
    lower = name.lower()
    if lower in _FIXED_ORDER:
        return (0, _FIXED_ORDER.index(lower), "")
    if "metadata" in lower:
        return (1, 0, name)
    if preset.source_names:  # the reader's order: locations, then features by their index
        return (2, 0, "")
    groups = (IMAGE, *(c.name for c in preset.compartments))
    # the longest prefix: Cells_Cellpose3_* belong to Cells_Cellpose3, not to Cells
    found = [(len(g), i) for i, g in enumerate(groups) if lower.startswith(g.lower())]
    if found:
        return (2, max(found)[1], name)
    return (3, 0, name)


def role_by_name(preset: Preset, name: str) -> tuple[Role, str]:
    """The role and compartment of an output column known by its name only (the columns of a
    user's join SQL), by the naming rule above: the keys, ``Metadata_*``, ``Image_*``, and
    features of the compartment whose name prefixes it (the longest; "" when none does)."""
    if name in (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER):
        return Role.KEY, ""
    if name.startswith("Metadata_") or (preset.source_names and name.startswith("Location_")):
        return Role.METADATA, ""
    if name.startswith(f"{IMAGE}_"):
        return Role.IMAGE, IMAGE
    found = [c.name for c in preset.compartments if name.startswith(f"{c.name}_")]
    return Role.FEATURE, max(found, key=len, default="")


CHANNEL_COLUMNS = ("FileName_", "PathName_", "URL_")
"""Image columns whose names end with an image channel (``Image_FileName_DNA``)."""
_CHANNEL_AFTER = {"Intensity": 2, "Texture": 2, "Granularity": 2, "RadialDistribution": 2,
                  "Correlation": 2, "Location": 3}
"""CellProfiler's feature groups naming channels, and the part of the name where they start
(``Intensity_MeanIntensity_DNA``: part 2), used when no image column names the channels."""


def channels_of(names: Iterable[str]) -> tuple[str, ...]:
    """The image channels that image columns name (``Image_FileName_DNA`` gives ``DNA``),
    longest first."""
    found = {n.split("_", 2)[2] for n in names
             if n.startswith(IMAGE + "_") and n.split("_", 1)[1].startswith(CHANNEL_COLUMNS)
             and n.count("_") >= 2}
    return tuple(sorted(found, key=lambda c: (-len(c), c)))


def feature_parts(name: str, compartment: str, channels: Sequence[str]) -> tuple[str, str]:
    """The feature group (``AreaShape``, ``Intensity``, ``Texture`` ...; a DeepProfiler model's
    name) and the channels (joined by ``;``, "" when the name has none) of a feature column.

    Channels are the ``channels`` (from image columns) that appear as whole parts of the name;
    without any, CellProfiler's naming rule places them (``Intensity_<measure>_<channel>``)."""
    rest = name[len(compartment) + 1:] if compartment and name.startswith(compartment + "_") \
        else name
    parts = rest.split("_")
    group = parts[0]
    if channels:
        found, i = [], 1
        while i < len(parts):
            match = next((c for c in channels
                          if parts[i:i + c.count("_") + 1] == c.split("_")), None)
            if match:
                found.append(match)
                i += match.count("_") + 1
            else:
                i += 1
        return group, ";".join(dict.fromkeys(found))
    start = _CHANNEL_AFTER.get(group)
    if start is None or len(parts) <= start or parts[start].isdigit():
        return group, ""
    if group == "Correlation" and len(parts) > start + 1:
        return group, f"{parts[start]};{parts[start + 1]}"
    return group, parts[start]
