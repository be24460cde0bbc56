"""A cheap look at a local source, to recognise kinds no preset reads (DeepProfiler, IN Carta)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from celltable.domain.detect import SourceSurvey
from celltable.domain.errors import SourceNotFoundError

MAX_FILES = 10_000  # a survey names a kind; it need not see every file of a huge source
MAX_HEADERS = 20


def _header(path: Path) -> tuple[str, ...]:
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            return tuple(next(csv.reader(f), ()))
    except (OSError, csv.Error):
        return ()


class LocalSurveyor:
    """Implements :class:`celltable.domain.ports.SourceSurveyor` for local paths."""

    def survey(self, source_path: str) -> SourceSurvey:
        root = Path(source_path).expanduser().absolute()
        if not root.exists():
            raise SourceNotFoundError(f"source {root} does not exist; check the path")
        files = [root] if root.is_file() else self._files(root)
        suffixes = Counter(f.suffix.lower() for f in files if f.suffix)
        csvs = [f for f in files if f.suffix.lower() == ".csv"][:MAX_HEADERS]
        headers = tuple((f.relative_to(root).as_posix() if f != root else f.name, _header(f))
                        for f in csvs)
        return SourceSurvey(str(root), tuple(sorted(suffixes.items())), headers)

    @staticmethod
    def _files(root: Path) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            found.extend(Path(dirpath) / f for f in sorted(filenames))
            if len(found) >= MAX_FILES:
                break
        return found[:MAX_FILES]
