"""A cheap look at every file of a source before any data moves: files that cannot be read
(empty, cut short mid-row, NPZ arrays that do not fit their file) are named all at once.

Each check reads a file's first and last blocks (CSV) or its array headers (NPZ), so surveying a
thousand sites costs seconds, not a conversion. Deeper damage (a bad byte in the middle of a
file) is still found when the file is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from celltable.adapters.source_formats import reader
from celltable.domain.errors import SourceReadError
from celltable.domain.sources import Plate, SkippedFile

TAIL = 1 << 16
"""Bytes read from the end of a CSV file to find its last row."""
HEADER_LIMIT = 1 << 24
"""Bytes read at most for a CSV header (CellProfiler headers reach a few hundred kB)."""
DELIMITERS = (",", "\t", ";")


def _fields(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def csv_problem(path: Path) -> str | None:
    """Why a CSV file cannot be read (``"empty file (0 bytes)"``, a last row cut short), or
    None. A header-only file is fine: it holds no rows. Reads the file's last block, and its
    first line only when the last row lacks its line end."""
    try:
        st = path.stat()
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return _csv_problem(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1 << 16)  # detection looks at a source once per preset: read each file once
def _csv_problem(path: str, size: int, mtime_ns: int) -> str | None:
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Path(path).open("rb") as f:
            f.seek(max(0, size - TAIL))
            tail = f.read()
            if tail.endswith((b"\n", b"\r")):
                return None  # complete rows (a cut exactly between rows is not seen here)
            f.seek(0)
            head = _first_line(f)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if head is None:
        return None  # one line: a header only, or a header longer than any CellProfiler's
    header = head.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    delimiter = max(DELIMITERS, key=header.count)
    want, got = _fields(header, delimiter), _fields(last, delimiter)
    if got < want:
        return (f"cut short: its last row has {got} of the header's {want} values (the file "
                "was truncated); export or copy it again")
    return None


def _first_line(f: BinaryIO) -> bytes | None:
    """The first line of ``f``, read in blocks; None when there is no second line."""
    parts, read = [], 0
    while read < HEADER_LIMIT:
        block = f.read(1 << 16)
        if not block:
            return None
        line, newline, _ = block.partition(b"\n")
        parts.append(line)
        read += len(block)
        if newline:
            return b"".join(parts)
    return None


SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_problem(path: Path) -> str | None:
    """Why a SQLite file is cut short (fewer bytes than its header's page count needs), or
    None; reads the 100-byte header only. Other damage is found when its tables are listed."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return None  # listing its tables says what it is
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the page count is trusted only when written by the same change as the header's counter
    if header[24:28] != header[92:96] or not pages:
        return None
    if size < pages * page_size:
        return (f"cut short: {size:,} bytes of the {pages * page_size:,} its header declares "
                "(a partial copy or download); copy it again")
    return None


def npz_problem(path: Path) -> str | None:
    """Why a DeepProfiler NPZ file cannot be read (not a zip, arrays missing, shapes that do
    not fit the file), or None; reads the array headers only."""
    from celltable.adapters.npz import site_cells

    try:
        site_cells(str(path))
    except SourceReadError as e:
        text = str(e)
        return text[len(str(path)):].lstrip(" :") if text.startswith(str(path)) else text
    return None


def plate_problems(plates: Iterable[Plate]) -> tuple[SkippedFile, ...]:
    """Every file of ``plates`` that cannot be read, with why, each file once, as its format's
    reader tells from a first look (SQLite files are checked as their tables are listed)."""
    seen: set[str] = set()
    bad = []
    for plate in plates:
        for loc in plate.tables:
            if loc.path in seen:
                continue
            seen.add(loc.path)
            why = reader(plate.format).problem(loc.path)
            if why:
                bad.append(SkippedFile(loc.path, why))
    return tuple(bad)
