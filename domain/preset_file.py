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
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from celltable.domain.errors import InvalidPresetError
from celltable.domain.join import derive_join
from celltable.domain.presets import (
    IMAGE,
    PRESETS,
    Compartment,
    Preset,
    Relationship,
    SourceFormat,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged (a dependency on 3.10 only)
    import tomli as tomllib

# key -> (type, what to write) for the scalar settings a file may change
_SETTINGS: dict[str, tuple[type, str]] = {
    "name": (str, "a name in quotes"),
    "description": (str, "text in quotes"),
    "extends": (str, "a built-in preset name in quotes"),
    "source_format": (str, "\"csv\" or \"sqlite\""),
    "image_table": (str, "a table name in quotes (\"\" for none)"),
    "image_key": (str, "a column name in quotes"),
    "base": (str, "a compartment name in quotes"),
    "table_number": (str, "a column name in quotes (\"\" for none)"),
    "image_columns": (list, "a list of column-name prefixes, [\"FileName_\", ...]"),
    "metadata_columns": (list, "a list of column names, [\"Plate ID\", ...]"),
    "keep_object_numbers": (bool, "true or false"),
    "one_table_per_file": (bool, "true or false"),
    "safe_names": (bool, "true or false"),
}
_TOP_KEYS = (*_SETTINGS, "compartments", "drop_compartments", "relationships")
_COMPARTMENT_KEYS = ("table", "object_number")
_RELATIONSHIP_KEYS = ("child", "column", "parent")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HELP = "see docs/presets.md"


@dataclass(frozen=True, slots=True)
class RelationshipSpec:
    """A relationship as the user wrote it; ``column`` None means "as the preset names them"."""

    child: str
    column: str | None
    parent: str
    parent_column: str | None = None
    text: str = ""

    def describe(self) -> str:
        return self.text or f"{self.child}.{self.column} -> {self.parent}"


@dataclass(frozen=True, slots=True)
class CompartmentSpec:
    """A compartment to add or change; None fields keep the preset's (or its naming pattern)."""

    name: str
    table: str | None = None
    object_number: str | None = None


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


def parse_relationship(text: str, where: str = "") -> RelationshipSpec:
    """``"Child.Column -> Parent"`` (or ``"Child -> Parent"``, the column as the preset names
    references, or ``"... -> Parent.ObjectNumber"``) as a :class:`RelationshipSpec`.

    Raises:
        InvalidPresetError: The text is not of that form.
    """
    left, arrow, right = text.partition("->")
    child, _, column = left.strip().partition(".")
    parent, _, parent_column = right.strip().partition(".")
    if not arrow or not child.strip() or not parent.strip() or "->" in right:
        raise InvalidPresetError(
            f"{where}{text!r} is not a relationship; write \"Child.Column -> Parent\", e.g. "
            "\"Cytoplasm.Parent_Cells -> Cells\" (the child's column holds the parent's object "
            "number)")
    return RelationshipSpec(child.strip(), column.strip() or None, parent.strip(),
                            parent_column.strip() or None, " ".join(text.split()))


def parse_compartment(text: str, where: str = "") -> CompartmentSpec:
    """``"NAME"`` or ``"NAME=TABLE"`` (a CSV file stem or SQLite table) as a compartment."""
    name, _, table = text.partition("=")
    return CompartmentSpec(_name(name.strip(), where), table.strip() or None)


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


# parsing helpers -------------------------------------------------------------------------------


def _settings(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _SETTINGS:
        if key in ("name", "extends") or key not in doc:
            continue
        value = doc[key]
        if key == "source_format":
            try:
                value = SourceFormat(value.lower())
            except ValueError:
                valid = ", ".join(repr(f.value) for f in SourceFormat)
                raise InvalidPresetError(
                    f"{where}source_format {value!r} is not one of {valid}") from None
        elif key == "table_number":
            value = value or None
        elif key in ("image_columns", "metadata_columns"):
            value = tuple(_strings(value, f"{where}`{key}`"))
        elif key == "base":
            value = _name(value, f"{where}`base`: ")
        out[key] = value
    return out


def _compartment_specs(table: Any, where: str) -> list[CompartmentSpec]:
    _typed(table, dict, "a table of compartments: [compartments.Cells_Cellpose3]",
           f"{where}`compartments`")
    specs = []
    for name, body in table.items():
        at = f"{where}[compartments.{name}]"
        if not isinstance(body, dict):
            raise InvalidPresetError(
                f"{at} must be a table: write [compartments.{name}] and under it "
                "table = \"...\", object_number = \"...\" (both optional)")
        stray = [k for k in body if k in _TOP_KEYS]
        if stray:
            raise InvalidPresetError(
                f"{at} holds {', '.join(map(repr, stray))}, a top-level key: in TOML every key "
                "after a [header] belongs to that table; move it above the first "
                "[compartments.*] header")
        _known_keys(body, _COMPARTMENT_KEYS, f"{at}: ", "key")
        for key in _COMPARTMENT_KEYS:
            if key in body:
                _typed(body[key], str, "a name in quotes", f"{at} `{key}`")
                if not body[key].strip():
                    raise InvalidPresetError(f"{at} `{key}` is empty; give a name or leave it out")
        specs.append(CompartmentSpec(_name(name, f"{at}: "), body.get("table"),
                                     body.get("object_number")))
    return specs


def _relationship_spec(value: Any, where: str) -> RelationshipSpec:
    if isinstance(value, str):
        return parse_relationship(value, f"{where}: ")
    if isinstance(value, dict):
        _known_keys(value, _RELATIONSHIP_KEYS, f"{where}: ", "key")
        missing = [k for k in ("child", "parent") if k not in value]
        if missing:
            raise InvalidPresetError(
                f"{where} lacks {', '.join(missing)}; write "
                "{ child = \"Cytoplasm\", column = \"Parent_Cells\", parent = \"Cells\" }")
        for k in _RELATIONSHIP_KEYS:
            if k in value:
                _typed(value[k], str, "a name in quotes", f"{where} `{k}`")
        return RelationshipSpec(value["child"], value.get("column"), value["parent"])
    raise InvalidPresetError(
        f"{where} must be a string \"Child.Column -> Parent\" or a table "
        f"{{ child = ..., column = ..., parent = ... }}, not {value!r}")


def _resolve(spec: RelationshipSpec, comps: Mapping[str, Compartment], column_of: str | None,
             where: str) -> Relationship:
    for role, name in (("child", spec.child), ("parent", spec.parent)):
        if name not in comps:
            raise InvalidPresetError(
                f"{where}relationship {spec.describe()!r} names {name!r} as {role}, which is no "
                f"compartment{_did_you_mean(name, comps)}; the compartments are {_listed(comps)} "
                f"(add it under [compartments.{name}] or with --compartment {name})")
    parent = comps[spec.parent]
    if spec.parent_column and spec.parent_column != parent.object_number:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r}: {spec.parent} objects are numbered by "
            f"{parent.object_number!r}, not {spec.parent_column!r}; write "
            f"\"... -> {spec.parent}\" or set object_number under [compartments.{spec.parent}]")
    column = spec.column or (_apply(column_of, spec.child, spec.parent) if column_of else None)
    if not column:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r} needs the child's column holding the "
            f"parent's object number: write \"{spec.child}.COLUMN -> {spec.parent}\"")
    if spec.child == spec.parent:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r} relates {spec.child} to itself; a "
            "relationship goes from a child compartment to another, its parent")
    return Relationship(spec.child, column, spec.parent)


def _check_graph(base: str, names: Sequence[str], rels: Sequence[Relationship],
                 where: str, column_of: str | None, replaced: Sequence[Relationship] = ()) -> None:
    """Every compartment reached from the base exactly once, walking child -> parent."""
    parents: dict[str, list[Relationship]] = {}
    for r in rels:
        parents.setdefault(r.child, []).append(r)
    cycle = _find_cycle(names, parents)
    if cycle:
        raise InvalidPresetError(
            f"{where}the relationships form a cycle ({' -> '.join(cycle)}); each goes from a "
            "child to its parent, so remove the one pointing back")
    reached = {base: "the base"}
    order = [base]
    for child in order:
        for r in parents.get(child, []):
            if r.parent in reached:
                raise InvalidPresetError(
                    f"{where}{r.parent} is reached twice ({reached[r.parent]} and "
                    f"{r.child}.{r.column} -> {r.parent}); celltable joins each compartment "
                    "once: keep one of the two relationships")
            reached[r.parent] = f"{r.child}.{r.column} -> {r.parent}"
            order.append(r.parent)
    lost = [n for n in names if n not in reached]
    for old in replaced:
        if old.parent in lost:
            new = next(r for r in rels if r.parent == old.parent)
            raise InvalidPresetError(
                f"{where}{old.parent} is no longer joined: {new.child}.{new.column} -> "
                f"{new.parent} replaced the preset's {old.child}.{old.column} -> {old.parent} "
                f"(each compartment is joined through one relationship), and {new.child} is not "
                f"joined itself. A relationship goes from the child holding the reference to "
                f"its parent: write the one that joins {new.child} from the base's side")
    if lost:
        first = lost[0]
        example = _apply(column_of, base, first) if column_of else f"Parent_{first}"
        own = [r for r in rels if r.child == first]
        why = (f" ({own[0].child}.{own[0].column} -> {own[0].parent} joins {own[0].parent} onto "
               f"{first}, not {first} onto the base)" if own else "")
        raise InvalidPresetError(
            f"{where}{_listed(lost)} {'is' if len(lost) == 1 else 'are'} not connected to the "
            f"base {base!r}{why}: joins go from the base to the parents its columns name. Add a "
            f"relationship from a joined compartment, e.g. \"{base}.{example} -> {first}\" "
            f"(CellProfiler's RelateObjects writes such columns), or drop {first}")


def _reached(base: str, rels: Sequence[Relationship]) -> set[str]:
    """The compartments joined from ``base``, walking child -> parent."""
    reached, todo = {base}, [base]
    while todo:
        child = todo.pop()
        for r in rels:
            if r.child == child and r.parent not in reached:
                reached.add(r.parent)
                todo.append(r.parent)
    return reached


def _find_cycle(names: Sequence[str], parents: Mapping[str, list[Relationship]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for r in parents.get(node, []):
            if state.get(r.parent) == 1:  # on the path: a cycle back to it
                return [*path[path.index(r.parent):], node, r.parent]
            if r.parent not in state:
                found = visit(r.parent, [*path, node])
                if found:
                    return found
        state[node] = 2
        return []

    for n in names:
        if n not in state:
            found = visit(n, [])
            if found:
                return found
    return []


def _pattern(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The naming shared by every (value, name) pair, ``{name}`` standing for the name; None
    when they differ or there are none."""
    found = {value.replace(name, "{name}") for value, name in pairs if value != "*"}
    return found.pop() if len(found) == 1 else None


def _reference_pattern(rels: Iterable[Relationship]) -> str | None:
    found = set()
    for r in rels:
        p = r.column.replace(r.child, "{child}").replace(r.parent, "{parent}")
        if _apply(p, r.child, r.parent) != r.column:
            return None
        found.add(p)
    return found.pop() if len(found) == 1 else None


def _apply(pattern: str | None, name: str, parent: str | None = None) -> str:
    if pattern is None:
        return name
    out = pattern.replace("{name}", name).replace("{child}", name)
    return out.replace("{parent}", parent) if parent is not None else out


def _describe(preset: Preset | None, added: Sequence[CompartmentSpec], drop: Sequence[str]) -> str:
    parts = [f"{preset.name}" if preset else "a user preset"]
    if added:
        parts.append("with " + ", ".join(c.name for c in added))
    if drop:
        parts.append("without " + ", ".join(drop))
    return " ".join(parts)


def _known_keys(table: Mapping[str, Any], valid: Sequence[str], where: str, what: str) -> None:
    for key in table:
        if key not in valid:
            raise InvalidPresetError(
                f"{where}unknown {what} {key!r}{_did_you_mean(key, valid)}; valid keys: "
                f"{', '.join(valid)} ({_HELP})")


def _typed(value: Any, kind: type, what: str, where: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidPresetError(f"{where} must be {what}, not {value!r}")
    return value


def _strings(values: list[Any], where: str) -> list[str]:
    for v in values:
        if not isinstance(v, str):
            raise InvalidPresetError(f"{where} must hold strings in quotes; {v!r} is not one")
    return values


def _names(values: Any, where: str) -> list[str]:
    _typed(values, list, "a list of compartment names, [\"Nuclei\"]", where)
    return [_name(v, f"{where}: ") for v in _strings(values, where)]


def _name(name: str, where: str) -> str:
    if not _NAME.fullmatch(name) or name == IMAGE:
        raise InvalidPresetError(
            f"{where}{name!r} cannot name a compartment: use letters, digits and _, starting "
            f"with a letter (it prefixes the output columns), and not {IMAGE!r}")
    return name


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listed(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"

