"""How ``celltable inspect`` and ``celltable validate`` show their reports: rich tables for
people, JSON for programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from celltable.application.inspect import Inspection, kind_label
from celltable.domain.inspection import Severity, TableDescription, key_columns
from celltable.domain.presets import Preset, get_preset
from celltable.domain.validation import ValidationReport

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def inspection_json(report: Inspection) -> dict[str, Any]:
    """The inspection as plain data (stable keys, for ``--json``)."""
    d = report.detection
    preset = get_preset(report.preset) if report.preset else None
    plates = []
    for u in report.plates:
        tables = []
        for t in _in_order(preset, u.tables):
            keys = key_columns(preset, t.table, t.schema) if preset else None
            tables.append({
                "table": t.table, "name_in_source": t.name_in_source, "rows": t.rows,
                "columns": len(t.schema.columns),
                "image_key": keys.image if keys else None,
                "object_number": keys.object if keys else None,
                "parent_references": list(keys.parents) if keys else [],
                "rows_without_image_key": t.null_keys, "repeated_keys": t.duplicate_keys,
            })
        plates.append({"plate": u.unit.key, "path": u.unit.path, "format": u.unit.format.value,
                       "tables": tables, "orphans": dict(u.orphans)})
    return {
        "source": report.source,
        "kind": d.kind.name if d.kind else None,
        "kind_description": kind_label(report),
        "supported": report.preset is not None,
        "preset": report.preset,
        "detected_preset": d.preset,
        "ambiguous": d.ambiguous,
        "matches": [{"preset": m.preset, "plates": m.plates, "tables": m.tables} for m in d.matches],
        "plates": plates,
        "skipped": list(report.skipped),
        "issues": [{"severity": i.severity.value, "plate": i.plate, "message": i.message}
                   for i in report.issues],
    }


def inspection_view(report: Inspection) -> Group:
    """The inspection for people: what the source is, a table per plate, then the issues."""
    d = report.detection
    head = Text()
    head.append("source  ", style="bold").append(f"{report.source}\n")
    head.append("kind    ", style="bold").append(kind_label(report))
    if report.preset is None:
        head.append("  (celltable cannot convert it yet)", style="red")
    preset = get_preset(report.preset) if report.preset else None
    if preset is not None:
        how = "detected" if preset.name == d.preset else "given"
        if d.ambiguous and how == "detected":
            how = "default: several presets find as many tables"
        head.append("\npreset  ", style="bold").append(f"{preset.name} ({how})")
        head.append("\nplates  ", style="bold").append(f"{len(report.plates)}")
        orphans: dict[str, int] = {}
        for u in report.plates:
            for rel, n in u.orphans:
                orphans[rel] = orphans.get(rel, 0) + n
        if orphans:
            head.append("\norphans ", style="bold").append(
                ", ".join(f"{rel}: {n:,}" for rel, n in orphans.items()),
                style="yellow" if any(orphans.values()) else "")
    parts: list[Any] = [head]
    many = len(report.plates) > 1
    table = Table(title=None, show_lines=False, header_style="bold")
    if many:
        table.add_column("plate")
    for name, justify in (("table", "left"), ("source name", "left"), ("rows", "right"),
                          ("columns", "right"), ("image key", "left"), ("object number", "left"),
                          ("parent references", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for u in report.plates:
        for t in _in_order(preset, u.tables):
            keys = key_columns(preset, t.table, t.schema) if preset else None
            row = [t.table, t.name_in_source, f"{t.rows:,}", f"{len(t.schema.columns):,}",
                   _key(keys.image if keys else None),
                   _key(keys.object if keys else None, t.table == "Image"),
                   ", ".join(keys.parents) if keys and keys.parents else "–"]
            table.add_row(*([u.unit.key] if many else []), *row)
    if report.plates:
        parts.append(table)
    parts.append(_issues(report))
    return Group(*parts)


def _in_order(preset: Preset | None,
              tables: Sequence[TableDescription]) -> list[TableDescription]:
    """Tables in the preset's order: image, then the compartments, base first."""
    order = {name: i for i, name in enumerate(preset.tables)} if preset else {}
    return sorted(tables, key=lambda t: order.get(t.table, len(order)))


def _key(column: str | None, not_applicable: bool = False) -> Text:
    if not_applicable:
        return Text("–")
    return Text(column) if column else Text("missing", style="bold red")


def _issues(report: Inspection) -> Text:
    if not report.issues:
        return Text("no issues found", style="green")
    text = Text()
    for i, issue in enumerate(report.issues):
        if i:
            text.append("\n")
        text.append(f"{issue.severity.value:<8}", style=_STYLE[issue.severity])
        if issue.plate is not None and len(report.plates) > 1:
            text.append(f"[{issue.plate}] ")
        text.append(issue.message)
    return text


def validation_json(report: ValidationReport) -> dict[str, Any]:
    """The validation as plain data (for ``--json``)."""
    return {
        "dest": report.dest_path,
        "ok": report.ok,
        "tables": [{
            "path": t.path, "ok": t.ok, "rows": t.rows, "columns": t.columns, "preset": t.preset,
            "producer_version": t.producer_version,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in t.checks],
        } for t in report.tables],
    }


def validation_view(report: ValidationReport) -> Text:
    """One line per file, then one per check: ✓ passed, ✗ failed, - not recorded."""
    text = Text()
    for n, t in enumerate(report.tables):
        if n:
            text.append("\n")
        verdict = ("valid", "green") if t.ok else ("INVALID", "bold red")
        text.append(f"{t.path}: ").append(verdict[0], style=verdict[1])
        text.append(f" ({t.rows:,} rows x {t.columns:,} columns, preset {t.preset}, "
                    f"celltable {t.producer_version})")
        for c in t.checks:
            mark = {True: ("✓", "green"), False: ("✗", "bold red"), None: ("-", "dim")}[c.ok]
            text.append("\n  ").append(mark[0], style=mark[1]).append(f" {c.name}: {c.detail}")
    return text


def console(*, stderr: bool = False) -> Console:
    """A console for reports: colours on terminals only; text lines are not wrapped, and tables
    written to a file or pipe get room for long column names (a terminal's width otherwise)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, soft_wrap=True, highlight=False, width=width)
