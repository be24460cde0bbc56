"""The listing of a local source (:func:`_walk`) and the matching of its files to a preset's
tables (:func:`match_plates`, each format's own matching in its module, see
``adapters/source_formats.py``), shared by the local and the cloud locators
(``adapters/cloud_locator.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from celltable.adapters.source_formats import reader
from celltable.domain.errors import NoTablesFoundError
from celltable.domain.presets import Preset
from celltable.domain.sources import SourceLayout, SourceTree


def _walk(root: Path) -> SourceTree:
    """The tree under a local folder. Links to folders are followed (workflow managers stage
    plates as links), each folder read once: a link reaching a folder already read (a loop, or
    a second name for a plate) is passed over and listed with the skipped files, so no plate
    is read twice. Real folders are walked before links beside them, so a plate keeps its own
    name rather than a link's."""
    found, passed, seen = [], [], {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            passed.append((rel, f"a link to {real}, read already as "
                                f"{seen[real] or 'the source itself'}"))
            continue
        seen[real] = rel
        dirnames.sort(key=lambda d: ((Path(dirpath) / d).is_symlink(), d))
        found.append((rel, filenames))
    return SourceTree.of(str(root), root.name, found, passed)


def match_plates(
    tree: SourceTree,
    preset: Preset,
    where: Callable[[str], str],
    local: Callable[[str], str] | None = None,
    state: Callable[[str], str | None] | None = None,
) -> SourceLayout:
    """The plates of ``tree`` holding tables of ``preset``.

    Args:
        tree: The listed source.
        preset: Whose tables to match (by exact name, ignoring case).
        where: The location of a relative path, as the plates should name it.
        local: The local file of a relative path, for formats whose files are read to find
            their tables (SQLite; default: ``where``).
        state: What is odd about the file at a relative path (``"empty file"``), when that is
            cheap to tell; added to the reason a file is skipped.

    Raises:
        NoTablesFoundError: Nothing matches the preset's tables, and no file is bad.
        SourceReadError: A folder holds a table twice.

    Files a format's reader cannot read while finding tables (SQLite files cut short, not a
    database) are listed in the layout's ``bad``, not raised.
    """
    found = reader(preset.source_format).find(tree, preset, where, local or where)
    plates, skipped, bad = found.plates, list(found.skipped), found.bad
    if not plates and not bad:
        raise NoTablesFoundError(reader(preset.source_format).nothing_found(
            tree, preset, [p for p, _ in skipped]))
    skipped = [*skipped, *((where(rel), why) for rel, why in tree.passed)]
    reasons = []
    for path, why in skipped:
        odd = state(_rel(tree, path)) if state is not None else None
        reasons.append(f"{odd}; {why}" if odd else why)
    return SourceLayout(tree.location, tuple(plates), tuple(p for p, _ in skipped),
                        tuple(reasons), bad=tuple(bad))


def _rel(tree: SourceTree, path: str) -> str:
    """The relative path of a location ``where`` gave (``""``: the source itself)."""
    root = tree.location.rstrip("/")
    return path[len(root):].lstrip("/") if path.startswith(root) else path


def nothing_found(tree: SourceTree, preset: Preset, hint: str = "") -> str:
    """The message saying ``tree`` holds no table of ``preset``, with a format's ``hint``."""
    wanted = ", ".join((preset.image_table, *(c.table for c in preset.compartments)))
    return (
        f"no tables of preset {preset.name!r} ({wanted}) found in {tree.location}{hint}; "
        "`celltable presets` lists the layouts celltable knows"
    )
