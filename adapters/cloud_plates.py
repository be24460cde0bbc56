"""Cloud plates as units of distributed work, listed by the main process without downloading
(``cloud_locator.py`` :func:`listed_plates`), downloaded by the worker converting each into its
own cache; and outputs staged in the object store itself, then copied into place (server-side)
at publishing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import structlog
from cloudpathlib import CloudPath

from celltable.adapters.cloud_clients import CloudClients
from celltable.adapters.cloud_locator import CloudSourceLocator
from celltable.adapters.source_formats import reader
from celltable.domain.presets import Preset
from celltable.domain.sources import Plate

log = structlog.get_logger("celltable.cloud")


def fetch_plate(clients: CloudClients, cache_dir: str, plate: Plate,
                preset: Preset) -> tuple[Plate, ...]:
    """``plate``'s plate(s) with their files downloaded into ``cache_dir`` (reused when cached
    and current); a SQLite file holding no table of the preset gives none."""
    locator = CloudSourceLocator(clients, cache_dir)
    if not plate.tables:  # a file listed without its tables (see listed_plates)
        local = next(iter(locator._fetch([clients.path(plate.path)], plate.path).values()))
        plates = reader(plate.format).plates_of_file(plate.key, str(local), preset)
        if not plates:
            log.warning("file_skipped", file=plate.path, reason=f"holds no table of {preset.name}")
        return plates
    remote = [clients.path(t.path) for t in plate.tables]
    local = locator._fetch(remote, plate.path)
    return (replace(plate, path=str(locator._local_path(clients.path(plate.path))),
                    tables=tuple(replace(t, path=str(local[t.path])) for t in plate.tables)),)


def publish_remote(staged: CloudPath, dest: CloudPath, replaces_folder: bool) -> None:
    """Copy an output staged in the store to ``dest`` (copies made by the store, no byte
    passes through this process, several at once: a Zarr store is hundreds of objects); files
    of a replaced folder that the new one lacks are then deleted."""
    if staged.is_file():  # a one-file output
        staged.copy(dest, force_overwrite_to_cloud=True)
        log.info("published", file=str(dest))
        return
    files = sorted(objects(staged), key=str)
    names = {f.relative_to(staged).as_posix() for f in files}
    old = ({f.relative_to(dest).as_posix(): f for f in objects(dest)}
           if replaces_folder else {})

    def copy(f: CloudPath) -> None:
        target = dest / f.relative_to(staged).as_posix()
        f.copy(target, force_overwrite_to_cloud=True)
        log.info("published", file=str(target))

    at_once(copy, files)
    at_once(lambda f: f.unlink(missing_ok=True),
            [f for name, f in old.items() if name not in names])


def remove_remote(prefix: CloudPath) -> None:
    """Delete what was staged under ``prefix`` (after publishing, or after a failure)."""
    at_once(lambda f: f.unlink(missing_ok=True), objects(prefix))


def objects(prefix: CloudPath) -> list[CloudPath]:
    """Every object under ``prefix``, from one recursive listing (none when there is none)."""
    return [folder / name for folder, _, names in prefix.walk() for name in names]


CONCURRENT_REQUESTS = 16
"""Object-store requests made at once when many small objects are copied, sent or deleted."""


def at_once(work: Callable[[Any], object], paths: Sequence[Any]) -> None:
    """``work`` on each path, :data:`CONCURRENT_REQUESTS` at a time (each is a request or two
    waiting on the network); the first failure is raised once all have finished."""
    if len(paths) < 2:
        for p in paths:
            work(p)
        return
    with ThreadPoolExecutor(min(CONCURRENT_REQUESTS, len(paths))) as pool:
        for _ in pool.map(work, paths):
            pass
