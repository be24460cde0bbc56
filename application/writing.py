"""Writing one output table: its chunks read in tasks (the next read while one is written),
written in plan order into one file, or with ``partition_by="plate"`` into a file per plate
(a file closed, with its provenance, as the next plate's chunks begin), each chunk counted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import groupby

import structlog

from celltable.application.outputs import OutputTable
from celltable.application.progress import Meter
from celltable.application.resuming import Resumed
from celltable.application.services import Services
from celltable.application.tasks import prefetched, run_ordered
from celltable.domain.join import ChunkQuery
from celltable.domain.model import ConversionRequest
from celltable.domain.output import partition_files
from celltable.domain.ports import ChunkStore, TableSink
from celltable.domain.provenance import provenance
from celltable.domain.report import PlateRows, TableReport
from celltable.domain.sources import StagedPlate

log = structlog.get_logger("celltable.convert")


def write_table(request: ConversionRequest, services: Services, table: OutputTable,
                staged: list[StagedPlate], store: ChunkStore | None) -> TableReport:
    """Write ``table``: one file at its path, or with ``partition_by="plate"`` a folder with a
    file per plate; with a ``store``, every chunk is saved as it is written, and chunks an
    earlier run saved are reused instead of converted."""
    plan, queries = table.plan, table.queries
    by_key = {s.plate.key: s for s in staged}
    resumed = Resumed.check(store, request, plan, staged, queries)
    files = _Files(request, services, table, staged, by_key)
    plates = {plate: PlateRows(plate, 0, 0) for plate in dict.fromkeys(q.chunk.plate for q in queries)}
    log.info("table_started", table=plan.name, chunks=len(queries), chunk_size=table.chunk_size,
             columns=len(plan.columns))
    # Chunks are read (``_jobs``) in a thread of their own while the one before is written.
    jobs = prefetched(_jobs(services, by_key, resumed.todo(queries)))
    computed = run_ordered(services.runner, services.engine.read_chunk, jobs,
                           services.capacity.workers)
    with closing(jobs), closing(computed):  # on an error too: stop reading, cancel tasks
        meter = Meter(plan.name, len(queries), sum(q.chunk.rows for q in queries),
                      services.progress, "chunk_written", "chunks")
        for i, query in enumerate(queries):
            file = files.for_plate(query.chunk.plate)
            out = resumed.output(i, query, computed)
            file.sink.write(out.data)
            file.report = file.report.plus(out)
            plates[out.chunk.plate] = plates[out.chunk.plate].plus(out)
            meter.advance(out.chunk.rows, table=plan.name, plate=out.chunk.plate,
                          chunk=out.chunk.index, rows=out.rows_out)
            del out
            if services.after_chunk is not None:
                services.after_chunk()
        total = files.close()
    total = replace(total, plates=tuple(plates.values()))
    if total.null_objects:
        log.warning("null_object_numbers", table=plan.name, rows=total.null_objects,
                    plates=total.null_objects_by_plate())
    if total.dropped:
        log.warning("rows_dropped", table=plan.name, dropped=total.dropped,
                    by_relationship=dict(total.missing), plates=total.dropped_by_plate())
    log.info("table_written", table=plan.name, rows_in=total.rows_in, rows_out=total.rows_out)
    return total


@dataclass(slots=True)
class _File:
    """An output file being written, and the counts of the rows it got."""

    sink: TableSink
    report: TableReport
    staged: Sequence[StagedPlate]
    """The plates whose rows it holds, for its provenance."""


class _Files:
    """The files of one output table: one, or one per plate opened as the plate's first chunk
    comes (the one before closed then); each closed with its provenance, its counts added to
    the table's."""

    def __init__(self, request: ConversionRequest, services: Services, table: OutputTable,
                 staged: list[StagedPlate], by_key: dict[str, StagedPlate]) -> None:
        self.request, self.services, self.table = request, services, table
        self.staged, self.by_key = staged, by_key
        self.partitioned = request.options.partition_by == "plate"
        self.names = (partition_files(list(by_key), services.output_format.suffix)
                      if self.partitioned else {})
        self.total = TableReport(table.plan.name, table.path, 0, 0, len(table.plan.columns))
        self.file: _File | None = None
        self.plate = ""

    def for_plate(self, plate: str) -> _File:
        """The file a chunk of ``plate`` goes into, opened (and the previous one closed) when
        it is a new file."""
        if self.file is not None and (not self.partitioned or self.plate == plate):
            return self.file
        if self.file is not None:
            self._close(self.file)
        queries, columns = self.table.queries, self.table.plan.columns
        path = f"{self.table.path}/{self.names[plate]}" if self.partitioned else self.table.path
        rows = sum(q.chunk.rows for q in queries if not self.partitioned or q.chunk.plate == plate)
        self.plate = plate
        self.file = _File(self.services.writer.create(path, columns, rows),
                          TableReport(self.table.plan.name, path, 0, 0, len(columns)),
                          [self.by_key[plate]] if self.partitioned else self.staged)
        return self.file

    def close(self) -> TableReport:
        """Close the last file (without chunks: an empty file, unless partitioned); the
        table's counts."""
        if self.file is not None:
            self._close(self.file)
        elif not self.partitioned:
            columns = self.table.plan.columns
            self._close(_File(self.services.writer.create(self.total.path, columns), self.total,
                              self.staged))
        return self.total

    def _close(self, file: _File) -> None:
        """Finish ``file``, check the rows it holds, and add its counts to the table's."""
        report, table = file.report, self.table
        written = file.sink.close(provenance(
            self.request, self.services.producer, self.services.version, file.staged, report,
            table.chunk_size, table.plan.columns))
        if written != report.rows_out:
            raise AssertionError(f"{report.path}: wrote {written} rows, expected {report.rows_out}")
        self.total = self.total.plus(report)


def _jobs(services: Services, by_key: dict[str, StagedPlate],
          queries: list[ChunkQuery]) -> Iterator[tuple[str, tuple[object, ChunkQuery]]]:
    """One task per query, plate by plate; what a task reads is produced only as it is submitted,
    so memory holds no more chunks than the tasks in flight."""
    for plate, group in groupby(queries, key=lambda q: q.chunk.plate):
        plate_queries = list(group)
        sources = services.engine.chunk_sources(by_key[plate], plate_queries)
        for query, source in zip(plate_queries, sources, strict=True):
            yield query.chunk.describe(), (source, query)
