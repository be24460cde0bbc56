"""DeepProfiler NPZ files: one well and site each, read into Arrow a chunk of sites at a time.

A plate (a folder of NPZ files) is planned from each file's array headers and metadata alone
(:func:`plate_table`); each chunk then reads its sites' files (:func:`chunk_rows`), so nothing
is copied and memory holds one chunk. DuckDB runs the chunk's select over those Arrow rows as it
does for SQLite plates read in place. Only the expert ``join_sql`` path copies a plate into
DuckDB (:func:`stage_npz`): a user's SQL needs a table to query.

An NPZ file is a zip of ``.npy`` arrays: ``features.npy`` (cells x features), ``locations.npy``
(cells x 2: x, y) and ``metadata.npy``, a 0-d object array holding a dict (plate, well, site,
channel images, model ...). One file is read by ``adapters/npz_site.py``; its arrays and its
metadata (a pickle, rebuilt by a restricted unpickler) are checked by ``adapters/npz_checks.py``.

Rows are cells, in file order. Columns: ``ImageNumber`` (the file's position in its plate
folder, from 1), ``ObjectNumber`` (the cell's row in its file, from 1), ``Metadata_NPZSource``
(the file), the metadata (``Metadata_<key>``), ``Location_Center_X`` and ``Location_Center_Y``,
then the features, ``<model>_<i>`` from ``i = 0`` with the model named by the metadata's
``Metadata_Model`` (``DP`` without one), as pycytominer's ``load_npz_features`` names them.

NumPy is imported inside the functions: only NPZ sources need it.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from celltable.adapters.arrow_types import arrow_schema, domain_type
from celltable.adapters.duckdb_sql import SQL_TYPES, data_type, error_summary, ident
from celltable.adapters.npz_checks import _declared
from celltable.adapters.npz_site import (
    FEATURES,
    IMAGE_KEY,
    LOCATION_COLUMNS,
    LOCATIONS,
    METADATA,
    OBJECT_KEY,
    _arrow_value_type,
    _metadata,
    _names,
    read_npz,
    site_table,
)
from celltable.domain.errors import InvalidPresetError, SourceReadError
from celltable.domain.inspection import PlateDescription, TableDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import Preset
from celltable.domain.schema import Column, DataType, TableSchema, unify_types
from celltable.domain.sources import Plate, StagedPlate, StagedTable

if TYPE_CHECKING:
    pass


def _check_keys(preset: Preset) -> None:
    keys = (preset.image_key, preset.compartment(preset.base).object_number)
    if keys != (IMAGE_KEY, OBJECT_KEY):
        raise InvalidPresetError(
            f"preset {preset.name!r} reads NPZ files, whose rows celltable numbers as "
            f"{IMAGE_KEY} (the site) and {OBJECT_KEY} (the cell); name those its image key and "
            f"object number, not {keys[0]} and {keys[1]}")


def _files(plate: Plate) -> list[tuple[int, str, str]]:
    """``(image number, path, name)`` of each file of a plate, in the locator's order."""
    root = Path(plate.path)
    out = []
    for i, loc in enumerate(plate.tables, start=1):
        path = Path(loc.path)
        name = path.relative_to(root).as_posix() if root.is_dir() and path.is_relative_to(root) \
            else path.name
        out.append((i, loc.path, name))
    return out


def stage_npz(con: duckdb.DuckDBPyConnection, plate: Plate, preset: Preset) -> StagedTable:
    """Stage every file of a plate as one table, named after the preset's base compartment.

    Files are read one at a time (memory holds one site); a column a later file adds is added
    to the table, and a column typed differently in two files is widened as plates are.

    Raises:
        SourceReadError: A file cannot be read (see :func:`read_npz`).
    """
    _check_keys(preset)
    target = ident(preset.base)
    types: dict[str, DataType] = {}
    by_image: list[tuple[int, int]] = []
    for image, path, name in _files(plate):
        site = read_npz(path)
        table = site_table(site, image_number=image, source=name)
        try:
            con.register("npz_site", table)
            if not types:
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM npz_site")
            else:
                for field in table.schema:
                    new = domain_type(field.type)
                    old = types.get(field.name)
                    if old is None:
                        con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(field.name)} "
                                    f"{SQL_TYPES[new]}")
                    elif unify_types((old, new)) is not old:
                        con.execute(f"ALTER TABLE {target} ALTER {ident(field.name)} TYPE "
                                    f"{SQL_TYPES[unify_types((old, new))]}")
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM npz_site")
        except duckdb.Error as e:
            raise SourceReadError(f"cannot stage {path}: {error_summary(e)}") from e
        finally:
            con.unregister("npz_site")
        types = {n: data_type(t) for n, t, *_ in con.execute(f"DESCRIBE {target}").fetchall()}
        if site.cells:
            by_image.append((image, site.cells))
    schema = TableSchema(preset.base, tuple(Column(n, t) for n, t in types.items()))
    rows = sum(n for _, n in by_image)
    return StagedTable(preset.base, schema, rows, tuple(by_image))


def _site_schema(path: str) -> tuple[int, tuple[Column, ...]]:
    """Cells and columns of one file, from its array headers and metadata: no feature is read.

    Raises:
        SourceReadError: As :func:`read_npz`.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in (FEATURES, LOCATIONS) if m not in names]
            if missing:
                raise SourceReadError(f"{path} has no {' or '.join(missing)}; is it a "
                                      "DeepProfiler features file?")
            features, dtype = _declared(zf, FEATURES, path)
            locations, _ = _declared(zf, LOCATIONS, path)
            metadata = _metadata(zf, path) if METADATA in names else {}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise SourceReadError(f"{path} is not a readable NPZ file ({e}); copy or export it "
                              "again, or remove it from the source") from e
    if len(features) != 2 or len(locations) != 2 or locations[0] != features[0] \
            or locations[1] < 2:
        raise SourceReadError(f"{path}: locations.npy has shape {locations} but features.npy "
                              f"has {features}; the file is damaged, export it again")
    feature_type = (DataType.INT64 if dtype.kind in "iu" else
                    DataType.FLOAT64 if dtype.itemsize == 8 else DataType.FLOAT32)
    # A site without cells has no values for its features: it adds no feature columns (a
    # damaged header declaring (0, 200000) would otherwise make 200,000 empty columns).
    width = features[1] if features[0] else 0
    types = [DataType.INT64, DataType.INT64, DataType.STRING,
             *(domain_type(_arrow_value_type(v)) for v in metadata.values()),
             *(DataType.FLOAT64 for _ in LOCATION_COLUMNS),
             *(feature_type for _ in range(width))]
    columns = zip(_names(metadata, width), types, strict=True)
    return features[0], tuple(Column(n, t) for n, t in columns)


def site_cells(path: str) -> int:
    """The cells of one NPZ file, from its array headers (checked against the file's bytes).

    Raises:
        SourceReadError: As :func:`read_npz`.
    """
    return _site_schema(path)[0]


def plate_table(plate: Plate, preset: Preset) -> StagedTable:
    """A plate of NPZ files as one table, from each file's headers and metadata: its columns
    (the union over files, types widened as plates' are), cells and cells per site. Nothing is
    copied: each chunk reads its sites' files (:func:`chunk_rows`)."""
    _check_keys(preset)
    types: dict[str, list[DataType]] = {}
    by_image = []
    for image, path, _ in _files(plate):
        cells, columns = _site_schema(path)
        for c in columns:
            types.setdefault(c.name, []).append(c.type)
        if cells:
            by_image.append((image, cells))
    schema = TableSchema(preset.base, tuple(Column(n, unify_types(t)) for n, t in types.items()))
    return StagedTable(preset.base, schema, sum(n for _, n in by_image), tuple(by_image))


def chunk_rows(staged: StagedPlate, queries: Sequence[ChunkQuery]) -> Iterator[dict[str, pa.Table]]:
    """For each query, the rows of the sites in its chunk, every file read once and given the
    plate's columns (a column a file lacks is NULL, a type another file widened is cast)."""
    (table,) = staged.tables
    schema = arrow_schema(table.schema.columns)
    files = _files(staged.plate)
    for query in queries:
        parts = []
        for image, path, name in files:
            if query.chunk.contains(image):
                found = read_npz(path)
                if not found.cells:  # no rows (and its features are no columns)
                    continue
                site = site_table(found, image_number=image, source=name)
                parts.append(_conform(site, schema, path))
        rows = pa.concat_tables(parts) if parts else schema.empty_table()
        yield {query.table: rows}


def _conform(site: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    if site.schema == schema:
        return site
    at = {name: i for i, name in enumerate(site.column_names)}  # by name is a scan per column
    columns = []
    for field in schema:
        if field.name not in at:
            columns.append(pa.nulls(site.num_rows, field.type))
            continue
        column = site.column(at[field.name])
        try:
            columns.append(column if column.type == field.type else column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise SourceReadError(f"{path}: column {field.name} does not fit the plate's type "
                                  f"{field.type} ({e})") from e
    return pa.Table.from_arrays(columns, schema=schema)


def describe_npz(plate: Plate, preset: Preset) -> PlateDescription:
    """A plate of NPZ files for ``celltable inspect``: its cells and columns, read from each
    file's headers and metadata only (features are not read)."""
    table = plate_table(plate, preset)
    files = f"{len(plate.tables)} NPZ file{'s' if len(plate.tables) != 1 else ''}"
    return PlateDescription(plate, (TableDescription(preset.base, files, table.schema, table.rows),))
