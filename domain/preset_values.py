"""The values of a preset file or of a command-line override, read and checked one by one: the
settings a file may change and their types, compartment and relationship specs (``Child.Column ->
Parent``), names, and the did-you-mean and list wording of their errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celltable.domain.errors import InvalidPresetError
from celltable.domain.presets import IMAGE, SourceFormat

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
