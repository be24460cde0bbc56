"""The command line: ``celltable convert SOURCE DEST`` and ``celltable presets``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from celltable import api
from celltable.bootstrap import package_version
from celltable.domain.errors import CelltableError
from celltable.domain.model import ConversionOptions, ConversionResult
from celltable.domain.presets import DEFAULT_PRESET
from celltable.logs import configure

app = typer.Typer(
    help="Turn image-analysis measurements into analysis-ready single-cell Parquet tables.",
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
    source: Annotated[Path, typer.Argument(help="A folder of CSVs (one subfolder per plate "
                                           "allowed), a SQLite file, or a folder of SQLite files.")],
    dest: Annotated[Path, typer.Argument(help="The Parquet file to write (a folder with --no-join).")],
    preset: Annotated[str, typer.Option(help="The source layout; `celltable presets` lists them.")] = DEFAULT_PRESET,
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
    log_format: Annotated[str | None, typer.Option(help="console or json (default: console on "
                                                   "a terminal, json otherwise).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Convert SOURCE into one single-cell Parquet table at DEST.

    Example: celltable convert ExampleHuman/ example.parquet
    """
    if log_format not in (None, "console", "json"):
        _fail("--log-format must be console or json")
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
        )
        result = api.convert(source, dest, preset=preset, join=join, options=options)
    except (CelltableError, OSError) as e:
        _fail(str(e))
    _summary(result)


@app.command()
def presets() -> None:
    """List the presets: the source layouts celltable knows."""
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
