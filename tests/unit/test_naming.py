from __future__ import annotations

from celltable.domain.naming import (
    column_order_key,
    name_compartment_columns,
    name_image_columns,
)
from celltable.domain.presets import get_preset

CSV = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")


def _names(named):
    return [c.output for c in named]


def test_csv_and_sqlite_exports_of_a_compartment_get_the_same_names():
    csv = name_compartment_columns(
        CSV, CSV.compartment("Cytoplasm"),
        ["ImageNumber", "ObjectNumber", "Parent_Cells", "AreaShape_Area"], joined=True)
    sql = name_compartment_columns(
        SQLITE, SQLITE.compartment("Cytoplasm"),
        ["ImageNumber", "Cytoplasm_Number_Object_Number", "Cytoplasm_Parent_Cells",
         "Cytoplasm_AreaShape_Area"], joined=True)
    expected = ["Metadata_ImageNumber", "Metadata_ObjectNumber",
                "Metadata_Cytoplasm_Parent_Cells", "Cytoplasm_AreaShape_Area"]
    assert _names(csv) == _names(sql) == expected


def test_partner_compartments_drop_keys_equal_to_the_base_references():
    named = name_compartment_columns(
        SQLITE, SQLITE.compartment("Cells"),
        ["ImageNumber", "Cells_Number_Object_Number", "Cells_Parent_Nuclei", "Cells_AreaShape_Area"],
        joined=True)
    assert _names(named) == ["Metadata_Cells_Parent_Nuclei", "Cells_AreaShape_Area"]


def test_the_pycytominer_preset_keeps_object_numbers_as_metadata():
    preset = get_preset("cellprofiler_sqlite_pycytominer")
    named = name_compartment_columns(
        preset, preset.compartment("Nuclei"), ["ImageNumber", "Nuclei_Number_Object_Number"], joined=True)
    assert _names(named) == ["Metadata_Nuclei_Number_Object_Number"]


def test_image_metadata_loses_the_image_prefix_and_other_columns_gain_it():
    sql = name_image_columns(
        SQLITE, ["ImageNumber", "Image_Metadata_Well", "Image_FileName_DNA", "Image_Count_Cells",
                 "Image_Intensity_MeanIntensity_DNA"], joined=True)
    csv = name_image_columns(
        CSV, ["ImageNumber", "Metadata_Well", "FileName_DNA", "Count_Cells",
              "Intensity_MeanIntensity_DNA"], joined=True)
    assert _names(sql) == _names(csv) == ["Metadata_Well", "Image_FileName_DNA", "Image_Count_Cells"]


def test_an_unjoined_image_table_keeps_every_column():
    named = name_image_columns(CSV, ["ImageNumber", "Intensity_MeanIntensity_DNA"], joined=False)
    assert _names(named) == ["Metadata_ImageNumber", "Image_Intensity_MeanIntensity_DNA"]


def test_columns_that_would_share_a_name_are_both_kept():
    named = name_compartment_columns(
        CSV, CSV.compartment("Cells"), ["AreaShape_Area", "Cells_AreaShape_Area"], joined=True)
    assert _names(named) == ["Cells_AreaShape_Area", "Cells_AreaShape_Area_2"]


def test_columns_are_ordered_keys_metadata_image_then_compartments():
    names = ["Nuclei_A", "Cells_B", "Metadata_Well", "Image_FileName_DNA", "Cytoplasm_C",
             "Metadata_ObjectNumber", "Metadata_ImageNumber", "Metadata_TableNumber", "Cells_A"]
    ordered = sorted(names, key=lambda n: column_order_key(CSV, n))
    assert ordered == ["Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber",
                       "Metadata_Well", "Image_FileName_DNA", "Cytoplasm_C", "Cells_A", "Cells_B",
                       "Nuclei_A"]


def test_safe_names_keep_letters_digits_and_underscores_only():
    from celltable.domain.naming import safe_name

    assert safe_name("WELL LABEL") == "WELL_LABEL"
    assert safe_name('Primary Target Intensity-Bckg "wv1"') == "Primary_Target_Intensity_Bckg_wv1"
    assert safe_name("a__b") == "a__b" and safe_name(" - ") == "_"


def test_a_table_number_column_is_the_plate_not_a_feature():
    from celltable.domain.naming import name_compartment_columns
    from celltable.domain.presets import get_preset

    preset = get_preset("cell-health-cellprofiler-to-cytominer-database")
    named = name_compartment_columns(preset, preset.compartment("Cells"),
                                     ["TableNumber", "ImageNumber", "ObjectNumber", "Cells_X"],
                                     joined=True)
    assert [c.output for c in named] == ["Cells_X"]
