"""celltable: image-analysis measurements into analysis-ready single-cell tables.

>>> import celltable
>>> result = celltable.convert("ExampleHuman/", "example.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from celltable.api import (
    PresetChanges,
    convert,
    crop_to_numpy,
    describe_warehouse,
    detect,
    inspect,
    load_preset,
    presets,
    read,
    validate,
)
from celltable.application.warehouse import WarehouseResult
from celltable.domain.errors import (
    BadSourceFilesError,
    BucketNotFoundError,
    CelltableError,
    CloudStorageError,
    ConfigurationError,
    DestinationError,
    DiskSpaceError,
    ExecutionError,
    ImageFileError,
    InvalidOptionError,
    InvalidPresetError,
    MissingExtraError,
    NoTablesFoundError,
    SchemaError,
    SourceNotFoundError,
    SourceReadError,
    UnknownPresetError,
    UnsafePickleError,
    UnsupportedSourceError,
    ValidationError,
    WarehouseError,
)
from celltable.domain.model import (
    ConversionOptions,
    ConversionResult,
    PlateRows,
    Progress,
    TableReport,
)
from celltable.domain.warehouse import IcebergOptions, ImageOptions, TableState

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
    "IcebergOptions",
    "ImageFileError",
    "ImageOptions",
    "InvalidOptionError",
    "InvalidPresetError",
    "MissingExtraError",
    "NoTablesFoundError",
    "PlateRows",
    "PresetChanges",
    "Progress",
    "SchemaError",
    "SourceNotFoundError",
    "SourceReadError",
    "TableReport",
    "TableState",
    "UnknownPresetError",
    "UnsafePickleError",
    "UnsupportedSourceError",
    "ValidationError",
    "WarehouseError",
    "WarehouseResult",
    "convert",
    "crop_to_numpy",
    "describe_warehouse",
    "detect",
    "inspect",
    "load_preset",
    "presets",
    "read",
    "validate",
]
