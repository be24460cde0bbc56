"""User presets: a built-in preset changed by a TOML file or a few command-line overrides.

Users name compartments and relationships; celltable derives the join (no SQL). A preset file::

    extends = "cellprofiler_csv"
    relationships = [
        "Cytoplasm.Parent_Cytoplasm_Cellpose3 -> Cytoplasm_Cellpose3",
        "Cytoplasm_Cellpose3.Parent_Cells_Cellpose3 -> Cells_Cellpose3",
    ]

    [compartments.Cytoplasm_Cellpose3]
    [compartments.Cells_Cellpose3]

Everything is checked before anything is read: unknown keys (with a did-you-mean), relationships
naming unknown compartments, cycles, compartments the base cannot reach. Every error is an
:class:`InvalidPresetError` saying what to change. Parsing is pure: the caller reads the file.
Each value is read and checked by ``domain/preset_values.py``, the relationships as a graph by
``domain/preset_graph.py``; this module builds the preset from them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from celltable.domain.errors import InvalidPresetError
from celltable.domain.join import derive_join
from celltable.domain.preset_graph import (
    _apply,
    _check_graph,
    _pattern,
    _reached,
    _reference_pattern,
    _resolve,
)
from celltable.domain.preset_values import (
    _HELP,
    _SETTINGS,
    _TOP_KEYS,
    CompartmentSpec,
    RelationshipSpec,
    _compartment_specs,
    _did_you_mean,
    _known_keys,
    _listed,
    _name,
    _names,
    _relationship_spec,
    _settings,
    _typed,
    parse_compartment,
    parse_relationship,
)
from celltable.domain.presets import PRESETS, Compartment, Preset, Relationship

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged (a dependency on 3.10 only)
    import tomli as tomllib

def parse_preset(text: str, source: str = "preset file",
                 builtins: Mapping[str, Preset] = PRESETS) -> Preset:
    """The preset a TOML preset file describes.

    Args:
        text: The file's content.
        source: How messages name the file (its path); a preset without ``name`` is called so.
        builtins: The presets ``extends`` may name.

    Raises:
        InvalidPresetError: Bad TOML (with its line), an unknown or mistyped key, or a preset
            that contradicts itself; the message says what to change.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidPresetError(f"{source} is not valid TOML: {e}; {_HELP}") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise InvalidPresetError(f"{source} nests arrays or tables too deeply to be a preset "
                                 f"file; {_HELP}") from None
    except (ValueError, TypeError) as e:  # anything else the parser refuses
        raise InvalidPresetError(f"{source} is not valid TOML: {e}; {_HELP}") from None
    return build_preset(doc, source, builtins)


def build_preset(doc: Mapping[str, Any], source: str = "preset file",
                 builtins: Mapping[str, Preset] = PRESETS) -> Preset:
    """The preset a parsed preset file (a TOML table) describes; see :func:`parse_preset`."""
    where = f"{source}: "
    _known_keys(doc, _TOP_KEYS, where, "key")
    for key, (kind, what) in _SETTINGS.items():
        if key in doc:
            _typed(doc[key], kind, what, f"{where}`{key}`")
    name = doc.get("name", source).strip()
    if not name or name in builtins:
        raise InvalidPresetError(
            f"{where}name {name!r} " + ("is a built-in preset's" if name else "is empty")
            + "; choose another `name` (it tells this preset apart in messages and metadata)")
    if "extends" in doc:
        parent = builtins.get(doc["extends"])
        if parent is None:
            raise InvalidPresetError(
                f"{where}extends {doc['extends']!r}, which is no built-in preset"
                f"{_did_you_mean(doc['extends'], builtins)}; `celltable presets` lists them")
    else:
        missing = [k for k in ("source_format", "image_key", "base", "compartments")
                   if k not in doc]
        if missing:
            raise InvalidPresetError(
                f"{where}without `extends` it must set {', '.join(missing)}; or start from a "
                f"built-in preset with extends = \"cellprofiler_csv\" (`celltable presets` "
                "lists them)")
        parent = None
    fields = _settings(doc, where)
    compartments = _compartment_specs(doc.get("compartments", {}), where)
    drop = _names(doc.get("drop_compartments", []), f"{where}`drop_compartments`")
    relationships = tuple(
        _relationship_spec(r, f"{where}relationships[{i}]")
        for i, r in enumerate(_typed(doc.get("relationships", []), list,
                                     "a list of \"Child.Column -> Parent\" strings",
                                     f"{where}`relationships`")))
    return customise(parent, name=name, settings=fields, compartments=compartments,
                     relationships=relationships, drop=drop, where=where)


def customise(
    preset: Preset | None,
    *,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    compartments: Sequence[CompartmentSpec] = (),
    relationships: Sequence[RelationshipSpec] = (),
    drop: Sequence[str] = (),
    where: str = "",
    from_base: bool = False,
) -> Preset:
    """``preset`` with compartments added or changed, relationships added and compartments
    dropped (None: a preset from ``settings`` and ``compartments`` alone).

    A relationship given to a parent replaces the preset's relationship to that parent (each
    compartment is joined once, through one relationship); dropping a compartment drops its
    relationships. Table and object-number columns not given follow the preset's naming
    (``Per_{name}``, ``{name}_Number_Object_Number`` ...), as do relationship columns
    (``Parent_{parent}``). With ``from_base`` (a base chosen on the command line), a
    compartment the base no longer reaches is joined from the base by that naming
    (``Cells.Parent_Nuclei -> Nuclei``, as CellProfiler writes it).

    Raises:
        InvalidPresetError: The result names unknown compartments, has a cycle, leaves a
            compartment unreachable from the base, or contradicts itself otherwise.
    """
    settings = dict(settings or {})
    inherited = preset.compartments if preset else ()
    known = {c.name: c for c in inherited}
    for name_ in drop:
        if name_ not in known and not any(s.name == name_ for s in compartments):
            raise InvalidPresetError(
                f"{where}cannot drop {name_!r}: no such compartment"
                f"{_did_you_mean(name_, known)}; the compartments are {_listed(known)}")
    table_of = _pattern((c.table, c.name) for c in inherited)
    number_of = _pattern((c.object_number, c.name) for c in inherited)
    comps = {c.name: c for c in inherited}
    for spec in compartments:
        old = comps.get(spec.name)
        table = spec.table or (old.table if old else _apply(table_of, spec.name))
        number = spec.object_number or (old.object_number if old else (
            _apply(number_of, spec.name) if number_of else None))
        if not number:
            raise InvalidPresetError(
                f"{where}compartment {spec.name!r} needs its object number column: "
                f"set object_number = \"ObjectNumber\" (or its name) under "
                f"[compartments.{spec.name}]")
        comps[spec.name] = Compartment(spec.name, table, number)
    for name_ in drop:
        comps.pop(name_, None)
    base = settings.get("base") or (preset.base if preset else "")
    if base in drop:
        others = [c for c in comps if c != base] or ["Cells"]
        how = (f"make another compartment the rows: --base {others[0]} --drop-compartment "
               f"{base} (compartments it does not reach are joined through its Parent_* "
               "columns, or name one with --relationship)" if from_base or "options" in where
               else "set `base` to another compartment or keep it")
        raise InvalidPresetError(
            f"{where}{base!r} is the base compartment (its objects are the rows) and cannot be "
            f"dropped alone; {how}")
    if base not in comps:
        raise InvalidPresetError(
            f"{where}base {base!r} is not a compartment{_did_you_mean(base, comps)}; the "
            f"compartments are {_listed(comps)}")
    column_of = _reference_pattern(preset.relationships if preset else ())
    given = [_resolve(spec, comps, column_of, where) for spec in relationships]
    rels, replaced = [], []
    for r in preset.relationships if preset else ():
        if r.child in comps and r.parent in comps:
            (replaced if any(g.parent == r.parent for g in given) else rels).append(r)
    rels += given
    if from_base and column_of:
        reached = _reached(base, rels)
        children = {r.child for r in rels}  # a compartment naming its own parents: a child
        rels += [Relationship(base, _apply(column_of, base, n), n) for n in comps
                 if n not in reached and n not in children]
    _check_graph(base, tuple(comps), tuple(rels), where, column_of, replaced)
    fields: dict[str, Any] = {
        "name": name or (preset.name if preset else "custom"),
        "description": settings.pop("description", None) or _describe(preset, compartments, drop),
        "compartments": tuple(comps.values()),
        "relationships": tuple(rels),
        "base": base,
    }
    settings.pop("base", None)
    fields.update(settings)
    try:
        built = replace(preset, **fields) if preset else Preset(**{"image_table": "", **fields})
        derive_join(built)
    except (InvalidPresetError, TypeError) as e:
        raise InvalidPresetError(f"{where}{e}") from None
    return built


def override_builtin(preset: Preset, *, compartments: Sequence[str] = (),
                     relationships: Sequence[str] = (), drop: Sequence[str] = (),
                     base: str | None = None) -> Preset:
    """``preset`` changed by command-line overrides (``--compartment NAME[=TABLE]``,
    ``--relationship "Child.Column -> Parent"``, ``--drop-compartment NAME``, ``--base NAME``);
    ``preset`` itself when there are none. A new base may drop the old one ("Cells and Nuclei
    only": ``--base Cells --drop-compartment Cytoplasm``); compartments it does not reach are
    joined from it through the preset's reference naming (``Cells.Parent_Nuclei -> Nuclei``).

    Raises:
        InvalidPresetError: As :func:`customise`, the message naming the option to change.
    """
    if not (compartments or relationships or drop or base):
        return preset
    if base is not None:
        base = _name(base.strip(), "--base: ")
    return customise(
        preset,
        name=f"{preset.name} (customised)",
        compartments=[parse_compartment(c, "--compartment: ") for c in compartments],
        relationships=[parse_relationship(r, "--relationship: ") for r in relationships],
        drop=drop,
        where=f"preset {preset.name!r} with the options given: ",
        settings={"base": base} if base else None,
        from_base=bool(base) and base != preset.base,
    )


def _describe(preset: Preset | None, added: Sequence[CompartmentSpec], drop: Sequence[str]) -> str:
    parts = [f"{preset.name}" if preset else "a user preset"]
    if added:
        parts.append("with " + ", ".join(c.name for c in added))
    if drop:
        parts.append("without " + ", ".join(drop))
    return " ".join(parts)
