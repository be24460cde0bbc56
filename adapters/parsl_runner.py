"""Tasks run as Parsl apps. Each runner owns its own DataFlowKernel: nothing global is loaded,
so conversions can follow each other (or run side by side) in one process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from parsl.app.app import python_app
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import ThreadPoolExecutor

T = TypeVar("T")



def _call(fn: Callable[..., T], *args: Any) -> T:
    """The one Parsl app: calls ``fn`` where the executor runs it."""
    return fn(*args)


def thread_config(workers: int, run_dir: str) -> Config:
    """Local threads: starts in milliseconds, the default for one machine."""
    return Config(
        executors=[ThreadPoolExecutor(max_threads=workers, label="celltable_threads")],
        run_dir=run_dir,
        strategy="none",
        initialize_logging=False,
        usage_tracking=0,
    )


def _workers(config: Config, fallback: int) -> int:
    total = 0
    for ex in config.executors:
        n = getattr(ex, "max_threads", None) or getattr(ex, "max_workers_per_node", None)
        if isinstance(n, int | float) and n != float("inf"):
            total += int(n)
    return total or fallback


class ParslRunner:
    """Implements :class:`celltable.domain.ports.TaskRunner` as a context manager.

    Args:
        config: A Parsl configuration; None runs ``workers`` local threads.
        workers: Threads for the default configuration, and the fallback task count.
        run_dir: Where Parsl keeps its run information for the default configuration; None
            uses a temporary folder removed afterwards.
    """

    def __init__(self, config: Config | None, workers: int, run_dir: str | None = None) -> None:
        self._config = config
        self._fallback = workers
        self._run_dir = run_dir
        self._temporary: str | None = None
        self._dfk: DataFlowKernel | None = None
        self._app: Callable[..., Future[Any]] | None = None
        self.workers = workers

    def __enter__(self) -> ParslRunner:
        if self._run_dir is None:
            self._run_dir = self._temporary = tempfile.mkdtemp(prefix="celltable-parsl-")
        Path(self._run_dir).mkdir(parents=True, exist_ok=True)
        config = self._config or thread_config(self._fallback, self._run_dir)
        self.workers = _workers(config, self._fallback)
        self._dfk = DataFlowKernel(config)
        self._app = python_app(_call, data_flow_kernel=self._dfk, cache=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._dfk is not None:
            self._dfk.cleanup()
        self._dfk = self._app = None
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._run_dir = self._temporary = None

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        assert self._app is not None, "use the runner inside a with block"
        return self._app(fn, *args)
