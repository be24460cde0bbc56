"""Reading ahead in a thread of its own: order, errors, and stopping early."""

from __future__ import annotations

import threading
import time

import pytest

from celltable.application.tasks import prefetched


def test_items_come_in_order_and_are_made_in_another_thread():
    makers = set()

    def items():
        for i in range(50):
            makers.add(threading.get_ident())
            yield i

    assert list(prefetched(items())) == list(range(50))
    assert len(makers) == 1 and threading.get_ident() not in makers


def test_the_next_item_is_made_while_this_one_is_used():
    made = []

    def items():
        for i in range(3):
            made.append(i)
            yield i

    it = prefetched(items())
    assert next(it) == 0
    deadline = time.monotonic() + 5
    while len(made) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made[:2] == [0, 1]  # made ahead, before being asked for
    assert list(it) == [1, 2]


def test_an_error_making_an_item_is_raised_where_the_item_would_come():
    def items():
        yield 1
        raise ValueError("unreadable chunk")

    it = prefetched(items())
    assert next(it) == 1
    with pytest.raises(ValueError, match="unreadable chunk"):
        next(it)


def test_stopping_early_stops_the_maker_and_closes_the_items():
    closed = threading.Event()
    made = []

    def items():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    it = prefetched(items(), ahead=1)
    assert next(it) == 0
    it.close()
    assert closed.is_set()  # closed in the maker's thread, before close() returned
    assert len(made) <= 4  # no more than the items in hand and ahead were made
    assert not any(t.name == "celltable-prefetch" for t in threading.enumerate())


class _PoolRunner:
    """Tasks on two threads of a pool."""

    workers = 2

    def __init__(self, pool):
        self.pool = pool

    def submit(self, fn, /, *args):
        return self.pool.submit(fn, *args)


def test_with_settle_a_failure_is_raised_once_the_tasks_in_flight_are_done():
    from concurrent.futures import ThreadPoolExecutor

    from celltable.application.tasks import run_ordered
    from celltable.domain.errors import ExecutionError

    finished = []

    def task(i):
        if i == 0:
            raise RuntimeError("plate 0 failed")
        time.sleep(1.0)
        finished.append(i)
        return i

    for settle, done in ((False, []), (True, [1])):
        finished.clear()
        with ThreadPoolExecutor(2) as pool:
            with pytest.raises(ExecutionError, match="plate 0 failed"):
                list(run_ordered(_PoolRunner(pool), task, ((f"t{i}", (i,)) for i in range(2)),
                                 window=2, settle=settle))
            assert finished == done  # without settle, task 1 is still running
