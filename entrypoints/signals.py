"""SIGTERM handled as Ctrl-C is: what ``timeout``, Slurm and Kubernetes send first."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_CODE = 128 + signal.SIGTERM
"""The exit code of a conversion stopped by SIGTERM, as a shell reports a process it ended."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so the conversion unwinds as after Ctrl-C
    (staging removed, DEST left as it was, worker processes stopped). A ``BaseException``, like
    ``KeyboardInterrupt``, so no ``except Exception`` swallows it."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only: elsewhere
    signals cannot be handled, and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
