from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celltable.domain.errors import InvalidPresetError
from celltable.domain.join import derive_join
from celltable.domain.preset_file import customise, override_builtin, parse_preset
from celltable.domain.preset_values import CompartmentSpec, parse_compartment, parse_relationship
from celltable.domain.presets import PRESETS, Compartment, Relationship, SourceFormat, get_preset

CELLPOSE = """
extends = "cellprofiler_csv"
relationships = [
    "Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3",
    "Cytoplasm_Cellpose3.Parent_Cells_Cellpose3 -> Cells_Cellpose3.ObjectNumber",
    { child = "Cytoplasm_Cellpose3", column = "Parent_Nuclei_Cellpose3", parent = "Nuclei_Cellpose3" },
]

[compartments.Cytoplasm_Cellpose3]
[compartments.Cells_Cellpose3]
table = "cells_cellpose3"
[compartments.Nuclei_Cellpose3]
object_number = "ObjectNumber"
"""


def _fails(text: str, *words: str) -> str:
    with pytest.raises(InvalidPresetError) as raised:
        parse_preset(text, "my.toml")
    message = str(raised.value)
    assert all(w in message for w in words), message
    return message


def _csv(text: str) -> str:
    return 'extends = "cellprofiler_csv"\n' + text


# what a file builds ------------------------------------------------------------------------------


def test_a_file_adds_a_second_segmentation_joined_through_the_base():
    preset = parse_preset(CELLPOSE, "cellpose.toml")
    assert preset.name == "cellpose.toml"  # no `name`: the file's
    assert [c.name for c in preset.compartments] == [
        "Cytoplasm", "Cells", "Nuclei", "Cytoplasm_Cellpose3", "Cells_Cellpose3", "Nuclei_Cellpose3"]
    assert preset.compartment("Cells_Cellpose3") == Compartment(
        "Cells_Cellpose3", "cells_cellpose3", "ObjectNumber")
    assert preset.compartment("Cytoplasm_Cellpose3").table == "Cytoplasm_Cellpose3"
    assert preset.match_table("Cells_Cellpose3") == "Cells_Cellpose3"
    steps = [s.describe() for s in derive_join(preset).steps]
    assert steps == [
        "Cytoplasm.Parent_Cells -> Cells",
        "Cytoplasm.Parent_Nuclei -> Nuclei",
        "Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3",
        "Cytoplasm_Cellpose3.Parent_Cells_Cellpose3 -> Cells_Cellpose3",
        "Cytoplasm_Cellpose3.Parent_Nuclei_Cellpose3 -> Nuclei_Cellpose3",
    ]
    base = get_preset("cellprofiler_csv")
    assert (preset.source_format, preset.image_table, preset.base) == (
        base.source_format, base.image_table, base.base)


@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.relationships))
def test_extending_a_preset_alone_changes_only_its_name(name):
    preset = parse_preset(f'extends = "{name}"\nname = "mine"\n')
    assert replace(preset, name=name, description=PRESETS[name].description) == PRESETS[name]


def test_new_compartments_and_references_are_named_as_the_extended_preset_names_them():
    preset = parse_preset('extends = "cellprofiler_sqlite"\n'
                          'relationships = ["Cytoplasm -> Cells_Cellpose3"]\n'
                          "[compartments.Cells_Cellpose3]\n")
    assert preset.compartment("Cells_Cellpose3") == Compartment(
        "Cells_Cellpose3", "Per_Cells_Cellpose3", "Cells_Cellpose3_Number_Object_Number")
    assert preset.relationships[-1] == Relationship(
        "Cytoplasm", "Cytoplasm_Parent_Cells_Cellpose3", "Cells_Cellpose3")
    csv = parse_preset(_csv('relationships = ["Cytoplasm -> Extra"]\n[compartments.Extra]\n'))
    assert csv.relationships[-1].column == "Parent_Extra"
    assert csv.compartment("Extra") == Compartment("Extra", "Extra", "ObjectNumber")


def test_a_relationship_to_a_known_parent_replaces_the_presets():
    preset = parse_preset(_csv('relationships = ["Cytoplasm.Parent_Cells_Again -> Cells"]\n'))
    assert Relationship("Cytoplasm", "Parent_Cells_Again", "Cells") in preset.relationships
    assert Relationship("Cytoplasm", "Parent_Cells", "Cells") not in preset.relationships
    assert len(preset.relationships) == 2


def test_a_compartment_of_the_preset_can_be_pointed_at_another_table():
    preset = parse_preset(_csv('[compartments.Cells]\ntable = "MyCells"\n'))
    assert preset.compartment("Cells") == Compartment("Cells", "MyCells", "ObjectNumber")
    assert preset.match_table("mycells") == "Cells" and preset.match_table("Cells") is None


def test_dropping_a_compartment_drops_its_relationships():
    preset = parse_preset(_csv('drop_compartments = ["Nuclei"]\n'))
    assert [c.name for c in preset.compartments] == ["Cytoplasm", "Cells"]
    assert preset.relationships == (Relationship("Cytoplasm", "Parent_Cells", "Cells"),)
    assert derive_join(preset).tables == ("Cytoplasm", "Cells")
    assert "without Nuclei" in preset.description


def test_a_chain_can_join_a_compartment_through_another():
    preset = parse_preset(_csv('relationships = ["Cells.Parent_Nuclei -> Nuclei"]\n'))
    assert [s.describe() for s in derive_join(preset).steps] == [
        "Cytoplasm.Parent_Cells -> Cells", "Cells.Parent_Nuclei -> Nuclei"]


def test_settings_change_the_preset():
    preset = parse_preset(_csv('name = "mine"\ndescription = "my plates"\nimage_table = "Images"\n'
                               'keep_object_numbers = true\nimage_columns = ["FileName_"]\n'
                               'table_number = "TableNumber"\n'))
    assert (preset.name, preset.description, preset.image_table) == ("mine", "my plates", "Images")
    assert preset.keep_object_numbers and preset.image_columns == ("FileName_",)
    assert preset.table_number == "TableNumber"
    assert parse_preset(_csv('table_number = ""\n')).table_number is None


def test_a_file_without_extends_describes_a_whole_preset():
    preset = parse_preset("""
source_format = "sqlite"
image_table = "Images"
image_key = "ImageId"
base = "Spots"
relationships = ["Spots.Cell -> Cells"]
[compartments.Spots]
table = "spots"
object_number = "SpotId"
[compartments.Cells]
table = "cells"
object_number = "CellId"
""", "spots.toml")
    assert preset.source_format is SourceFormat.SQLITE and preset.image_key == "ImageId"
    assert [s.describe() for s in derive_join(preset).steps] == ["Spots.Cell -> Cells"]


def test_parsing_relationships_and_compartments():
    assert parse_relationship(" Cytoplasm.Parent_Cells  ->  Cells ").column == "Parent_Cells"
    rel = parse_relationship("A.Parent B -> B.Id")
    assert (rel.child, rel.column, rel.parent, rel.parent_column) == ("A", "Parent B", "B", "Id")
    assert parse_relationship("A -> B").column is None
    assert parse_compartment("Cells_Cellpose3") == CompartmentSpec("Cells_Cellpose3")
    assert parse_compartment("Cells_Cellpose3=Per_CP3") == CompartmentSpec(
        "Cells_Cellpose3", "Per_CP3")


def test_overrides_without_a_file():
    base = get_preset("cellprofiler_csv")
    assert override_builtin(base) is base
    preset = override_builtin(base, compartments=["Extra=extra_objects"],
                              relationships=["Cells.Parent_Extra -> Extra"], drop=["Nuclei"])
    assert preset.name == "cellprofiler_csv (customised)"
    assert [c.table for c in preset.compartments] == ["Cytoplasm", "Cells", "extra_objects"]
    assert derive_join(preset).tables == ("Cytoplasm", "Cells", "Extra")


def test_customise_builds_from_specs():
    preset = customise(get_preset("cellprofiler_csv"), drop=["Nuclei", "Cells"])
    assert derive_join(preset).tables == ("Cytoplasm",)


# what is refused, and what the message says ---------------------------------------------------


def test_bad_toml_names_the_file_and_line():
    _fails('extends = "cellprofiler_csv"\nrelationships = [\n  "A -> B"\n  "C -> D"\n]\n',
           "my.toml is not valid TOML", "line 4")


def test_unknown_keys_suggest_the_key_meant():
    _fails(_csv("drop_compartment = ['Nuclei']\n"), "unknown key 'drop_compartment'",
           "did you mean 'drop_compartments'?", "valid keys:")
    _fails(_csv("[compartments.X]\nobject_numbr = 'N'\n"), "[compartments.X]",
           "unknown key 'object_numbr'", "did you mean 'object_number'?")
    _fails(_csv('relationships = [{ child = "Cytoplasm", colum = "x", parent = "Cells" }]\n'),
           "relationships[0]", "did you mean 'column'?")


def test_a_top_level_key_under_a_compartment_says_toml_put_it_there():
    _fails(_csv("[compartments.X]\ndrop_compartments = ['Nuclei']\n"),
           "[compartments.X] holds 'drop_compartments', a top-level key",
           "move it above the first [compartments.*] header")


def test_an_unknown_extended_preset_suggests_the_one_meant():
    _fails('extends = "cellprofiler-csv"\n', "no built-in preset",
           "did you mean 'cellprofiler_csv'?", "celltable presets")


def test_a_relationship_naming_an_unknown_compartment_names_the_known_ones():
    _fails(_csv('relationships = ["Cytoplasm.Parent_Nucleus -> Nucleus"]\n'),
           "'Nucleus' as parent", "did you mean 'Nuclei'?", "Cytoplasm, Cells, Nuclei",
           "[compartments.Nucleus]")
    _fails(_csv('relationships = ["Cytoplasmm.Parent_Cells -> Cells"]\n'), "'Cytoplasmm' as child")


def test_a_cycle_is_named():
    _fails(_csv('relationships = ["Cells.Parent_Cytoplasm -> Cytoplasm"]\n'),
           "cycle (Cytoplasm -> Cells -> Cytoplasm)", "remove the one pointing back")
    _fails(_csv('relationships = ["X.Parent_Y -> Y", "Y.Parent_X -> X"]\n'
                "[compartments.X]\n[compartments.Y]\n"), "cycle")


def test_a_compartment_the_base_cannot_reach_says_how_to_connect_it():
    message = _fails(_csv("[compartments.Cells_Cellpose3]\n"),
                     "Cells_Cellpose3 is not connected to the base 'Cytoplasm'",
                     '"Cytoplasm.Parent_Cells_Cellpose3 -> Cells_Cellpose3"', "RelateObjects",
                     "or drop Cells_Cellpose3")
    assert "joins Cells onto" not in message
    _fails(_csv('relationships = ["Cells_Cellpose3.Parent_X -> X"]\n'
                "[compartments.Cells_Cellpose3]\n[compartments.X]\n"),
           "joins X onto Cells_Cellpose3, not Cells_Cellpose3 onto the base")
    _fails(_csv('relationships = ["Cells_Cellpose3.Parent_Cells -> Cells"]\n'
                "[compartments.Cells_Cellpose3]\n"),
           "Cells is no longer joined", "replaced the preset's Cytoplasm.Parent_Cells -> Cells",
           "goes from the child holding the reference to its parent")
    sqlite = 'extends = "cellprofiler_sqlite"\n[compartments.X]\n'
    _fails(sqlite, '"Cytoplasm.Cytoplasm_Parent_X -> X"')


def test_a_compartment_reached_twice_is_refused():
    _fails(_csv('relationships = ["Cytoplasm.Parent_Nuclei -> Nuclei", '
                '"Cells.Parent_Nuclei -> Nuclei"]\n'),
           "Nuclei is reached twice", "Cytoplasm.Parent_Nuclei -> Nuclei",
           "Cells.Parent_Nuclei -> Nuclei", "keep one")


def test_dropping_what_is_not_there_or_the_base_is_refused():
    _fails(_csv('drop_compartments = ["Nucleus"]\n'), "cannot drop 'Nucleus'",
           "did you mean 'Nuclei'?")
    _fails(_csv('drop_compartments = ["Cytoplasm"]\n'), "'Cytoplasm' is the base",
           "set `base`")
    _fails(_csv('base = "Cells"\n'), "Cytoplasm, Nuclei are not connected to the base 'Cells'",
           "Cytoplasm.Parent_Cells -> Cells joins Cells onto Cytoplasm")


def test_values_of_the_wrong_type_say_what_to_write():
    _fails(_csv("keep_object_numbers = 'yes'\n"), "`keep_object_numbers` must be true or false")
    _fails(_csv("image_key = 3\n"), "`image_key` must be a column name in quotes, not 3")
    _fails(_csv('relationships = "Cytoplasm.Parent_Cells -> Cells"\n'),
           "`relationships` must be a list")
    _fails(_csv("relationships = [3]\n"), "relationships[0] must be a string")
    _fails(_csv("compartments = ['Cells']\n"), "`compartments` must be a table")
    _fails(_csv("[compartments]\nX = 'x'\n"), "[compartments.X] must be a table")
    _fails(_csv('source_format = "parquet"\n'), "source_format 'parquet' is not one of",
           "'csv'", "'sqlite'")
    _fails(_csv('[compartments.X]\ntable = ""\n'), "`table` is empty")


def test_names_that_cannot_prefix_columns_are_refused():
    _fails(_csv('drop_compartments = ["Cell nuclei"]\n'), "'Cell nuclei' cannot name a compartment",
           "letters, digits and _")
    _fails(_csv("[compartments.Image]\n"), "'Image'")


def test_a_name_of_a_built_in_preset_is_refused():
    _fails(_csv('name = "cellprofiler_sqlite"\n'), "is a built-in preset's", "choose another")
    _fails(_csv('name = "cellprofiler_csv"\n'), "is a built-in preset's")


def test_malformed_relationships_say_how_to_write_them():
    _fails(_csv('relationships = ["Cytoplasm.Parent_Cells to Cells"]\n'),
           '"Child.Column -> Parent"', "Cytoplasm.Parent_Cells -> Cells")
    _fails(_csv('relationships = ["Cytoplasm.Parent_Cells -> Cells.Id"]\n'),
           "Cells objects are numbered by 'ObjectNumber', not 'Id'")
    _fails(_csv('relationships = ["Cells.Parent -> Cells"]\n'), "relates Cells to itself")
    _fails(_csv('relationships = [{ child = "Cytoplasm" }]\n'), "lacks parent")
    _fails('extends = "in-carta"\nrelationships = ["Objects -> B"]\n[compartments.B]\n',
           'write "Objects.COLUMN -> B"')


def test_a_file_without_extends_must_say_what_it_reads():
    _fails('base = "Cells"\n', "without `extends` it must set source_format, image_key",
           'extends = "cellprofiler_csv"')


def test_option_errors_name_the_option():
    base = get_preset("cellprofiler_csv")
    with pytest.raises(InvalidPresetError, match="--relationship: 'Cells' is not a relationship"):
        override_builtin(base, relationships=["Cells"])
    with pytest.raises(InvalidPresetError, match="--compartment: 'Cells Two'"):
        override_builtin(base, compartments=["Cells Two"])
    with pytest.raises(InvalidPresetError, match="with the options given: Extra is not connected"):
        override_builtin(base, compartments=["Extra"])


# properties ------------------------------------------------------------------------------------


@st.composite
def _trees(draw) -> list[int]:
    """Parents of compartments 1..n in a tree rooted at 0 (the base): parent[i] < i."""
    n = draw(st.integers(1, 6))
    return [draw(st.integers(0, i - 1)) for i in range(1, n + 1)]


def _file(parents: list[int], extra: tuple[int, int] | None = None) -> str:
    """A whole preset (no `extends`): compartment i is joined from compartment parents[i-1]."""
    edges = [*((p, i) for i, p in enumerate(parents, start=1)), *([extra] if extra else [])]
    rels = ", ".join(f'"C{child}.Ref_C{parent} -> C{parent}"' for child, parent in
                     ((p, i) for p, i in edges))
    comps = "".join(f'[compartments.C{i}]\nobject_number = "ObjectNumber"\n'
                    for i in range(len(parents) + 1))
    return ('source_format = "csv"\nimage_table = "Image"\nimage_key = "ImageNumber"\n'
            f'base = "C0"\nrelationships = [{rels}]\n{comps}')


@given(_trees())
def test_every_tree_of_relationships_joins_each_compartment_once(parents):
    spec = derive_join(parse_preset(_file(parents)))
    assert sorted(spec.tables) == sorted(f"C{i}" for i in range(len(parents) + 1))
    assert len(spec.steps) == len(parents)


@given(_trees(), st.data())
def test_one_relationship_more_than_a_tree_is_refused(parents, data):
    n = len(parents)
    child = data.draw(st.integers(0, n))
    parent = data.draw(st.integers(0, n).filter(lambda p: p != child))
    with pytest.raises(InvalidPresetError, match=r"cycle|reached twice"):
        parse_preset(_file(parents, (child, parent)))


def test_a_new_compartment_without_extends_needs_its_object_number():
    _fails('source_format = "csv"\nimage_key = "ImageNumber"\nbase = "A"\n[compartments.A]\n',
           "compartment 'A' needs its object number column", "object_number =")
