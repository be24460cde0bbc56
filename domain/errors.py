"""The errors celltable raises. Every message says what to do next."""

from __future__ import annotations


class CelltableError(Exception):
    """Root of every error celltable raises on purpose."""


class SourceNotFoundError(CelltableError):
    """The source path does not exist."""


class NoTablesFoundError(CelltableError):
    """The source exists but holds none of the tables the preset names."""


class UnknownPresetError(CelltableError):
    """The preset name is not one celltable knows."""


class InvalidPresetError(CelltableError):
    """A preset (built in or given by the user) contradicts itself."""


class SourceReadError(CelltableError):
    """A source file could not be read (corrupt SQLite, unreadable CSV ...)."""


class SourceChangedError(SourceReadError):
    """A source file changed while it was converted (its size or modification time, or the rows
    read differ from the rows counted at the start): the output would mix two versions."""


class UnsafePickleError(SourceReadError):
    """A pickled object in a source (DeepProfiler's ``metadata.npy``) asks for more than plain
    values: it is refused unread, and nothing it names runs."""


class BadSourceFilesError(SourceReadError):
    """Files of a source cannot be read (empty, cut short, corrupt ...): every one is named, one
    line each, before any data moves; ``--skip-bad-files`` converts the rest."""

    def __init__(self, message: str, files: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.files = files
        """``(path, reason)`` of every bad file."""


class SchemaError(CelltableError):
    """A table lacks a column the preset needs (a key column, a parent reference ...)."""


class NotWholeKeyError(SchemaError):
    """A key column (image number, object number, parent reference) holds a value that is not a
    whole number, which a join would round to another object's key."""


class DestinationError(CelltableError):
    """The destination cannot be written (it exists, or it lies inside the source ...)."""


class ExecutionError(CelltableError):
    """A task of the conversion failed; the message names the plate and chunk."""


class InPlaceReadFailed(CelltableError):
    """A plate read in place holds values unlike their declared types; the conversion redoes it
    from a copy (raised and handled inside a conversion)."""

    def __init__(self, plate: str, reason: str) -> None:
        super().__init__(f"plate {plate!r} cannot be read in place: {reason}")
        self.plate = plate
        self.reason = reason


class PlateFailedError(CelltableError):
    """A plate failed on its own data in a plate task (a worker process, maybe elsewhere); the
    message names the plate and its file. Not retried: it would fail again."""

    def __init__(self, plate: str, path: str, reason: str) -> None:
        super().__init__(f"plate {plate!r} ({path}) failed: {reason}")
        self.plate, self.path, self.reason = plate, path, reason

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:  # it travels back from workers
        return (type(self), (self.plate, self.path, self.reason))


class CloudStorageError(CelltableError):
    """Object storage (``s3://``, ``gs://``, ``az://``) refused or failed a request: no
    credentials, access denied, endpoint unreachable ..."""


class BucketNotFoundError(CloudStorageError):
    """The bucket (or container) of a cloud path does not exist."""


class DiskSpaceError(CelltableError):
    """Too little free disk space for a download; the message says how much is needed where."""


class ConfigurationError(CelltableError):
    """A setting or configuration file is invalid (a Parsl configuration file that does not load
    or defines no ``config`` ...)."""


class InvalidOptionError(ConfigurationError, ValueError):
    """An option has a value it cannot take (``chunk_size=0``, an unknown executor ...); a
    ``ValueError`` too, as Python callers expect of a bad argument."""


class UnsupportedSourceError(CelltableError):
    """The source is a kind celltable recognises but cannot convert yet (DeepProfiler, IN Carta)."""


class ValidationError(CelltableError):
    """An output cannot be validated: it is not celltable's, or its records are unreadable."""


class OutputFormatError(InvalidOptionError):
    """The output format cannot be chosen: an unknown name, a DEST suffix naming no format, a
    suffix contradicting the format asked for, or an option the format cannot honour."""


class MissingExtraError(ConfigurationError):
    """An output format needs an optional dependency that is not installed; the message names
    the extra to install."""


class ImageFileError(SourceReadError):
    """An image file a row names is missing, ambiguous (several files could be it) or
    unreadable; ``--skip-bad-files`` leaves its crops out and reports it instead."""


class WarehouseError(DestinationError):
    """An Iceberg warehouse refuses the conversion (plates already in it, not a warehouse, its
    catalog failed); the warehouse is left as it was."""
