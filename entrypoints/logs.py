"""structlog, configured once for the command line: console on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str | None = None, level: str = "info") -> None:
    """Route structlog and the standard library's logs (Parsl's among them) to stderr.

    Args:
        fmt: ``console`` or ``json``; None picks console on a terminal and JSON otherwise.
        level: The lowest level shown.
    """
    fmt = fmt or ("console" if sys.stderr.isatty() else "json")
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # not cached: tests (structlog.testing.capture_logs) and embedding hosts may reconfigure
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Parsl logs each failed task with its traceback; celltable reports failures itself, in one
    # line naming the plate and chunk, so Parsl speaks only when debugging.
    logging.getLogger("parsl").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL)


def route_to_stdlib_unless_configured() -> None:
    """Quiet by default for the Python API (notebooks, scripts): unless the application has
    configured structlog, celltable's events go to the standard library's ``logging``, which
    shows warnings and hides progress until ``logging.basicConfig(level="INFO")`` asks for it.
    (Unconfigured structlog would print every event to stdout.)"""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # not cached: tests (structlog.testing.capture_logs) and embedding hosts may reconfigure
        cache_logger_on_first_use=False,
    )
