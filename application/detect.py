"""Detecting the preset of a source: every built-in preset's table names are tried on it."""

from __future__ import annotations

import structlog

from celltable.domain.detect import Detection, PresetMatch, choose_preset
from celltable.domain.errors import NoTablesFoundError, UnsupportedSourceError
from celltable.domain.ports import SourceLocator, SourceSurveyor
from celltable.domain.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from celltable.domain.sources import SkippedFile, bad_files_error

log = structlog.get_logger("celltable.detect")


def detect(source_path: str, locator: SourceLocator,
           surveyor: SourceSurveyor | None = None) -> Detection:
    """The kind of ``source_path`` and the built-in preset finding most of its tables.

    The survey (file suffixes, a few CSV headers) runs only when no preset finds tables by name:
    it recognises the kinds whose files are not named after tables (DeepProfiler ``.npz``,
    IN Carta CSV) and names kinds celltable cannot convert.

    Raises:
        SourceNotFoundError: Nothing exists at ``source_path``.
        SourceReadError: A SQLite file there cannot be read (:class:`BadSourceFilesError`
            when no preset finds a readable one).
    """
    matches = []
    bad: dict[str, SkippedFile] = {}
    for preset in PRESETS.values():
        if not preset.tables_named:
            continue  # any CSV or .npz file is a table of theirs: recognised by the survey
        try:
            layout = locator.discover(source_path, preset)
        except NoTablesFoundError:
            continue
        bad.update((b.path, b) for b in layout.bad)
        if not layout.plates:  # only unreadable files: said below if nothing else matches
            continue
        matches.append(PresetMatch(preset.name, len(layout.plates),
                                   sum(len(u.tables) for u in layout.plates)))
    if not matches and bad:
        raise bad_files_error(list(bad.values()))
    survey = surveyor.survey(source_path) if surveyor is not None and not matches else None
    detection = choose_preset(source_path, matches, survey)
    log.info("preset_detected", source=source_path, preset=detection.preset,
             kind=detection.kind.name if detection.kind else None, ambiguous=detection.ambiguous,
             matches={m.preset: m.tables for m in detection.matches})
    return detection


def preset_to_convert(detection: Detection) -> Preset:
    """The preset a conversion uses for a detected source.

    With nothing recognised, the default preset (``cellprofiler_csv``) is used, so the error
    names the files it looked for.

    Raises:
        UnsupportedSourceError: The source is a kind no built-in preset reads yet.
    """
    if detection.preset is not None:
        return get_preset(detection.preset)
    if detection.kind is not None:
        raise UnsupportedSourceError(
            f"{detection.explain()}; `celltable presets` lists the layouts it reads"
        )
    return get_preset(DEFAULT_PRESET)
