"""What an NPZ file may hold, checked before anything is read: each ``.npy`` array's header
against the bytes its member holds, and ``metadata.npy`` (a pickle) rebuilt by
:class:`MetadataUnpickler` as a 0-d object array holding a dict of plain values, nothing else.
``numpy.load`` with ``allow_pickle=True`` is never used."""

from __future__ import annotations

import io
import math
import pickle
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celltable.domain.errors import SourceReadError, UnsafePickleError

if TYPE_CHECKING:
    import numpy as np


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
