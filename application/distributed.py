"""The convert use case under an executor running tasks in other processes or machines: the
plate is the unit of work. The main process plans and commits; it never reads a plate's rows.

1. List the plates (a cloud source is listed, not downloaded).
2. Survey each plate in a task (:func:`survey_plate`): schemas, rows per image, file versions.
3. Fix the output plan (the union of columns and their types) so every plate's file has the
   same columns, then run one task per plate (:func:`write_plate`): it reads, joins and writes
   the plate's files straight into the destination's staging area and returns a small record.
4. Publish atomically, write the run report. Any failure publishes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import structlog

from celltable.application.outputs import JOINED_NAME
from celltable.application.outputs import chunk_size as _chunk_size
from celltable.application.planning import check_unchanged as _unchanged
from celltable.application.planning import guarded as _guarded
from celltable.application.plate_task import survey_plate, write_plate
from celltable.application.progress import Meter
from celltable.application.run_report import finished
from celltable.application.services import Services
from celltable.application.tasks import run_ordered
from celltable.domain.errors import ConfigurationError, NoTablesFoundError, SchemaError
from celltable.domain.formats import PARQUET
from celltable.domain.join import JoinSpec, derive_join
from celltable.domain.model import STAGING, ConversionRequest, ConversionResult, TableReport
from celltable.domain.output import OutputPlan, check_join_columns, partition_files, plan_output
from celltable.domain.plates import (
    PlateJob,
    PlateOutput,
    PlateRecord,
    Surveyed,
    Unreadable,
    plate_identity,
    readable,
    record_from_json,
)
from celltable.domain.ports import PlateWorker, StagingPaths, WorkerRecipe
from celltable.domain.presets import IMAGE
from celltable.domain.schema import Column, TableSchema
from celltable.domain.sources import SourceLayout, screened
from celltable.domain.validation import (
    CHECKSUM_KEY,
    COLUMNS_KEY,
    MANIFEST_NAME,
    file_fingerprint,
    manifest_json,
)

log = structlog.get_logger("celltable.convert")

NOT_ONE_FILE = (
    "with worker processes (--executor htex, or a --parsl-config whose executor is not threads) "
    "each plate is written by its own task into its own file, so DEST is a folder of plate "
    "files: add --partition-by plate (partition_by='plate'), or convert with the default "
    "threads executor for one file"
)


def convert_by_plate(request: ConversionRequest, services: Services,
                     recipe: WorkerRecipe) -> ConversionResult:
    """Convert with one task per plate (see the module's description).

    Raises:
        ConfigurationError: One output file was asked for (see :data:`NOT_ONE_FILE`).
        PlateFailedError: A plate failed on its own data; nothing is published.
    """
    started = time.perf_counter()
    opts = request.options
    if opts.partition_by != "plate":
        raise ConfigurationError(NOT_ONE_FILE)
    # A client object the user built stays in this process; workers build theirs.
    request = replace(request, options=replace(opts, cloud_client=None))
    preset = request.preset
    spec = derive_join(preset) if opts.join else None
    # bad files named (or, skipping them, their plates left out) before any data moves
    layout = screened(services.locator.discover(request.source_path, preset), opts.skip_bad_files)
    log.info("source_listed", source=layout.root, preset=preset.name, plates=len(layout.plates))
    paths = services.destination.prepare(
        request.dest_path, folder=True, overwrite=opts.overwrite, resume=opts.resume,
        sources=layout.source_paths(), guarded=_guarded(request), shared=not opts.resume,
    )
    # Sizes and times only (a listing's worth): the plates are read by the tasks.
    files = sorted({p for u in layout.plates for p in (u.path, *(t.path for t in u.tables))})
    before = services.versions(files) if services.versions else {}
    main = recipe.build()  # reads and moves this run's small files (records, resumed plates)
    try:
        surveyed, layout = _survey(services, recipe, layout, preset, paths.scratch,
                                   opts.skip_bad_files)
        staged = [s.staged for s in surveyed]
        plans = _plans(request, spec, staged)
        records = _run_plates(request, services, recipe, main, spec, surveyed, plans, paths)
        _unchanged(services, before)
        main.write_text(f"{paths.output}/{MANIFEST_NAME}", _manifest(records, paths.output))
        dest = services.destination.publish()
    except BaseException:
        services.destination.discard()
        raise
    reports = [r.published_at(dest, paths.output)
               for r in _totals(plans, records, paths.output, spec)]
    source_rows: Counter[str] = Counter()
    for s in staged:
        for t in s.tables:
            source_rows[t.table] += t.rows
    result = ConversionResult(
        dest_path=dest, preset=preset.name, plates=tuple(s.plate.key for s in staged),
        source_rows=tuple(sorted(source_rows.items())), tables=tuple(reports),
        duration_s=time.perf_counter() - started,
    )
    layout = replace(layout, plates=tuple(s.plate for s in staged))
    log.info("plates_converted", plates=len(staged), resumed=sum(r.resumed for r in records))
    # the run report, the bad files it lists and the one log line, as on threads
    return finished(request, services, layout, staged, result, [p for _, p in plans])


def _survey(services: Services, recipe: WorkerRecipe, layout: SourceLayout, preset,  # type: ignore[no-untyped-def]
            scratch: str, skip_bad_files: bool) -> tuple[list[Surveyed], SourceLayout]:
    """Every plate surveyed, and the layout without the plates whose files could not be read
    (when skipping bad files; else they are all named at once)."""
    plates = layout.plates
    meter = Meter(STAGING, len(plates), 0, services.progress, "staging_progress", "plates")
    found: list[Surveyed] = []
    unreadable: list[Unreadable] = []
    # Plates of one screen mostly share their schemas: one copy of each kept, not one per plate.
    schemas: dict[tuple[str, tuple[Column, ...]], TableSchema] = {}

    def shared(s: Surveyed) -> Surveyed:
        tables = tuple(replace(t, schema=schemas.setdefault((t.table, t.schema.columns), t.schema))
                       for t in s.staged.tables)
        return replace(s, staged=replace(s.staged, tables=tables))

    for batch in run_ordered(services.runner, survey_plate,
                              ((f"surveying plate {u.key!r}", (recipe, u, preset, scratch))
                               for u in plates), window=2 * max(1, services.runner.workers),
                              settle=True):
        unreadable.extend(s for s in batch if isinstance(s, Unreadable))
        batch = tuple(shared(s) for s in batch if isinstance(s, Surveyed))
        found.extend(batch)
        meter.advance(sum(t.rows for s in batch for t in s.staged.tables),
                      plate=",".join(s.staged.plate.key for s in batch))
    layout = readable(layout, unreadable, skip_bad_files)
    if not found:
        raise NoTablesFoundError(f"no plate of preset {preset.name} found in the source")
    return found, layout


Plan = tuple[tuple[str, tuple[str, ...], str], OutputPlan]
"""An output table: its name, source tables and base table, and its columns' plan."""


def _plans(request: ConversionRequest, spec: JoinSpec | None, staged) -> list[Plan]:  # type: ignore[no-untyped-def]
    """Every output table's plan, fixed before any plate is written."""
    preset, float32 = request.preset, request.options.float32
    if spec is not None:
        for s in staged:  # a plate lacking a table or key fails now, named, not in its task
            check_join_columns(preset, spec, s)
        tables = (IMAGE, *spec.tables)
        return [((JOINED_NAME, tables, spec.base),
                 plan_output(preset, JOINED_NAME, tables, staged, joined=True, float32=float32))]
    return [((table, (table,), table),
             plan_output(preset, table, (table,), staged, joined=False, float32=float32))
            for table in preset.tables if any(s.table(table) is not None for s in staged)]


def _run_plates(request: ConversionRequest, services: Services, recipe: WorkerRecipe,
                main: PlateWorker, spec: JoinSpec | None, surveyed: list[Surveyed],
                plans: list[Plan], paths: StagingPaths) -> list[PlateRecord]:
    fmt = services.output_format  # a warehouse's plates: data files to commit, Parquet
    files = partition_files([s.staged.plate.key for s in surveyed],
                            PARQUET.suffix if fmt.warehouse else fmt.suffix)
    if len(set(files)) != len(surveyed):
        raise SchemaError("two plates of the source have the same name; convert them apart")
    sizes = {name: _chunk_size(request, services, plan) for (name, _, _), plan in plans}
    jobs: list[PlateJob] = []
    for s in surveyed:
        key = s.staged.plate.key
        outputs = tuple(
            PlateOutput(name, tables, base, plan.columns, plan.selects_for(key),
                        _file(paths.output, name, spec, files[key]), sizes[name])
            for (name, tables, base), plan in plans)
        jobs.append(PlateJob(request, s, spec, outputs, paths.scratch, services.producer,
                             services.version))
    if paths.resume is not None:
        jobs = [_resumable(job, paths) for job in jobs]
    meter = Meter("plates", len(jobs), sum(t.rows for s in surveyed for t in s.staged.tables),
                  services.progress, "plate_written", "plates")
    done: dict[str, PlateRecord] = {}
    todo = []
    for job in jobs:
        record = _saved(main, job)
        if record is None:
            todo.append(job)
        else:
            done[job.plate] = record
    log.info("plates_planned", plates=len(jobs), resumed=len(done), outputs=len(plans))
    for record in run_ordered(services.runner, write_plate,
                              ((f"plate {j.plate!r}", (recipe, j)) for j in todo),
                              window=2 * max(1, services.runner.workers), settle=True):
        done[record.plate] = record
        meter.advance(sum(t.rows_in for t in record.tables), plate=record.plate)
    records = [done[j.plate] for j in jobs]
    if paths.resume is not None:  # the plates' files move from the resume folder into the output
        moved = []
        for job, record in zip(jobs, records, strict=True):
            folder = str(job.record_path).rsplit("/", 1)[0]
            files = []
            for f in record.files:
                files.append(replace(f, path=paths.output + f.path[len(folder):]))
                main.move(f.path, files[-1].path)
            moved.append(replace(record, files=tuple(files)))
        records = moved
    return records


def _manifest(records: list[PlateRecord], output: str) -> str:
    """The folder's manifest, from what the tasks recorded of their files (none is re-read)."""
    files = {}
    for record in records:
        for f in record.files:
            name = f.path[len(output):].lstrip("/") if f.path.startswith(output) else f.path
            files[name] = file_fingerprint(f.bytes, {CHECKSUM_KEY: f.checksum,
                                                     COLUMNS_KEY: f.columns})
    return manifest_json(files)


def _file(output: str, name: str, spec: JoinSpec | None, file: str) -> str:
    return f"{output}/{file}" if spec is not None else f"{output}/{name.lower()}/{file}"


def _resumable(job: PlateJob, paths: StagingPaths) -> PlateJob:
    """The job writing into the resume folder, with the record that lets a rerun skip it."""
    assert paths.resume is not None
    identity = plate_identity(job.request, job.surveyed, job.outputs)
    folder = f"{paths.resume}/plates/{identity[:32]}"
    outputs = tuple(replace(o, path=folder + o.path[len(paths.output):]) for o in job.outputs)
    return replace(job, outputs=outputs, record_path=f"{folder}/record.json")


def _saved(main: PlateWorker, job: PlateJob) -> PlateRecord | None:
    """The record of a plate an earlier run with ``resume`` finished, if its files are all
    there with the bytes recorded."""
    if job.record_path is None:
        return None
    text = main.read_text(job.record_path)
    identity = plate_identity(job.request, job.surveyed, job.outputs)
    record = record_from_json(text, identity) if text is not None else None
    if record is None or any(main.size(f.path) != f.bytes for f in record.files):
        return None
    return record


def _totals(plans: list[Plan], records: list[PlateRecord], output: str,
            spec: JoinSpec | None) -> list[TableReport]:
    """Each output table's counts: its plates' summed, its plates' own in plate order."""
    totals = []
    for (name, _, _), plan in plans:
        path = output if spec is not None else f"{output}/{name.lower()}"
        total = TableReport(name, path, 0, 0, len(plan.columns))
        plates = []
        for record in records:
            for t in record.tables:
                if t.name == name:
                    total = total.plus(t)
                    plates.extend(t.plates)
        totals.append(replace(total, plates=tuple(plates)))
        if total.dropped:
            log.warning("rows_dropped", table=name, dropped=total.dropped,
                        by_relationship=dict(total.missing))
    return totals
