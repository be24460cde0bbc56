"""The inspect use case: what a source holds and what would go wrong converting it, cheaply.

Nothing is staged: the query engine reads schemas and counts straight from the source and scans
key columns only, so inspecting a large plate costs a pass over its keys, not a conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from celltable.application.detect import detect
from celltable.domain.detect import Detection, kind_of
from celltable.domain.errors import NoTablesFoundError, SchemaError, SourceReadError
from celltable.domain.inspection import Issue, PlateDescription, Severity, find_issues
from celltable.domain.ports import QueryEngine, SourceLocator, SourceSurveyor
from celltable.domain.presets import Preset, get_preset
from celltable.domain.sources import SkippedFile, without_bad

log = structlog.get_logger("celltable.inspect")


@dataclass(frozen=True, slots=True)
class InspectServices:
    """The adapters inspecting needs, built by the composition root."""

    locator: SourceLocator
    engine: QueryEngine
    surveyor: SourceSurveyor | None = None  # None: only presets' tables are recognised


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a source holds.

    Attributes:
        source: The source path.
        detection: The kind and preset detected (with every preset's match).
        preset: The preset the plates were described with (the detected one unless given);
            None when no built-in preset reads the source.
        plates: One description per plate.
        skipped: Files passed over.
        issues: Findings, errors first.
        read_with: The preset itself (a user's preset is no built-in one to look up by name).
    """

    source: str
    detection: Detection
    preset: str | None
    plates: tuple[PlateDescription, ...]
    skipped: tuple[str, ...]
    issues: tuple[Issue, ...]
    read_with: Preset | None = None
    bad: tuple[SkippedFile, ...] = ()
    """Files that cannot be read, with why (relative to the source): a conversion fails on
    them unless it skips bad files."""


def inspect(source_path: str, services: InspectServices,
            preset: Preset | None = None) -> Inspection:
    """Describe ``source_path`` as ``preset`` would read it (None: the detected preset).

    Files that cannot be read are not raised: each is an error of the inspection (and in
    ``bad``), as a conversion names them all before any data moves.

    Raises:
        SourceNotFoundError: Nothing exists at ``source_path``.
        NoTablesFoundError: Nothing there is a kind celltable recognises (or, with ``preset``,
            nothing matches its tables).
    """
    detection = detect(source_path, services.locator, services.surveyor)
    if preset is None:
        if detection.preset is None:
            if detection.kind is None:
                raise NoTablesFoundError(detection.explain())
            issue = Issue(Severity.ERROR, None, f"{detection.kind.description}: no built-in "
                                                "preset reads this kind yet")
            return Inspection(source_path, detection, None, (), (), (issue,))
        preset = get_preset(detection.preset)
    layout = services.locator.discover(source_path, preset)
    plates = []
    bad = list(layout.bad)
    # the plates (NPZ: the sites) a conversion skipping bad files would read
    for plate in without_bad(layout, layout.bad).plates:
        try:
            plates.append(services.engine.describe(plate, preset))
        except (SourceReadError, SchemaError) as e:  # named with the others, as convert does
            bad.append(SkippedFile(next((t.path for t in plate.tables if t.path in str(e)),
                                        plate.path), str(e)))
            continue
        log.info("plate_described", plate=plate.key, tables=len(plate.tables))
    root = layout.root.rstrip("/") + "/"
    skipped = tuple(p[len(root):] if p.startswith(root) else p for p in layout.skipped)
    bad = [SkippedFile(b.path[len(root):] if b.path.startswith(root) else b.path, b.reason)
           for b in bad]
    issues = find_issues(preset, plates, skipped, bad)
    if detection.ambiguous and preset.name == detection.preset:
        issues = (*issues, Issue(Severity.INFO, None, detection.explain()))
    return Inspection(layout.root, detection, preset.name, tuple(plates), layout.skipped, issues,
                      preset, tuple(bad))


def kind_label(inspection: Inspection) -> str:
    """The kind of the inspected source, as users call it."""
    kind = kind_of(inspection.preset) if inspection.preset else inspection.detection.kind
    kind = kind or inspection.detection.kind
    return kind.description if kind else "unknown"
