"""Running many tasks through a task runner with bounded memory, results in plan order."""

from __future__ import annotations

import queue
import threading
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
    settle: bool = False,
) -> Iterator[T]:
    """Submit ``fn(*args)`` for each ``(label, args)`` and yield the results in job order.

    At most ``window`` tasks are in flight, so memory stays bounded by the window, not the plan.
    A failed task raises :class:`ExecutionError` naming its label. With ``settle``, a failure is
    raised only once the tasks in flight have finished (tasks that write files of their own must
    be done before those files are cleaned up).
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
    except Exception:
        if settle:
            for _, future in pending:
                future.exception()  # waits; its own failure is not the one to report
        raise
    finally:
        for _, future in pending:
            try:
                future.cancel()
            except NotImplementedError:  # Parsl's futures cannot be cancelled; they finish alone
                pass


_END = object()


def prefetched(items: Iterable[T], ahead: int = 1) -> Iterator[T]:
    """``items``, made in a thread of their own, at most ``ahead`` of them made (or being made)
    and not yet taken: making the next (reading a plate's next chunk) overlaps with using this
    one (writing it out), and no more items than that wait in memory.

    An error making an item is raised where that item would have come. Stopping early (an
    error while using an item) stops the maker once the item it is making is done, and closes
    ``items`` in its thread.
    """
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue()
    room = threading.Semaphore(ahead)  # one per item made and not yet taken
    stop = threading.Event()

    def wait_for_room() -> bool:
        while not stop.is_set():
            if room.acquire(timeout=0.05):
                return True
        return False

    def make() -> None:
        source = iter(items)
        try:
            while wait_for_room():
                try:
                    item = next(source)
                except StopIteration:
                    ready.put((_END, None))
                    return
                ready.put((item, None))
        except BaseException as e:  # handed to the user of the items, who raises it
            ready.put((_END, e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    maker = threading.Thread(target=make, name="celltable-prefetch", daemon=True)
    maker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            room.release()
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        maker.join()
