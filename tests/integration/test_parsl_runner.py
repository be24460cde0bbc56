from __future__ import annotations

import os
from pathlib import Path

import pytest

from celltable.adapters.parsl_runner import ParslRunner


def _square(x: int) -> int:
    return x * x


def _boom() -> None:
    raise ValueError("task exploded")


def test_two_runners_in_one_process_both_work_and_leave_nothing_loaded():
    import parsl

    for _ in range(2):
        with ParslRunner(None, workers=2) as runner:
            assert [runner.submit(_square, i).result() for i in range(5)] == [0, 1, 4, 9, 16]
    with pytest.raises(parsl.errors.NoDataFlowKernelError):
        parsl.dfk()


def test_a_task_failure_reaches_the_caller_with_its_own_type():
    with ParslRunner(None, workers=1) as runner, pytest.raises(ValueError, match="exploded"):
        runner.submit(_boom).result()


def test_the_default_run_directory_is_temporary(tmp_path):
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with ParslRunner(None, workers=1) as runner:
            runner.submit(_square, 2).result()
    finally:
        os.chdir(cwd)
    assert list(tmp_path.iterdir()) == []


def test_a_user_config_is_used(tmp_path):
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    config = Config(executors=[ThreadPoolExecutor(max_threads=3, label="mine")],
                    run_dir=str(tmp_path / "runinfo"))
    with ParslRunner(config, workers=1) as runner:
        assert runner.workers == 3
        assert runner.submit(_square, 3).result() == 9
