"""The composition root: the one module that builds adapters and hands them to use cases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from celltable.application.convert import Services

PRODUCER = "celltable"


def package_version() -> str:
    try:
        return version("celltable")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide settings, read once from arguments, then ``CELLTABLE_*`` variables."""

    threads: int
    workers: int
    engine_threads: int
    memory_budget: int
    memory_limit: str
    memory_map: bool

    @classmethod
    def resolve(cls, threads: int | None, memory_limit: str | None,
                env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        total = threads or int(env.get("CELLTABLE_THREADS", 0)) or os.cpu_count() or 1
        # Each task's DuckDB gets two threads where there is room: joins of wide tables use
        # them well, and fewer concurrent tasks keep fewer chunks in memory.
        workers = max(1, total // 2)
        engine_threads = max(1, total // workers)
        budget = _physical_memory() // 2
        limit = memory_limit or env.get("CELLTABLE_MEMORY_LIMIT") or f"{budget // workers // 2**20}MB"
        memory_map = env.get("CELLTABLE_ARROW_USE_MEMORY_MAPPING", "1").strip().lower() not in (
            "0", "false", "no", "off")
        return cls(total, workers, engine_threads, budget, limit, memory_map)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


@contextmanager
def bootstrap(
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    compression: str = "zstd",
    staging_dir: str | None = None,
    parsl_config: Any = None,
    **fakes: Any,
) -> Iterator[Services]:
    """Services for one conversion: real adapters unless fakes are passed by keyword
    (``locator``, ``engine``, ``writer``, ``destination``, ``runner``)."""
    from celltable.adapters.duckdb_engine import DuckDBEngine
    from celltable.adapters.parquet import ParquetWriter
    from celltable.adapters.parsl_runner import ParslRunner
    from celltable.adapters.storage import LocalDestination, LocalSourceLocator

    settings = Settings.resolve(threads, memory_limit)
    if threads:
        import pyarrow as pa

        pa.set_cpu_count(settings.threads)
    runner = fakes.get("runner") or ParslRunner(parsl_config, settings.workers)
    with runner:
        yield Services(
            locator=fakes.get("locator") or LocalSourceLocator(),
            engine=fakes.get("engine")
            or DuckDBEngine(threads=settings.engine_threads, memory_limit=settings.memory_limit),
            writer=fakes.get("writer") or ParquetWriter(compression, settings.memory_map),
            destination=fakes.get("destination") or LocalDestination(staging_dir),
            runner=runner,
            memory_budget=settings.memory_budget,
            producer=PRODUCER,
            version=package_version(),
        )
