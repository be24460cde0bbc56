"""The ``TaskRunner`` port's behaviour, on the fake (tasks run at once, in the caller's thread)
and on Parsl's local threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celltable.adapters.parsl_runner import ParslRunner
from celltable.domain.errors import SchemaError
from celltable.domain.ports import TaskRunner
from tests.fakes import SyncRunner


def _area(width: int, height: int) -> int:
    return width * height


def _refuse(plate: str) -> None:
    raise SchemaError(f"plate {plate!r} has no image table")


@pytest.fixture(params=["fake", "parsl threads"])
def make(request, tmp_path) -> Callable[[], Any]:
    """A new runner, not open yet."""
    if request.param == "fake":
        return SyncRunner
    return lambda: ParslRunner(None, workers=2, run_dir=str(tmp_path / "parsl"))


@pytest.fixture
def runner(make) -> Iterator[TaskRunner]:
    with make() as running:
        yield running


def test_a_task_gives_its_result_through_its_future(runner):
    assert runner.submit(_area, 3, 4).result(timeout=60) == 12


def test_every_task_submitted_runs_and_its_future_holds_its_own_result(runner):
    futures = [runner.submit(_area, n, n + 1) for n in range(20)]
    assert [f.result(timeout=60) for f in futures] == [n * (n + 1) for n in range(20)]


def test_a_failed_task_raises_its_own_error_from_its_future(runner):
    future = runner.submit(_refuse, "p1")
    with pytest.raises(SchemaError, match="'p1' has no image table"):
        future.result(timeout=60)
    assert runner.submit(_area, 2, 2).result(timeout=60) == 4  # the runner goes on


def test_workers_says_how_many_tasks_run_at_once(runner):
    assert isinstance(runner.workers, int) and runner.workers >= 1


def test_runners_open_one_after_another_in_one_process(make):
    for _ in range(2):
        with make() as again:
            assert again.submit(_area, 1, 5).result(timeout=60) == 5
