"""Progress of a conversion, told to a listener and logged with the same numbers."""

from __future__ import annotations

import time
from typing import Any

import structlog

from celltable.domain.model import Progress
from celltable.domain.ports import ProgressListener


class Meter:
    """Counts the steps of one stage (plates staged, chunks written) and reports each.

    Args:
        stage: What is being done (``staging``, or the output table's name).
        total: Steps in the stage.
        rows_total: Rows the stage will go through, 0 when unknown.
        listener: Told after every step; None to only log.
        event: The structlog event logged after every step, carrying the same numbers.
        unit: What a step is, naming the event's counts (``chunks_done``, ``chunks_total``).
    """

    def __init__(self, stage: str, total: int, rows_total: int,
                 listener: ProgressListener | None, event: str, plate: str) -> None:
        self.stage, self.total, self.rows_total = stage, total, rows_total
        self.listener, self.event, self.plate = listener, event, plate
        # A logger per meter follows the configuration of its time (tests capture logs).
        self.log = structlog.get_logger("celltable.convert")
        self.done = self.rows = 0
        self.started = time.perf_counter()
        if listener is not None:
            listener(self._progress())

    def _progress(self) -> Progress:
        return Progress(self.stage, self.done, self.total, self.rows, self.rows_total,
                        time.perf_counter() - self.started)

    def advance(self, rows: int, /, **fields: Any) -> Progress:
        """One more step done, having gone through ``rows``; ``fields`` go to the log event."""
        self.done += 1
        self.rows += rows
        p = self._progress()
        eta = p.eta_s
        counts = {f"{self.plate}_done": p.done, f"{self.plate}_total": p.total}
        self.log.info(self.event, stage=self.stage, **counts, rows_done=p.rows,
                 rows_total=p.rows_total, rows_per_s=round(p.rows_per_s, 1),
                 eta_s=None if eta is None else round(eta, 1), **fields)
        if self.listener is not None:
            self.listener(p)
        return p
