from __future__ import annotations

import os
import sys
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


def _die_once(marker: str) -> int:
    """Kills its worker the first time it runs, then returns the worker's process id."""
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


def _fail_named(log: str) -> None:
    with Path(log).open("a") as f:
        f.write("tried\n")
    from celltable.domain.errors import SourceReadError

    raise SourceReadError("unreadable on purpose")


def _optional_imports() -> tuple[list[str], str]:
    """What a worker loaded of Parsl's optional libraries before its task, then boto3 imported
    by the task (as a cloud plate's download does)."""
    import sys

    before = sorted(m for m in ("boto3", "sqlalchemy") if m in sys.modules)
    import boto3

    return before, boto3.__name__


def _parent() -> tuple[str, bool, str | None]:
    """The command line of the process that started this worker, whether that process had
    imported Parsl's worker pool through parsl_lean (so this one has it), and PYTHONPATH here."""
    import sys

    command = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return command, "parsl_lean" in sys.modules, os.environ.get("PYTHONPATH")


def test_htex_runs_tasks_in_worker_processes_and_retries_only_a_task_whose_worker_died(
        tmp_path, monkeypatch):
    from celltable.domain.errors import SourceReadError

    # The workers import this module: they start with the main process's environment.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    path_before = os.environ["PATH"]
    with ParslRunner(None, workers=2, executor="htex") as runner:
        assert runner.workers == 2
        pids = {f.result() for f in [runner.submit(os.getpid) for _ in range(4)]}
        assert os.getpid() not in pids
        # Parsl's processes start without the optional libraries Parsl would import for
        # nothing (boto3, SQLAlchemy: installed here by the test extras); a task imports them
        assert runner.submit(_optional_imports).result() == ([], "boto3")
        if sys.platform == "linux":  # forked from one server that imported Parsl once
            command, preloaded, pythonpath = runner.submit(_parent).result()
            assert "multiprocessing.forkserver" in command and preloaded
            assert pythonpath == os.environ["PYTHONPATH"]  # the server's own path not leaked
        assert runner.submit(_die_once, str(tmp_path / "died")).result() != os.getpid()
        with pytest.raises(SourceReadError, match="on purpose"):
            runner.submit(_fail_named, str(tmp_path / "tries")).result()
    assert (tmp_path / "tries").read_text() == "tried\n"  # a named error is not retried
    assert os.environ["PATH"] == path_before


def test_a_config_file_defines_the_executors(tmp_path):
    from celltable.adapters.parsl_runner import load_config_file
    from celltable.domain.errors import ConfigurationError

    good = tmp_path / "threads.py"
    good.write_text(
        "from parsl.config import Config\n"
        "from parsl.executors import ThreadPoolExecutor\n"
        f"config = Config(executors=[ThreadPoolExecutor(max_threads=3)], run_dir={str(tmp_path / 'run')!r})\n"
    )
    with ParslRunner(load_config_file(str(good)), workers=1) as runner:
        assert runner.workers == 3 and runner.submit(_square, 4).result() == 16
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigurationError, match="must define `config"):
        load_config_file(str(empty))
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    with pytest.raises(ConfigurationError, match="ModuleNotFoundError"):
        load_config_file(str(broken))


def _gated_config(tmp_path: Path, gate: object, fail: bool = False):  # type: ignore[no-untyped-def]
    """Threads whose executor starts only once ``gate`` is set (or fails to start)."""
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    class Gated(ThreadPoolExecutor):
        def start(self) -> None:
            if not gate.wait(20):  # type: ignore[attr-defined]
                raise RuntimeError("the executor was started before the caller went on")
            if fail:
                raise RuntimeError("no worker could start")
            super().start()

    return Config(executors=[Gated(max_threads=2, label="gated")],
                  run_dir=str(tmp_path / "runinfo"), strategy="none")


def test_the_executor_starts_while_the_caller_goes_on_and_the_first_task_waits_for_it(tmp_path):
    import threading

    gate = threading.Event()
    with ParslRunner(_gated_config(tmp_path, gate), workers=1) as runner:
        assert runner.workers == 2  # known from the configuration, before the start
        gate.set()  # the caller's own work (listing, planning) happens here
        assert runner.submit(_square, 3).result() == 9


def test_an_executor_that_cannot_start_fails_the_first_task_and_a_runner_never_used_closes(
        tmp_path):
    import threading

    gate = threading.Event()
    gate.set()
    with ParslRunner(_gated_config(tmp_path, gate, fail=True), workers=1) as runner, \
            pytest.raises(RuntimeError, match="no worker could start"):
        runner.submit(_square, 3)
    with ParslRunner(None, workers=1, executor="threads"):
        pass  # opened and closed without a task: started and stopped, nothing left loaded
    import parsl

    with pytest.raises(parsl.errors.NoDataFlowKernelError):
        parsl.dfk()
