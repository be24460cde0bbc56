"""OME-Arrow: images as Arrow structs, so one column holds a crop per row.

The struct is the ``ome-arrow`` package's (``ome_arrow.meta.OME_ARROW_STRUCT``, version 0.1.0),
reproduced field for field rather than imported: that package needs Python 3.11 and brings
bioio, matplotlib and pandas, while celltable supports Python 3.10 and needs none of them to
build a struct. One field is left out: ``masks`` is Arrow's null type, which Iceberg cannot
store (the incumbent drops it too). Readers of OME-Arrow (``ome_arrow.export.to_numpy``) read
``pixels_meta`` and ``planes``, both filled here; ``chunks`` is an empty list.

A crop is one plane (z = t = c = 0) of ``size_y × size_x`` pixels flattened in row order, as
``uint16`` (OME-Arrow's pixel type; 8-bit images widen losslessly, ``pixels_meta.type`` keeps the
source type). Arrays are built from one NumPy buffer per image file: no Python list per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from celltable.domain.errors import ImageFileError

OME_ARROW_TYPE = "ome.arrow"
OME_ARROW_VERSION = "0.1.0"

CHANNEL = pa.struct([
    pa.field("id", pa.string()),
    pa.field("name", pa.string()),
    pa.field("emission_um", pa.float32()),
    pa.field("excitation_um", pa.float32()),
    pa.field("illumination", pa.string()),
    pa.field("color_rgba", pa.uint32()),
])
PIXELS_META = pa.struct([
    pa.field("dimension_order", pa.string()),
    pa.field("type", pa.string()),
    pa.field("size_x", pa.int32()),
    pa.field("size_y", pa.int32()),
    pa.field("size_z", pa.int32()),
    pa.field("size_c", pa.int16()),
    pa.field("size_t", pa.int32()),
    pa.field("physical_size_x", pa.float32()),
    pa.field("physical_size_y", pa.float32()),
    pa.field("physical_size_z", pa.float32()),
    pa.field("physical_size_x_unit", pa.string()),
    pa.field("physical_size_y_unit", pa.string()),
    pa.field("physical_size_z_unit", pa.string()),
    pa.field("channels", pa.list_(CHANNEL)),
])
CHUNK_GRID = pa.struct([
    pa.field("order", pa.string()),
    pa.field("chunk_t", pa.int32()),
    pa.field("chunk_c", pa.int16()),
    pa.field("chunk_z", pa.int32()),
    pa.field("chunk_y", pa.int32()),
    pa.field("chunk_x", pa.int32()),
    pa.field("chunk_order", pa.string()),
])
CHUNK = pa.struct([
    pa.field("t", pa.int32()),
    pa.field("c", pa.int16()),
    pa.field("z", pa.int32()),
    pa.field("y", pa.int32()),
    pa.field("x", pa.int32()),
    pa.field("shape_z", pa.int32()),
    pa.field("shape_y", pa.int32()),
    pa.field("shape_x", pa.int32()),
    pa.field("pixels", pa.list_(pa.uint16())),
])
PLANE = pa.struct([
    pa.field("z", pa.int32()),
    pa.field("t", pa.int32()),
    pa.field("c", pa.int16()),
    pa.field("pixels", pa.list_(pa.uint16())),
])
OME_ARROW = pa.struct([
    pa.field("type", pa.string()),
    pa.field("version", pa.string()),
    pa.field("id", pa.string()),
    pa.field("name", pa.string()),
    pa.field("image_type", pa.string()),
    pa.field("acquisition_datetime", pa.timestamp("us")),
    pa.field("pixels_meta", PIXELS_META),
    pa.field("chunk_grid", CHUNK_GRID),
    pa.field("chunks", pa.list_(CHUNK)),
    pa.field("planes", pa.list_(PLANE)),
])
"""OME-Arrow's struct without ``masks`` (see the module's docstring)."""

STORABLE = (np.uint8, np.uint16, np.int8, np.int16, np.int32, np.uint32, np.int64, np.uint64,
            np.bool_)


def crops_array(crops: Sequence[np.ndarray], ids: Sequence[str], name: str, channel: str,
                image_type: str = "image", valid: Sequence[bool] | None = None) -> pa.StructArray:
    """One OME-Arrow struct per crop (2-D arrays of one image's type); a row whose ``valid``
    is False is a null struct (an object without a mask, say).

    Raises:
        ImageFileError: The pixels do not fit OME-Arrow's ``uint16`` planes (floating point,
            negative or above 65,535).
    """
    n = len(crops)
    dtype = crops[0].dtype if n else np.dtype(np.uint16)
    flat = np.concatenate([c.ravel() for c in crops]) if n else np.zeros(0, np.uint16)
    if flat.dtype != np.uint16:
        if not np.issubdtype(flat.dtype, np.integer) and flat.dtype != np.bool_:
            raise ImageFileError(f"{name}: pixels of type {flat.dtype} cannot be stored in "
                                 "OME-Arrow's 16-bit planes; convert the images to integers")
        if flat.size and (flat.min() < 0 or flat.max() > 65535):
            raise ImageFileError(f"{name}: pixel values outside 0-65,535 cannot be stored in "
                                 "OME-Arrow's 16-bit planes")
        flat = flat.astype(np.uint16)
    sizes = np.fromiter((c.size for c in crops), np.int64, n)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    pixels = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint16()))
    zeros = pa.array(np.zeros(n, np.int32))
    plane = pa.StructArray.from_arrays([zeros, zeros, zeros.cast(pa.int16()), pixels],
                                       fields=list(PLANE))
    planes = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), plane)
    ys = np.fromiter((c.shape[0] for c in crops), np.int32, n)
    xs = np.fromiter((c.shape[1] for c in crops), np.int32, n)
    ones = pa.array(np.ones(n, np.int32))
    channel_struct = pa.StructArray.from_arrays(
        [pa.array([f"{channel}"] * n, pa.string()), pa.array([channel] * n, pa.string()),
         pa.nulls(n, pa.float32()), pa.nulls(n, pa.float32()), pa.nulls(n, pa.string()),
         pa.nulls(n, pa.uint32())], fields=list(CHANNEL))
    channels = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), channel_struct)
    meta = pa.StructArray.from_arrays(
        [_repeat("XYCT", n), _repeat(str(dtype), n), pa.array(xs), pa.array(ys), ones,
         ones.cast(pa.int16()), ones, pa.nulls(n, pa.float32()), pa.nulls(n, pa.float32()),
         pa.nulls(n, pa.float32()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string()),
         pa.nulls(n, pa.string()), channels], fields=list(PIXELS_META))
    empty_chunks = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)),
                                            pa.array([], CHUNK))
    mask = None if valid is None else pa.array([not v for v in valid], pa.bool_())
    return pa.StructArray.from_arrays(
        [_repeat(OME_ARROW_TYPE, n), _repeat(OME_ARROW_VERSION, n), pa.array(ids, pa.string()),
         _repeat(name, n), _repeat(image_type, n), pa.nulls(n, pa.timestamp("us")), meta,
         pa.nulls(n, CHUNK_GRID), empty_chunks, planes],
        fields=list(OME_ARROW), mask=mask)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                          pa.array([value])).cast(pa.string())


def to_numpy(crop: object) -> np.ndarray:
    """The pixels of one OME-Arrow struct (an Arrow ``StructScalar`` or its ``as_py()`` dict) as
    a ``(size_y, size_x)`` array of the source image's type (``pixels_meta.type``): equal to the
    image's bounding-box slice. Planes beyond the first (z, t or c above 0) are stacked in front:
    ``(planes, size_y, size_x)``.

    Raises:
        ValueError: ``crop`` is null or not an OME-Arrow struct.
    """
    if isinstance(crop, pa.StructScalar) and crop.is_valid:
        meta = crop["pixels_meta"].as_py()
        planes = crop["planes"].values
        flat = planes.field("pixels").flatten().to_numpy(zero_copy_only=False)
    else:
        value = crop.as_py() if isinstance(crop, pa.Scalar) else crop
        if not isinstance(value, dict) or "pixels_meta" not in value or "planes" not in value:
            raise ValueError("not an OME-Arrow struct (a null crop: no mask or outline for "
                             "it?)")
        meta = value["pixels_meta"]
        flat = np.concatenate([np.asarray(p["pixels"]) for p in value["planes"]])
    shape = (int(meta["size_y"]), int(meta["size_x"]))
    pixels = flat.astype(np.dtype(meta["type"])).reshape(-1, *shape)
    return pixels[0] if len(pixels) == 1 else pixels
