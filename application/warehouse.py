"""The convert use case into an Iceberg warehouse: profiles, then image crops, then one commit
per table.

Data flows one way: the profiles are converted as for Parquet (with a stable object id) into a
data file in the warehouse's staging folder (under worker processes, one per plate, each written
by its plate task); cropping tasks read that file's keys, bounding
boxes and file names, read each image once and write crop data files next to it; the main
process then commits the list of data files, one transaction per table. A failure at any step
leaves every table at its previous snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import structlog

from celltable.application.convert import Services, convert
from celltable.application.tasks import run_ordered
from celltable.domain.errors import CelltableError, InvalidOptionError, WarehouseError
from celltable.domain.model import ConversionRequest, ConversionResult
from celltable.domain.ports import Destination, ImageCropper, Warehouse
from celltable.domain.report import REPORT_SUFFIX, report_json
from celltable.domain.warehouse import (
    CROPS_TABLE,
    IMAGES,
    PROFILES,
    PROFILES_TABLE,
    Channel,
    CropOutput,
    FileIndex,
    IcebergOptions,
    ImageOptions,
    ImageSet,
    TableFiles,
    TableState,
    batches,
    channels,
    check_bbox_columns,
    image_sets,
    plates_already_there,
)

log = structlog.get_logger("celltable.warehouse")

CROPS_PER_BATCH = 20_000
"""Crops per cropping task and data file: tens of MB of pixels for typical cells."""


@dataclass(frozen=True, slots=True)
class WarehouseRequest:
    """Convert into the warehouse ``conversion.dest_path``; with ``append``, add plates to it."""

    conversion: ConversionRequest
    iceberg: IcebergOptions = field(default_factory=IcebergOptions)

    @property
    def images(self) -> ImageOptions:
        return self.iceberg.images

    @property
    def append(self) -> bool:
        return self.iceberg.append


@dataclass(frozen=True, slots=True)
class WarehouseResult:
    """What a conversion into a warehouse did: the profiles' conversion, the crops, and each
    table as its commit left it."""

    conversion: ConversionResult
    tables: tuple[TableState, ...]
    crops: int = 0
    channels: tuple[str, ...] = ()
    skipped_images: tuple[tuple[str, str], ...] = ()
    crop_s: float = 0.0
    """Seconds spent cropping (reading images and writing crops)."""

    @property
    def rows_out(self) -> int:
        return self.conversion.rows_out


def convert_to_warehouse(request: WarehouseRequest, services: Services, warehouse: Warehouse,
                         cropper: ImageCropper | None,
                         reports: Destination | None = None) -> WarehouseResult:
    """Convert the source into the warehouse: one new snapshot of the profiles table, and of
    the crops table when images are given. ``services.destination`` stages the profiles
    (locally); ``reports`` (default: that one) writes the run report beside DEST.

    Raises:
        CelltableError: Any named failure; every table is left at its previous snapshot.
    """
    started = time.perf_counter()
    conversion = request.conversion
    opts = conversion.options
    if not opts.join or opts.partition_by or opts.join_sql:
        raise InvalidOptionError("an Iceberg warehouse holds the joined profiles: leave out "
                                 "--no-join, --partition-by and --join-sql")
    if opts.resume:
        raise InvalidOptionError("--resume does not apply to a warehouse: a failed conversion "
                                 "commits nothing, so run it again")
    if request.images.images_dir and cropper is None:
        raise CelltableError("cropping images needs an image reader; none is configured")
    staging = warehouse.prepare(append=request.append)
    try:
        layout = services.locator.discover(conversion.source_path, conversion.preset)
        there = plates_already_there(warehouse.plates(PROFILES, PROFILES_TABLE),
                                     [u.key for u in layout.plates])
        if there:
            raise WarehouseError(
                f"the warehouse already holds plate(s) {', '.join(there)}; appending them again "
                "would repeat their rows: leave them out of SOURCE (or convert into a new DEST)"
            )
        # image folders are listed first: a wrong folder fails before anything is converted
        indexes = _indexes(request.images, cropper) if request.images.images_dir else None
        inner = replace(conversion, dest_path=f"{staging}/profiles.parquet",
                        options=replace(opts, report_path="-", overwrite=False))
        if services.worker_recipe is not None:  # plate tasks: each writes its plate's file
            inner = replace(inner, dest_path=f"{staging}/profiles",
                            options=replace(inner.options, partition_by="plate"))
        result = convert(inner, services)
        crop_files: tuple[str, ...] = ()
        crops, names, skipped = 0, (), []
        cropping = time.perf_counter()
        if indexes is not None and cropper is not None:
            crop_files, crops, names, skipped = _crop(request.images, cropper, indexes, services,
                                                      result.dest_path, staging,
                                                      opts.skip_bad_files)
        crop_s = time.perf_counter() - cropping
        properties = {"data-producer": services.producer,
                      "data-producer-version": services.version,
                      "celltable.plates": json.dumps(list(result.plates))}
        states = warehouse.commit(
            [TableFiles(IMAGES, CROPS_TABLE, crop_files),  # first: profiles mark the plate done
             TableFiles(PROFILES, PROFILES_TABLE, (result.dest_path,))], properties)
    except BaseException:
        warehouse.discard(failed=True)
        raise
    warehouse.discard()
    done = WarehouseResult(replace(result, dest_path=conversion.dest_path,
                                   duration_s=time.perf_counter() - started),
                           states, crops, names, tuple(skipped), crop_s)
    written = _write_report(request, reports or services.destination, done)
    done = replace(done, conversion=replace(done.conversion, report_path=written))
    log.info("warehouse_committed", dest=conversion.dest_path, profiles=result.rows_out,
             crops=crops, skipped_images=len(skipped))
    return done


Indexes = tuple[FileIndex, FileIndex | None, FileIndex | None]
"""The files of the image, mask and outline folders."""


def _indexes(images: ImageOptions, cropper: ImageCropper | None) -> Indexes:
    assert images.images_dir is not None and cropper is not None
    return (cropper.index(images.images_dir),
            cropper.index(images.masks_dir) if images.masks_dir else None,
            cropper.index(images.outlines_dir) if images.outlines_dir else None)


def _crop(images: ImageOptions, cropper: ImageCropper, indexes: Indexes, services: Services,
          profiles: str, staging: str, skip_bad_files: bool
          ) -> tuple[tuple[str, ...], int, tuple[str, ...], list[tuple[str, str]]]:
    """Crop every object of the profiles from its images: data files, crops, channels cropped,
    files skipped (with ``skip_bad_files``, the conversion's ``--skip-bad-files``). On threads
    the batches of crops are the tasks; under plate tasks (``profiles`` a folder of the plates'
    files) each plate's file is read, planned and cropped by a task of its own, so no profile
    row passes through this process."""
    columns = cropper.columns(profiles)
    chans = channels(columns)
    bbox = check_bbox_columns(images, columns)
    skipped: list[tuple[str, str]] = []
    cropped: set[str] = set()
    workers = max(1, services.runner.workers)
    if services.worker_recipe is None:
        jobs = ((f"cropping plate {b[0].plate!r} from image {b[0].image}",
                 (b, f"{staging}/crops-{i:06d}.parquet", skip_bad_files))
                for i, b in enumerate(batches(_sets(cropper, profiles, chans, bbox, indexes,
                                                    skip_bad_files, skipped), CROPS_PER_BATCH)))
        outs = run_ordered(services.runner, cropper.crop, jobs, workers)
    else:
        plates = ((f"cropping {f.rsplit('/', 1)[-1]}",
                   (cropper, f, chans, bbox, indexes, f"{staging}/crops-{i:06d}", skip_bad_files))
                  for i, f in enumerate(cropper.data_files(profiles)))
        outs = (o for found in run_ordered(services.runner, crop_file, plates, workers)
                for o in found)
    files, rows = [], 0
    for out in outs:
        if out.path:
            files.append(out.path)
        rows += out.rows
        skipped.extend(out.skipped)
        cropped.update(out.channels)
    if skipped:
        log.warning("image_files_skipped", files=len(skipped), first=skipped[0][1])
    return tuple(files), rows, tuple(sorted(cropped)), skipped


def _sets(cropper: ImageCropper, profiles: str, chans: tuple[Channel, ...], bbox: tuple[str, ...],
          indexes: Indexes, skip_bad_files: bool,
          skipped: list[tuple[str, str]]) -> Iterator[ImageSet]:
    """The image sets of a profiles file's objects, the files left out added to ``skipped``."""
    index, masks, outlines = indexes
    for rows in cropper.image_rows(profiles, chans, bbox):
        s = image_sets(rows, index.find, masks, outlines, skip_bad_files, skipped)
        if s is not None:
            yield s


def crop_file(cropper: ImageCropper, profiles: str, chans: tuple[Channel, ...],
              bbox: tuple[str, ...], indexes: Indexes, stem: str,
              skip_bad_files: bool) -> tuple[CropOutput, ...]:
    """A task: crop the objects of one plate's profiles file into data files ``stem-N.parquet``;
    the image files left out ride on one more output without a file."""
    skipped: list[tuple[str, str]] = []
    sets = _sets(cropper, profiles, chans, bbox, indexes, skip_bad_files, skipped)
    outs = [cropper.crop(b, f"{stem}-{i:06d}.parquet", skip_bad_files)
            for i, b in enumerate(batches(sets, CROPS_PER_BATCH))]
    return (*outs, CropOutput(None, 0, tuple(skipped)))


def _write_report(request: WarehouseRequest, destination: Destination,
                  done: WarehouseResult) -> str | None:
    """The run report, with the warehouse's tables, crops and image files skipped; where it
    was written (None: not written)."""
    opts = request.conversion.options
    report = done.conversion.report
    if report is None or opts.report_path == "-":
        return None
    data = report_json(replace(report, dest=request.conversion.dest_path))
    data["warehouse"] = {
        "tables": [{"table": f"{t.namespace}.{t.table}", "rows": t.rows,
                    "snapshots": t.snapshots, "snapshot_id": t.snapshot_id} for t in done.tables],
        "crops": done.crops,
        "crop_seconds": round(done.crop_s, 3),
        "channels": list(done.channels),
        "image_files_skipped": [{"file": f, "reason": r} for f, r in done.skipped_images],
    }
    path = opts.report_path or request.conversion.dest_path.rstrip("/") + REPORT_SUFFIX
    try:
        return destination.write_text(path, json.dumps(data, indent=2) + "\n")
    except CelltableError as e:
        log.warning("report_not_written", path=path, reason=str(e))
        return None

