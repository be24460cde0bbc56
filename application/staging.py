"""Staging every plate of a conversion, naming every plate that cannot be read at once.

A plate whose files pass the first look (``celltable.domain.sources.screened``) may still fail
when read (a byte that is not UTF-8 in the middle of a file). Each plate's staging gives its
error instead of raising it, so a conversion fails naming every such plate, or, skipping bad
files, goes on without them.

A plate staged to be read in place (its files queried where they are) may still fail when its
chunks are read (a value the stream cannot cast): :func:`copying_on_failure` then copies that
plate and writes the outputs again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import structlog

from celltable.application.progress import Meter
from celltable.application.services import Services
from celltable.application.tasks import run_ordered
from celltable.domain.errors import (
    CelltableError,
    InPlaceReadFailed,
    SchemaError,
    SourceReadError,
)
from celltable.domain.model import STAGING
from celltable.domain.ports import ExperimentReader
from celltable.domain.presets import Preset
from celltable.domain.report import source_rows
from celltable.domain.sources import (
    Plate,
    SkippedFile,
    SourceLayout,
    StagedPlate,
    bad_files_error,
    without_failed,
)

log = structlog.get_logger("celltable.convert")


def with_experiment(experiments: ExperimentReader | None, staged: StagedPlate) -> StagedPlate:
    """``staged`` with the Experiment table of its plate, when there is a reader."""
    if experiments is None:
        return staged
    return replace(staged, experiment=experiments.read(staged.plate))


def stage_plates(services: Services, layout: SourceLayout, preset: Preset, scratch: str,
                 copy: bool, skip_bad_files: bool, staged: list[StagedPlate]) -> SourceLayout:
    """Stage every plate of ``layout`` into ``staged`` (filled as plates finish, so a caller
    can release them after a failure); the layout without the plates that failed when
    skipping bad files.

    Raises:
        CelltableError: A plate cannot be read and bad files are not skipped (its own error for
            one plate, ``BadSourceFilesError`` naming each for several), or none can.
    """
    meter = Meter(STAGING, len(layout.plates), 0, services.progress, "staging_progress", "plates")
    capacity = services.capacity
    share = capacity.engine_share(len(layout.plates))
    failed: list[tuple[Plate, CelltableError]] = []
    for s in run_ordered(
        services.runner,
        _stage_or_error,
        ((f"staging plate {u.key!r}", (services.engine.stage, u, preset, scratch, copy, share))
         for u in layout.plates),
        window=capacity.workers,
    ):
        if isinstance(s, tuple):
            failed.append(s)
            continue
        staged.append(with_experiment(services.experiments, s))
        meter.advance(sum(t.rows for t in s.tables), plate=s.plate.key)
    layout = _unstaged(layout, failed, skip_bad_files)
    log.info("source_staged", rows=source_rows(staged))
    return layout


T = TypeVar("T")


def copying_on_failure(services: Services, preset: Preset, scratch: str,
                       staged: list[StagedPlate], write: Callable[[], T]) -> T:
    """``write()``, done again, each time a plate read in place fails, with that plate copied
    into ``scratch`` (replaced in ``staged``). Rare: CellProfiler writes typed values."""
    while True:
        try:
            return write()
        except InPlaceReadFailed as e:
            log.warning("plate_copied_after_all", plate=e.plate, reason=e.reason)
            i = next(i for i, s in enumerate(staged) if s.plate.key == e.plate)
            services.engine.release(staged[i])
            staged[i] = with_experiment(
                services.experiments,
                services.engine.stage(staged[i].plate, preset, scratch, True))


def release(services: Services, staged: list[StagedPlate]) -> None:
    """Let go of every staged plate (its connections, its copy in the staging folder)."""
    for s in staged:
        services.engine.release(s)


def _stage_or_error(stage: Callable[..., StagedPlate], plate: Plate, *args: object
                    ) -> StagedPlate | tuple[Plate, CelltableError]:
    """Stage a plate; a plate that cannot be read gives its error instead."""
    try:
        return stage(plate, *args)
    except (SourceReadError, SchemaError) as e:
        return plate, e


def _unstaged(layout: SourceLayout, failed: list[tuple[Plate, CelltableError]],
              skip: bool) -> SourceLayout:
    if not failed:
        return layout
    # the file the error names, else the plate
    bad = tuple(SkippedFile(next((t.path for t in u.tables if t.path in str(e)), u.path), str(e))
                for u, e in failed)
    if not skip:
        if len(failed) == 1:
            raise failed[0][1]
        raise bad_files_error(bad)
    return without_failed(layout, bad, (u.key for u, _ in failed))
