"""Staging every plate of a conversion, naming every plate that cannot be read at once.

A plate whose files pass the first look (``celltable.domain.sources.screened``) may still fail
when read (a byte that is not UTF-8 in the middle of a file). Each plate's staging gives its
error instead of raising it, so a conversion fails naming every such plate, or, skipping bad
files, goes on without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from celltable.application.progress import Meter
from celltable.application.tasks import run_ordered
from celltable.domain.errors import (
    CelltableError,
    SchemaError,
    SourceReadError,
)
from celltable.domain.ports import ExperimentReader, QueryEngine, TaskRunner
from celltable.domain.presets import Preset
from celltable.domain.sources import (
    SkippedFile,
    SourceLayout,
    SourceUnit,
    StagedUnit,
    bad_files_error,
    without_bad,
)


def with_experiment(experiments: ExperimentReader | None, staged: StagedUnit) -> StagedUnit:
    """``staged`` with the Experiment table of its plate, when there is a reader."""
    if experiments is None:
        return staged
    return replace(staged, experiment=experiments.read(staged.unit))


def stage_plates(runner: TaskRunner, engine: QueryEngine, experiments: ExperimentReader | None,
                 meter: Meter, layout: SourceLayout, preset: Preset, scratch: str, copy: bool,
                 skip_bad_files: bool, staged: list[StagedUnit]) -> SourceLayout:
    """Stage every plate of ``layout`` into ``staged`` (filled as plates finish, so a caller
    can release them after a failure); the layout without the plates that failed when
    skipping bad files.

    Raises:
        CelltableError: A plate cannot be read and bad files are not skipped (its own error for
            one plate, ``BadSourceFilesError`` naming each for several), or none can.
    """
    workers = max(1, runner.workers)
    share = max(1, workers // max(1, len(layout.units)))  # tasks per plate staged at once
    failed: list[tuple[SourceUnit, CelltableError]] = []
    for s in run_ordered(
        runner,
        _stage_or_error,
        ((f"staging plate {u.key!r}", (engine.stage, u, preset, scratch, copy, share))
         for u in layout.units),
        window=workers,
    ):
        if isinstance(s, tuple):
            failed.append(s)
            continue
        staged.append(with_experiment(experiments, s))
        meter.advance(sum(t.rows for t in s.tables), plate=s.unit.key)
    return _unstaged(layout, failed, skip_bad_files)


def _stage_or_error(stage: Callable[..., StagedUnit], unit: SourceUnit, *args: object
                    ) -> StagedUnit | tuple[SourceUnit, CelltableError]:
    """Stage a plate; a plate that cannot be read gives its error instead."""
    try:
        return stage(unit, *args)
    except (SourceReadError, SchemaError) as e:
        return unit, e


def _unstaged(layout: SourceLayout, failed: list[tuple[SourceUnit, CelltableError]],
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
    keys = {u.key for u, _ in failed}
    kept = without_bad(layout, bad)
    kept = replace(kept, units=tuple(u for u in kept.units if u.key not in keys))
    if not kept.units:
        raise bad_files_error(bad, nothing_left=True)
    return kept
