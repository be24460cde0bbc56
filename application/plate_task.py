"""The tasks of a distributed conversion, run where the executor puts them (worker processes,
other machines). Top-level functions of picklable values: each builds its own adapters from the
recipe it is given, reads its plate there, and returns only a small record."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace

from celltable.application.tasks import prefetched
from celltable.domain.errors import (
    CelltableError,
    InPlaceReadFailed,
    MissingExtraError,
    PlateFailedError,
    SchemaError,
    SourceReadError,
)
from celltable.domain.join import ChunkQuery
from celltable.domain.model import PlateRows, TableReport
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import check_join_columns
from celltable.domain.plan import plan_chunks
from celltable.domain.plates import (
    PlateJob,
    PlateOutput,
    PlateRecord,
    Surveyed,
    Unreadable,
    WrittenFile,
    plate_identity,
    record_json,
)
from celltable.domain.ports import PlateWorker, WorkerRecipe
from celltable.domain.presets import Preset
from celltable.domain.provenance import provenance
from celltable.domain.sources import ChunkOutput, Plate, StagedPlate
from celltable.domain.validation import CHECKSUM_KEY, COLUMNS_KEY


def survey_plate(recipe: WorkerRecipe, listed: Plate, preset: Preset,
                 scratch: str) -> tuple[Surveyed | Unreadable, ...]:
    """Make a plate ready where this task runs (a cloud plate downloaded into this worker's
    cache first) and return what planning needs: schemas, rows, keys, source versions. A plate
    read in place costs a scan of its keys; one that must be copied is copied into ``scratch``
    now, for its plate task to read if it runs where that copy is. A plate whose files cannot be
    read gives an :class:`Unreadable` (the plan names it, or with ``skip_bad_files`` leaves it
    out, as the threads path does)."""
    worker = recipe.build()
    worker.check_writer()  # an extra missing on this worker: said now, not after the surveys
    found: list[Surveyed | Unreadable] = []
    for plate in _named(listed, lambda: worker.plates_of(listed, preset)):
        try:
            staged = worker.engine.stage(plate, preset, scratch)
        except (SourceReadError, SchemaError) as e:  # a bad file: named (or skipped) by the plan
            found.append(Unreadable(listed, _file_of(plate, listed, e), str(e)))
            continue
        except CelltableError as e:
            raise _failed(plate, e) from e
        # CellProfiler's Experiment table, read here (a cloud plate's copy is here)
        staged = replace(staged, experiment=worker.experiment(plate))
        files = sorted({plate.path, *(t.path for t in plate.tables)})
        found.append(Surveyed(staged, tuple(sorted(worker.versions(files).items())),
                              listed if plate.path != listed.path else None))
    return tuple(found)


def _file_of(plate: Plate, listed: Plate, error: CelltableError) -> str:
    """The source file an error names (as the main process listed it), else the plate's."""
    text = str(error)
    for local, remote in zip(plate.tables, listed.tables, strict=False):
        if local.path in text:
            return remote.path
    return listed.path


def write_plate(recipe: WorkerRecipe, job: PlateJob) -> PlateRecord:
    """Read, join and write one plate's output files where this task runs.

    Raises:
        PlateFailedError: The plate's own data failed (the message names the plate).
    """
    worker = recipe.build()
    gc.freeze()
    try:
        return _named(job.surveyed.staged.plate, lambda: _write_plate(worker, job))
    finally:
        gc.unfreeze()


def _write_plate(worker: PlateWorker, job: PlateJob) -> PlateRecord:
    staged = _here(worker, job)
    try:
        try:
            tables, files = _write_outputs(worker, job, staged)
        except InPlaceReadFailed:  # rare: a value the stream cannot cast; read a copy instead
            worker.engine.release(staged)
            staged = _as_surveyed(job, worker.engine.stage(staged.plate, job.preset, job.scratch,
                                                           True))
            tables, files = _write_outputs(worker, job, staged)
    finally:
        worker.engine.release(staged)
    record = PlateRecord(job.plate, tables, files)
    if job.record_path is not None:  # saved after the files: a record means they are whole
        identity = plate_identity(job.request, job.surveyed, job.outputs)
        worker.write_text(job.record_path, record_json(record, identity))
    return record


def _here(worker: PlateWorker, job: PlateJob) -> StagedPlate:
    """The plate as surveyed if it can be read here, else made ready again here (another
    machine than the survey's, or the survey's copy gone)."""
    staged = job.surveyed.staged
    if worker.usable(staged):
        return staged
    listed = job.surveyed.listed or staged.plate
    plates = [p for p in worker.plates_of(listed, job.preset) if p.key == staged.plate.key]
    if not plates:
        raise InPlaceReadFailed(staged.plate.key, "the plate is gone from its source")
    return _as_surveyed(job, worker.engine.stage(plates[0], job.preset, job.scratch))


def _as_surveyed(job: PlateJob, staged: StagedPlate) -> StagedPlate:
    """A plate staged again here, with what its survey read besides (its Experiment table)."""
    return replace(staged, experiment=job.surveyed.staged.experiment)


def _write_outputs(worker: PlateWorker, job: PlateJob, staged: StagedPlate
                   ) -> tuple[tuple[TableReport, ...], tuple[WrittenFile, ...]]:
    tables, files = [], []
    for output in job.outputs:
        queries = _queries(job, output, staged)
        if not queries:
            continue
        report, written = _write_file(worker, job, output, staged, queries)
        tables.append(report)
        files.append(written)
    return tuple(tables), tuple(files)


def _queries(job: PlateJob, output: PlateOutput, staged: StagedPlate) -> list[ChunkQuery]:
    preset = job.preset
    table = staged.table(output.base)
    if table is None:
        return []
    join = check_join_columns(preset, job.spec, staged) if job.spec is not None else None
    order = (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER)
    return [ChunkQuery(chunk, output.selects, output.base, preset.image_key, join=join,
                       order_by=order)
            for chunk in plan_chunks(staged.plate.key, table.rows_by_image, output.chunk_size)]


def _write_file(worker: PlateWorker, job: PlateJob, output: PlateOutput, staged: StagedPlate,
                queries: list[ChunkQuery]) -> tuple[TableReport, WrittenFile]:
    """One output file: the plate's chunks read and joined in a thread of their own, one chunk
    ahead of the writing here."""
    engine = worker.engine
    rows = sum(q.chunk.rows for q in queries)
    report = TableReport(output.name, output.path, 0, 0, len(output.columns))
    sink = worker.open_sink(output.path, output.columns, rows)

    def chunks() -> Iterator[ChunkOutput]:
        for query, source in zip(queries, engine.chunk_sources(staged, queries), strict=True):
            yield engine.read_chunk(source, query)

    # With cores to spare the next chunk is read and joined while this one is written; a worker
    # with one core (as many workers as cores) gains nothing from it but a chunk more in memory.
    with closing(prefetched(chunks()) if worker.read_ahead else chunks()) as outputs:
        for out in outputs:
            sink.write(out.data)
            report = report.plus(out)
            del out
            gc.collect()
    plate_rows = PlateRows(job.plate, report.rows_in, report.rows_out, report.dropped,
                           report.missing, null_objects=report.null_objects)
    report = replace(report, plates=(plate_rows,))
    metadata = provenance(job.request, job.producer, job.version, [staged], report,
                          output.chunk_size, output.columns)
    written, size, records = worker.finish(sink, output.path, metadata)
    if written != report.rows_out:
        raise AssertionError(f"{output.path}: wrote {written} rows, expected {report.rows_out}")
    return report, WrittenFile(output.path, written, size, records.get(CHECKSUM_KEY, ""),
                               records.get(COLUMNS_KEY, ""))


def _named(plate: Plate, work):  # type: ignore[no-untyped-def]
    """``work()``, its failures on the plate's own data named after the plate."""
    try:
        return work()
    except (PlateFailedError, MissingExtraError):  # an extra missing where it runs: not the plate
        raise
    except CelltableError as e:
        raise _failed(plate, e) from e


def _failed(plate: Plate, e: CelltableError) -> PlateFailedError:
    """``e`` as the named failure of ``plate``'s own data."""
    return PlateFailedError(plate.key, plate.path, e.reason if isinstance(e, InPlaceReadFailed)
                            else str(e))
