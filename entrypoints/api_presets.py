"""Presets in the Python API: built-in ones by name, preset files, and the command line's
changes to a preset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from celltable.domain.errors import InvalidPresetError
from celltable.domain.preset_file import override_builtin, parse_preset
from celltable.domain.presets import PRESETS, Preset, get_preset


@dataclass(frozen=True, slots=True)
class PresetChanges:
    """Changes to a preset, as the command line's ``--compartment``, ``--relationship``,
    ``--drop-compartment`` and ``--base`` give them (see docs/presets.md)."""

    compartments: tuple[str, ...] = ()
    """``NAME[=TABLE]``: a compartment added (its table named as the preset names them)."""
    relationships: tuple[str, ...] = ()
    """``CHILD.COLUMN -> PARENT``: how an added compartment is joined."""
    drop: tuple[str, ...] = ()
    """Compartments left out."""
    base: str | None = None
    """The compartment whose objects are the rows."""

    def __bool__(self) -> bool:
        return bool(self.compartments or self.relationships or self.drop or self.base)

    def applied(self, preset: Preset) -> Preset:
        """``preset`` with these changes (itself when there are none).

        Raises:
            InvalidPresetError: The changes do not make a preset that can be joined.
        """
        return override_builtin(preset, compartments=self.compartments,
                                relationships=self.relationships, drop=self.drop,
                                base=self.base)


def load_preset(path: str | os.PathLike[str]) -> Preset:
    """The preset a TOML preset file describes: a built-in preset with compartments and
    relationships added, changed or dropped (see docs/presets.md).

    Raises:
        InvalidPresetError: The file is missing, unreadable, not TOML, or describes a preset
            that cannot be joined; the message says what to change.

    Example:
        >>> preset = celltable.load_preset("cellpose.toml")  # doctest: +SKIP
        >>> celltable.convert("plate/", "plate.parquet", preset=preset)  # doctest: +SKIP
    """
    file = Path(path)
    try:
        with file.open("rb") as f:  # bounded: a device (/dev/zero) or a huge file is refused
            data = f.read(MAX_PRESET_BYTES + 1)
        if len(data) > MAX_PRESET_BYTES:
            raise InvalidPresetError(
                f"preset file {file} is larger than {MAX_PRESET_BYTES // 1024} KiB, far beyond "
                "any preset; give the .toml file describing the layout (see docs/presets.md)")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidPresetError(f"preset file {file} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidPresetError(f"cannot read preset file {file}: {e}; give a UTF-8 .toml "
                                 "file") from None
    return parse_preset(text, file.name)


MAX_PRESET_BYTES = 1 << 20
"""Bytes of a preset file read at most: presets are a few hundred bytes."""


def resolve_preset(preset: str | os.PathLike[str] | Preset | None) -> Preset | None:
    """A preset given by name, by preset-file path (``.toml`` or a path object) or as is."""
    if preset is None or isinstance(preset, Preset):
        return preset
    if not isinstance(preset, str) or preset.lower().endswith(".toml"):
        return load_preset(preset)
    return get_preset(preset)


def presets() -> dict[str, str]:
    """The built-in presets and their one-line descriptions."""
    return {name: p.description for name, p in sorted(PRESETS.items())}
