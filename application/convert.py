"""The convert use case: source tables in, one single-cell table (or one per table) out."""

from __future__ import annotations

import gc
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path

import structlog

from celltable.application.progress import Meter
from celltable.application.tasks import run_ordered
from celltable.domain.errors import DestinationError, InPlaceReadFailed
from celltable.domain.join import ChunkQuery, JoinSpec, derive_join
from celltable.domain.model import STAGING, ConversionRequest, ConversionResult, TableReport
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import OutputPlan, check_join_columns, plan_output
from celltable.domain.plan import auto_chunk_size, plan_chunks
from celltable.domain.ports import (
    Destination,
    ProgressListener,
    QueryEngine,
    SourceLocator,
    SourceSurveyor,
    TableWriter,
    TaskRunner,
)
from celltable.domain.presets import IMAGE
from celltable.domain.schema import Column
from celltable.domain.sources import StagedUnit

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


def convert(request: ConversionRequest, services: Services) -> ConversionResult:
    """Convert ``request.source_path`` into ``request.dest_path``.

    Nothing appears at the destination unless the whole conversion succeeds.

    Raises:
        CelltableError: Any named failure; the destination is left as it was.
    """
    started = time.perf_counter()
    preset, opts = request.preset, request.options
    spec = derive_join(preset) if opts.join else None
    layout = services.locator.discover(request.source_path, preset)
    log.info("source_found", source=layout.root, preset=preset.name, plates=len(layout.units),
             skipped=len(layout.skipped))
    _refuse_inside(layout.root, request.dest_path)
    paths = services.destination.prepare(
        request.dest_path, folder=not opts.join, overwrite=opts.overwrite
    )
    staged: list[StagedUnit] = []
    try:
        meter = Meter(STAGING, len(layout.units), 0, services.progress, "staging_progress",
                      "plates")
        for s in run_ordered(
            services.runner,
            services.engine.stage,
            ((f"staging plate {u.key!r}", (u, preset, paths.scratch, bool(opts.join_sql)))
             for u in layout.units),
            window=max(1, services.runner.workers),
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
                reports = _outputs(request, services, spec, staged, paths.output)
                break
            except InPlaceReadFailed as e:
                # Rare (CellProfiler writes typed values): redo the outputs, that plate copied.
                log.warning("plate_copied_after_all", plate=e.plate, reason=e.reason)
                i = next(i for i, s in enumerate(staged) if s.unit.key == e.plate)
                services.engine.release(staged[i])
                staged[i] = services.engine.stage(staged[i].unit, preset, paths.scratch, True)
        dest = services.destination.publish()
    except BaseException:
        services.destination.discard()
        raise
    finally:
        for s in staged:
            services.engine.release(s)
    reports = [_at(r, dest, paths.output) for r in reports]
    result = ConversionResult(
        dest_path=dest,
        preset=preset.name,
        plates=tuple(u.key for u in layout.units),
        source_rows=tuple(sorted(source_rows.items())),
        tables=tuple(reports),
        duration_s=time.perf_counter() - started,
    )
    log.info(
        "conversion_done",
        dest=dest,
        rows_out=result.rows_out,
        dropped=sum(t.dropped for t in reports),
        seconds=round(result.duration_s, 3),
    )
    return result


def _outputs(request: ConversionRequest, services: Services, spec: JoinSpec | None,
             staged: list[StagedUnit], output: str) -> list[TableReport]:
    """Write every output table; one report each."""
    if request.options.join_sql:
        return [_convert_sql(request, services, staged, output)]
    if spec is not None:
        return [_convert_joined(request, services, spec, staged, output)]
    return [
        _convert_table(request, services, table, staged, f"{output}/{table.lower()}.parquet")
        for table in request.preset.tables
        if any(s.table(table) is not None for s in staged)
    ]


def _refuse_inside(root: str, dest: str) -> None:
    """Refuse a destination in the source (or the source itself): a rerun would read the output
    as input, and ``overwrite`` would replace the source."""
    if "://" in root or "://" in dest:
        r, d = root.rstrip("/"), dest.rstrip("/")
    else:
        r, d = str(Path(root).resolve()), str(Path(dest).expanduser().resolve())
    if d == r or d.startswith(r.rstrip("/") + "/"):
        raise DestinationError(
            f"destination {dest} lies inside the source {root}, where a rerun would read it as "
            "input; write it outside the source"
        )


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
) -> TableReport:
    preset = request.preset
    specs = {s.unit.key: check_join_columns(preset, spec, s) for s in staged}
    without_image = [key for key, s in specs.items() if not s.with_image and preset.image_table]
    if without_image:
        log.warning("plates_without_image_table", plates=without_image,
                    consequence="their rows have no image metadata (well, plate, file names)")
    tables = (IMAGE, *spec.tables)
    plan = plan_output(preset, JOINED_NAME, tables, staged, joined=True)
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
    return _write(request, services, plan, staged, queries, path, chunk_size)


def _convert_table(
    request: ConversionRequest,
    services: Services,
    table: str,
    staged: list[StagedUnit],
    path: str,
) -> TableReport:
    preset = request.preset
    plan = plan_output(preset, table, (table,), staged, joined=False)
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
    return _write(request, services, plan, staged, queries, path, chunk_size)


def _write(
    request: ConversionRequest,
    services: Services,
    plan: OutputPlan,
    staged: list[StagedUnit],
    queries: list[ChunkQuery],
    path: str,
    chunk_size: int,
) -> TableReport:
    by_key = {s.unit.key: s for s in staged}
    sink = services.writer.create(path, plan.columns)
    rows_in = rows_out = dropped = 0
    missing: Counter[str] = Counter()
    log.info("table_started", table=plan.name, chunks=len(queries), chunk_size=chunk_size,
             columns=len(plan.columns))
    jobs = _jobs(services, by_key, queries)
    window = max(1, services.runner.workers) + 1
    meter = Meter(plan.name, len(queries), sum(q.chunk.rows for q in queries), services.progress,
                  "chunk_written", "chunks")
    for out in run_ordered(services.runner, services.engine.read_chunk, jobs, window):
        sink.write(out.data)
        rows_in += out.rows_in
        rows_out += out.rows_out
        dropped += out.dropped
        missing.update(dict(out.missing))
        meter.advance(out.chunk.rows, table=plan.name, plate=out.chunk.unit,
                      chunk=out.chunk.index, rows=out.rows_out)
        # Task runners keep finished tasks' records in reference cycles; the chunks they hold
        # are large but few Python objects, so the collector would rarely look: free them now.
        del out
        gc.collect()
    report = TableReport(plan.name, path, rows_in, rows_out, len(plan.columns), dropped,
                         tuple(sorted(missing.items())))
    written = sink.close(_provenance(request, services, staged, report, chunk_size, plan.columns))
    if written != rows_out:
        raise AssertionError(f"{path}: wrote {written} rows, expected {rows_out}")
    if dropped:
        log.warning("rows_dropped", table=plan.name, dropped=dropped, by_relationship=dict(missing))
    log.info("table_written", table=plan.name, rows_in=rows_in, rows_out=rows_out)
    return report


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
    columns = services.writer.columns_of(outputs[0].data) if outputs else ()
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
    sources = [
        {"plate": s.unit.key, "path": s.unit.path,
         "tables": {t.table: {"rows": t.rows, "columns": len(t.schema.columns)} for t in s.tables}}
        for s in staged
    ]
    prov = {
        "preset": request.preset.name,
        "source_path": request.source_path,
        "sources": sources,
        "join": request.options.join,
        "join_sql": request.options.join_sql,
        "chunk_size": chunk_size,
        "table": report.name,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "rows_dropped": report.dropped,
        "missing_partners": dict(report.missing),
        "keys": [image_number(request.preset), OBJECT_NUMBER],
        "schema": [[c.name, c.type.value] for c in columns],
    }
    return {
        "data-producer": services.producer,
        "data-producer-version": services.version,
        "celltable.provenance": json.dumps(prov, sort_keys=True),
    }
