"""Cloud storage (``s3://``, ``gs://``, ``az://``) through cloudpathlib.

Sources are listed in the cloud and matched to the preset's tables by the same code as local
ones (:func:`celltable.adapters.source_tree.match_units`); the files a conversion needs are then
downloaded into a cache folder on disk, and the plates handed on point at the local copies, so the
query engine reads local files only. Destinations are staged locally and uploaded once the
conversion has succeeded.

Credentials and client settings come from each SDK's own environment (for S3: ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID`` ..., ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), read by boto3 itself, or
from a cloudpathlib client the user builds. Neither is ever logged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog
from cloudpathlib import CloudPath
from cloudpathlib.exceptions import (
    CloudPathException,
    InvalidPrefixError,
    MissingCredentialsError,
    MissingDependenciesError,
)

from celltable.adapters.file_checks import unit_problems
from celltable.adapters.local_destination import LocalDestination, write_local_text
from celltable.adapters.safe_paths import check_written_paths
from celltable.adapters.source_tree import Tree, match_units
from celltable.domain.errors import (
    BucketNotFoundError,
    CelltableError,
    CloudStorageError,
    DestinationError,
    DiskSpaceError,
    SourceNotFoundError,
    SourceReadError,
)
from celltable.domain.model import DOWNLOADING, Progress
from celltable.domain.ports import ProgressListener, StagingPaths
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.sources import SourceLayout

log = structlog.get_logger("celltable.cloud")

SCHEMES = {"s3://": "s3", "gs://": "gs", "az://": "azure"}
"""Cloud path prefixes and the extra of cloudpathlib (and of celltable) each one needs."""

_ACCESS_CODES = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "AllAccessDisabled", "ExpiredToken", "InvalidToken", "AuthorizationFailure",
                 "AuthenticationFailed"}
_NO_BUCKET_CODES = {"NoSuchBucket", "ContainerNotFound"}


def is_cloud(path: str) -> bool:
    """Whether ``path`` names object storage rather than a local file."""
    return str(path).lower().startswith(tuple(SCHEMES))


# errors --------------------------------------------------------------------------------------


def _sdk_errors() -> tuple[type[BaseException], ...]:
    """The exception roots of the cloud SDKs that are installed."""
    found: list[type[BaseException]] = [CloudPathException]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        found += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - boto3 not installed
        pass
    try:  # pragma: no cover - no Google SDK in the test environment
        from google.api_core.exceptions import GoogleAPIError

        found.append(GoogleAPIError)
    except ImportError:
        pass
    try:  # pragma: no cover - no Azure SDK in the test environment
        from azure.core.exceptions import AzureError

        found.append(AzureError)
    except ImportError:
        pass
    return tuple(found)


def _code(e: BaseException) -> str:
    """The service's error code (S3's ``NoSuchBucket``, Azure's ``ContainerNotFound`` ...)."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return str(getattr(e, "error_code", "") or getattr(e, "code", "") or "")


def _is(e: BaseException, module: str, *names: str) -> bool:
    """``e`` is an instance of one of ``names`` in ``module``, when that SDK is installed."""
    try:
        found = __import__(module, fromlist=list(names))
    except ImportError:
        return False
    return isinstance(e, tuple(getattr(found, n) for n in names if hasattr(found, n)))


def _translate(e: BaseException, where: str) -> CelltableError:
    bucket = where.split("://", 1)[-1].split("/", 1)[0]
    code = _code(e)
    if code in _NO_BUCKET_CODES:
        return BucketNotFoundError(
            f"bucket {bucket!r} of {where} does not exist; check its name, and for S3 the region "
            "(AWS_DEFAULT_REGION) and endpoint (AWS_ENDPOINT_URL)"
        )
    if isinstance(e, MissingDependenciesError):
        extra = SCHEMES.get(where[:5].lower(), "s3")
        return CloudStorageError(
            f"{where} needs the {extra} client libraries: pip install 'celltable[{extra}]'"
        )
    if (isinstance(e, MissingCredentialsError)
            or _is(e, "botocore.exceptions", "NoCredentialsError", "PartialCredentialsError")
            or _is(e, "google.auth.exceptions", "DefaultCredentialsError")):
        return CloudStorageError(
            f"no credentials for {where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or your cloud's equivalent), or pass --no-sign-request "
            "(no_sign_request=True) for a public bucket"
        )
    if code in _ACCESS_CODES:
        return CloudStorageError(
            f"access to {where} was refused ({code}); check the credentials in use (AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID ...) and their permissions, or pass --no-sign-request for a "
            "public bucket"
        )
    if _is(e, "botocore.exceptions", "EndpointConnectionError", "ConnectTimeoutError",
           "ReadTimeoutError"):
        return CloudStorageError(
            f"cannot reach the storage service for {where} ({type(e).__name__}); check the "
            "network and the endpoint (AWS_ENDPOINT_URL)"
        )
    return CloudStorageError(f"{where}: {type(e).__name__}: {e}")


@contextmanager
def cloud_errors(where: str) -> Iterator[None]:
    """Re-raise the cloud SDKs' exceptions as celltable's named errors."""
    try:
        yield
    except CelltableError:
        raise
    except _sdk_errors() as e:
        raise _translate(e, where) from e


# clients -------------------------------------------------------------------------------------


class CloudClients:
    """cloudpathlib clients, one per kind of cloud, built on first use.

    Args:
        cache_dir: The cache folder; cloudpathlib's own cache goes under it (celltable downloads
            to paths of its own, so that one stays empty).
        client: A client the user built; used for paths of its kind.
        no_sign_request: Unsigned requests (public buckets) for clients built here.
    """

    def __init__(self, cache_dir: str, *, client: Any = None, no_sign_request: bool = False) -> None:
        self._cache_dir = Path(cache_dir)
        self._given = client
        self._no_sign_request = no_sign_request
        self._built: dict[str, Any] = {}

    def path(self, uri: str) -> CloudPath:
        """``uri`` as a cloud path bound to its client.

        Raises:
            CloudStorageError: The client cannot be built (missing libraries or credentials).
        """
        if self._given is not None:
            try:
                return self._given.CloudPath(uri)
            except InvalidPrefixError:  # the user's client is for another cloud
                pass
        prefix = uri[:5].lower()
        with cloud_errors(uri):
            client = self._built.get(prefix) or self._build(prefix)
            self._built[prefix] = client
            return client.CloudPath(uri)

    def _build(self, prefix: str) -> Any:
        own_cache = str(self._cache_dir / ".cloudpathlib")
        if prefix == "s3://":
            from cloudpathlib import S3Client

            return S3Client(no_sign_request=self._no_sign_request, local_cache_dir=own_cache)
        if prefix == "gs://":  # pragma: no cover - no Google SDK in the test environment
            from cloudpathlib import GSClient

            kwargs: dict[str, Any] = {}
            if self._no_sign_request:
                from google.cloud import storage

                kwargs["storage_client"] = storage.Client.create_anonymous_client()
            return GSClient(local_cache_dir=own_cache, **kwargs)
        if self._no_sign_request:  # pragma: no cover
            raise CloudStorageError(
                "--no-sign-request works for s3:// and gs://; for a public Azure container "
                "pass cloud_client=AzureBlobClient(account_url=...) from Python"
            )
        from cloudpathlib import AzureBlobClient  # pragma: no cover

        return AzureBlobClient(local_cache_dir=own_cache)  # pragma: no cover


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# sources -------------------------------------------------------------------------------------


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

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        root = self._clients.path(source_path)
        where = str(root)
        with cloud_errors(where):
            tree = self._tree(root)

            def at(rel: str) -> CloudPath:
                return root / rel if rel else root

            if self._lazy:
                from celltable.adapters.cloud_plates import listed_plates  # it imports this

                return listed_plates(tree, preset, at)
            if preset.source_format is SourceFormat.SQLITE:
                files = {rel: at(rel) for rel in tree.sqlite_files()}
                local = self._fetch(list(files.values()), where)
                return match_units(tree, preset, lambda rel: str(at(rel)),
                                   lambda rel: str(local[str(files[rel])]))
            layout = match_units(tree, preset, lambda rel: str(at(rel)))
            remote = [root.client.CloudPath(t.path) for u in layout.units for t in u.tables]
            local = self._fetch(remote, where)
            units = tuple(
                replace(u, path=str(self._local_path(root.client.CloudPath(u.path))),
                        tables=tuple(replace(t, path=str(local[t.path])) for t in u.tables))
                for u in layout.units
            )
            return replace(layout, units=units, bad=layout.bad + unit_problems(units))

    @staticmethod
    def _tree(root: CloudPath) -> Tree:
        name = root.name or root.drive
        if root.is_file():
            return Tree(str(root), name, True)
        if not root.is_dir():
            raise SourceNotFoundError(
                f"nothing at {root}: no object with that key and none under it as a folder; "
                "check the path (keys are case-sensitive)"
            )
        listing = []
        for folder, _, files in root.walk():
            rel = folder.relative_to(root).as_posix()
            listing.append(("" if rel == "." else rel, files))
        return Tree.of(str(root), name, listing)

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


# destinations --------------------------------------------------------------------------------


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
        staged = Path(self._local.publish())
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
        old = ({f.relative_to(dest).as_posix(): f for f in dest.rglob("*") if f.is_file()}
               if self._replaces_folder else {})
        sent: list[CloudPath] = []
        try:
            for p in files:
                remote = dest / p.relative_to(staged).as_posix()
                self._upload(p, remote)
                sent.append(remote)
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

