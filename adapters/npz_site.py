"""One DeepProfiler NPZ file (one well and site) read into an Arrow table: the numeric arrays from
their ``.npy`` header and bytes (checked in ``adapters/npz_checks.py``), the metadata, and the
columns named as pycytominer's ``load_npz_features`` names them."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from celltable.adapters.npz_checks import MAX_METADATA, Value, _header, _numbers, load_metadata
from celltable.domain.errors import SourceReadError, UnsafePickleError
from celltable.domain.naming import safe_name

if TYPE_CHECKING:
    import numpy as np


FEATURES, LOCATIONS, METADATA = "features.npy", "locations.npy", "metadata.npy"
IMAGE_KEY, OBJECT_KEY = "ImageNumber", "ObjectNumber"  # an NPZ preset's image key and object number
SOURCE_COLUMN = "Metadata_NPZSource"
LOCATION_COLUMNS = ("Location_Center_X", "Location_Center_Y")
MODEL_KEY = "Metadata_Model"
DEFAULT_MODEL = "DP"  # pycytominer's and CytoTable's name for features of an unnamed model


@dataclass(frozen=True, slots=True)
class NpzSite:
    """One NPZ file as read: its features, cell locations and metadata."""

    features: np.ndarray
    locations: np.ndarray
    metadata: dict[str, Value]

    @property
    def cells(self) -> int:
        return int(self.features.shape[0])


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
