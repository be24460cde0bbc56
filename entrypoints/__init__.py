"""celltable: image-analysis measurements into analysis-ready single-cell tables.

>>> import celltable
>>> result = celltable.convert("ExampleHuman/", "example.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from celltable.api import convert, detect, inspect, load_preset, presets, validate
from celltable.domain.errors import (
    BadSourceFilesError,
    BucketNotFoundError,
    CelltableError,
    CloudStorageError,
    ConfigurationError,
    DestinationError,
    DiskSpaceError,
    ExecutionError,
    InvalidOptionError,
    InvalidPresetError,
    NoTablesFoundError,
    SchemaError,
    SourceNotFoundError,
    SourceReadError,
    UnknownPresetError,
    UnsafePickleError,
    UnsupportedSourceError,
    ValidationError,
)
from celltable.domain.model import (
    ConversionOptions,
    ConversionResult,
    PlateRows,
    Progress,
    TableReport,
)

__all__ = [
    "BadSourceFilesError",
    "BucketNotFoundError",
    "CelltableError",
    "CloudStorageError",
    "ConfigurationError",
    "ConversionOptions",
    "ConversionResult",
    "DestinationError",
    "DiskSpaceError",
    "ExecutionError",
    "InvalidOptionError",
    "InvalidPresetError",
    "NoTablesFoundError",
    "PlateRows",
    "Progress",
    "SchemaError",
    "SourceNotFoundError",
    "SourceReadError",
    "TableReport",
    "UnknownPresetError",
    "UnsafePickleError",
    "UnsupportedSourceError",
    "ValidationError",
    "convert",
    "detect",
    "inspect",
    "load_preset",
    "presets",
    "validate",
]
