"""The output tables of a conversion: each one's plan (columns, types) and the chunk queries
that fill it, planned plate by plate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from celltable.application.services import Services
from celltable.domain.join import ChunkQuery, JoinSpec
from celltable.domain.model import ConversionRequest
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import OutputPlan, check_join_columns, plan_output
from celltable.domain.plan import plan_chunks
from celltable.domain.presets import IMAGE
from celltable.domain.sources import StagedPlate

log = structlog.get_logger("celltable.convert")

JOINED_NAME = "joined"


@dataclass(frozen=True, slots=True)
class OutputTable:
    """One output table to write at ``path``: its plan, and its chunks' queries in plate
    order."""

    plan: OutputPlan
    queries: tuple[ChunkQuery, ...]
    path: str
    chunk_size: int


def output_tables(request: ConversionRequest, services: Services, spec: JoinSpec | None,
                  staged: list[StagedPlate], output: str) -> Iterator[OutputTable]:
    """Every output table under the staged ``output``, each planned as the one before is
    written: the joined table, or one per source table some plate has."""
    if spec is not None:
        yield joined_table(request, services, spec, staged, output)
        return
    # with partition_by, a folder of plates' files
    suffix = "" if request.options.partition_by else services.output_format.suffix
    for table in request.preset.tables:
        if any(s.table(table) is not None for s in staged):
            yield source_table(request, services, table, staged,
                               f"{output}/{table.lower()}{suffix}")


def chunk_size(request: ConversionRequest, services: Services, plan: OutputPlan) -> int:
    """Base rows per chunk: as the options say, else from the columns and each task's memory."""
    if request.options.chunk_size:
        return request.options.chunk_size
    return services.capacity.chunk_rows(len(plan.columns))


def joined_table(request: ConversionRequest, services: Services, spec: JoinSpec,
                 staged: list[StagedPlate], path: str) -> OutputTable:
    """The one joined table: each plate's base compartment with its partners and image."""
    preset = request.preset
    specs = {s.plate.key: check_join_columns(preset, spec, s) for s in staged}
    without_image = [key for key, s in specs.items() if not s.with_image and preset.image_table]
    if without_image:
        log.warning("plates_without_image_table", plates=without_image,
                    consequence="their rows have no image metadata (well, plate, file names)")
    tables = (IMAGE, *spec.tables)
    plan = plan_output(preset, JOINED_NAME, tables, staged, joined=True,
                       float32=request.options.float32)
    size = chunk_size(request, services, plan)
    order = (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER)
    queries = tuple(
        ChunkQuery(chunk=chunk, columns=plan.selects_for(s.plate.key), table=spec.base,
                   image_key=preset.image_key, join=specs[s.plate.key], order_by=order)
        for s in staged
        for chunk in plan_chunks(s.plate.key, s.table(spec.base).rows_by_image, size)
    )
    return OutputTable(plan, queries, path, size)


def source_table(request: ConversionRequest, services: Services, table: str,
                 staged: list[StagedPlate], path: str) -> OutputTable:
    """One source table, unjoined, its plates stacked (plates without it add no rows)."""
    preset = request.preset
    plan = plan_output(preset, table, (table,), staged, joined=False,
                       float32=request.options.float32)
    size = chunk_size(request, services, plan)
    order = (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER)
    queries = tuple(
        ChunkQuery(chunk, plan.selects_for(s.plate.key), table, preset.image_key, order_by=order)
        for s in staged if (st := s.table(table)) is not None
        for chunk in plan_chunks(s.plate.key, st.rows_by_image, size)
    )
    return OutputTable(plan, queries, path, size)
