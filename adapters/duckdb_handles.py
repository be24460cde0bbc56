"""The DuckDB engine's handles on staged plates (``StagedUnit.handle``): what a plate's staging
left for its chunks to read, typed, each owning the DuckDB connection its reads share.

* :class:`InPlace`: the plate is read from its source, in storage order; nothing was copied
  (a CSV plate's handle carries each table's sniffed read, so its streams, maybe in another
  process, read the files as checked, without sniffing again).
* :class:`StagedFile`: the plate was copied into a DuckDB file in the scratch folder. Its
  read-only connection is opened on the first read in each process and shared by the tasks
  there, each through its own cursor: opening the file and loading a catalogue of thousands of
  columns for every chunk would cost more than the chunk's query.
* :class:`StagedMemory`: the plate was copied into a database in this process's memory, which
  only tasks in this process can read.

The conversion controls their lifetime: :meth:`DuckDBEngine.release` closes a handle (its
connection, and a staged file's bytes). A handle pickles without its connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celltable.domain.errors import ExecutionError

if TYPE_CHECKING:  # the main process of a run by plate tasks unpickles handles without DuckDB
    import duckdb

Connect = Callable[..., "duckdb.DuckDBPyConnection"]
"""The engine's ``connect(database, read_only=...)``."""


@dataclass(frozen=True, slots=True)
class InPlace:
    """A plate read in place from its source files; ``reads``: ``(table, FROM expression)`` of
    a CSV plate's tables, as sniffed when the plate was checked."""

    reads: tuple[tuple[str, str], ...] = ()

    def read(self, table: str) -> str:
        """The FROM expression reading ``table``."""
        return dict(self.reads)[table]

    def exists(self) -> bool:
        return True  # the source's files are checked by whoever reads them

    def cursor(self, connect: Connect) -> duckdb.DuckDBPyConnection:
        raise ExecutionError("a plate read in place has no staged tables to query; stage a copy")

    def close(self) -> None:
        """Nothing to release: the files are the user's source, never touched."""


class _Owned:
    """A connection owned by a handle, shared by the threads reading through it."""

    __slots__ = ("_con", "_lock")

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self._con = con
        self._lock = threading.Lock()

    def _cursor(self, open_con: Callable[[], duckdb.DuckDBPyConnection]) -> duckdb.DuckDBPyConnection:
        """A cursor on the connection, opened by ``open_con`` when there is none."""
        with self._lock:
            if self._con is None:
                self._con = open_con()
            return self._con.cursor()

    def close(self) -> None:
        """Close the connection (a later read opens another, or fails)."""
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            con.close()


class StagedFile(_Owned):
    """A plate copied into the DuckDB file at ``path``."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def exists(self) -> bool:
        return Path(self.path).exists()

    def cursor(self, connect: Connect) -> duckdb.DuckDBPyConnection:
        """A cursor on the connection the tasks of this process share (opened read-only on
        first use)."""
        return self._cursor(lambda: connect(self.path, read_only=True))

    def close(self) -> None:
        """Close the connection and delete the file."""
        super().close()
        Path(self.path).unlink(missing_ok=True)
        Path(self.path + ".wal").unlink(missing_ok=True)

    def __reduce__(self) -> tuple[Any, ...]:
        return StagedFile, (self.path,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StagedFile) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"StagedFile({self.path!r})"


class StagedMemory(_Owned):
    """A plate copied into the in-memory database ``con`` of this process, which it owns
    (closing it frees its memory)."""

    __slots__ = ("name",)

    def __init__(self, name: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
        super().__init__(con)
        self.name = name

    def exists(self) -> bool:
        return self._con is not None

    def cursor(self, connect: Connect) -> duckdb.DuckDBPyConnection:
        return self._cursor(self._lost)

    def _lost(self) -> duckdb.DuckDBPyConnection:
        raise ExecutionError(
            "a plate staged in memory was read from another process (or after it was "
            "released); run with in_memory staging off for process executors"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return StagedMemory, (self.name,)  # another process cannot read this one's memory

    def __repr__(self) -> str:
        return f"StagedMemory({self.name!r})"
