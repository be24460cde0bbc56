"""A local destination: output staged in a hidden folder beside DEST, published by rename (folders
by an atomic exchange), and the resume folder's lock."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog

from celltable.adapters.safe_paths import (
    RENAME_EXCHANGE,
    check_written_paths,
    missing_parents,
    publish_new,
    remove_if_empty,
    renameat2,
)
from celltable.domain.errors import DestinationError
from celltable.domain.ports import StagingPaths

log = structlog.get_logger("celltable.storage")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so a
    folder replacing another is never absent, even if the process dies; False where the system
    or filesystem cannot."""
    return renameat2(a, b, RENAME_EXCHANGE)


class ResumeBusy(OSError):
    """Another live run holds the resume folder's lock."""


def hold_lock(path: Path) -> int | None:
    """An exclusive lock on ``path`` (created if missing), held until its descriptor is
    closed or the process ends, even by a kill; None if another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


OWNER = "owner"
"""The file in a staging folder naming the host and process writing it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class LocalDestination:
    """Writes output under a hidden staging folder beside the destination, then renames it into
    place, so a failed conversion leaves nothing at the destination."""

    def __init__(self, scratch_dir: str | None = None, resume_dir: str | None = None) -> None:
        self._scratch_dir = scratch_dir
        self._resume_dir = resume_dir
        self._dest: Path | None = None
        self._staging: Path | None = None
        self._output: Path | None = None
        self._created: list[Path] = []  # folders prepare() made, deepest first
        self._lock: int | None = None  # the resume folder's lock, held while running
        self._overwrite = False

    def prepare(self, dest_path: str, *, folder: bool, overwrite: bool, resume: bool = False,
                sources: Sequence[str] = (), guarded: Sequence[tuple[str, str]] = (),
                shared: bool = False) -> StagingPaths:
        # Staged beside DEST: shared with workers elsewhere whenever DEST's folder is.
        dest = Path(os.path.abspath(Path(dest_path).expanduser()))  # noqa: PTH100 ("..": lexically)
        written = list(guarded)
        if self._scratch_dir:
            written.append(("--staging-dir", self._scratch_dir))
        if resume:
            written.append(("the resume folder", str(self.resume_folder(dest))))
        check_written_paths(sources, str(dest), written)
        if dest.exists() or dest.is_symlink():
            if not overwrite:
                raise DestinationError(
                    f"destination {dest} exists; pass --overwrite (overwrite=True) to replace it"
                )
            if dest.is_dir() != folder:
                kind = "a folder" if dest.is_dir() else "a file"
                raise DestinationError(
                    f"destination {dest} is {kind}, but this conversion writes "
                    f"{'a folder' if folder else 'a file'}; remove it or choose another path"
                )
        self._created = missing_parents(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale(dest)
            staging = dest.parent / f".{dest.name}.celltable-{uuid.uuid4().hex[:12]}"
            staging.mkdir()
            (staging / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
            if self._scratch_dir:
                scratch = Path(self._scratch_dir).expanduser().absolute() / f"{staging.name}.scratch"
                self._created += missing_parents(scratch)
            else:
                scratch = staging / "scratch"
            scratch.mkdir(parents=True)
            self._resume = self.resume_folder(dest)
            if resume:
                self._resume.mkdir(parents=True, exist_ok=True)
                self._lock = hold_lock(self._resume / ".lock")
                if self._lock is None:
                    raise ResumeBusy(str(self._resume))
        except ResumeBusy as e:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
            remove_if_empty(self._created)
            raise DestinationError(
                f"another run to {dest} is using its resume folder {e}; wait for it to finish "
                "(or stop it), then run again"
            ) from None
        except OSError as e:
            remove_if_empty(self._created)
            blocker = next((p for p in dest.parents if p.exists()), dest.parent)
            why = (f"{blocker} is a file, not a folder" if not blocker.is_dir()
                   else e.strerror or str(e))
            raise DestinationError(
                f"cannot write beside {dest}: {why}; choose a destination in a writable folder"
            ) from e
        output = staging / dest.name
        if folder:
            output.mkdir()
        self._dest, self._staging, self._output = dest, staging, output
        self._scratch, self._overwrite = scratch, overwrite
        return StagingPaths(str(output), str(scratch), str(self._resume) if resume else None)

    def _remove_stale(self, dest: Path) -> None:
        """Remove staging folders that runs to ``dest`` left when they were killed (their
        process, on this machine, is gone): they would only fill the disk."""
        host = socket.gethostname()
        for staging in dest.parent.glob(f".{glob.escape(dest.name)}.celltable-*"):
            try:
                owner_host, pid = (staging / OWNER).read_text().split()
            except (OSError, ValueError):
                continue  # not a staging folder, or one being created right now
            if owner_host != host or _alive(int(pid)):
                continue
            log.info("stale_staging_removed", folder=str(staging), pid=int(pid))
            shutil.rmtree(staging, ignore_errors=True)
            if self._scratch_dir:
                shutil.rmtree(Path(self._scratch_dir).expanduser().absolute() / f"{staging.name}.scratch",
                              ignore_errors=True)

    def resume_folder(self, dest: Path) -> Path:
        """Where a resumable conversion to ``dest`` keeps its finished chunks: the same folder
        for every run to ``dest``, under the staging folder when one is set, else beside it."""
        if self._resume_dir:
            return Path(self._resume_dir)
        if self._scratch_dir:
            digest = hashlib.sha1(str(dest).encode()).hexdigest()[:12]
            return Path(self._scratch_dir).expanduser().absolute() / f"{dest.name}.celltable-resume-{digest}"
        return dest.parent / f".{dest.name}.celltable-resume"

    def publish(self) -> str:
        assert self._dest and self._output and self._staging, "prepare() first"
        dest, output = self._dest, self._output
        try:
            if not self._overwrite:
                publish_new(output, dest)
            elif output.is_dir() and dest.is_dir():
                if not _exchange(output, dest):  # the old folder goes with the staging
                    dest.rename(self._staging / "replaced")  # DEST is briefly absent
                    output.rename(dest)
            else:
                output.replace(dest)  # atomic for files on one filesystem
        except FileExistsError as e:
            raise DestinationError(
                f"destination {dest} appeared while this conversion ran (another run?); it is "
                "left as it is: choose another path, or pass --overwrite to replace it"
            ) from e
        except OSError as e:
            raise DestinationError(f"cannot move the output into {dest}: {e}") from e
        self._created = []
        self._cleanup()
        if self._resume_dir is None:
            self.forget_resume()
        return str(dest)

    def forget_resume(self) -> None:
        """Remove the chunks saved for a resume (by this run or an earlier one): stale once the
        output is published."""
        shutil.rmtree(self._resume, ignore_errors=True)

    def discard(self) -> None:
        self._cleanup()
        remove_if_empty(self._created)  # the folders made for DEST, unless the run kept one
        self._created = []

    def write_text(self, path: str, text: str) -> str:
        if "://" in path:
            raise DestinationError(f"cannot write {path} beside a local output; give a local path")
        return write_local_text(path, text)

    def _cleanup(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the resume folder's lock
            self._lock = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._staging = None


def write_local_text(path: str, text: str) -> str:
    """Write ``text`` at ``path`` in one step (a hidden file beside it, renamed) and return the
    absolute path.

    Raises:
        DestinationError: The file cannot be written there.
    """
    target = Path(path).expanduser().absolute()
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DestinationError(
            f"cannot write {target}: {e.strerror or e}; choose a writable path") from e
    return str(target)
