"""celltable: image-analysis measurements into analysis-ready single-cell tables.

>>> import celltable
>>> result = celltable.convert("ExampleHuman/", "example.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from celltable.api import convert, presets
from celltable.domain.errors import (
    CelltableError,
    DestinationError,
    ExecutionError,
    InvalidPresetError,
    NoTablesFoundError,
    SchemaError,
    SourceNotFoundError,
    SourceReadError,
    UnknownPresetError,
)
from celltable.domain.model import ConversionOptions, ConversionResult, TableReport

__all__ = [
    "CelltableError",
    "ConversionOptions",
    "ConversionResult",
    "DestinationError",
    "ExecutionError",
    "InvalidPresetError",
    "NoTablesFoundError",
    "SchemaError",
    "SourceNotFoundError",
    "SourceReadError",
    "TableReport",
    "UnknownPresetError",
    "convert",
    "presets",
]
