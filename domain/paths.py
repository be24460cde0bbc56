"""The path-safety rule: no option may write over a source.

One pure function over paths already resolved by the storage adapters (absolute, ``..``
removed, symlinks followed for local paths; cloud URIs as given): the adapters resolve, this
decides. Every path a conversion writes (DEST, the run report, the staging, cache and resume
folders) goes through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from celltable.domain.errors import DestinationError


@dataclass(frozen=True, slots=True)
class WrittenPath:
    """A path a conversion writes or removes, resolved.

    Attributes:
        option: How the user names it (``"destination"``, ``"--report"``, ``"--staging-dir"``
            ...), for the message.
        path: The resolved path (absolute POSIX path or cloud URI).
        given: The path as the user gave it, for the message.
    """

    option: str
    path: str
    given: str = ""

    def shown(self) -> str:
        return self.given or self.path


def within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    path, folder = path.rstrip("/") or "/", folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def check_paths(sources: Sequence[str], dest: WrittenPath,
                others: Sequence[WrittenPath] = ()) -> None:
    """Refuse paths that would write over, or delete, a source or the output.

    The rules, over resolved paths:

    * no written path (DEST, report, staging, cache, resume folders) is a source or lies inside
      one: writing there would replace the source, or a rerun would read the output as input;
    * no source lies inside DEST (the area ``--overwrite`` replaces and a failed run removes);
    * no other written path is DEST or lies inside it (the report would replace the output,
      a staging folder would be replaced with it).

    Raises:
        DestinationError: A rule is broken; the message names the option and the source.
    """
    for written in (dest, *others):
        for source in sources:
            if within(written.path, source):
                what = "is the source" if written.path.rstrip("/") == source.rstrip("/") else \
                    "lies inside the source"
                raise DestinationError(
                    f"{written.option} {written.shown()} {what} {source}: it would write over "
                    f"the source (or a rerun would read it as input); choose a path outside it"
                )
    for source in sources:
        if within(source, dest.path):
            raise DestinationError(
                f"the source {source} lies inside the destination {dest.shown()}, which the "
                "conversion replaces: it would delete the source; write the output elsewhere"
            )
    for written in others:
        if within(written.path, dest.path):
            raise DestinationError(
                f"{written.option} {written.shown()} lies inside the destination "
                f"{dest.shown()}, which the conversion writes or replaces; choose a path "
                "outside it"
            )
