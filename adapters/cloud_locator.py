"""Cloud sources: listed in the cloud, matched to the preset's tables by the same code as local
ones (:func:`celltable.adapters.source_tree.match_plates`), and the files a conversion needs
downloaded into a cache folder, so the query engine reads local files only."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from cloudpathlib import CloudPath

from celltable.adapters.cloud_clients import CloudClients, cloud_errors
from celltable.adapters.file_checks import plate_problems
from celltable.adapters.source_formats import reader
from celltable.adapters.source_tree import match_plates
from celltable.domain.errors import (
    DiskSpaceError,
    NoTablesFoundError,
    SourceNotFoundError,
    SourceReadError,
)
from celltable.domain.model import DOWNLOADING, Progress
from celltable.domain.ports import ProgressListener
from celltable.domain.presets import Preset
from celltable.domain.sources import Plate, SourceLayout, SourceTree

log = structlog.get_logger("celltable.cloud")


def _size(n: float) -> str:
    for plate in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or plate == "TB":
            return f"{n:.0f} {plate}" if plate == "B" else f"{n:.1f} {plate}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _Remote:
    """A cloud file to have locally: its size and modification time decide if a cached copy
    is current."""

    path: CloudPath
    size: int
    mtime: float
    local: Path

    def cached(self) -> bool:
        try:
            st = self.local.stat()
        except OSError:
            return False
        return st.st_size == self.size and int(st.st_mtime) == int(self.mtime)


def listed_plates(tree: SourceTree, preset: Preset,
                  at: Callable[[str], CloudPath]) -> SourceLayout:
    """The plates of a listed cloud source, their files left in the cloud. A file whose tables
    are known only once it is read (SQLite) is listed as one plate without tables, completed by
    ``cloud_plates.py`` :func:`fetch_plate` where it is downloaded."""
    fmt = reader(preset.source_format)
    listed = fmt.listed_files(tree)
    if listed is None:
        return match_plates(tree, preset, lambda rel: str(at(rel)))
    plates = tuple(Plate(tree.key(rel), fmt.format, str(at(rel)), ()) for rel in listed)
    if not plates:
        raise NoTablesFoundError(
            f"no {fmt.label} file ({', '.join(fmt.suffixes)}) under {tree.location}")
    return SourceLayout(tree.location, plates)


class CloudSourceLocator:
    """Implements :class:`celltable.domain.ports.SourceLocator` for cloud sources.

    Lists the source, matches plates like the local locator, downloads the files the plates need
    into ``cache_dir`` (``<scheme>/<bucket>/<key>``), and returns plates pointing at the local
    copies. A copy already there is reused when its size and modification time match the
    object's; the cache is kept for the next run.

    Args:
        clients: The clients for cloud paths.
        cache_dir: The download folder; put it on disk (not a RAM-backed temporary folder), and on
            a filesystem every worker sees when workers run on other machines.
        reserve_bytes: Free space to keep on the cache's disk after the downloads.
    """

    def __init__(self, clients: CloudClients, cache_dir: str, reserve_bytes: int = 256 * 2**20,
                 progress: ProgressListener | None = None, lazy: bool = False) -> None:
        self._lazy = lazy  # list only: each plate is downloaded by the worker converting it
        self._clients = clients
        self._cache_dir = Path(cache_dir).expanduser().absolute()
        self._reserve = reserve_bytes
        self._progress = progress  # told after each file downloaded (stage "downloading")
        self._trees: dict[str, SourceTree] = {}  # each source listed once for the locator's life

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        root = self._clients.path(source_path)
        where = str(root)
        with cloud_errors(where):
            tree = self._trees.get(where)
            if tree is None:
                tree = self._trees[where] = self._tree(root)

            def at(rel: str) -> CloudPath:
                return root / rel if rel else root

            if self._lazy:
                return listed_plates(tree, preset, at)
            listed = reader(preset.source_format).listed_files(tree)
            if listed is not None:  # files read to find their tables: downloaded first
                files = {rel: at(rel) for rel in listed}
                local = self._fetch(list(files.values()), where)
                return match_plates(tree, preset, lambda rel: str(at(rel)),
                                   lambda rel: str(local[str(files[rel])]))
            layout = match_plates(tree, preset, lambda rel: str(at(rel)))
            remote = [root.client.CloudPath(t.path) for u in layout.plates for t in u.tables]
            local = self._fetch(remote, where)
            plates = tuple(
                replace(u, path=str(self._local_path(root.client.CloudPath(u.path))),
                        tables=tuple(replace(t, path=str(local[t.path])) for t in u.tables))
                for u in layout.plates
            )
            return replace(layout, plates=plates, bad=layout.bad + plate_problems(plates))

    @staticmethod
    def _tree(root: CloudPath) -> SourceTree:
        name = root.name or root.drive
        if root.is_file():
            return SourceTree(str(root), name, True)
        if not root.is_dir():
            raise SourceNotFoundError(
                f"nothing at {root}: no object with that key and none under it as a folder; "
                "check the path (keys are case-sensitive)"
            )
        listing = []
        for folder, _, files in root.walk():
            rel = folder.relative_to(root).as_posix()
            listing.append(("" if rel == "." else rel, files))
        return SourceTree.of(str(root), name, listing)

    def _local_path(self, path: CloudPath) -> Path:
        scheme = path.cloud_prefix.rstrip(":/")
        parts = str(path)[len(path.cloud_prefix):].strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise SourceReadError(
                f"{path} has an empty, '.' or '..' part in its key, which cannot be cached safely; "
                "copy it under a plain key"
            )
        return self._cache_dir.joinpath(scheme, *parts)

    def _fetch(self, paths: list[CloudPath], where: str) -> dict[str, Path]:
        """Local copies of ``paths`` (by URI), downloading those not cached yet."""
        remotes = []
        for p in paths:
            st = p.stat()
            remotes.append(_Remote(p, st.st_size, st.st_mtime, self._local_path(p)))
        missing = [r for r in remotes if not r.cached()]
        needed = sum(r.size for r in missing)
        log.info("downloads_planned", source=where, files=len(remotes), cached=len(remotes) - len(missing),
                 bytes=needed, cache=str(self._cache_dir))
        if missing:
            self._check_space(needed, len(missing), where)
        started, done = time.perf_counter(), 0
        for i, r in enumerate(missing, 1):
            self._download(r, i, len(missing))
            done += r.size
            if self._progress is not None:
                self._progress(Progress(DOWNLOADING, i, len(missing), done, needed,
                                        time.perf_counter() - started))
        return {str(r.path): r.local for r in remotes}

    def _check_space(self, needed: int, files: int, where: str) -> None:
        folder = self._cache_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        if needed + self._reserve > free:
            raise DiskSpaceError(
                f"downloading {files} file(s) of {where} needs {_size(needed)} in {self._cache_dir}, "
                f"but only {_size(free)} is free there (keeping {_size(self._reserve)} spare); free "
                "some space, or choose a larger disk with --local-cache-dir"
            )

    @staticmethod
    def _download(r: _Remote, index: int, total: int) -> None:
        r.local.parent.mkdir(parents=True, exist_ok=True)
        part = r.local.with_name(f".{r.local.name}.part-{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        log.info("download_started", file=str(r.path), bytes=r.size, n=index, of=total)
        try:
            r.path.download_to(part)
            got = part.stat().st_size
            if got != r.size:
                raise SourceReadError(
                    f"downloaded {got} of {r.size} bytes of {r.path}; it may have changed while "
                    "being read: run again"
                )
            os.utime(part, (r.mtime, r.mtime))
            part.replace(r.local)  # atomic: a half-written copy is never taken for a cached one
        finally:
            part.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        log.info("download_done", file=str(r.path), bytes=r.size, seconds=round(seconds, 3),
                 mb_per_s=round(r.size / 2**20 / max(seconds, 1e-6), 1))
