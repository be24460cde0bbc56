"""The practical limit: one hand-written DuckDB query from CellProfiler output to Parquet.

It does what a converter must do at minimum (read the compartment tables, join cytoplasm to its
parent cell and nucleus per image, attach the image's well/plate/file names, sort, and write
one Parquet file) with nothing else: no chunking, no schema checks, no provenance. A converter
should stay within a small factor of this in time; its peak memory is a reference too.

    python benchmarks/duckdb_single_query.py SRC DEST.parquet [--format auto|sqlite|csv]

SQLite (CellProfiler ExportToDatabase: ``Per_Image``, ``Per_Cells``, ``Per_Cytoplasm``,
``Per_Nuclei``, columns already prefixed with the compartment) is ATTACHed through DuckDB's
``sqlite_scanner`` extension, LOADed from the file shipped by the pip package
``duckdb-extension-sqlite-scanner`` with extension auto-install and auto-load switched off, so it
works offline.

CSV (CellProfiler ExportToSpreadsheet: ``Image.csv``, ``Cells.csv``, ``Cytoplasm.csv``,
``Nuclei.csv`` with unprefixed columns ``ImageNumber``, ``ObjectNumber``, ``Parent_Cells``,
``Parent_Nuclei``) is read with ``read_csv`` over ``SRC/**/<Table>.csv``; rows only join within
the same folder, and columns get the ``Image_``/``Cytoplasm_``/``Cells_``/``Nuclei_`` prefix.

The columns selected follow CytoTable's ``cellprofiler_sqlite``/``cellprofiler_csv`` join:
ImageNumber, the image's well, plate and ``FileName_*`` columns, then every compartment column
(for CSV, less the cell's and nucleus's ObjectNumber, which equal the cytoplasm's Parent_*).
``--image-columns all`` takes every image column instead.

The output is sorted by image and object (folder first for CSV), as CytoTable's and celltable's
are. That ORDER BY is a full-width sort and costs a lot on wide tables (on a 96-image plate with
~1,800 columns: 31 s against 7 s without it); ``--no-order`` drops it, for the raw floor. Without
it DuckDB gives no order guarantee: the SQLite plates happened to come out sorted, ExampleHuman
came out reversed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

IMAGE_REGEX_SQLITE = r"^Image_(FileName_.*|Metadata_Well|Metadata_Plate)$"
IMAGE_REGEX_CSV = r"^(FileName_.*|Metadata_Well|Metadata_Plate)$"


def sqlite_extension_path() -> Path:
    """The sqlite_scanner binary shipped by the pip package, for this DuckDB version."""
    import duckdb

    spec = importlib.util.find_spec("duckdb_extension_sqlite_scanner")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "pip package duckdb-extension-sqlite-scanner is not installed "
            f"(need the version equal to duckdb {duckdb.__version__})"
        )
    p = (
        Path(spec.origin).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "sqlite_scanner.duckdb_extension"
    )
    if not p.exists():
        raise SystemExit(f"{p} not found: extension package does not match duckdb")
    return p


def _q(s: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def sqlite_query(src: Path, dest: Path, *, prefix: str, image_columns: str, order: bool) -> str:
    img_cols = (
        "* EXCLUDE (ImageNumber)"
        if image_columns == "all"
        else f"COLUMNS({_q(IMAGE_REGEX_SQLITE)})"
    )
    t = {k: f"cp.{prefix}{k}" for k in ("Image", "Cells", "Cytoplasm", "Nuclei")}
    order_by = "ORDER BY cyto.ImageNumber, cyto.Cytoplasm_Number_Object_Number" if order else ""
    return f"""
ATTACH {_q(src)} AS cp (TYPE sqlite, READ_ONLY);
COPY (
    SELECT
        cyto.ImageNumber AS Metadata_ImageNumber,
        img.* EXCLUDE (ImageNumber),
        cyto.* EXCLUDE (ImageNumber),
        cells.* EXCLUDE (ImageNumber),
        nuc.* EXCLUDE (ImageNumber)
    FROM {t["Cytoplasm"]} AS cyto
    JOIN {t["Cells"]} AS cells
      ON cells.ImageNumber = cyto.ImageNumber
     AND cells.Cells_Number_Object_Number = cyto.Cytoplasm_Parent_Cells
    JOIN {t["Nuclei"]} AS nuc
      ON nuc.ImageNumber = cyto.ImageNumber
     AND nuc.Nuclei_Number_Object_Number = cyto.Cytoplasm_Parent_Nuclei
    LEFT JOIN (SELECT ImageNumber, {img_cols} FROM {t["Image"]}) AS img
      ON img.ImageNumber = cyto.ImageNumber
    {order_by}
) TO {_q(dest)} (FORMAT parquet, COMPRESSION snappy);
"""


def csv_query(src: Path, dest: Path, *, image_columns: str, order: bool) -> str:
    def rd(table: str) -> str:
        glob = _q(src / "**" / f"{table}.csv")
        return f"read_csv({glob}, filename = true, union_by_name = true)"

    img_cols = (
        "COLUMNS(* EXCLUDE (ImageNumber, filename)) AS 'Image_\\0'"
        if image_columns == "all"
        else f"COLUMNS({_q(IMAGE_REGEX_CSV)}) AS 'Image_\\0'"
    )
    order_by = "ORDER BY cyto.filename, cyto.ImageNumber, cyto.ObjectNumber" if order else ""
    # The folder of each file is part of the key: ImageNumber restarts in every folder.
    return f"""
COPY (
    WITH img AS (
        SELECT parse_dirpath(filename) AS folder, ImageNumber, {img_cols}
        FROM {rd("Image")}
    )
    SELECT
        cyto.ImageNumber AS Metadata_ImageNumber,
        img.* EXCLUDE (folder, ImageNumber),
        COLUMNS(cyto.* EXCLUDE (ImageNumber, filename)) AS 'Cytoplasm_\\0',
        COLUMNS(cells.* EXCLUDE (ImageNumber, ObjectNumber, filename)) AS 'Cells_\\0',
        COLUMNS(nuc.* EXCLUDE (ImageNumber, ObjectNumber, filename)) AS 'Nuclei_\\0'
    FROM {rd("Cytoplasm")} AS cyto
    JOIN {rd("Cells")} AS cells
      ON parse_dirpath(cells.filename) = parse_dirpath(cyto.filename)
     AND cells.ImageNumber = cyto.ImageNumber
     AND cells.ObjectNumber = cyto.Parent_Cells
    JOIN {rd("Nuclei")} AS nuc
      ON parse_dirpath(nuc.filename) = parse_dirpath(cyto.filename)
     AND nuc.ImageNumber = cyto.ImageNumber
     AND nuc.ObjectNumber = cyto.Parent_Nuclei
    LEFT JOIN img
      ON img.folder = parse_dirpath(cyto.filename)
     AND img.ImageNumber = cyto.ImageNumber
    {order_by}
) TO {_q(dest)} (FORMAT parquet, COMPRESSION snappy);
"""


def detect_format(src: Path) -> tuple[str, Path]:
    if src.is_file():
        return "sqlite", src
    dbs = sorted([*src.glob("*.sqlite"), *src.glob("*.db")])
    if len(dbs) == 1 and not any(src.rglob("Cytoplasm.csv")):
        return "sqlite", dbs[0]
    return "csv", src


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("src", help="CellProfiler .sqlite file, or folder of CSVs")
    ap.add_argument("dest", help="output .parquet file (replaced if it exists)")
    ap.add_argument("--format", choices=["auto", "sqlite", "csv"], default="auto")
    ap.add_argument("--table-prefix", default="Per_", help="SQLite table prefix (default Per_)")
    ap.add_argument("--image-columns", choices=["cytotable", "all"], default="cytotable")
    ap.add_argument(
        "--no-order",
        action="store_true",
        help="drop the final ORDER BY (faster; row order then depends on DuckDB's join plan)",
    )
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    ap.add_argument("--print-sql", action="store_true", help="print the query and exit")
    a = ap.parse_args(argv)

    src = Path(a.src).resolve()
    dest = Path(a.dest).resolve()
    fmt, src = detect_format(src) if a.format == "auto" else (a.format, src)
    if fmt == "sqlite":
        sql = sqlite_query(
            src, dest, prefix=a.table_prefix, image_columns=a.image_columns, order=not a.no_order
        )
    else:
        sql = csv_query(src, dest, image_columns=a.image_columns, order=not a.no_order)
    if a.print_sql:
        print(sql)
        return 0

    t0 = time.perf_counter()
    import duckdb

    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    if a.threads:
        con.execute(f"SET threads = {int(a.threads)}")
    if a.memory_limit:
        con.execute(f"SET memory_limit = {_q(a.memory_limit)}")
    if fmt == "sqlite":
        con.execute(f"LOAD {_q(sqlite_extension_path())}")
    else:
        # Run the joins in the order written. With CSV sources (no statistics) DuckDB's join
        # orderer infers cells.ImageNumber = nuclei.ImageNumber and joins cells with nuclei
        # first, on ImageNumber alone: ~300x more intermediate rows (2.2 M for 7,113 output
        # rows on a 24-image plate), each ~1,200 columns wide.
        con.execute("SET disabled_optimizers = 'join_order'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    t1 = time.perf_counter()
    con.execute(sql)
    t2 = time.perf_counter()
    con.close()
    print(
        json.dumps(
            {
                "format": fmt,
                "duckdb": duckdb.__version__,
                "setup_s": round(t1 - t0, 4),
                "query_s": round(t2 - t1, 4),
                "dest": str(dest),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
