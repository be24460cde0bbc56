"""DeepProfiler NPZ files: one well and site each, read into Arrow a chunk of sites at a time.

A plate (a folder of NPZ files) is planned from each file's array headers and metadata alone
(:func:`plate_table`); each chunk then reads its sites' files (:func:`chunk_rows`), so nothing
is copied and memory holds one chunk. DuckDB runs the chunk's select over those Arrow rows as it
does for SQLite plates read in place. Only the expert ``join_sql`` path copies a plate into
DuckDB (:func:`stage_npz`): a user's SQL needs a table to query.

An NPZ file is a zip of ``.npy`` arrays: ``features.npy`` (cells x features), ``locations.npy``
(cells x 2: x, y) and ``metadata.npy``, a 0-d object array holding a dict (plate, well, site,
channel images, model ...). The numeric arrays are read from their ``.npy`` header and bytes,
never through a pickle. ``metadata.npy`` *is* a pickle, and a pickle can run any code, so it is
read by :class:`MetadataUnpickler`, which rebuilds a 0-d object array and nothing else, and the
result must be a dict of text to text, numbers, booleans or None. ``numpy.load`` with
``allow_pickle=True`` is never used.

Rows are cells, in file order. Columns: ``ImageNumber`` (the file's position in its plate
folder, from 1), ``ObjectNumber`` (the cell's row in its file, from 1), ``Metadata_NPZSource``
(the file), the metadata (``Metadata_<key>``), ``Location_Center_X`` and ``Location_Center_Y``,
then the features, ``<model>_<i>`` from ``i = 0`` with the model named by the metadata's
``Metadata_Model`` (``DP`` without one), as pycytominer's ``load_npz_features`` names them.

NumPy is imported inside the functions: only NPZ sources need it.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from celltable.adapters.duckdb_sql import SQL_TYPES, data_type, error_summary, ident
from celltable.adapters.parquet import ARROW_TYPES
from celltable.domain.errors import InvalidPresetError, SourceReadError, UnsafePickleError
from celltable.domain.inspection import TableDescription, UnitDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.naming import safe_name
from celltable.domain.presets import Preset
from celltable.domain.schema import Column, DataType, TableSchema, unify_types
from celltable.domain.sources import SourceUnit, StagedTable, StagedUnit

if TYPE_CHECKING:
    import numpy as np

FEATURES, LOCATIONS, METADATA = "features.npy", "locations.npy", "metadata.npy"
IMAGE_KEY, OBJECT_KEY = "ImageNumber", "ObjectNumber"  # an NPZ preset's image key and object number
SOURCE_COLUMN = "Metadata_NPZSource"
LOCATION_COLUMNS = ("Location_Center_X", "Location_Center_Y")
MODEL_KEY = "Metadata_Model"
DEFAULT_MODEL = "DP"  # pycytominer's and CytoTable's name for features of an unnamed model
MAX_HEADER = 10_000  # bytes of .npy header read at most (NumPy's own default bound)
MAX_METADATA = 16 * 2**20  # a metadata dict is a few kB; more is not DeepProfiler's

Value = str | int | float | bool | None


def _reconstruct() -> Callable[..., Any]:
    try:  # NumPy 2 writes numpy._core; NumPy 1 wrote numpy.core, which NumPy 2 still reads
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles a 0-d object ``ndarray`` and nothing else: of every global a pickle may name,
    only NumPy's array rebuilder, ``numpy.ndarray`` and ``numpy.dtype`` are found, so no
    function outside them (``os.system``, ``builtins.eval`` ...) can be reached."""

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np

        allowed: dict[tuple[str, str], Any] = {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        found = allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a metadata dict "
                                         "never needs")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it refers to a persistent object")


def load_metadata(data: bytes, where: str) -> dict[str, Value]:
    """The dict pickled (as a 0-d object array) in ``data``, read by :class:`MetadataUnpickler`.

    Raises:
        UnsafePickleError: The pickle names anything else, or holds anything but a dict of text
            to text, numbers, booleans or None.
    """
    import numpy as np

    try:
        obj = MetadataUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # a hostile or broken pickle fails in many ways; none may escape
        raise UnsafePickleError(
            f"{where}: refused to read metadata.npy ({e}); it is not DeepProfiler's metadata "
            "dict. Re-export the file, or remove it from the source if you do not trust it"
        ) from e
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"{where}: metadata.npy holds a {type(obj).__name__}, not a dict "
                                "of metadata; re-export the file or remove it from the source")
    for key, value in obj.items():
        if not isinstance(key, str) or not (value is None or type(value) in (str, int, float, bool)):
            raise UnsafePickleError(
                f"{where}: metadata.npy maps {key!r} to a {type(value).__name__}; only text, "
                "numbers, booleans and None are read. Re-export the file or remove it")
    return obj


@dataclass(frozen=True, slots=True)
class NpzSite:
    """One NPZ file as read: its features, cell locations and metadata."""

    features: np.ndarray
    locations: np.ndarray
    metadata: dict[str, Value]

    @property
    def cells(self) -> int:
        return int(self.features.shape[0])


def _header(f: io.BufferedIOBase, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    import numpy as np
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            return npy.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        if version == (2, 0):
            return npy.read_array_header_2_0(f, max_header_size=MAX_HEADER)
    except (ValueError, SyntaxError, TypeError, EOFError, OSError, zlib.error) as e:
        raise SourceReadError(f"{where} is not a readable .npy array ({e}); re-export the "
                              "file") from e
    raise SourceReadError(f"{where} uses .npy format {version}, which celltable does not read "
                          f"(NumPy {np.__version__} writes 1.0 or 2.0); re-save it with NumPy")


def _checked(shape: tuple[int, ...], dtype: np.dtype, held: int, member: str,
             where: str) -> int:
    """The bytes a numeric array's header declares, checked before anything is allocated:
    whole, non-negative dimensions whose values fill exactly the ``held`` bytes after it.

    Raises:
        SourceReadError: Not numbers, an impossible shape, or a size the member does not hold.
    """
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiu":
        raise SourceReadError(f"{where}: {member} holds {dtype} values, not numbers; "
                              "is it a DeepProfiler file?")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise SourceReadError(f"{where}: {member} declares the impossible shape {shape}; the "
                              "file is damaged, export or copy it again")
    size = math.prod(shape) * dtype.itemsize
    if held != size:
        raise SourceReadError(
            f"{where}: {member} declares {shape} values ({size} bytes) but holds {held} bytes; "
            "the file is damaged, export or copy it again")
    return size


def _declared(zf: zipfile.ZipFile, member: str, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """A numeric array member's shape and type, from its header alone, checked as
    :func:`_checked` does."""
    info = zf.getinfo(member)
    with zf.open(info) as f:
        shape, _, dtype = _header(f, f"{where} ({member})")
        _checked(shape, dtype, info.file_size - f.tell(), member, where)
    return shape, dtype


def _numbers(zf: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
    """A numeric array member, checked against its header before any byte is kept."""
    import numpy as np

    info = zf.getinfo(member)
    with zf.open(info) as f:
        shape, fortran, dtype = _header(f, f"{where} ({member})")
        size = _checked(shape, dtype, info.file_size - f.tell(), member, where)
        data = f.read(size)
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype.kind == "f" and array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    return array


def read_npz(path: str) -> NpzSite:
    """Read one DeepProfiler NPZ file.

    Raises:
        SourceReadError: The file is not a readable zip, lacks ``features.npy`` or
            ``locations.npy``, or its arrays do not agree in cells.
        UnsafePickleError: ``metadata.npy`` is not a plain metadata dict.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in (FEATURES, LOCATIONS) if m not in names]
            if missing:
                raise SourceReadError(
                    f"{path} has no {' or '.join(missing)} (it holds {', '.join(sorted(names)) or 'nothing'}); "
                    "is it a DeepProfiler features file? Remove it from the source or export it again")
            features = _numbers(zf, FEATURES, path)
            locations = _numbers(zf, LOCATIONS, path)
            metadata = _metadata(zf, path) if METADATA in names else {}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise SourceReadError(f"{path} is not a readable NPZ file ({e}); copy or export it "
                              "again, or remove it from the source") from e
    if features.ndim != 2:
        raise SourceReadError(f"{path}: features.npy has shape {features.shape}, not "
                              "(cells, features)")
    if locations.ndim != 2 or locations.shape[0] != features.shape[0] or locations.shape[1] < 2:
        raise SourceReadError(
            f"{path}: locations.npy has shape {locations.shape} but features.npy has "
            f"{features.shape[0]} cells; each cell needs an x and a y. The file is damaged: "
            "export it again")
    return NpzSite(features, locations, metadata)


def _metadata(zf: zipfile.ZipFile, path: str) -> dict[str, Value]:
    info = zf.getinfo(METADATA)
    if info.file_size > MAX_METADATA:
        raise UnsafePickleError(f"{path}: metadata.npy is {info.file_size} bytes, more than "
                                "a metadata dict; re-export the file or remove it")
    with zf.open(info) as f:
        shape, _, dtype = _header(f, f"{path} ({METADATA})")
        if not (dtype.hasobject and shape == ()):
            raise SourceReadError(f"{path}: metadata.npy holds {dtype} values of shape {shape}, "
                                  "not a metadata dict")
        return load_metadata(f.read(), path)


def model_name(metadata: dict[str, Value]) -> str:
    """The prefix of the feature columns: the metadata's model, made a safe name, or ``DP``."""
    model = metadata.get(MODEL_KEY)
    return safe_name(str(model)) if model not in (None, "") else DEFAULT_MODEL


def metadata_name(key: str) -> str:
    """``Metadata_<key>``, unless the key already starts so (pycytominer's rule)."""
    return key if key.startswith("Metadata_") else f"Metadata_{key}"


def _arrow_value_type(value: Value) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()


def _unique(names: list[str]) -> list[str]:
    """Names made distinct: two keys naming one column (``Plate``, ``Metadata_Plate``) keep
    both, the later one as ``_2``."""
    seen: set[str] = set()
    out = []
    for name in names:
        unique, k = name, 1
        while unique in seen:
            k += 1
            unique = f"{name}_{k}"
        seen.add(unique)
        out.append(unique)
    return out


def _names(metadata: dict[str, Value], features: int) -> list[str]:
    """The columns of a site, in order (see the module's description)."""
    return _unique([
        IMAGE_KEY,
        OBJECT_KEY,
        SOURCE_COLUMN,
        *(metadata_name(k) for k in metadata),
        *LOCATION_COLUMNS,
        *(f"{model_name(metadata)}_{i}" for i in range(features)),
    ])


def site_table(site: NpzSite, *, image_number: int, source: str) -> pa.Table:
    """The rows of one site: one per cell, named and ordered as this module describes."""
    import numpy as np

    n = site.cells
    arrays = [
        pa.array(np.full(n, image_number, dtype=np.int64)),
        pa.array(np.arange(1, n + 1, dtype=np.int64)),
        pa.array([source] * n, pa.string()),
    ]
    for key, value in site.metadata.items():
        try:
            arrays.append(pa.array([value] * n, _arrow_value_type(value)))
        except (pa.ArrowInvalid, OverflowError) as e:
            raise SourceReadError(f"{source}: metadata {key!r} = {value!r} does not fit a "
                                  f"column ({e})") from e
    arrays += [pa.array(np.ascontiguousarray(site.locations[:, i], dtype=np.float64))
               for i in range(len(LOCATION_COLUMNS))]
    # The columns of a Fortran-ordered copy are contiguous: Arrow takes them without copying.
    features = np.asfortranarray(site.features)
    if features.dtype.kind in "iu":
        features = features.astype(np.int64, order="F")
    arrays += [pa.array(features[:, i]) for i in range(features.shape[1])]
    return pa.Table.from_arrays(arrays, names=_names(site.metadata, features.shape[1]))


def _check_keys(preset: Preset) -> None:
    keys = (preset.image_key, preset.compartment(preset.base).object_number)
    if keys != (IMAGE_KEY, OBJECT_KEY):
        raise InvalidPresetError(
            f"preset {preset.name!r} reads NPZ files, whose rows celltable numbers as "
            f"{IMAGE_KEY} (the site) and {OBJECT_KEY} (the cell); name those its image key and "
            f"object number, not {keys[0]} and {keys[1]}")


def _domain_type(t: pa.DataType) -> DataType:
    if pa.types.is_boolean(t):
        return DataType.BOOL
    if pa.types.is_integer(t):
        return DataType.INT64
    if pa.types.is_float32(t):
        return DataType.FLOAT32
    if pa.types.is_floating(t):
        return DataType.FLOAT64
    return DataType.STRING


def _files(unit: SourceUnit) -> list[tuple[int, str, str]]:
    """``(image number, path, name)`` of each file of a plate, in the locator's order."""
    root = Path(unit.path)
    out = []
    for i, loc in enumerate(unit.tables, start=1):
        path = Path(loc.path)
        name = path.relative_to(root).as_posix() if root.is_dir() and path.is_relative_to(root) \
            else path.name
        out.append((i, loc.path, name))
    return out


def stage_npz(con: duckdb.DuckDBPyConnection, unit: SourceUnit, preset: Preset) -> StagedTable:
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
    for image, path, name in _files(unit):
        site = read_npz(path)
        table = site_table(site, image_number=image, source=name)
        try:
            con.register("npz_site", table)
            if not types:
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM npz_site")
            else:
                for field in table.schema:
                    new = _domain_type(field.type)
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
             *(_domain_type(_arrow_value_type(v)) for v in metadata.values()),
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


def plate_table(unit: SourceUnit, preset: Preset) -> StagedTable:
    """A plate of NPZ files as one table, from each file's headers and metadata: its columns
    (the union over files, types widened as plates' are), cells and cells per site. Nothing is
    copied: each chunk reads its sites' files (:func:`chunk_rows`)."""
    _check_keys(preset)
    types: dict[str, list[DataType]] = {}
    by_image = []
    for image, path, _ in _files(unit):
        cells, columns = _site_schema(path)
        for c in columns:
            types.setdefault(c.name, []).append(c.type)
        if cells:
            by_image.append((image, cells))
    schema = TableSchema(preset.base, tuple(Column(n, unify_types(t)) for n, t in types.items()))
    return StagedTable(preset.base, schema, sum(n for _, n in by_image), tuple(by_image))


def chunk_rows(staged: StagedUnit, queries: Sequence[ChunkQuery]) -> Iterator[dict[str, pa.Table]]:
    """For each query, the rows of the sites in its chunk, every file read once and given the
    plate's columns (a column a file lacks is NULL, a type another file widened is cast)."""
    (table,) = staged.tables
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in table.schema.columns])
    files = _files(staged.unit)
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


def describe_npz(unit: SourceUnit, preset: Preset) -> UnitDescription:
    """A plate of NPZ files for ``celltable inspect``: its cells and columns, read from each
    file's headers and metadata only (features are not read)."""
    table = plate_table(unit, preset)
    files = f"{len(unit.tables)} NPZ file{'s' if len(unit.tables) != 1 else ''}"
    return UnitDescription(unit, (TableDescription(preset.base, files, table.schema, table.rows),))
