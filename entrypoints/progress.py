"""The progress bar of ``celltable convert``: rich, on stderr, only on a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from celltable.domain.model import DOWNLOADING, STAGING, Progress
from celltable.domain.ports import ProgressListener


class _Steps(ProgressColumn):
    """``3/10 chunks`` (or plates while staging, files while downloading)."""

    def render(self, task: Task) -> Text:
        plate = {STAGING: "plates", DOWNLOADING: "files"}.get(task.fields.get("stage"), "chunks")
        return Text(f"{task.fields.get('done', 0):,}/{task.fields.get('steps', 0):,} {plate}",
                    style="progress.download")


class _Rate(ProgressColumn):
    """Rows per second so far."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate", 0.0)
        if task.fields.get("stage") == DOWNLOADING:  # bytes
            return Text(f"{rate / 2**20:,.1f} MB/s" if rate else "– MB/s",
                        style="progress.data.speed")
        return Text(f"{rate:,.0f} rows/s" if rate else "– rows/s", style="progress.data.speed")


class ProgressBar:
    """A :class:`celltable.domain.ports.ProgressListener` drawing one bar per stage: plates
    staged, then chunks written (bar, chunks done/total, rows per second, time left)."""

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            _Steps(),
            _Rate(),
            TextColumn("•"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, p: Progress) -> None:
        # Bars advance by rows when their total is known (chunks differ in size), else by steps.
        total, done = (p.rows_total, p.rows) if p.rows_total else (p.total, p.done)
        fields = {"stage": p.stage, "done": p.done, "steps": p.total, "rate": p.rows_per_s}
        task = self._tasks.get(p.stage)
        if task is None:
            label = {STAGING: "reading", "joined": "writing"}.get(p.stage, p.stage.lower())
            task = self._tasks[p.stage] = self._bar.add_task(label, total=max(1, total), **fields)
        self._bar.update(task, completed=done, total=max(1, total), **fields)

    def start(self) -> None:
        self._bar.start()

    def stop(self) -> None:
        self._bar.stop()


@contextmanager
def progress_bar(enabled: bool, stream: TextIO | None = None) -> Iterator[ProgressListener | None]:
    """A progress listener drawing on ``stream`` (stderr) while the block runs, or None when not
    ``enabled``. Log lines written meanwhile go above the bar instead of through it."""
    if not enabled:
        yield None
        return
    console = Console(file=stream or sys.stderr)
    bar = ProgressBar(console)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    bar.start()
    try:
        for h in handlers:  # through rich's console, which keeps the bar below the logs
            h.setStream(_ConsoleWriter(console))  # type: ignore[arg-type]
        yield bar
    finally:
        for h, s in zip(handlers, streams, strict=True):
            h.setStream(s)
        bar.stop()


class _ConsoleWriter:
    """A file-like object printing through a rich console (so lines appear above live bars)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> int:
        if text.strip():
            self._console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass
