"""Property: no path option may name a source or lie inside one, and no source may lie inside
DEST's replaced area; over DEST, --report, --staging-dir, --local-cache-dir and the resume
folder, given absolute or relative, with ``..`` and symlinks (a link to the source, a link to an
ancestor). The oracle resolves paths with its own walk over the known links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from celltable.adapters.local_destination import LocalDestination
from celltable.domain.errors import DestinationError
from celltable.domain.paths import within

PARTS = ["src", "link", "out", "sub", "..", "x", "up"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """root/src (the source, with sub/ and a file), root/link -> src, root/out/up -> root."""
    root = tmp_path_factory.mktemp("paths").resolve()
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "Cells.csv").write_text("ImageNumber,ObjectNumber\n1,1\n")
    (root / "out").mkdir()
    (root / "link").symlink_to(root / "src")
    (root / "out" / "up").symlink_to(root)
    return root


def _links(root: Path) -> dict[str, str]:
    return {str(root / "link"): str(root / "src"), str(root / "out" / "up"): str(root)}


def _resolve(root: Path, path: str) -> str:
    """The oracle: an absolute path walked component by component, following the known links
    (their targets hold no links) and applying ``..`` after them, as the kernel does."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
        target = _links(root).get("/" + "/".join(parts))
        if target is not None:
            parts = target.strip("/").split("/")
    return "/" + "/".join(parts)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


paths = st.tuples(st.booleans(), st.lists(st.sampled_from(PARTS), min_size=0, max_size=4))


def _spell(root: Path, relative: bool, parts: list[str]) -> str:
    """A path under root: absolute, or relative to the working folder root/out."""
    return "/".join(["..", *parts]) if relative else "/".join([str(root), *parts])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dest=paths, report=paths, staging=st.one_of(st.none(), paths),
       cache=st.one_of(st.none(), paths), resume=st.booleans())
@example(dest=(False, ["out", "up", ".."]), report=(False, ["x"]), staging=None, cache=None,
         resume=False)  # a link then "..": DEST is root/out, not root's parent
def test_no_written_path_reaches_into_a_source_and_no_source_into_dest(
        tree, monkeypatch, dest, report, staging, cache, resume):
    monkeypatch.chdir(tree / "out")
    source = tree / "src"
    spelled = {"dest": _spell(tree, *dest), "report": _spell(tree, *report)}
    if staging is not None:
        spelled["staging"] = _spell(tree, *staging)
    if cache is not None:
        spelled["cache"] = _spell(tree, *cache)
    real = {k: _resolve(tree, v if v.startswith("/") else f"{tree}/out/{v}")
            for k, v in spelled.items()}
    # DEST's own ``..`` are applied to its spelling before links are followed (``out/up/..``
    # is ``out``), where the adapter both checks and writes; the other paths as the kernel does
    dest_abs = Path(os.path.abspath(spelled["dest"]))  # noqa: PTH100 ("..": as the adapter)
    real["dest"] = _resolve(tree, str(dest_abs))
    if resume:  # where LocalDestination keeps finished chunks
        real["resume"] = (_resolve(tree, str(dest_abs.parent)) + f"/.{dest_abs.name}.celltable-resume"
                          if staging is None
                          else real["staging"] + f"/{dest_abs.name}.celltable-resume-digest")
    written = [v for k, v in real.items()]
    others = [v for k, v in real.items() if k != "dest"]
    src = str(source)
    unsafe = (any(within(w, src) for w in written) or within(src, real["dest"])
              or any(within(o, real["dest"]) for o in others)
              or real["dest"] == str(tree) or dest_abs == Path("/"))
    if Path(real["dest"]).exists() and not Path(real["dest"]).is_dir():
        return  # a file where a folder is written: another refusal, not this property's
    before = _snapshot(source)
    guarded = [("--report", spelled["report"])]
    if cache is not None:
        guarded.append(("--local-cache-dir", spelled["cache"]))
    d = LocalDestination(spelled.get("staging"))
    try:
        d.prepare(spelled["dest"], folder=Path(real["dest"]).is_dir(), overwrite=True,
                  resume=resume, sources=[str(source)], guarded=guarded)
    except DestinationError as e:
        refused = True
        message = str(e)
    else:
        refused = False
        d.discard()
    event("refused" if refused else "allowed")
    assert _snapshot(source) == before  # refused or not, nothing in the source changed
    if unsafe and real["dest"] != str(tree):
        assert refused, (spelled, real)
        assert "source" in message or "destination" in message
    if not unsafe:
        assert not refused, (spelled, real, message if refused else "")
