"""Iceberg warehouses: what goes in them and how image files and bounding boxes are found.

A warehouse holds two namespaces. ``profiles`` has one table (:data:`PROFILES_TABLE`), one row
per object, the columns of the Parquet output plus :data:`OBJECT_ID`. ``images`` has one table
(:data:`CROPS_TABLE`), one row per object and image channel, the object's crop of that channel's
image (and of its mask and outline images when given). Names follow the incumbent's, so users
switching find the tables where they look for them.

Pure logic only: which columns name an object's bounding box, which name its image files, where
a file named in a row is found among the files of a folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from celltable.domain.errors import ImageFileError, InvalidOptionError, SchemaError
from celltable.domain.formats import OutputFormat

ICEBERG = OutputFormat("iceberg", ".iceberg", extra="iceberg", warehouse=True)
"""DEST is a warehouse folder (any name; ``.iceberg`` names the format without ``--format``)."""

PROFILES = "profiles"
IMAGES = "images"
PROFILES_TABLE = "joined_profiles"
CROPS_TABLE = "image_crops"
OBJECT_ID = "Metadata_ObjectID"
"""``<plate>/<image>/<object>``: unique in a warehouse (plates are unique in it, see
:func:`plates_already_there`) and the same in every conversion of the same plate."""

CATALOG_FILE = "catalog.db"
CATALOG_NAME = "celltable"

TIFF_SUFFIXES = (".tif", ".tiff")
BBOX_FEATURES = (
    "AreaShape_BoundingBoxMinimum_X",
    "AreaShape_BoundingBoxMaximum_X",
    "AreaShape_BoundingBoxMinimum_Y",
    "AreaShape_BoundingBoxMaximum_Y",
)
"""CellProfiler's bounding box of an object: minimum inclusive, maximum exclusive (a
``[y_min:y_max, x_min:x_max]`` slice of the image)."""


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """Where a conversion to a warehouse finds images, and how it cuts them.

    Attributes:
        images_dir: The folder holding the images the image table names (searched recursively);
            None: no crops.
        masks_dir: A folder of mask images (labels), cropped like the images when given; a
            mask matches an image by its file name (see :func:`companion`).
        outlines_dir: As ``masks_dir``, for outline images.
        bbox_compartment: The compartment whose bounding box cuts the crop.
        bbox_columns: The bounding box's columns in that compartment, in the order
            x_min, x_max, y_min, y_max (without the compartment prefix).

    An image file that is missing, ambiguous or unreadable fails the conversion unless the
    conversion's ``skip_bad_files`` (``--skip-bad-files``) is set: then its crops are left out
    and reported.
    """

    images_dir: str | None = None
    masks_dir: str | None = None
    outlines_dir: str | None = None
    bbox_compartment: str = "Cells"
    bbox_columns: tuple[str, str, str, str] = BBOX_FEATURES

    def __post_init__(self) -> None:
        if len(self.bbox_columns) != 4:
            raise InvalidOptionError("bbox_columns takes four names: x_min, x_max, y_min, y_max")
        if (self.masks_dir or self.outlines_dir) and not self.images_dir:
            raise InvalidOptionError("masks and outlines are cropped with the images: give "
                                     "--images too")

    def bbox(self) -> tuple[str, str, str, str]:
        """The output names of the bounding-box columns (``Cells_AreaShape_...``)."""
        c = self.bbox_compartment
        x0, x1, y0, y1 = (n if n.startswith(f"{c}_") else f"{c}_{n}" for n in self.bbox_columns)
        return x0, x1, y0, y1


@dataclass(frozen=True, slots=True)
class IcebergOptions:
    """Settings of a conversion into an Iceberg warehouse.

    Attributes:
        append: Add the plates of SOURCE to an existing warehouse, in one new snapshot per
            table (new columns are added to the tables' schemas); plates it already holds are
            refused.
        catalog_uri: Commit into this catalog (``http(s)://`` REST, ``sqlite:///``,
            ``postgresql://``) instead of ``DEST/catalog.db``; DEST is then the warehouse
            location new tables go under.
        catalog_options: More properties of that catalog (credentials, ``warehouse`` ...).
        images: Where images are found and how they are cropped (no crops by default).
    """

    append: bool = False
    catalog_uri: str | None = None
    catalog_options: tuple[tuple[str, str], ...] = ()
    images: ImageOptions = field(default_factory=ImageOptions)


@dataclass(frozen=True, slots=True)
class Channel:
    """An image channel of the output: its file-name column and, when present, path column."""

    name: str
    file_column: str
    path_column: str | None = None


def channels(columns: Iterable[str]) -> tuple[Channel, ...]:
    """The image channels the output's columns name (``Image_FileName_<channel>``, with
    ``Image_PathName_<channel>`` when there is one), in column order."""
    names = list(columns)
    present = set(names)
    found = []
    for col in names:
        m = re.fullmatch(r"Image_FileName_(.+)", col)
        if m:
            path = f"Image_PathName_{m.group(1)}"
            found.append(Channel(m.group(1), col, path if path in present else None))
    return tuple(found)


def is_tiff(file_name: str) -> bool:
    return file_name.lower().endswith(TIFF_SUFFIXES)


def check_bbox_columns(options: ImageOptions, columns: Iterable[str]) -> tuple[str, ...]:
    """The bounding-box columns, all present in ``columns``.

    Raises:
        SchemaError: One is missing; the message says how to choose others.
    """
    present = set(columns)
    bbox = options.bbox()
    missing = [c for c in bbox if c not in present]
    if missing:
        raise SchemaError(
            f"the output has no bounding-box column {', '.join(missing)}; crops need "
            "CellProfiler's MeasureObjectSizeShape measurements, or choose the compartment "
            "and columns with --bbox-compartment / --bbox-columns"
        )
    return bbox


def object_id(plate: str, image: int, obj: int) -> str:
    """The stable id of an object (see :data:`OBJECT_ID`)."""
    return f"{plate}/{image}/{obj}"


@dataclass(frozen=True, slots=True)
class FileIndex:
    """The files under a folder by file name: ``{name: (relative paths ...)}``."""

    root: str
    by_name: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def find(self, file_name: str, path_name: str | None = None) -> str:
        """The one file called ``file_name`` (a name, or a path relative to the folder); several
        are told apart by the most trailing folders shared with ``path_name`` (the folder the
        image table gives).

        Raises:
            ImageFileError: No file has that name, or several do and ``path_name`` cannot
                tell them apart.
        """
        name = PurePosixPath(file_name.replace("\\", "/")).name
        candidates = self.by_name.get(name, ())
        if not candidates:
            raise ImageFileError(
                f"image file {file_name!r} is not under {self.root}; give the folder holding "
                "the plate's images with --images, or --skip-bad-files to leave its crops out"
            )
        if len(candidates) == 1:
            return f"{self.root}/{candidates[0]}"
        parts = PurePosixPath((path_name or "").replace("\\", "/")).parts
        scored = sorted(((_shared_tail(PurePosixPath(c).parent.parts, parts), c)
                         for c in candidates), reverse=True)
        if scored[0][0] == scored[1][0]:
            raise ImageFileError(
                f"image file {file_name!r} is ambiguous: {len(candidates)} files under "
                f"{self.root} have that name ({', '.join(sorted(candidates)[:3])} ...) and its "
                "path name does not tell them apart; give the plate's own image folder with "
                "--images"
            )
        return f"{self.root}/{scored[0][1]}"


def _shared_tail(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


def companion(index: FileIndex, image_file: str) -> str | None:
    """The mask or outline file under ``index`` for an image file: the same file name, else
    the one file whose stem starts with the image's stem; None when there is none.

    Raises:
        ImageFileError: Several files could be the one.
    """
    name = PurePosixPath(image_file).name
    if name in index.by_name:
        return index.find(name, str(PurePosixPath(image_file).parent))
    stem = name.split(".", 1)[0]
    matches = [n for n in index.by_name if n.startswith(stem) and is_tiff(n)]
    if not matches:
        return None
    if len(matches) > 1 or len(index.by_name[matches[0]]) > 1:
        raise ImageFileError(
            f"several files under {index.root} could be the one for image {name!r} "
            f"({', '.join(sorted(matches)[:3])}); keep one per image in that folder"
        )
    return f"{index.root}/{index.by_name[matches[0]][0]}"


def plates_already_there(existing: Iterable[str], plates: Iterable[str]) -> tuple[str, ...]:
    """The plates of a conversion that a warehouse table already holds, in plate order."""
    have = set(existing)
    return tuple(p for p in plates if p in have)


@dataclass(frozen=True, slots=True)
class ImageRows:
    """The objects of one image (set of channels) in the profiles: what cropping it needs."""

    plate: str
    image: int
    files: tuple[tuple[str, str, str | None], ...]
    """``(channel, file name, path name)`` per channel."""
    objects: tuple[int, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    """``(x_min, x_max, y_min, y_max)`` per object."""


@dataclass(frozen=True, slots=True)
class ImageSet:
    """One image's channel files found on disk, with its objects: a unit of cropping (every file
    read once, every object cut from that read)."""

    plate: str
    image: int
    files: tuple[tuple[str, str], ...]
    """``(channel, path)`` per TIFF channel found."""
    objects: tuple[int, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    mask: str | None = None
    outline: str | None = None


@dataclass(frozen=True, slots=True)
class CropOutput:
    """What a cropping task wrote: a data file (None when it had no crops), its rows, the
    files it left out (``(path, reason)``, with ``skip_bad_files``) and the channels cropped."""

    path: str | None
    rows: int
    skipped: tuple[tuple[str, str], ...] = ()
    channels: tuple[str, ...] = ()
    """The channels it cropped."""


@dataclass(frozen=True, slots=True)
class TableFiles:
    """Data files to add to one warehouse table in one commit."""

    namespace: str
    table: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableState:
    """A warehouse table as a commit left it (or as it is)."""

    namespace: str
    table: str
    rows: int
    snapshots: int
    snapshot_id: int | None
    columns: int
    location: str = ""


def image_sets(rows: ImageRows, find: object, masks: FileIndex | None,
               outlines: FileIndex | None, skip_bad_files: bool,
               skipped: list[tuple[str, str]]) -> ImageSet | None:
    """The files of one image found (``find(file_name, path_name) -> path``); a TIFF channel
    whose file is missing or ambiguous raises, or with ``skip_bad_files`` is recorded in
    ``skipped`` and left out. Channels that are not TIFF files (overlays saved as PNG) are no
    images to crop. None when nothing is left to crop."""
    files = []
    for channel, name, path_name in rows.files:
        if not name or not is_tiff(name):
            continue
        try:
            files.append((channel, find(name, path_name)))  # type: ignore[operator]
        except ImageFileError as e:
            if not skip_bad_files:
                raise
            skipped.append((name, str(e)))
    if not files or not rows.objects:
        return None
    extra = []
    for index in (masks, outlines):
        found = None
        if index is not None:
            for _, path in files:
                found = companion(index, path)
                if found:
                    break
        extra.append(found)
    return ImageSet(rows.plate, rows.image, tuple(files), rows.objects, rows.boxes, *extra)


def batches(sets: Iterable[ImageSet], crops_per_batch: int) -> Iterable[tuple[ImageSet, ...]]:
    """Image sets in groups of about ``crops_per_batch`` crops: one task and one data file each
    (a file per image would make thousands of small files)."""
    batch: list[ImageSet] = []
    crops = 0
    for s in sets:
        batch.append(s)
        crops += len(s.objects) * len(s.files)
        if crops >= crops_per_batch:
            yield tuple(batch)
            batch, crops = [], 0
    if batch:
        yield tuple(batch)
