"""A manifest file listing plates wherever they are, converted as one source."""

from __future__ import annotations

import shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app


def test_listed_plates_convert_together_named_by_their_paths(tmp_path, nf1_sqlite):
    for batch in ("batch1", "batch2"):
        (tmp_path / "screen" / batch).mkdir(parents=True)
        shutil.copy(nf1_sqlite, tmp_path / "screen" / batch / "plate.sqlite")
    (tmp_path / "screen" / "batch3").mkdir()
    shutil.copy(nf1_sqlite, tmp_path / "screen" / "batch3" / "unlisted.sqlite")
    manifest = tmp_path / "screen" / "plates.txt"
    # a comment, a blank line, a relative and an absolute path
    manifest.write_text(f"# the plates of this run\nbatch1/plate.sqlite\n\n"
                        f"{tmp_path / 'screen' / 'batch2' / 'plate.sqlite'}\n")
    dest = tmp_path / "screen" / "out.parquet"  # beside the plates: not inside a listed source
    result = celltable.convert(manifest, dest)
    assert result.plates == ("batch1/plate.sqlite", "batch2/plate.sqlite")
    single = celltable.convert(nf1_sqlite, tmp_path / "one.parquet")
    counts = Counter(pq.read_table(dest).column("Metadata_TableNumber").to_pylist())
    assert counts == {"batch1/plate.sqlite": single.rows_out, "batch2/plate.sqlite": single.rows_out}


def test_a_listed_folder_of_plates_keeps_its_plates_apart(tmp_path, three_example_plates,
                                                          example_human):
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{three_example_plates}\n{example_human}\n")
    result = celltable.convert(manifest, tmp_path / "o.parquet", preset="cellprofiler_csv")
    assert len(result.plates) == 4 and result.rows_out == 4 * 289
    assert len(set(result.plates)) == 4


@pytest.mark.parametrize(("text", "message"), [
    ("", "lists no sources"),
    ("# only a comment\n", "lists no sources"),
    ("missing.sqlite\n", "does not exist"),
    ("a.sqlite\na.sqlite\n", "twice"),
])
def test_a_bad_manifest_is_one_clear_error(tmp_path, nf1_sqlite, text, message):
    shutil.copy(nf1_sqlite, tmp_path / "a.sqlite")
    manifest = tmp_path / "m.txt"
    manifest.write_text(text)
    done = CliRunner().invoke(app, ["convert", str(manifest), str(tmp_path / "o.parquet")])
    assert done.exit_code == 1
    assert message in done.output and "Traceback" not in done.output
    assert not (tmp_path / "o.parquet").exists()


def test_a_destination_inside_a_listed_folder_is_refused(tmp_path, three_example_plates):
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{three_example_plates}\n")
    with pytest.raises(celltable.DestinationError, match="inside the source"):
        celltable.convert(manifest, three_example_plates / "out.parquet")
