"""The ports of the output formats: how an output table is written (:class:`TableWriter`
creates a :class:`TableSink`) and how one written earlier is read back to validate it
(:class:`OutputReader`). Re-exported by :mod:`celltable.domain.ports`; the formats are listed in
:mod:`celltable.adapters.formats`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from celltable.domain.schema import Column
from celltable.domain.validation import OutputScan


class TableSink(Protocol):
    """An output table being written in one output format, complete only once closed (a
    format may create its file at once: the destination's staging keeps it out of sight)."""

    def write(self, data: object) -> None:
        """Add rows: an Arrow table with the columns the sink was created with."""
        ...

    def close(self, metadata: Mapping[str, str]) -> int:
        """Finish the file, record ``metadata`` with it, and return the rows it holds."""
        ...


class TableWriter(Protocol):
    """Creates output tables of one output format (its suffix, and whether a table is a file
    or a folder: :class:`celltable.domain.formats.OutputFormat`). Writers are listed in
    :mod:`celltable.adapters.formats`, which builds one in any process (a worker writing one
    partition file too)."""

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> TableSink:
        """A new table at ``path`` with the output plan's ``columns``, each carrying its role
        (key, metadata, image, feature) and compartment; ``rows`` (0: unknown) is how many it
        is expected to hold, which a writer may use to size its row groups."""
        ...

    def columns_of(self, data: object) -> Sequence[Column]:
        """The columns of a table produced by an engine (used for user SQL output)."""
        ...

    def seal(self, folder: str) -> None:
        """Record the files written under ``folder`` (a folder output) in a manifest there, so
        validation finds a file missing, added or swapped."""
        ...


class OutputReader(Protocol):
    """Re-reads outputs celltable wrote, to validate them."""

    def tables(self, dest_path: str) -> tuple[str, ...]:
        """The files of an output: itself, or the table files of a ``join=False`` folder.

        Raises:
            SourceNotFoundError: Nothing exists at ``dest_path``.
        """
        ...

    def scan(self, path: str, key_columns: Sequence[str] | None,
             group_rows: Sequence[int] | None = None) -> OutputScan:
        """The file's footer, columns and metadata; with ``key_columns`` (None: skip), also
        the checksum recomputed from every row, and with ``group_rows`` (rows per row group,
        as recorded) the digests of every column per row group; the rows are read once, in
        bounded memory.

        Raises:
            SourceReadError: The file is not a readable table.
        """
        ...

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        """For a folder output: its manifest's text (None if absent) and each table file found
        (relative path) with its fingerprint
        (:func:`celltable.domain.validation.file_fingerprint`); None for a one-file output."""
        ...
