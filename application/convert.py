"""The convert use case: source tables in, one single-cell table (or one per table) out.

Read top to bottom, a conversion is: plan (find the plates, decide the join), prepare the
destination's staging area, stage the plates, write each output table (a plate read in place
that fails is copied and the outputs written again), check no source changed, publish, and
report. Each step is a module of its own; this one only puts them in order.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext

from celltable.application.custom_join import write_custom_join
from celltable.application.distributed import convert_by_plate
from celltable.application.outputs import output_tables
from celltable.application.planning import (
    ConversionPlan,
    check_unchanged,
    plan_conversion,
    prepare_destination,
    source_versions,
)
from celltable.application.resuming import open_store
from celltable.application.run_report import finished
from celltable.application.services import Services
from celltable.application.staging import copying_on_failure, release, stage_plates
from celltable.application.writing import write_table
from celltable.domain.model import ConversionRequest, ConversionResult
from celltable.domain.output import OutputPlan
from celltable.domain.ports import ChunkStore
from celltable.domain.report import TableReport, source_rows
from celltable.domain.sources import StagedPlate


def convert(request: ConversionRequest, services: Services) -> ConversionResult:
    """Convert ``request.source_path`` into ``request.dest_path``.

    Nothing appears at the destination unless the whole conversion succeeds.

    Raises:
        CelltableError: Any named failure; the destination is left as it was.
    """
    with _held(services):
        if services.worker_recipe is not None and not request.options.join_sql:
            return convert_by_plate(request, services, services.worker_recipe)
        return _convert(request, services)


def _held(services: Services) -> AbstractContextManager[object]:
    return services.around_conversion() if services.around_conversion else nullcontext()


def _convert(request: ConversionRequest, services: Services) -> ConversionResult:
    started = time.perf_counter()
    opts = request.options
    plan = plan_conversion(request, services)
    paths = prepare_destination(request, services, plan.layout)
    before = source_versions(services, plan.layout)
    staged: list[StagedPlate] = []
    try:
        store = open_store(services, paths)
        # a user's SQL reads every plate from a copy, never in place
        layout = stage_plates(services, plan.layout, request.preset, paths.scratch,
                              copy=bool(opts.join_sql), skip_bad_files=opts.skip_bad_files,
                              staged=staged)
        rows = source_rows(staged)
        written = copying_on_failure(
            services, request.preset, paths.scratch, staged,
            lambda: _outputs(request, services, plan, staged, paths.output, store))
        check_unchanged(services, before)
        if not opts.join or opts.partition_by:  # a folder: its files recorded with it
            services.writer.seal(paths.output)
        dest = services.destination.publish()
    except BaseException:
        services.destination.discard()
        raise
    finally:
        release(services, staged)
    result = ConversionResult(
        dest_path=dest,
        preset=request.preset.name,
        plates=tuple(u.key for u in layout.plates),
        source_rows=tuple(sorted(rows.items())),
        tables=tuple(r.published_at(dest, paths.output) for r, _ in written),
        duration_s=time.perf_counter() - started,
    )
    return finished(request, services, layout, staged, result,
                    [p for _, p in written if p is not None])


Written = tuple[TableReport, OutputPlan | None]
"""An output table written, and the plan of its columns (None for a user's SQL)."""


def _outputs(request: ConversionRequest, services: Services, plan: ConversionPlan,
             staged: list[StagedPlate], output: str, store: ChunkStore | None) -> list[Written]:
    """Write every output table; a report and a plan each."""
    if plan.custom is not None:
        return [(write_custom_join(request, services, staged, output, plan.custom), None)]
    return [(write_table(request, services, table, staged, store), table.plan)
            for table in output_tables(request, services, plan.spec, staged, output)]
