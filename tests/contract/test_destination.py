"""The ``Destination`` port's behaviour, on the fake and on every real destination (a local
folder; S3 on a local moto server).

Each storage comes with a harness that reads and writes it from outside the port: what DEST
holds (a file's text, or a folder's files as a dict), putting something there as another run
would, and writing the staged output as a conversion's writer would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celltable.adapters.cloud import CloudDestination
from celltable.adapters.cloud_clients import CloudClients
from celltable.adapters.local_destination import LocalDestination
from celltable.domain.errors import DestinationError
from celltable.domain.ports import Destination, StagingPaths
from tests.fakes import FakeDestination
from tests.integration.test_cloud import OUT

Content = Any  # a file's text, or a folder's {relative name: text}


def _write_local(path: Path, content: Content) -> None:
    if isinstance(content, dict):
        for name, text in content.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def _read_local(path: Path) -> Content | None:
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_text() for p in path.rglob("*")
                if p.is_file()}
    return path.read_text() if path.exists() else None


class LocalHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "out"
        self.root.mkdir()
        self.texts = tmp_path / "logs"

    def destination(self) -> Destination:
        return LocalDestination()

    def dest(self, name: str) -> str:
        return str(self.root / name)

    def put(self, dest: str, content: Content) -> None:
        _write_local(Path(dest), content)

    def read(self, dest: str) -> Content | None:
        return _read_local(Path(dest))

    def listing(self) -> list[str]:
        """Everything in DEST's folder (staging folders too, hidden or not)."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*"))

    def entry(self, dest: str) -> str:
        return Path(dest).relative_to(self.root).as_posix()

    def stage(self, paths: StagingPaths, content: Content) -> None:
        _write_local(Path(paths.output), content)

    def put_resume(self, paths: StagingPaths, text: str) -> None:
        (Path(paths.resume) / "chunk").write_text(text)

    def read_resume(self, resume: str) -> str | None:
        return _read_local(Path(resume) / "chunk")

    def text_path(self) -> str:
        return str(self.texts / "run.json")

    def read_text(self, where: str) -> str | None:
        return _read_local(Path(where))


class CloudHarness(LocalHarness):
    """DEST in a bucket of the local S3 server; staging and resume folders in a local cache."""

    def __init__(self, tmp_path: Path, s3: Any) -> None:
        super().__init__(tmp_path)
        self.s3, self.cache = s3, tmp_path / "cache"

    def destination(self) -> Destination:
        return CloudDestination(CloudClients(str(self.cache)), str(self.cache))

    def dest(self, name: str) -> str:
        return f"s3://{OUT}/run/{name}"

    def _key(self, uri: str) -> str:
        return uri[len(f"s3://{OUT}/"):]

    def put(self, dest: str, content: Content) -> None:
        files = {f"{dest}/{n}": t for n, t in content.items()} if isinstance(content, dict) \
            else {dest: content}
        for uri, text in files.items():
            self.s3.put_object(Bucket=OUT, Key=self._key(uri), Body=text.encode())

    def read(self, dest: str) -> Content | None:
        key = self._key(dest)
        listed = self.s3.list_objects_v2(Bucket=OUT, Prefix=key).get("Contents", [])
        found = {o["Key"]: self.s3.get_object(Bucket=OUT, Key=o["Key"])["Body"].read().decode()
                 for o in listed}
        if key in found:
            return found[key]
        inside = {k[len(key) + 1:]: t for k, t in found.items() if k.startswith(key + "/")}
        return inside or None

    def listing(self) -> list[str]:
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=OUT).get("Contents", []))

    def entry(self, dest: str) -> str:
        return self._key(dest)

    def stage(self, paths: StagingPaths, content: Content) -> None:
        if paths.output.startswith("s3://"):  # shared staging: in the store itself
            self.put(paths.output, content)
        else:
            super().stage(paths, content)

    def text_path(self) -> str:
        return f"s3://{OUT}/logs/run.json"

    def read_text(self, where: str) -> str | None:
        return self.read(where)


class FakeHarness:
    """The fake's storage is its own state: one instance stands for the storage every run sees."""

    def __init__(self) -> None:
        self.fake = FakeDestination()

    def destination(self) -> Destination:
        return self.fake

    def dest(self, name: str) -> str:
        return f"out/{name}"

    def put(self, dest: str, content: Content) -> None:
        self.fake.existing.add(dest)
        self.fake.store[dest] = content

    def read(self, dest: str) -> Content | None:
        return self.fake.store.get(dest) if dest in self.fake.existing else None

    def listing(self) -> list[str]:
        return sorted(self.fake.existing)

    def entry(self, dest: str) -> str:
        return dest

    def stage(self, paths: StagingPaths, content: Content) -> None:
        self.fake.staged[paths.output] = content

    def put_resume(self, paths: StagingPaths, text: str) -> None:
        self.fake.resumes[paths.resume]["chunk"] = text

    def read_resume(self, resume: str) -> str | None:
        return self.fake.resumes.get(resume, {}).get("chunk")

    def text_path(self) -> str:
        return "logs/run.json"

    def read_text(self, where: str) -> str | None:
        return self.fake.texts.get(where)


@pytest.fixture(params=["fake", "local", "s3"])
def storage(request, tmp_path):
    if request.param == "fake":
        return FakeHarness()
    if request.param == "local":
        return LocalHarness(tmp_path)
    return CloudHarness(tmp_path, request.getfixturevalue("s3"))


@pytest.mark.parametrize("shared", [False, True], ids=["staged locally", "shared staging"])
def test_publish_puts_the_staged_file_at_dest_and_leaves_nothing_beside_it(storage, shared):
    dest = storage.dest("out.parquet")
    destination = storage.destination()
    storage.stage(destination.prepare(dest, folder=False, overwrite=False, shared=shared), "rows")
    where = destination.publish()
    assert storage.read(where) == storage.read(dest) == "rows"
    assert storage.listing() == [storage.entry(dest)]


@pytest.mark.parametrize("shared", [False, True], ids=["staged locally", "shared staging"])
def test_a_folder_output_is_published_with_every_file(storage, shared):
    dest = storage.dest("tables")
    destination = storage.destination()
    files = {"cells.parquet": "c", "plates/p1.parquet": "p"}
    storage.stage(destination.prepare(dest, folder=True, overwrite=False, shared=shared), files)
    destination.publish()
    assert storage.read(dest) == files
    inside = storage.entry(dest)
    assert all(e == inside or e.startswith(f"{inside}/") for e in storage.listing())


def test_an_existing_dest_is_refused_without_overwrite_and_left_as_it_was(storage):
    dest = storage.dest("out.parquet")
    storage.put(dest, "old")
    before = storage.listing()
    with pytest.raises(DestinationError, match="exists"):
        storage.destination().prepare(dest, folder=False, overwrite=False)
    assert storage.read(dest) == "old" and storage.listing() == before


def test_overwrite_replaces_dest_once_published(storage):
    dest = storage.dest("out.parquet")
    storage.put(dest, "old")
    destination = storage.destination()
    storage.stage(destination.prepare(dest, folder=False, overwrite=True), "new")
    assert storage.read(dest) == "old"  # nothing changes before publish
    destination.publish()
    assert storage.read(dest) == "new"


def test_a_dest_of_the_other_kind_is_refused_even_with_overwrite(storage):
    dest = storage.dest("out")
    storage.put(dest, "a file")
    with pytest.raises(DestinationError):
        storage.destination().prepare(dest, folder=True, overwrite=True)
    assert storage.read(dest) == "a file"


def test_a_dest_appearing_during_the_run_is_not_replaced_without_overwrite(storage):
    dest = storage.dest("out.parquet")
    destination = storage.destination()
    storage.stage(destination.prepare(dest, folder=False, overwrite=False), "ours")
    storage.put(dest, "another run's")
    with pytest.raises(DestinationError, match="appeared"):
        destination.publish()
    destination.discard()
    assert storage.read(dest) == "another run's"


@pytest.mark.parametrize("shared", [False, True], ids=["staged locally", "shared staging"])
@pytest.mark.parametrize("existed", [True, False], ids=["dest existed", "new dest"])
@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_a_failed_run_leaves_dest_as_it_was(storage, existed, folder, shared):
    dest = storage.dest("tables" if folder else "out.parquet")
    old = {"a.parquet": "old"} if folder else "old"
    if existed:
        storage.put(dest, old)
    before = storage.listing()
    destination = storage.destination()
    paths = destination.prepare(dest, folder=folder, overwrite=True, shared=shared)
    storage.stage(paths, {"a.parquet": "new", "b.parquet": "new"} if folder else "new")
    destination.discard()
    assert storage.read(dest) == (old if existed else None)
    assert storage.listing() == before


def test_the_resume_folder_outlives_a_failed_run_and_goes_once_published(storage):
    dest = storage.dest("out.parquet")
    first = storage.destination()
    paths = first.prepare(dest, folder=False, overwrite=False, resume=True)
    assert paths.resume is not None
    storage.put_resume(paths, "chunk 0")
    first.discard()
    second = storage.destination()
    again = second.prepare(dest, folder=False, overwrite=False, resume=True)
    assert again.resume == paths.resume and storage.read_resume(again.resume) == "chunk 0"
    storage.stage(again, "rows")
    second.publish()
    assert storage.read(dest) == "rows" and storage.read_resume(again.resume) is None


def test_without_resume_there_is_no_resume_folder(storage):
    paths = storage.destination().prepare(storage.dest("o.parquet"), folder=False,
                                          overwrite=False)
    assert paths.resume is None


@pytest.mark.parametrize("inside", [True, False])
def test_a_dest_that_is_or_lies_inside_a_source_is_refused(storage, inside):
    source = storage.dest("plate")
    dest = f"{source}/out.parquet" if inside else source
    with pytest.raises(DestinationError, match="source"):
        storage.destination().prepare(dest, folder=False, overwrite=True, sources=[source])
    assert storage.read(dest) is None


def test_a_source_inside_dest_is_refused(storage):
    dest = storage.dest("tables")
    with pytest.raises(DestinationError, match="source"):
        storage.destination().prepare(dest, folder=True, overwrite=True,
                                      sources=[f"{dest}/plate"])


def test_write_text_writes_a_file_and_replaces_one_there(storage):
    destination = storage.destination()
    where = destination.write_text(storage.text_path(), "first")
    assert storage.read_text(where) == "first"
    assert destination.write_text(storage.text_path(), "second") == where
    assert storage.read_text(where) == "second"



def test_a_report_written_inside_a_folder_dest_is_refused(storage):
    dest = storage.dest("tables")
    with pytest.raises(DestinationError, match="--report"):
        storage.destination().prepare(dest, folder=True, overwrite=True,
                                      guarded=[("--report", f"{dest}/report.json")])
    assert storage.read(dest) is None
