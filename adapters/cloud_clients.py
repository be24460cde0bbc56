"""Cloud clients and errors: which paths are cloud paths (``s3://``, ``gs://``, ``az://``), a
cloudpathlib client per scheme, and the SDKs' errors translated into named ones.

Credentials and client settings come from each SDK's own environment (for S3: ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID`` ..., ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), read by boto3 itself, or
from a cloudpathlib client the user builds. Neither is ever logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloudpathlib import CloudPath
from cloudpathlib.exceptions import (
    CloudPathException,
    InvalidPrefixError,
    MissingCredentialsError,
    MissingDependenciesError,
)

from celltable.domain.errors import BucketNotFoundError, CelltableError, CloudStorageError

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
