from __future__ import annotations

import pytest

from celltable.domain.errors import InvalidPresetError, UnknownPresetError
from celltable.domain.join import derive_join
from celltable.domain.presets import (
    PRESETS,
    Compartment,
    Preset,
    Relationship,
    SourceFormat,
    get_preset,
)


def test_an_unknown_preset_names_the_valid_ones():
    with pytest.raises(UnknownPresetError) as err:
        get_preset("nope")
    for name in PRESETS:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_builtin_preset_joins_all_its_compartments(name):
    preset = get_preset(name)
    spec = derive_join(preset)
    assert set(spec.tables) == {c.name for c in preset.compartments}
    lone = {"in-carta": "Objects", "deepprofiler": "Cells"}  # one table, no image table
    assert spec.base == lone.get(name, "Cytoplasm")
    assert spec.with_image == (name not in lone)


def test_tables_match_by_exact_name_ignoring_case():
    preset = get_preset("cellprofiler_csv")
    assert preset.match_table("Cells") == "Cells"
    assert preset.match_table("image") == "Image"
    assert preset.match_table("Cells_Cellpose3") is None
    assert get_preset("cellprofiler_sqlite").match_table("Per_Nuclei") == "Nuclei"
    assert get_preset("cellprofiler_sqlite").match_table("Nuclei") is None


def _preset(**changes):
    fields = dict(
        name="mine", description="", source_format=SourceFormat.CSV, image_table="Image",
        image_key="ImageNumber",
        compartments=(Compartment("Cytoplasm", "Cytoplasm", "ObjectNumber"),
                      Compartment("Cells", "Cells", "ObjectNumber")),
        relationships=(Relationship("Cytoplasm", "Parent_Cells", "Cells"),),
        base="Cytoplasm",
    )
    fields.update(changes)
    return Preset(**fields)


def test_a_preset_whose_base_is_not_a_compartment_is_refused():
    with pytest.raises(InvalidPresetError, match="base compartment 'Nuclei'"):
        _preset(base="Nuclei")


def test_a_relationship_to_an_unknown_compartment_is_refused():
    with pytest.raises(InvalidPresetError, match="Nuclei"):
        _preset(relationships=(Relationship("Cytoplasm", "Parent_Nuclei", "Nuclei"),))


def test_a_compartment_unrelated_to_the_base_cannot_be_joined():
    with pytest.raises(InvalidPresetError, match="not related"):
        derive_join(_preset(relationships=()))


def test_joins_follow_chains_of_relationships():
    preset = _preset(
        compartments=(Compartment("Cytoplasm", "Cytoplasm", "ObjectNumber"),
                      Compartment("Cells", "Cells", "ObjectNumber"),
                      Compartment("Nuclei", "Nuclei", "ObjectNumber")),
        relationships=(Relationship("Cells", "Parent_Nuclei", "Nuclei"),
                       Relationship("Cytoplasm", "Parent_Cells", "Cells")),
    )
    spec = derive_join(preset)
    assert [s.describe() for s in spec.steps] == [
        "Cytoplasm.Parent_Cells -> Cells", "Cells.Parent_Nuclei -> Nuclei"]
