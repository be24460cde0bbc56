"""Tasks run as Parsl apps. Each runner owns its own DataFlowKernel: nothing global is loaded,
so conversions can follow each other (or run side by side) in one process.

Executors: local threads, local worker processes (Parsl's HighThroughputExecutor with a
LocalProvider), or any ``parsl.Config``, also from a Python file defining ``config``.
Tasks are bound methods of frozen dataclass adapters (``DuckDBEngine.stage`` ...) taking value
objects, so they pickle and run in other processes.
"""

from __future__ import annotations

import os
import runpy
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from parsl.app.app import python_app
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
from parsl.providers import LocalProvider

from celltable.domain.errors import CelltableError, ConfigurationError

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


def retry_cost(error: Exception, task_record: Any) -> float:
    """Parsl's retry budget spent by a failed task: a task that failed on purpose (a
    :class:`CelltableError`: unreadable data, a bad query) would fail again and is not retried;
    one whose worker died (``WorkerLost``, ``ManagerLost`` ...) is, within ``Config.retries``."""
    return float("inf") if isinstance(error, CelltableError) else 1.0


def _lean(module: str, *options: str) -> list[str]:
    """The command running Parsl's script ``module`` through ``parsl_lean.py``: without the
    optional libraries Parsl would import for nothing there (see that module)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    return [sys.executable, str(Path(__file__).with_name("parsl_lean.py")), *options, spec.origin]


def htex_config(workers: int, run_dir: str) -> Config:
    """Local worker processes: Python runs in parallel without the GIL's limits; start-up takes
    a few seconds. Workers listen on the loopback address only. A task whose worker dies is run
    again once."""
    return Config(
        executors=[
            HighThroughputExecutor(
                label="celltable_htex",
                max_workers_per_node=workers,
                # max_workers_per_node decides the count, not the cores Parsl finds.
                cores_per_worker=1 / workers,
                address="127.0.0.1",
                # Also how often a dead worker is noticed (and its task retried): 30 s by default.
                heartbeat_period=2,
                heartbeat_threshold=30,
                # How long the interchange's and the result thread's polls wait when nothing
                # comes (a message ends the wait at once): 10 ms by default, measured 0.4 s of
                # CPU over a 4-plate run for nothing.
                poll_period=100,
                provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
                # Parsl's own processes, started without the libraries they never use here:
                # measured 25 MB and 0.35 s of CPU less in each; the pool's workers forked
                # from a server that imported Parsl once (parsl_lean.py).
                interchange_launch_cmd=_lean("parsl.executors.high_throughput.interchange"),
                launch_cmd=" ".join(shlex.quote(a) for a in _lean(
                    "parsl.executors.high_throughput.process_worker_pool", "--forkserver")).replace(
                    "{", "{{").replace("}", "}}")
                + DEFAULT_LAUNCH_CMD.removeprefix("process_worker_pool.py"),
                worker_logdir_root=run_dir,
            )
        ],
        run_dir=run_dir,
        strategy="none",
        # The block of workers is started at the poller's first tick: 5 s by default.
        strategy_period=0.2,
        retries=1,
        retry_handler=retry_cost,
        initialize_logging=False,
        usage_tracking=0,
    )


EXECUTOR_CONFIGS = {"threads": thread_config, "htex": htex_config}


def load_config_file(path: str) -> Config:
    """The ``config`` defined by a Python file (``config = Config(executors=[...])``).

    Raises:
        ConfigurationError: The file cannot be run or defines no ``parsl.config.Config`` named
            ``config``.
    """
    try:
        namespace = runpy.run_path(str(path))
    except Exception as e:  # the user's code may raise anything
        raise ConfigurationError(
            f"cannot load the Parsl configuration {path}: {type(e).__name__}: {e}"
        ) from e
    config = namespace.get("config")
    if not isinstance(config, Config):
        raise ConfigurationError(
            f"{path} must define `config = parsl.config.Config(...)`; "
            f"found {type(config).__name__}; see docs/scaling.md for examples"
        )
    return config


def _workers(config: Config, fallback: int) -> int:
    """Tasks that can run at once: threads, or workers per node times the nodes of the blocks
    the provider may start (so a cluster's nodes are all kept busy)."""
    total = 0
    for ex in config.executors:
        n = getattr(ex, "max_threads", None) or getattr(ex, "max_workers_per_node", None)
        if isinstance(n, int | float) and n != float("inf"):
            provider = getattr(ex, "provider", None)
            nodes = getattr(provider, "nodes_per_block", 1) or 1
            blocks = max(getattr(provider, "max_blocks", 1) or 1, getattr(provider, "init_blocks", 1) or 1)
            total += int(n) * int(nodes) * int(blocks)
    return total or fallback


def runs_elsewhere(config: Config) -> bool:
    """Whether a configuration runs tasks outside this process: any executor but threads."""
    return any(not isinstance(ex, ThreadPoolExecutor) for ex in config.executors)


class ParslRunner:
    """Implements :class:`celltable.domain.ports.TaskRunner` as a context manager.

    Args:
        config: A Parsl configuration; None runs ``workers`` of ``executor``.
        workers: Threads or processes for the default configuration, and the fallback task count.
        run_dir: Where Parsl keeps its run information for the default configuration; None
            uses a temporary folder removed afterwards.
        executor: ``"threads"`` or ``"htex"`` (local processes), when ``config`` is None.

    While the runner is open, the folder of the running Python comes first on ``PATH``: Parsl
    starts its interchange and workers as commands (``interchange.py``,
    ``process_worker_pool.py``) installed there, and must find this environment's.

    Opening returns at once: the executor starts in a thread of its own (worker processes take
    seconds to start and import their libraries) while the caller lists and plans; the first
    task submitted waits for it.
    """

    def __init__(self, config: Config | None, workers: int, run_dir: str | None = None,
                 executor: str = "threads") -> None:
        if config is None and executor not in EXECUTOR_CONFIGS:
            raise ConfigurationError(
                f"executor must be one of {', '.join(EXECUTOR_CONFIGS)}, not {executor!r}"
            )
        self._config = config
        self._executor = executor
        self._path: str | None = None
        self._fallback = workers
        self._run_dir = run_dir
        self._temporary: str | None = None
        self._dfk: DataFlowKernel | None = None
        self._app: Callable[..., Future[Any]] | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self.workers = workers
        self.elsewhere = False
        """Whether tasks run in other processes (known once open): then plates are the tasks."""

    def __enter__(self) -> ParslRunner:
        if self._run_dir is None:
            self._run_dir = self._temporary = tempfile.mkdtemp(prefix="celltable-parsl-")
        Path(self._run_dir).mkdir(parents=True, exist_ok=True)
        config = self._config or EXECUTOR_CONFIGS[self._executor](self._fallback, self._run_dir)
        self.workers = _workers(config, self._fallback)
        self.elsewhere = runs_elsewhere(config)
        self._path = os.environ.get("PATH")
        bin_dir = str(Path(sys.executable).parent)
        os.environ["PATH"] = os.pathsep.join([bin_dir, *(p for p in (self._path or "").split(os.pathsep)
                                                         if p and p != bin_dir)])
        self._start_error = None
        self._starting = threading.Thread(target=self._start, args=(config,),
                                          name="celltable-parsl-start", daemon=True)
        self._starting.start()
        return self

    def _start(self, config: Config) -> None:
        try:
            self._dfk = DataFlowKernel(config)
            self._app = python_app(_call, data_flow_kernel=self._dfk, cache=False)
        except BaseException as e:  # raised where a task is submitted
            self._start_error = e

    def _started(self) -> Callable[..., Future[Any]]:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._start_error is not None:
            raise self._start_error
        assert self._app is not None, "use the runner inside a with block"
        return self._app

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._starting is not None:  # started, never used: stopped all the same
                self._starting.join()
                self._starting = None
            if self._dfk is not None:
                self._dfk.cleanup()
        finally:
            self._dfk = self._app = None
            self._start_error = None
            self._restore_path()
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._run_dir = self._temporary = None

    def _restore_path(self) -> None:
        if self._path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = self._path

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        return self._started()(fn, *args)
