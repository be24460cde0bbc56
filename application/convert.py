"""The convert use case: source tables in, one single-cell table (or one per table) out."""

from __future__ import annotations

import gc
import json
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from itertools import groupby
from typing import TypeVar

import structlog

from celltable.application.progress import Meter
from celltable.application.tasks import prefetched, run_ordered
from celltable.domain.errors import (
    CelltableError,
    ConfigurationError,
    InPlaceReadFailed,
    SourceChangedError,
)
from celltable.domain.formats import PARQUET, OutputFormat
from celltable.domain.join import ChunkQuery, JoinSpec, derive_join
from celltable.domain.model import (
    STAGING,
    ConversionRequest,
    ConversionResult,
    PlateRows,
    TableReport,
)
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number, role_by_name
from celltable.domain.output import OutputPlan, check_join_columns, partition_files, plan_output
from celltable.domain.plan import auto_chunk_size, plan_chunks
from celltable.domain.ports import (
    ChunkStore,
    Destination,
    ProgressListener,
    QueryEngine,
    SourceLocator,
    SourceSurveyor,
    TableSink,
    TableWriter,
    TaskRunner,
    WorkerRecipe,
)
from celltable.domain.presets import IMAGE
from celltable.domain.report import (
    REPORT_SUFFIX,
    PeakMemory,
    RunReport,
    column_differences,
    report_json,
    tables_read,
    values_not_cast,
    widened_in_source,
)
from celltable.domain.resume import SavedChunk, chunk_key, run_identity
from celltable.domain.schema import Column
from celltable.domain.sources import ChunkOutput, SourceLayout, StagedUnit
from celltable.domain.validation import FORMAT

log = structlog.get_logger("celltable.convert")

JOINED_NAME = "joined"


@dataclass(frozen=True, slots=True)
class Services:
    """The adapters a conversion runs on, built by the composition root."""

    locator: SourceLocator
    engine: QueryEngine
    writer: TableWriter
    destination: Destination
    runner: TaskRunner
    memory_budget: int
    producer: str
    version: str
    surveyor: SourceSurveyor | None = None  # recognises sources no preset reads, when detecting
    progress: ProgressListener | None = None  # told after each plate staged and chunk written
    chunk_store: Callable[[str], ChunkStore] | None = None  # opens a resume folder's saves
    peak_memory: Callable[[], PeakMemory | None] | None = None  # measured for the run report
    # each source file's version (size, modification time), to tell one changed during the run
    versions: Callable[[Sequence[str]], dict[str, str]] | None = None
    worker_recipe: WorkerRecipe | None = None
    """Set when tasks run in other processes (or machines): then each plate is read, joined and
    written by one task where it runs, which builds its adapters from this recipe."""
    output_format: OutputFormat = PARQUET  # what ``writer`` writes: its suffix, file or folder


def convert(request: ConversionRequest, services: Services) -> ConversionResult:
    """Convert ``request.source_path`` into ``request.dest_path``.

    Nothing appears at the destination unless the whole conversion succeeds.

    Raises:
        CelltableError: Any named failure; the destination is left as it was.
    """
    # The collections after each chunk (see ``_write``) then pass over the objects made during
    # the conversion only, not the hundreds of thousands the imports made: measured 1.7 s of
    # CPU on a 96-image plate without this.
    gc.freeze()
    try:
        if services.worker_recipe is not None and not request.options.join_sql:
            from celltable.application.distributed import convert_by_plate  # it imports this

            return convert_by_plate(request, services, services.worker_recipe)
        return _convert(request, services)
    finally:
        gc.unfreeze()


def _convert(request: ConversionRequest, services: Services) -> ConversionResult:
    started = time.perf_counter()
    preset, opts = request.preset, request.options
    spec = derive_join(preset) if opts.join else None
    layout = services.locator.discover(request.source_path, preset)
    log.info("source_found", source=layout.root, preset=preset.name, plates=len(layout.units),
             skipped=len(layout.skipped))
    paths = services.destination.prepare(
        request.dest_path,
        folder=not opts.join or bool(opts.partition_by) or services.output_format.folder,
        overwrite=opts.overwrite, resume=opts.resume, sources=layout.source_paths(),
        guarded=_guarded(request),
    )
    files = sorted({t.path for u in layout.units for t in u.tables})
    before = services.versions(files) if services.versions else {}
    staged: list[StagedUnit] = []
    try:
        store = None
        if paths.resume is not None:
            if services.chunk_store is None:
                raise ConfigurationError("resuming needs a chunk store; none is configured")
            store = services.chunk_store(paths.resume)
        meter = Meter(STAGING, len(layout.units), 0, services.progress, "staging_progress",
                      "plates")
        workers = max(1, services.runner.workers)
        share = max(1, workers // max(1, len(layout.units)))  # tasks per plate staged at once
        for s in run_ordered(
            services.runner,
            services.engine.stage,
            ((f"staging plate {u.key!r}", (u, preset, paths.scratch, bool(opts.join_sql), share))
             for u in layout.units),
            window=workers,
        ):
            staged.append(s)
            meter.advance(sum(t.rows for t in s.tables), plate=s.unit.key)
        source_rows = Counter()
        for s in staged:
            for t in s.tables:
                source_rows[t.table] += t.rows
        log.info("source_staged", rows=dict(source_rows))
        while True:
            try:
                written = _outputs(request, services, spec, staged, paths.output, store)
                break
            except InPlaceReadFailed as e:
                # Rare (CellProfiler writes typed values): redo the outputs, that plate copied.
                log.warning("plate_copied_after_all", plate=e.plate, reason=e.reason)
                i = next(i for i, s in enumerate(staged) if s.unit.key == e.plate)
                services.engine.release(staged[i])
                staged[i] = services.engine.stage(staged[i].unit, preset, paths.scratch, True)
        _unchanged(services, before)
        if not opts.join or opts.partition_by:  # a folder: its files recorded with it
            services.writer.seal(paths.output)
        dest = services.destination.publish()
    except BaseException:
        services.destination.discard()
        raise
    finally:
        for s in staged:
            services.engine.release(s)
    reports = [_at(r, dest, paths.output) for r, _ in written]
    result = ConversionResult(
        dest_path=dest,
        preset=preset.name,
        plates=tuple(u.key for u in layout.units),
        source_rows=tuple(sorted(source_rows.items())),
        tables=tuple(reports),
        duration_s=time.perf_counter() - started,
    )
    result = _with_report(request, services, layout, staged, result,
                          [p for _, p in written if p is not None])
    log.info(
        "conversion_done",
        dest=dest,
        rows_out=result.rows_out,
        dropped=sum(t.dropped for t in reports),
        seconds=round(result.duration_s, 3),
    )
    return result


def _unchanged(services: Services, before: dict[str, str]) -> None:
    """Check, before publishing, that no source file changed since the conversion began.

    Raises:
        SourceChangedError: One did (its size or modification time differ).
    """
    if not services.versions or not before:
        return
    after = services.versions(list(before))
    changed = [f for f, v in before.items() if after.get(f) != v]
    if changed:
        raise SourceChangedError(
            f"{changed[0]} changed while it was converted (size or modification time"
            f"{f'; {len(changed) - 1} other file(s) too' if len(changed) > 1 else ''}); nothing "
            "was written: run again once nothing writes to the source"
        )


def _guarded(request: ConversionRequest) -> list[tuple[str, str]]:
    """The paths the options name that the conversion writes, besides DEST and its staging:
    the run report and the cloud download cache."""
    opts = request.options
    found = []
    if opts.report_path != "-":
        found.append(("--report", _report_path(request)))
    if opts.local_cache_dir:
        found.append(("--local-cache-dir", opts.local_cache_dir))
    return found


def _report_path(request: ConversionRequest) -> str:
    """Where the run report goes: ``--report``, else beside DEST (``..`` in DEST taken
    lexically, as the destination takes it: ``d/plate/..`` reports to ``d.report.json``)."""
    dest = request.dest_path
    beside = dest.rstrip("/") if "://" in dest else posixpath.normpath(dest)
    return request.options.report_path or beside + REPORT_SUFFIX


Written = tuple[TableReport, OutputPlan | None]
"""An output table written, and the plan of its columns (None for a user's SQL)."""


def _outputs(request: ConversionRequest, services: Services, spec: JoinSpec | None,
             staged: list[StagedUnit], output: str, store: ChunkStore | None) -> list[Written]:
    """Write every output table; a report and a plan each."""
    if request.options.join_sql:
        return [(_convert_sql(request, services, staged, output), None)]
    if spec is not None:
        return [_convert_joined(request, services, spec, staged, output, store)]
    # with partition_by, a folder of plates' files
    suffix = "" if request.options.partition_by else services.output_format.suffix
    return [
        _convert_table(request, services, table, staged, f"{output}/{table.lower()}{suffix}",
                       store)
        for table in request.preset.tables
        if any(s.table(table) is not None for s in staged)
    ]


def _at(report: TableReport, dest: str, staged_output: str) -> TableReport:
    """The report with its path where the output was published."""
    return replace(report, path=dest + report.path[len(staged_output) :])


def _chunk_size(request: ConversionRequest, services: Services, plan: OutputPlan) -> int:
    if request.options.chunk_size:
        return request.options.chunk_size
    budget = services.memory_budget // max(1, services.runner.workers)
    return auto_chunk_size(len(plan.columns), budget)


def _convert_joined(
    request: ConversionRequest,
    services: Services,
    spec: JoinSpec,
    staged: list[StagedUnit],
    path: str,
    store: ChunkStore | None,
) -> Written:
    preset = request.preset
    specs = {s.unit.key: check_join_columns(preset, spec, s) for s in staged}
    without_image = [key for key, s in specs.items() if not s.with_image and preset.image_table]
    if without_image:
        log.warning("plates_without_image_table", plates=without_image,
                    consequence="their rows have no image metadata (well, plate, file names)")
    tables = (IMAGE, *spec.tables)
    plan = plan_output(preset, JOINED_NAME, tables, staged, joined=True,
                       float32=request.options.float32)
    chunk_size = _chunk_size(request, services, plan)
    queries = []
    for s in staged:
        base_table = s.table(spec.base)
        for chunk in plan_chunks(s.unit.key, base_table.rows_by_image, chunk_size):
            queries.append(
                ChunkQuery(
                    chunk=chunk,
                    columns=plan.selects_for(s.unit.key),
                    table=spec.base,
                    image_key=preset.image_key,
                    join=specs[s.unit.key],
                    order_by=(TABLE_NUMBER, image_number(preset), OBJECT_NUMBER),
                )
            )
    return _write(request, services, plan, staged, queries, path, chunk_size, store), plan


def _convert_table(
    request: ConversionRequest,
    services: Services,
    table: str,
    staged: list[StagedUnit],
    path: str,
    store: ChunkStore | None,
) -> Written:
    preset = request.preset
    plan = plan_output(preset, table, (table,), staged, joined=False,
                       float32=request.options.float32)
    chunk_size = _chunk_size(request, services, plan)
    order = (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER)
    queries = []
    for s in staged:
        st = s.table(table)
        if st is None:
            continue
        for chunk in plan_chunks(s.unit.key, st.rows_by_image, chunk_size):
            queries.append(
                ChunkQuery(chunk, plan.selects_for(s.unit.key), table, preset.image_key,
                           order_by=order)
            )
    return _write(request, services, plan, staged, queries, path, chunk_size, store), plan


def _write(
    request: ConversionRequest,
    services: Services,
    plan: OutputPlan,
    staged: list[StagedUnit],
    queries: list[ChunkQuery],
    path: str,
    chunk_size: int,
    store: ChunkStore | None,
) -> TableReport:
    """Write one output table at ``path``: one file, or with ``partition_by="plate"`` a folder
    with a file per plate; with a ``store``, every chunk is
    saved as it is written, and chunks an earlier run saved are reused instead of converted."""
    by_key = {s.unit.key: s for s in staged}
    saved: list[SavedChunk | None] = [None] * len(queries)
    keys: list[str] = []
    if store is not None:
        files = sorted({p for s in staged for p in (s.unit.path, *(t.path for t in s.unit.tables))})
        run = run_identity(request, plan.name, plan.columns, store.versions(files))
        keys = [chunk_key(run, q) for q in queries]
        saved = [store.saved(k) for k in keys]
        log.info("resume_checked", table=plan.name, chunks=len(queries),
                 reused=sum(s is not None for s in saved))
    partitioned = request.options.partition_by == "plate"
    files_by_plate = (partition_files(list(by_key), services.output_format.suffix)
                      if partitioned else {})
    total = TableReport(plan.name, path, 0, 0, len(plan.columns))
    plates = {unit: PlateRows(unit, 0, 0) for unit in dict.fromkeys(q.chunk.unit for q in queries)}
    log.info("table_started", table=plan.name, chunks=len(queries), chunk_size=chunk_size,
             columns=len(plan.columns))
    todo = [q for q, s in zip(queries, saved, strict=True) if s is None]
    # Chunks are read (``_jobs``) in a thread of their own while the one before is written.
    jobs = prefetched(_jobs(services, by_key, todo))
    computed = run_ordered(services.runner, services.engine.read_chunk, jobs,
                           max(1, services.runner.workers))
    with closing(jobs), closing(computed):  # on an error too: stop reading, cancel tasks
        meter = Meter(plan.name, len(queries), sum(q.chunk.rows for q in queries), services.progress,
                      "chunk_written", "chunks")
        file: _File | None = None
        for i, query in enumerate(queries):
            if file is None or (partitioned and file.plate != query.chunk.unit):
                if file is not None:
                    total = _close(request, services, file, total, chunk_size, plan.columns)
                plate = query.chunk.unit
                file_path = f"{path}/{files_by_plate[plate]}" if partitioned else path
                rows = sum(q.chunk.rows for q in queries if not partitioned or q.chunk.unit == plate)
                file = _File(plate, services.writer.create(file_path, plan.columns, rows),
                             TableReport(plan.name, file_path, 0, 0, len(plan.columns)),
                             [by_key[plate]] if partitioned else staged)
            out = _saved_output(store, saved[i], query) if store and saved[i] else next(computed)
            if store is not None and saved[i] is None:
                store.save(keys[i], out)
            file.sink.write(out.data)
            file.add(out)
            plates[out.chunk.unit] = _plus(plates[out.chunk.unit], out)
            meter.advance(out.chunk.rows, table=plan.name, plate=out.chunk.unit,
                          chunk=out.chunk.index, rows=out.rows_out)
            # Task runners keep finished tasks' records in reference cycles; the chunks they hold
            # are large but few Python objects, so the collector would rarely look: free them now.
            del out
            gc.collect()
        if file is None:  # no chunks: an empty table (one empty file unless partitioned)
            if not partitioned:
                file = _File("", services.writer.create(total.path, plan.columns), total, staged)
                total = _close(request, services, file, total, chunk_size, plan.columns)
        else:
            total = _close(request, services, file, total, chunk_size, plan.columns)
    total = replace(total, plates=tuple(plates.values()))
    if total.null_objects:
        log.warning("null_object_numbers", table=plan.name, rows=total.null_objects,
                    plates={p.plate: p.null_objects for p in total.plates if p.null_objects})
    if total.dropped:
        log.warning("rows_dropped", table=plan.name, dropped=total.dropped,
                    by_relationship=dict(total.missing),
                    plates={p.plate: p.dropped for p in total.plates if p.dropped})
    log.info("table_written", table=plan.name, rows_in=total.rows_in, rows_out=total.rows_out)
    return total


@dataclass(slots=True)
class _File:
    """An output file being written, and the counts of the rows it got."""

    plate: str
    sink: TableSink
    report: TableReport
    staged: list[StagedUnit]

    def add(self, out: ChunkOutput) -> None:
        self.report = _plus(self.report, out)


Counts = TypeVar("Counts", TableReport, PlateRows)


def _plus(counts: Counts, more: ChunkOutput | TableReport) -> Counts:
    """``counts`` with ``more``'s added: rows in, out and dropped, and missing partners."""
    missing = Counter(dict(counts.missing))
    missing.update(dict(more.missing))
    return replace(counts, rows_in=counts.rows_in + more.rows_in,
                   rows_out=counts.rows_out + more.rows_out, dropped=counts.dropped + more.dropped,
                   missing=tuple(sorted(missing.items())),
                   null_objects=counts.null_objects + more.null_objects)


def _close(request: ConversionRequest, services: Services, file: _File, total: TableReport,
           chunk_size: int, columns: Sequence[Column]) -> TableReport:
    """Finish ``file``, check the rows it holds, and add its counts to ``total``."""
    report = file.report
    written = file.sink.close(
        _provenance(request, services, file.staged, report, chunk_size, columns)
    )
    if written != report.rows_out:
        raise AssertionError(f"{report.path}: wrote {written} rows, expected {report.rows_out}")
    return _plus(total, report)


def _saved_output(store: ChunkStore, saved: SavedChunk, query: ChunkQuery) -> ChunkOutput:
    return ChunkOutput(query.chunk, store.load(saved), saved.rows_out, saved.rows_in,
                       saved.dropped, saved.missing, saved.null_objects)


def _jobs(services: Services, by_key: dict[str, StagedUnit],
          queries: list[ChunkQuery]) -> Iterator[tuple[str, tuple[object, ChunkQuery]]]:
    """One task per query, plate by plate; what a task reads is produced only as it is submitted,
    so memory holds no more chunks than the tasks in flight."""
    for unit, group in groupby(queries, key=lambda q: q.chunk.unit):
        plate_queries = list(group)
        sources = services.engine.chunk_sources(by_key[unit], plate_queries)
        for query, source in zip(plate_queries, sources, strict=True):
            yield query.chunk.describe(), (source, query)


def _convert_sql(
    request: ConversionRequest, services: Services, staged: list[StagedUnit], path: str
) -> TableReport:
    """The expert path: the user's SELECT, run once per plate, plates stacked."""
    outputs = list(
        run_ordered(
            services.runner,
            services.engine.read_sql,
            ((f"join SQL on plate {s.unit.key!r}", (s, request.options.join_sql, s.unit.key))
             for s in staged),
            window=max(1, services.runner.workers),
        )
    )
    found = services.writer.columns_of(outputs[0].data) if outputs else ()
    columns = [replace(c, role=role, compartment=compartment) for c in found
               for role, compartment in [role_by_name(request.preset, c.name)]]
    sink = services.writer.create(path, columns)
    for out in outputs:
        sink.write(out.data)
    rows_out = sum(o.rows_out for o in outputs)
    base = request.preset.base
    rows_in = sum(t.rows for s in staged for t in s.tables if t.table == base)
    report = TableReport(JOINED_NAME, path, rows_in, rows_out, len(columns))
    sink.close(_provenance(request, services, staged, report, 0, columns))
    return report


def _provenance(
    request: ConversionRequest,
    services: Services,
    staged: list[StagedUnit],
    report: TableReport,
    chunk_size: int,
    columns: Sequence[Column],
) -> dict[str, str]:
    return provenance(request, services.producer, services.version, staged, report, chunk_size,
                      columns)


def provenance(
    request: ConversionRequest,
    producer: str,
    version: str,
    staged: Sequence[StagedUnit],
    report: TableReport,
    chunk_size: int,
    columns: Sequence[Column],
) -> dict[str, str]:
    """The key/value metadata an output file carries: where its rows came from, and how."""
    sources = [
        {"plate": s.unit.key, "path": s.unit.path,
         "tables": {t.table: {"rows": t.rows, "columns": len(t.schema.columns)} for t in s.tables}}
        for s in staged
    ]
    prov = {
        "format": FORMAT,
        "preset": request.preset.name,
        # the whole layout: a user's preset (file or flags) is known by its definition only
        "preset_definition": asdict(request.preset),
        "source_path": request.source_path,
        "sources": sources,
        "join": request.options.join,
        "join_sql": request.options.join_sql,
        "chunk_size": chunk_size,
        "table": report.name,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "rows_dropped": report.dropped,
        "null_object_numbers": report.null_objects,
        "missing_partners": dict(report.missing),
        "keys": [image_number(request.preset), OBJECT_NUMBER],
        "schema": [[c.name, c.type.value] for c in columns],
    }
    return {
        "data-producer": producer,
        "data-producer-version": version,
        "celltable.provenance": json.dumps(prov, sort_keys=True, default=str),
    }


# The run report ----------------------------------------------------------------------------


def _with_report(request: ConversionRequest, services: Services, layout: SourceLayout,
                 staged: list[StagedUnit], result: ConversionResult,
                 plans: list[OutputPlan]) -> ConversionResult:
    """The result with its run report, written where the options say. Only a published output
    gets one: after a failure the error says what happened, and an old report beside an old
    output still describes it."""
    opts = request.options
    report = RunReport(
        source=layout.root,
        dest=result.dest_path,
        preset=result.preset,
        join=opts.join,
        producer=services.producer,
        version=services.version,
        used=tuple(sorted({loc.path for u in layout.units for loc in u.tables})),
        skipped=layout.skipped_files(),
        read=tables_read(staged),
        tables=result.tables,
        differences=tuple((p.name, column_differences(p, staged)) for p in plans),
        not_cast=values_not_cast(staged),
        widened=widened_in_source(staged),
        duration_s=result.duration_s,
        peak_memory=services.peak_memory() if services.peak_memory else None,
    )
    written = None
    if opts.report_path != "-":
        path = _report_path(request)
        text = json.dumps(report_json(report), indent=2) + "\n"
        try:
            written = services.destination.write_text(path, text)
        except CelltableError as e:
            log.warning("report_not_written", path=path, reason=str(e),
                        consequence="the output is complete; the result object holds the report")
    return replace(result, report=report, report_path=written)
