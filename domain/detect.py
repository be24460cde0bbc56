"""Which kind of source a path holds, and which built-in preset reads it.

Detection tries every built-in preset's table names on the source and prefers the preset that
finds the most tables. Kinds whose files are not named after tables (DeepProfiler's ``.npz``
per site, IN Carta's CSV per export) are recognised from a cheap survey of file suffixes and CSV
headers, when no preset finds tables. Adding a kind is one entry in :data:`KINDS`; giving it a
preset is naming the preset there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celltable.domain.presets import DEFAULT_PRESET, PRESETS


@dataclass(frozen=True, slots=True)
class SourceSurvey:
    """A cheap look at a source: how many files of each suffix, and the header of a few CSVs.

    Attributes:
        root: The source as given.
        suffixes: ``(suffix, files)`` pairs, suffixes lower case with their dot (``.csv``).
        csv_headers: ``(path relative to root, column names)`` of the first CSV files found.
    """

    root: str
    suffixes: tuple[tuple[str, int], ...] = ()
    csv_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def count(self, suffix: str) -> int:
        """How many files end with ``suffix`` (``.npz``)."""
        return dict(self.suffixes).get(suffix.lower(), 0)


@dataclass(frozen=True, slots=True)
class SourceKind:
    """A tool's output format that celltable recognises.

    Attributes:
        name: Short identifier (``cellprofiler_sqlite``).
        description: What users call it.
        presets: The built-in presets reading it, preferred first; empty when celltable cannot
            convert it yet.
        recognise: For kinds without presets: whether a survey shows this kind.
    """

    name: str
    description: str
    presets: tuple[str, ...] = ()
    recognise: Callable[[SourceSurvey], bool] | None = None

    @property
    def supported(self) -> bool:
        return bool(self.presets)


def _has_csv_columns(*names: str) -> Callable[[SourceSurvey], bool]:
    wanted = {n.lower() for n in names}

    def recognise(survey: SourceSurvey) -> bool:
        return any(wanted <= {c.strip().strip('"').lower() for c in header}
                   for _, header in survey.csv_headers)

    return recognise


KINDS: tuple[SourceKind, ...] = (
    SourceKind("cellprofiler_csv", "CellProfiler CSV (ExportToSpreadsheet)",
               ("cellprofiler_csv", "cellprofiler_csv_cytominer_database")),
    SourceKind("cellprofiler_sqlite", "CellProfiler SQLite (ExportToDatabase)",
               ("cellprofiler_sqlite", "cellprofiler_sqlite_pycytominer")),
    SourceKind("cytominer_database", "cytominer-database or JUMP cpg0016 SQLite (tables Image, "
               "Cells, Cytoplasm, Nuclei)",
               ("cellprofiler_sqlite_cpg0016_jump", "cell-health-cellprofiler-to-cytominer-database")),
    SourceKind("deepprofiler", "DeepProfiler features (.npz per well and site)", ("deepprofiler",),
               recognise=lambda s: s.count(".npz") > 0),
    SourceKind("in_carta", "IN Carta CSV export (columns OBJECT ID, WELL LABEL ...)", ("in-carta",),
               recognise=_has_csv_columns("OBJECT ID", "WELL LABEL")),
)


def kind_of(preset: str) -> SourceKind | None:
    """The kind a built-in preset reads; None for presets of the user's own."""
    for kind in KINDS:
        if preset in kind.presets:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class PresetMatch:
    """What one preset's table names find in a source."""

    preset: str
    plates: int
    tables: int


@dataclass(frozen=True, slots=True)
class Detection:
    """What a source is and how to read it.

    Attributes:
        source: The source path.
        kind: The kind recognised; None when nothing is.
        preset: The preset to convert with; None when no built-in preset reads the source.
        matches: Every preset that found tables, most tables first.
        ambiguous: Presets of different kinds found as many tables; ``preset`` is then the
            default (``cellprofiler_csv``) when it is among them, else the first of them.
    """

    source: str
    kind: SourceKind | None
    preset: str | None
    matches: tuple[PresetMatch, ...] = ()
    ambiguous: bool = False

    def explain(self) -> str:
        """One line for users: what was detected, and how to choose otherwise."""
        if self.preset is None:
            if self.kind is None:
                return (f"no built-in preset finds tables in {self.source}; "
                        "`celltable presets` lists the layouts celltable knows")
            return (f"{self.source} looks like {self.kind.description}, which celltable cannot "
                    "convert yet")
        best = next((m for m in self.matches if m.preset == self.preset), None)
        if best is None:  # recognised from its columns, not from table names
            return (f"detected preset {self.preset} ({self.kind.description if self.kind else ''}); "
                    "pass --preset to choose another")
        found = f"{best.tables} tables in {best.plates} plate(s)"
        if self.ambiguous:
            others = ", ".join(m.preset for m in self.matches
                               if m.tables == best.tables and m.preset != self.preset)
            return (f"detected preset {self.preset} ({found}), the default, but {others} "
                    "find(s) as many tables: pass --preset to choose")
        return f"detected preset {self.preset} ({found}); pass --preset to choose another"


def choose_preset(
    source: str, matches: Sequence[PresetMatch], survey: SourceSurvey | None = None
) -> Detection:
    """The preset finding the most tables, and the kind it reads.

    Presets of one kind finding the same tables (``cellprofiler_sqlite`` and its pycytominer
    variant) are no ambiguity: the kind's first preset wins. Without matches, the survey may
    still recognise a kind no preset reads.
    """
    ranked = sorted(matches, key=lambda m: (-m.tables, _rank(m.preset)))
    if not ranked:
        for kind in KINDS:
            if kind.recognise is not None and survey is not None and kind.recognise(survey):
                return Detection(source, kind, kind.presets[0] if kind.presets else None)
        return Detection(source, None, None)
    best = [m for m in ranked if m.tables == ranked[0].tables]
    kinds = {kind_of(m.preset) for m in best}
    names = [m.preset for m in best]
    if len(kinds) == 1:
        return Detection(source, kind_of(names[0]), names[0], tuple(ranked))
    chosen = DEFAULT_PRESET if DEFAULT_PRESET in names else names[0]
    return Detection(source, kind_of(chosen), chosen, tuple(ranked), ambiguous=True)


def _rank(preset: str) -> int:
    """Order of the built-in presets, so the first preset of a kind wins ties."""
    names = list(PRESETS)
    return names.index(preset) if preset in names else len(names)
