"""Publishing staged output into place on a local filesystem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from celltable.adapters.local_destination import OWNER, LocalDestination, _exchange
from celltable.adapters.safe_paths import check_written_paths
from celltable.domain.errors import DestinationError


def _stage(dest, *, folder, overwrite=False, resume=False, content="new"):
    d = LocalDestination()
    paths = d.prepare(str(dest), folder=folder, overwrite=overwrite, resume=resume)
    target = Path(paths.output) / "t.parquet" if folder else Path(paths.output)
    target.write_text(content)
    return d, paths


def test_a_folder_replacing_another_is_swapped_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "from_a").touch(), (b / "from_b").touch()
    if not _exchange(a, b):
        pytest.skip("renameat2 exchange not available on this filesystem")
    assert (a / "from_b").exists() and (b / "from_a").exists()


def test_overwriting_a_folder_leaves_only_the_new_content(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.parquet").write_text("old")
    d, _ = _stage(dest, folder=True, overwrite=True)
    d.publish()
    assert sorted(p.name for p in dest.iterdir()) == ["t.parquet"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left beside it


def test_an_existing_destination_is_refused_without_overwrite(tmp_path):
    dest = tmp_path / "out.parquet"
    dest.write_text("mine")
    with pytest.raises(DestinationError, match="--overwrite"):
        _stage(dest, folder=False)
    assert dest.read_text() == "mine"


def test_staging_of_a_dead_process_is_removed_and_a_live_ones_kept(tmp_path):
    dest = tmp_path / "out.parquet"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    stale = tmp_path / ".out.parquet.celltable-dead"
    stale.mkdir()
    (stale / OWNER).write_text(f"{socket.gethostname()} {dead}")
    live = tmp_path / ".out.parquet.celltable-live"
    live.mkdir()
    (live / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
    other_host = tmp_path / ".out.parquet.celltable-elsewhere"
    other_host.mkdir()
    (other_host / OWNER).write_text(f"another-host-name {dead}")
    d, _ = _stage(dest, folder=False)
    assert not stale.exists() and live.exists() and other_host.exists()
    d.publish()
    assert dest.read_text() == "new"


def test_the_resume_folder_outlives_a_failure_and_goes_with_publishing(tmp_path):
    dest = tmp_path / "out.parquet"
    d, paths = _stage(dest, folder=False, resume=True)
    assert paths.resume == str(tmp_path / ".out.parquet.celltable-resume")
    (tmp_path / ".out.parquet.celltable-resume" / "chunk.json").write_text("{}")
    d.discard()
    assert (tmp_path / ".out.parquet.celltable-resume" / "chunk.json").exists()
    d, paths = _stage(dest, folder=False, resume=True)
    assert (tmp_path / ".out.parquet.celltable-resume" / "chunk.json").exists()
    d.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


@pytest.mark.parametrize("dest", ["src/out.parquet", "src/sub/../tables", "src", "link/out.parquet"])
def test_a_destination_inside_the_source_is_refused_before_anything_is_written(tmp_path, dest):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "src")
    with pytest.raises(DestinationError, match=r"(is|lies inside) the source"):
        LocalDestination().prepare(str(tmp_path / dest), folder=False, overwrite=True,
                                   sources=[str(tmp_path / "src")])
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["sub"]


def test_a_destination_beside_the_source_is_fine(tmp_path):
    (tmp_path / "src").mkdir()
    paths = LocalDestination().prepare(str(tmp_path / "src-out.parquet"), folder=False,
                                       overwrite=False, sources=[str(tmp_path / "src")])
    assert paths.output.endswith("src-out.parquet")


def test_cloud_paths_compare_as_text():
    with pytest.raises(DestinationError, match="inside the source"):
        check_written_paths(["s3://bucket/plates"], "s3://bucket/plates/out.parquet", [])
    check_written_paths(["s3://bucket/plates"], "s3://bucket/plates-out.parquet", [])
