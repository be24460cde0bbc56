"""The cloud adapters against a real S3 API: moto's server on 127.0.0.1, nothing else contacted."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.adapters.cloud_clients import CloudClients
from celltable.adapters.cloud_locator import CloudSourceLocator
from celltable.adapters.storage import LocalSourceLocator
from celltable.cli import app
from celltable.domain.presets import get_preset
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE

SECRET = "celltable-test-secret-never-logged"
SRC, OUT = "celltable-src", "celltable-out"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server bound to 127.0.0.1, shared by this module's tests."""
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """A boto3 client on an emptied moto server, with the SDK's environment pointing at it
    (dummy keys, no profile, no config files, no metadata service, no proxy)."""
    boto3 = pytest.importorskip("boto3")
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                 "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # moto keeps its state per process, not per server: start each test from an empty one.
    reset = urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    client = boto3.client("s3")
    for bucket in (SRC, OUT):
        client.create_bucket(Bucket=bucket)
    return client


def _put_folder(s3, folder: Path, bucket: str, prefix: str) -> None:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder).as_posix()}")


def _keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def _read_s3_table(s3, bucket: str, key: str):
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def _options(tmp_path: Path, **kw) -> celltable.ConversionOptions:
    return celltable.ConversionOptions(local_cache_dir=str(tmp_path / "cache"), **kw)


CASES = {"sqlite": "cellprofiler_sqlite", "csv": "cellprofiler_csv"}


@pytest.fixture(scope="module", params=sorted(CASES))
def plate(request, tmp_path_factory):
    """A local plate, its preset and its local conversion (the reference): the NF1 SQLite file
    or the ExampleHuman CSV folder."""
    path = NF1_SQLITE if request.param == "sqlite" else EXAMPLE_HUMAN
    preset = CASES[request.param]
    dest = tmp_path_factory.mktemp("reference") / "local.parquet"
    result = celltable.convert(path, dest, preset=preset)
    return path, preset, result, pq.read_table(dest)


def _upload_plate(s3, path: Path) -> str:
    if path.is_file():
        s3.upload_file(str(path), SRC, f"screen/{path.name}")
    else:
        _put_folder(s3, path, SRC, f"screen/{path.name}")
    return f"s3://{SRC}/screen/{path.name}"


def test_a_plate_in_s3_converts_to_the_same_rows_as_the_local_plate(s3, tmp_path, plate):
    path, preset, local, reference = plate
    uri = _upload_plate(s3, path)
    cloud = celltable.convert(uri, tmp_path / "cloud.parquet", preset=preset,
                              options=_options(tmp_path))
    assert cloud.rows_out == local.rows_out > 0
    assert cloud.plates == local.plates == (path.name,)
    assert pq.read_table(tmp_path / "cloud.parquet").equals(reference)


def test_a_local_plate_converts_to_s3_with_the_same_rows(s3, tmp_path, plate):
    path, preset, local, reference = plate
    dest = f"s3://{OUT}/tables/{path.stem}.parquet"
    result = celltable.convert(path, dest, preset=preset, options=_options(tmp_path))
    assert result.dest_path == dest and result.tables[0].path == dest
    assert result.rows_out == local.rows_out
    uploaded = _read_s3_table(s3, OUT, f"tables/{path.stem}.parquet")
    assert uploaded.equals(reference)
    # no temporary objects left; the run report beside the table
    assert _keys(s3, OUT) == [f"tables/{path.stem}.parquet", f"tables/{path.stem}.parquet.report.json"]
    assert result.report_path == f"{dest}.report.json"
    assert not any((tmp_path / "cache" / "uploads").iterdir())  # local staging removed


def test_s3_to_s3_without_join_uploads_one_file_per_table(s3, tmp_path, example_human):
    uri = _upload_plate(s3, example_human)
    celltable.convert(uri, f"s3://{OUT}/eh", join=False, options=_options(tmp_path))
    assert _keys(s3, OUT) == ["eh.report.json", "eh/_celltable_manifest.json",
                              *(f"eh/{t}.parquet" for t in ("cells", "cytoplasm", "image", "nuclei"))]
    assert _read_s3_table(s3, OUT, "eh/cells.parquet").num_rows == 289


def test_a_second_run_reuses_the_cache_and_a_changed_object_is_fetched_again(s3, tmp_path, example_human):
    uri = _upload_plate(s3, example_human)
    cached = tmp_path / "cache" / "s3" / SRC / "screen" / "ExampleHuman"
    opts = _options(tmp_path, overwrite=True)
    celltable.convert(uri, tmp_path / "a.parquet", options=opts)
    first = {f.name: f.stat() for f in cached.iterdir()}
    assert sorted(first) == ["Cells.csv", "Cytoplasm.csv", "Image.csv", "Nuclei.csv"]
    assert first["Cells.csv"].st_size == (example_human / "Cells.csv").stat().st_size
    celltable.convert(uri, tmp_path / "a.parquet", options=opts)
    # Not downloaded again: a download replaces the file, so its inode would change.
    assert {f.name: f.stat().st_ino for f in cached.iterdir()} == {n: st.st_ino for n, st in first.items()}
    # A changed object (the last two cells gone) is downloaded again; the others are kept.
    lines = (example_human / "Cells.csv").read_bytes().splitlines(keepends=True)
    s3.put_object(Bucket=SRC, Key="screen/ExampleHuman/Cells.csv", Body=b"".join(lines[:-2]))
    result = celltable.convert(uri, tmp_path / "a.parquet", options=opts)
    assert result.tables[0].dropped == 2
    now = {f.name: f.stat() for f in cached.iterdir()}
    assert now["Cells.csv"].st_ino != first["Cells.csv"].st_ino
    assert all(now[n].st_ino == first[n].st_ino for n in ("Cytoplasm.csv", "Image.csv", "Nuclei.csv"))


def test_the_cloud_locator_finds_the_same_plates_as_the_local_one(s3, tmp_path, three_example_plates):
    nested = three_example_plates / "batch_2" / "plate_d"
    nested.parent.mkdir()
    (three_example_plates / "plate_c").rename(nested)
    (three_example_plates / "plate_a" / "Other.csv").write_text("a\n1\n")
    _put_folder(s3, three_example_plates, SRC, "plates")
    preset = get_preset("cellprofiler_csv")
    local = LocalSourceLocator().discover(str(three_example_plates), preset)
    cache = tmp_path / "cache"
    cloud = CloudSourceLocator(CloudClients(str(cache)), str(cache)).discover(f"s3://{SRC}/plates", preset)
    assert [u.key for u in cloud.plates] == [u.key for u in local.plates] == [
        "batch_2/plate_d", "plate_a", "plate_b"]
    assert [len(s) for s in (cloud.skipped, local.skipped)] == [1, 1]
    for plate in cloud.plates:  # the plates point at local copies, so the engine reads files
        for table in plate.tables:
            assert Path(table.path).is_file() and Path(table.path).is_relative_to(cache)


def test_a_missing_bucket_is_a_named_error(s3, tmp_path, example_human):
    with pytest.raises(celltable.BucketNotFoundError, match="no-such-bucket"):
        celltable.convert("s3://no-such-bucket/plates", tmp_path / "o.parquet",
                          options=_options(tmp_path))
    with pytest.raises(celltable.BucketNotFoundError, match="no-such-bucket"):
        celltable.convert(example_human, "s3://no-such-bucket/o.parquet", options=_options(tmp_path))
    assert not (tmp_path / "o.parquet").exists()


def test_a_missing_key_is_a_named_error(s3, tmp_path):
    with pytest.raises(celltable.SourceNotFoundError, match=f"s3://{SRC}/no/such/plate"):
        celltable.convert(f"s3://{SRC}/no/such/plate", tmp_path / "o.parquet",
                          options=_options(tmp_path))


def test_a_failed_conversion_uploads_nothing(s3, tmp_path, nf1_sqlite):
    with pytest.raises(celltable.SchemaError):
        celltable.convert(nf1_sqlite, f"s3://{OUT}/o.parquet", preset="cellprofiler_sqlite",
                          options=_options(tmp_path, join_sql="SELECT nope FROM Cells"))
    assert _keys(s3, OUT) == []
    uploads = tmp_path / "cache" / "uploads"  # removed with the folders the run made
    assert not uploads.exists() or not any(uploads.iterdir())


def test_an_existing_cloud_destination_is_kept_unless_overwrite(s3, tmp_path, example_human):
    s3.put_object(Bucket=OUT, Key="o.parquet", Body=b"old")
    with pytest.raises(celltable.DestinationError, match="exists"):
        celltable.convert(example_human, f"s3://{OUT}/o.parquet", options=_options(tmp_path))
    assert s3.get_object(Bucket=OUT, Key="o.parquet")["Body"].read() == b"old"
    celltable.convert(example_human, f"s3://{OUT}/o.parquet", options=_options(tmp_path, overwrite=True))
    assert _read_s3_table(s3, OUT, "o.parquet").num_rows == 289


def test_too_little_disk_space_is_a_named_error_before_any_download(s3, tmp_path, nf1_sqlite):
    s3.upload_file(str(nf1_sqlite), SRC, "big/plate.sqlite")
    cache = tmp_path / "cache"
    locator = CloudSourceLocator(CloudClients(str(cache)), str(cache), reserve_bytes=2**60)
    with pytest.raises(celltable.DiskSpaceError, match="--local-cache-dir"):
        locator.discover(f"s3://{SRC}/big/plate.sqlite", get_preset("cellprofiler_sqlite"))
    assert not (cache / "s3").exists()


def test_public_buckets_are_read_unsigned_and_missing_credentials_say_what_to_do(
        s3, tmp_path, monkeypatch, example_human):
    uri = _upload_plate(s3, example_human)
    s3.put_bucket_acl(Bucket=SRC, ACL="public-read")
    for key in _keys(s3, SRC):
        s3.put_object_acl(Bucket=SRC, Key=key, ACL="public-read")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(celltable.CloudStorageError, match="no-sign-request"):
        celltable.convert(uri, tmp_path / "o.parquet", options=_options(tmp_path))
    result = celltable.convert(uri, tmp_path / "o.parquet",
                               options=_options(tmp_path, no_sign_request=True))
    assert result.rows_out == 289


def test_the_command_line_reads_s3_shows_downloads_and_never_logs_credentials(s3, tmp_path, example_human):
    uri = _upload_plate(s3, example_human)
    done = subprocess.run(
        [sys.executable, "-m", "celltable.cli", "convert", uri, f"s3://{OUT}/eh.parquet", "-v",
         "--log-format", "json", "--local-cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    assert events.count("download_done") == 4 and "upload_done" in events
    assert SECRET not in done.stdout + done.stderr
    assert f"s3://{OUT}/eh.parquet: 289 rows" in done.stdout


def test_a_manifest_mixes_local_and_s3_plates(s3, tmp_path, nf1_sqlite):
    uri = _upload_plate(s3, nf1_sqlite)
    manifest = tmp_path / "plates.txt"
    manifest.write_text(f"{uri}\n{nf1_sqlite}\n")
    result = celltable.convert(manifest, tmp_path / "both.parquet", preset="cellprofiler_sqlite",
                               options=_options(tmp_path))
    single = celltable.convert(nf1_sqlite, tmp_path / "one.parquet", preset="cellprofiler_sqlite")
    assert len(result.plates) == 2 and result.rows_out == 2 * single.rows_out
    assert result.plates[0].endswith("screen/all_cellprofiler.sqlite")


def test_downloads_are_reported_to_the_progress_listener(s3, tmp_path, example_human):
    uri = _upload_plate(s3, example_human)
    seen: list[celltable.Progress] = []
    celltable.convert(uri, tmp_path / "eh.parquet", options=_options(tmp_path),
                      progress=seen.append)
    downloads = [p for p in seen if p.stage == "downloading"]
    tables = sum((example_human / f"{t}.csv").stat().st_size
                 for t in ("Image", "Cells", "Cytoplasm", "Nuclei"))
    assert [p.done for p in downloads] == [1, 2, 3, 4]  # the preset's four tables, one by one
    assert downloads[-1].total == 4
    assert downloads[-1].rows == downloads[-1].rows_total == tables  # bytes
    assert seen.index(downloads[-1]) < next(i for i, p in enumerate(seen) if p.stage == "staging")


def test_validate_reads_an_s3_output_and_finds_a_damaged_one(s3, tmp_path, example_human,
                                                             monkeypatch):
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("CELLTABLE_LOCAL_CACHE_DIR", str(tmp_path / "cli-cache"))
    dest = f"s3://{OUT}/checked/eh.parquet"
    celltable.convert(example_human, dest, options=_options(tmp_path))
    report = celltable.validate(dest, local_cache_dir=cache)
    assert report.ok and report.tables[0].path == dest and report.tables[0].rows == 289
    result = CliRunner().invoke(app, ["validate", dest])
    assert result.exit_code == 0, result.output
    assert dest in result.output
    # rows dropped after writing, the recorded metadata kept: validate must notice
    body = s3.get_object(Bucket=OUT, Key="checked/eh.parquet")["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    meta = pq.read_metadata(io.BytesIO(body)).metadata
    damaged = io.BytesIO()
    pq.write_table(table.slice(0, 200).replace_schema_metadata(meta), damaged)
    s3.put_object(Bucket=OUT, Key="checked/eh.parquet", Body=damaged.getvalue())
    assert not celltable.validate(dest, local_cache_dir=cache).ok
    with pytest.raises(celltable.SourceNotFoundError, match="nothing at"):
        celltable.validate(f"s3://{OUT}/checked/none.parquet", local_cache_dir=cache)
    celltable.convert(example_human, f"s3://{OUT}/folder", join=False, options=_options(tmp_path))
    folder = celltable.validate(f"s3://{OUT}/folder", local_cache_dir=cache)
    assert folder.ok and len([t for t in folder.tables if t.path.endswith(".parquet")]) == 4
    assert folder.tables[0].path == f"s3://{OUT}/folder"  # the folder against its manifest
    s3.delete_object(Bucket=OUT, Key="folder/nuclei.parquet")
    assert not celltable.validate(f"s3://{OUT}/folder", local_cache_dir=cache).ok
