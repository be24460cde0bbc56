"""Validating outputs in object storage: each file of the output is downloaded into the cache
(reused while its size and modification time match), then read as a local file is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cloudpathlib import CloudPath

from celltable.adapters.cloud_clients import CloudClients, cloud_errors
from celltable.adapters.parquet_checks import fingerprint_of
from celltable.domain.errors import SourceNotFoundError, SourceReadError
from celltable.domain.ports import OutputReader
from celltable.domain.validation import MANIFEST_NAME, OutputScan


class CloudOutputReader:
    """Implements :class:`celltable.domain.ports.OutputReader` for ``s3://``, ``gs://`` and
    ``az://`` outputs."""

    def __init__(self, clients: CloudClients, cache_dir: str, local: OutputReader) -> None:
        self._clients = clients
        self._cache = Path(cache_dir).expanduser().absolute() / "validate"
        self._local = local

    def tables(self, dest_path: str) -> tuple[str, ...]:
        root = self._clients.path(dest_path)
        with cloud_errors(str(root)):
            if root.is_file():
                return (str(root),)
            if not root.is_dir():
                raise SourceNotFoundError(f"nothing at {root}; give the file (or --no-join "
                                          "folder) that celltable convert wrote")
            files = tuple(sorted(str(p) for p in root.rglob("*.parquet")))
        if not files:
            raise SourceReadError(f"{root} is a folder without Parquet files; give the file (or "
                                  "--no-join folder) that celltable convert wrote")
        return files

    def scan(self, path: str, key_columns: Sequence[str] | None,
             group_rows: Sequence[int] | None = None) -> OutputScan:
        local = self._local_copy(self._clients.path(path))
        return replace(self._local.scan(str(local), key_columns, group_rows), path=path)

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        root = self._clients.path(dest_path)
        with cloud_errors(str(root)):
            if not root.is_dir():
                return None
            manifest_path = root / MANIFEST_NAME
            manifest = manifest_path.read_text() if manifest_path.is_file() else None
            files = sorted(root.rglob("*.parquet"), key=str)
        return manifest, {p.relative_to(root).as_posix(): fingerprint_of(self._local_copy(p))
                          for p in files}

    def _local_copy(self, remote: CloudPath) -> Path:
        parts = str(remote)[len(remote.cloud_prefix):].strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise SourceReadError(f"{remote} has an empty, '.' or '..' part in its key; copy it "
                                  "under a plain key")
        local = self._cache.joinpath(remote.cloud_prefix.rstrip(":/"), *parts)
        with cloud_errors(str(remote)):
            st = remote.stat()
            if not (local.exists() and local.stat().st_size == st.st_size
                    and local.stat().st_mtime >= st.st_mtime):
                local.parent.mkdir(parents=True, exist_ok=True)
                remote.download_to(local)
        return local
