"""The command line: ``celltable convert``, ``inspect``, ``validate`` and ``presets``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from celltable import api
from celltable.application.detect import preset_to_convert
from celltable.bootstrap import package_version
from celltable.domain.errors import CelltableError
from celltable.domain.model import EXECUTORS, ConversionOptions, ConversionResult
from celltable.logs import configure
from celltable.progress import progress_bar
from celltable.render import (
    console,
    inspection_json,
    inspection_view,
    validation_json,
    validation_view,
)

app = typer.Typer(
    help="Turn image-analysis measurements into analysis-ready single-cell Parquet tables.\n\n"
    "Example: celltable inspect ExampleHuman/ && celltable convert ExampleHuman/ example.parquet "
    "&& celltable validate example.parquet",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"celltable {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """celltable converts CellProfiler CSV and SQLite output into Parquet."""


@app.command()
def convert(
    # Strings, not Paths: a Path would turn s3://bucket into s3:/bucket.
    source: Annotated[str, typer.Argument(help="A folder of CSVs (one subfolder per plate "
                                          "allowed), a SQLite file, or a folder of SQLite files; "
                                          "local or s3://, gs://, az://.")],
    dest: Annotated[str, typer.Argument(help="The Parquet file to write (a folder with "
                                        "--no-join); local or s3://, gs://, az://.")],
    preset: Annotated[str | None, typer.Option(help="The source layout; `celltable presets` "
                                               "lists them (default: detected from SOURCE, as "
                                               "`celltable inspect` shows).")] = None,
    join: Annotated[bool, typer.Option("--join/--no-join", help="One joined single-cell table, "
                                       "or one Parquet file per source table.")] = True,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Base-compartment rows per task "
                                                   "(default: chosen from memory).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Threads for DuckDB, Arrow and the "
                                                "tasks together (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace DEST if it exists.")] = False,
    join_sql: Annotated[Path | None, typer.Option(help="Expert: a file with a SELECT over the "
                                                  "tables Image, Cells, Cytoplasm, Nuclei, run per "
                                                  "plate instead of the preset's join.")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="Memory per DuckDB task before it "
                                                     "spills to disk, e.g. 2GB.")] = None,
    staging_dir: Annotated[Path | None, typer.Option(help="Where to keep intermediate data "
                                                     "(default: beside DEST).")] = None,
    executor: Annotated[str, typer.Option(help="Where tasks run: threads (this process) or htex "
                                          "(local worker processes, Parsl's "
                                          "HighThroughputExecutor).")] = "threads",
    workers: Annotated[int | None, typer.Option(min=1, help="Tasks at once: threads or worker "
                                                "processes (default: from --threads).")] = None,
    parsl_config: Annotated[Path | None, typer.Option(help="A Python file defining `config`, a "
                                                      "parsl.Config (Slurm, Kubernetes ...; see "
                                                      "docs/scaling.md); wins over --executor.")] = None,
    local_cache_dir: Annotated[Path | None, typer.Option(help="Where cloud sources are downloaded "
                                                         "and reused (default: "
                                                         "~/.cache/celltable).")] = None,
    no_sign_request: Annotated[bool, typer.Option(help="Read public buckets without "
                                                  "credentials.")] = False,
    log_format: Annotated[str | None, typer.Option(help="console or json (default: console on "
                                                   "a terminal, json otherwise).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notices "
                                        "on stderr (errors still show).")] = False,
) -> None:
    """Convert SOURCE into one single-cell Parquet table at DEST.

    Without --preset, the preset is detected (stderr says which); on a terminal a progress bar
    shows chunks done, rows per second and the time left.

    Example: celltable convert ExampleHuman/ example.parquet

    Example: celltable convert s3://bucket/plates/ plates.parquet --executor htex --workers 4
    """
    if log_format not in (None, "console", "json"):
        _fail("--log-format must be console or json")
    if executor not in EXECUTORS:
        _fail(f"--executor must be one of {', '.join(EXECUTORS)}")
    configure(log_format, "info" if verbose else "warning")
    try:
        options = ConversionOptions(
            join=join,
            chunk_size=chunk_size,
            threads=threads,
            overwrite=overwrite,
            join_sql=join_sql.read_text() if join_sql else None,
            memory_limit=memory_limit,
            staging_dir=str(staging_dir) if staging_dir else None,
            executor=executor,
            workers=workers,
            local_cache_dir=str(local_cache_dir) if local_cache_dir else None,
            no_sign_request=no_sign_request,
        )
        if preset is None:
            detection = api.detect(source, options)
            preset = preset_to_convert(detection).name
            # verbose logs say it (preset_detected); with nothing found, the error does
            if not quiet and not verbose and detection.preset is not None:
                typer.echo(f"celltable: {detection.explain()}", err=True)
        with progress_bar(sys.stderr.isatty() and not quiet) as listener:
            result = api.convert(source, dest, preset=preset, join=join, options=options,
                                 parsl_config=parsl_config, progress=listener)
    except (CelltableError, OSError) as e:
        _fail(str(e))
    _summary(result)


@app.command()
def inspect(
    source: Annotated[str, typer.Argument(help="A folder of CSVs, a SQLite file, or a folder "
                                          "of either, as for convert.")],
    preset: Annotated[str | None, typer.Option(help="Read SOURCE as this preset (default: "
                                               "detected).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of "
                                          "tables.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Show what SOURCE holds, without converting it: its kind and preset, plates, tables with
    rows, columns and key columns, and anything suspicious (missing tables, orphans, keys that
    are not whole numbers).

    Only key columns are scanned, so inspecting is much cheaper than converting.

    Example: celltable inspect NF1_SchwannCell_data/all_cellprofiler.sqlite

    Example: celltable inspect plates/ --json | jq '.issues'
    """
    configure(None, "info" if verbose else "warning")
    try:
        report = api.inspect(source, preset=preset)
    except (CelltableError, OSError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(inspection_json(report), indent=2))
    else:
        console().print(inspection_view(report))


@app.command()
def validate(
    dest: Annotated[str, typer.Argument(help="A Parquet file written by celltable convert (or "
                                        "the folder written with --no-join).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Re-read DEST and check it against what celltable recorded when writing it: row count,
    columns and types, null counts per column and a SHA-256 of the key columns.

    Exits with 1 when a check fails.

    Example: celltable validate example.parquet
    """
    configure(None, "warning")
    try:
        report = api.validate(dest)
    except (CelltableError, OSError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(validation_json(report), indent=2))
    else:
        console().print(validation_view(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def presets() -> None:
    """List the presets: the source layouts celltable knows.

    Example: celltable presets
    """
    items = api.presets()
    width = max(map(len, items))
    for name, description in items.items():
        typer.echo(f"{name.ljust(width)}  {description}")


def _fail(message: str) -> None:
    typer.echo(f"celltable: error: {message}", err=True)
    raise typer.Exit(1)


def _summary(result: ConversionResult) -> None:
    plates = len(result.plates)
    for t in result.tables:
        line = (f"{t.path}: {t.rows_out:,} rows x {t.columns:,} columns from {t.rows_in:,} "
                f"{t.name if t.name != 'joined' else 'base'} rows of {plates} plate(s)")
        if t.dropped:
            why = ", ".join(f"{n:,} without {rel.split('-> ')[-1]}" for rel, n in t.missing if n)
            line += f"; {t.dropped:,} dropped ({why})"
        if t.unaccounted:
            line += f"; {-t.unaccounted:,} extra rows from duplicate keys"
        typer.echo(line)
    typer.echo(f"done in {result.duration_s:.2f} s")


def main() -> None:
    """Entry point of the ``celltable`` script."""
    app(prog_name="celltable")


if __name__ == "__main__":
    sys.exit(main())
