"""CellProfiler's Experiment table: the run's settings, one value per key (the pipeline, the
CellProfiler version, when it ran). ExportToSpreadsheet writes ``Experiment.csv`` (columns
``Key,Value``) beside the object tables; ExportToDatabase writes ``Per_Experiment`` (one row,
a column per key) into the SQLite file. Read straight from the source, read-only, small; each
format's reader (``adapters/source_formats.py``) says which of these its plates hold."""

from __future__ import annotations

import csv
import sqlite3
import sys
from pathlib import Path

from celltable.adapters.source_formats import reader
from celltable.domain.sources import Plate

MAX_VALUE = 1 << 16
"""Characters kept of one value (a pipeline is tens of kB); longer values are cut, and say so."""
SKIPPED = ("ImageSet_Zip_Dictionary",)
"""Keys left out: encoded image-set data, not a setting a reader can use."""
TABLES = ("per_experiment", "experiment")


def _value(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):  # a bytes repr, as written
        text = text[2:-1].encode("latin-1", "replace").decode("unicode_escape", "replace")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + " ... (cut)"


def _kept(pairs: list[tuple[str, object]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), _value(v)) for k, v in pairs
                 if k and v is not None and not str(k).startswith(SKIPPED))


def from_csv(folder: Path) -> tuple[tuple[str, str], ...]:
    found = next((p for p in sorted(folder.glob("*.csv")) if p.stem.lower() == "experiment"), None)
    if found is None:
        return ()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a pipeline is one long quoted value
    with found.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows or [c.lower() for c in rows[0][:2]] != ["key", "value"]:
        return ()
    return _kept([(r[0], r[1]) for r in rows[1:] if len(r) >= 2])


def from_sqlite(path: Path) -> tuple[tuple[str, str], ...]:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as con:
        names = {n.lower(): n for (n,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        for wanted in TABLES:
            if wanted not in names:
                continue
            cursor = con.execute(f'SELECT * FROM "{names[wanted]}" LIMIT 1')
            row = cursor.fetchone()
            columns = [d[0] for d in cursor.description]
            if row is not None and "CellProfiler_Version" in columns:
                return _kept(list(zip(columns, row, strict=True)))
    return ()


class CellProfilerExperiments:
    """Implements :class:`celltable.domain.ports.ExperimentReader`."""

    def read(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        try:
            return reader(plate.format).experiment(plate)
        except (OSError, sqlite3.Error, csv.Error, UnicodeError):
            return ()  # the run's settings are a courtesy: never a reason to fail
