"""The command line: ``celltable convert``, ``inspect``, ``validate`` and ``presets``."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from celltable import api
from celltable.api import CelltableError, WarehouseResult
from celltable.cli_options import (
    BaseOption,
    CompartmentOption,
    DropOption,
    PresetFileOption,
    RelationshipOption,
    bbox_keyword,
    given_preset,
    key_value,
    preset_changes,
)
from celltable.logs import configure
from celltable.render import (
    console,
    conversion_summary,
    inspection_json,
    inspection_view,
    validation_json,
    validation_view,
    warehouse_json,
    warehouse_summary,
    warehouse_view,
)
from celltable.signals import EXIT_CODE, Terminated, terminate_as_interrupt

app = typer.Typer(
    help="Turn image-analysis measurements (CellProfiler CSV and SQLite, cytominer-database, "
    "DeepProfiler NPZ, IN Carta CSV) into analysis-ready single-cell Parquet tables.\n\n"
    "Example: celltable inspect ExampleHuman/ && celltable convert ExampleHuman/ example.parquet "
    "&& celltable validate example.parquet",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"celltable {api.version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """celltable converts CellProfiler CSV and SQLite, cytominer-database, DeepProfiler NPZ and
    IN Carta CSV output into Parquet."""


@app.command()
def convert(
    # Strings, not Paths: a Path would turn s3://bucket into s3:/bucket.
    source: Annotated[str, typer.Argument(help="CellProfiler or cytominer-database output (a "
                                          "folder of CSVs, one subfolder per plate allowed; a "
                                          "SQLite file or a folder of them), a folder of "
                                          "DeepProfiler .npz files or of IN Carta CSV exports; "
                                          "local or s3://, gs://, az://; or a .txt manifest "
                                          "listing such sources, one per line.")],
    dest: Annotated[str, typer.Argument(help="The Parquet file to write (a folder with "
                                        "--no-join), .h5ad file, .zarr store, or warehouse "
                                        "folder (--format iceberg); local or s3://, gs://, "
                                        "az://.")],
    preset: Annotated[str | None, typer.Option(help="The source layout; `celltable presets` "
                                               "lists them (default: detected from SOURCE, as "
                                               "`celltable inspect` shows).")] = None,
    preset_file: PresetFileOption = None,
    compartment: CompartmentOption = None,
    relationship: RelationshipOption = None,
    drop_compartment: DropOption = None,
    base: BaseOption = None,
    join: Annotated[bool, typer.Option("--join/--no-join", help="One joined single-cell table, "
                                       "or one Parquet file per source table.")] = True,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Base-compartment rows per task "
                                                   "(default: chosen from memory).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Threads for DuckDB, Arrow and the "
                                                "tasks together (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace DEST if it exists.")] = False,
    join_sql: Annotated[Path | None, typer.Option(help="Expert: a file with a SELECT over the "
                                                  "tables Image, Cells, Cytoplasm, Nuclei (source "
                                                  "column names), or CytoTable's "
                                                  "read_parquet('cells.parquet') ... (columns as "
                                                  "the --no-join files name them), run per plate "
                                                  "instead of the preset's join.")] = None,
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
    resume: Annotated[bool, typer.Option(help="Keep each finished chunk until DEST is written, "
                                         "and continue a run that was killed or failed (run "
                                         "the same command again with --resume).")] = False,
    partition_by: Annotated[str | None, typer.Option(help="plate: one file per plate in the "
                                                     "folder DEST (same columns in "
                                                     "each).")] = None,
    output_format: Annotated[str | None, typer.Option(
        "--format", help="parquet, h5ad or zarr (AnnData; needs the [anndata] extra), or "
        "iceberg: DEST is a warehouse folder of profiles and image crops (needs the [iceberg] "
        "extra); default: iceberg when DEST is a warehouse or an Iceberg option (--images, "
        "--append ...) is given, else from DEST's suffix (.parquet, .h5ad, .zarr, .iceberg), Parquet when it "
        "has none.")] = None,
    float32: Annotated[bool, typer.Option("--float32", help="Store float64 feature columns as "
                                          "float32: half the size, about 7 significant digits "
                                          "(keys and Metadata_* keep their type).")] = False,
    skip_bad_files: Annotated[bool, typer.Option(help="Convert what can be read: leave out "
                                                 "the plates (or NPZ sites) holding a file that "
                                                 "cannot (empty, cut short, corrupt), each "
                                                 "listed with why in the run report; into a "
                                                 "warehouse, also the crops of image files that "
                                                 "are missing, ambiguous or unreadable. Without "
                                                 "it, the first look names every bad file and "
                                                 "writes nothing.")] = False,
    images: Annotated[str | None, typer.Option(help="Iceberg: the folder of the images the "
                                               "image table names; every object is cropped "
                                               "from each TIFF channel.")] = None,
    masks: Annotated[str | None, typer.Option(help="Iceberg: a folder of mask images, "
                                              "cropped like the images.")] = None,
    outlines: Annotated[str | None, typer.Option(help="Iceberg: a folder of outline images, "
                                                 "cropped like the images.")] = None,
    append: Annotated[bool, typer.Option(help="Iceberg: add SOURCE's plates to the warehouse "
                                         "DEST in one new snapshot (plates already there are "
                                         "refused).")] = False,
    bbox_compartment: Annotated[str, typer.Option(help="Iceberg: the compartment whose "
                                                  "AreaShape_BoundingBox* columns cut the "
                                                  "crops.")] = "Cells",
    bbox_columns: Annotated[str | None, typer.Option(
        metavar="X_MIN,X_MAX,Y_MIN,Y_MAX", help="Iceberg: the bounding-box columns of that "
        "compartment (default: CellProfiler's AreaShape_BoundingBoxMinimum_X, ...Maximum_X, "
        "...Minimum_Y, ...Maximum_Y).")] = None,
    catalog_uri: Annotated[str | None, typer.Option(help="Iceberg: commit into this catalog "
                                                    "(http(s):// REST, sqlite:///, "
                                                    "postgresql://) instead of "
                                                    "DEST/catalog.db.")] = None,
    catalog_option: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Iceberg: a property of --catalog-uri's catalog "
        "(credentials, warehouse ...). Repeatable.")] = None,
    log_format: Annotated[str | None, typer.Option(help="console or json (default: console on "
                                                   "a terminal, json otherwise).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notices "
                                        "on stderr (errors still show).")] = False,
    report: Annotated[str | None, typer.Option(help="Where to write the run report (JSON: files "
                                               "used and skipped, rows per stage, columns "
                                               "missing or cast); - prints it on stdout "
                                               "(default: DEST.report.json).")] = None,
) -> None:
    """Convert SOURCE into one single-cell table at DEST: Parquet, or AnnData (.h5ad, .zarr);
    or into an Iceberg warehouse of profiles and image crops (--format iceberg).

    Without --preset, the preset is detected (stderr says which); on a terminal a progress bar
    shows chunks done, rows per second and the time left.

    Example: celltable convert ExampleHuman/ example.parquet

    Example: celltable convert s3://bucket/plates/ plates.parquet --executor htex --workers 4

    Example: celltable convert plates/ out/ --partition-by plate --resume

    Example: celltable convert ExampleHuman/ no_nuclei.parquet --drop-compartment Nuclei

    Example: celltable convert ExampleHuman/ cells.parquet --base Cells --drop-compartment Cytoplasm

    Example: celltable convert ExampleHuman/ example.h5ad

    Example: celltable convert ExampleHuman/ warehouse/ --format iceberg --images ExampleHuman/
    """
    if log_format not in (None, "console", "json"):
        _fail("--log-format must be console or json")
    if executor not in api.EXECUTORS:
        _fail(f"--executor must be one of {', '.join(api.EXECUTORS)}")
    configure(log_format, "info" if verbose else "warning")
    try:
        options = api.ConversionOptions(
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
            resume=resume,
            partition_by=partition_by,
            report_path=report,
            float32=float32,
            skip_bad_files=skip_bad_files,
            format=output_format,
        )
        iceberg = None
        if output_format == "iceberg" or images or masks or outlines or append or catalog_uri \
                or catalog_option or bbox_columns \
                or (output_format is None and api.is_warehouse(dest)):
            iceberg = api.IcebergOptions(
                append=append, catalog_uri=catalog_uri,
                catalog_options=tuple(key_value(o) for o in catalog_option or ()),
                images=api.ImageOptions(images_dir=images, masks_dir=masks,
                                        outlines_dir=outlines, bbox_compartment=bbox_compartment,
                                        **bbox_keyword(bbox_columns)))
            options = replace(options, format=output_format or "iceberg")
        api.check_format(source, dest, options)
        given = given_preset(preset, preset_file)

        def detected(detection: api.Detection) -> None:
            # verbose logs say it (preset_detected); with nothing found, the error does
            if not quiet and not verbose and detection.preset is not None:
                typer.echo(f"celltable: {detection.explain()}", err=True)

        from celltable.progress import progress_bar  # rich's bars, for terminals only

        with terminate_as_interrupt(), progress_bar(sys.stderr.isatty() and not quiet) as listener:
            result = api.convert(source, dest, preset=given, join=join, options=options,
                                 parsl_config=parsl_config, progress=listener, iceberg=iceberg,
                                 changes=preset_changes(compartment, relationship,
                                                        drop_compartment, base),
                                 on_detected=detected)
    except (CelltableError, OSError) as e:
        _fail(str(e))
    except Terminated:
        typer.echo(f"celltable: error: stopped by SIGTERM; {dest} was left as it was (run "
                   "again, with --resume to reuse finished chunks)", err=True)
        raise typer.Exit(EXIT_CODE) from None
    conversion = result.conversion if isinstance(result, WarehouseResult) else result
    if conversion.bad_files:  # shown even with --quiet: data was left out
        where = conversion.report_path or ("the report printed" if report == "-"
                                           else "the report")
        typer.echo(f"celltable: warning: skipped {len(conversion.bad_files)} bad file(s) that "
                   f"cannot be read; {where} lists each with why", err=True)
    if isinstance(result, WarehouseResult):
        if report == "-" and result.conversion.report is not None:
            typer.echo(json.dumps(api.report_json(result.conversion.report), indent=2))
        for line in warehouse_summary(result):
            typer.echo(line, err=report == "-")
        return
    if report == "-" and result.report is not None:
        typer.echo(json.dumps(api.report_json(result.report), indent=2))
    for line in conversion_summary(result):
        typer.echo(line, err=report == "-")


@app.command()
def inspect(
    source: Annotated[str, typer.Argument(help="CellProfiler, cytominer-database, DeepProfiler "
                                          "or IN Carta output, as for convert; or a warehouse "
                                          "convert wrote (--format iceberg).")],
    preset: Annotated[str | None, typer.Option(help="Read SOURCE as this preset (default: "
                                               "detected).")] = None,
    preset_file: PresetFileOption = None,
    compartment: CompartmentOption = None,
    relationship: RelationshipOption = None,
    drop_compartment: DropOption = None,
    base: BaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of "
                                          "tables.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Show what SOURCE holds, without converting it: its kind and preset, plates, tables with
    rows, columns and key columns, and anything suspicious (missing tables, orphans, keys that
    are not whole numbers).

    Only key columns are scanned, so inspecting is much cheaper than converting. Exits with 1
    when a file cannot be read (every such file is listed, as convert names them).

    Example: celltable inspect NF1_SchwannCell_data/all_cellprofiler.sqlite

    Example: celltable inspect plates/ --json | jq '.issues'

    Given a warehouse, it lists its tables with their rows, snapshots and columns.
    """
    configure(None, "info" if verbose else "warning")
    if api.is_warehouse(source):
        try:
            tables = api.describe_warehouse(source)
        except CelltableError as e:
            _fail(str(e))
        if as_json:
            typer.echo(json.dumps(warehouse_json(source, tables), indent=2))
        else:
            console().print(warehouse_view(source, tables))
        return
    try:
        report = api.inspect(source, preset=given_preset(preset, preset_file),
                             changes=preset_changes(compartment, relationship, drop_compartment,
                                                    base))
    except (CelltableError, OSError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(inspection_json(report), indent=2))
    else:
        console().print(inspection_view(report))
    if report.bad:  # a conversion would fail on them: say so by the exit code too
        raise typer.Exit(1)


@app.command()
def validate(
    dest: Annotated[str, typer.Argument(help="A file (.parquet, .h5ad) or Zarr store written "
                                        "by celltable convert (or the folder written with "
                                        "--no-join or --partition-by, or a local warehouse: "
                                        "its profiles' data files); local or s3://, gs://, "
                                        "az://.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
    local_cache_dir: Annotated[Path | None, typer.Option(help="Where a cloud DEST's files are "
                                                         "downloaded to be read (default: "
                                                         "~/.cache/celltable).")] = None,
    no_sign_request: Annotated[bool, typer.Option(help="Read a public bucket without "
                                                  "credentials.")] = False,
) -> None:
    """Re-read DEST and check it against what celltable recorded when writing it: row count,
    columns and types, null counts per column and a SHA-256 of the key columns.

    Exits with 1 when a check fails.

    Example: celltable validate example.parquet

    Example: celltable validate s3://bucket/plates/example.parquet
    """
    configure(None, "warning")
    try:
        report = api.validate(dest, no_sign_request=no_sign_request,
                              local_cache_dir=str(local_cache_dir) if local_cache_dir else None)
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


def main() -> None:
    """Entry point of the ``celltable`` script."""
    app(prog_name="celltable")


if __name__ == "__main__":
    sys.exit(main())
