"""Shared by the contract suites: a local S3 server (moto on 127.0.0.1) for the cloud adapters,
the fixtures of the cloud adapters' integration tests."""

from __future__ import annotations

from tests.integration.test_cloud import s3, s3_endpoint

__all__ = ["s3", "s3_endpoint"]
