"""``--float32``: float64 feature columns stored as float32, on the bundled ExampleHuman plate."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app


def test_float32_halves_feature_columns_and_keeps_keys_and_metadata(tmp_path, example_human):
    wide = celltable.convert(example_human, tmp_path / "f64.parquet")
    result = CliRunner().invoke(app, ["convert", str(example_human), str(tmp_path / "f32.parquet"),
                                      "--float32", "--quiet"])
    assert result.exit_code == 0, result.output
    a, b = pq.read_table(wide.dest_path), pq.read_table(tmp_path / "f32.parquet")
    assert a.column_names == b.column_names and a.num_rows == b.num_rows == 289
    doubles = [f.name for f in a.schema if str(f.type) == "double"]
    assert len(doubles) > 200
    for field in b.schema:
        before = str(a.schema.field(field.name).type)
        if field.name in doubles and not field.name.startswith("Metadata_"):
            assert str(field.type) == "float", field.name
            x, y = a.column(field.name).to_numpy(), b.column(field.name).to_numpy()
            np.testing.assert_allclose(y, x, rtol=2**-23, equal_nan=True)  # float32 rounding
        else:
            assert str(field.type) == before, field.name  # keys, text, integers, metadata
    assert (tmp_path / "f32.parquet").stat().st_size < 0.75 * (tmp_path / "f64.parquet").stat().st_size
    assert CliRunner().invoke(app, ["validate", str(tmp_path / "f32.parquet")]).exit_code == 0


def test_float32_is_refused_with_join_sql():
    with pytest.raises(ValueError, match="join_sql"):
        celltable.ConversionOptions(float32=True, join_sql="SELECT 1")
