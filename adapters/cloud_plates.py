"""Cloud plates as units of distributed work, listed by the main process without downloading
(``cloud_locator.py`` :func:`listed_plates`), downloaded by the worker converting each into its
own cache; and outputs staged in the object store itself, then copied into place (server-side)
at publishing."""

from __future__ import annotations

from dataclasses import replace

import structlog
from cloudpathlib import CloudPath

from celltable.adapters.cloud_clients import CloudClients
from celltable.adapters.cloud_locator import CloudSourceLocator
from celltable.adapters.source_formats import reader
from celltable.domain.presets import Preset
from celltable.domain.sources import SourceUnit

log = structlog.get_logger("celltable.cloud")


def fetch_plate(clients: CloudClients, cache_dir: str, unit: SourceUnit,
                preset: Preset) -> tuple[SourceUnit, ...]:
    """``unit``'s plate(s) with their files downloaded into ``cache_dir`` (reused when cached
    and current); a SQLite file holding no table of the preset gives none."""
    locator = CloudSourceLocator(clients, cache_dir)
    if not unit.tables:  # a file listed without its tables (see listed_plates)
        local = next(iter(locator._fetch([clients.path(unit.path)], unit.path).values()))
        plates = reader(unit.format).plates_of_file(unit.key, str(local), preset)
        if not plates:
            log.warning("file_skipped", file=unit.path, reason=f"holds no table of {preset.name}")
        return plates
    remote = [clients.path(t.path) for t in unit.tables]
    local = locator._fetch(remote, unit.path)
    return (replace(unit, path=str(locator._local_path(clients.path(unit.path))),
                    tables=tuple(replace(t, path=str(local[t.path])) for t in unit.tables)),)


def publish_remote(staged: CloudPath, dest: CloudPath, replaces_folder: bool) -> None:
    """Copy a folder output staged in the store to ``dest`` (copies made by the store, no byte
    passes through this process); files of a replaced folder that the new one lacks are then
    deleted."""
    files = sorted((f for f in staged.rglob("*") if f.is_file()), key=str)
    names = {f.relative_to(staged).as_posix() for f in files}
    old = ({f.relative_to(dest).as_posix(): f for f in dest.rglob("*") if f.is_file()}
           if replaces_folder else {})
    for f in files:
        target = dest / f.relative_to(staged).as_posix()
        f.copy(target, force_overwrite_to_cloud=True)
        log.info("published", file=str(target))
    for name, f in old.items():
        if name not in names:
            f.unlink(missing_ok=True)


def remove_remote(prefix: CloudPath) -> None:
    """Delete what was staged under ``prefix`` (after publishing, or after a failure)."""
    for f in list(prefix.rglob("*")):
        if f.is_file():
            f.unlink(missing_ok=True)

