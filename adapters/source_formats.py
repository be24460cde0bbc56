"""The source formats celltable reads, and the module reading each.

Adding a format: one module with a class implementing
:class:`celltable.domain.ports.SourceFormatReader` (built here with its format), and one
registration line below (and its :class:`celltable.domain.presets.SourceFormat` member, which
presets name). Modules are
imported when their format is first used, so listing a CSV source loads no NPZ or SQLite code,
and a worker process gets the reader of its plate from the plate's format alone. Nothing outside
this module branches on the format.
"""

from __future__ import annotations

import importlib
from functools import cache

from celltable.domain.ports import SourceFormatReader
from celltable.domain.presets import SourceFormat

REGISTRY: dict[SourceFormat, str] = {
    SourceFormat.CSV: "celltable.adapters.source_csv:CsvFormat",  # CellProfiler CSV; IN Carta
    SourceFormat.SQLITE: "celltable.adapters.source_sqlite:SqliteFormat",  # also cytominer-database
    SourceFormat.NPZ: "celltable.adapters.source_npz:NpzFormat",  # DeepProfiler sites
}


@cache
def reader(fmt: SourceFormat) -> SourceFormatReader:
    """The reader of a source format."""
    fmt = SourceFormat(fmt)
    module, _, name = REGISTRY[fmt].partition(":")
    return getattr(importlib.import_module(module), name)(fmt)  # type: ignore[no-any-return]


def others(fmt: SourceFormat) -> tuple[SourceFormatReader, ...]:
    """The readers of every other format (to hint at the preset a source looks like)."""
    return tuple(reader(f) for f in REGISTRY if f is not SourceFormat(fmt))
