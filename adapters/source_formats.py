"""The source formats celltable reads, and the module reading each.

Adding a format: one module whose ``READER`` implements
:class:`celltable.domain.ports.SourceFormatReader`, and one registration line below (and its
:class:`celltable.domain.presets.SourceFormat` member, which presets name). Modules are
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
    SourceFormat.CSV: "celltable.adapters.source_csv",  # CellProfiler CSV folders; IN Carta
    SourceFormat.SQLITE: "celltable.adapters.source_sqlite",  # CellProfiler, cytominer-database
    SourceFormat.NPZ: "celltable.adapters.source_npz",  # DeepProfiler sites
}


@cache
def reader(fmt: SourceFormat) -> SourceFormatReader:
    """The reader of a source format."""
    return importlib.import_module(REGISTRY[SourceFormat(fmt)]).READER  # type: ignore[no-any-return]


def others(fmt: SourceFormat) -> tuple[SourceFormatReader, ...]:
    """The readers of every other format (to hint at the preset a source looks like)."""
    return tuple(reader(f) for f in REGISTRY if f is not SourceFormat(fmt))
