"""The end of a conversion: its result, and the run report written beside the output."""

from __future__ import annotations

import json
import posixpath
from dataclasses import replace

import structlog

from celltable.application.services import Services
from celltable.domain.errors import CelltableError
from celltable.domain.model import ConversionRequest, ConversionResult
from celltable.domain.output import OutputPlan
from celltable.domain.report import (
    REPORT_SUFFIX,
    RunReport,
    column_differences,
    experiments_of,
    report_json,
    tables_read,
    values_not_cast,
    widened_in_source,
)
from celltable.domain.sources import SourceLayout, StagedPlate

log = structlog.get_logger("celltable.convert")


def report_path(request: ConversionRequest) -> str:
    """Where the run report goes: ``--report``, else beside DEST (``..`` in DEST taken
    lexically, as the destination takes it: ``d/plate/..`` reports to ``d.report.json``)."""
    dest = request.dest_path
    beside = dest.rstrip("/") if "://" in dest else posixpath.normpath(dest)
    return request.options.report_path or beside + REPORT_SUFFIX


def with_report(request: ConversionRequest, services: Services, layout: SourceLayout,
                staged: list[StagedPlate], result: ConversionResult,
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
        used=tuple(sorted({loc.path for u in layout.plates for loc in u.tables})),
        skipped=layout.skipped_files(),
        read=tables_read(staged),
        tables=result.tables,
        differences=tuple((p.name, column_differences(p, staged)) for p in plans),
        not_cast=values_not_cast(staged),
        widened=widened_in_source(staged),
        duration_s=result.duration_s,
        peak_memory=services.peak_memory() if services.peak_memory else None,
        experiments=experiments_of(staged),
    )
    written = None
    if opts.report_path != "-":
        path = report_path(request)
        text = json.dumps(report_json(report), indent=2) + "\n"
        try:
            written = services.destination.write_text(path, text)
        except CelltableError as e:
            log.warning("report_not_written", path=path, reason=str(e),
                        consequence="the output is complete; the result object holds the report")
    return replace(result, report=report, report_path=written)


def finished(request: ConversionRequest, services: Services, layout: SourceLayout,
             staged: list[StagedPlate], result: ConversionResult,
             plans: list[OutputPlan]) -> ConversionResult:
    """The result with its run report and the bad files it lists; logged."""
    result = with_report(request, services, layout, staged, result, plans)
    bad = result.report.bad_files if result.report else ()
    if bad:
        log.info("bad_files_skipped", files=len(bad), listed_in=result.report_path or "report")
    result = replace(result, bad_files=bad)
    log.info("conversion_done", dest=result.dest_path, rows_out=result.rows_out,
             dropped=result.rows_dropped, seconds=round(result.duration_s, 3))
    return result
