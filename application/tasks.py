"""Running many tasks through a task runner with bounded memory, results in plan order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from celltable.domain.errors import CelltableError, ExecutionError
from celltable.domain.ports import TaskRunner

T = TypeVar("T")


def _result(future: Future[T], label: str) -> T:
    try:
        return future.result()
    except CelltableError:
        raise
    except Exception as e:  # a task failed in a way the adapters did not foresee
        raise ExecutionError(f"{label} failed: {type(e).__name__}: {e}") from e


def run_ordered(
    runner: TaskRunner,
    fn: Callable[..., T],
    jobs: Iterable[tuple[str, tuple[Any, ...]]],
    window: int,
) -> Iterator[T]:
    """Submit ``fn(*args)`` for each ``(label, args)`` and yield the results in job order.

    At most ``window`` tasks are in flight, so memory stays bounded by the window, not the plan.
    A failed task raises :class:`ExecutionError` naming its label.
    """
    pending: deque[tuple[str, Future[T]]] = deque()
    jobs = iter(jobs)
    try:
        for label, args in jobs:
            pending.append((label, runner.submit(fn, *args)))
            if len(pending) >= window:
                label, future = pending.popleft()
                yield _result(future, label)
        while pending:
            label, future = pending.popleft()
            yield _result(future, label)
    finally:
        for _, future in pending:
            try:
                future.cancel()
            except NotImplementedError:  # Parsl's futures cannot be cancelled; they finish alone
                pass
