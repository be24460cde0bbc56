"""Local paths made safe: resolved for the path-safety rule
(:func:`celltable.domain.paths.check_paths`), published without replacing what appeared
meanwhile, and folders a failed run created removed again."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from celltable.domain.paths import WrittenPath, check_paths


def resolved(path: str) -> str:
    """``path`` as the path-safety rule compares it: a local path absolute, ``~`` expanded,
    symlinks followed and ``..`` removed (what exists of it); a cloud URI as given, without a
    trailing ``/`` (object keys are literal)."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.realpath(Path(path).expanduser())


def check_written_paths(sources: Sequence[str], dest: str, others: Sequence[tuple[str, str]]
                        ) -> None:
    """:func:`celltable.domain.paths.check_paths` over resolved ``sources``, ``dest`` and the
    ``(option, path)`` pairs of ``others``.

    Raises:
        DestinationError: A path would write over a source or the output.
    """
    check_paths([resolved(s) for s in sources], WrittenPath("destination", resolved(dest), dest),
                [WrittenPath(o, resolved(p), p) for o, p in others])


def check_download_cache(cache: str, dest: str, local_sources: Sequence[str]) -> None:
    """Cloud plates are downloaded into ``cache`` as they are listed, before a local ``dest``
    is prepared: a cache inside DEST (which ``--overwrite`` replaces) or in a local source is
    refused first, whether ``--local-cache-dir`` or ``CELLTABLE_LOCAL_CACHE_DIR`` set it. (A
    cloud DEST's destination checks its cache against the sources itself.)

    Raises:
        DestinationError: It is.
    """
    check_written_paths(local_sources, dest,
                        [("--local-cache-dir (or CELLTABLE_LOCAL_CACHE_DIR)", cache)])


def missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    return [p for p in path.parents if not p.exists()]


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a run created (deepest first) that are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            continue  # not empty (or gone): its parents are kept too


def renameat2(a: Path, b: Path, flag: int) -> bool:
    """Linux ``renameat2`` of ``a`` to ``b`` with ``flag`` (:data:`RENAME_NOREPLACE`,
    :data:`RENAME_EXCHANGE`), in one step; False where the system or filesystem cannot.

    Raises:
        OSError: The rename failed (``FileExistsError`` when ``b`` exists, with no-replace).
    """
    if sys.platform != "linux":
        return False
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def publish_new(output: Path, dest: Path) -> None:
    """Move ``output`` to ``dest``, which must not exist, without ever replacing what another
    process put there meanwhile.

    Raises:
        FileExistsError: ``dest`` exists now.
    """
    if renameat2(output, dest, RENAME_NOREPLACE):
        return
    if output.is_dir():
        dest.mkdir()  # the claim: fails if dest exists; the rename then replaces this empty folder
        output.rename(dest)
        return
    os.link(output, dest)  # fails if dest exists
    output.unlink()
