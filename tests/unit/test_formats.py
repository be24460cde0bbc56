"""Output formats chosen from --format and DEST, and the roles the output plan gives columns."""

from __future__ import annotations

import pytest

from celltable.domain.errors import OutputFormatError
from celltable.domain.formats import PARQUET, OutputFormat, choose_format
from celltable.domain.join import derive_join
from celltable.domain.naming import channels_of, feature_parts, role_by_name
from celltable.domain.output import partition_files, plan_output
from celltable.domain.presets import IMAGE, get_preset
from celltable.domain.schema import DataType, Role
from tests.unit.test_output import PRESET, _unit

H5AD = OutputFormat("h5ad", ".h5ad", aliases=("anndata_h5ad",))
ZARR = OutputFormat("zarr", ".zarr", folder=True, aliases=("anndata_zarr",))
FORMATS = (PARQUET, H5AD, ZARR)


@pytest.mark.parametrize(("dest", "given", "expected"), [
    ("out.parquet", None, PARQUET), ("out", None, PARQUET), ("plates/", None, PARQUET),
    ("s3://b/x.H5AD", None, H5AD), ("x.zarr/", None, ZARR), ("out", "anndata_zarr", ZARR),
    ("x.h5ad", "h5ad", H5AD), ("x.h5ad", "anndata_h5ad", H5AD), (".hidden", None, PARQUET),
    ("d/plate/..", None, PARQUET), ("d/.", None, PARQUET), ("out.", None, PARQUET),
])
def test_the_format_is_the_one_asked_for_or_named_by_the_suffix(dest, given, expected):
    assert choose_format(dest, given, FORMATS) == expected


@pytest.mark.parametrize(("dest", "given", "words"), [
    ("out.csv", None, "ends with .csv, which names no output format"),
    ("out.parquet", "zarr", "names the parquet format but the format asked for is zarr"),
    ("out", "loom", "'loom' is not one celltable writes; use one of parquet, h5ad, zarr"),
])
def test_a_format_that_cannot_be_chosen_says_what_to_do(dest, given, words):
    with pytest.raises(OutputFormatError, match=words):
        choose_format(dest, given, FORMATS)


def test_partition_files_take_the_formats_suffix():
    assert partition_files(["a", "b/c"], ".h5ad") == {"a": "a.h5ad", "b/c": "b_c.h5ad"}


def test_the_plan_gives_every_column_its_role_and_compartment():
    plate = _unit("a", [("AreaShape_Area", DataType.FLOAT64), ("Parent_Nuclei", DataType.INT64)])
    plan = plan_output(PRESET, "joined", (IMAGE, *derive_join(PRESET).tables), [plate],
                       joined=True)
    roles = {c.name: (c.role, c.compartment) for c in plan.columns}
    assert roles["Metadata_TableNumber"] == (Role.KEY, "")
    assert roles["Metadata_ImageNumber"] == (Role.KEY, "")
    assert roles["Metadata_ObjectNumber"] == (Role.KEY, "")
    assert roles["Cells_AreaShape_Area"] == (Role.FEATURE, "Cells")
    assert roles["Metadata_Cells_Parent_Nuclei"][0] is Role.METADATA
    assert all(c.role is not None for c in plan.columns)


def test_names_alone_give_roles_for_join_sql_output():
    preset = get_preset("cellprofiler_csv")
    assert role_by_name(preset, "Metadata_ObjectNumber") == (Role.KEY, "")
    assert role_by_name(preset, "Metadata_Well") == (Role.METADATA, "")
    assert role_by_name(preset, "Image_FileName_DNA") == (Role.IMAGE, IMAGE)
    assert role_by_name(preset, "Cytoplasm_AreaShape_Area") == (Role.FEATURE, "Cytoplasm")
    assert role_by_name(preset, "Total") == (Role.FEATURE, "")


def test_feature_groups_and_channels():
    channels = channels_of(["Image_FileName_DNA", "Image_PathName_Mito", "Image_Count_Cells",
                            "Image_FileName_Orig_RNA", "Cells_Intensity_X_DNA"])
    assert set(channels) == {"DNA", "Mito", "Orig_RNA"}
    cases = {
        "Cells_AreaShape_Area": ("AreaShape", ""),
        "Cells_Intensity_MeanIntensity_Orig_RNA": ("Intensity", "Orig_RNA"),
        "Nuclei_Correlation_Correlation_DNA_Mito": ("Correlation", "DNA;Mito"),
        "Cells_Texture_Contrast_Mito_3_00_256": ("Texture", "Mito"),
    }
    for name, expected in cases.items():
        assert feature_parts(name, name.split("_")[0], channels) == expected
    # without image columns, CellProfiler's naming places the channel
    assert feature_parts("Cells_Intensity_MeanIntensity_DNA", "Cells", ()) == ("Intensity", "DNA")
    assert feature_parts("Cells_Granularity_1_DNA", "Cells", ()) == ("Granularity", "DNA")
    assert feature_parts("Cells_Location_Center_X", "Cells", ()) == ("Location", "")
    assert feature_parts("efficientnet_12", "Cells", ()) == ("efficientnet", "")
