"""Cloud storage (``s3://``, ``gs://``, ``az://``) through cloudpathlib.

Destinations are staged locally and uploaded once the conversion has succeeded (here). Sources
are listed and downloaded by ``adapters/cloud_locator.py``; clients and errors are in
``adapters/cloud_clients.py``. Their names are re-exported here for the composition root.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import structlog
from cloudpathlib import CloudPath

from celltable.adapters.cloud_clients import CloudClients, cloud_errors, is_cloud
from celltable.adapters.cloud_locator import CloudSourceLocator
from celltable.adapters.local_destination import LocalDestination, write_local_text
from celltable.adapters.safe_paths import check_written_paths
from celltable.domain.errors import CloudStorageError, DestinationError
from celltable.domain.ports import StagingPaths

log = structlog.get_logger("celltable.cloud")

__all__ = [
    "CloudClients",
    "CloudDestination",
    "CloudSourceLocator",
    "cloud_errors",
    "is_cloud",
]


class CloudDestination:
    """Implements :class:`celltable.domain.ports.Destination` for cloud destinations: the output
    is staged on local disk (by :class:`LocalDestination`, under ``cache_dir/uploads``) and
    uploaded by :meth:`publish`, which the conversion calls only once it has succeeded; after a
    failure nothing has been uploaded.

    What atomicity object storage gives: there is no rename, but each object write is atomic. A
    reader of S3 (or GCS, or Azure) sees the previous object or the whole new one, never a part,
    whether it was sent in one PUT or as a multipart upload (visible only once completed). So the
    joined table, one file, is uploaded straight to its key, replacing any old one in one step,
    and its size is then checked. A folder output (``join=False``) is several objects, and no
    object store publishes several at once: its files appear one by one; if an upload fails, the
    ones sent are deleted (best effort) and the error raised; stale files of a replaced folder are
    deleted after all new ones are in place.

    Args:
        clients: The clients for cloud paths.
        cache_dir: Local staging goes under ``cache_dir/uploads``, removed afterwards.
        scratch_dir: Where intermediate data goes (None: inside the staging folder).
    """

    def __init__(self, clients: CloudClients, cache_dir: str, scratch_dir: str | None = None) -> None:
        self._clients = clients
        self._uploads = Path(cache_dir).expanduser().absolute() / "uploads"
        self._scratch_dir = scratch_dir
        self._local: LocalDestination | None = None
        self._folder: Path | None = None
        self._dest: CloudPath | None = None
        self._replaces_folder = False
        self._overwrite = False
        self._remote: CloudPath | None = None  # the output staged in the store itself

    def prepare(self, dest_path: str, *, folder: bool, overwrite: bool, resume: bool = False,
                sources: Sequence[str] = (), guarded: Sequence[tuple[str, str]] = (),
                shared: bool = False) -> StagingPaths:
        """With ``shared``, the output is staged in the object store itself, under a hidden
        prefix beside DEST that workers write to and :meth:`publish` copies from."""
        dest = self._clients.path(dest_path)
        written = [*guarded, ("--local-cache-dir", str(self._uploads.parent))]
        if self._scratch_dir:
            written.append(("--staging-dir", self._scratch_dir))
        check_written_paths(sources, str(dest), written)
        if "/" not in str(dest)[len(dest.cloud_prefix):].strip("/"):
            raise DestinationError(f"destination {dest} names a bucket; add a key, e.g. {dest}/cells.parquet")
        with cloud_errors(str(dest)):
            kind = "file" if dest.is_file() else "folder" if dest.is_dir() else None
        if kind is not None:
            if not overwrite:
                raise DestinationError(
                    f"destination {dest} exists; pass --overwrite (overwrite=True) to replace it"
                )
            if (kind == "folder") != folder:
                raise DestinationError(
                    f"destination {dest} is a {kind}, but this conversion writes "
                    f"{'a folder' if folder else 'a file'}; remove it or choose another path"
                )
        self._folder = self._uploads / uuid.uuid4().hex[:12]
        # A resume folder outlives the upload folder: one per destination, in the cache.
        digest = hashlib.sha1(str(dest).encode()).hexdigest()[:16]
        self._local = LocalDestination(self._scratch_dir,
                                       resume_dir=str(self._uploads.parent / "resume" / digest))
        self._dest, self._replaces_folder = dest, kind == "folder"
        self._overwrite = overwrite
        try:
            paths = self._local.prepare(str(self._folder / dest.name), folder=folder,
                                        overwrite=False, resume=resume)
            if shared:
                self._remote = dest.parent / f".{dest.name}.celltable-{self._folder.name}"
                return replace(paths, output=str(self._remote / dest.name))
            return paths
        except BaseException:
            self._cleanup()
            raise

    def publish(self) -> str:
        assert self._local is not None and self._dest is not None, "prepare() first"
        if self._remote is None:
            staged = Path(self._local.publish())
        else:  # staged in the store itself: nothing local to move (a file output has no file)
            self._local.discard()
        dest = self._dest
        try:
            with cloud_errors(str(dest)):
                # Object storage has no put-if-absent common to every cloud: check, then put.
                # A run publishing between the check and the first upload still wins.
                if not self._overwrite and (dest.is_file() or dest.is_dir()):
                    raise DestinationError(
                        f"destination {dest} appeared while this conversion ran (another "
                        "run?); it is left as it is: choose another path, or pass --overwrite "
                        "to replace it"
                    )
                if self._remote is not None:
                    from celltable.adapters.cloud_plates import publish_remote

                    publish_remote(self._remote / dest.name, dest, self._replaces_folder)
                elif staged.is_dir():
                    self._upload_folder(staged, dest)
                else:
                    self._upload(staged, dest)
            self._local.forget_resume()
        finally:
            self._cleanup()
        return str(dest)

    def _upload(self, local: Path, remote: CloudPath) -> None:
        size = local.stat().st_size
        started = time.perf_counter()
        log.info("upload_started", file=str(remote), bytes=size)
        remote.upload_from(local, force_overwrite_to_cloud=True)
        uploaded = remote.stat().st_size
        if uploaded != size:
            raise CloudStorageError(
                f"{remote} holds {uploaded} bytes after uploading {size}; run again"
            )
        log.info("upload_done", file=str(remote), bytes=size,
                 seconds=round(time.perf_counter() - started, 3))

    def _upload_folder(self, staged: Path, dest: CloudPath) -> None:
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        names = {p.relative_to(staged).as_posix() for p in files}
        from celltable.adapters.cloud_plates import at_once, objects

        old = ({f.relative_to(dest).as_posix(): f for f in objects(dest)}
               if self._replaces_folder else {})
        sent: list[CloudPath] = []

        def send(p: Path) -> None:
            remote = dest / p.relative_to(staged).as_posix()
            self._upload(p, remote)
            sent.append(remote)

        try:
            at_once(send, files)  # several at once: a Zarr store is hundreds of small files
        except BaseException:
            # Files that replaced old ones stay (their old content is gone either way).
            for remote in sent:
                if remote.relative_to(dest).as_posix() not in old:
                    with _quietly():
                        remote.unlink(missing_ok=True)
            raise
        for name, f in old.items():
            if name not in names:
                f.unlink(missing_ok=True)

    def discard(self) -> None:
        if self._local is not None:
            self._local.discard()
        self._cleanup()

    def write_text(self, path: str, text: str) -> str:
        if not is_cloud(path):
            return write_local_text(path, text)
        target = self._clients.path(path)
        with cloud_errors(str(target)):
            target.write_text(text)  # one object write: readers see the old or the new file
        return str(target)

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None
        if self._remote is not None:
            from celltable.adapters.cloud_plates import remove_remote

            with _quietly():
                remove_remote(self._remote)
        self._remote = None


@contextmanager
def _quietly() -> Iterator[None]:
    """Best-effort clean-up after a failure: the original error is the one to report."""
    try:
        yield
    except Exception as e:
        log.warning("cleanup_failed", error=type(e).__name__)
