"""The plate as the unit of distributed work: what a plate task is given and what it returns.

Under an executor running tasks in other processes (or machines), each plate is read, joined and
written by one task where it runs; the main process only plans (:class:`PlateJob`) and commits
(from each task's :class:`PlateRecord`). Everything here is a small picklable value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from celltable.domain.errors import PlateFailedError
from celltable.domain.join import JoinSpec, SelectColumn
from celltable.domain.model import ConversionRequest, PlateRows, TableReport
from celltable.domain.presets import Preset
from celltable.domain.schema import Column
from celltable.domain.sources import (
    Plate,
    SkippedFile,
    SourceLayout,
    StagedPlate,
    bad_files_error,
    without_failed,
)

RECORD_FORMAT = 1
"""Bumped whenever a saved plate record changes meaning; older records are then ignored."""


@dataclass(frozen=True, slots=True)
class PlateOutput:
    """One output table's file for one plate: the plan's columns (the same for every plate) and
    this plate's select list filling them."""

    name: str
    tables: tuple[str, ...]
    base: str
    columns: tuple[Column, ...]
    selects: tuple[SelectColumn, ...]
    path: str
    chunk_size: int


@dataclass(frozen=True, slots=True)
class Surveyed:
    """A plate made ready where a worker runs: its staged tables (schemas, rows, keys) and the
    version (size and modification time) of each source file it was read from."""

    staged: StagedPlate
    versions: tuple[tuple[str, str], ...]
    listed: Plate | None = None
    """The plate as the main process listed it, when that differs (a cloud plate: its objects,
    not a worker's downloaded copies); a worker elsewhere fetches it again from there."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A plate whose files a survey task could not read (a bad file found only by reading):
    the plate as listed, the file named and why. The main process names every such plate at
    once, or with ``skip_bad_files`` leaves them out, as the threads path does."""

    plate: Plate
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlateJob:
    """Everything a plate task needs, fixed before any data moves."""

    request: ConversionRequest
    surveyed: Surveyed
    spec: JoinSpec | None
    outputs: tuple[PlateOutput, ...]
    scratch: str
    producer: str
    version: str
    record_path: str | None = None
    """Where the finished plate's record is saved for a later ``resume`` (None: not saved)."""

    @property
    def plate(self) -> str:
        return self.surveyed.staged.plate.key

    @property
    def preset(self) -> Preset:
        return self.request.preset


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file a plate task wrote: where, its rows, bytes, and the records it carries (its table
    checksum and column digests, JSON), from which its folder's manifest is made."""

    path: str
    rows: int
    bytes: int
    checksum: str = ""
    columns: str = ""


@dataclass(frozen=True, slots=True)
class PlateRecord:
    """What a plate task returns: the counts per output table (a :class:`TableReport` whose
    ``plates`` holds this plate's rows), the files written, and the columns of each."""

    plate: str
    tables: tuple[TableReport, ...]
    files: tuple[WrittenFile, ...]
    resumed: bool = False


def readable(layout: SourceLayout, unreadable: list[Unreadable], skip: bool) -> SourceLayout:
    """The layout without the plates the surveys could not read, when skipping bad files.

    Raises:
        PlateFailedError: One plate cannot be read and bad files are not skipped.
        BadSourceFilesError: Several cannot, or (skipping them) none is left.
    """
    if not unreadable:
        return layout
    bad = tuple(SkippedFile(u.path, u.reason) for u in unreadable)
    if not skip:
        if len(unreadable) == 1:
            u = unreadable[0]
            raise PlateFailedError(u.plate.key, u.path, u.reason)
        raise bad_files_error(bad)
    return without_failed(layout, bad, (u.plate.key for u in unreadable))


def plate_identity(request: ConversionRequest, surveyed: Surveyed,
                   outputs: tuple[PlateOutput, ...]) -> str:
    """A digest of everything a plate's files depend on: the options that shape rows, the output
    columns and this plate's selects, the files' names (and so their format), and the plate's
    source files' versions."""
    opts = request.options
    shape = {
        "format": RECORD_FORMAT,
        "preset": asdict(request.preset),
        "join": opts.join,
        "float32": opts.float32,
        "chunk_sizes": [o.chunk_size for o in outputs],
        "plate": surveyed.staged.plate.key,
        "outputs": [[o.name, [[c.name, c.type.value] for c in o.columns], repr(o.selects)]
                    for o in outputs],
        # the files' names, not where they are: their suffix is the format (Parquet, h5ad ...)
        "files": [o.path.rsplit("/", 1)[-1] for o in outputs],
        "sources": sorted(surveyed.versions),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def record_json(record: PlateRecord, identity: str) -> str:
    """A plate record as saved beside its files for ``resume``."""
    return json.dumps({"format": RECORD_FORMAT, "identity": identity, "plate": record.plate,
                       "tables": [asdict(t) for t in record.tables],
                       "files": [asdict(f) for f in record.files]}, sort_keys=True)


def record_from_json(text: str, identity: str) -> PlateRecord | None:
    """The saved record if it is whole and was made for ``identity``, else None."""
    try:
        raw: Mapping[str, object] = json.loads(text)
        if raw.get("format") != RECORD_FORMAT or raw.get("identity") != identity:
            return None
        tables = tuple(_table(t) for t in raw["tables"])  # type: ignore[union-attr]
        files = tuple(WrittenFile(**f) for f in raw["files"])  # type: ignore[union-attr]
        return PlateRecord(str(raw["plate"]), tables, files, resumed=True)
    except (ValueError, KeyError, TypeError):
        return None


def _table(raw: dict) -> TableReport:
    def pairs(items: list) -> tuple[tuple[str, int], ...]:
        return tuple((str(k), int(n)) for k, n in items)

    plates = tuple(PlateRows(**{**p, "missing": pairs(p["missing"])}) for p in raw["plates"])
    return TableReport(**{**raw, "missing": pairs(raw["missing"]), "plates": plates})
