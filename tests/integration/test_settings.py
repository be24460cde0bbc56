from __future__ import annotations

import pyarrow as pa
import pytest

from celltable.bootstrap import Settings


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("1", True), ("0", False), ("false", False)])
def test_memory_mapping_is_on_unless_turned_off(value, expected):
    env = {} if value is None else {"CELLTABLE_ARROW_USE_MEMORY_MAPPING": value}
    assert Settings.resolve(None, None, env).memory_map is expected


def test_one_thread_knob_bounds_tasks_and_duckdb_together():
    for threads in (1, 2, 3, 8):
        s = Settings.resolve(threads, None, {})
        assert 1 <= s.workers * s.engine_threads <= threads


def test_the_arrow_allocator_is_arrows_own_choice():
    # ARROW_DEFAULT_MEMORY_POOL is read by Arrow itself when it starts; celltable never
    # replaces the default pool (a subprocess shows the variable takes effect).
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import celltable, pyarrow as pa; print(pa.default_memory_pool().backend_name)"],
        env={"ARROW_DEFAULT_MEMORY_POOL": "system", "PATH": ""}, capture_output=True, text=True,
    )
    assert out.stdout.strip() == "system", out.stderr
    assert pa.default_memory_pool().backend_name in {"mimalloc", "jemalloc", "system"}


def _arrow_threads_in(env: dict[str, str], entry: str) -> int:
    """Arrow's thread count in a fresh process while one of the composition root's entries is
    open."""
    import os
    import subprocess
    import sys

    code = (
        "import pyarrow as pa\n"
        "from celltable import bootstrap as b\n"
        f"entry = {entry!r}\n"
        "root = {'convert': b.bootstrap, 'inspect': b.inspection, 'validate': b.validation}\n"
        "with root[entry]():\n"
        "    print(pa.cpu_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", ["convert", "inspect", "validate"])
def test_celltable_threads_bounds_arrow_as_the_option_does(entry):
    assert _arrow_threads_in({"CELLTABLE_THREADS": "1"}, entry) == 1


def test_without_a_bound_arrow_keeps_its_own_thread_count():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CELLTABLE_THREADS"}
    plain = subprocess.run([sys.executable, "-c", "import pyarrow as pa; print(pa.cpu_count())"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert _arrow_threads_in({}, "convert") == int(plain.stdout)


def test_arrow_threads_are_bounded_during_a_conversion_and_given_back_after_it(
        tmp_path, example_human):
    import celltable
    from celltable import ConversionOptions, NoTablesFoundError

    before = pa.cpu_count()
    pa.set_cpu_count(3)
    try:
        during: list[int] = []
        one = ConversionOptions(threads=1)
        celltable.convert(example_human, tmp_path / "o.parquet", options=one,
                          progress=lambda p: during.append(pa.cpu_count()))
        assert during and set(during) == {1}
        assert pa.cpu_count() == 3
        (tmp_path / "empty").mkdir()
        with pytest.raises(NoTablesFoundError):  # fails inside the run
            celltable.convert(tmp_path / "empty", tmp_path / "p.parquet", options=one)
        assert pa.cpu_count() == 3
        celltable.inspect(example_human, options=one)
        assert celltable.validate(tmp_path / "o.parquet").ok
        assert pa.cpu_count() == 3
    finally:
        pa.set_cpu_count(before)


def test_the_engine_threads_follow_the_workers_the_executor_really_runs():
    s = Settings.resolve(8, None, {}, workers=4)
    assert (s.workers, s.engine_threads) == (4, 2)
    # a user's Parsl configuration runs 8 tasks at once: one thread each, memory shared too
    real = s.with_workers(8)
    assert (real.workers, real.engine_threads) == (8, 1)
    assert real.memory_limit <= s.memory_limit
    assert Settings.resolve(8, "1GB", {}, workers=4).with_workers(8).memory_limit == 2**30
    assert s.with_workers(4) == s


def test_a_bad_thread_count_in_the_environment_is_a_named_error():
    from celltable import ConfigurationError

    with pytest.raises(ConfigurationError, match="CELLTABLE_THREADS"):
        Settings.resolve(None, None, {"CELLTABLE_THREADS": "many"})


@pytest.mark.parametrize(("value", "mapped"), [("1", True), ("0", False)])
def test_memory_mapping_governs_every_parquet_and_saved_chunk_read(
        value, mapped, monkeypatch, tmp_path, example_human):
    """Validating, re-reading a written file's row count and loading a resume's saved chunks
    all follow CELLTABLE_ARROW_USE_MEMORY_MAPPING."""
    import pyarrow.parquet as pq

    import celltable
    from celltable.bootstrap import bootstrap
    from celltable.domain.plan import Chunk
    from celltable.domain.sources import ChunkOutput

    monkeypatch.setenv("CELLTABLE_ARROW_USE_MEMORY_MAPPING", value)
    opened: list[bool] = []
    real_file = pq.ParquetFile

    class Recorded(real_file):  # the real reader, noting how each file is opened
        def __init__(self, source, *args, memory_map=False, **kwargs):
            opened.append(memory_map)
            super().__init__(source, *args, memory_map=memory_map, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Recorded)
    dest = tmp_path / "o.parquet"
    celltable.convert(example_human, dest)
    assert celltable.validate(dest).ok
    assert len(opened) >= 3 and set(opened) == {mapped}  # row count, then validate's reads

    maps: list[str] = []
    real_map = pa.memory_map
    monkeypatch.setattr(pa, "memory_map", lambda path, *a: maps.append(path) or real_map(path, *a))
    with bootstrap() as services:
        store = services.chunk_store(str(tmp_path / "resume"))
        (tmp_path / "resume").mkdir()
        rows = pa.table({"x": [1, 2, 3]})
        store.save("k", ChunkOutput(Chunk("p", 0, 1, 1, 3), rows, 3, 3))
        saved = store.saved("k")
        assert saved is not None and store.load(saved).equals(rows)
    assert bool(maps) is mapped


def test_the_root_uses_each_adapter_given_by_name_and_refuses_other_names():
    from celltable.application.convert import convert
    from celltable.bootstrap import Adapters, bootstrap, inspection
    from celltable.domain.model import ConversionOptions, ConversionRequest
    from celltable.domain.presets import get_preset
    from tests.fakes import FakeDestination, FakeEngine, FakeSource, FakeWriter, SyncRunner
    from tests.unit.test_convert import _plate

    source = FakeSource({"p": _plate()})
    given = Adapters(locator=source, engine=FakeEngine(source), writer=FakeWriter(),
                     destination=FakeDestination(), runner=SyncRunner())
    preset = get_preset("cellprofiler_csv")
    with bootstrap("src", "out.parquet", given=given) as services:
        assert services.locator is source and services.runner is given.runner
        result = convert(ConversionRequest("src", "out.parquet", preset, ConversionOptions()),
                         services)
    assert result.rows_out == 6 and given.destination.published == ["out.parquet"]
    with inspection("src", given=Adapters(locator=source, engine=given.engine)) as inspecting:
        assert inspecting.locator is source and inspecting.engine is given.engine
    with pytest.raises(TypeError):
        Adapters(locators=source)  # a misspelt name is an error, not silently ignored


def test_a_parsl_configuration_running_more_tasks_gives_each_engine_fewer_threads(tmp_path):
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    from celltable.bootstrap import bootstrap
    from celltable.domain.model import ConversionOptions

    config = Config(executors=[ThreadPoolExecutor(max_threads=4)], run_dir=str(tmp_path),
                    initialize_logging=False, usage_tracking=0)
    options = ConversionOptions(threads=4, workers=1)  # asked for one task with four threads
    with bootstrap(str(tmp_path), str(tmp_path / "o.parquet"), options,
                   parsl_config=config) as services:
        assert services.runner.workers == 4
        assert services.engine.threads == 1  # four tasks at once, one thread each
    with bootstrap(str(tmp_path), str(tmp_path / "p.parquet"), options) as services:
        assert services.runner.workers == 1 and services.engine.threads == 4
