"""Reading settings: sizes, thread counts and folders from arguments, then ``CELLTABLE_*``
variables. The composition root (``bootstrap.py``) resolves them once per run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from celltable.domain.errors import ConfigurationError
from celltable.domain.model import SQLITE_READERS

DEFAULT_MEMORY_LIMIT = 2 * 2**30
_UNITS = {"": 1, "B": 1, "KB": 2**10, "KIB": 2**10, "MB": 2**20, "MIB": 2**20, "GB": 2**30,
          "GIB": 2**30, "TB": 2**40, "TIB": 2**40}


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of one run, read once from arguments, then ``CELLTABLE_*`` variables."""

    threads: int
    workers: int
    engine_threads: int
    memory_budget: int
    memory_limit: int
    memory_map: bool
    cache_dir: str = ""
    sqlite_reader: str = "auto"
    """``CELLTABLE_SQLITE_READER``: ``auto`` (DuckDB's SQLite extension when installed for this
    DuckDB, else ADBC), ``arrow`` or ``extension``."""
    bounded: bool = False
    """Threads were bounded (``threads`` or ``CELLTABLE_THREADS``): Arrow's pool is sized too."""
    memory_given: bool = False
    """The memory limit was given (``memory_limit`` or ``CELLTABLE_MEMORY_LIMIT``)."""

    @classmethod
    def resolve(cls, threads: int | None, memory_limit: str | None,
                env: dict[str, str] | None = None, *, workers: int | None = None,
                local_cache_dir: str | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        bound = threads or int_setting(env, "CELLTABLE_THREADS")
        total = bound or os.cpu_count() or 1
        # Each task's DuckDB gets two threads where there is room: joins of wide tables use
        # them well, and fewer concurrent tasks keep fewer chunks in memory.
        workers = workers or max(1, total // 2)
        budget = physical_memory() // 2
        given = memory_limit or env.get("CELLTABLE_MEMORY_LIMIT")
        limit = parse_size(given) if given else default_memory_limit(budget, workers)
        return cls(total, workers, max(1, total // workers), budget, limit,
                   memory_map_setting(env), cache_dir(local_cache_dir, env), _sqlite_reader(env),
                   bounded=bool(bound), memory_given=bool(given))

    def with_workers(self, workers: int) -> Settings:
        """These settings for the tasks the executor really runs at once (a user's Parsl
        configuration decides it): the threads, and the memory unless given, shared among
        them."""
        workers = max(1, workers)
        if workers == self.workers:
            return self
        limit = self.memory_limit if self.memory_given \
            else default_memory_limit(self.memory_budget, workers)
        return replace(self, workers=workers, engine_threads=max(1, self.threads // workers),
                       memory_limit=limit)


def _sqlite_reader(env: dict[str, str]) -> str:
    reader = env.get("CELLTABLE_SQLITE_READER", "").strip().lower() or "auto"
    if reader not in SQLITE_READERS:
        raise ConfigurationError(
            f"CELLTABLE_SQLITE_READER={reader!r} is not one of {', '.join(SQLITE_READERS)}")
    return reader


def package_version() -> str:
    try:
        return version("celltable")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def int_setting(env: dict[str, str], name: str) -> int:
    """A positive whole number from the environment (0: unset).

    Raises:
        ConfigurationError: It is set to something else.
    """
    text = env.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(f"{name}={text!r} is not a positive whole number of threads")
    return int(text)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512MB`` or ``2 GB`` (units of 1024).

    Raises:
        ConfigurationError: The text is not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ConfigurationError(f"memory limit {text!r} is not a size like 512MB or 2GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def default_memory_limit(budget: int, workers: int) -> int:
    """Memory per task when none is given: bounded, so memory stays flat however large the
    plate (past the limit DuckDB spills to the staging folder)."""
    return min(budget // max(1, workers), DEFAULT_MEMORY_LIMIT)


def memory_map_setting(env: dict[str, str]) -> bool:
    """``CELLTABLE_ARROW_USE_MEMORY_MAPPING``: on unless turned off."""
    return env.get("CELLTABLE_ARROW_USE_MEMORY_MAPPING", "1").strip().lower() not in (
        "0", "false", "no", "off")


def cache_dir(given: str | None, env: dict[str, str]) -> str:
    """Where cloud files are cached: on disk under the user's cache folder, never a RAM-backed
    temporary folder (a plate's SQLite can be tens of GB)."""
    if given or env.get("CELLTABLE_LOCAL_CACHE_DIR"):
        return str(Path(given or env["CELLTABLE_LOCAL_CACHE_DIR"]).expanduser().absolute())
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return str(Path(base) / "celltable")


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30
