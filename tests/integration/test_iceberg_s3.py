"""A warehouse in S3 (a moto server on 127.0.0.1): a user's catalog takes the commits, the data
files go to the bucket through pyiceberg's file IO."""

from __future__ import annotations

import json

import pytest

import celltable
from celltable import IcebergOptions, ImageOptions, WarehouseError
from tests.conftest import REAL_DATA
from tests.integration.test_cloud import OUT, s3, s3_endpoint  # noqa: F401 - fixtures

EXAMPLE = REAL_DATA / "cellprofiler" / "ExampleHuman"


def test_a_warehouse_in_s3_gets_profiles_crops_and_its_report(s3, s3_endpoint, tmp_path):  # noqa: F811
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    props = (("s3.endpoint", s3_endpoint), ("s3.access-key-id", "testing"),
             ("s3.secret-access-key", "testing"), ("s3.region", "us-east-1"))
    dest = f"s3://{OUT}/warehouse"
    ice = IcebergOptions(catalog_uri=catalog, catalog_options=props,
                         images=ImageOptions(images_dir=str(EXAMPLE)))
    result = celltable.convert(EXAMPLE, dest, dest_datatype="iceberg", iceberg=ice,
                               preset="cellprofiler_csv")
    assert {t.table: t.rows for t in result.tables} == {"joined_profiles": 289,
                                                        "image_crops": 867}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=OUT)["Contents"]]
    assert sum(k.startswith("warehouse/profiles/joined_profiles/data/") for k in keys) == 1
    assert sum(k.startswith("warehouse/images/image_crops/data/") for k in keys) == 1
    report = json.loads(s3.get_object(Bucket=OUT, Key="warehouse.report.json")["Body"].read())
    assert report["warehouse"]["crops"] == 867
    crops = celltable.read(dest, "images.image_crops", filter="Metadata_ObjectNumber == 3",
                           catalog_uri=catalog, catalog_options=dict(props))
    assert crops.num_rows == 3


def test_an_s3_warehouse_without_a_catalog_is_a_named_error(s3, tmp_path):  # noqa: F811
    with pytest.raises(WarehouseError, match="--catalog-uri"):
        celltable.convert(EXAMPLE, f"s3://{OUT}/warehouse", dest_datatype="iceberg",
                          preset="cellprofiler_csv")
    assert "Contents" not in s3.list_objects_v2(Bucket=OUT)
