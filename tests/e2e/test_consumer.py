"""celltable's output in the tools that read it next: pandas, pyarrow, polars and pycytominer.

Needs the ``consumer`` extra (``pip install -e ".[consumer]"``); skipped without it. Fails if
the column naming drifts from what pycytominer infers features and metadata from.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

pd = pytest.importorskip("pandas")
pycytominer = pytest.importorskip("pycytominer")
from pycytominer.cyto_utils import infer_cp_features  # noqa: E402

COMPARTMENTS = ("Cells_", "Cytoplasm_", "Nuclei_")


def _outputs(converted):
    found = [("ExampleHuman", converted.example_human, 289)]
    if converted.nf1 is not None:
        found.append(("NF1", converted.nf1, 242))
    return found


def _frames(path):
    yield "pandas", pd.read_parquet(path)
    yield "pyarrow", pq.read_table(path).to_pandas()
    try:
        import polars as pl
    except ImportError:
        return
    frame = pl.read_parquet(path)
    assert frame.columns == pq.read_schema(path).names
    yield "polars", frame.to_pandas()


def test_pycytominer_infers_the_compartment_features_and_none_of_the_metadata(converted):
    for name, path, rows in _outputs(converted):
        for reader, df in _frames(path):
            where = f"{name} read with {reader}"
            assert len(df) == rows, where
            features = infer_cp_features(df)
            expected = [c for c in df.columns if c.startswith(COMPARTMENTS)]
            assert features == expected and len(features) > 250, where
            assert {f.split("_", 1)[0] for f in features} == {"Cells", "Cytoplasm", "Nuclei"}
            assert not [f for f in features if f.startswith(("Metadata_", "Image_"))], where
            metadata = infer_cp_features(df, metadata=True)
            assert metadata == [c for c in df.columns if c.startswith("Metadata_")], where
            assert {"Metadata_TableNumber", "Metadata_ImageNumber",
                    "Metadata_ObjectNumber"} <= set(metadata), where


def test_pycytominer_normalises_the_output(converted):
    for name, path, rows in _outputs(converted):
        df = pd.read_parquet(path)
        features = infer_cp_features(df)
        normalized = pycytominer.normalize(
            profiles=df, features=features, meta_features=infer_cp_features(df, metadata=True),
            samples="all", method="standardize")
        assert normalized.shape == df.shape == (rows, df.shape[1]), name
        assert normalized["Metadata_ObjectNumber"].tolist() == df["Metadata_ObjectNumber"].tolist()
        spread = normalized[features].std(ddof=0)
        varying = df[features].std(ddof=0) > 0
        assert ((spread[varying] - 1).abs() < 1e-6).all(), name  # every varying feature scaled
