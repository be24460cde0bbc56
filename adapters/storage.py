"""Local storage: finding plates under a local source folder or file, and the versions of local
files.

The matching of files to a preset's tables is in ``adapters/source_tree.py``; the local
destination (staging, publishing, the resume folder's lock) in ``adapters/local_destination.py``,
whose names are re-exported here for the composition root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from celltable.adapters.file_checks import plate_problems
from celltable.adapters.local_destination import (
    OWNER,
    LocalDestination,
    ResumeBusy,
    hold_lock,
    write_local_text,
)
from celltable.adapters.source_tree import _walk, match_plates
from celltable.domain.errors import SourceNotFoundError
from celltable.domain.presets import Preset
from celltable.domain.sources import SourceLayout, SourceTree

__all__ = [
    "HEADER_ONLY",
    "OWNER",
    "LocalDestination",
    "LocalSourceLocator",
    "ResumeBusy",
    "file_state",
    "file_versions",
    "hold_lock",
    "write_local_text",
]


class LocalSourceLocator:
    """Finds plates in a local folder or file (see :class:`celltable.domain.ports.SourceLocator`).

    A source is listed once for the locator's life (one run): detecting tries every preset on
    the same listing."""

    def __init__(self) -> None:
        self._trees: dict[Path, SourceTree] = {}

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        root = Path(source_path).expanduser().absolute()
        if not root.exists():
            raise SourceNotFoundError(f"source {root} does not exist; check the path")
        tree = self._trees.get(root)
        if tree is None:
            tree = self._trees[root] = (SourceTree(str(root), root.name, True) if root.is_file()
                                        else _walk(root))
        layout = match_plates(tree, preset, lambda rel: str(root / rel) if rel else str(root),
                             state=lambda rel: file_state(root / rel if rel else root))
        return replace(layout, bad=layout.bad + plate_problems(layout.plates))


HEADER_ONLY = "header only, no rows"
HEADER_LIMIT = 1 << 24
"""Bytes read at most to tell a header-only CSV file: CellProfiler headers reach a few hundred
kB; a longer first line is taken as rows."""


def file_state(path: Path) -> str | None:
    """``"empty file"`` (0 bytes), ``"header only, no rows"`` for a CSV file with one line, or
    None; reads the first line and the start of the second, in blocks."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if path.suffix.lower() != ".csv":
            return None
        with path.open("rb") as f:
            read, newline = 0, False
            while read < HEADER_LIMIT:
                block = f.read(1 << 16)
                if not block:
                    return HEADER_ONLY
                read += len(block)
                if not newline:
                    _, newline_found, block = block.partition(b"\n")
                    newline = bool(newline_found)
                if newline and block.strip():
                    return None
    except OSError:
        return None
    return None


def file_versions(paths: Sequence[str]) -> dict[str, str]:
    """Each local file's version: its size and modification time (``"missing"`` if gone)."""
    versions = {}
    for p in paths:
        try:
            st = Path(p).stat()
        except OSError:
            versions[p] = "missing"
            continue
        versions[p] = f"{st.st_size}:{st.st_mtime_ns}"
    return versions
