"""Image crops: TIFF files read with tifffile, every object of an image cut from one read.

``crop_batch`` runs as a task: it reads each file of its image sets once (plain TIFF or
OME-TIFF, the first series), cuts every object's bounding box (``[y_min:y_max, x_min:x_max]``,
what NumPy slicing of the image gives), and writes the crops as OME-Arrow structs into one
Parquet data file; it returns a small record (path, rows, files skipped), so under a
distributed executor no pixels travel back to the main process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from celltable.adapters.ome_arrow import OME_ARROW, crops_array
from celltable.domain.errors import ImageFileError, MissingExtraError
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER
from celltable.domain.warehouse import (
    OBJECT_ID,
    Channel,
    CropOutput,
    FileIndex,
    ImageRows,
    ImageSet,
    object_id,
)

IMAGE_NUMBER = "Metadata_ImageNumber"

CROPS_SCHEMA = pa.schema([
    pa.field(TABLE_NUMBER, pa.string()),
    pa.field(IMAGE_NUMBER, pa.int64()),
    pa.field(OBJECT_NUMBER, pa.int64()),
    pa.field(OBJECT_ID, pa.string()),
    pa.field("Metadata_ImageCropID", pa.string()),
    pa.field("source_image_column", pa.string()),
    pa.field("source_image_file", pa.string()),
    pa.field("source_bbox_x_min", pa.int64()),
    pa.field("source_bbox_x_max", pa.int64()),
    pa.field("source_bbox_y_min", pa.int64()),
    pa.field("source_bbox_y_max", pa.int64()),
    pa.field("ome_arrow_image", OME_ARROW),
    pa.field("ome_arrow_mask", OME_ARROW),
    pa.field("ome_arrow_outline", OME_ARROW),
])


def tifffile_module():
    try:
        import tifffile
    except ImportError:
        raise MissingExtraError(
            "reading images needs tifffile: pip install 'celltable[iceberg]'"
        ) from None
    return tifffile


def index_folder(folder: str) -> FileIndex:
    """Every file under ``folder`` by file name (hidden files left out).

    Raises:
        ImageFileError: The folder does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageFileError(f"image folder {folder} does not exist; check the path")
    by_name: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            if not name.startswith("."):
                by_name.setdefault(name, []).append((rel / name).as_posix())
    return FileIndex(root.absolute().as_posix(), {k: tuple(sorted(v)) for k, v in by_name.items()})


def read_plane(path: str) -> np.ndarray:
    """The one 2-D plane of a TIFF (plain or OME-TIFF, first series; singleton axes dropped).

    Raises:
        ImageFileError: Missing, unreadable, or more than one plane.
    """
    tifffile = tifffile_module()
    try:
        with tifffile.TiffFile(path) as tif:
            pixels = tif.series[0].asarray()
    except FileNotFoundError:
        raise ImageFileError(f"image file {path} does not exist") from None
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as e:
        raise ImageFileError(f"image file {path} is not a readable TIFF ({e})") from e
    plane = np.squeeze(pixels)
    if plane.ndim != 2:
        raise ImageFileError(f"image file {path} holds {pixels.shape} pixels; one plane per "
                             "file (one channel, one z, one time point) is supported")
    return plane


def image_rows(profiles: str, channels: Sequence[Channel],
               bbox: Sequence[str]) -> Iterator[ImageRows]:
    """The objects of each image of a profiles file (ordered by plate and image, as celltable
    writes it), a record batch at a time."""
    cols = [TABLE_NUMBER, IMAGE_NUMBER, OBJECT_NUMBER, *bbox]
    for ch in channels:
        cols += [ch.file_column] + ([ch.path_column] if ch.path_column else [])
    file = pq.ParquetFile(profiles)
    current: tuple[str, int] | None = None
    files: tuple = ()
    objects: list[int] = []
    boxes: list[tuple[int, int, int, int]] = []
    for batch in file.iter_batches(columns=cols, batch_size=65536):
        data = {name: batch.column(name) for name in cols}
        for name in bbox:
            data[name] = pc.cast(pc.round(pc.cast(data[name], pa.float64())), pa.int64())
        py = {name: arr.to_pylist() for name, arr in data.items()}
        for i in range(batch.num_rows):
            key = (py[TABLE_NUMBER][i], py[IMAGE_NUMBER][i])
            if key != current:
                if current is not None:
                    yield ImageRows(*current, files, tuple(objects), tuple(boxes))
                current, objects, boxes = key, [], []
                files = tuple((ch.name, py[ch.file_column][i],
                               py[ch.path_column][i] if ch.path_column else None)
                              for ch in channels)
            if any(py[b][i] is None for b in bbox):
                continue  # no bounding box: nothing to cut
            objects.append(py[OBJECT_NUMBER][i])
            boxes.append(tuple(py[b][i] for b in bbox))  # type: ignore[arg-type]
    if current is not None:
        yield ImageRows(*current, files, tuple(objects), tuple(boxes))


def crop_batch(sets: Sequence[ImageSet], path: str, skip_bad_files: bool) -> CropOutput:
    """Crop every object of ``sets`` from each of its files, read once, into a Parquet file at
    ``path`` (one row group per image set). Runs as a task."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    skipped: list[tuple[str, str]] = []
    channels: set[str] = set()
    try:
        for s in sets:
            table = _crop_set(s, skip_bad_files, skipped)
            if table is None:
                continue
            channels.update(c.removeprefix("Image_FileName_")
                            for c in table.column("source_image_column").unique().to_pylist())
            if writer is None:
                writer = pq.ParquetWriter(path, CROPS_SCHEMA, compression="zstd")
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return CropOutput(path if writer is not None else None, rows, tuple(skipped),
                      tuple(sorted(channels)))


def _crop_set(s: ImageSet, skip_bad_files: bool,
              skipped: list[tuple[str, str]]) -> pa.Table | None:
    """The crops of one image's channels; a file that cannot be read raises, or with
    ``skip_bad_files`` is added to ``skipped`` and its crops left out (a mask or outline: the
    whole image's)."""

    def read(path: str) -> np.ndarray | None:
        try:
            return read_plane(path)
        except ImageFileError as e:
            if not skip_bad_files:
                raise
            skipped.append((path, str(e)))
            return None

    ids = [object_id(s.plate, s.image, o) for o in s.objects]
    mask = read(s.mask) if s.mask else None
    outline = read(s.outline) if s.outline else None
    if (s.mask and mask is None) or (s.outline and outline is None):
        return None
    parts = []
    for channel, file in s.files:
        plane = read(file)
        if plane is None:
            continue
        crops = [plane[y0:y1, x0:x1] for x0, x1, y0, y1 in s.boxes]
        crop_ids = [f"{i}/{channel}" for i in ids]
        n = len(crops)
        extra = []
        for kind, source, pixels in (("mask", s.mask, mask), ("outline", s.outline, outline)):
            if pixels is None:
                extra.append(pa.nulls(n, OME_ARROW))
            else:
                extra.append(crops_array([pixels[y0:y1, x0:x1] for x0, x1, y0, y1 in s.boxes],
                                         crop_ids, Path(source).name, kind, image_type="label"))
        x0, x1, y0, y1 = (pa.array([b[k] for b in s.boxes], pa.int64()) for k in range(4))
        parts.append(pa.Table.from_arrays([
            pa.array([s.plate] * n, pa.string()),
            pa.array([s.image] * n, pa.int64()),
            pa.array(s.objects, pa.int64()),
            pa.array(ids, pa.string()),
            pa.array(crop_ids, pa.string()),
            pa.array([f"Image_FileName_{channel}"] * n, pa.string()),
            pa.array([file] * n, pa.string()),
            x0, x1, y0, y1,
            crops_array(crops, crop_ids, Path(file).name, channel),
            *extra,
        ], schema=CROPS_SCHEMA))
    return pa.concat_tables(parts) if parts else None


class TiffCropper:
    """Image files read with tifffile (see :class:`celltable.domain.ports.ImageCropper`)."""

    def columns(self, profiles: str) -> tuple[str, ...]:
        files = _profile_files(profiles)
        return tuple(pq.read_schema(files[0]).names) if files else ()

    def data_files(self, profiles: str) -> tuple[str, ...]:
        return tuple(_profile_files(profiles))

    def index(self, folder: str) -> FileIndex:
        return index_folder(folder)

    def image_rows(self, profiles: str, channels: Sequence[Channel],
                   bbox: Sequence[str]) -> Iterator[ImageRows]:
        for path in _profile_files(profiles):
            yield from image_rows(path, channels, bbox)

    def crop(self, sets: Sequence[ImageSet], path: str, skip_bad_files: bool) -> CropOutput:
        return crop_batch(sets, path, skip_bad_files)


def _profile_files(profiles: str) -> list[str]:
    """The profiles' data file, or the files of a folder of them (one per plate: plate tasks
    write them so), in name order."""
    if Path(profiles).is_dir():
        return sorted(str(f) for f in Path(profiles).glob("*.parquet"))
    return [profiles]
