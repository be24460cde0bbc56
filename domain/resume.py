"""Resuming a killed conversion: what identifies a chunk's saved output, and when it may be reused.

With ``resume``, every chunk's output is saved as it is written (see the ``ChunkStore`` port). A
rerun reuses a saved chunk only when everything its rows depend on is unchanged: the preset, the
options that shape the output, the output's columns, the chunk's own images and the source files
(their size and modification time). Anything else changed means the chunk is computed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from celltable.domain.join import ChunkQuery
from celltable.domain.model import ConversionRequest
from celltable.domain.schema import Column

FORMAT = 1
"""Bumped whenever what a saved chunk holds changes meaning; older saves are then ignored."""


@dataclass(frozen=True, slots=True)
class SavedChunk:
    """What is known of a chunk saved by an earlier run: enough to check and reuse it.

    Attributes:
        key: The chunk's identity (:func:`chunk_key`): the run, table and chunk it belongs to.
        rows_out: Rows saved.
        rows_in, dropped, missing, null_objects: The chunk's counts for the report, as first
            computed.
        checksum: Digest of the saved bytes, checked before reuse.
    """

    key: str
    rows_out: int
    rows_in: int
    dropped: int
    missing: tuple[tuple[str, int], ...]
    checksum: str
    null_objects: int = 0


def run_identity(request: ConversionRequest, table: str, columns: Sequence[Column],
                 sources: Mapping[str, str]) -> str:
    """A digest of what every chunk of output ``table`` depends on, besides its own images.

    Args:
        request: The conversion (its preset and the options that shape rows and columns).
        table: The output table's name.
        columns: The output table's columns.
        sources: Each source file's path and version (size and modification time, or an
            equivalent the storage provides).
    """
    opts = request.options
    shape = {
        "format": FORMAT,
        "preset": asdict(request.preset),
        "join": opts.join,
        "join_sql": opts.join_sql,
        "float32": opts.float32,
        "table": table,
        "columns": [[c.name, c.type.value] for c in columns],
        "sources": sorted(sources.items()),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def chunk_key(run: str, query: ChunkQuery) -> str:
    """The identity of one chunk of a run: its plate, images and the query that reads them."""
    c = query.chunk
    text = json.dumps([run, c.plate, c.index, c.lower, c.upper, c.rows, repr(query)], default=str)
    return hashlib.sha256(text.encode()).hexdigest()
