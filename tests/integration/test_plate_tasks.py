"""The distributed flow (one task per plate, the main process plans and commits) on real
adapters, its tasks run in this process through a runner that pickles every task and result
as a process executor would: as fast as the threads path's tests, no worker start-up."""

from __future__ import annotations

import os
import pickle
import sqlite3
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import pyarrow.parquet as pq
import pytest

import celltable
from celltable.adapters.plate_worker import PlateRecipe
from celltable.application.convert import convert
from celltable.application.plate_task import write_plate
from celltable.bootstrap import Adapters, bootstrap
from celltable.domain.errors import ConfigurationError, MissingExtraError, PlateFailedError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import get_preset
from tests.fakes import SyncRunner
from tests.integration.test_cloud import (  # noqa: F401 (fixtures)
    OUT,
    SRC,
    _keys,
    _read_s3_table,
    s3,
    s3_endpoint,
)


class PicklingRunner(SyncRunner):
    """Runs each task at once, its function, arguments and result passed through pickle; counts
    the plate tasks, and fails those of ``fail`` as a lost worker would."""

    workers = 2
    elsewhere = True  # the composition root then sets up plate tasks, as for worker processes

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.plates: list[str] = []

    def submit(self, fn: Any, /, *args: Any) -> Future[Any]:
        fn, args = pickle.loads(pickle.dumps((fn, args)))
        future: Future[Any] = Future()
        if fn is write_plate:
            self.plates.append(args[1].plate)
            if args[1].plate in self.fail:
                future.set_exception(RuntimeError("worker lost"))
                return future
        try:
            future.set_result(pickle.loads(pickle.dumps(fn(*args))))
        except Exception as e:
            future.set_exception(pickle.loads(pickle.dumps(e)))
        return future


def by_plate(source, dest, runner=None, worker_cache=None, main_cache=None, **options):
    """Convert as under a process executor: plate tasks, built from a recipe (with their own
    cache folder when ``worker_cache`` is given)."""
    request = ConversionRequest(str(source), str(dest), get_preset("cellprofiler_sqlite"),
                                ConversionOptions(**{"partition_by": "plate", **options}))
    runner = runner or PicklingRunner()
    with bootstrap(str(source), str(dest), ConversionOptions(local_cache_dir=main_cache),
                   given=Adapters(runner=runner)) as services:
        recipe = services.worker_recipe
        assert isinstance(recipe, PlateRecipe)
        if worker_cache is not None:
            recipe = replace(recipe, cache_dir=str(worker_cache))
        return convert(request, replace(services, worker_recipe=recipe))


def tables(folder):
    return {p.relative_to(folder).as_posix(): pq.read_table(p)
            for p in sorted(folder.rglob("*.parquet"))}


@pytest.mark.parametrize("join", [True, False])
def test_plate_tasks_write_the_same_files_and_counts_as_the_threads_path(tmp_path, two_nf1_plates,
                                                                        join):
    threads = celltable.convert(two_nf1_plates, tmp_path / "threads", preset="cellprofiler_sqlite",
                                options=ConversionOptions(partition_by="plate", join=join,
                                                          chunk_size=100))
    runner = PicklingRunner()
    result = by_plate(two_nf1_plates, tmp_path / "plates", runner, join=join, chunk_size=100)
    assert sorted(runner.plates) == ["plate_1.sqlite", "plate_2.sqlite"]
    want, got = tables(tmp_path / "threads"), tables(tmp_path / "plates")
    assert list(got) == list(want) and len(got) == (2 if join else 8)
    for name, table in want.items():
        assert got[name].equals(table), name
    # the run report's counts per table and per plate are the threads path's
    for a, b in zip(threads.tables, result.tables, strict=True):
        assert replace(b, path=a.path) == a
    assert result.report.read == threads.report.read
    assert result.source_rows == threads.source_rows
    assert not list(tmp_path.glob(".plates.celltable-*"))  # staging removed
    # the files carry their checksums and digests, the folder its manifest, as on threads
    report = celltable.validate(tmp_path / "plates")
    assert report.ok, report


def test_one_output_file_is_refused_with_the_option_to_use_and_nothing_is_written(
        tmp_path, two_nf1_plates):
    with pytest.raises(ConfigurationError, match="--partition-by plate"):
        by_plate(two_nf1_plates, tmp_path / "one.parquet", partition_by=None)
    assert [p.name for p in tmp_path.iterdir()] == ["sqlite_plates"]


def test_a_worker_without_the_formats_extra_fails_its_first_survey_before_any_plate_task(
        tmp_path, two_nf1_plates, monkeypatch):
    import celltable.adapters.formats as formats

    def missing(name, settings=None):
        raise MissingExtraError(f"the {name} format needs its extra here")

    monkeypatch.setattr(formats, "writer", missing)  # as on a worker without the extra
    runner = PicklingRunner()
    with pytest.raises(MissingExtraError, match="needs its extra"):  # the plate not blamed
        by_plate(two_nf1_plates, tmp_path / "out", runner=runner)
    assert runner.plates == []
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.celltable-*"))


def test_a_plate_failing_on_its_own_data_is_named_and_nothing_is_published(tmp_path,
                                                                          two_nf1_plates):
    with sqlite3.connect(two_nf1_plates / "plate_2.sqlite") as con:  # image keys made text
        con.executescript("ALTER TABLE Per_Image RENAME TO Old;"
                          "CREATE TABLE Per_Image AS SELECT 'i' || ImageNumber AS ImageNumber FROM Old;"
                          "DROP TABLE Old;")
    with pytest.raises(PlateFailedError, match=r"plate 'plate_2.sqlite' \(.*plate_2.sqlite\) "
                                               r"failed: .*ImageNumber holds string values"):
        by_plate(two_nf1_plates, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.celltable-*"))


def test_a_resumed_run_redoes_only_the_plates_not_finished(tmp_path, two_nf1_plates):
    dest = tmp_path / "out"
    first = PicklingRunner(fail=("plate_2.sqlite",))
    with pytest.raises(celltable.CelltableError, match=r"plate 'plate_2\.sqlite'"):
        by_plate(two_nf1_plates, dest, first, resume=True)
    assert not dest.exists()
    again = PicklingRunner()
    result = by_plate(two_nf1_plates, dest, again, resume=True)
    assert again.plates == ["plate_2.sqlite"]  # plate 1's file was kept and verified
    whole = by_plate(two_nf1_plates, tmp_path / "whole")
    assert tables(dest).keys() == tables(tmp_path / "whole").keys()
    for name, table in tables(tmp_path / "whole").items():
        assert tables(dest)[name].equals(table)
    assert [t.rows_out for t in result.tables] == [t.rows_out for t in whole.tables]


def test_a_resumed_run_redoes_a_plate_whose_source_changed(tmp_path, two_nf1_plates):
    dest = tmp_path / "out"
    with pytest.raises(celltable.CelltableError):
        by_plate(two_nf1_plates, dest, PicklingRunner(fail=("plate_2.sqlite",)), resume=True)
    plate = two_nf1_plates / "plate_1.sqlite"
    os.utime(plate, (plate.stat().st_atime, plate.stat().st_mtime + 60))
    again = PicklingRunner()
    by_plate(two_nf1_plates, dest, again, resume=True)
    assert sorted(again.plates) == ["plate_1.sqlite", "plate_2.sqlite"]


def test_cloud_plates_are_downloaded_by_their_tasks_and_written_into_the_bucket(
        tmp_path, two_nf1_plates, s3):  # noqa: F811 (the fixture)
    for f in sorted(two_nf1_plates.iterdir()):
        s3.upload_file(str(f), SRC, f"plates/{f.name}")
    main_cache, worker_cache = tmp_path / "main-cache", tmp_path / "worker-cache"
    result = by_plate(f"s3://{SRC}/plates", f"s3://{OUT}/cells", worker_cache=worker_cache,
                      main_cache=main_cache)
    assert result.dest_path == f"s3://{OUT}/cells"
    assert _keys(s3, OUT) == ["cells.report.json", "cells/_celltable_manifest.json",
                              "cells/plate_1.sqlite.parquet",
                              "cells/plate_2.sqlite.parquet"]  # nothing staged left behind
    celltable.convert(two_nf1_plates, tmp_path / "local", preset="cellprofiler_sqlite",
                      options=ConversionOptions(partition_by="plate"))
    for name, table in tables(tmp_path / "local").items():
        assert _read_s3_table(s3, OUT, f"cells/{name}").equals(table)
    # the main process listed the plates; the tasks downloaded them into their own cache
    assert not [p for p in main_cache.rglob("*") if p.is_file() and p.suffix == ".sqlite"]
    assert sorted(p.name for p in worker_cache.rglob("*.sqlite")) == ["plate_1.sqlite",
                                                                     "plate_2.sqlite"]


def test_a_manifest_of_cloud_and_local_plates_is_converted_by_plate_tasks(tmp_path, nf1_sqlite,
                                                                        s3):  # noqa: F811
    s3.upload_file(str(nf1_sqlite), SRC, "batch/cloud.sqlite")
    manifest = tmp_path / "plates.txt"
    manifest.write_text(f"s3://{SRC}/batch/cloud.sqlite\n{nf1_sqlite}\n")
    main_cache = tmp_path / "main-cache"
    result = by_plate(manifest, tmp_path / "out", worker_cache=tmp_path / "worker-cache",
                      main_cache=main_cache)
    assert [t.rows_out for t in result.tables] == [2 * 242]
    assert len(list((tmp_path / "out").glob("*.parquet"))) == 2
    assert not [p for p in main_cache.rglob("*.sqlite")]


def test_a_worker_of_one_thread_runs_its_plate_on_that_thread_only(tmp_path, two_nf1_plates,
                                                                  monkeypatch):
    """--threads 1 bounds a worker process to one core: DuckDB and Arrow get one thread, no
    chunk is read ahead, and a plate's tables are read one after the other, not side by side."""
    import threading

    import pyarrow as pa

    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    cores = pa.cpu_count()
    runner = PicklingRunner()
    runner.workers = 1  # as --workers 1
    options = ConversionOptions(partition_by="plate", chunk_size=100, threads=1, workers=1)
    request = ConversionRequest(str(two_nf1_plates), str(tmp_path / "out"),
                                get_preset("cellprofiler_sqlite"), options)
    try:
        with bootstrap(request.source_path, request.dest_path, options,
                       given=Adapters(runner=runner)) as services:
            worker = services.worker_recipe.build()
            assert worker.engine.threads == 1 and not worker.read_ahead
            assert pa.cpu_count() == 1
            monkeypatch.setattr(threading.Thread, "start", counted)
            result = convert(request, services)
    finally:
        pa.set_cpu_count(cores)
    assert result.rows_out == 2 * 242
    assert started == []
    # with two threads, the same plate's tables are read side by side (the threads path's way)
    two = replace(options, threads=2)
    try:
        with bootstrap(request.source_path, str(tmp_path / "two"), two,
                       given=Adapters(runner=runner)) as services:
            convert(ConversionRequest(request.source_path, str(tmp_path / "two"),
                                      request.preset, two), services)
    finally:
        pa.set_cpu_count(cores)
    assert started
