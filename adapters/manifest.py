"""Many sources as one: a manifest file (or a list) naming plates wherever they are.

A manifest is a text file with one source per line: a SQLite file, a folder of CSVs, or a folder
of plates, local or ``s3://``, ``gs://``, ``az://``. Blank lines and lines starting with ``#`` are
ignored; relative paths are relative to the manifest's folder. Each source is found by the locator
of its scheme; its plates are named by their path relative to the deepest folder all sources
share, as plates under one source folder are.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from celltable.adapters.safe_paths import resolved
from celltable.domain.errors import NoTablesFoundError, SourceNotFoundError, SourceReadError
from celltable.domain.ports import SourceLocator
from celltable.domain.presets import Preset
from celltable.domain.sources import SourceLayout

MANIFEST_SUFFIXES = (".txt",)


def is_manifest(path: str) -> bool:
    """Whether ``path`` is a local manifest file (``.txt``)."""
    return "://" not in path and path.lower().endswith(MANIFEST_SUFFIXES) and Path(path).is_file()


def read_manifest(path: str) -> tuple[str, ...]:
    """The sources a manifest lists, relative paths made absolute from its folder.

    Raises:
        SourceNotFoundError: The manifest cannot be read.
        SourceReadError: It lists nothing, or lists a source twice.
    """
    manifest = Path(path).expanduser().absolute()
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceNotFoundError(f"cannot read the manifest {manifest}: {e}") from e
    entries = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "://" not in entry:
            entry = str((manifest.parent / Path(entry).expanduser()).absolute())
        entries.append(entry)
    if not entries:
        raise SourceReadError(
            f"the manifest {manifest} lists no sources; write one path (file or folder) per line"
        )
    return check_entries(entries, str(manifest))


def check_entries(entries: Sequence[str], where: str) -> tuple[str, ...]:
    """``entries``, unless two name the same place: compared resolved (symlinks followed,
    ``..`` removed), so a plate listed under two spellings is not converted twice.

    Raises:
        SourceReadError: Two entries resolve to the same source.
    """
    seen: dict[str, str] = {}
    for e in entries:
        key = resolved(e)
        if key in seen:
            if seen[key].rstrip("/") == e.rstrip("/"):
                raise SourceReadError(f"{where} lists {e} twice; list each source once")
            raise SourceReadError(f"{where} lists one source twice: {seen[key]} and {e} are "
                                  f"both {key}; list each source once")
        seen[key] = e
    return tuple(entries)


def _label(entries: Sequence[str]) -> dict[str, str]:
    """Each entry's name: its path relative to the deepest folder all entries share (its own
    name when there is one entry, or when they share nothing)."""
    split = {e: e.rstrip("/").split("/") for e in entries}
    common = posixpath.commonprefix(list(split.values())) if len(entries) > 1 else []
    # keep at least the last part of each path
    depth = min([len(common), *(len(p) - 1 for p in split.values())])
    return {e: "/".join(p[depth:]) for e, p in split.items()}


class ManifestLocator:
    """Implements :class:`celltable.domain.ports.SourceLocator` over several sources."""

    def __init__(self, entries: Sequence[str], locator_for: Callable[[str], SourceLocator],
                 where: str) -> None:
        self._entries = tuple(entries)
        self._locator_for = locator_for
        self._where = where

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        labels = _label(self._entries)
        plates, skipped, reasons, bad = [], [], [], []
        for entry in self._entries:
            try:
                layout = self._locator_for(entry).discover(entry, preset)
            except NoTablesFoundError as e:
                raise NoTablesFoundError(f"{e} (listed in {self._where})") from e
            except SourceNotFoundError as e:
                raise SourceNotFoundError(f"{e} (listed in {self._where})") from e
            bad.extend(layout.bad)
            own = len(layout.plates) == 1 and layout.plates[0].key == _name(entry)
            for u in layout.plates:
                key = labels[entry] if own else f"{labels[entry]}/{u.key}"
                plates.append(replace(u, key=key))
            for f in layout.skipped_files():
                skipped.append(f.path)
                reasons.append(f.reason)
        keys = [u.key for u in plates]
        if len(set(keys)) != len(keys):
            raise SourceReadError(f"{self._where} lists plates more than once; list each once")
        return SourceLayout(self._where, tuple(plates), tuple(skipped), tuple(reasons),
                            roots=self._entries, bad=tuple(bad))


def _name(entry: str) -> str:
    return entry.rstrip("/").rsplit("/", 1)[-1]
