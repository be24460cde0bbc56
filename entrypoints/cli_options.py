"""The command line's shared options, and how their values become the Python API's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from celltable import api

# Options changing the preset without writing a file (convert and inspect share them).
PresetFileOption = Annotated[Path | None, typer.Option(
    help="A TOML preset file: a built-in preset with compartments and relationships added, "
    "changed or dropped (see docs/presets.md); instead of --preset.")]
CompartmentOption = Annotated[list[str] | None, typer.Option(
    "--compartment", metavar="NAME[=TABLE]",
    help="Add a compartment (its table named as the preset names them, or TABLE); join it "
    "with --relationship. Repeatable.")]
RelationshipOption = Annotated[list[str] | None, typer.Option(
    "--relationship", metavar="RELATIONSHIP",
    help="'CHILD.COLUMN -> PARENT': CHILD's COLUMN holds the object number of a PARENT in the "
    "same image, e.g. "
    "'Cytoplasm.Parent_Cells_Cellpose3 -> Cells_Cellpose3'. Repeatable.")]
DropOption = Annotated[list[str] | None, typer.Option(
    "--drop-compartment", metavar="NAME", help="Leave a compartment out, e.g. Nuclei; the "
    "base too when --base names another. Repeatable.")]
BaseOption = Annotated[str | None, typer.Option(
    "--base", metavar="COMPARTMENT", help="The compartment whose objects are the rows (default: "
    "the preset's, Cytoplasm for CellProfiler). Cells and Nuclei only: --base Cells "
    "--drop-compartment Cytoplasm; compartments the base does not reach are joined through "
    "its Parent_* columns.")]


def given_preset(preset: str | None, preset_file: Path | None) -> str | api.Preset | None:
    """The preset named by --preset or --preset-file (None: detect it)."""
    if preset is not None and preset_file is not None:
        raise api.InvalidPresetError("give --preset or --preset-file, not both: a preset file "
                                     "names the built-in preset it changes with `extends`")
    return api.load_preset(preset_file) if preset_file is not None else preset


def preset_changes(compartments: list[str] | None, relationships: list[str] | None,
                   drop: list[str] | None, base: str | None) -> api.PresetChanges:
    """--compartment, --relationship, --drop-compartment and --base, to apply to the preset."""
    return api.PresetChanges(tuple(compartments or ()), tuple(relationships or ()),
                             tuple(drop or ()), base)


def bbox_keyword(text: str | None) -> dict[str, tuple[str, ...]]:
    """``--bbox-columns`` as ImageOptions' keyword (nothing when not given)."""
    if text is None:
        return {}
    return {"bbox_columns": tuple(c.strip() for c in text.split(","))}


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise api.InvalidOptionError(f"--catalog-option takes KEY=VALUE, not {text!r}")
    return key.strip(), value
