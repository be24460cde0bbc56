"""Saved chunks of a resumable conversion, as Arrow IPC files on local disk.

Each chunk is one IPC file (LZ4-compressed: cheap to write and read back, the Parquet encoding is
done once, into the output) and one small JSON record written after the data is on disk. A record
is the proof of a complete save: a process killed while saving leaves at most a temporary file,
never a record, and a record whose file no longer matches its checksum is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import structlog

from celltable.adapters.storage import file_versions
from celltable.domain.errors import DestinationError
from celltable.domain.resume import SavedChunk
from celltable.domain.sources import ChunkOutput

log = structlog.get_logger("celltable.resume")

_BLOCK = 4 * 2**20


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _durably(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``final`` (atomic on one filesystem)."""
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(final)


class LocalChunkStore:
    """Implements :class:`celltable.domain.ports.ChunkStore` in a local folder; ``memory_map``:
    saved chunks are read back through memory maps (``CELLTABLE_ARROW_USE_MEMORY_MAPPING``)."""

    def __init__(self, folder: str, memory_map: bool = True) -> None:
        self._folder = Path(folder)
        self.memory_map = memory_map

    def versions(self, paths: Sequence[str]) -> dict[str, str]:
        return file_versions(paths)

    def saved(self, key: str) -> SavedChunk | None:
        record, data = self._folder / f"{key}.json", self._folder / f"{key}.arrow"
        try:
            fields = json.loads(record.read_text())
            saved = SavedChunk(key, fields["rows_out"], fields["rows_in"], fields["dropped"],
                               tuple((str(r), int(n)) for r, n in fields["missing"]),
                               fields["checksum"], int(fields.get("null_objects", 0)))
            ok = data.stat().st_size == fields["bytes"] and _digest(data) == saved.checksum
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("saved_chunk_unreadable", chunk=key, error=str(e))
            ok = False
        if not ok:
            log.warning("saved_chunk_damaged", chunk=key, consequence="converted again")
            record.unlink(missing_ok=True)
            data.unlink(missing_ok=True)
            return None
        return saved

    def save(self, key: str, output: ChunkOutput) -> None:
        table = output.data
        assert isinstance(table, pa.Table), type(table)
        data = self._folder / f"{key}.arrow"
        tmp = data.with_suffix(".arrow.tmp")
        try:
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            with pa.OSFile(str(tmp), "wb") as sink, \
                    pa.ipc.new_file(sink, table.schema, options=options) as writer:
                writer.write_table(table)
            _durably(tmp, data)
            fields = {
                "rows_out": output.rows_out,
                "rows_in": output.rows_in,
                "dropped": output.dropped,
                "missing": [list(m) for m in output.missing],
                "null_objects": output.null_objects,
                "checksum": _digest(data),
                "bytes": data.stat().st_size,
            }
            tmp_record = self._folder / f"{key}.json.tmp"
            tmp_record.write_text(json.dumps(fields))
            _durably(tmp_record, self._folder / f"{key}.json")
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DestinationError(
                f"cannot save a finished chunk for resuming in {self._folder}: "
                f"{e.strerror or e}; free space there or run without --resume"
            ) from e

    def load(self, saved: SavedChunk) -> pa.Table:
        # Compressed buffers are decompressed into memory either way; the setting decides how
        # the file's bytes are read (mapped, or read into buffers).
        path = str(self._folder / f"{saved.key}.arrow")
        opened = pa.memory_map(path) if self.memory_map else pa.OSFile(path)
        with opened as source, pa.ipc.open_file(source) as reader:
            return reader.read_all()
