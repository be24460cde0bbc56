"""How ``celltable inspect``, ``convert`` and ``validate`` show their reports: rich tables and
lines for people, JSON for programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from celltable.application.inspect import Inspection, kind_label
from celltable.application.warehouse import WarehouseResult
from celltable.domain.inspection import Severity, TableDescription, key_columns
from celltable.domain.model import ConversionResult
from celltable.domain.presets import Preset, get_preset
from celltable.domain.report import relative_to
from celltable.domain.schema import DataType
from celltable.domain.validation import ValidationReport
from celltable.domain.warehouse import TableState

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def inspection_json(report: Inspection) -> dict[str, Any]:
    """The inspection as plain data (stable keys, for ``--json``)."""
    d = report.detection
    preset = report.read_with or (get_preset(report.preset) if report.preset else None)
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
        plates.append({"plate": u.plate.key, "path": u.plate.path, "format": u.plate.format.value,
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
        "bad_files": [{"path": b.path, "reason": b.reason} for b in report.bad],
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
    preset = report.read_with or (get_preset(report.preset) if report.preset else None)
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
            table.add_row(*([u.plate.key] if many else []), *row)
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


def conversion_summary(result: ConversionResult) -> list[str]:
    """A few lines for people after ``celltable convert``: each output table, then what the run
    report records beyond it (files skipped, tables without rows, columns some plates lack,
    types cast, values not cast), where the report went, the time and peak memory."""
    plates = len(result.plates)
    lines = []
    for t in result.tables:
        line = (f"{t.path}: {t.rows_out:,} rows x {t.columns:,} columns from {t.rows_in:,} "
                f"{t.name if t.name != 'joined' else 'base'} rows of {plates} plate(s)")
        if t.dropped:
            why = ", ".join(f"{n:,} without {rel.split('-> ')[-1]}" for rel, n in t.missing if n)
            line += f"; {t.dropped:,} dropped ({why})"
        if t.unaccounted:
            line += f"; {-t.unaccounted:,} extra rows from duplicate keys"
        if t.null_objects:
            line += f"; {t.null_objects:,} without an object number (NULL)"
        lines.append(line)
    report = result.report
    if report is not None:
        rel = relative_to(report.source)
        if report.skipped:
            lines.append(f"skipped {len(report.skipped)} file(s): " + _some(
                [f"{rel(s.path)} ({s.reason})" for s in report.skipped]))
        if report.empty_tables:
            lines.append("tables without rows: " + _some(
                [f"{rel(t.path)} ({t.table} of {t.plate})" for t in report.empty_tables]))
        if report.missing:
            lines.append("columns missing in some plates (NULL there): " + _some(
                [f"{m.plate} lacks {len(m.columns):,} {m.table} column(s) "
                 f"({_some(list(m.columns), 2)})" for m in report.missing]))
        if report.cast:
            lines.append("columns cast to one type: " + _some(
                [f"{c.column} to {c.type.value} ({_by_type(c.sources)})" for c in report.cast]))
        if report.widened:
            lines.append("declared integer, read as float64: " + _some(
                [f"{t}.{c} ({p})" for p, t, c in report.widened]))
        if report.experiments:
            lines.append("measured with " + _some([
                f"CellProfiler {e['values'].get('CellProfiler_Version', '?')}"
                f" (run {e['values'].get('Run_Timestamp', '?')}, {len(e['plates'])} plate(s))"
                for e in report.experiments]))
        if report.not_cast:
            lines.append("values not cast, read as NULL: " + _some(
                [f"{v.values:,} in {v.table}.{v.column} ({v.plate})" for v in report.not_cast]))
    if result.report_path:
        lines.append(f"report: {result.report_path}")
    done = f"done in {result.duration_s:.2f} s"
    if report is not None and report.peak_memory is not None:
        peak = max(report.peak_memory.process, report.peak_memory.workers)
        done += f", peak memory {peak / 2**20:,.0f} MiB"
    lines.append(done)
    return lines


def _by_type(sources: Sequence[tuple[str, DataType]]) -> str:
    """``int64 in a, b; string in c``: plates grouped by their source type."""
    plates: dict[str, list[str]] = {}
    for plate, t in sources:
        plates.setdefault(t.value, []).append(plate)
    return "; ".join(f"{t} in {_some(ps)}" for t, ps in plates.items())


def _some(items: Sequence[str], n: int = 3) -> str:
    """The first ``n`` items, and how many more."""
    shown = ", ".join(items[:n])
    return shown if len(items) <= n else f"{shown} and {len(items) - n:,} more"


def console(*, stderr: bool = False) -> Console:
    """A console for reports: colours on terminals only; text lines are not wrapped, and tables
    written to a file or pipe get room for long column names (a terminal's width otherwise)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, soft_wrap=True, highlight=False, width=width)


def warehouse_summary(result: WarehouseResult) -> list[str]:
    """The lines after ``celltable convert --format iceberg``: the conversion's, then each
    table committed and the image files skipped."""
    lines = conversion_summary(result.conversion)
    done = lines.pop()
    lines = [line for line in lines if not line.startswith(result.conversion.dest_path + "/")
             and ".celltable-staging-" not in line]
    for t in result.tables:
        lines.append(f"{t.namespace}.{t.table}: {t.rows:,} rows, {t.snapshots} snapshot(s)")
    if result.channels:
        lines.append(f"{result.crops:,} crops of channels {', '.join(result.channels)}")
    if result.skipped_images:
        lines.append(f"skipped {len(result.skipped_images)} image file(s): " + _some(
            [f"{f} ({why})" for f, why in result.skipped_images]))
    lines.append(done)
    return lines


def warehouse_json(dest: str, tables: Sequence[TableState]) -> dict[str, Any]:
    return {"warehouse": dest, "tables": [
        {"table": f"{t.namespace}.{t.table}", "rows": t.rows, "snapshots": t.snapshots,
         "snapshot_id": t.snapshot_id, "columns": t.columns, "location": t.location}
        for t in tables]}


def warehouse_view(dest: str, tables: Sequence[TableState]) -> Table:
    view = Table(title=f"warehouse {dest}")
    for name in ("table", "rows", "snapshots", "columns", "location"):
        view.add_column(name, justify="right" if name in ("rows", "snapshots", "columns")
                        else "left")
    for t in tables:
        view.add_row(f"{t.namespace}.{t.table}", f"{t.rows:,}", str(t.snapshots),
                     str(t.columns), t.location)
    return view
